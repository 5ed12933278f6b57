//! Starting servers for tests, and looking into their databases.

use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use leadgate::app::AppSettings;
use leadgate::domain::policy::Policy;
use leadgate::grpc::pb;
use leadgate::server::{Application, ServerConfig, ServerError};
use leadgate::store::ConnectOptions;
use pb::lead_service_client::LeadServiceClient;
use sqlx::{ConnectOptions as _, Connection, Executor};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

/// Defines a contract test once and runs it on both backends: `sqlite::name` and
/// `postgres::name`. Without `LEADGATE_TEST_POSTGRES_URL` the PostgreSQL runs are reported as
/// ignored, with the reason.
#[macro_export]
macro_rules! contract {
    ($( $(#[$meta:meta])* async fn $name:ident($backend:ident: Backend) $body:block )*) => {
        $( $(#[$meta])* async fn $name($backend: $crate::helpers::Backend) $body )*

        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(postgres_tests), ignore = "PostgreSQL skipped: set LEADGATE_TEST_POSTGRES_URL to run it")]
                async fn $name() {
                    super::$name($crate::helpers::Backend::postgres()).await
                }
            )*
        }
    };
}

/// Which database a test server uses.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// The URL of a PostgreSQL database where test databases may be created.
    Postgres(String),
}

impl Backend {
    pub fn postgres() -> Backend {
        Backend::Postgres(
            std::env::var("LEADGATE_TEST_POSTGRES_URL")
                .expect("LEADGATE_TEST_POSTGRES_URL is set for PostgreSQL tests"),
        )
    }
}

/// Server settings a test may change.
pub struct Options {
    pub policy: Policy,
    pub sweep_interval: Duration,
    pub drain_timeout: Duration,
    pub auth: leadgate::auth::Authenticator,
    pub tls: Option<leadgate::server::TlsFiles>,
    pub limits: leadgate::server::Limits,
    /// How the test's own clients connect when the server serves TLS.
    pub client_tls: Option<tonic::transport::ClientTlsConfig>,
    /// SQLite: the database's size cap, to fill it up.
    pub sqlite_max_size: Option<u64>,
    /// Apply migrations at start (otherwise wait for them).
    pub migrate: bool,
    /// The longest one VerifyAuditTrail call checks entries.
    pub verify_call_budget: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: Policy::default_policy(),
            sweep_interval: Duration::from_millis(100),
            drain_timeout: Duration::from_secs(5),
            auth: leadgate::auth::Authenticator::default(),
            tls: None,
            limits: leadgate::server::Limits::default(),
            client_tls: None,
            sqlite_max_size: None,
            migrate: true,
            verify_call_budget: leadgate::app::DEFAULT_VERIFY_CALL_BUDGET,
        }
    }
}

/// A database made for one test, dropped with it.
pub struct TestDatabase {
    pub url: String,
    /// For PostgreSQL: the server URL and the database to drop.
    drop_with: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn create(backend: &Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                TestDatabase {
                    url: format!("sqlite://{}", dir.path().join("leadgate.db").display()),
                    drop_with: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres(admin_url) => {
                let name = format!("leadgate_test_{}", uuid::Uuid::now_v7().simple());
                let mut admin = sqlx::PgConnection::connect(admin_url)
                    .await
                    .expect("PostgreSQL answers at LEADGATE_TEST_POSTGRES_URL");
                admin
                    .execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("a test database");
                let options: sqlx::postgres::PgConnectOptions = admin_url.parse().expect("a PostgreSQL URL");
                TestDatabase {
                    url: options.database(&name).to_url_lossy().to_string(),
                    drop_with: Some((admin_url.clone(), name)),
                    _dir: None,
                }
            }
        }
    }

    #[allow(dead_code, reason = "used by the fault suite only")]
    /// A database at a URL the test made itself (nothing is dropped with it).
    pub fn at_url(url: &str) -> TestDatabase {
        TestDatabase {
            url: url.to_owned(),
            drop_with: None,
            _dir: None,
        }
    }

    /// A PostgreSQL URL where nothing answers.
    pub fn unreachable_postgres() -> TestDatabase {
        TestDatabase {
            url: "postgres://leadgate@127.0.0.1:1/leadgate".into(),
            drop_with: None,
            _dir: None,
        }
    }

    /// Counts rows with a query returning one integer.
    pub async fn count(&self, sql: &str) -> i64 {
        if self.url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.drop_with.take() {
            // Drop runs outside async code: use a thread with its own runtime.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ = admin
                            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A running server and clients connected to it.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub channel: Channel,
    pub leads: LeadServiceClient<Channel>,
    pub health: HealthClient<Channel>,
    pub db: Arc<TestDatabase>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), ServerError>>>,
}

fn init_logs() {
    // Silent unless asked: TEST_LOG=1 cargo test.
    if std::env::var("TEST_LOG").is_ok() {
        std::mem::forget(leadgate::telemetry::init(leadgate::telemetry::LogFormat::Text));
    }
}

pub async fn spawn_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, Options::default()).await
}

