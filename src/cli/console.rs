//! `cryowarden console` and the remote `audit` commands: the admin console's settings and
//! diagnostics, and the audit log, over the REST API (what the caller may see and change is
//! decided by the server, as on the pages).

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value};

use super::Remote;
use super::remote::{Client, emit, s, urlencode};

#[derive(Subcommand)]
pub enum ConsoleCommand {
    /// The settings you may see, with your access (all or read-only), by group.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// One setting's values (secrets shown as ***), or a diagnostic's content.
    Show {
        #[command(flatten)]
        remote: Remote,
        /// The setting, e.g. authentication, terms-of-use, environment-variables.
        key: String,
    },
    /// Change fields of a setting: FIELD=VALUE, VALUE read as JSON when it parses (numbers,
    /// true/false, null, ["lists"]), else as text.
    Set {
        #[command(flatten)]
        remote: Remote,
        key: String,
        #[arg(required = true, value_name = "FIELD=VALUE")]
        fields: Vec<String>,
    },
    /// Run an action of a setting, e.g. `email test --body '{"to":"me@x"}'`,
    /// `check-database backup`, `site-errors reset`.
    Run {
        #[command(flatten)]
        remote: Remote,
        key: String,
        action: String,
        /// The action's JSON body.
        #[arg(long)]
        body: Option<String>,
    },
}

/// The audit log's filters (as the API and the Audit Log page take them).
#[derive(Args, Clone, Debug, Default)]
pub struct AuditFilter {
    #[arg(long)]
    actor: Option<String>,
    /// The real person behind an impersonated session.
    #[arg(long)]
    impersonator: Option<String>,
    /// An action name, or a prefix ending in `*`.
    #[arg(long)]
    action: Option<String>,
    #[arg(long)]
    target: Option<String>,
    /// ok or denied.
    #[arg(long)]
    outcome: Option<String>,
    /// RFC 3339 time (inclusive).
    #[arg(long)]
    from: Option<String>,
    /// RFC 3339 time (exclusive).
    #[arg(long)]
    to: Option<String>,
}

impl AuditFilter {
    fn query(&self) -> String {
        [
            ("actor", &self.actor),
            ("impersonator", &self.impersonator),
            ("action", &self.action),
            ("target", &self.target),
            ("outcome", &self.outcome),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", urlencode(v))))
        .collect::<Vec<_>>()
        .join("&")
    }
}

fn parse_fields(fields: &[String]) -> anyhow::Result<Value> {
    let mut body = Map::new();
    for f in fields {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("`{f}`: write FIELD=VALUE"))?;
        if k.is_empty() {
            bail!("`{f}`: the field name is empty");
        }
        body.insert(
            k.to_owned(),
            serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned())),
        );
    }
    Ok(Value::Object(body))
}

fn print_value(v: &Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Object(_) | Value::Array(_) => {
                        println!("{k}: {}", serde_json::to_string(v).unwrap_or_default());
                    }
                    other => println!("{k}: {}", s(other)),
                }
            }
        }
        other => println!(
            "{}",
            serde_json::to_string_pretty(other).unwrap_or_default()
        ),
    }
}

pub async fn console(cmd: ConsoleCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConsoleCommand::List { remote } => {
            let c = Client::new(&remote)?;
            let rows = c.send(Method::GET, "/api/v1/console", None).await?;
            emit(c.json, &rows, |rows| {
                for r in rows.as_array().into_iter().flatten() {
                    let partial = r["read_only_fields"]
                        .as_array()
                        .filter(|a| !a.is_empty())
                        .map(|a| {
                            format!(
                                " (read-only: {})",
                                a.iter().map(s).collect::<Vec<_>>().join(", ")
                            )
                        });
                    println!(
                        "{:<15} {:<26} {:<10} {}{}",
                        s(&r["group"]),
                        s(&r["key"]),
                        s(&r["access"]),
                        s(&r["title"]),
                        partial.unwrap_or_default()
                    );
                }
            });
        }
        ConsoleCommand::Show { remote, key } => {
            let c = Client::new(&remote)?;
            let row = c
                .send(
                    Method::GET,
                    &format!("/api/v1/console/{}", urlencode(&key)),
                    None,
                )
                .await?;
            emit(c.json, &row, |row| {
                println!("{} ({})", s(&row["key"]), s(&row["access"]));
                print_value(&row["value"]);
            });
        }
        ConsoleCommand::Set {
            remote,
            key,
            fields,
        } => {
            let body = parse_fields(&fields)?;
            let c = Client::new(&remote)?;
            let row = c
                .send(
                    Method::PUT,
                    &format!("/api/v1/console/{}", urlencode(&key)),
                    Some(body),
                )
                .await?;
            emit(c.json, &row, |row| print_value(&row["value"]));
        }
        ConsoleCommand::Run {
            remote,
            key,
            action,
            body,
        } => {
            let body: Value = match body {
                Some(b) => serde_json::from_str(&b).context("--body must be JSON")?,
                None => Value::Object(Map::new()),
            };
            let c = Client::new(&remote)?;
            let path = format!("/api/v1/console/{}/{}", urlencode(&key), urlencode(&action));
            let value = c.send(Method::POST, &path, Some(body)).await?;
            emit(c.json, &value, print_value);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `audit log`: events newest first, filtered, `limit` of them.
pub async fn audit_log(
    remote: Remote,
    filter: AuditFilter,
    limit: i64,
) -> anyhow::Result<ExitCode> {
    let c = Client::new(&remote)?;
    let q = filter.query();
    let page = c
        .send(
            Method::GET,
            &format!("/api/v1/audit?limit={limit}&{q}"),
            None,
        )
        .await?;
    emit(c.json, &page["events"], |events| {
        for e in events.as_array().into_iter().flatten() {
            let who = match e["impersonator"].as_str() {
                Some(by) => format!("{by} as {}", s(&e["actor"])),
                None => s(&e["actor"]),
            };
            println!(
                "{:>7}  {}  {:<24} {:<40} {:<24} {}",
                e["seq"],
                s(&e["at"]),
                who,
                s(&e["action"]),
                s(&e["target"]),
                s(&e["outcome"])
            );
        }
    });
    Ok(ExitCode::SUCCESS)
}

/// `audit export`: the whole filtered log as CSV or JSON on standard output.
pub async fn audit_export(
    remote: Remote,
    filter: AuditFilter,
    format: String,
) -> anyhow::Result<ExitCode> {
    let c = Client::new(&remote)?;
    let text = c
        .send_text(&format!(
            "/api/v1/audit/export?format={}&{}",
            urlencode(&format),
            filter.query()
        ))
        .await?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
