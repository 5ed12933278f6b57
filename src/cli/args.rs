//! The command line: every command, and every setting as a flag with an environment fallback.
//! What the types cannot check is checked when the settings become a [`ServerConfig`]
//! (`TryFrom<&ServeArgs>` in `cli::ops`), before anything starts.
//!
//! [`ServerConfig`]: crate::server::ServerConfig

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::domain::duration::parse_duration;
use crate::telemetry::LogFormat;

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
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit (for a Kubernetes Job).
    Migrate(MigrateArgs),
    /// Check or print qualification policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Read leads from a running server.
    Leads {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: LeadsCommand,
    },
    /// Query, export, verify and follow the audit trail of a running server.
    Audit {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the funnel of a period: stages, conversion, speed to lead, SLA breaches.
    Funnel(FunnelArgs),
    /// Ask a server's health service; exits 0 when SERVING (a Docker HEALTHCHECK).
    Health {
        #[command(flatten)]
        client: ClientArgs,
        /// The service to ask about: "" (ready: the database answers) or "liveness".
        #[arg(long, default_value = "")]
        service: String,
    },
    /// Make bearer tokens for the server's configuration.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Print a new random token, and the hash to configure for it.
    NewToken {
        /// The principal the token will stand for.
        #[arg(long, default_value = "PRINCIPAL")]
        principal: String,
        /// Its roles, joined with + (submitter, sales, manager, analyst, admin).
        #[arg(long, default_value = "ROLE")]
        roles: String,
    },
    /// Read a token on standard input and print its hash.
    HashToken,
    /// Print a new random key for sealing the audit trail, as ID:BASE64 (LEADGATE_AUDIT_KEYS).
    NewAuditKey {
        /// The key's id, recorded with every seal it makes (e.g. the month it was made).
        #[arg(long, default_value = "k1")]
        id: String,
    },
}

/// How client commands reach the server.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The server's address.
    #[arg(
        long,
        global = true,
        env = "LEADGATE_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// A bearer token to authenticate with.
    #[arg(long, global = true, env = "LEADGATE_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,
}

#[derive(Debug, Subcommand)]
pub enum LeadsCommand {
    /// List leads, newest first unless told otherwise.
    List {
        /// A ListLeads filter, e.g. 'state = NURTURING AND source.channel = TRADE_SHOW'.
        #[arg(long, default_value = "")]
        filter: String,
        /// create_time, create_time desc, update_time, update_time desc, scores.combined_points desc.
        #[arg(long, default_value = "create_time desc")]
        order_by: String,
        /// At most this many leads (all pages are read up to it).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one lead.
    Show {
        /// leads/{id}, or just the id.
        name: String,
    },
    /// Explain a lead's scores and state line by line.
    Explain {
        /// leads/{id}, or just the id.
        name: String,
    },
    /// Find leads by email, company or external reference; printed as `leads list` prints them.
    /// Several options must all hold.
    #[command(group = clap::ArgGroup::new("what").required(true).multiple(true))]
    Search(SearchArgs),
    /// Correct a lead's contact or company data (UpdateLead); prints the lead after it.
    ///
    /// Each --set names a field and its new value; an empty value clears the field (the email
    /// cannot be cleared). Fields: contact.email, contact.given_name, contact.family_name,
    /// contact.phone, contact.job_title, contact.seniority (e.g. DIRECTOR), contact.job_function,
    /// company.name, company.domain, company.industry, company.employee_count (0: unknown),
    /// company.country_code.
    #[command(
        after_help = "Example:\n  leadgate leads update leads/0190… --set contact.phone='+33 6 12 34 56 78' \\\n    --set company.name='Acme Industrie SA' --etag '\"3\"' --request-id fix-42"
    )]
    Update {
        /// leads/{id}, or just the id.
        name: String,
        /// FIELD=VALUE, for example contact.phone=+33612345678; repeat for several fields.
        #[arg(long = "set", value_name = "FIELD=VALUE", required = true)]
        sets: Vec<String>,
        /// Only if the lead's etag is still this one (as `leads show` prints it).
        #[arg(long)]
        etag: Option<String>,
        /// An idempotency key: retrying with it changes nothing twice.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Erase a lead's personal data (EraseLead, role privacy); prints the lead after it.
    ///
    /// Contact details, the external reference and free text go; a pseudonymous record stays for
    /// the reports and the audit trail. It cannot be undone. Erasing an erased lead changes
    /// nothing.
    #[command(
        after_help = "Example:\n  leadgate leads erase leads/0190… --reason 'data subject request DSR-2041'"
    )]
    Erase {
        /// leads/{id}, or just the id.
        name: String,
        /// Why (a ticket number): recorded in the audit trail, so no personal data.
        #[arg(long)]
        reason: String,
        /// An idempotency key: retrying with it changes nothing twice.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Print everything leadgate holds about one person as JSON (ExportLeadData, role privacy).
    #[command(group = clap::ArgGroup::new("whose").required(true))]
    Export {
        /// leads/{id}, or just the id.
        #[arg(group = "whose")]
        name: Option<String>,
        /// The person's email instead of the lead's name.
        #[arg(long, group = "whose")]
        email: Option<String>,
    },
    /// Merge a duplicate (LOSER) into another lead (WINNER) (MergeLeads); prints the winner after
    /// it. The winner takes the loser's signals, findings and contact attempts and fills its empty
    /// fields from the loser's; the loser's name and email lead to the winner from then on.
    #[command(after_help = "Example:
  leadgate leads merge leads/0190…a leads/0190…b --reason 'same person, two emails' \
    --request-id merge-17")]
    Merge {
        /// The lead that stays: leads/{id}, or just the id.
        winner: String,
        /// The duplicate merged into it: leads/{id}, or just the id.
        loser: String,
        /// Why they are one person, recorded in the audit trail.
        #[arg(long, default_value = "")]
        reason: String,
        /// Only if the winner's etag is still this one (as `leads show` prints it).
        #[arg(long)]
        winner_etag: Option<String>,
        /// Only if the loser's etag is still this one.
        #[arg(long)]
        loser_etag: Option<String>,
        /// An idempotency key: retrying with it merges nothing twice.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Import leads from a CSV or JSON-lines file (ImportLeads), a result per row.
    ///
    /// Columns (CSV header names; JSONL keys): email (required), given_name, family_name, phone,
    /// job_title, seniority, job_function, company_name, company_domain, industry,
    /// employee_count, country_code (or country), channel (required, e.g. TRADE_SHOW),
    /// campaign, external_reference. Rows are numbered from 1 in file order. Prints one summary
    /// line on stdout; exits with 2 when rows were refused. Sending a file again creates
    /// nothing twice (each row's request id comes from the import id and its number).
    #[command(
        after_help = "Examples:\n  leadgate leads import salon-2026.csv --rejected refused.csv\n  leadgate leads import leads.jsonl --dry-run\n  cat leads.csv | leadgate leads import - --format csv --import-id salon-2026"
    )]
    Import(ImportArgs),
}

