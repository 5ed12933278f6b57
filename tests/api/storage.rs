//! An OK is a commit: storage that fills up, refuses writes or fails at any step of a write never
//! leaves an acknowledged change unstored, and the server recovers by itself once it can write.

use std::collections::HashSet;
use std::time::Duration;

use leadgate::grpc::pb;
use sqlx::{Connection, Executor};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::contract;
use crate::helpers::*;

/// Submits numbered leads (with request ids) until one is refused; returns the acknowledged
/// lead names and the refusal.
async fn submit_until_refused(app: &TestApp, prefix: &str, max: usize) -> (Vec<String>, tonic::Status) {
    let mut acknowledged = Vec::new();
    for i in 0..max {
        let mut request = cfo_demo_request(&format!("{prefix}-{i}@acme-industrie.fr"));
        request.request_id = format!("{prefix}-{i}");
        match app.leads.clone().submit_lead(request).await {
            Ok(answer) => acknowledged.push(answer.into_inner().lead.unwrap().name),
            Err(status) => return (acknowledged, status),
        }
    }
    panic!("{max} submissions and the storage never filled up");
}

/// The ids of every stored lead, read by another connection.
async fn stored_ids(db: &TestDatabase) -> HashSet<uuid::Uuid> {
    let ids: Vec<uuid::Uuid> = if db.is_sqlite() {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar("SELECT id FROM leads")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar("SELECT id FROM leads")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    };
    ids.into_iter().collect()
}

