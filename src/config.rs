//! Command-line and environment settings. Every setting is a flag with an environment fallback,
//! checked before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::domain::policy::parse_duration;

/// leadgate: the single qualification authority for B2B leads.
#[derive(Debug, Parser)]
#[command(name = "leadgate", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (SQLite file in the working directory unless told otherwise).
    Serve(ServeArgs),
    /// Apply database migrations and exit (for a Kubernetes Job).
    Migrate(DatabaseArgs),
    /// Check or print qualification policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file offline: every problem with its key and line.
    Check {
        /// The TOML policy file.
        file: PathBuf,
    },
    /// Print the policy that ships with leadgate.
    Default,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Where leads are stored: sqlite://FILE or postgres://USER@HOST/DB.
    #[arg(long, env = "LEADGATE_DATABASE_URL", default_value = "sqlite://leadgate.db")]
    pub database_url: String,
    /// Most PostgreSQL connections this process holds.
    #[arg(long, env = "LEADGATE_DB_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,
    /// How long a call waits for a database connection before failing with UNAVAILABLE.
    #[arg(long, env = "LEADGATE_DB_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub db_acquire_timeout: Duration,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable, coloured on a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address the gRPC server listens on.
    #[arg(long, env = "LEADGATE_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The qualification policy (TOML); the shipped default when not given.
    #[arg(long, env = "LEADGATE_POLICY")]
    pub policy: Option<PathBuf>,
    /// How long in-flight calls may finish after SIGTERM before the server closes them.
    #[arg(long, env = "LEADGATE_DRAIN_TIMEOUT", default_value = "20s", value_parser = duration)]
    pub drain_timeout: Duration,
    /// How often SLA breaches and nurture revisits that fell due are recorded.
    #[arg(long, env = "LEADGATE_SWEEP_INTERVAL", default_value = "1s", value_parser = duration)]
    pub sweep_interval: Duration,
    /// How long request ids are remembered for idempotent retries (at least 24h).
    #[arg(long, env = "LEADGATE_IDEMPOTENCY_RETENTION", default_value = "72h", value_parser = duration)]
    pub idempotency_retention: Duration,
    /// Serve gRPC server reflection (lets grpcurl work without the proto files).
    #[arg(long, env = "LEADGATE_REFLECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub reflection: bool,
    /// Log format.
    #[arg(long, env = "LEADGATE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl ServeArgs {
    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.drain_timeout.is_zero() || self.drain_timeout > Duration::from_secs(600) {
            return Err("--drain-timeout must be between 1s and 10m".into());
        }
        if self.sweep_interval < Duration::from_millis(100) || self.sweep_interval > Duration::from_secs(3600)
        {
            return Err("--sweep-interval must be between 100ms and 1h".into());
        }
        if self.idempotency_retention < Duration::from_secs(24 * 3600) {
            return Err("--idempotency-retention must be at least 24h".into());
        }
        Ok(())
    }
}