pub async fn spawn_app_with(backend: &Backend, options: Options) -> TestApp {
    let db = Arc::new(TestDatabase::create(backend).await);
    let app = spawn_on(db, options).await;
    app.wait_until_serving().await;
    app
}

/// Starts a server on an existing database (another replica, or a database that is down).
pub async fn spawn_on(db: Arc<TestDatabase>, options: Options) -> TestApp {
    init_logs();
    let client_tls = options.client_tls.clone();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: ConnectOptions {
            url: db.url.clone(),
            max_connections: 5,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: None,
            sqlite_max_size: options.sqlite_max_size,
        },
        policy: Arc::new(options.policy),
        drain_timeout: options.drain_timeout,
        app: AppSettings {
            idempotency_retention: Duration::from_secs(24 * 3600),
            sweep_interval: options.sweep_interval,
            retention_interval: options.sweep_interval,
            audit_keys: Arc::new(test_audit_keys()),
            accept_unsealed_until: None,
            verify_call_budget: options.verify_call_budget,
        },
        reflection: true,
        migrate: options.migrate,
        auth: Arc::new(options.auth),
        tls: options.tls,
        limits: options.limits,
    };
    let application = Application::build(config).await.expect("the server starts");
    let addr = application.local_addr();
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(application.run_until_stopped(async {
        let _ = rx.await;
    }));
    let endpoint = match client_tls {
        None => Channel::from_shared(format!("http://{addr}")).unwrap(),
        Some(tls) => Channel::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(tls)
            .unwrap(),
    };
    let channel = endpoint.connect().await.expect("the server accepts connections");
    TestApp {
        addr,
        leads: LeadServiceClient::new(channel.clone()),
        health: HealthClient::new(channel.clone()),
        channel,
        db,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    /// The health status of one service name.
    pub async fn health_of(&self, service: &str) -> ServingStatus {
        let response = self
            .health
            .clone()
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers");
        ServingStatus::try_from(response.into_inner().status).unwrap()
    }

    pub async fn wait_until_serving(&self) {
        // Generous: a loaded machine may take seconds to migrate a fresh database.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.health_of("").await == ServingStatus::Serving {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the server never became SERVING");
    }

    /// Asks the server to stop and waits until it has.
    pub async fn stop(&mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(server) => server.await.expect("the server task does not panic"),
            None => Ok(()),
        }
    }

    /// Sends the shutdown signal without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// The audit keys every test server seals with (replicas of one database share them).
pub const TEST_AUDIT_KEYS: &str = "test:dGVzdC1hdWRpdC1rZXktdGVzdC1hdWRpdC1rZXktdGVzdA==";

pub fn test_audit_keys() -> leadgate::domain::audit::AuditKeys {
    leadgate::domain::audit::AuditKeys::parse(TEST_AUDIT_KEYS).expect("valid test keys")
}

/// One row of `INSERT INTO audit_inbox (kind, record_time, actor, policy_version, body,
/// seal_key_id, seal) VALUES ...`: an entry written the way leadgate writes it, sealed.
pub fn sealed_inbox_row(
    db: &TestDatabase,
    kind: &str,
    record_micros: i64,
    actor: &str,
    body: &str,
) -> String {
    use leadgate::domain::audit::{AuditEntry, AuditKind};
    let entry = AuditEntry {
        lead: None,
        kind: AuditKind::from_name(kind).expect("a known kind"),
        recorded_at: chrono::DateTime::from_timestamp_micros(record_micros).unwrap(),
        actor: actor.into(),
        request_id: None,
        state_before: None,
        state_after: None,
        source_channel: None,
        policy_version: "v".into(),
        body: body.into(),
    };
    let seal = test_audit_keys().seal_entry(&entry);
    format!(
        "('{kind}', {record_micros}, '{actor}', 'v', '{body}', '{}', {})",
        seal.key_id,
        db.bytes_literal(&seal.tag)
    )
}

/// The columns [`sealed_inbox_row`] fills.
pub const SEALED_INBOX_COLUMNS: &str = "(kind, record_time, actor, policy_version, body, seal_key_id, seal)";

/// A submission with just what is required, for `email`.
pub fn minimal_submission(email: &str) -> pb::SubmitLeadRequest {
    pb::SubmitLeadRequest {
        contact: Some(pb::Contact {
            email: email.into(),
            ..Default::default()
        }),
        source: Some(pb::Source {
            channel: pb::SourceChannel::Website as i32,
            campaign: String::new(),
        }),
        ..Default::default()
    }
}

