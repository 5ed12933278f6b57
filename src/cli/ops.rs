//! Operator commands: run the server, migrate, check policies.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::app::AppSettings;
use crate::auth::Authenticator;
use crate::config::{DatabaseArgs, LogFormat, ServeArgs};
use crate::domain::policy::Policy;
use crate::server::{Application, Limits, ServerConfig, TlsFiles};
use crate::store::{self, ConnectOptions};
use crate::telemetry;

fn connect_options(args: &DatabaseArgs) -> ConnectOptions {
    ConnectOptions {
        url: args.database_url.clone(),
        max_connections: args.db_max_connections,
        acquire_timeout: args.db_acquire_timeout,
        statement_timeout: None,
    }
}

/// Reads and validates a policy file, printing every problem.
fn load_policy(path: &Path) -> Result<Policy, ExitCode> {
    let content = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: cannot read policy {}: {e}", path.display());
        ExitCode::from(2)
    })?;
    Policy::parse(&content).map_err(|problems| {
        for problem in problems {
            eprintln!("{}: {problem}", path.display());
        }
        ExitCode::from(2)
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
        Err(code) => code,
    }
}

/// `leadgate serve`.
pub async fn serve(args: ServeArgs) -> ExitCode {
    let _telemetry = telemetry::init(args.log_format);
    if let Err(message) = args.validate() {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    if let Some(addr) = args.metrics_listen
        && let Err(message) = crate::metrics::install(addr)
    {
        eprintln!("error: --metrics-listen: {message}");
        return ExitCode::from(2);
    }
    let policy = match &args.policy {
        Some(path) => match load_policy(path) {
            Ok(policy) => policy,
            Err(code) => return code,
        },
        None => Policy::default_policy(),
    };
    let auth = match Authenticator::load(args.auth_config.as_deref(), args.auth_tokens.as_deref()) {
        Ok(auth) => auth,
        Err(message) => {
            eprintln!("error: authentication settings: {message}");
            return ExitCode::from(2);
        }
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match (std::fs::read(cert), std::fs::read(key)) {
            (Ok(certificate), Ok(key)) => Some(TlsFiles { certificate, key }),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("error: --tls-cert / --tls-key: {e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let config = ServerConfig {
        listen: args.listen,
        database: connect_options(&args.database),
        policy: Arc::new(policy),
        drain_timeout: args.drain_timeout,
        app: AppSettings {
            idempotency_retention: args.idempotency_retention,
            sweep_interval: args.sweep_interval,
        },
        reflection: args.reflection,
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
    };
    if let Err(message) = config.check_exposure(args.allow_unauthenticated) {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
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
pub async fn migrate(args: DatabaseArgs) -> ExitCode {
    let _telemetry = telemetry::init(LogFormat::Text);
    let result = async {
        let store = store::connect(&connect_options(&args)).await?;
        store.migrate().await?;
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
