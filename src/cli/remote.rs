//! Commands that talk to a running server over its REST API with an API token.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::Remote;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; prints the registration token to deliver to them.
    Create {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        first_name: String,
        #[arg(long, default_value = "")]
        last_name: String,
        /// site_admin, application_admin, impersonating_troubleshooter, troubleshooter or none.
        #[arg(long)]
        role: Option<String>,
    },
    /// List users.
    List {
        #[command(flatten)]
        remote: Remote,
        /// Filter by username, email or name.
        #[arg(long)]
        filter: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: i64,
        #[arg(long, default_value_t = 50)]
        per_page: i64,
    },
    /// Show one user (by id or username).
    Show {
        #[command(flatten)]
        remote: Remote,
        user: String,
    },
    /// Change a user's site role.
    SetRole {
        #[command(flatten)]
        remote: Remote,
        user: String,
        role: String,
        /// Confirm removing your own Application Admin role.
        #[arg(long)]
        confirm: bool,
    },
    /// Deactivate a user (signs them out everywhere).
    Deactivate {
        #[command(flatten)]
        remote: Remote,
        user: String,
    },
    /// Activate a deactivated user.
    Activate {
        #[command(flatten)]
        remote: Remote,
        user: String,
    },
    /// Delete a user at once and permanently.
    Delete {
        #[command(flatten)]
        remote: Remote,
        user: String,
        /// Required: deletion cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Issue a new registration or reset token for a user.
    ResetToken {
        #[command(flatten)]
        remote: Remote,
        user: String,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token (the secret is printed once).
    Create {
        #[command(flatten)]
        remote: Remote,
        name: String,
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
    /// List your API tokens.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke one of your API tokens.
    Revoke {
        #[command(flatten)]
        remote: Remote,
        id: i64,
    },
}

/// Where `cryowarden login` keeps the server URL and token (mode 0600).
fn credentials_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("cryowarden").join("credentials.json")
}

pub(super) struct Client {
    http: reqwest::Client,
    pub(super) url: String,
    token: String,
    pub(super) json: bool,
}

impl Client {
    pub(super) fn new(remote: &Remote) -> anyhow::Result<Client> {
        let saved: Option<Value> = std::fs::read_to_string(credentials_path())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let from_saved = |k: &str| {
            saved
                .as_ref()
                .and_then(|v| v[k].as_str())
                .map(str::to_owned)
        };
        let url = remote
            .url()
            .or_else(|| from_saved("url"))
            .context("no server URL: pass --url, set CRYOWARDEN_URL, or run `cryowarden login`")?;
        let token = remote
            .token()
            .or_else(|| from_saved("token"))
            .context("no API token: set CRYOWARDEN_TOKEN or run `cryowarden login`")?;
        Ok(Client {
            http: reqwest::Client::new(),
            url: url.trim_end_matches('/').to_owned(),
            token,
            json: remote.json,
        })
    }

    pub(super) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}: is the server running?", self.url))?;
        answer(resp).await
    }

    /// A GET whose answer is text (an export), or the server's problem as an error.
    pub(super) async fn send_text(&self, path: &str) -> anyhow::Result<String> {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach {}: is the server running?", self.url))?;
        if resp.status().is_success() {
            return Ok(resp.text().await?);
        }
        answer(resp).await.map(|v| v.to_string())
    }

    /// A user id from an id or a username.
    pub(super) async fn user_id(&self, user: &str) -> anyhow::Result<i64> {
        if let Ok(id) = user.parse() {
            return Ok(id);
        }
        let page = self
            .send(
                reqwest::Method::GET,
                &format!("/api/v1/users?q={}&per_page=500", urlencode(user)),
                None,
            )
            .await?;
        page["users"]
            .as_array()
            .and_then(|us| {
                us.iter().find(|u| {
                    u["username"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(user))
                })
            })
            .and_then(|u| u["id"].as_i64())
            .with_context(|| format!("no user named {user} that you can see"))
    }
}

pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn answer(resp: reqwest::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let value: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    if status.is_success() {
        return Ok(value);
    }
    let detail = value["detail"].as_str().unwrap_or("no detail");
    let code = value["code"].as_str().unwrap_or("error");
    bail!("{} {code}: {detail}", status.as_u16())
}

fn print_user(u: &Value) {
    println!(
        "{:>5}  {:<20} {:<32} {:<28} {:<12} {}",
        u["id"],
        s(&u["username"]),
        s(&u["email"]),
        s(&u["site_role"]),
        s(&u["status"]),
        format!("{} {}", s(&u["first_name"]), s(&u["last_name"])).trim()
    );
}

pub(super) fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(super) fn emit(json: bool, value: &Value, text: impl FnOnce(&Value)) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        text(value);
    }
}