/// The CFO's inbound demo request from the article: a perfect fit asking for a demo.
pub fn cfo_demo_request(email: &str) -> pb::SubmitLeadRequest {
    pb::SubmitLeadRequest {
        contact: Some(pb::Contact {
            email: email.into(),
            given_name: "Claire".into(),
            family_name: "Martin".into(),
            phone: "+33 1 23 45 67 89".into(),
            job_title: "Directrice financière".into(),
            seniority: pb::Seniority::Executive as i32,
            job_function: "finance".into(),
        }),
        company: Some(pb::Company {
            name: "Acme Industrie".into(),
            domain: "acme-industrie.fr".into(),
            industry: "manufacturing".into(),
            employee_count: 300,
            country_code: "FR".into(),
        }),
        source: Some(pb::Source {
            channel: pb::SourceChannel::Website as i32,
            campaign: "demo-form".into(),
        }),
        events: vec![pb::EngagementEvent {
            kind: pb::EngagementKind::DemoRequest as i32,
            occur_time: None,
            subject: "demo form".into(),
        }],
        ..Default::default()
    }
}

/// The field paths of a status's BadRequest details.
/// Submits a lead that must be accepted, and gives it as answered.
pub async fn submitted(app: &TestApp, request: pb::SubmitLeadRequest) -> pb::Lead {
    app.leads
        .clone()
        .submit_lead(request)
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap()
}

pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The ErrorInfo reason of a status.
pub fn error_reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let info = status
        .get_details_error_info()
        .expect("every error carries ErrorInfo");
    assert_eq!(info.domain, "leadgate");
    info.reason
}

/// The id part of `leads/{id}`, for SQL.
pub fn lead_uuid(name: &str) -> uuid::Uuid {
    name.strip_prefix("leads/").unwrap().parse().unwrap()
}

impl TestDatabase {
    fn uuid_literal(&self, id: uuid::Uuid) -> String {
        if self.url.starts_with("sqlite:") {
            format!("X'{}'", id.simple())
        } else {
            format!("'{id}'::uuid")
        }
    }

    /// Audit entries recorded for a lead, chained or not yet.
    pub async fn audit_entries_of(&self, lead_name: &str) -> i64 {
        let id = self.uuid_literal(lead_uuid(lead_name));
        self.count(&format!(
            "SELECT (SELECT COUNT(*) FROM audit_inbox WHERE lead_id = {id}) + (SELECT COUNT(*) FROM audit_log WHERE lead_id = {id})"
        ))
        .await
    }

    /// Every audit entry, chained or not yet.
    pub async fn audit_entries(&self) -> i64 {
        self.count("SELECT (SELECT COUNT(*) FROM audit_inbox) + (SELECT COUNT(*) FROM audit_log)")
            .await
    }

    pub async fn leads(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM leads").await
    }
}

impl TestDatabase {
    /// Audit entries of one kind, chained or not yet.
    pub async fn entries_of_kind(&self, kind: &str) -> i64 {
        self.count(&format!(
            "SELECT COUNT(*) FROM (SELECT kind FROM audit_inbox UNION ALL SELECT kind FROM audit_log) AS e WHERE kind = '{kind}'"
        ))
        .await
    }

    /// The bodies (JSON) of a lead's audit entries, oldest first, with their policy versions.
    pub async fn audit_bodies_of(&self, lead_name: &str) -> Vec<(String, String, serde_json::Value)> {
        let id = self.uuid_literal(lead_uuid(lead_name));
        let sql = format!(
            "SELECT kind, policy_version, body FROM (
                 SELECT inbox_id AS id, kind, policy_version, body FROM audit_log WHERE lead_id = {id}
                 UNION ALL SELECT id, kind, policy_version, body FROM audit_inbox WHERE lead_id = {id}) AS e
             ORDER BY id"
        );
        let rows: Vec<(String, String, String)> = if self.url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query_as(&sql).fetch_all(&mut conn).await.unwrap()
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query_as(&sql).fetch_all(&mut conn).await.unwrap()
        };
        rows.into_iter()
            .map(|(k, p, b)| (k, p, serde_json::from_str(&b).unwrap()))
            .collect()
    }
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A timestamp `minutes` from now (negative: in the past).
pub fn minutes_from_now(minutes: i64) -> prost_types::Timestamp {
    let t = chrono::Utc::now() + chrono::Duration::minutes(minutes);
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    }
}

/// A timestamp `days` from now.
pub fn days_from_now(days: i64) -> prost_types::Timestamp {
    minutes_from_now(days * 24 * 60)
}

