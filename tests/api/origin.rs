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
