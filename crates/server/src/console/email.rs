//! email: the SMTP server for outgoing mail (host, port, security, username, write-only
//! password, from address) and the action `email/test`, which sends a real message. A failure is
//! `smtp-failed` (502) with the server's reply.
//!
//! The SMTP password has to be usable, so unlike user passwords it is stored as given (in
//! `instance_settings`); it is never returned by the API (`"***"`) nor written to the audit log.

use std::time::Duration;

use cryowarden_core::{Action, Resource, Setting};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::store::{self, Stored};
use super::{Field, Kind};
use crate::context::{Ctx, Target};
use crate::db::Db;
use crate::error::StoreError;

pub const SECURITY: &[&str] = &["none", "starttls", "tls"];

pub const FIELDS: &[Field] = &[
    super::f("host", "SMTP host", Kind::Text),
    super::f("port", "Port", Kind::Number),
    super::f("security", "Security", Kind::Choice(SECURITY)),
    super::f(
        "username",
        "Username (empty: no authentication)",
        Kind::Text,
    ),
    super::f("password", "Password (write-only)", Kind::Secret),
    super::f("from", "From address", Kind::Text),
];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    pub host: String,
    pub port: i64,
    /// `none`, `starttls` or `tls` (implicit TLS, usually port 465).
    pub security: String,
    pub username: String,
    pub password: String,
    pub from: String,
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings {
            host: String::new(),
            port: 587,
            security: "starttls".into(),
            username: String::new(),
            password: String::new(),
            from: String::new(),
        }
    }
}

impl Stored for EmailSettings {
    const KEY: &'static str = "console:email";
    const FIELDS: &'static [&'static str] =
        &["host", "port", "security", "username", "password", "from"];
    const SECRETS: &'static [&'static str] = &["password"];
    fn validate(&self) -> Result<(), StoreError> {
        if self.host.len() > 253 || url::Host::parse(&self.host).is_err() && !self.host.is_empty() {
            return Err(StoreError::invalid(
                "host",
                "must be a host name or an IP address",
            ));
        }
        if !(1..=65_535).contains(&self.port) {
            return Err(StoreError::invalid("port", "must be from 1 to 65535"));
        }
        if !SECURITY.contains(&self.security.as_str()) {
            return Err(StoreError::invalid(
                "security",
                "must be none, starttls or tls",
            ));
        }
        if self.username.chars().count() > 254 || self.username.chars().any(char::is_control) {
            return Err(StoreError::invalid(
                "username",
                "must be at most 254 characters, no control characters",
            ));
        }
        if self.password.chars().count() > 1024 {
            return Err(StoreError::invalid(
                "password",
                "must be at most 1024 characters",
            ));
        }
        if !self.from.is_empty() && self.from.parse::<Mailbox>().is_err() {
            return Err(StoreError::invalid("from", "is not a valid email address"));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRequest {
    to: String,
}

/// Sends one message with the stored settings.
pub async fn send(
    settings: &EmailSettings,
    to: Mailbox,
    subject: &str,
    body: String,
) -> Result<(), StoreError> {
    if settings.host.is_empty() {
        return Err(StoreError::invalid("host", "set the SMTP host first"));
    }
    let from: Mailbox = settings
        .from
        .parse()
        .map_err(|_| StoreError::invalid("from", "set a valid from address first"))?;
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .body(body)
        .map_err(|e| StoreError::invalid("to", e.to_string()))?;
    let host = settings.host.clone();
    let tls = |h: &str| {
        TlsParameters::new(h.to_owned()).map_err(|e| StoreError::SmtpFailed {
            reply: e.to_string(),
        })
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
        .port(settings.port as u16)
        .timeout(Some(Duration::from_secs(20)))
        .tls(match settings.security.as_str() {
            "starttls" => Tls::Required(tls(&host)?),
            "tls" => Tls::Wrapper(tls(&host)?),
            _ => Tls::None,
        });
    if !settings.username.is_empty() {
        builder = builder.credentials(Credentials::new(
            settings.username.clone(),
            settings.password.clone(),
        ));
    }
    let transport = builder.build();
    transport
        .send(message)
        .await
        .map_err(|e| StoreError::SmtpFailed {
            reply: e.to_string(),
        })?;
    Ok(())
}

/// `email/test {"to": "..."}`: sends a test message, recorded in the audit log.
pub async fn send_test(db: &Db, ctx: &Ctx, body: Value) -> Result<Value, StoreError> {
    let setting = Setting::Email;
    let target = Target {
        kind: "setting",
        id: Some(setting.as_str().to_owned()),
        name: None,
    };
    ctx.authorize(
        db,
        Action::ChangeSetting {
            setting,
            field: None,
        },
        Resource::instance(),
        &target,
    )
    .await
    .map(drop)?;
    let req: TestRequest = store::from_object(&["to"], body)?;
    let to: Mailbox = crate::users::validate_email(&req.to)
        .map_err(|_| StoreError::invalid("to", "is not a valid email address"))?
        .parse()
        .map_err(|_| StoreError::invalid("to", "is not a valid email address"))?;
    let settings = store::load::<EmailSettings>(db).await?;
    let text = format!(
        "This is a test message from cryowarden, sent by {} from the Admin Console.\n\nIf you can read it, outgoing email works.\n",
        ctx.who.name
    );
    send(&settings, to, "cryowarden test email", text).await?;
    ctx.record(
        db,
        cryowarden_core::Event::SendTestEmail,
        &target,
        crate::audit::Outcome::Ok,
        None,
        None,
        Some(json!({ "to": req.to })),
    )
    .await?;
    Ok(json!({ "sent": true, "to": req.to }))
}
