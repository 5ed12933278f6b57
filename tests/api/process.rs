//! The binary as operators run it: `serve` with SIGTERM, `migrate`, `policy check`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::{free_port, wait_for_exit};

const BINARY: &str = env!("CARGO_BIN_EXE_leadgate");

#[tokio::test]
async fn serve_defaults_to_sqlite_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(BINARY)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--drain-timeout",
            "5s",
        ])
        .current_dir(dir.path())
        .env_remove("LEADGATE_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let serving = loop {
        if let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            let status = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if status.is_ok_and(|s| s.into_inner().status == ServingStatus::Serving as i32) {
                break true;
            }
        }
        if started.elapsed() > Duration::from_secs(20) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(serving, "SERVING within 20 s");
    assert!(
        dir.path().join("leadgate.db").exists(),
        "the SQLite file is created in the working directory"
    );
    // The key that seals its audit trail, beside it, readable by its owner only.
    let key_file = dir.path().join("leadgate.db.audit-key");
    let key = std::fs::read_to_string(&key_file).expect("the audit key is made on first start");
    leadgate::domain::audit::AuditKeys::parse(&key).expect("a valid key");
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let stopping = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    // Within the drain timeout.
    let status = wait_for_exit(&mut child, stopping, Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn migrate_applies_the_migrations_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let status = Command::new(BINARY)
        .args(["migrate", "--database-url", &url])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let again = Command::new(BINARY)
        .args(["migrate", "--database-url", &url])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(again.success(), "migrating twice is harmless");
}

#[test]
fn bad_settings_are_refused_with_a_message() {
    let output = Command::new(BINARY)
        .args(["serve", "--listen", "nowhere"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--listen"));
    let output = Command::new(BINARY)
        .args(["serve", "--idempotency-retention", "1h"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 24h"));
}

#[test]
fn policy_check_reports_the_bad_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, leadgate::domain::policy::DEFAULT_POLICY).unwrap();
    let output = Command::new(BINARY)
        .args(["policy", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("valid, version"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        leadgate::domain::policy::DEFAULT_POLICY.replace("bant_required = 4", "bant_required = 9"),
    )
    .unwrap();
    let output = Command::new(BINARY)
        .args(["policy", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("qualification.bant_required"), "{stderr}");
    assert!(stderr.contains("line "), "{stderr}");
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "PostgreSQL skipped: set LEADGATE_TEST_POSTGRES_URL to run it"
)]
async fn migrate_applies_the_postgres_migrations_and_exits() {
    let db = crate::helpers::TestDatabase::create(&crate::helpers::Backend::postgres()).await;
    for _ in 0..2 {
        let status = Command::new(BINARY)
            .args(["migrate", "--database-url", &db.url])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    assert_eq!(db.leads().await, 0, "the schema exists");
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count() as i64;
    assert_eq!(db.count("SELECT COUNT(*) FROM _sqlx_migrations").await, files);
}

#[test]
fn serve_refuses_a_public_address_without_authentication() {
    let output = Command::new(BINARY)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_remove("LEADGATE_AUTH_TOKENS")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{stderr}"
    );
}

#[test]
fn serve_on_postgres_refuses_to_start_without_audit_keys() {
    let output = Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env(
            "LEADGATE_DATABASE_URL",
            "postgres://leadgate@127.0.0.1:1/leadgate",
        )
        .env_remove("LEADGATE_AUDIT_KEYS")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("LEADGATE_AUDIT_KEYS") && stderr.contains("leadgate auth new-audit-key"),
        "{stderr}"
    );
}

#[test]
fn new_audit_keys_are_random_and_accepted() {
    let make = |id: &str| {
        let output = Command::new(BINARY)
            .args(["auth", "new-audit-key", "--id", id])
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let (a, b) = (make("2026-12"), make("2026-06"));
    assert_ne!(a.split_once(':').unwrap().1, b.split_once(':').unwrap().1);
    assert!(a.starts_with("2026-12:"));
    leadgate::domain::audit::AuditKeys::parse(&format!("{a},{b}")).expect("a valid key list");
}

/// A collector that keeps, for each span it receives, its service's name and its own.
#[derive(Clone, Default)]
struct Collector(std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>);

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService for Collector {
    #[expect(
        clippy::wildcard_enum_match_arm,
        reason = "only string attributes name a service"
    )]
    async fn export(
        &self,
        request: tonic::Request<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest>,
    ) -> Result<
        tonic::Response<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse>,
        tonic::Status,
    > {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(name) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s.name)));
            }
        }
        Ok(tonic::Response::new(Default::default()))
    }
}

/// Starts a server exporting to a fake collector and makes calls until an `rpc` span arrives;
/// returns the service name it came with.
async fn exported_rpc_span(env: &[(&str, &str)]) -> String {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(BINARY)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut service = None;
    for _ in 0..100 {
        if let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            let _ = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
        }
        service = collector
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|(_, name)| name == "rpc")
            .map(|(s, _)| s.clone());
        if service.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    service.unwrap_or_else(|| {
        panic!(
            "an `rpc` span reached the collector: {:?}",
            collector.0.lock().unwrap()
        )
    })
}

#[tokio::test]
async fn traces_are_exported_when_an_otlp_endpoint_is_set() {
    assert_eq!(exported_rpc_span(&[]).await, "leadgate");
}

#[tokio::test]
async fn the_standard_otel_variables_name_the_service() {
    assert_eq!(
        exported_rpc_span(&[("OTEL_SERVICE_NAME", "leadgate-eu")]).await,
        "leadgate-eu"
    );
    let attributes = [(
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.name=leadgate-us,deployment.environment=prod",
    )];
    assert_eq!(exported_rpc_span(&attributes).await, "leadgate-us");
}

#[tokio::test]
async fn metrics_are_served_on_their_own_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics) = (free_port(), free_port());
    let mut child = Command::new(BINARY)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--metrics-listen",
            &format!("127.0.0.1:{metrics}"),
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A demo requested six minutes ago: the five-minute SLA is breached as soon as it is stored.
    let mut late = crate::helpers::cfo_demo_request("late@acme.fr");
    late.events[0].occur_time = Some(crate::helpers::minutes_from_now(-6));
    let mut submitted = false;
    let wanted = [
        "grpc_server_handled_total{grpc_service=\"leadgate.v1.LeadService\",grpc_method=\"SubmitLead\",grpc_code=\"OK\"} 1",
        "grpc_server_handling_seconds_bucket{",
        "leadgate_ready 1",
        "leadgate_db_pool_max",
        "leadgate_sla_breaches_total 1",
        "leadgate_leads{state=",
        "leadgate_audit_sequencer_lag_entries 0",
    ];
    let mut text = String::new();
    for _ in 0..150 {
        if !submitted
            && let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
                .unwrap()
                .connect()
                .await
        {
            submitted = leadgate::grpc::pb::lead_service_client::LeadServiceClient::new(channel)
                .submit_lead(late.clone())
                .await
                .is_ok();
        }
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", metrics)).await {
            stream
                .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .await
                .unwrap();
            text.clear();
            stream.read_to_string(&mut text).await.unwrap();
            // Gauges read from the database are refreshed every few seconds: wait for the lead.
            if wanted.iter().all(|metric| text.contains(metric)) && leads_counted(&text) == 1.0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    for metric in wanted {
        assert!(text.contains(metric), "{metric} in\n{text}");
    }
    assert_eq!(
        leads_counted(&text),
        1.0,
        "one lead, counted in its state:\n{text}"
    );
}

/// The sum of the `leadgate_leads` gauges (one per state).
fn leads_counted(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("leadgate_leads{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
