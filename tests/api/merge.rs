//! MergeLeads: a duplicate merged into another lead, read, changed and resubmitted through the
//! winner from then on; chains of merges; refusals that write nothing; the audit entries.

use leadgate::grpc::pb;
use pb::CriterionStatus::{Met, Unspecified};
use tonic::Code;

use crate::contract;
use crate::helpers::*;

pub fn merge(winner: &pb::Lead, loser: &pb::Lead) -> pb::MergeLeadsRequest {
    pb::MergeLeadsRequest {
        winner: winner.name.clone(),
        loser: loser.name.clone(),
        reason: "same person, two emails".into(),
        ..Default::default()
    }
}

async fn merged(app: &TestApp, request: pb::MergeLeadsRequest) -> pb::MergeLeadsResponse {
    app.leads.clone().merge_leads(request).await.unwrap().into_inner()
}

async fn read(app: &TestApp, name: &str) -> pb::Lead {
    let request = pb::GetLeadRequest { name: name.into() };
    app.leads.clone().get_lead(request).await.unwrap().into_inner()
}

/// The loser of the tests: the same person's private email, a webinar and a discovery call.
async fn duplicate(app: &TestApp, email: &str) -> pb::Lead {
    let mut request = minimal_submission(email);
    request.events = vec![engagement(pb::EngagementKind::WebinarAttended, None)];
    let lead = submitted(app, request).await;
    let call = pb::RecordDiscoveryCallRequest {
        name: lead.name.clone(),
        findings: Some(findings(Met, Unspecified, Unspecified, Unspecified)),
        ..Default::default()
    };
    app.leads
        .clone()
        .record_discovery_call(call)
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap()
}

/// What a refused request must leave as it was: every lead's revision and every entry.
async fn written(app: &TestApp) -> (i64, i64, i64) {
    (
        app.db
            .count("SELECT CAST(COALESCE(SUM(revision), 0) AS BIGINT) FROM leads")
            .await,
        app.db.audit_entries().await,
        app.db.count("SELECT COUNT(*) FROM idempotency_keys").await,
    )
}

