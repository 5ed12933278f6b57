//! Operator commands: run the server, migrate, check policies.

use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;

use crate::app::AppSettings;
use crate::auth::Authenticator;
use crate::cli::args::{DatabaseArgs, MigrateArgs, Secret, ServeArgs};
use crate::domain::audit::AuditKeys;
use crate::domain::policy::Policy;
use crate::server::{Application, Limits, ServerConfig, TlsFiles};
use crate::store::{self, ConnectOptions};
use crate::telemetry;
use crate::telemetry::LogFormat;

/// Reads and validates a policy file; the error lists every problem, one per line.
fn load_policy(path: &Path) -> Result<Policy, String> {
    let content =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read policy {}: {e}", path.display()))?;
    Policy::parse(&content).map_err(|problems| {
        problems
            .iter()
            .map(|problem| format!("{}: {problem}", path.display()))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// `leadgate policy check FILE`.
pub fn policy_check(path: &Path) -> ExitCode {
    match load_policy(path) {
        Ok(policy) => {
            println!(
                "{}: valid, version {} ({})",
                path.display(),
                policy.version,
                policy.name
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            eprintln!("{problems}");
            ExitCode::from(2)
        }
    }
}

impl From<&DatabaseArgs> for ConnectOptions {
    fn from(args: &DatabaseArgs) -> Self {
        ConnectOptions {
            url: args.database_url.clone(),
            max_connections: args.db_max_connections,
            acquire_timeout: args.db_acquire_timeout,
            statement_timeout: None,
            sqlite_max_size: args.sqlite_max_size,
        }
    }
}

/// The server's configuration from its command line: every setting checked and every file read
/// (policy, credentials, TLS, audit keys) before anything starts. The error is for the operator.
impl TryFrom<&ServeArgs> for ServerConfig {
    type Error = String;

    fn try_from(args: &ServeArgs) -> Result<Self, String> {
        args.validate()?;
        let policy = match &args.policy {
            Some(path) => load_policy(path)?,
            None => Policy::default_policy(),
        };
        let auth = Authenticator::load(
            args.auth_config.as_deref(),
            args.auth_tokens.as_ref().map(Secret::expose),
        )
        .map_err(|message| format!("authentication settings: {message}"))?;
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => match (std::fs::read(cert), std::fs::read(key)) {
                (Ok(certificate), Ok(key)) => Some(TlsFiles { certificate, key }),
                (Err(e), _) | (_, Err(e)) => return Err(format!("--tls-cert / --tls-key: {e}")),
            },
            _ => None,
        };
        crate::server::check_exposure(args.listen, &auth, tls.is_some(), args.allow_unauthenticated)?;
        // Last: a start refused for another setting makes no key file.
        let audit_keys = load_audit_keys(args).map_err(|message| format!("audit keys: {message}"))?;
        Ok(ServerConfig {
            listen: args.listen,
            database: ConnectOptions::from(&args.database),
            policy: Arc::new(policy),
            drain_timeout: args.drain_timeout,
            app: AppSettings {
                idempotency_retention: args.idempotency_retention,
                sweep_interval: args.sweep_interval,
                retention_interval: crate::app::DEFAULT_RETENTION_INTERVAL,
                audit_keys: Arc::new(audit_keys),
                accept_unsealed_until: args.audit_accept_unsealed_until,
                verify_call_budget: crate::app::DEFAULT_VERIFY_CALL_BUDGET,
            },
            reflection: args.reflection,
            migrate: args.migrate,
            auth: Arc::new(auth),
            tls,
            limits: Limits {
                max_request_bytes: args.max_request_bytes,
                max_response_bytes: args.max_response_bytes,
                max_concurrent_calls: args.max_concurrent_calls,
                max_call_duration: args.max_call_duration,
                keepalive_interval: args.keepalive_interval,
                keepalive_timeout: args.keepalive_timeout,
                max_connection_age: args.max_connection_age,
                max_open_streams: args.max_open_streams,
                slow_consumer_timeout: args.slow_consumer_timeout,
                handshake_timeout: args.handshake_timeout,
            },
        })
    }
}

/// `leadgate serve`.
pub async fn serve(args: ServeArgs) -> ExitCode {
    let _telemetry = telemetry::init(args.log_format);
    if let Some(addr) = args.metrics_listen
        && let Err(message) = crate::metrics::install(addr)
    {
        eprintln!("error: --metrics-listen: {message}");
        return ExitCode::from(2);
    }
    let config = match ServerConfig::try_from(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    match app.run_until_stopped(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// `leadgate migrate`.
pub async fn migrate(args: MigrateArgs) -> ExitCode {
    let _telemetry = telemetry::init(LogFormat::Text);
    if let Some(role) = &args.grant_to
        && !store::valid_role_name(role)
    {
        eprintln!("error: --grant-to: {role:?} is not a role name (lower-case letters, digits and _)");
        return ExitCode::from(2);
    }
    let result = async {
        let store = store::connect(&ConnectOptions::from(&args.database)).await?;
        store.migrate().await?;
        if let Some(role) = &args.grant_to {
            store.grant_service_role(role).await?;
            tracing::info!(%role, "service role granted what it needs and no more");
        }
        Ok::<_, store::StoreError>(store.backend())
    };
    match result.await {
        Ok(backend) => {
            tracing::info!(%backend, "migrations applied");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "migration failed");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received"),
        _ = terminate => tracing::info!("SIGTERM received"),
    }
}

/// The audit keys given, or for SQLite the key kept beside the database (made on first start).
fn load_audit_keys(args: &ServeArgs) -> Result<AuditKeys, String> {
    if let Some(keys) = &args.audit_keys {
        return AuditKeys::parse(keys.expose());
    }
    let url = &args.database.database_url;
    if !url.starts_with("sqlite:") {
        return Err(
            "LEADGATE_AUDIT_KEYS (--audit-keys) is required with PostgreSQL: every replica seals the \
             audit trail with the same key. Make one with `leadgate auth new-audit-key` and keep it in a \
             Secret"
                .into(),
        );
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).map_err(|e| format!("{url}: {e}"))?;
    let database = options.get_filename();
    if database.as_os_str().is_empty() || database.to_string_lossy().contains(":memory:") {
        return Err("an in-memory SQLite database needs --audit-keys".into());
    }
    let mut path = database.as_os_str().to_owned();
    path.push(".audit-key");
    local_key_file(Path::new(&path))
}

/// Reads the key file, or makes it (readable by its owner only) when it does not exist.
fn local_key_file(path: &Path) -> Result<AuditKeys, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => AuditKeys::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let line = random_audit_key("local");
            let mut file = std::fs::OpenOptions::new();
            file.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
            let mut file = file.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), "made the audit key of this database");
            AuditKeys::parse(&line)
        }
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

/// `ID:BASE64` of 32 random bytes (from the operating system, through UUID v4).
fn random_audit_key(id: &str) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = (0..2).flat_map(|_| *uuid::Uuid::new_v4().as_bytes()).collect();
    format!("{id}:{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// `leadgate auth new-audit-key`.
pub fn new_audit_key(id: &str) -> ExitCode {
    let line = random_audit_key(id);
    if let Err(message) = AuditKeys::parse(&line) {
        eprintln!("error: --id: {message}");
        return ExitCode::from(2);
    }
    println!("{line}");
    ExitCode::SUCCESS
}

/// `leadgate auth new-token`.
pub fn new_token(principal: &str, roles: &str) -> ExitCode {
    let token = crate::auth::new_token();
    let hash = crate::auth::hash_token(&token);
    println!("token (give it to {principal}, keep it secret): {token}");
    println!("sha256 (configure this):                       {hash}");
    println!("\nLEADGATE_AUTH_TOKENS entry: {principal}:{roles}:{hash}");
    println!(
        "or in the --auth-config file:\n[[tokens]]\nprincipal = \"{principal}\"\nroles = [\"{}\"]\nsha256 = \"{hash}\"",
        roles.replace('+', "\", \"")
    );
    ExitCode::SUCCESS
}

/// `leadgate auth hash-token`.
pub fn hash_token() -> ExitCode {
    let mut token = String::new();
    if std::io::stdin().read_line(&mut token).is_err() || token.trim().is_empty() {
        eprintln!("error: give the token on standard input");
        return ExitCode::from(2);
    }
    println!("{}", crate::auth::hash_token(token.trim()));
    ExitCode::SUCCESS
}
