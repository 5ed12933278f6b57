//! Bounded messages, deadlines and concurrency: each refusal has its documented code and writes
//! nothing.

use std::time::{Duration, Instant};

use leadgate::grpc::pb;
use sqlx::{Connection, Executor};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::contract;
use crate::helpers::*;

contract! {
    async fn an_oversized_request_is_refused_and_writes_nothing(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut request = minimal_submission("big@example.com");
        request.external_reference = "x".repeat(2 * 1024 * 1024);
        let status = app.leads.clone().submit_lead(request).await.unwrap_err();
        assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
        assert_eq!(error_reason(&status), "OUT_OF_RANGE", "tonic's own errors carry ErrorInfo too");
        assert_eq!(app.db.leads().await, 0);
    }

    async fn a_call_past_the_deadline_cap_fails_and_load_is_shed(backend: Backend) {
        let limits = leadgate::server::Limits {
            max_call_duration: Duration::from_millis(600),
            max_concurrent_calls: 1,
            ..Default::default()
        };
        let app = spawn_app_with(&backend, Options { limits, ..Options::default() }).await;
        let lead = app.leads.clone().submit_lead(minimal_submission("slow@example.com")).await.unwrap().into_inner().lead.unwrap();
        let entries = app.db.audit_entries_of(&lead.name).await;

        // Someone else holds the lead's row (or, on SQLite, the database's write lock).
        let lock: Box<dyn std::any::Any + Send> = if app.db.is_sqlite() {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            conn.execute("BEGIN IMMEDIATE").await.unwrap();
            Box::new(conn)
        } else {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            conn.execute("BEGIN").await.unwrap();
            conn.execute("SELECT id FROM leads FOR UPDATE").await.unwrap();
            Box::new(conn)
        };

        let slow = {
            let mut client = app.leads.clone();
            let mut request = tonic::Request::new(pb::RecordEngagementRequest {
                name: lead.name.clone(),
                events: vec![engagement(pb::EngagementKind::EmailClick, None)],
                ..Default::default()
            });
            request.set_timeout(Duration::from_secs(3600));
            tokio::spawn(async move {
                let started = Instant::now();
                (client.record_engagement(request).await, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let shed = app.leads.clone().get_lead(pb::GetLeadRequest { name: lead.name.clone() }).await.unwrap_err();
        assert_eq!(shed.code(), Code::ResourceExhausted);
        assert_eq!(error_reason(&shed), "OVERLOADED");
        assert_eq!(app.health_of("").await, ServingStatus::Serving, "probes are never shed");

        let (answer, took) = slow.await.unwrap();
        let status = answer.unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert_eq!(error_reason(&status), "DEADLINE_EXCEEDED");
        assert!(took < Duration::from_secs(3), "cut at the server's cap, not the client's hour: {took:?}");
        drop(lock);

        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = eventually(Duration::from_secs(10), || async {
            app.leads.clone().get_lead(pb::GetLeadRequest { name: lead.name.clone() }).await.is_ok()
        })
        .await;
        assert!(after, "the server serves again");
        let unchanged = app.leads.clone().get_lead(pb::GetLeadRequest { name: lead.name.clone() }).await.unwrap().into_inner();
        assert_eq!(unchanged.etag, lead.etag, "the cut call wrote nothing");
        assert_eq!(app.db.audit_entries_of(&lead.name).await, entries);
    }

    async fn a_hundred_writers_with_one_etag_let_exactly_one_through(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = app.leads.clone().submit_lead(minimal_submission("race@example.com")).await.unwrap().into_inner().lead.unwrap();
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let mut client = app.leads.clone();
                let request = pb::RecordEngagementRequest {
                    name: lead.name.clone(),
                    events: vec![pb::EngagementEvent { kind: pb::EngagementKind::EmailClick as i32, occur_time: None, subject: format!("writer {i}") }],
                    etag: lead.etag.clone(),
                    ..Default::default()
                };
                tokio::spawn(async move { client.record_engagement(request).await })
            })
            .collect();
        let mut ok = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => ok += 1,
                Err(status) => {
                    assert_eq!(status.code(), Code::Aborted, "{status:?}");
                    assert_eq!(error_reason(&status), "ETAG_MISMATCH");
                }
            }
        }
        assert_eq!(ok, 1, "exactly one writer wins");
        let after = app.leads.clone().get_lead(pb::GetLeadRequest { name: lead.name.clone() }).await.unwrap().into_inner();
        assert_eq!(after.etag, "\"2\"", "one change, nothing lost or doubled");
        assert_eq!(app.db.audit_entries_of(&lead.name).await, 2);
    }

    async fn writers_without_an_etag_all_apply_to_the_latest_state(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = app.leads.clone().submit_lead(minimal_submission("many@example.com")).await.unwrap().into_inner().lead.unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let mut client = app.leads.clone();
                let request = pb::RecordEngagementRequest { name: lead.name.clone(), events: vec![engagement(pb::EngagementKind::EmailOpen, None)], ..Default::default() };
                tokio::spawn(async move { client.record_engagement(request).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().expect("retried internally until applied");
        }
        assert_eq!(app.db.audit_entries_of(&lead.name).await, 21, "every change applied once");
    }
}

/// A thousand identical submissions with one request id, spread over two server processes on
/// one PostgreSQL database: one lead, one audit entry, one answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(postgres_tests),
    ignore = "PostgreSQL skipped: set LEADGATE_TEST_POSTGRES_URL to run it"
)]
async fn a_thousand_identical_submissions_across_two_processes_make_one_lead_postgres() {
    use std::process::{Command, Stdio};
    let db = TestDatabase::create(&Backend::postgres()).await;
    let mut replicas = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_leadgate"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("LEADGATE_DATABASE_URL", &db.url)
            .env("LEADGATE_AUDIT_KEYS", TEST_AUDIT_KEYS)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        replicas.push(ChildGuard(child));
        let endpoint = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
        let mut channel = None;
        for _ in 0..200 {
            if let Ok(c) = endpoint.connect().await {
                let health = tonic_health::pb::health_client::HealthClient::new(c.clone())
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                if health.is_ok_and(|h| h.into_inner().status == ServingStatus::Serving as i32) {
                    channel = Some(c);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        clients.push(pb::lead_service_client::LeadServiceClient::new(
            channel.expect("the replica serves"),
        ));
    }
    let mut request = cfo_demo_request("once@acme.fr");
    request.request_id = "2f0c8a4e-6b1d-4f7e-9d3a-1c5b7e9f0a21".into();
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let mut client = clients[i % 2].clone();
            let request = request.clone();
            tokio::spawn(async move { client.submit_lead(request).await.map(|r| r.into_inner()) })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap().expect("every submission is answered"));
    }
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "every OK answer is the first one"
    );
    assert!(answers[0].created);
    assert_eq!(db.leads().await, 1);
    assert_eq!(db.entries_of_kind("LEAD_SUBMITTED").await, 1);
    assert_eq!(db.entries_of_kind("LEAD_RESUBMITTED").await, 0);
    assert_eq!(db.count("SELECT COUNT(*) FROM idempotency_keys").await, 1);

    let mut different = request.clone();
    different.contact.as_mut().unwrap().email = "someone-else@acme.fr".into();
    let status = clients[1].clone().submit_lead(different).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&status), "REQUEST_ID_REUSED");
    assert_eq!(db.leads().await, 1, "nothing written");
}

struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
