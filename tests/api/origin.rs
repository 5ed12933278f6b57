//! The trail's origin: only what leadgate wrote and sealed is chained. Rows anyone else writes
//! into the inbox are set aside, listed for operators, and never hold up the rest.

use std::process::Command;

use leadgate::domain::audit::AuditKeys;
use leadgate::grpc::pb;
use pb::audit_service_client::AuditServiceClient;

use crate::contract;
use crate::helpers::*;

const BINARY: &str = env!("CARGO_BIN_EXE_leadgate");

/// An inbox row as a forger with the database's credentials would write it.
fn forged_row(db: &TestDatabase, kind: &str, actor: &str, body: &str, seal: Option<(&str, &[u8])>) -> String {
    let (key_id, tag) = match seal {
        Some((id, tag)) => (format!("'{id}'"), db.bytes_literal(tag)),
        None => ("NULL".into(), "NULL".into()),
    };
    format!("('{kind}', 1700000000000000, '{actor}', 'v', '{body}', {key_id}, {tag})")
}

contract! {
    async fn rows_leadgate_did_not_write_are_quarantined_never_chained_and_never_in_the_way(backend: Backend) {
        let app = spawn_app(&backend).await;
        app.leads.clone().submit_lead(cfo_demo_request("first@acme.fr")).await.unwrap();
        app.db.wait_until_chained().await;
        let chained_before = app.db.count("SELECT COUNT(*) FROM audit_log").await;

        // A seal made with another key, and a genuine seal moved onto altered content.
        let other = AuditKeys::parse("other:b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktb3RoZXI=").unwrap();
        let genuine = sealed_inbox_row(&app.db, "POLICY_ACTIVATED", 1_700_000_000_000_000, "engine", "{}");
        let genuine_tag = {
            use leadgate::domain::audit::{AuditEntry, AuditKind};
            let entry = AuditEntry {
                lead: None,
                kind: AuditKind::PolicyActivated,
                recorded_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap(),
                actor: "engine".into(),
                request_id: None,
                state_before: None,
                state_after: None,
                source_channel: None,
                policy_version: "v".into(),
                body: "{}".into(),
            };
            (other.seal_entry(&entry).tag, test_audit_keys().seal_entry(&entry).tag)
        };
        let rows = [
            forged_row(&app.db, "LEAD_CONVERTED", "mallory", "{}", None),
            forged_row(&app.db, "POLICY_ACTIVATED", "engine", "{}", Some(("other", &genuine_tag.0))),
            forged_row(&app.db, "POLICY_ACTIVATED", "engine", "{\"x\":1}", Some(("test", &genuine_tag.1))),
            forged_row(&app.db, "LEAD_TELEPORTED", "engine", "{}", Some(("test", &genuine_tag.1))),
        ];
        app.db
            .try_execute(&format!("INSERT INTO audit_inbox {SEALED_INBOX_COLUMNS} VALUES {}", rows.join(", ")))
            .await
            .unwrap();
        // A copy of an entry already chained, under its inbox id.
        app.db
            .try_execute(
                "INSERT INTO audit_inbox (id, kind, record_time, actor, policy_version, body, seal_key_id, seal) \
                 SELECT inbox_id, kind, record_time, actor, policy_version, body, seal_key_id, seal FROM audit_log WHERE position = 1",
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // A genuine entry written after the forged ones.
        app.db
            .try_execute(&format!("INSERT INTO audit_inbox {SEALED_INBOX_COLUMNS} VALUES {genuine}"))
            .await
            .unwrap();
        app.leads.clone().submit_lead(cfo_demo_request("second@acme.fr")).await.unwrap();

        app.db.wait_until_chained().await;
        assert_eq!(
            app.db.count("SELECT COUNT(*) FROM audit_log").await,
            chained_before + 2,
            "the genuine entry and the second lead are chained; nothing forged"
        );
        assert_eq!(app.db.count("SELECT COUNT(*) FROM audit_log WHERE actor = 'mallory'").await, 0);

        let listed = AuditServiceClient::new(app.channel.clone())
            .list_quarantined_audit_entries(pb::ListQuarantinedAuditEntriesRequest { page_size: 2, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.quarantined_audit_entries.len(), 2, "pages of the size asked");
        let mut all = listed.quarantined_audit_entries;
        let rest = AuditServiceClient::new(app.channel.clone())
            .list_quarantined_audit_entries(pb::ListQuarantinedAuditEntriesRequest {
                page_token: listed.next_page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(rest.quarantined_audit_entries);
        let mut reasons: Vec<&str> = all.iter().map(|e| e.reason.as_str()).collect();
        reasons.sort();
        assert_eq!(reasons, ["DUPLICATE", "UNAUTHENTIC", "UNAUTHENTIC", "UNDECODABLE", "UNSEALED"]);
        assert!(all.iter().any(|e| e.actor == "mallory" && e.kind == "LEAD_CONVERTED"));
        let ids: Vec<i64> = all
            .iter()
            .map(|e| e.name.strip_prefix("quarantinedAuditEntries/").unwrap().parse().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

        let verification = AuditServiceClient::new(app.channel.clone())
            .verify_audit_trail(pb::VerifyAuditTrailRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(verification.ok, "{verification:?}");
        let refused = app.db.try_execute("DELETE FROM audit_quarantine").await;
        assert!(refused.is_err(), "the quarantine is append-only");
    }
}

#[tokio::test]
async fn the_cli_lists_the_quarantine_and_exits_one_when_it_is_not_empty() {
    let app = spawn_app(&Backend::Sqlite).await;
    let server = format!("http://{}", app.addr);
    let run = |server: String| {
        tokio::task::spawn_blocking(move || {
            Command::new(BINARY)
                .args(["audit", "quarantine", "--format", "jsonl"])
                .env("LEADGATE_SERVER", server)
                .output()
                .unwrap()
        })
    };
    let empty = run(server.clone()).await.unwrap();
    assert!(
        empty.status.success(),
        "{}",
        String::from_utf8_lossy(&empty.stderr)
    );
    app.db
        .try_execute(&format!(
            "INSERT INTO audit_inbox {SEALED_INBOX_COLUMNS} VALUES {}",
            forged_row(&app.db, "LEAD_CONVERTED", "mallory", "{}", None)
        ))
        .await
        .unwrap();
    app.db.wait_until_chained().await;
    let listed = run(server).await.unwrap();
    assert_eq!(listed.status.code(), Some(1));
    let line: serde_json::Value =
        serde_json::from_slice(listed.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["reason"], "UNSEALED");
    assert_eq!(line["actor"], "mallory");
}

/// A PostgreSQL login role made for one test, dropped after its database.
struct TestRole {
    admin_url: String,
    name: String,
}

impl TestRole {
    async fn create(admin_url: &str) -> TestRole {
        use sqlx::{Connection, Executor};
        let name = format!("leadgate_svc_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
        admin
            .execute(format!("CREATE ROLE {name} LOGIN").as_str())
            .await
            .unwrap();
        TestRole {
            admin_url: admin_url.to_owned(),
            name,
        }
    }

    /// `db`'s URL, as this role.
    fn url(&self, db: &TestDatabase) -> String {
        use sqlx::ConnectOptions;
        let options: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap();
        options.username(&self.name).to_url_lossy().to_string()
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                use sqlx::{Connection, Executor};
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = admin
                        .execute(format!("DROP ROLE IF EXISTS {name}").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}

fn migrate_granting(db: &TestDatabase, role: &TestRole) -> std::process::Output {
    Command::new(BINARY)
        .args(["migrate", "--database-url", &db.url, "--grant-to", &role.name])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(postgres_tests),
    ignore = "PostgreSQL skipped: set LEADGATE_TEST_POSTGRES_URL to run it"
)]
async fn the_service_role_appends_to_the_trail_but_can_never_change_it_postgres() {
    let admin_url = std::env::var("LEADGATE_TEST_POSTGRES_URL").unwrap();
    let role = TestRole::create(&admin_url).await;
    let owner_db = std::sync::Arc::new(TestDatabase::create(&Backend::postgres()).await);
    let service_db = std::sync::Arc::new(TestDatabase::at_url(&role.url(&owner_db)));

    // The service waits, NOT_SERVING, for the migration Job; it may not migrate itself.
    let app = spawn_on(
        service_db.clone(),
        Options {
            migrate: false,
            ..Options::default()
        },
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(
        app.health_of("").await,
        tonic_health::pb::health_check_response::ServingStatus::NotServing,
        "not ready before the migrations"
    );
    let migrated = tokio::task::spawn_blocking({
        let (db, role) = (owner_db.clone(), role.name.clone());
        move || {
            Command::new(BINARY)
                .args(["migrate", "--database-url", &db.url, "--grant-to", &role])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let ready = eventually(std::time::Duration::from_secs(20), || async {
        app.health_of("").await == tonic_health::pb::health_check_response::ServingStatus::Serving
    })
    .await;
    assert!(ready, "ready once the Job has migrated");

    // It does all its work as the service role.
    let lead = app
        .leads
        .clone()
        .submit_lead(cfo_demo_request("service@acme.fr"))
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap();
    app.leads
        .clone()
        .record_engagement(pb::RecordEngagementRequest {
            name: lead.name.clone(),
            events: vec![engagement(pb::EngagementKind::EmailClick, None)],
            ..Default::default()
        })
        .await
        .unwrap();
    owner_db.wait_until_chained().await;
    let verification = AuditServiceClient::new(app.channel.clone())
        .verify_audit_trail(pb::VerifyAuditTrailRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        verification.ok && verification.verified_count == 3,
        "{verification:?}"
    );

    // What the service's credentials cannot do to the trail.
    for sql in [
        "UPDATE audit_log SET actor = 'mallory'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "ALTER TABLE audit_log DISABLE TRIGGER USER",
        "DROP TABLE audit_log",
        "UPDATE audit_settings SET sealed_from = 1000",
        "DELETE FROM audit_quarantine",
        "UPDATE audit_inbox SET actor = 'mallory'",
        "ALTER TABLE audit_inbox DISABLE TRIGGER USER",
        "DELETE FROM leads",
    ] {
        let refused = service_db.try_execute(sql).await.expect_err(sql);
        assert!(
            refused.contains("permission denied") || refused.contains("must be owner"),
            "{sql}: {refused}"
        );
    }
    // It may write into the inbox, but what it writes is not chained.
    service_db
        .try_execute(&format!(
            "INSERT INTO audit_inbox {SEALED_INBOX_COLUMNS} VALUES {}",
            forged_row(&service_db, "LEAD_CONVERTED", "mallory", "{}", None)
        ))
        .await
        .unwrap();
    owner_db.wait_until_chained().await;
    assert_eq!(owner_db.count("SELECT COUNT(*) FROM audit_quarantine").await, 1);
    assert_eq!(
        owner_db
            .count("SELECT COUNT(*) FROM audit_log WHERE actor = 'mallory'")
            .await,
        0
    );

    // Granting again (the next deploy's Job) is harmless.
    let again = migrate_granting(&owner_db, &role);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    drop(app);
}

#[test]
fn migrate_refuses_a_role_name_it_would_have_to_quote() {
    let output = Command::new(BINARY)
        .args([
            "migrate",
            "--database-url",
            "postgres://x@127.0.0.1:1/x",
            "--grant-to",
            "svc; DROP TABLE leads",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--grant-to"));
}
