//! The audit trail: complete, append-only, tamper-evident, listable, and streamed without gaps.

use std::collections::HashSet;
use std::time::Duration;

use leadgate::domain::audit::{ChainHead, chain_hash};
use leadgate::domain::hex::to_hex;
use leadgate::grpc::pb;
use pb::CriterionStatus::Met;
use pb::audit_service_client::AuditServiceClient;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

use crate::contract;
use crate::helpers::*;

fn audit(app: &TestApp) -> AuditServiceClient<Channel> {
    AuditServiceClient::new(app.channel.clone())
}

async fn list(app: &TestApp, filter: &str) -> Vec<pb::AuditEvent> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let request = pb::ListAuditEventsRequest {
            filter: filter.into(),
            page_token: token,
            page_size: 3,
            ..Default::default()
        };
        let page = audit(app).list_audit_events(request).await.unwrap().into_inner();
        all.extend(page.audit_events);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
}

/// A lead with a few changes: 1 policy activation + 5 lead entries.
async fn some_history(app: &TestApp) -> pb::Lead {
    let lead = app
        .leads
        .clone()
        .submit_lead(cfo_demo_request("history@acme.fr"))
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap();
    for kind in [
        pb::EngagementKind::CaseStudyDownload,
        pb::EngagementKind::PricingPageVisit,
    ] {
        let request = pb::RecordEngagementRequest {
            name: lead.name.clone(),
            events: vec![engagement(kind, None)],
            ..Default::default()
        };
        app.leads.clone().record_engagement(request).await.unwrap();
    }
    let attempt = pb::RecordContactAttemptRequest {
        name: lead.name.clone(),
        attempt: Some(pb::ContactAttempt {
            channel: pb::ContactChannel::Phone as i32,
            outcome: pb::ContactOutcome::Connected as i32,
            ..Default::default()
        }),
        request_id: "attempt-1".into(),
        ..Default::default()
    };
    app.leads.clone().record_contact_attempt(attempt).await.unwrap();
    let call = pb::RecordDiscoveryCallRequest {
        name: lead.name.clone(),
        findings: Some(findings(Met, Met, Met, Met)),
        ..Default::default()
    };
    app.leads.clone().record_discovery_call(call).await.unwrap();
    app.db.wait_until_chained().await;
    lead
}

