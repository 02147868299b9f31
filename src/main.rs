//! The `cryowarden` binary: one subcommand per role. See `cli` for the commands.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
