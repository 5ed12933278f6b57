//! Operator commands: run the server, migrate, check policies.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::app::AppSettings;
use crate::config::{DatabaseArgs, LogFormat, ServeArgs};
use crate::domain::policy::Policy;
use crate::server::{Application, ServerConfig};
use crate::store::{self, ConnectOptions};
use crate::telemetry;

fn connect_options(args: &DatabaseArgs) -> ConnectOptions {
    ConnectOptions {
        url: args.database_url.clone(),
        max_connections: args.db_max_connections,
        acquire_timeout: args.db_acquire_timeout,
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
    telemetry::init(args.log_format);
    if let Err(message) = args.validate() {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let policy = match &args.policy {
        Some(path) => match load_policy(path) {
            Ok(policy) => policy,
            Err(code) => return code,
        },
        None => Policy::default_policy(),
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
pub async fn migrate(args: DatabaseArgs) -> ExitCode {
    telemetry::init(LogFormat::Text);
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