async fn verify(app: &TestApp, expected: Option<ChainHead>) -> pb::VerifyAuditTrailResponse {
    let expected_digest = expected.map(|d| pb::AuditDigest {
        position: d.position,
        hash: to_hex(&d.hash),
        ..Default::default()
    });
    audit(app)
        .verify_audit_trail(pb::VerifyAuditTrailRequest {
            expected_digest,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn broken(answer: &pb::VerifyAuditTrailResponse) -> (i64, pb::VerificationProblem) {
    assert!(!answer.ok, "{answer:?}");
    (
        answer.first_bad_position,
        pb::VerificationProblem::try_from(answer.problem).unwrap(),
    )
}

/// Verifies the whole trail at most `per_call` entries a call, continuing until complete: the
/// answers of every call.
async fn verify_in_calls(app: &TestApp, per_call: i64) -> Vec<pb::VerifyAuditTrailResponse> {
    let mut answers: Vec<pb::VerifyAuditTrailResponse> = Vec::new();
    loop {
        let resume_token = answers.last().map(|a| a.resume_token.clone()).unwrap_or_default();
        let answer = audit(app)
            .verify_audit_trail(pb::VerifyAuditTrailRequest {
                resume_token,
                max_entries: per_call,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let complete = answer.complete;
        answers.push(answer);
        if complete {
            return answers;
        }
    }
}

async fn digest(app: &TestApp) -> ChainHead {
    let d = audit(app)
        .get_audit_digest(pb::GetAuditDigestRequest {})
        .await
        .unwrap()
        .into_inner();
    ChainHead::parse_token(&d.token).unwrap()
}

contract! {
    async fn every_change_is_one_chained_entry_and_failures_are_none(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = some_history(&app).await;
        // Refused requests record nothing.
        let bad = pb::RecordEngagementRequest { name: lead.name.clone(), events: vec![engagement(pb::EngagementKind::Unspecified, None)], ..Default::default() };
        app.leads.clone().record_engagement(bad).await.unwrap_err();
        let illegal = pb::ConvertLeadRequest { name: lead.name.clone(), opportunity_reference: "x".into(), etag: "\"1\"".into(), ..Default::default() };
        app.leads.clone().convert_lead(illegal).await.unwrap_err();
        app.db.wait_until_chained().await;

        let entries = list(&app, "").await;
        let positions: Vec<i64> = entries.iter().map(|e| e.position).collect();
        assert_eq!(positions, (1..=6).collect::<Vec<_>>(), "gap-free positions");
        let kinds: Vec<_> = entries.iter().map(|e| pb::AuditEventKind::try_from(e.kind).unwrap()).collect();
        use pb::AuditEventKind as A;
        assert_eq!(kinds, [A::PolicyActivated, A::LeadSubmitted, A::EngagementRecorded, A::EngagementRecorded, A::ContactAttemptRecorded, A::DiscoveryCallRecorded]);
        let attempt = &entries[4];
        assert_eq!(attempt.request_id, "attempt-1");
        assert_eq!(attempt.actor, "anonymous");
        assert_eq!(attempt.lead, lead.name);
        assert!(attempt.inputs.as_ref().unwrap().fields.contains_key("outcome"));
        assert!(entries[5].scores_before.is_some() && entries[5].scores_after.is_some());
        assert_eq!(entries[5].state_after, pb::LeadState::SalesQualified as i32);
        assert_eq!(entries[5].reasons[0].rule_id, "bant.qualified");
        for pair in entries.windows(2) {
            assert_eq!(pair[1].previous_hash, pair[0].hash, "each entry links to the one before");
        }
        let answer = verify(&app, None).await;
        assert!(answer.ok, "{answer:?}");
        assert_eq!(answer.verified_count, 6);
    }

    async fn the_trail_is_filtered_paged_and_ordered(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = some_history(&app).await;
        let mut other = minimal_submission("other@example.com");
        other.source.as_mut().unwrap().channel = pb::SourceChannel::TradeShow as i32;
        app.leads.clone().submit_lead(other).await.unwrap();
        app.db.wait_until_chained().await;

        assert_eq!(list(&app, &format!("lead = \"{}\"", lead.name)).await.len(), 5);
        assert_eq!(list(&app, "kind = ENGAGEMENT_RECORDED").await.len(), 2);
        assert_eq!(list(&app, "(kind = LEAD_SUBMITTED OR kind = AUDIT_EVENT_KIND_POLICY_ACTIVATED)").await.len(), 3);
        assert_eq!(list(&app, "state_after = SALES_QUALIFIED").await.len(), 1);
        assert_eq!(list(&app, "source.channel = TRADE_SHOW").await.len(), 1);
        assert_eq!(list(&app, "actor = \"engine\"").await.len(), 1);
        assert_eq!(list(&app, &format!("policy_version = \"{}\"", lead.policy_version)).await.len(), 7);
        assert_eq!(list(&app, "position > 5").await.len(), 2);
        assert_eq!(list(&app, "record_time >= \"2000-01-01T00:00:00Z\" AND record_time < \"2100-01-01T00:00:00Z\"").await.len(), 7);
        assert!(list(&app, "record_time < \"2000-01-01T00:00:00Z\"").await.is_empty());

        let desc = audit(&app)
            .list_audit_events(pb::ListAuditEventsRequest { order_by: "position desc".into(), page_size: 2, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(desc.audit_events.iter().map(|e| e.position).collect::<Vec<_>>(), [7, 6]);

        for (filter, order_by) in [("kind = NOTHING", ""), ("lead = \"nope\"", ""), ("position > \"x\"", ""), ("", "record_time")] {
            let request = pb::ListAuditEventsRequest { filter: filter.into(), order_by: order_by.into(), ..Default::default() };
            let status = audit(&app).list_audit_events(request).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{filter} {order_by}");
        }
    }

    async fn time_filters_are_exact_when_entries_are_chained_out_of_time_order(backend: Backend) {
        let app = spawn_app(&backend).await;
        app.db.wait_until_chained().await;
        // Recorded at 10, 30, 20, 40 (seconds after the epoch), chained in that order.
        let rows: Vec<String> = [10, 30, 20, 40]
            .iter()
            .map(|s| sealed_inbox_row(&app.db, "POLICY_ACTIVATED", s * 1_000_000, "engine", &format!("{{\"t\":{s}}}")))
            .collect();
        let insert = format!("INSERT INTO audit_inbox {SEALED_INBOX_COLUMNS} VALUES {}", rows.join(", "));
        app.db.try_execute(&insert).await.unwrap();
        app.db.wait_until_chained().await;
        let times = |filter: &str| {
            let app = &app;
            let filter = filter.to_owned();
            async move {
                list(app, &filter).await.into_iter().filter(|e| e.position > 1).map(|e| e.record_time.unwrap().seconds).collect::<Vec<_>>()
            }
        };
        assert_eq!(times("record_time >= \"1970-01-01T00:00:20Z\"").await, [30, 20, 40]);
        assert_eq!(times("record_time > \"1970-01-01T00:00:20Z\"").await, [30, 40]);
        assert_eq!(times("record_time = \"1970-01-01T00:00:20Z\"").await, [20]);
        assert_eq!(times("record_time >= \"1970-01-01T00:00:25Z\" AND record_time < \"1970-01-01T00:00:35Z\"").await, [30]);
        assert!(verify(&app, None).await.ok);
    }

    async fn the_database_refuses_to_change_or_remove_entries(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        for sql in [
            "UPDATE audit_log SET actor = 'mallory' WHERE position = 2",
            "DELETE FROM audit_log WHERE position = 6",
            "DELETE FROM audit_log",
        ] {
            let refused = app.db.try_execute(sql).await.unwrap_err();
            assert!(refused.contains("append-only"), "{sql}: {refused}");
        }
        if !app.db.is_sqlite() {
            let refused = app.db.try_execute("TRUNCATE audit_log").await.unwrap_err();
            assert!(refused.contains("append-only"), "{refused}");
        }
        // An entry written but not yet chained can be neither changed nor dropped.
        let write = "INSERT INTO audit_inbox (kind, record_time, actor, policy_version, body) VALUES ('POLICY_ACTIVATED', 1, 'engine', 'v', '{}')";
        for change in ["UPDATE audit_inbox SET actor = 'mallory'", "DELETE FROM audit_inbox"] {
            let refused = app.db.try_in_transaction(&[write, change]).await.unwrap_err();
            assert!(refused.contains("audit inbox"), "{change}: {refused}");
        }
        assert!(verify(&app, None).await.ok);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM audit_log").await, 6);
    }

    async fn a_changed_byte_is_found_at_its_entry(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        app.db.tamper(&["UPDATE audit_log SET body = body || ' ' WHERE position = 4".into()]).await;
        assert_eq!(broken(&verify(&app, None).await), (4, pb::VerificationProblem::HashMismatch));
    }

    async fn a_deleted_entry_is_found_where_it_was(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        app.db.tamper(&["DELETE FROM audit_log WHERE position = 3".into()]).await;
        assert_eq!(broken(&verify(&app, None).await), (3, pb::VerificationProblem::MissingEntry));
    }

    async fn swapped_entries_are_found_at_the_first_one(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        app.db
            .tamper(&[
                "UPDATE audit_log SET position = -1 WHERE position = 3".into(),
                "UPDATE audit_log SET position = 3 WHERE position = 4".into(),
                "UPDATE audit_log SET position = 4 WHERE position = -1".into(),
            ])
            .await;
        assert_eq!(broken(&verify(&app, None).await), (3, pb::VerificationProblem::BrokenLink));
    }

    async fn a_forged_entry_is_found(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        let head = digest(&app).await;
        // Appended without the means to compute its hash: found at its own position.
        let forged = format!(
            "INSERT INTO audit_log (position, inbox_id, lead_id, kind, record_time, actor, state_after, policy_version, body, previous_hash, hash, record_time_max)
             SELECT 7, -7, lead_id, 'LEAD_CONVERTED', record_time, 'mallory', 'CONVERTED', policy_version, '{{}}', {}, {}, record_time_max FROM audit_log WHERE position = 6",
            app.db.bytes_literal(&head.hash),
            app.db.bytes_literal(&[7u8; 32]),
        );
        app.db.tamper(&[forged]).await;
        assert_eq!(broken(&verify(&app, None).await), (7, pb::VerificationProblem::HashMismatch));
    }

    async fn a_forged_entry_with_a_valid_hash_is_found_by_its_seal(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        let store = app.db.store().await;
        let entries = store.chain_range(0, 100).await.unwrap();
        // The forger inserts an entry at position 3, computing its hash, and shifts the rest.
        let mut fake = entries[2].entry.clone();
        fake.actor = "mallory".into();
        let hash = chain_hash(3, &entries[1].hash, &fake);
        app.db
            .tamper(&[
                "UPDATE audit_log SET position = position + 1000 WHERE position >= 3".into(),
                "UPDATE audit_log SET position = position - 999 WHERE position >= 1000".into(),
                format!(
                    "INSERT INTO audit_log (position, inbox_id, lead_id, kind, record_time, actor, request_id, state_before, state_after, source_channel, policy_version, body, previous_hash, hash, record_time_max)
                     SELECT 3, -3, lead_id, kind, record_time, 'mallory', request_id, state_before, state_after, source_channel, policy_version, body, {}, {}, record_time_max FROM audit_log WHERE position = 4",
                    app.db.bytes_literal(&entries[1].hash),
                    app.db.bytes_literal(&hash),
                ),
            ])
            .await;
        // Its hash links, but only leadgate's key makes a seal that holds.
        assert_eq!(broken(&verify(&app, None).await), (3, pb::VerificationProblem::Unauthenticated));
    }

    async fn a_truncated_tail_is_found_against_an_older_digest(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        let kept = digest(&app).await;
        assert_eq!(kept.position, 6);
        app.db.tamper(&["DELETE FROM audit_log WHERE position >= 5".into()]).await;
        let alone = verify(&app, None).await;
        assert!(alone.ok, "without a digest a shorter trail looks whole");
        assert_eq!(broken(&verify(&app, Some(kept)).await), (5, pb::VerificationProblem::Truncated));
    }

    async fn rewritten_history_is_found_against_an_older_digest(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        let kept = digest(&app).await;
        // Rewrite entry 3 and recompute every hash after it: internally consistent.
        let store = app.db.store().await;
        let mut entries = store.chain_range(0, 100).await.unwrap();
        entries[2].entry.actor = "mallory".into();
        let mut statements = vec!["UPDATE audit_log SET actor = 'mallory' WHERE position = 3".to_string()];
        let mut previous = entries[1].hash;
        for e in entries.iter().skip(2) {
            let hash = chain_hash(e.position, &previous, &e.entry);
            statements.push(format!(
                "UPDATE audit_log SET previous_hash = {}, hash = {} WHERE position = {}",
                app.db.bytes_literal(&previous),
                app.db.bytes_literal(&hash),
                e.position
            ));
            previous = hash;
        }
        app.db.tamper(&statements).await;
        // Consistent hashes, but the seals of the rewritten links no longer hold.
        assert_eq!(broken(&verify(&app, None).await), (3, pb::VerificationProblem::Unauthenticated));
        assert_eq!(broken(&verify(&app, Some(kept)).await), (3, pb::VerificationProblem::Unauthenticated));
        // Someone holding the key could seal the rewrite too: then only an older digest tells.
        let keys = test_audit_keys();
        let mut previous = entries[1].hash;
        let mut resealed = Vec::new();
        for e in entries.iter().skip(2) {
            let hash = chain_hash(e.position, &previous, &e.entry);
            let seal = keys.seal_link(e.position, &hash);
            resealed.push(format!(
                "UPDATE audit_log SET seal = {} WHERE position = {}",
                app.db.bytes_literal(&seal.tag),
                e.position
            ));
            previous = hash;
        }
        app.db.tamper(&resealed).await;
        assert!(verify(&app, None).await.ok, "a consistent, resealed rewrite verifies alone");
        assert_eq!(broken(&verify(&app, Some(kept)).await), (6, pb::VerificationProblem::DigestMismatch));
    }

    async fn a_changed_time_index_is_found(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        app.db.tamper(&["UPDATE audit_log SET record_time_max = record_time_max - 1000000 WHERE position = 5".into()]).await;
        assert_eq!(broken(&verify(&app, None).await), (5, pb::VerificationProblem::HashMismatch));
    }

    async fn verification_takes_ranges_and_refuses_bad_arguments(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        let part = audit(&app)
            .verify_audit_trail(pb::VerifyAuditTrailRequest { start_position: 3, end_position: 5, expected_digest: None, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert!(part.ok);
        assert_eq!(part.verified_count, 3);
        assert_eq!(part.head.unwrap().position, 6);
        for request in [
            pb::VerifyAuditTrailRequest { start_position: 5, end_position: 3, expected_digest: None, ..Default::default() },
            pb::VerifyAuditTrailRequest { start_position: -1, end_position: 0, expected_digest: None, ..Default::default() },
            pb::VerifyAuditTrailRequest {
                expected_digest: Some(pb::AuditDigest { position: 2, hash: "not hex".into(), ..Default::default() }),
                ..Default::default()
            },
        ] {
            let status = audit(&app).verify_audit_trail(request).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
        }
    }

    async fn a_range_past_the_head_is_refused_naming_the_position_and_giving_the_head(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        let range = |start_position, end_position| pb::VerifyAuditTrailRequest { start_position, end_position, expected_digest: None, ..Default::default() };
        for (request, fields) in [
            (range(0, 9), vec!["end_position"]),
            (range(3, 7), vec!["end_position"]),
            (range(8, 0), vec!["start_position"]),
            (range(8, 9), vec!["start_position", "end_position"]),
        ] {
            let status = audit(&app).verify_audit_trail(request.clone()).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{request:?}: {status:?}");
            assert_eq!(bad_fields(&status), fields, "{request:?}");
            assert!(status.message().contains("past the head of the trail (position 6)"), "{}", status.message());
        }
        let whole = audit(&app).verify_audit_trail(range(1, 6)).await.unwrap().into_inner();
        assert!(whole.ok && whole.verified_count == 6, "{whole:?}");

        // Truncated to 4: a range to the old head is refused, but an earlier digest still finds
        // what is missing, also when the range ends at its position.
        let kept = digest(&app).await;
        app.db.tamper(&["DELETE FROM audit_log WHERE position >= 5".into()]).await;
        let status = audit(&app).verify_audit_trail(range(0, 6)).await.unwrap_err();
        assert_eq!(bad_fields(&status), ["end_position"]);
        assert!(status.message().contains("(position 4)"), "{}", status.message());
        let expected_digest = Some(pb::AuditDigest { position: kept.position, hash: to_hex(&kept.hash), ..Default::default() });
        let answer = audit(&app)
            .verify_audit_trail(pb::VerifyAuditTrailRequest { start_position: 0, end_position: 6, expected_digest, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(broken(&answer), (5, pb::VerificationProblem::Truncated));
    }

    async fn a_trail_verified_over_several_calls_counts_what_one_call_does(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        let once = verify(&app, None).await;
        assert!(once.ok && once.complete && once.resume_token.is_empty(), "{once:?}");
        assert_eq!((once.verified_count, once.verified_through, once.end_position), (6, 6, 6));

        let answers = verify_in_calls(&app, 2).await;
        assert_eq!(answers.len(), 3, "{answers:?}");
        for (i, partial) in answers[..2].iter().enumerate() {
            let through = 2 * (i as i64 + 1);
            // Not ok until complete: a caller that ignores `complete` never takes part for all.
            assert!(!partial.ok && !partial.complete && !partial.resume_token.is_empty(), "{partial:?}");
            assert_eq!((partial.verified_count, partial.verified_through, partial.end_position), (through, through, 6));
            assert_eq!(partial.problem, 0);
        }
        let last = answers.last().unwrap();
        assert!(last.ok && last.complete && last.resume_token.is_empty(), "{last:?}");
        assert_eq!(last.verified_count, once.verified_count);
        assert_eq!(last.verified_through, 6);
    }

    async fn a_continuation_keeps_the_range_and_digest_it_started_with(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        let kept = digest(&app).await;
        let expected_digest = Some(pb::AuditDigest { position: kept.position, hash: to_hex(&kept.hash), ..Default::default() });
        let request = pb::VerifyAuditTrailRequest { start_position: 2, expected_digest, max_entries: 3, ..Default::default() };
        let first = audit(&app).verify_audit_trail(request.clone()).await.unwrap().into_inner();
        assert_eq!((first.complete, first.verified_through, first.end_position), (false, 4, 6), "{first:?}");
        // Entries chained meanwhile are past the range the verification started with.
        app.leads.clone().submit_lead(cfo_demo_request("later@acme.fr")).await.unwrap();
        app.db.wait_until_chained().await;
        let next = pb::VerifyAuditTrailRequest { resume_token: first.resume_token, ..request };
        let last = audit(&app).verify_audit_trail(next).await.unwrap().into_inner();
        assert!(last.ok && last.complete, "{last:?}");
        assert_eq!((last.verified_count, last.verified_through, last.end_position), (5, 6, 6));
        assert!(last.head.unwrap().position > 6);
    }

    async fn a_changed_entry_in_a_later_call_is_found_at_its_position(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        let start = pb::VerifyAuditTrailRequest { max_entries: 2, ..Default::default() };
        let first = audit(&app).verify_audit_trail(start.clone()).await.unwrap().into_inner();
        assert!(!first.complete);
        app.db.tamper(&["UPDATE audit_log SET body = body || ' ' WHERE position = 5".into()]).await;
        let mut answer = first;
        while !answer.complete {
            let next = pb::VerifyAuditTrailRequest { resume_token: answer.resume_token.clone(), ..start.clone() };
            answer = audit(&app).verify_audit_trail(next).await.unwrap().into_inner();
        }
        assert_eq!(broken(&answer), (5, pb::VerificationProblem::HashMismatch));
        assert_eq!((answer.verified_count, answer.verified_through), (4, 4));
        assert!(answer.resume_token.is_empty());
    }

    async fn an_entry_changed_after_an_earlier_call_verified_it_is_found(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        let start = pb::VerifyAuditTrailRequest { max_entries: 3, ..Default::default() };
        let first = audit(&app).verify_audit_trail(start.clone()).await.unwrap().into_inner();
        assert_eq!(first.verified_through, 3);
        // The entry the continuation anchors on: entry 4 still links to its hash, so only the
        // check of the anchor itself finds it.
        app.db.tamper(&["UPDATE audit_log SET actor = 'mallory' WHERE position = 3".into()]).await;
        let next = pb::VerifyAuditTrailRequest { resume_token: first.resume_token, ..start };
        let answer = audit(&app).verify_audit_trail(next).await.unwrap().into_inner();
        assert_eq!(broken(&answer), (3, pb::VerificationProblem::HashMismatch));
        assert!(answer.message.contains("changed since an earlier call verified it"), "{}", answer.message);
    }

    async fn a_resume_token_not_issued_for_the_request_is_invalid_argument_naming_it(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        let start = pb::VerifyAuditTrailRequest { max_entries: 2, ..Default::default() };
        let first = audit(&app).verify_audit_trail(start.clone()).await.unwrap().into_inner();
        let mut altered = first.resume_token.clone();
        altered.insert(10, 'x');
        for request in [
            pb::VerifyAuditTrailRequest { resume_token: "nonsense".into(), ..start.clone() },
            pb::VerifyAuditTrailRequest { resume_token: altered, ..start.clone() },
            // Issued for another range.
            pb::VerifyAuditTrailRequest { resume_token: first.resume_token.clone(), end_position: 5, ..start.clone() },
        ] {
            let status = audit(&app).verify_audit_trail(request.clone()).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{request:?}: {status:?}");
            assert_eq!(bad_fields(&status), ["resume_token"], "{request:?}");
        }
        let status = audit(&app)
            .verify_audit_trail(pb::VerifyAuditTrailRequest { max_entries: -1, ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(bad_fields(&status), ["max_entries"]);
    }

    async fn every_call_makes_progress_even_with_no_time_budget(backend: Backend) {
        let options = Options { verify_call_budget: Duration::ZERO, ..Options::default() };
        let app = spawn_app_with(&backend, options).await;
        some_history(&app).await;
        let answers = verify_in_calls(&app, 0).await;
        assert_eq!(answers.len(), 1, "a short trail is one read: {answers:?}");
        assert!(answers[0].ok && answers[0].verified_count == 6);
    }

    async fn a_watcher_sees_every_entry_once_in_order_across_reconnects_while_writers_race(backend: Backend) {
        let app = spawn_app(&backend).await;
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let mut client = app.leads.clone();
                tokio::spawn(async move {
                    for i in 0..15 {
                        let lead = client.submit_lead(minimal_submission(&format!("w{w}-{i}@example.com"))).await.unwrap().into_inner().lead.unwrap();
                        let events = vec![engagement(pb::EngagementKind::EmailClick, None)];
                        client.record_engagement(pb::RecordEngagementRequest { name: lead.name, events, ..Default::default() }).await.unwrap();
                    }
                })
            })
            .collect();
        let mut seen: Vec<i64> = Vec::new();
        // First connection: read a while, then drop the stream mid-way.
        let mut stream = audit(&app).watch_decisions(pb::WatchDecisionsRequest::default()).await.unwrap().into_inner();
        while seen.len() < 25 {
            let event = stream.next().await.unwrap().unwrap().event.unwrap();
            seen.push(event.position);
        }
        drop(stream);
        for writer in writers {
            writer.await.unwrap();
        }
        // Reconnect with the last position and read to the end.
        let total = 1 + 4 * 15 * 2;
        let mut stream = audit(&app)
            .watch_decisions(pb::WatchDecisionsRequest { after_position: *seen.last().unwrap(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        while seen.len() < total {
            let next = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("entries keep coming");
            seen.push(next.unwrap().unwrap().event.unwrap().position);
        }
        assert_eq!(seen, (1..=total as i64).collect::<Vec<_>>(), "every entry once, in order");
        assert!(tokio::time::timeout(Duration::from_millis(500), stream.next()).await.is_err(), "nothing more");
    }

    async fn a_watch_filters_and_can_start_from_the_head(backend: Backend) {
        let app = spawn_app(&backend).await;
        some_history(&app).await;
        let mut stream = audit(&app)
            .watch_decisions(pb::WatchDecisionsRequest { from_head: true, filter: "kind = LEAD_SUBMITTED".into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        app.leads.clone().submit_lead(minimal_submission("late@example.com")).await.unwrap();
        let event = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap().unwrap().unwrap().event.unwrap();
        assert_eq!(event.kind, pb::AuditEventKind::LeadSubmitted as i32);
        assert_eq!(event.position, 7, "only what came after the head");

        let bad = audit(&app)
            .watch_decisions(pb::WatchDecisionsRequest { after_position: 3, from_head: true, filter: "position > 1".into() })
            .await
            .unwrap_err();
        let mut fields = bad_fields(&bad);
        fields.sort();
        assert_eq!(fields, ["after_position", "filter"]);
    }

    async fn shutdown_ends_a_watch_with_unavailable(backend: Backend) {
        let mut app = spawn_app(&backend).await;
        let mut stream = audit(&app).watch_decisions(pb::WatchDecisionsRequest::default()).await.unwrap().into_inner();
        stream.next().await.unwrap().unwrap();
        app.begin_shutdown();
        let end = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("the stream ends at once");
        match end {
            Some(Err(status)) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
            other => panic!("expected UNAVAILABLE, got {other:?}"),
        }
        tokio::time::timeout(Duration::from_secs(5), app.stop()).await.expect("no drain wait").unwrap();
    }
}

/// Two replicas write to one PostgreSQL database and chain one trail; a watcher on one of them
/// sees every entry from both, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(postgres_tests),
    ignore = "PostgreSQL skipped: set LEADGATE_TEST_POSTGRES_URL to run it"
)]
async fn two_replicas_chain_one_trail_and_a_watcher_sees_all_of_it_postgres() {
    let first = spawn_app(&Backend::postgres()).await;
    let second = spawn_on(first.db.clone(), Options::default()).await;
    second.wait_until_serving().await;
    let mut stream = audit(&first)
        .watch_decisions(pb::WatchDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let writers: Vec<_> = [&first, &second]
        .into_iter()
        .enumerate()
        .flat_map(|(r, app)| {
            (0..3).map(move |w| {
                let mut client = app.leads.clone();
                tokio::spawn(async move {
                    for i in 0..20 {
                        client
                            .submit_lead(minimal_submission(&format!("r{r}w{w}i{i}@example.com")))
                            .await
                            .unwrap();
                    }
                })
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let total = 1 + 2 * 3 * 20; // one policy activation: the second replica runs the same policy
    let mut seen = Vec::new();
    while seen.len() < total {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("entries keep coming");
        seen.push(next.unwrap().unwrap().event.unwrap().position);
    }
    assert_eq!(seen, (1..=total as i64).collect::<Vec<_>>());
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), total);
    assert!(verify(&first, None).await.ok);
}

/// A change whose transaction started first but commits last is chained after the changes that
/// committed before it, and streamed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(postgres_tests),
    ignore = "PostgreSQL skipped: set LEADGATE_TEST_POSTGRES_URL to run it"
)]
async fn an_entry_committed_late_is_chained_after_the_others_postgres() {
    use sqlx::{Connection, Executor};
    let app = spawn_app(&Backend::postgres()).await;
    let mut stream = audit(&app)
        .watch_decisions(pb::WatchDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut slow = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    let mut tx = slow.begin().await.unwrap();
    let slow_id: i64 = sqlx::query_scalar(&format!(
        "INSERT INTO audit_inbox {SEALED_INBOX_COLUMNS} VALUES {} RETURNING id",
        sealed_inbox_row(&app.db, "POLICY_ACTIVATED", 1, "slow-writer", "{}")
    ))
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    for i in 0..3 {
        app.leads
            .clone()
            .submit_lead(minimal_submission(&format!("fast{i}@example.com")))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let event = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .event
            .unwrap();
        seen.push((event.position, event.actor));
    }
    let fast_ids: i64 = app
        .db
        .count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE inbox_id > {slow_id}"
        ))
        .await;
    assert_eq!(
        fast_ids, 3,
        "the later writes were chained while the slow one was still open"
    );
    tx.execute("SELECT 1").await.unwrap();
    tx.commit().await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .event
        .unwrap();
    seen.push((event.position, event.actor));
    let positions: Vec<i64> = seen.iter().map(|(p, _)| *p).collect();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
    assert_eq!(seen[4].1, "slow-writer");
    assert!(verify(&app, None).await.ok);
}
