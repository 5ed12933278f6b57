//! Speed to lead: breaches are recorded by the sweeper, once.

use std::time::Duration;

use leadgate::grpc::pb;
use pb::CriterionStatus::{Met, NotMet};

use crate::contract;
use crate::helpers::*;

contract! {
    async fn an_unanswered_clock_is_recorded_as_one_breach(backend: Backend) {
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

    /// Nobody answered the first hand-off and the lead went to nurturing; when it comes back to
    /// sales, a new clock runs for the new hand-off.
    async fn a_lead_back_with_sales_after_a_breached_clock_gets_a_new_clock(backend: Backend) {
        let options = Options {
            policy: policy_with(&[
                ("demo_request_first_touch = \"5m\"", "demo_request_first_touch = \"1s\""),
                ("revisit_lead_days = 30", "revisit_lead_days = 0"),
            ]),
            sweep_interval: Duration::from_millis(100),
            ..Options::default()
        };
        let app = spawn_app_with(&backend, options).await;
        let lead = app.leads.clone().submit_lead(cfo_demo_request("again@acme.fr")).await.unwrap().into_inner().lead.unwrap();
        let name = lead.name.clone();
        assert!(eventually(Duration::from_secs(10), || async { get(&app, &name).await.sla.unwrap().breach_time.is_some() }).await, "the first clock breaches");

        // The budget comes in two seconds: nurtured until then, then back with sales.
        let mut budget_soon = findings(Met, NotMet, Met, Met);
        let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
        budget_soon.budget.as_mut().unwrap().available_time = Some(prost_types::Timestamp { seconds: soon.timestamp(), nanos: soon.timestamp_subsec_nanos() as i32 });
        let call = pb::RecordDiscoveryCallRequest { name: name.clone(), findings: Some(budget_soon), ..Default::default() };
        let nurtured = app.leads.clone().record_discovery_call(call).await.unwrap().into_inner().lead.unwrap();
        assert_eq!(nurtured.state, pb::LeadState::Nurturing as i32);
        assert!(
            eventually(Duration::from_secs(10), || async { get(&app, &name).await.state == pb::LeadState::MarketingQualified as i32 }).await,
            "the sweeper brings the lead back to sales"
        );

        let sla = get(&app, &name).await.sla.unwrap();
        assert_eq!(sla.trigger, pb::SlaTrigger::MarketingQualified as i32, "{sla:?}");
        assert_eq!(sla.state, pb::SlaState::OnTrack as i32, "{sla:?}");
        assert!(sla.breach_time.is_none());
        assert!(sla.start_time.unwrap().seconds >= soon.timestamp());
        assert_eq!(app.db.entries_of_kind("SLA_BREACHED").await, 1);
    }

    async fn a_first_touch_in_time_is_never_a_breach(backend: Backend) {
        let app = spawn_app_with(&backend, short_demo_target()).await;
        let lead = submit(&app, "quick@acme.fr").await;
        // Nobody calls this one: its breach shows the sweeper ran past the due time.
        let ignored = submit(&app, "ignored@acme.fr").await;
        let touched = touch(&app, &lead.name).await;
        assert_eq!(touched.sla.unwrap().state, pb::SlaState::Met as i32, "touched within the target");

        sleep_past(&ignored.sla.unwrap().due_time.unwrap()).await;
        assert!(
            eventually(Duration::from_secs(10), || async { get(&app, &ignored.name).await.sla.unwrap().breach_time.is_some() }).await,
            "the sweeper records the ignored lead's breach"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let kinds: Vec<_> = app.db.audit_bodies_of(&lead.name).await.into_iter().map(|(kind, _, _)| kind).collect();
        assert_eq!(kinds, ["LEAD_SUBMITTED", "CONTACT_ATTEMPT_RECORDED"], "no breach was ever recorded");
        let sla = get(&app, &lead.name).await.sla.unwrap();
        assert_eq!(sla.state, pb::SlaState::Met as i32);
        assert!(sla.breach_time.is_none());
        assert_eq!(app.db.entries_of_kind("SLA_BREACHED").await, 1, "the ignored lead's only");
    }

    async fn a_first_touch_after_the_due_time_is_one_breach(backend: Backend) {
        let app = spawn_app_with(&backend, short_demo_target()).await;
        let lead = submit(&app, "slow@acme.fr").await;
        sleep_past(&lead.sla.unwrap().due_time.unwrap()).await;
        let touched = touch(&app, &lead.name).await.sla.unwrap();
        assert_eq!(touched.state, pb::SlaState::Breached as i32);
        assert!(touched.breach_time.is_some() && touched.first_touch_time.is_some());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let kinds: Vec<_> = app.db.audit_bodies_of(&lead.name).await.into_iter().map(|(kind, _, _)| kind).collect();
        assert_eq!(kinds.iter().filter(|k| *k == "SLA_BREACHED").count(), 1, "{kinds:?}");
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

/// The CFO's demo request, with a 3-second first-touch target and the sweeper running every
/// 100 ms, so that a test can wait past the due time.
fn short_demo_target() -> Options {
    Options {
        policy: policy_with(&[(
            "demo_request_first_touch = \"5m\"",
            "demo_request_first_touch = \"3s\"",
        )]),
        sweep_interval: Duration::from_millis(100),
        ..Options::default()
    }
}

async fn submit(app: &TestApp, email: &str) -> pb::Lead {
    let lead = app
        .leads
        .clone()
        .submit_lead(cfo_demo_request(email))
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap();
    assert_eq!(
        lead.sla.as_ref().unwrap().trigger,
        pb::SlaTrigger::DemoRequest as i32
    );
    lead
}

async fn get(app: &TestApp, name: &str) -> pb::Lead {
    app.leads
        .clone()
        .get_lead(pb::GetLeadRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
}

async fn touch(app: &TestApp, name: &str) -> pb::Lead {
    let attempt = pb::RecordContactAttemptRequest {
        name: name.into(),
        attempt: Some(pb::ContactAttempt {
            channel: pb::ContactChannel::Phone as i32,
            outcome: pb::ContactOutcome::Voicemail as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    app.leads
        .clone()
        .record_contact_attempt(attempt)
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap()
}

/// Sleeps until `due` has passed, plus a few sweeps.
async fn sleep_past(due: &prost_types::Timestamp) {
    let due = chrono::DateTime::from_timestamp(due.seconds, due.nanos as u32).unwrap();
    let left = (due - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(500)).await;
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