pub async fn login(
    remote: Remote,
    username: String,
    password_stdin: bool,
) -> anyhow::Result<ExitCode> {
    if !password_stdin {
        bail!("pass --password-stdin and send the password on standard input");
    }
    let url = remote
        .url
        .clone()
        .context("pass --url or set CRYOWARDEN_URL")?
        .trim_end_matches('/')
        .to_owned();
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password)?;
    let password = password.trim_end_matches(['\n', '\r']).to_owned();
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let cookie = resp
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .map(str::to_owned);
    let session = answer(resp).await?;
    let cookie = cookie.context("the server set no session cookie")?;
    let csrf = session["csrf_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "cli".into());
    let created = answer(
        http.post(format!("{url}/api/v1/tokens"))
            .header(reqwest::header::COOKIE, &cookie)
            .header("X-CSRF-Token", &csrf)
            .json(&json!({ "name": format!("cryowarden login on {host}") }))
            .send()
            .await?,
    )
    .await?;
    let _ = http
        .post(format!("{url}/api/v1/auth/logout"))
        .header(reqwest::header::COOKIE, &cookie)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await;
    let token = created["secret"]
        .as_str()
        .context("the server returned no token")?;
    let path = credentials_path();
    save_private(
        &path,
        &serde_json::to_string_pretty(&json!({ "url": url, "token": token }))?,
    )?;
    println!(
        "signed in as {username}; API token saved to {}",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes a file readable only by its owner.
fn save_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub async fn user(cmd: UserCommand) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    match cmd {
        UserCommand::Create {
            remote,
            username,
            email,
            first_name,
            last_name,
            role,
        } => {
            let c = Client::new(&remote)?;
            let v = c.send(Method::POST, "/api/v1/users", Some(json!({ "username": username, "email": email, "first_name": first_name, "last_name": last_name, "site_role": role }))).await?;
            emit(c.json, &v, |v| {
                println!(
                    "created user {} (id {})",
                    s(&v["user"]["username"]),
                    v["user"]["id"]
                );
                println!(
                    "registration token (deliver it; expires {}): {}",
                    s(&v["registration"]["expires_at"]),
                    s(&v["registration"]["token"])
                );
                println!("register at: {}{}", c.url, s(&v["registration"]["path"]));
            });
        }
        UserCommand::List {
            remote,
            filter,
            page,
            per_page,
        } => {
            let c = Client::new(&remote)?;
            let mut path = format!("/api/v1/users?page={page}&per_page={per_page}");
            if let Some(f) = filter {
                path.push_str(&format!("&q={}", urlencode(&f)));
            }
            let v = c.send(Method::GET, &path, None).await?;
            emit(c.json, &v, |v| {
                for u in v["users"].as_array().into_iter().flatten() {
                    print_user(u);
                }
                println!("page {} of {} users", v["page"], v["total"]);
            });
        }
        UserCommand::Show { remote, user } => {
            let c = Client::new(&remote)?;
            let id = c.user_id(&user).await?;
            let v = c
                .send(Method::GET, &format!("/api/v1/users/{id}"), None)
                .await?;
            emit(c.json, &v, |v| {
                for (k, val) in v.as_object().into_iter().flatten() {
                    println!("{k:<24} {}", s(val));
                }
            });
        }
        UserCommand::SetRole {
            remote,
            user,
            role,
            confirm,
        } => {
            let c = Client::new(&remote)?;
            let id = c.user_id(&user).await?;
            let v = c
                .send(
                    Method::PATCH,
                    &format!("/api/v1/users/{id}"),
                    Some(json!({ "site_role": role, "confirm": confirm })),
                )
                .await?;
            emit(c.json, &v, |v| {
                println!("{} is now {}", s(&v["username"]), s(&v["site_role"]));
            });
        }
        UserCommand::Deactivate { remote, user } => set_status(remote, user, "deactivated").await?,
        UserCommand::Activate { remote, user } => set_status(remote, user, "active").await?,
        UserCommand::Delete { remote, user, yes } => {
            if !yes {
                bail!("deleting a user is immediate and permanent: pass --yes to go ahead");
            }
            let c = Client::new(&remote)?;
            let id = c.user_id(&user).await?;
            c.send(Method::DELETE, &format!("/api/v1/users/{id}"), None)
                .await?;
            emit(c.json, &json!({ "deleted": id }), |_| {
                println!("deleted user {user}");
            });
        }
        UserCommand::ResetToken { remote, user } => {
            let c = Client::new(&remote)?;
            let id = c.user_id(&user).await?;
            let v = c
                .send(
                    Method::POST,
                    &format!("/api/v1/users/{id}/reset-token"),
                    None,
                )
                .await?;
            emit(c.json, &v, |v| {
                println!(
                    "{} token (deliver it; expires {}): {}",
                    s(&v["kind"]),
                    s(&v["expires_at"]),
                    s(&v["token"])
                );
                println!("at: {}{}", c.url, s(&v["path"]));
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_status(remote: Remote, user: String, status: &str) -> anyhow::Result<()> {
    let c = Client::new(&remote)?;
    let id = c.user_id(&user).await?;
    let v = c
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(json!({ "status": status })),
        )
        .await?;
    emit(c.json, &v, |v| {
        println!("{} is now {}", s(&v["username"]), s(&v["status"]));
    });
    Ok(())
}

pub async fn token(cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    match cmd {
        TokenCommand::Create {
            remote,
            name,
            expires_in_days,
        } => {
            let c = Client::new(&remote)?;
            let v = c
                .send(
                    Method::POST,
                    "/api/v1/tokens",
                    Some(json!({ "name": name, "expires_in_days": expires_in_days })),
                )
                .await?;
            emit(c.json, &v, |v| {
                println!(
                    "token {} created; its secret, shown once:\n{}",
                    v["id"],
                    s(&v["secret"])
                );
            });
        }
        TokenCommand::List { remote } => {
            let c = Client::new(&remote)?;
            let v = c.send(Method::GET, "/api/v1/tokens", None).await?;
            emit(c.json, &v, |v| {
                for t in v.as_array().into_iter().flatten() {
                    let state = if t["revoked"].as_bool() == Some(true) {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{:>5}  {:<32} {}…  {:<8} created {}  last used {}",
                        t["id"],
                        s(&t["name"]),
                        s(&t["prefix"]),
                        state,
                        s(&t["created_at"]),
                        s(&t["last_used_at"])
                    );
                }
            });
        }
        TokenCommand::Revoke { remote, id } => {
            let c = Client::new(&remote)?;
            c.send(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
                .await?;
            emit(c.json, &json!({ "revoked": id }), |_| {
                println!("revoked token {id}");
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
