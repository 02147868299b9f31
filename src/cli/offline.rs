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
    cryowarden_server::datadir::create_private_dir(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let db = Db::connect(&config.database_url())
        .await
        .with_context(|| format!("opening {}", config.redacted_database_url()))?;
    db.migrate().await.context("applying migrations")?;
    Ok(db)
}

pub async fn serve(
    offline: Offline,
    listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let mut config = load(&offline)?;
    if let Some(l) = listen {
        config.listen = l;
    }
    // Every service writes its own rotated file under DATA_DIR/logs (the Instance Logs view
    // and the report read them), and the console shows the same lines.
    // The data directory is the server account's alone: created 0700, refused when others can
    // reach it, and everything the server creates in it private.
    cryowarden_server::datadir::prepare_for_serve(&config.data_dir)?;
    cryowarden_server::datadir::private_umask();
    let _logs = cryowarden_server::logs::init(
        &cryowarden_server::logs::log_dir(&config.data_dir),
        &config.log,
        true,
    )?;
    cryowarden_server::serve(config).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn migrate(offline: Offline, status: bool) -> anyhow::Result<ExitCode> {
    let config = load(&offline)?;
    let db = open(&config).await?;
    if status {
        for (version, description, applied) in db.migration_status().await? {
            println!(
                "{version:>4}  {}  {description}",
                if applied { "applied" } else { "pending" }
            );
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
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_owned();
    let config = load(&offline)?;
    let db = open(&config).await?;
    let hasher = passwords::Hasher::new(1);
    let new = NewUser {
        username,
        email,
        first_name,
        last_name,
        site_role: None,
    };
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
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

pub async fn report(offline: Offline, output: std::path::PathBuf) -> anyhow::Result<ExitCode> {
    use cryowarden_server::logs;
    let config = load(&offline)?;
    // The database may be down: that is often why the offline report is wanted.
    let database = match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        Db::connect(&config.database_url()),
    )
    .await
    {
        Ok(Ok(db)) => {
            serde_json::json!({ "backend": db.backend.name(), "url": config.redacted_database_url(), "reachable": true })
        }
        Ok(Err(e)) => {
            serde_json::json!({ "url": config.redacted_database_url(), "reachable": false, "error": e.to_string() })
        }
        Err(_) => {
            serde_json::json!({ "url": config.redacted_database_url(), "reachable": false, "error": "timed out after 5 s" })
        }
    };
    let runtime = logs::runtime_diagnostics(
        serde_json::json!({ "database": database, "lanes": [], "generated_by": "cryowarden report (offline)" }),
    );
    let browser =
        serde_json::json!({ "note": "generated offline by the CLI: no browser involved" });
    let dir = logs::log_dir(&config.data_dir);
    // Logs name users and addresses: the report file is its owner's alone.
    let file = cryowarden_server::datadir::private_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&output)
        .with_context(|| format!("creating {}", output.display()))?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} {wide_bar} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let out = output.clone();
    let written = tokio::task::spawn_blocking(move || {
        let mut progress = |done: u64, total: u64| {
            bar.set_length(total);
            bar.set_position(done);
        };
        let result = logs::write_report(
            std::io::BufWriter::new(file),
            &dir,
            &runtime,
            &browser,
            &mut progress,
        );
        bar.finish_and_clear();
        result
    })
    .await?;
    let mut writer = written.with_context(|| format!("writing {}", out.display()))?;
    std::io::Write::flush(&mut writer)?;
    println!("report written to {}", output.display());
    Ok(ExitCode::SUCCESS)
}
