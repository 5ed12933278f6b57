//! The `leadgate` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use leadgate::cli::args::{AuthCommand, Cli, Command, PolicyCommand};
use leadgate::cli::client;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(args) => runtime.block_on(leadgate::cli::serve(*args)),
        Command::Migrate(args) => runtime.block_on(leadgate::cli::migrate(args)),
        Command::Policy { command } => match command {
            PolicyCommand::Check { file } => leadgate::cli::policy_check(&file),
            PolicyCommand::Default => {
                print!("{}", leadgate::domain::policy::DEFAULT_POLICY);
                ExitCode::SUCCESS
            }
        },
        Command::Leads {
            client: args,
            command,
        } => runtime.block_on(client::leads(args, command)),
        Command::Audit {
            client: args,
            command,
        } => runtime.block_on(client::audit(args, command)),
        Command::Funnel(args) => runtime.block_on(client::funnel(args)),
        Command::Health {
            client: args,
            service,
        } => runtime.block_on(client::health(args, service)),
        Command::Auth { command } => match command {
            AuthCommand::NewToken { principal, roles } => leadgate::cli::new_token(&principal, &roles),
            AuthCommand::HashToken => leadgate::cli::hash_token(),
            AuthCommand::NewAuditKey { id } => leadgate::cli::new_audit_key(&id),
        },
    }
}
