//! The server process: binds, reports health, migrates, serves, and drains on shutdown.
//!
//! Health: the overall service `""` and every leadgate service are NOT_SERVING until migrations
//! are applied and the database answers, go back to NOT_SERVING whenever it stops answering,
//! and on shutdown. The `liveness` service is SERVING as long as the process runs: point
//! Kubernetes' liveness probe at it, and the readiness probe at `""`.

mod handshake;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::ServerTlsConfig;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::app::{App, AppSettings, spawn_background};
use crate::auth::Authenticator;
use crate::domain::policy::Policy;
use crate::grpc::guard::{GuardLayer, GuardSettings};
use crate::grpc::{self, observe::ObserveLayer};
use crate::store::{self, ConnectOptions, Store, StoreError};

/// The health service name that reports only that the process is alive.
pub const LIVENESS_SERVICE: &str = "liveness";
/// How often readiness re-checks the database.
const READINESS_INTERVAL: Duration = Duration::from_secs(1);
/// How long one readiness check may take.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest pause between two migration attempts while the database is down.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);
/// How long background tasks get to finish after the drain.
const BACKGROUND_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long calls on a connection past its maximum age may still finish.
const MAX_CONNECTION_AGE_GRACE: Duration = Duration::from_secs(30);

/// Everything the server needs, validated.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub database: ConnectOptions,
    pub policy: Arc<Policy>,
    pub drain_timeout: Duration,
    pub app: AppSettings,
    pub reflection: bool,
    /// Apply pending migrations at start; otherwise wait until someone else has.
    pub migrate: bool,
    /// Who may call; with nothing configured, everyone (and only loopback may be bound).
    pub auth: Arc<Authenticator>,
    /// PEM certificate chain and key: serve TLS (required for client certificates).
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
}

/// The server's certificate and key, PEM.
#[derive(Clone)]
pub struct TlsFiles {
    pub certificate: Vec<u8>,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The certificate is public; the key never leaves the process.
        f.debug_struct("TlsFiles")
            .field("certificate_bytes", &self.certificate.len())
            .field("key", &"..")
            .finish()
    }
}

/// What one caller can make the server do.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request message, in bytes.
    pub max_request_bytes: usize,
    /// Largest response message, in bytes.
    pub max_response_bytes: usize,
    pub max_concurrent_calls: usize,
    pub max_call_duration: Duration,
    /// HTTP/2 pings on idle connections, and how long to wait for the answer.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// Connections are closed (gracefully) after this long, so load balancers rebalance them.
    pub max_connection_age: Duration,
    /// Watch streams open at once, counted apart from calls (a stream's call ends once its
    /// headers are out); more are refused with RESOURCE_EXHAUSTED.
    pub max_open_streams: usize,
    /// A stream whose consumer takes nothing for this long while entries wait is ended
    /// (RESOURCE_EXHAUSTED, `SLOW_CONSUMER`) and its buffer freed.
    pub slow_consumer_timeout: Duration,
    /// A connection that has not sent the HTTP/2 preface (plaintext) or completed its TLS
    /// handshake within this is closed.
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 1024 * 1024,
            max_response_bytes: 16 * 1024 * 1024,
            max_concurrent_calls: 512,
            max_call_duration: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(300),
            max_open_streams: 512,
            slow_consumer_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(5),
        }
    }
}

impl ServerConfig {
    /// The safe default: without authentication, only loopback, unless explicitly allowed.
    pub fn check_exposure(&self, allow_unauthenticated: bool) -> Result<(), String> {
        check_exposure(self.listen, &self.auth, self.tls.is_some(), allow_unauthenticated)
    }
}