/// What `leads import` reads and how it sends it.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file: .csv or .jsonl (or .ndjson); `-` reads stdin (then give --format).
    pub file: String,
    /// The file's format, when its name does not say it.
    #[arg(long, value_enum)]
    pub format: Option<ImportFormat>,
    /// The import's id (1 to 100 of A-Z a-z 0-9 . _ -); by default a hash of the file's content,
    /// so that importing the same file twice creates nothing twice.
    #[arg(long)]
    pub import_id: Option<String>,
    /// Rows per call (1 to 1000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch_size: u16,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub in_flight: u8,
    /// Validate every row and say what would happen; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write each refused row here with its reasons (CSV: the row's columns and a `reasons`
    /// column; JSONL: the line's object with a `reasons` array).
    #[arg(long, value_name = "FILE")]
    pub rejected: Option<std::path::PathBuf>,
    /// Skip columns (keys) leadgate does not know instead of refusing the file.
    #[arg(long)]
    pub ignore_unknown_columns: bool,
}

/// A file format `leads import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    Csv,
    Jsonl,
}

/// What `leads search` looks for.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The contact's email, normalised as on submission (`Jane.Doe@ACME.com` finds jane.doe@acme.com).
    #[arg(long, group = "what")]
    pub email: Option<String>,
    /// The company's domain (the email's when the lead gave none), ignoring case.
    #[arg(long, group = "what")]
    pub domain: Option<String>,
    /// The lead's external reference (CRM id), exactly.
    #[arg(long = "ref", group = "what")]
    pub reference: Option<String>,
    /// Part of the company's name, ignoring case (`acme` finds "ACME Industrie"); end it with *
    /// for names that start with it (`acme*`).
    #[arg(long, group = "what")]
    pub name: Option<String>,
    /// A ListLeads filter of its own, e.g. 'source.campaign : "launch" AND NOT state = DISQUALIFIED'.
    #[arg(long, group = "what")]
    pub filter: Option<String>,
    /// create_time, create_time desc, update_time, update_time desc, scores.combined_points desc.
    #[arg(long, default_value = "create_time desc")]
    pub order_by: String,
    /// At most this many leads (all pages are read up to it).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// How audit entries are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    /// Aligned columns, for people.
    Table,
    /// Comma-separated values with a header, for spreadsheets.
    Csv,
    /// One JSON object per line, for programs.
    Jsonl,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit entries, reading every page (with a progress indicator on a terminal).
    List {
        /// A ListAuditEvents filter, e.g. 'kind = STATE_OVERRIDDEN AND record_time >= "2026-01-01T00:00:00Z"'.
        #[arg(long, default_value = "")]
        filter: String,
        /// position or position desc.
        #[arg(long, default_value = "position")]
        order_by: String,
        #[arg(long, value_enum, default_value = "table")]
        format: AuditFormat,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Stop after this many entries.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Recompute the hash chain; exits 1 if it is broken.
    Verify {
        /// The first position to check.
        #[arg(long, default_value_t = 0)]
        from: i64,
        /// The last position to check (default: the head).
        #[arg(long, default_value_t = 0)]
        to: i64,
        /// A digest printed earlier by `leadgate audit digest` (POSITION:HASH).
        #[arg(long)]
        digest: Option<String>,
        /// At most this many entries per call (0: as many as the server checks within its time
        /// budget); a long trail takes several calls, each continuing the last.
        #[arg(long, default_value_t = 0)]
        per_call: i64,
    },
    /// Print the trail's head as POSITION:HASH, to keep outside leadgate.
    Digest,
    /// List the rows the sequencer refused to chain (written into the database by someone other
    /// than leadgate, or unreadable), newest first; exits 1 if there are any.
    Quarantine {
        /// Stop after this many rows.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// table (for people) or jsonl (one JSON object per line).
        #[arg(long, value_enum, default_value = "table")]
        format: AuditFormat,
    },
    /// Follow new entries as they are chained; reconnects by itself.
    Watch {
        /// Start after this position (0: from the first entry).
        #[arg(long, default_value_t = 0, conflicts_with = "from_head")]
        after: i64,
        /// Skip history: only entries chained from now on.
        #[arg(long)]
        from_head: bool,
        /// A filter (ListAuditEvents fields, without position).
        #[arg(long, default_value = "")]
        filter: String,
        #[arg(long, value_enum, default_value = "table")]
        format: AuditFormat,
    },
}

