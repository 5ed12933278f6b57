//! Speed to lead: breaches are recorded by the sweeper, once.

use std::time::Duration;

use leadgate::grpc::pb;

use crate::contract;
use crate::helpers::*;

contract! {
    async fn a_late_first_touch_is_recorded_as_one_breach(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut request = cfo_demo_request("late@acme.fr");
        // The demo was requested six minutes ago: the five minutes are already gone.
        request.events[0].occur_time = Some(minutes_from_now(-6));
        let lead = app.leads.clone().submit_lead(request).await.unwrap().into_inner().lead.unwrap();
        let name = lead.name.clone();
        let breached = eventually(Duration::from_secs(10), || {
            let mut client = app.leads.clone();
            let name = name.clone();
            async move {
                let lead = client.get_lead(pb::GetLeadRequest { name }).await.unwrap().into_inner();
                lead.sla.unwrap().breach_time.is_some()
            }
        })
        .await;
        assert!(breached, "the sweeper records the breach");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(app.db.entries_of_kind("SLA_BREACHED").await, 1, "once, whatever the sweeps");
        let lead = app.leads.clone().get_lead(pb::GetLeadRequest { name }).await.unwrap().into_inner();
        assert_eq!(lead.sla.unwrap().state, pb::SlaState::Breached as i32);
    }

    async fn a_first_touch_in_time_is_never_a_breach(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = app.leads.clone().submit_lead(cfo_demo_request("quick@acme.fr")).await.unwrap().into_inner().lead.unwrap();
        let attempt = pb::RecordContactAttemptRequest {
            name: lead.name.clone(),
            attempt: Some(pb::ContactAttempt { channel: pb::ContactChannel::Phone as i32, outcome: pb::ContactOutcome::Voicemail as i32, ..Default::default() }),
            ..Default::default()
        };
        let lead = app.leads.clone().record_contact_attempt(attempt).await.unwrap().into_inner().lead.unwrap();
        assert_eq!(lead.sla.unwrap().state, pb::SlaState::Met as i32);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.db.entries_of_kind("SLA_BREACHED").await, 0);
    }

    async fn leads_the_sweeper_cannot_sweep_never_starve_the_others(backend: Backend) {
        let app = spawn_app(&backend).await;
        // More stuck leads than one sweep reads, all due before the lead that must be swept.
        for i in 0..205 {
            app.leads.clone().submit_lead(minimal_submission(&format!("stuck-{i}@acme.fr"))).await.unwrap();
        }
        app.db
            .try_execute("UPDATE leads SET document = 'not a lead', sla_due_time = 1 WHERE email LIKE 'stuck-%'")
            .await
            .unwrap();
        let mut request = cfo_demo_request("due@acme.fr");
        request.events[0].occur_time = Some(minutes_from_now(-6));
        let lead = app.leads.clone().submit_lead(request).await.unwrap().into_inner().lead.unwrap();
        let breached = eventually(Duration::from_secs(15), || async {
            app.db.entries_of_kind("SLA_BREACHED").await == 1
        })
        .await;
        assert!(breached, "the due lead is swept past the stuck ones");
        let lead = app.leads.clone().get_lead(pb::GetLeadRequest { name: lead.name }).await.unwrap().into_inner();
        assert_eq!(lead.sla.unwrap().state, pb::SlaState::Breached as i32);
    }
}

/// Two server processes sweep one PostgreSQL database: every breach is recorded exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(postgres_tests),
    ignore = "PostgreSQL skipped: set LEADGATE_TEST_POSTGRES_URL to run it"
)]
async fn two_replicas_record_each_breach_exactly_once_postgres() {
    use std::process::{Command, Stdio};
    let db = TestDatabase::create(&Backend::postgres()).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("fast.toml");
    std::fs::write(
        &policy,
        leadgate::domain::policy::DEFAULT_POLICY.replace(
            "demo_request_first_touch = \"5m\"",
            "demo_request_first_touch = \"2s\"",
        ),
    )
    .unwrap();
    let mut replicas = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_leadgate"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--sweep-interval",
                "100ms",
            ])
            .arg("--policy")
            .arg(&policy)
            .env("LEADGATE_DATABASE_URL", &db.url)
            .env("LEADGATE_AUDIT_KEYS", TEST_AUDIT_KEYS)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        replicas.push(KillOnDrop(child));
        let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
        let mut connected = None;
        for _ in 0..200 {
            if let Ok(c) = channel.clone().connect().await {
                connected = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        clients.push(pb::lead_service_client::LeadServiceClient::new(
            connected.expect("the replica listens"),
        ));
    }
    let mut names = Vec::new();
    for i in 0..20 {
        let mut client = clients[i % 2].clone();
        let mut submitted = None;
        for _ in 0..100 {
            // The second replica may still be migrating (UNAVAILABLE): retry.
            match client
                .submit_lead(cfo_demo_request(&format!("breach{i}@acme.fr")))
                .await
            {
                Ok(r) => {
                    submitted = Some(r.into_inner().lead.unwrap().name);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        names.push(submitted.expect("the replica accepts submissions"));
    }
    let all = eventually(Duration::from_secs(20), || async {
        db.entries_of_kind("SLA_BREACHED").await >= 20
    })
    .await;
    assert!(all, "both replicas sweep");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        db.entries_of_kind("SLA_BREACHED").await,
        20,
        "one breach per lead, never two"
    );
    for name in &names {
        assert_eq!(
            db.audit_entries_of(name).await,
            2,
            "{name}: submission and breach"
        );
    }
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