/// The safe default: without authentication, only loopback, unless explicitly allowed; client
/// certificates need TLS.
pub fn check_exposure(
    listen: SocketAddr,
    auth: &Authenticator,
    tls: bool,
    allow_unauthenticated: bool,
) -> Result<(), String> {
    if auth.client_ca_pem.is_some() && !tls {
        return Err("client certificates (mtls) need TLS: give --tls-cert and --tls-key".into());
    }
    if !auth.enabled() && !listen.ip().is_loopback() && !allow_unauthenticated {
        return Err(format!(
            "refusing to listen on {listen} without authentication: configure --auth-config or --auth-tokens, \
             listen on loopback, or pass --allow-unauthenticated"
        ));
    }
    Ok(())
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the database: {0}")]
    Database(#[from] StoreError),
    #[error("server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("server task failed: {0}")]
    Task(tokio::task::JoinError),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// A bound, not yet serving, server.
pub struct Application {
    listener: TcpListener,
    config: ServerConfig,
    store: Arc<dyn Store>,
}

/// The services whose health follows the database.
fn readiness_services() -> impl Iterator<Item = &'static str> {
    std::iter::once("").chain(grpc::SERVICE_NAMES.iter().copied())
}

async fn set_readiness(reporter: &HealthReporter, status: ServingStatus) {
    crate::metrics::ready(status == ServingStatus::Serving);
    for name in readiness_services() {
        reporter.set_service_status(name, status).await;
    }
}

impl Application {
    /// Binds the listener (port 0 picks a free port) and opens the store.
    pub async fn build(mut config: ServerConfig) -> Result<Self, ServerError> {
        // The database abandons a statement before the guard abandons the call, so a call cut at
        // the cap has written nothing (an autocommitted write would otherwise land afterwards).
        config.database.statement_timeout = Some(config.limits.max_call_duration.mul_f64(0.9));
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.listen,
                source,
            })?;
        let store = store::connect(&config.database).await?;
        Ok(Self {
            listener,
            config,
            store,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then drains in-flight calls (bounded by the drain
    /// timeout) and stops.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Application {
            listener,
            config,
            store,
        } = self;
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let (reporter, health) = tonic_health::server::health_reporter();
        set_readiness(&reporter, ServingStatus::NotServing).await;
        reporter
            .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
            .await;

        let app = App::new(store.clone(), config.policy.clone(), config.app.clone());
        // Ends open streams at shutdown, so they do not hold the drain.
        let streams_stop = CancellationToken::new();
        let limits = &config.limits;
        let streams = grpc::StreamLimits {
            max_open_streams: limits.max_open_streams,
            slow_consumer_timeout: limits.slow_consumer_timeout,
            stop: streams_stop.clone(),
        };
        let services = grpc::services(
            &app,
            &streams,
            limits.max_request_bytes,
            limits.max_response_bytes,
        );
        if !config.auth.enabled() {
            tracing::warn!("authentication is off: every caller is `anonymous` with every role");
        }
        let reflection = if config.reflection {
            let builder = || {
                tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(grpc::FILE_DESCRIPTOR_SET)
                    .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            };
            Some((builder().build_v1()?, builder().build_v1alpha()?))
        } else {
            None
        };
        let (reflection_v1, reflection_v1alpha) = reflection.unzip();
        let guard = GuardLayer::new(GuardSettings {
            auth: config.auth.clone(),
            max_concurrent_calls: limits.max_concurrent_calls,
            max_call_duration: limits.max_call_duration,
        });
        let mut builder = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(limits.keepalive_interval))
            .http2_keepalive_timeout(Some(limits.keepalive_timeout))
            .max_connection_age(limits.max_connection_age)
            .max_connection_age_grace(MAX_CONNECTION_AGE_GRACE);
        if let Some(tls) = &config.tls {
            let mut tls_config = ServerTlsConfig::new()
                .identity(tonic::transport::Identity::from_pem(&tls.certificate, &tls.key))
                .timeout(limits.handshake_timeout);
            if let Some(ca) = &config.auth.client_ca_pem {
                // Optional, so health probes need no certificate; the guard asks for credentials.
                tls_config = tls_config
                    .client_ca_root(tonic::transport::Certificate::from_pem(ca))
                    .client_auth_optional(true);
            }
            builder = builder.tls_config(tls_config)?;
        }
        let router = builder
            .layer(
                tower::ServiceBuilder::new()
                    .layer(ObserveLayer)
                    .layer(guard)
                    .into_inner(),
            )
            .add_service(health)
            .add_optional_service(reflection_v1)
            .add_optional_service(reflection_v1alpha)
            .add_service(services.leads)
            .add_service(services.audit)
            .add_service(services.policy)
            .add_service(services.reports);

        let stop_accepting = CancellationToken::new();
        let handshake_timeout = limits.handshake_timeout;
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .map(move |accepted| accepted.map(|tcp| handshake::Handshaking::new(tcp, handshake_timeout)));
        let mut server = tokio::spawn(
            router.serve_with_incoming_shutdown(incoming, stop_accepting.clone().cancelled_owned()),
        );
        tracing::info!(%addr, backend = %store.backend(), policy = %config.policy.version, "leadgate listening");

        let background_stop = CancellationToken::new();
        let readiness = tokio::spawn(become_ready(
            app,
            config.migrate,
            reporter.clone(),
            background_stop.clone(),
        ));

        tokio::select! {
            _ = shutdown => {}
            // The server ending by itself is an error (the listener failed).
            result = &mut server => {
                background_stop.cancel();
                return match result {
                    Ok(served) => served.map_err(Into::into),
                    Err(join_error) => Err(ServerError::Task(join_error)),
                };
            }
        }

        tracing::info!(drain_timeout = ?config.drain_timeout, "shutting down: NOT_SERVING, draining in-flight calls");
        background_stop.cancel();
        set_readiness(&reporter, ServingStatus::NotServing).await;
        streams_stop.cancel();
        stop_accepting.cancel();
        match tokio::time::timeout(config.drain_timeout, &mut server).await {
            Ok(Ok(result)) => result?,
            Ok(Err(join_error)) => return Err(ServerError::Task(join_error)),
            Err(_) => {
                tracing::warn!("drain timeout reached: closing the calls still open");
                server.abort();
            }
        }
        match tokio::time::timeout(BACKGROUND_STOP_TIMEOUT, readiness).await {
            Ok(Ok(handles)) => {
                for handle in handles {
                    let _ = tokio::time::timeout(BACKGROUND_STOP_TIMEOUT, handle).await;
                }
            }
            _ => tracing::warn!("background tasks did not stop in time"),
        }
        tracing::info!("leadgate stopped");
        Ok(())
    }
}