#[derive(Debug, Args)]
pub struct FunnelArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The start of the period (RFC 3339, or a date such as 2026-01-01).
    #[arg(long)]
    pub from: String,
    /// The end of the period (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// Only these channels (WEBSITE, TRADE_SHOW, ...); repeat for several.
    #[arg(long = "channel")]
    pub channels: Vec<String>,
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

fn rfc3339(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| format!("{text:?} is not an RFC 3339 time such as 2026-12-31T18:00:00Z"))
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

#[derive(Clone, Args)]
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
    /// SQLite: the most the database file may hold (e.g. 500MiB, 2GiB); writes past it answer
    /// RESOURCE_EXHAUSTED (STORAGE_FULL), as on a full disk. No cap when not given.
    #[arg(long, env = "LEADGATE_SQLITE_MAX_SIZE", value_parser = size)]
    pub sqlite_max_size: Option<u64>,
}

impl std::fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field("database_url", &crate::store::redacted_url(&self.database_url))
            .field("db_max_connections", &self.db_max_connections)
            .field("db_acquire_timeout", &self.db_acquire_timeout)
            .field("sqlite_max_size", &self.sqlite_max_size)
            .finish()
    }
}

/// A setting that must never be printed (tokens, keys): `Debug` shows that it is set, not what
/// it is.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Secret(text.to_owned()))
    }
}