pub fn engagement(
    kind: pb::EngagementKind,
    occur_time: Option<prost_types::Timestamp>,
) -> pb::EngagementEvent {
    pb::EngagementEvent {
        kind: kind as i32,
        occur_time,
        subject: String::new(),
    }
}

/// The default policy with some lines replaced.
pub fn policy_with(replacements: &[(&str, &str)]) -> Policy {
    let mut text = leadgate::domain::policy::DEFAULT_POLICY.to_owned();
    for (from, to) in replacements {
        assert!(text.contains(from), "{from:?} is in the default policy");
        text = text.replace(from, to);
    }
    Policy::parse(&text).expect("a valid policy")
}

/// A discovery call's findings, each criterion given as a status.
pub fn findings(
    need: pb::CriterionStatus,
    budget: pb::CriterionStatus,
    authority: pb::CriterionStatus,
    timing: pb::CriterionStatus,
) -> pb::DiscoveryCallFindings {
    pb::DiscoveryCallFindings {
        call_time: None,
        need: Some(pb::NeedFinding {
            status: need as i32,
            evidence: "looking to automate invoicing".into(),
        }),
        budget: Some(pb::BudgetFinding {
            status: budget as i32,
            ..Default::default()
        }),
        authority: Some(pb::AuthorityFinding {
            status: authority as i32,
            decision_maker: if authority == pb::CriterionStatus::Met {
                pb::DecisionMakerInvolvement::Involved as i32
            } else {
                pb::DecisionMakerInvolvement::Unspecified as i32
            },
            ..Default::default()
        }),
        timing: Some(pb::TimingFinding {
            status: timing as i32,
            ..Default::default()
        }),
        conducted_by: "rep-7".into(),
    }
}

impl TestDatabase {
    pub fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite:")
    }

    /// Runs one statement as any database user could; the database's refusal is returned.
    pub async fn try_execute(&self, sql: &str) -> Result<u64, String> {
        let result = if self.is_sqlite() {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            conn.execute(sql).await.map(|r| r.rows_affected())
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            conn.execute(sql).await.map(|r| r.rows_affected())
        };
        result.map_err(|e| e.to_string())
    }

    /// Runs statements in one transaction that is then rolled back; returns the first refusal.
    pub async fn try_in_transaction(&self, statements: &[&str]) -> Result<(), String> {
        async fn run<'c, DB: sqlx::Database>(
            mut tx: sqlx::Transaction<'c, DB>,
            statements: &[&str],
        ) -> Result<(), String>
        where
            for<'e> &'e mut <DB as sqlx::Database>::Connection: Executor<'e, Database = DB>,
        {
            for sql in statements {
                tx.execute(*sql).await.map_err(|e| e.to_string())?;
            }
            tx.rollback().await.map_err(|e| e.to_string())
        }
        if self.is_sqlite() {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            run(conn.begin().await.unwrap(), statements).await
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            run(conn.begin().await.unwrap(), statements).await
        }
    }

    /// Runs statements against the audit log the way an attacker with full database access
    /// would: with the append-only triggers out of the way.
    pub async fn tamper(&self, statements: &[String]) {
        if self.is_sqlite() {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            conn.execute(
                "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete",
            )
            .await
            .unwrap();
            for sql in statements {
                conn.execute(sql.as_str()).await.unwrap();
            }
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
                .await
                .unwrap();
            for sql in statements {
                conn.execute(sql.as_str()).await.unwrap();
            }
            conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")
                .await
                .unwrap();
        }
    }

    /// A byte string as an SQL literal.
    pub fn bytes_literal(&self, bytes: &[u8]) -> String {
        let hex = leadgate::domain::hex::to_hex(bytes);
        if self.is_sqlite() {
            format!("X'{hex}'")
        } else {
            format!("'\\x{hex}'::bytea")
        }
    }

    /// The store, as the server sees it.
    pub async fn store(&self) -> std::sync::Arc<dyn leadgate::store::Store> {
        leadgate::store::connect(&ConnectOptions {
            url: self.url.clone(),
            max_connections: 2,
            acquire_timeout: Duration::from_secs(5),
            ..Default::default()
        })
        .await
        .unwrap()
    }

    /// Waits until every committed entry is chained.
    pub async fn wait_until_chained(&self) {
        let chained = eventually(Duration::from_secs(10), || async {
            self.count("SELECT COUNT(*) FROM audit_inbox").await == 0
        })
        .await;
        assert!(chained, "the sequencer chains every entry");
    }
}

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for a server process to exit; fails if it is still running `within` after `since`.
pub async fn wait_for_exit(child: &mut Child, since: Instant, within: Duration) -> ExitStatus {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(since.elapsed() < within, "exits within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