/// Ready when the database answers and, after a write was refused for lack of room or permission,
/// when a probe write commits again: a full disk or a read-only database is not ready.
async fn readiness_check(store: &dyn Store) -> Result<(), StoreError> {
    store.ping().await?;
    if store.writes_refused() {
        store.probe_write().await?;
    }
    Ok(())
}

/// Migrates (retrying while the database is down), activates the policy, starts the background
/// tasks, then keeps readiness in step with the database until `stop`.
async fn become_ready(
    app: App,
    migrate: bool,
    reporter: HealthReporter,
    stop: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut pause = Duration::from_millis(200);
    loop {
        let attempt = async {
            if migrate {
                app.store().migrate().await?;
            } else {
                app.store().check_migrated().await?;
            }
            app.activate_policy()
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            Ok::<_, StoreError>(())
        };
        match attempt.await {
            Ok(()) => break,
            Err(error) => tracing::warn!(%error, retry_in = ?pause, "database not ready"),
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => return Vec::new(),
        }
        pause = (pause * 2).min(MAX_RETRY_PAUSE);
    }
    match app.store().privilege_warning().await {
        Ok(Some(warning)) => tracing::warn!("{warning}"),
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "could not check the database role's privileges"),
    }
    let mut handles = spawn_background(&app, stop.clone());
    set_readiness(&reporter, ServingStatus::Serving).await;
    tracing::info!("database migrated and answering: SERVING");

    handles.push(tokio::spawn(async move {
        let mut serving = true;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(READINESS_INTERVAL) => {}
                _ = stop.cancelled() => return,
            }
            let check = tokio::time::timeout(READINESS_TIMEOUT, readiness_check(app.store().as_ref())).await;
            let healthy = matches!(check, Ok(Ok(())));
            if stop.is_cancelled() {
                return;
            }
            if healthy != serving {
                serving = healthy;
                if healthy {
                    tracing::info!("database answers and takes writes again: SERVING");
                    set_readiness(&reporter, ServingStatus::Serving).await;
                } else {
                    let error = match check {
                        Ok(Err(error)) => error.to_string(),
                        _ => "no answer in time".to_owned(),
                    };
                    tracing::warn!(%error, "database does not answer or refuses writes: NOT_SERVING");
                    set_readiness(&reporter, ServingStatus::NotServing).await;
                }
            }
        }
    }));
    handles
}
