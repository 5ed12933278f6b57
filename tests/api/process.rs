//! The binary as operators run it: `serve` with SIGTERM, `migrate`, `policy check`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const BINARY: &str = env!("CARGO_BIN_EXE_leadgate");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
    let stopping = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "exits within the drain timeout"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
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
