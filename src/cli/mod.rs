//! Command-line interface. Offline commands (`serve`, `migrate`, `admin bootstrap`,
//! `audit verify`, `config example`) take `--data-dir`; remote ones (`login`, `user`, `token`, `lab`)
//! talk to a running server at `--url` / `CRYOWARDEN_URL` with an API token.

mod console;
mod jobs;
mod labs;
mod offline;
mod projects;
mod remote;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cryowarden",
    version,
    about = "Control plane of a shared cryo-EM processing facility"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where an offline command finds the instance.
#[derive(Args, Clone, Debug)]
pub struct Offline {
    /// The data directory (database, logs, configuration).
    #[arg(long, env = "CRYOWARDEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A configuration file other than DATA_DIR/cryowarden.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Database URL (sqlite://PATH or postgres://...), overriding the configuration.
    #[arg(long, env = "CRYOWARDEN_DATABASE_URL")]
    database_url: Option<String>,
}

/// How a remote command reaches the server.
#[derive(Args, Clone, Debug)]
pub struct Remote {
    /// The server's URL (default: the one saved by `cryowarden login`).
    #[arg(long, env = "CRYOWARDEN_URL")]
    url: Option<String>,
    /// An API token (default: the one saved by `cryowarden login`).
    #[arg(long, env = "CRYOWARDEN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

impl Remote {
    /// The URL given, if any: an empty flag or variable counts as not given.
    fn url(&self) -> Option<String> {
        self.url.clone().filter(|u| !u.is_empty())
    }
    fn token(&self) -> Option<String> {
        self.token.clone().filter(|t| !t.is_empty())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (defaults: ./cryowarden-data, SQLite, 127.0.0.1:39000).
    Serve {
        #[command(flatten)]
        offline: Offline,
        /// Address to listen on.
        #[arg(long, env = "CRYOWARDEN_LISTEN")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Apply database migrations (or show their status).
    Migrate {
        #[command(flatten)]
        offline: Offline,
        #[arg(long)]
        status: bool,
    },
    /// Configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Offline administration.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The admin console: settings and diagnostics, as your role may see and change them.
    #[command(subcommand)]
    Console(console::ConsoleCommand),
    /// Sign in to a server and save an API token for the other remote commands.
    Login {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        username: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Write the diagnostic report (logs, runtime and browser diagnostics) to a zip, offline.
    Report {
        #[command(flatten)]
        offline: Offline,
        /// The zip to write.
        #[arg(short, long, default_value = "cryowarden-report.zip")]
        output: PathBuf,
    },
    /// Users (remote).
    #[command(subcommand)]
    User(remote::UserCommand),
    /// Labs (site groups): members, storage roots, Unix account (remote).
    #[command(subcommand)]
    Lab(labs::LabCommand),
    /// Cluster targets in CryoSPARC's format: example, connect, dump, remove.
    #[command(subcommand)]
    Cluster(jobs::ClusterCommand),
    /// Lanes: list, add, remove (remote).
    #[command(subcommand)]
    Lane(jobs::LaneCommand),
    /// Jobs: create, queue, kill, clear, list, show, log (remote).
    #[command(subcommand)]
    Job(jobs::JobCommand),
    /// Projects: create, list, show, members (remote).
    #[command(subcommand)]
    Project(projects::ProjectCommand),
    /// Your API tokens (remote).
    #[command(subcommand)]
    Token(remote::TokenCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print a commented configuration file with every default.
    Example,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create the first Site Admin offline; refuses if one exists.
    Bootstrap {
        #[command(flatten)]
        offline: Offline,
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        first_name: String,
        #[arg(long, default_value = "")]
        last_name: String,
        /// Read the password from standard input (required: no password on the command line).
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain: "ok, N events" or the first broken event (offline, on the data dir).
    Verify {
        #[command(flatten)]
        offline: Offline,
        #[arg(long)]
        json: bool,
    },
    /// Events, newest first, filtered (from a running server).
    Log {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        filter: console::AuditFilter,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// The whole filtered log as CSV or JSON on standard output (recorded as an export).
    Export {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        filter: console::AuditFilter,
        /// csv or json.
        #[arg(long, default_value = "csv")]
        format: String,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { offline, listen } => offline::serve(offline, listen).await,
        Command::Migrate { offline, status } => offline::migrate(offline, status).await,
        Command::Config(ConfigCommand::Example) => {
            print!("{}", cryowarden_server::Config::example());
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin(AdminCommand::Bootstrap {
            offline,
            username,
            email,
            first_name,
            last_name,
            password_stdin,
        }) => {
            offline::bootstrap(
                offline,
                username,
                email,
                first_name,
                last_name,
                password_stdin,
            )
            .await
        }
        Command::Audit(AuditCommand::Verify { offline, json }) => {
            offline::audit_verify(offline, json).await
        }
        Command::Audit(AuditCommand::Log {
            remote,
            filter,
            limit,
        }) => console::audit_log(remote, filter, limit).await,
        Command::Audit(AuditCommand::Export {
            remote,
            filter,
            format,
        }) => console::audit_export(remote, filter, format).await,
        Command::Console(cmd) => console::console(cmd).await,
        Command::Login {
            remote,
            username,
            password_stdin,
        } => remote::login(remote, username, password_stdin).await,
        Command::Report { offline, output } => offline::report(offline, output).await,
        Command::User(cmd) => remote::user(cmd).await,
        Command::Token(cmd) => remote::token(cmd).await,
        Command::Lab(cmd) => labs::lab(cmd).await,
        Command::Project(cmd) => projects::project(cmd).await,
        Command::Lane(cmd) => jobs::lane(cmd).await,
        Command::Cluster(cmd) => jobs::cluster(cmd).await,
        Command::Job(cmd) => jobs::job(cmd).await,
    }
}
