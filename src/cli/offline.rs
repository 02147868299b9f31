//! Commands that work on the data directory directly, with or without a running server.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use cryowarden_server::config::Config;
use cryowarden_server::db::Db;
use cryowarden_server::users::NewUser;
use cryowarden_server::{audit, auth, passwords};

use super::Offline;

fn load(offline: &Offline) -> anyhow::Result<Config> {
    let mut config = Config::load(offline.data_dir.as_deref(), offline.config.as_deref())?;
    if let Some(url) = &offline.database_url {
        config.database_url = url.clone();
    }
    Ok(config)
}

async fn open(config: &Config) -> anyhow::Result<Db> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating {}", config.data_dir.display()))?;
    let db = Db::connect(&config.database_url())
        .await
        .with_context(|| format!("opening {}", config.redacted_database_url()))?;
    db.migrate().await.context("applying migrations")?;
    Ok(db)
}

fn init_logging(filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

pub async fn serve(offline: Offline, listen: Option<std::net::SocketAddr>) -> anyhow::Result<ExitCode> {
    let mut config = load(&offline)?;
    if let Some(l) = listen {
        config.listen = l;
    }
    init_logging(&config.log);
    cryowarden_server::serve(config).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn migrate(offline: Offline, status: bool) -> anyhow::Result<ExitCode> {
    let config = load(&offline)?;
    let db = open(&config).await?;
    if status {
        for (version, description, applied) in db.migration_status().await? {
            println!("{version:>4}  {}  {description}", if applied { "applied" } else { "pending" });
        }
    } else {
        println!("migrations applied to {}", config.redacted_database_url());
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn bootstrap(
    offline: Offline,
    username: String,
    email: String,
    first_name: String,
    last_name: String,
    password_stdin: bool,
) -> anyhow::Result<ExitCode> {
    if !password_stdin {
        anyhow::bail!(
            "pass --password-stdin and send the password on standard input (it never goes on the command line)"
        );
    }
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_owned();
    let config = load(&offline)?;
    let db = open(&config).await?;
    let hasher = passwords::Hasher::new(1);
    let new = NewUser { username, email, first_name, last_name, site_role: None };
    match auth::bootstrap_site_admin(&db, &hasher, new, password).await {
        Ok(user) => {
            println!("created Site Admin {} (id {})", user.username, user.id);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

pub async fn audit_verify(offline: Offline, json: bool) -> anyhow::Result<ExitCode> {
    let config = load(&offline)?;
    let db = open(&config).await?;
    let report = audit::verify(&db).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(3) })
}