fn assert_all_stored(acknowledged: &[String], stored: &HashSet<uuid::Uuid>, when: &str) {
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|name| !stored.contains(&lead_uuid(name)))
        .collect();
    assert!(
        missing.is_empty(),
        "{when}: {} acknowledged leads are not stored: {missing:?}",
        missing.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sqlite_database_refuses_writes_loses_nothing_and_recovers_by_itself() {
    let options = Options {
        sqlite_max_size: Some(1024 * 1024),
        ..Options::default()
    };
    let mut app = spawn_app_with(&Backend::Sqlite, options).await;
    // Room the test frees later: a table of its own, written by a connection without the cap.
    {
        let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
        conn.execute("CREATE TABLE filler (b BLOB); INSERT INTO filler VALUES (randomblob(400000))")
            .await
            .unwrap();
    }

    let (mut acknowledged, refusal) = submit_until_refused(&app, "full", 5000).await;
    assert!(!acknowledged.is_empty(), "some leads fit before the cap");
    assert_eq!(refusal.code(), Code::ResourceExhausted, "{refusal:?}");
    assert_eq!(error_reason(&refusal), "STORAGE_FULL");
    {
        use tonic_types::StatusExt;
        assert!(refusal.get_details_retry_info().is_some(), "a retry hint");
    }
    // Every later write is refused too, never answered OK without being stored.
    for i in 0..20 {
        let mut request = cfo_demo_request(&format!("after-{i}@acme-industrie.fr"));
        request.request_id = format!("after-{i}");
        if let Ok(answer) = app.leads.clone().submit_lead(request).await {
            acknowledged.push(answer.into_inner().lead.unwrap().name);
        }
    }
    assert_all_stored(&acknowledged, &stored_ids(&app.db).await, "while full");
    let not_ready = eventually(Duration::from_secs(10), || async {
        app.health_of("").await == ServingStatus::NotServing
    })
    .await;
    assert!(
        not_ready,
        "readiness goes NOT_SERVING while writes cannot succeed"
    );
    for name in &acknowledged {
        app.leads
            .clone()
            .get_lead(pb::GetLeadRequest { name: name.clone() })
            .await
            .expect("an acknowledged lead is readable while the database is full");
    }

    // Space is freed: the server serves again by itself, and writes go through.
    {
        let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
        conn.execute("DROP TABLE filler").await.unwrap();
    }
    let ready = eventually(Duration::from_secs(10), || async {
        app.health_of("").await == ServingStatus::Serving
    })
    .await;
    assert!(ready, "readiness recovers once space is freed, without a restart");
    let mut retry = cfo_demo_request("full-retry@acme-industrie.fr");
    retry.request_id = "full-retry".into();
    let answer = app
        .leads
        .clone()
        .submit_lead(retry)
        .await
        .expect("writes succeed again");
    acknowledged.push(answer.into_inner().lead.unwrap().name);
    app.db.wait_until_chained().await;
    assert_all_stored(&acknowledged, &stored_ids(&app.db).await, "after recovery");

    // And after a restart.
    app.stop().await.unwrap();
    let app = spawn_on(app.db.clone(), Options::default()).await;
    app.wait_until_serving().await;
    assert_all_stored(&acknowledged, &stored_ids(&app.db).await, "after a restart");
    let mut audit = pb::audit_service_client::AuditServiceClient::new(app.channel.clone());
    let verification = audit
        .verify_audit_trail(pb::VerifyAuditTrailRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(verification.ok, "{verification:?}");
    assert_eq!(
        app.db.entries_of_kind("LEAD_SUBMITTED").await,
        app.db.leads().await
    );
}

/// Where an injected fault makes a write fail: a statement on a table, or the commit.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Inserting into this table fails.
    Insert(&'static str),
    /// Updating a row of this table fails.
    Update(&'static str),
    /// The transaction that inserted into this table fails at COMMIT (a deferred constraint).
    CommitAfterInsert(&'static str),
    /// Inserting the lead with this email fails; other leads are written.
    InsertLead(&'static str),
    /// The transaction that inserted the lead with this email fails at COMMIT.
    CommitAfterLead(&'static str),
    /// Updating the lead with this email fails; other leads are written.
    UpdateLead(&'static str),
}

impl Fault {
    fn table(self) -> &'static str {
        match self {
            Fault::Insert(t) | Fault::Update(t) | Fault::CommitAfterInsert(t) => t,
            Fault::InsertLead(_) | Fault::CommitAfterLead(_) | Fault::UpdateLead(_) => "leads",
        }
    }

    /// The trigger's condition (SQL), when it fires for one lead only.
    fn when(self) -> String {
        match self {
            Fault::InsertLead(email) | Fault::CommitAfterLead(email) => {
                format!("WHEN (NEW.email = '{email}')")
            }
            Fault::UpdateLead(email) => format!("WHEN (OLD.email = '{email}')"),
            Fault::Insert(_) | Fault::Update(_) | Fault::CommitAfterInsert(_) => String::new(),
        }
    }

    fn at_commit(self) -> bool {
        matches!(self, Fault::CommitAfterInsert(_) | Fault::CommitAfterLead(_))
    }
}

/// Installs a fault the way any user of the database could: with a trigger.
async fn inject(db: &TestDatabase, fault: Fault) {
    let (table, when) = (fault.table(), fault.when());
    let op = match fault {
        Fault::Update(_) | Fault::UpdateLead(_) => "UPDATE",
        Fault::Insert(_) | Fault::CommitAfterInsert(_) | Fault::InsertLead(_) | Fault::CommitAfterLead(_) => {
            "INSERT"
        }
    };
    let statements: Vec<String> = if db.is_sqlite() {
        if fault.at_commit() {
            // A deferred foreign key is checked at COMMIT, which then fails with the transaction
            // still open.
            vec![
                "CREATE TABLE injected_parent (id INTEGER PRIMARY KEY)".into(),
                "CREATE TABLE injected_child (parent INTEGER REFERENCES injected_parent (id) \
                 DEFERRABLE INITIALLY DEFERRED)"
                    .into(),
                format!(
                    "CREATE TRIGGER injected_fault AFTER INSERT ON {table} {when} \
                     BEGIN INSERT INTO injected_child VALUES (1); END"
                ),
            ]
        } else {
            vec![format!(
                "CREATE TRIGGER injected_fault BEFORE {op} ON {table} {when} \
                 BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
            )]
        }
    } else {
        let function = "CREATE OR REPLACE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql \
                        AS $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$"
            .to_string();
        let trigger = if fault.at_commit() {
            format!(
                "CREATE CONSTRAINT TRIGGER injected_fault AFTER INSERT ON {table} \
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW {when} EXECUTE FUNCTION injected_fault()"
            )
        } else {
            format!(
                "CREATE TRIGGER injected_fault BEFORE {op} ON {table} FOR EACH ROW {when} \
                 EXECUTE FUNCTION injected_fault()"
            )
        };
        vec![function, trigger]
    };
    for sql in statements {
        db.try_execute(&sql).await.unwrap();
    }
}

/// Removes the fault: writes succeed again.
async fn heal(db: &TestDatabase, fault: Fault) {
    if db.is_sqlite() {
        db.try_execute("DROP TRIGGER injected_fault").await.unwrap();
        if fault.at_commit() {
            db.try_execute("DROP TABLE injected_child").await.unwrap();
            db.try_execute("DROP TABLE injected_parent").await.unwrap();
        }
    } else {
        db.try_execute(&format!("DROP TRIGGER injected_fault ON {}", fault.table()))
            .await
            .unwrap();
    }
}

/// What is stored, as another connection sees it.
#[derive(Debug, PartialEq, Eq)]
struct Stored {
    leads: i64,
    entries: i64,
    keys: i64,
    revisions: i64,
}

async fn stored(db: &TestDatabase) -> Stored {
    Stored {
        leads: db.leads().await,
        entries: db.audit_entries().await,
        keys: db.count("SELECT COUNT(*) FROM idempotency_keys").await,
        revisions: db
            .count("SELECT CAST(COALESCE(SUM(revision), 0) AS BIGINT) FROM leads")
            .await,
    }
}

/// A write the test sends, failing then succeeding.
#[derive(Clone, Copy, Debug)]
enum Write {
    NewLead,
    Resubmission,
    Engagement,
    Update,
}

async fn send(app: &TestApp, write: Write, known: &str, n: usize) -> Result<String, tonic::Status> {
    match write {
        Write::NewLead | Write::Resubmission => {
            let email = match write {
                Write::NewLead => format!("fault-{n}@acme-industrie.fr"),
                Write::Resubmission | Write::Engagement | Write::Update => {
                    "known@acme-industrie.fr".to_string()
                }
            };
            let mut request = cfo_demo_request(&email);
            request.request_id = format!("write-{n}");
            let answer = app.leads.clone().submit_lead(request).await?.into_inner();
            Ok(answer.lead.unwrap().name)
        }
        Write::Engagement => {
            let request = pb::RecordEngagementRequest {
                name: known.to_owned(),
                events: vec![engagement(pb::EngagementKind::EmailClick, None)],
                request_id: format!("write-{n}"),
                ..Default::default()
            };
            let answer = app.leads.clone().record_engagement(request).await?.into_inner();
            Ok(answer.lead.unwrap().name)
        }
        Write::Update => {
            // A phone of its own per case, so that each is a change.
            let contact = pb::Contact {
                phone: format!("+33 6 {n:08}"),
                ..Default::default()
            };
            let mut request =
                crate::update::update(known, "", contact, pb::Company::default(), &["contact.phone"]);
            request.request_id = format!("write-{n}");
            Ok(app.leads.clone().update_lead(request).await?.into_inner().name)
        }
    }
}

contract! {
    async fn a_write_failing_at_any_step_acknowledges_nothing_and_leaves_the_store_writable(backend: Backend) {
        let app = spawn_app(&backend).await;
        let known = app
            .leads
            .clone()
            .submit_lead(cfo_demo_request("known@acme-industrie.fr"))
            .await
            .unwrap()
            .into_inner()
            .lead
            .unwrap()
            .name;
        let cases = [
            (Write::NewLead, Fault::Insert("idempotency_keys")),
            (Write::NewLead, Fault::Insert("leads")),
            (Write::NewLead, Fault::Insert("audit_inbox")),
            (Write::NewLead, Fault::CommitAfterInsert("audit_inbox")),
            (Write::Resubmission, Fault::Insert("idempotency_keys")),
            (Write::Resubmission, Fault::Update("leads")),
            (Write::Resubmission, Fault::Insert("audit_inbox")),
            (Write::Resubmission, Fault::CommitAfterInsert("audit_inbox")),
            (Write::Engagement, Fault::Insert("idempotency_keys")),
            (Write::Engagement, Fault::Update("leads")),
            (Write::Engagement, Fault::Insert("audit_inbox")),
            (Write::Engagement, Fault::CommitAfterInsert("idempotency_keys")),
            (Write::Update, Fault::Insert("idempotency_keys")),
            (Write::Update, Fault::Update("leads")),
            (Write::Update, Fault::Insert("audit_inbox")),
            (Write::Update, Fault::CommitAfterInsert("audit_inbox")),
        ];
        for (n, (write, fault)) in cases.into_iter().enumerate() {
            app.db.wait_until_chained().await;
            let before = stored(&app.db).await;
            inject(&app.db, fault).await;
            let refused = send(&app, write, &known, n).await;
            let status = refused.expect_err(&format!("{write:?} with {fault:?} is refused"));
            assert_eq!(status.code(), Code::Internal, "{write:?} with {fault:?}: {status:?}");
            // Several more, so that a connection left inside a transaction would show.
            for _ in 0..3 {
                assert!(send(&app, write, &known, n).await.is_err(), "{write:?} with {fault:?}");
            }
            assert_eq!(stored(&app.db).await, before, "{write:?} with {fault:?} wrote nothing");

            heal(&app.db, fault).await;
            // The same request id now writes for the first time: nothing was kept for it.
            send(&app, write, &known, n)
                .await
                .unwrap_or_else(|s| panic!("{write:?} after {fault:?} healed: {s:?}"));
            let after = stored(&app.db).await;
            assert_eq!(after.keys, before.keys + 1, "{write:?} after {fault:?}: its key");
            assert!(after.revisions > before.revisions, "{write:?} after {fault:?}: its change");
            // And other writes go through too.
            send(&app, Write::NewLead, &known, 1000 + n).await.unwrap();
        }
        app.db.wait_until_chained().await;
        let mut audit = pb::audit_service_client::AuditServiceClient::new(app.channel.clone());
        let verification = audit
            .verify_audit_trail(pb::VerifyAuditTrailRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(verification.ok, "{verification:?}");
    }

    async fn an_erasure_failing_at_any_step_erases_nothing_and_succeeds_once_healed(backend: Backend) {
        let app = spawn_app(&backend).await;
        let cases = [
            Fault::Update("leads"),
            Fault::Insert("audit_inbox"),
            Fault::Insert("idempotency_keys"),
            Fault::Insert("suppressed_emails"),
            Fault::CommitAfterInsert("suppressed_emails"),
        ];
        for (n, fault) in cases.into_iter().enumerate() {
            // A lead of its own per case, with an answer kept for its request id.
            let email = format!("erased-{n}@acme-industrie.fr");
            let mut submission = cfo_demo_request(&email);
            submission.request_id = format!("form-{n}");
            let lead = submitted(&app, submission).await;
            app.db.wait_until_chained().await;
            let before = stored(&app.db).await;
            let suppressed = || app.db.count("SELECT COUNT(*) FROM suppressed_emails");
            let suppressed_before = suppressed().await;
            let erase = || pb::EraseLeadRequest {
                name: lead.name.clone(),
                reason: "DSR".into(),
                request_id: format!("erase-{n}"),
            };
            inject(&app.db, fault).await;
            let refused = app.leads.clone().erase_lead(erase()).await;
            let status = refused.expect_err(&format!("erasing with {fault:?} is refused"));
            assert_eq!(status.code(), Code::Internal, "{fault:?}: {status:?}");
            assert_eq!(stored(&app.db).await, before, "{fault:?}: nothing written");
            assert_eq!(suppressed().await, suppressed_before, "{fault:?}: nothing suppressed");
            let read = app.leads.clone().get_lead(pb::GetLeadRequest { name: lead.name.clone() }).await.unwrap();
            assert_eq!(read.into_inner().contact.unwrap().email, email, "{fault:?}: not erased");

            heal(&app.db, fault).await;
            let answer = app.leads.clone().erase_lead(erase()).await.unwrap().into_inner();
            assert!(answer.erased, "{fault:?} healed: erased now");
            assert_eq!(suppressed().await, suppressed_before + 1);
            let after = stored(&app.db).await;
            // The submission's answer forgotten, the erasure's kept.
            assert_eq!(after.keys, before.keys, "{fault:?} healed");
            assert_eq!(after.entries, before.entries + 1, "{fault:?} healed");
        }
    }

    async fn a_merge_failing_at_any_step_acknowledges_nothing_and_leaves_the_store_writable(backend: Backend) {
        let app = spawn_app(&backend).await;
        // The loser's email of the case whose fault is on the loser's row.
        const LOSER: &str = "merge-loser@acme-industrie.fr";
        let cases = [
            Fault::Insert("idempotency_keys"),
            Fault::Update("leads"),
            Fault::UpdateLead(LOSER),
            Fault::Insert("audit_inbox"),
            Fault::CommitAfterInsert("audit_inbox"),
            Fault::CommitAfterInsert("idempotency_keys"),
        ];
        for (n, fault) in cases.into_iter().enumerate() {
            let winner = submitted(&app, cfo_demo_request(&format!("merge-winner-{n}@acme-industrie.fr"))).await;
            let loser_email = match fault {
                Fault::UpdateLead(email) => email.to_owned(),
                Fault::Insert(_)
                | Fault::Update(_)
                | Fault::CommitAfterInsert(_)
                | Fault::InsertLead(_)
                | Fault::CommitAfterLead(_) => format!("merge-loser-{n}@acme-industrie.fr"),
            };
            let loser = submitted(&app, minimal_submission(&loser_email)).await;
            let request = pb::MergeLeadsRequest {
                request_id: format!("merge-{n}"),
                ..crate::merge::merge(&winner, &loser)
            };
            app.db.wait_until_chained().await;
            let before = stored(&app.db).await;
            inject(&app.db, fault).await;
            for _ in 0..3 {
                let status = app.leads.clone().merge_leads(request.clone()).await.expect_err(&format!("{fault:?}"));
                assert_eq!(status.code(), Code::Internal, "{fault:?}: {status:?}");
            }
            assert_eq!(stored(&app.db).await, before, "{fault:?} wrote nothing");
            let read = app.leads.clone().get_lead(pb::GetLeadRequest { name: loser.name.clone() }).await.unwrap();
            assert_eq!(read.into_inner().name, loser.name, "{fault:?}: the loser is no alias");

            heal(&app.db, fault).await;
            // The same request id now merges for the first time: nothing was kept for it.
            let merged = app.leads.clone().merge_leads(request).await
                .unwrap_or_else(|s| panic!("after {fault:?} healed: {s:?}"));
            assert_eq!(merged.into_inner().lead.unwrap().name, winner.name);
            let after = stored(&app.db).await;
            assert_eq!(after.keys, before.keys + 1, "after {fault:?}: its key");
            assert_eq!(after.revisions, before.revisions + 2, "after {fault:?}: both leads");
            assert_eq!(after.entries, before.entries + 2, "after {fault:?}: one entry on each");
            // And other writes go through too.
            send(&app, Write::NewLead, &winner.name, 2000 + n).await.unwrap();
        }
        app.db.wait_until_chained().await;
        let mut audit = pb::audit_service_client::AuditServiceClient::new(app.channel.clone());
        let verification = audit
            .verify_audit_trail(pb::VerifyAuditTrailRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(verification.ok, "{verification:?}");
    }

    async fn concurrent_writes_beside_a_failing_one_are_each_answered_for_what_was_stored(backend: Backend) {
        // Concurrent writes share transactions (SQLite's group commit): a write failing in a
        // statement fails alone; one failing at COMMIT may take the writes of its transaction
        // with it, but every answer tells the truth — acknowledged is stored, refused is not.
        let app = spawn_app(&backend).await;
        for (round, fault) in [
            Fault::InsertLead("poisoned-0@acme-industrie.fr"),
            Fault::CommitAfterLead("poisoned-1@acme-industrie.fr"),
        ]
        .into_iter()
        .enumerate()
        {
            inject(&app.db, fault).await;
            let before = stored_ids(&app.db).await;
            // On SQLite, holding the write lock while the calls arrive queues them all for one
            // transaction, the poisoned one among them.
            let lock = match app.db.is_sqlite() {
                true => {
                    let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
                    conn.execute("BEGIN IMMEDIATE").await.unwrap();
                    Some(conn)
                }
                false => None,
            };
            let calls: Vec<_> = (0..48)
                .map(|i| {
                    let mut client = app.leads.clone();
                    let email = match i {
                        24 => format!("poisoned-{round}@acme-industrie.fr"),
                        _ => format!("neighbour-{round}-{i}@acme-industrie.fr"),
                    };
                    let mut request = cfo_demo_request(&email);
                    request.request_id = format!("group-{round}-{i}");
                    tokio::spawn(async move { (i, client.submit_lead(request).await) })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(lock);
            let (mut acknowledged, mut refused) = (Vec::new(), Vec::new());
            for call in calls {
                match call.await.unwrap() {
                    (i, Ok(answer)) => acknowledged.push((i, answer.into_inner().lead.unwrap().name)),
                    (i, Err(status)) => {
                        assert_eq!(status.code(), Code::Internal, "{fault:?}, call {i}: {status:?}");
                        refused.push(i);
                    }
                }
            }
            assert!(refused.contains(&24), "{fault:?}: the poisoned write is refused");
            if matches!(fault, Fault::InsertLead(_)) {
                assert_eq!(refused, vec![24], "{fault:?}: a failing statement fails its write alone");
            }
            let stored = stored_ids(&app.db).await;
            let names: Vec<String> = acknowledged.iter().map(|(_, name)| name.clone()).collect();
            assert_all_stored(&names, &stored, &format!("{fault:?}"));
            assert_eq!(
                stored.len() - before.len(),
                acknowledged.len(),
                "{fault:?}: nothing refused was stored"
            );
            heal(&app.db, fault).await;
            // The refused ones were not written: their request ids write them now.
            for i in refused {
                let email = match i {
                    24 => format!("poisoned-{round}@acme-industrie.fr"),
                    _ => format!("neighbour-{round}-{i}@acme-industrie.fr"),
                };
                let mut request = cfo_demo_request(&email);
                request.request_id = format!("group-{round}-{i}");
                let answer = app.leads.clone().submit_lead(request).await.unwrap().into_inner();
                assert!(answer.created, "{fault:?}, call {i}: created on the retry");
                let name = answer.lead.unwrap().name;
                assert_all_stored(&[name], &stored_ids(&app.db).await, &format!("{fault:?}, retry {i}"));
            }
        }
        assert_eq!(app.db.leads().await, 2 * 48, "every write stored once");
        app.db.wait_until_chained().await;
        assert_eq!(app.db.entries_of_kind("LEAD_SUBMITTED").await, app.db.leads().await);
    }

    async fn the_sequencer_failing_at_any_step_chains_every_entry_once_it_can(backend: Backend) {
        let app = spawn_app(&backend).await;
        for (n, fault) in [Fault::Insert("audit_log"), Fault::CommitAfterInsert("audit_log")].into_iter().enumerate() {
            app.db.wait_until_chained().await;
            inject(&app.db, fault).await;
            let name = send(&app, Write::NewLead, "", n).await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(
                app.db.count("SELECT COUNT(*) FROM audit_inbox").await,
                1,
                "{fault:?}: the entry waits in the inbox"
            );
            heal(&app.db, fault).await;
            app.db.wait_until_chained().await;
            assert_eq!(app.db.audit_entries_of(&name).await, 1, "{fault:?}: chained once");
        }
        let mut audit = pb::audit_service_client::AuditServiceClient::new(app.channel.clone());
        let verification = audit
            .verify_audit_trail(pb::VerifyAuditTrailRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(verification.ok, "{verification:?}");
        assert_eq!(verification.verified_count, app.db.count("SELECT COUNT(*) FROM audit_log").await);
    }

    async fn a_policy_activation_failing_keeps_the_replica_not_ready_until_it_succeeds(backend: Backend) {
        let first = spawn_app(&backend).await;
        let fault = Fault::Insert("policy_activations");
        inject(&first.db, fault).await;
        let other_policy = policy_with(&[("marketing_qualified = 50", "marketing_qualified = 55")]);
        let second = spawn_on(first.db.clone(), Options { policy: other_policy, ..Options::default() }).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(second.health_of("").await, ServingStatus::NotServing, "not ready before its policy is recorded");
        assert_eq!(first.db.count("SELECT COUNT(*) FROM policies").await, 1, "nothing half-written");
        heal(&first.db, fault).await;
        // The next attempt comes after the replica's backoff (at most 5 s).
        let ready = eventually(Duration::from_secs(20), || async {
            second.health_of("").await == ServingStatus::Serving
        })
        .await;
        assert!(ready, "ready once its policy is recorded");
        assert_eq!(first.db.count("SELECT COUNT(*) FROM policies").await, 2);
        assert_eq!(first.db.entries_of_kind("POLICY_ACTIVATED").await, 2);
    }
}

/// Makes the test's PostgreSQL database read-only (or writable again) for new sessions, and ends
/// the sessions open on it, as a failover to a standby would.
async fn set_read_only(db: &TestDatabase, read_only: bool) {
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    conn.execute("SET default_transaction_read_only = off")
        .await
        .unwrap();
    let setting = if read_only {
        "SET default_transaction_read_only = on"
    } else {
        "RESET default_transaction_read_only"
    };
    let name = current_database(&mut conn).await;
    conn.execute(format!("ALTER DATABASE \"{name}\" {setting}").as_str())
        .await
        .unwrap();
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await
    .unwrap();
}

async fn current_database(conn: &mut sqlx::PgConnection) -> String {
    sqlx::query_scalar("SELECT current_database()")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(postgres_tests),
    ignore = "PostgreSQL skipped: set LEADGATE_TEST_POSTGRES_URL to run it"
)]
async fn a_read_only_postgres_database_refuses_writes_and_readiness_follows_it_postgres() {
    let app = spawn_app(&Backend::postgres()).await;
    let lead = app
        .leads
        .clone()
        .submit_lead(cfo_demo_request("before@acme-industrie.fr"))
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap();
    set_read_only(&app.db, true).await;

    // The first calls may meet connections that were just ended; then writes are refused.
    let refused = {
        let mut last = None;
        for i in 0..50 {
            match app
                .leads
                .clone()
                .submit_lead(cfo_demo_request(&format!("ro-{i}@acme-industrie.fr")))
                .await
            {
                Err(status)
                    if status.code() == Code::Unavailable
                        && error_reason(&status) == "DATABASE_READ_ONLY" =>
                {
                    last = Some(status);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                Ok(answer) => panic!("a write was acknowledged by a read-only database: {answer:?}"),
            }
        }
        last.expect("writes are refused as DATABASE_READ_ONLY")
    };
    {
        use tonic_types::StatusExt;
        assert!(refused.get_details_retry_info().is_some(), "a retry hint");
    }
    let not_ready = eventually(Duration::from_secs(10), || async {
        app.health_of("").await == ServingStatus::NotServing
    })
    .await;
    assert!(not_ready, "a database that refuses writes is not ready");
    app.leads
        .clone()
        .get_lead(pb::GetLeadRequest {
            name: lead.name.clone(),
        })
        .await
        .expect("reads still work");

    set_read_only(&app.db, false).await;
    let ready = eventually(Duration::from_secs(10), || async {
        app.health_of("").await == ServingStatus::Serving
    })
    .await;
    assert!(
        ready,
        "ready again once the database takes writes, without a restart"
    );
    let written = eventually(Duration::from_secs(10), || async {
        app.leads
            .clone()
            .submit_lead(cfo_demo_request("after@acme-industrie.fr"))
            .await
            .is_ok()
    })
    .await;
    assert!(written, "writes go through again");
    assert_eq!(app.db.leads().await, 2, "only the acknowledged leads are stored");
}

/// An import failing at each step of its batch's write.
mod import_faults {
    use super::*;

    /// The rows of the import the fault tests send: new leads, one resubmission of `known@`, and
    /// `poisoned-{n}@` (the row a per-lead fault aims at).
    fn fault_import(n: usize) -> Vec<pb::SubmitLeadRequest> {
        let mut rows: Vec<_> = (0..4)
            .map(|i| cfo_demo_request(&format!("import-{n}-{i}@acme-industrie.fr")))
            .collect();
        rows.insert(2, cfo_demo_request("known@acme-industrie.fr"));
        rows.push(cfo_demo_request(&format!("poisoned-{n}@acme-industrie.fr")));
        rows
    }

    /// Every acknowledged row's lead is stored at the revision its etag says, or later.
    async fn assert_rows_stored(db: &TestDatabase, answer: &pb::ImportLeadsResponse, when: &str) {
        let stored = stored_ids(db).await;
        for result in &answer.results {
            assert!(
                stored.contains(&lead_uuid(&result.lead)),
                "{when}: row {} acknowledged but not stored",
                result.row
            );
        }
    }

    contract! {
        async fn an_import_failing_at_any_step_acknowledges_nothing_unstored_and_a_resend_writes_each_row_once(backend: Backend) {
            use pb::import_lead_result::Outcome;
            let app = spawn_app(&backend).await;
            submitted(&app, cfo_demo_request("known@acme-industrie.fr")).await;
            let cases = [
                Fault::Insert("idempotency_keys"),
                Fault::Insert("leads"),
                Fault::Update("leads"),
                Fault::Insert("audit_inbox"),
                Fault::CommitAfterInsert("audit_inbox"),
                Fault::InsertLead("poisoned-5@acme-industrie.fr"),
                Fault::CommitAfterLead("poisoned-6@acme-industrie.fr"),
            ];
            for (n, fault) in cases.into_iter().enumerate() {
                app.db.wait_until_chained().await;
                let before = stored(&app.db).await;
                inject(&app.db, fault).await;
                let request = || crate::import::import(&format!("fault-{n}"), fault_import(n));
                let status = app
                    .leads
                    .clone()
                    .import_leads(request())
                    .await
                    .expect_err(&format!("an import with {fault:?} fails"));
                assert_eq!(status.code(), Code::Internal, "{fault:?}: {status:?}");
                let during = stored(&app.db).await;
                // A row whose statement failed is undone alone and its neighbours commit (they
                // are answered from their keys when the import is sent again); a failed commit
                // undoes the whole batch. (new leads, keys) the failed call stored:
                let expected = match fault {
                    // The resubmission updates its lead.
                    Fault::Insert("leads") => (0, 1),
                    // Only the resubmission updates.
                    Fault::Update(_) => (5, 5),
                    // Every row but the poisoned one.
                    Fault::InsertLead(_) => (4, 5),
                    Fault::Insert(_)
                    | Fault::CommitAfterInsert(_)
                    | Fault::CommitAfterLead(_)
                    | Fault::UpdateLead(_) => (0, 0),
                };
                assert_eq!(
                    (during.leads - before.leads, during.keys - before.keys),
                    expected,
                    "{fault:?}"
                );
                assert_eq!(during.entries - before.entries, expected.1, "{fault:?}: an entry per row kept");
                heal(&app.db, fault).await;
                let answer = crate::import::imported(&app, request()).await;
                assert_eq!(
                    crate::import::outcomes(&answer),
                    [Outcome::Created, Outcome::Created, Outcome::Deduplicated, Outcome::Created, Outcome::Created, Outcome::Created],
                    "{fault:?}"
                );
                assert_rows_stored(&app.db, &answer, &format!("after {fault:?} healed")).await;
                let after = stored(&app.db).await;
                assert_eq!(after.leads, before.leads + 5, "{fault:?}: each new row created once");
                assert_eq!(after.keys, before.keys + 6, "{fault:?}: one key per row");
                assert_eq!(
                    after.entries,
                    before.entries + 6,
                    "{fault:?}: one audit entry per row, none twice"
                );
                // Sent once more: the same answers, nothing written.
                assert_eq!(crate::import::imported(&app, request()).await, answer, "{fault:?}");
                assert_eq!(stored(&app.db).await, after, "{fault:?}");
            }
            app.db.wait_until_chained().await;
            let mut audit = pb::audit_service_client::AuditServiceClient::new(app.channel.clone());
            let verification = audit
                .verify_audit_trail(pb::VerifyAuditTrailRequest::default())
                .await
                .unwrap()
                .into_inner();
            assert!(verification.ok, "{verification:?}");
        }
    }
}

/// The account projection failing at each step of its write: nothing of the run is kept (its
/// position, accounts and contacts go together), and once healed the next run completes.
mod account_faults {
    use super::*;

    async fn position(db: &TestDatabase) -> i64 {
        db.count("SELECT position FROM account_projection").await
    }

    async fn projected(db: &TestDatabase) -> bool {
        db.wait_until_chained().await;
        eventually(Duration::from_secs(10), || async {
            position(db).await == db.count("SELECT COALESCE(MAX(position), 0) FROM audit_log").await
        })
        .await
    }

    contract! {
        async fn an_account_projection_failing_at_any_step_keeps_nothing_and_completes_once_healed(backend: Backend) {
            let app = spawn_app(&backend).await;
            assert!(projected(&app.db).await);
            let cases = [
                Fault::Update("account_projection"),
                Fault::Insert("accounts"),
                Fault::Insert("account_contacts"),
                Fault::CommitAfterInsert("account_contacts"),
            ];
            for (n, fault) in cases.into_iter().enumerate() {
                let n = n as i64;
                let before = position(&app.db).await;
                inject(&app.db, fault).await;
                submitted(&app, cfo_demo_request(&format!("fault-{n}@acme-industrie.fr"))).await;
                app.db.wait_until_chained().await;
                // Several of the projection's runs (it polls every 250 ms) meet the fault.
                tokio::time::sleep(Duration::from_millis(1500)).await;
                assert_eq!(position(&app.db).await, before, "{fault:?}: the position stays");
                assert_eq!(app.db.count("SELECT COUNT(*) FROM account_contacts").await, n, "{fault:?}");
                let contacts = "SELECT COALESCE(MAX(contacts), 0) FROM accounts";
                assert_eq!(app.db.count(contacts).await, n, "{fault:?}: the account unchanged");
                heal(&app.db, fault).await;
                assert!(projected(&app.db).await, "{fault:?}: the next run completes");
                assert_eq!(app.db.count("SELECT COUNT(*) FROM account_contacts").await, n + 1, "{fault:?}");
                assert_eq!(app.db.count(contacts).await, n + 1, "{fault:?}: counted once");
            }
        }
    }
}