contract! {
    async fn a_merged_lead_reads_changes_and_resubmits_as_its_winner(backend: Backend) {
        let app = spawn_app(&backend).await;
        let winner = submitted(&app, cfo_demo_request("claire.martin@acme-industrie.fr")).await;
        let loser = duplicate(&app, "claire.martin@gmail.com").await;
        let answer = merged(&app, merge(&winner, &loser)).await;
        let lead = answer.lead.unwrap();
        assert_eq!(lead.name, winner.name);
        assert_ne!(lead.etag, winner.etag);
        let decision = answer.decision.unwrap();
        assert_eq!(decision.state_before, winner.state);
        // The loser's finding and signal count on the winner.
        assert_eq!(lead.bant.unwrap().need.unwrap().status, Met as i32);
        assert!(lead.scores.unwrap().engagement_points > winner.scores.unwrap().engagement_points);

        // Reading the loser answers the winner, under the winner's name.
        let read_loser = read(&app, &loser.name).await;
        assert_eq!(read_loser, read(&app, &winner.name).await);
        let explained = app.leads.clone()
            .explain_lead(pb::ExplainLeadRequest { name: loser.name.clone() })
            .await.unwrap().into_inner();
        assert_eq!(explained.lead, winner.name);
        // Only the winner is listed; both rows are kept.
        let page = app.leads.clone().list_leads(pb::ListLeadsRequest::default()).await.unwrap().into_inner();
        assert_eq!(page.leads.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), [winner.name.as_str()]);
        assert_eq!(app.db.leads().await, 2);

        // A change sent to the loser applies to the winner.
        let signal = pb::RecordEngagementRequest {
            name: loser.name.clone(),
            events: vec![engagement(pb::EngagementKind::EmailClick, None)],
            ..Default::default()
        };
        let changed = app.leads.clone().record_engagement(signal).await.unwrap().into_inner().lead.unwrap();
        assert_eq!(changed.name, winner.name);
        // The loser's email resubmits the winner.
        let again = app.leads.clone()
            .submit_lead(minimal_submission("Claire.Martin@GMAIL.com"))
            .await.unwrap().into_inner();
        assert!(!again.created);
        assert_eq!(again.lead.unwrap().name, winner.name);
        assert_eq!(app.db.leads().await, 2);
        assert_eq!(app.db.entries_of_kind("LEAD_RESUBMITTED").await, 1);
        assert_eq!(app.db.audit_entries_of(&loser.name).await, 3, "submitted, call, merged into");
    }

    async fn merges_chain_and_every_alias_reads_as_the_last_winner(backend: Backend) {
        let app = spawn_app(&backend).await;
        let a = submitted(&app, cfo_demo_request("a@acme-industrie.fr")).await;
        let b = submitted(&app, minimal_submission("b@acme-industrie.fr")).await;
        let c = submitted(&app, minimal_submission("c@acme-industrie.fr")).await;
        merged(&app, merge(&a, &b)).await;
        let a = read(&app, &a.name).await;
        let c_after = merged(&app, merge(&c, &a)).await.lead.unwrap();
        for alias in [&a.name, &b.name] {
            assert_eq!(read(&app, alias).await.name, c.name, "{alias}");
        }
        // The store keeps one step from b to c: no chain to walk.
        let target = app.db.count(
            "SELECT COUNT(*) FROM leads WHERE merged_into = (SELECT id FROM leads WHERE email = 'c@acme-industrie.fr')",
        ).await;
        assert_eq!(target, 2);
        // b's signals reached c through a.
        assert_eq!(c_after.name, c.name);
        let resubmitted = app.leads.clone().submit_lead(minimal_submission("b@acme-industrie.fr")).await.unwrap().into_inner();
        assert_eq!(resubmitted.lead.unwrap().name, c.name);
        // b cannot be merged again, as loser or as winner: the message names it.
        for (request, role) in [(merge(&c, &b), "loser"), (merge(&b, &c), "winner")] {
            let status = app.leads.clone().merge_leads(request).await.unwrap_err();
            assert_eq!(status.code(), Code::FailedPrecondition);
            assert_eq!(error_reason(&status), "LEAD_MERGED");
            assert!(status.message().contains(role) && status.message().contains(&b.name), "{}", status.message());
        }
    }

    async fn bad_merges_are_refused_with_a_clear_error_and_write_nothing(backend: Backend) {
        let app = spawn_app(&backend).await;
        let winner = submitted(&app, cfo_demo_request("w@acme-industrie.fr")).await;
        let loser = submitted(&app, minimal_submission("l@acme-industrie.fr")).await;
        let before = written(&app).await;
        let status = app.leads.clone().merge_leads(merge(&winner, &winner)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(bad_fields(&status), ["loser"]);
        let nameless = pb::MergeLeadsRequest { winner: "leads/x".into(), ..Default::default() };
        let mut fields = bad_fields(&app.leads.clone().merge_leads(nameless).await.unwrap_err());
        fields.sort();
        assert_eq!(fields, ["loser", "winner"]);
        let unknown = pb::Lead { name: "leads/0193f7a4-0000-7000-8000-000000000000".into(), ..Default::default() };
        for request in [merge(&winner, &unknown), merge(&unknown, &loser)] {
            assert_eq!(app.leads.clone().merge_leads(request).await.unwrap_err().code(), Code::NotFound);
        }
        for (winner_etag, loser_etag) in [("\"9\"", ""), ("", "\"9\"")] {
            let request = pb::MergeLeadsRequest {
                winner_etag: winner_etag.into(),
                loser_etag: loser_etag.into(),
                ..merge(&winner, &loser)
            };
            let status = app.leads.clone().merge_leads(request).await.unwrap_err();
            assert_eq!(status.code(), Code::Aborted);
            assert_eq!(error_reason(&status), "ETAG_MISMATCH");
        }
        assert_eq!(written(&app).await, before);
        // A CONVERTED lead, on either side.
        let call = pb::RecordDiscoveryCallRequest { name: winner.name.clone(), findings: Some(findings(Met, Met, Met, Met)), ..Default::default() };
        app.leads.clone().record_discovery_call(call).await.unwrap();
        let convert = pb::ConvertLeadRequest { name: winner.name.clone(), opportunity_reference: "OPP-1".into(), ..Default::default() };
        app.leads.clone().convert_lead(convert).await.unwrap();
        let before = written(&app).await;
        for (request, role) in [(merge(&winner, &loser), "winner"), (merge(&loser, &winner), "loser")] {
            let status = app.leads.clone().merge_leads(request).await.unwrap_err();
            assert_eq!(status.code(), Code::FailedPrecondition);
            assert_eq!(error_reason(&status), "LEAD_CONVERTED");
            assert!(status.message().contains(role), "{}", status.message());
        }
        assert_eq!(written(&app).await, before);
        assert_eq!(read(&app, &loser.name).await.name, loser.name, "nothing merged");
    }

    async fn a_retried_merge_answers_the_first_time_and_merges_once(backend: Backend) {
        let app = spawn_app(&backend).await;
        let winner = submitted(&app, cfo_demo_request("w@acme-industrie.fr")).await;
        let loser = submitted(&app, minimal_submission("l@acme-industrie.fr")).await;
        let request = pb::MergeLeadsRequest {
            request_id: "merge-7".into(),
            winner_etag: winner.etag.clone(),
            loser_etag: loser.etag.clone(),
            ..merge(&winner, &loser)
        };
        let first = merged(&app, request.clone()).await;
        let again = merged(&app, request.clone()).await;
        assert_eq!(first, again);
        assert_eq!(app.db.entries_of_kind("LEADS_MERGED").await, 1);
        assert_eq!(app.db.entries_of_kind("LEAD_MERGED_INTO").await, 1);
        let other = pb::MergeLeadsRequest { reason: "another reason".into(), ..request };
        let status = app.leads.clone().merge_leads(other).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(error_reason(&status), "REQUEST_ID_REUSED");
    }

    async fn both_leads_record_the_merge_without_personal_values_and_the_chain_verifies(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut request = minimal_submission("claire.martin@acme-industrie.fr");
        request.contact.as_mut().unwrap().given_name = "Claire".into();
        let winner = submitted(&app, request).await;
        let loser = submitted(&app, cfo_demo_request("claire.m@gmail.com")).await;
        merged(&app, merge(&winner, &loser)).await;

        let entries = app.db.audit_bodies_of(&winner.name).await;
        let (kind, _, body) = entries.last().unwrap();
        assert_eq!(kind, "LEADS_MERGED");
        let inputs = &body["inputs"];
        assert_eq!(inputs["loser"], lead_uuid(&loser.name).to_string());
        assert_eq!(inputs["events"], 1);
        // Free text is stored sealed under the lead's key (ListAuditEvents reads it back).
        assert!(inputs["reason"].as_str().unwrap().starts_with("sealed:v1:"), "{inputs}");
        // Filled from the loser: the family name, the phone, the company (paths, not values).
        let fields: Vec<&str> = inputs["profile"]["fields"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        assert!(fields.contains(&"contact.phone") && fields.contains(&"company.name"), "{fields:?}");
        let entries = app.db.audit_bodies_of(&loser.name).await;
        let (kind, _, body) = entries.last().unwrap();
        assert_eq!(kind, "LEAD_MERGED_INTO");
        assert_eq!(body["inputs"]["winner"], lead_uuid(&winner.name).to_string());
        for name in [&winner.name, &loser.name] {
            for (_, _, body) in app.db.audit_bodies_of(name).await {
                let text = body.to_string();
                // The company's values are not personal data: the trail records them as on a
                // submission.
                for personal in ["Martin", "+33 1 23 45 67 89", "claire.m@gmail.com", "Directrice"] {
                    assert!(!text.contains(personal), "{personal} in {text}");
                }
            }
        }
        app.db.wait_until_chained().await;
        let mut audit = pb::audit_service_client::AuditServiceClient::new(app.channel.clone());
        let verification = audit.verify_audit_trail(pb::VerifyAuditTrailRequest::default()).await.unwrap().into_inner();
        assert!(verification.ok, "{verification:?}");
        let listed = audit.list_audit_events(pb::ListAuditEventsRequest {
            filter: "kind = LEADS_MERGED".into(),
            ..Default::default()
        }).await.unwrap().into_inner();
        assert_eq!(listed.audit_events.len(), 1);
        assert_eq!(listed.audit_events[0].lead, winner.name);
    }
}