/// A size in bytes: a number with an optional unit (B, KB, MB, GB, KiB, MiB, GiB).
fn size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 500MiB"))?;
    let unit = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?}: use B, KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    number
        .checked_mul(unit)
        .filter(|bytes| *bytes >= 1 << 20)
        .ok_or_else(|| format!("{text:?} must be at least 1MiB"))
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// PostgreSQL: after migrating, give this role exactly what the service needs, and no more:
    /// it may append to the audit tables but never change, remove or alter them. Run the service
    /// as that role, with --migrate false.
    #[arg(long, env = "LEADGATE_GRANT_TO")]
    pub grant_to: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address the gRPC server listens on.
    #[arg(long, env = "LEADGATE_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Apply pending migrations at start. With false, wait (NOT_SERVING) until `leadgate migrate`
    /// has applied them: for a service role that may not change the schema.
    #[arg(long, env = "LEADGATE_MIGRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate: bool,
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
    /// Credentials (TOML): bearer token hashes, JWT issuer and keys, client certificate subjects.
    #[arg(long, env = "LEADGATE_AUTH_CONFIG")]
    pub auth_config: Option<PathBuf>,
    /// Bearer tokens as `principal:role+role:sha256;...` (hashes, never the tokens themselves).
    #[arg(long, env = "LEADGATE_AUTH_TOKENS", hide_env_values = true)]
    pub auth_tokens: Option<Secret>,
    /// The keys that seal the audit trail, as `ID:BASE64,ID:BASE64` (`leadgate auth new-audit-key`
    /// makes one): the first seals, every one verifies (keep retired keys listed after the new
    /// one). Required with PostgreSQL; with SQLite, a key kept in a file beside the database
    /// (`<database>.audit-key`) is made on first start when none is given.
    #[arg(long, env = "LEADGATE_AUDIT_KEYS", hide_env_values = true)]
    pub audit_keys: Option<Secret>,
    /// Until this time (RFC 3339), also chain audit entries that carry no seal: entries written by
    /// an earlier version of leadgate while an upgrade rolls out. Unset afterwards.
    #[arg(long, env = "LEADGATE_AUDIT_ACCEPT_UNSEALED_UNTIL", value_parser = rfc3339)]
    pub audit_accept_unsealed_until: Option<chrono::DateTime<chrono::Utc>>,
    /// Serve a non-loopback address without authentication (only on a network you trust).
    #[arg(long, env = "LEADGATE_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// The server's certificate chain (PEM): serve TLS.
    #[arg(long, env = "LEADGATE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, env = "LEADGATE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The largest request message accepted, in bytes.
    #[arg(long, env = "LEADGATE_MAX_REQUEST_BYTES", default_value_t = 1024 * 1024)]
    pub max_request_bytes: usize,
    /// The largest response message sent, in bytes.
    #[arg(long, env = "LEADGATE_MAX_RESPONSE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_response_bytes: usize,
    /// Calls served at once; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "LEADGATE_MAX_CONCURRENT_CALLS", default_value_t = 512)]
    pub max_concurrent_calls: usize,
    /// The longest a call may take, whatever deadline the client sets (DEADLINE_EXCEEDED past it).
    #[arg(long, env = "LEADGATE_MAX_CALL_DURATION", default_value = "30s", value_parser = duration)]
    pub max_call_duration: Duration,
    /// HTTP/2 keep-alive ping interval on idle connections.
    #[arg(long, env = "LEADGATE_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = duration)]
    pub keepalive_interval: Duration,
    /// How long a keep-alive ping may stay unanswered before the connection is closed.
    #[arg(long, env = "LEADGATE_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub keepalive_timeout: Duration,
    /// Connections are closed gracefully after this long, so Kubernetes rebalances them.
    #[arg(long, env = "LEADGATE_MAX_CONNECTION_AGE", default_value = "5m", value_parser = duration)]
    pub max_connection_age: Duration,
    /// WatchDecisions streams open at once, counted apart from calls; more are refused with
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "LEADGATE_MAX_OPEN_STREAMS", default_value_t = 512)]
    pub max_open_streams: usize,
    /// A stream whose consumer takes no entry for this long while entries wait is ended with
    /// RESOURCE_EXHAUSTED (SLOW_CONSUMER) and the position to resume after.
    #[arg(long, env = "LEADGATE_SLOW_CONSUMER_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub slow_consumer_timeout: Duration,
    /// A connection that has not sent the HTTP/2 preface (or completed its TLS handshake) within
    /// this is closed.
    #[arg(long, env = "LEADGATE_HANDSHAKE_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub handshake_timeout: Duration,
    /// Serve Prometheus metrics over HTTP on this address (`/metrics`); off when not given.
    #[arg(long, env = "LEADGATE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
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
        if self.max_request_bytes < 1024 || self.max_response_bytes < 1024 * 1024 {
            return Err(
                "--max-request-bytes must be at least 1024 and --max-response-bytes at least 1048576".into(),
            );
        }
        if self.max_concurrent_calls == 0 {
            return Err("--max-concurrent-calls must be at least 1".into());
        }
        if self.max_open_streams == 0 {
            return Err("--max-open-streams must be at least 1".into());
        }
        for (flag, value) in [
            ("--max-call-duration", self.max_call_duration),
            ("--keepalive-interval", self.keepalive_interval),
            ("--keepalive-timeout", self.keepalive_timeout),
            ("--max-connection-age", self.max_connection_age),
            ("--slow-consumer-timeout", self.slow_consumer_timeout),
            ("--handshake-timeout", self.handshake_timeout),
        ] {
            if value < Duration::from_millis(100) {
                return Err(format!("{flag} must be at least 100ms"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_of_the_command_line_holds_no_secret() {
        let cli = Cli::parse_from([
            "leadgate",
            "serve",
            "--database-url",
            "postgres://app:db-password@db/leads",
            "--auth-tokens",
            "ci:submitter:token-hash",
            "--audit-keys",
            "k1:audit-key-bytes",
        ]);
        let shown = format!("{cli:?}");
        for secret in ["db-password", "token-hash", "audit-key-bytes"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("postgres://app:***@db/leads"), "{shown}");

        let client = Cli::parse_from(["leadgate", "leads", "--token", "bearer-token", "show", "x"]);
        assert!(!format!("{client:?}").contains("bearer-token"));
    }
}
