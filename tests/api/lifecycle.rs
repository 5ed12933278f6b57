//! People's decisions, illegal moves, concurrency and explanations, through gRPC.

use leadgate::grpc::pb;
use pb::CriterionStatus::Met;
use pb::EngagementKind as K;
use tonic::Code;

use crate::contract;
use crate::helpers::*;

fn override_request(lead: &pb::Lead, state: pb::LeadState, reason: &str) -> pb::OverrideLeadStateRequest {
    pb::OverrideLeadStateRequest {
        name: lead.name.clone(),
        state: state as i32,
        reason: reason.into(),
        ..Default::default()
    }
}

async fn get(app: &TestApp, name: &str) -> pb::Lead {
    app.leads
        .clone()
        .get_lead(pb::GetLeadRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
}

contract! {
    async fn an_override_holds_until_released_and_new_facts_only_recommend(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut request = cfo_demo_request("held@acme.fr");
        request.events.clear();
        let lead = app.leads.clone().submit_lead(request).await.unwrap().into_inner().lead.unwrap();
        assert_eq!(lead.state, pb::LeadState::Lead as i32);

        let held = app.leads.clone().override_lead_state(override_request(&lead, pb::LeadState::Nurturing, "budget frozen until spring")).await.unwrap().into_inner();
        let lead = held.lead.unwrap();
        assert_eq!(lead.state, pb::LeadState::Nurturing as i32);
        let over = lead.r#override.clone().unwrap();
        assert_eq!(over.actor, "anonymous");
        assert_eq!(over.reason, "budget frozen until spring");
        assert!(over.expire_time.is_some(), "a nurturing decision lapses at its revisit date");

        let with_demo = app
            .leads
            .clone()
            .record_engagement(pb::RecordEngagementRequest { name: lead.name.clone(), events: vec![engagement(K::DemoRequest, None)], ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        let lead = with_demo.lead.unwrap();
        assert_eq!(lead.state, pb::LeadState::Nurturing as i32, "the engine does not revert a person");
        assert_eq!(lead.recommendation.unwrap().state, pb::LeadState::MarketingQualified as i32);
        assert!(!with_demo.decision.unwrap().state_changed);

        let released = app
            .leads
            .clone()
            .release_lead_override(pb::ReleaseLeadOverrideRequest { name: lead.name.clone(), reason: "budget is back".into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .lead
            .unwrap();
        assert_eq!(released.state, pb::LeadState::MarketingQualified as i32);
        assert!(released.r#override.is_none());

        let again = app
            .leads
            .clone()
            .release_lead_override(pb::ReleaseLeadOverrideRequest { name: lead.name.clone(), reason: "twice".into(), ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(again.code(), Code::FailedPrecondition);
    }

    async fn an_illegal_move_fails_and_changes_nothing(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = app.leads.clone().submit_lead(minimal_submission("illegal@example.com")).await.unwrap().into_inner().lead.unwrap();
        let mut disqualify = override_request(&lead, pb::LeadState::Disqualified, "chose a competitor");
        disqualify.disqualification_reason = pb::DisqualificationReason::LostToCompetitor as i32;
        let lead = app.leads.clone().override_lead_state(disqualify).await.unwrap().into_inner().lead.unwrap();
        let entries = app.db.audit_entries_of(&lead.name).await;

        let status = app.leads.clone().override_lead_state(override_request(&lead, pb::LeadState::SalesQualified, "try")).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(error_reason(&status), "ILLEGAL_TRANSITION");
        assert!(status.message().contains("re-open"), "{}", status.message());
        let convert = app
            .leads
            .clone()
            .convert_lead(pb::ConvertLeadRequest { name: lead.name.clone(), opportunity_reference: "OPP-1".into(), ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(convert.code(), Code::FailedPrecondition);
        let unchanged = get(&app, &lead.name).await;
        assert_eq!(unchanged.etag, lead.etag);
        assert_eq!(app.db.audit_entries_of(&lead.name).await, entries);

        let reopened = app.leads.clone().override_lead_state(override_request(&lead, pb::LeadState::Lead, "they called back")).await.unwrap().into_inner().lead.unwrap();
        assert_eq!(reopened.state, pb::LeadState::Lead as i32);
    }

    async fn a_prospect_converts_and_conversion_is_terminal(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = app.leads.clone().submit_lead(cfo_demo_request("won@acme.fr")).await.unwrap().into_inner().lead.unwrap();
        let request = pb::RecordDiscoveryCallRequest { name: lead.name.clone(), findings: Some(findings(Met, Met, Met, Met)), ..Default::default() };
        let lead = app.leads.clone().record_discovery_call(request).await.unwrap().into_inner().lead.unwrap();
        assert_eq!(lead.state, pb::LeadState::SalesQualified as i32);
        let converted = app
            .leads
            .clone()
            .convert_lead(pb::ConvertLeadRequest { name: lead.name.clone(), opportunity_reference: "OPP-2026-17".into(), etag: lead.etag.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .lead
            .unwrap();
        assert_eq!(converted.state, pb::LeadState::Converted as i32);
        assert_eq!(converted.opportunity_reference, "OPP-2026-17");
        let status = app.leads.clone().override_lead_state(override_request(&converted, pb::LeadState::Nurturing, "x")).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
    }

    async fn a_lead_never_reached_is_not_recycled_before_the_minimum_attempts(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = app.leads.clone().submit_lead(cfo_demo_request("silent@acme.fr")).await.unwrap().into_inner().lead.unwrap();
        let status = app.leads.clone().override_lead_state(override_request(&lead, pb::LeadState::Nurturing, "no answer")).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(error_reason(&status), "PRECONDITION_NOT_MET");
        for _ in 0..6 {
            let attempt = pb::RecordContactAttemptRequest {
                name: lead.name.clone(),
                attempt: Some(pb::ContactAttempt { channel: pb::ContactChannel::Phone as i32, outcome: pb::ContactOutcome::NoAnswer as i32, ..Default::default() }),
                ..Default::default()
            };
            app.leads.clone().record_contact_attempt(attempt).await.unwrap();
        }
        let recycled = app.leads.clone().override_lead_state(override_request(&lead, pb::LeadState::Nurturing, "no answer after 6 attempts")).await.unwrap();
        assert_eq!(recycled.into_inner().lead.unwrap().sla.unwrap().attempt_count, 6);
    }

    async fn a_stale_etag_is_aborted_and_a_current_one_applies(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = app.leads.clone().submit_lead(minimal_submission("etag@example.com")).await.unwrap().into_inner().lead.unwrap();
        let engage = |etag: &str| pb::RecordEngagementRequest {
            name: lead.name.clone(),
            events: vec![engagement(K::EmailClick, None)],
            etag: etag.into(),
            ..Default::default()
        };
        let after = app.leads.clone().record_engagement(engage(&lead.etag)).await.unwrap().into_inner().lead.unwrap();
        assert_ne!(after.etag, lead.etag);
        let stale = app.leads.clone().record_engagement(engage(&lead.etag)).await.unwrap_err();
        assert_eq!(stale.code(), Code::Aborted);
        assert_eq!(error_reason(&stale), "ETAG_MISMATCH");
        assert_eq!(get(&app, &lead.name).await.etag, after.etag);
    }

    async fn bad_lifecycle_requests_name_their_fields(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = app.leads.clone().submit_lead(minimal_submission("fields@example.com")).await.unwrap().into_inner().lead.unwrap();
        let mut request = override_request(&lead, pb::LeadState::Disqualified, "");
        request.revisit_time = Some(days_from_now(10));
        let status = app.leads.clone().override_lead_state(request).await.unwrap_err();
        let mut fields = bad_fields(&status);
        fields.sort();
        assert_eq!(fields, ["disqualification_reason", "reason", "revisit_time"]);

        let status = app
            .leads
            .clone()
            .record_engagement(pb::RecordEngagementRequest { name: "leads/nope".into(), ..Default::default() })
            .await
            .unwrap_err();
        let mut fields = bad_fields(&status);
        fields.sort();
        assert_eq!(fields, ["events", "name"]);

        let no_findings = pb::RecordDiscoveryCallRequest { name: lead.name.clone(), findings: Some(pb::DiscoveryCallFindings::default()), ..Default::default() };
        assert_eq!(bad_fields(&app.leads.clone().record_discovery_call(no_findings).await.unwrap_err()), ["findings"]);

        let attempt = pb::RecordContactAttemptRequest { name: lead.name.clone(), attempt: Some(pb::ContactAttempt::default()), ..Default::default() };
        let mut fields = bad_fields(&app.leads.clone().record_contact_attempt(attempt).await.unwrap_err());
        fields.sort();
        assert_eq!(fields, ["attempt.channel", "attempt.outcome"]);

        let unknown = pb::ConvertLeadRequest { name: "leads/0193f7a4-0000-7000-8000-000000000000".into(), opportunity_reference: "OPP".into(), ..Default::default() };
        assert_eq!(app.leads.clone().convert_lead(unknown).await.unwrap_err().code(), Code::NotFound);
        assert_eq!(app.db.audit_entries_of(&lead.name).await, 1, "nothing written");
    }

    /// Callers built before `decision_maker` keep working: their `true` means INVOLVED, and they
    /// read `true` back exactly when the decision-maker is involved.
    #[allow(deprecated, reason = "the test is about the deprecated field")]
    async fn the_deprecated_decision_maker_flag_still_means_involved(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = app.leads.clone().submit_lead(cfo_demo_request("flag@acme.fr")).await.unwrap().into_inner().lead.unwrap();
        let call = |findings: pb::DiscoveryCallFindings| pb::RecordDiscoveryCallRequest { name: lead.name.clone(), findings: Some(findings), ..Default::default() };

        let mut contradiction = findings(Met, Met, Met, Met);
        let authority = contradiction.authority.as_mut().unwrap();
        authority.decision_maker = pb::DecisionMakerInvolvement::NotInvolved as i32;
        authority.decision_maker_involved = true;
        let refused = app.leads.clone().record_discovery_call(call(contradiction)).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(bad_fields(&refused), ["findings.authority.decision_maker_involved"]);

        let mut old_client = findings(Met, Met, Met, Met);
        let authority = old_client.authority.as_mut().unwrap();
        authority.decision_maker = pb::DecisionMakerInvolvement::Unspecified as i32;
        authority.decision_maker_involved = true;
        let answer = app.leads.clone().record_discovery_call(call(old_client)).await.unwrap().into_inner();
        let lead = answer.lead.unwrap();
        assert_eq!(lead.state, pb::LeadState::SalesQualified as i32);
        let authority = lead.bant.unwrap().authority.unwrap();
        assert_eq!(authority.decision_maker, pb::DecisionMakerInvolvement::Involved as i32);
        assert!(authority.decision_maker_involved);
        let entries = app.db.audit_bodies_of(&lead.name).await;
        let (_, _, body) = entries.last().unwrap();
        assert_eq!(body["inputs"]["authority"]["decision_maker"], "INVOLVED", "the trail records what it meant");
    }

    /// Lead documents written before `decision_maker` hold only the old flag: `true` still reads as
    /// INVOLVED, and later calls work on them.
    async fn a_lead_stored_before_the_decision_maker_field_still_reads(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = app.leads.clone().submit_lead(cfo_demo_request("stored@acme.fr")).await.unwrap().into_inner().lead.unwrap();
        let request = pb::RecordDiscoveryCallRequest { name: lead.name.clone(), findings: Some(findings(Met, Met, Met, Met)), ..Default::default() };
        app.leads.clone().record_discovery_call(request).await.unwrap();
        let rewritten = app
            .db
            .try_execute(r#"UPDATE leads SET document = REPLACE(document, '"decision_maker":"INVOLVED"', '"decision_maker_involved":true')"#)
            .await
            .unwrap();
        assert_eq!(rewritten, 1);
        let old_format = r#"SELECT COUNT(*) FROM leads WHERE document LIKE '%"decision_maker_involved":true%' AND document NOT LIKE '%"decision_maker":%'"#;
        assert_eq!(app.db.count(old_format).await, 1, "the document is as the earlier version wrote it");
        let stored = get(&app, &lead.name).await;
        assert_eq!(stored.state, pb::LeadState::SalesQualified as i32);
        assert_eq!(stored.bant.unwrap().authority.unwrap().decision_maker, pb::DecisionMakerInvolvement::Involved as i32);
        let converted = pb::ConvertLeadRequest { name: lead.name.clone(), opportunity_reference: "OPP-7".into(), ..Default::default() };
        let lead = app.leads.clone().convert_lead(converted).await.unwrap().into_inner().lead.unwrap();
        assert_eq!(lead.bant.unwrap().authority.unwrap().decision_maker, pb::DecisionMakerInvolvement::Involved as i32);
    }

    async fn every_change_is_recorded_with_inputs_scores_states_reasons_and_policy(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = app.leads.clone().submit_lead(cfo_demo_request("trail@acme.fr")).await.unwrap().into_inner().lead.unwrap();
        let request = pb::RecordDiscoveryCallRequest { name: lead.name.clone(), findings: Some(findings(Met, Met, Met, Met)), ..Default::default() };
        app.leads.clone().record_discovery_call(request).await.unwrap();
        let entries = app.db.audit_bodies_of(&lead.name).await;
        let kinds: Vec<_> = entries.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(kinds, ["LEAD_SUBMITTED", "DISCOVERY_CALL_RECORDED"]);
        let (_, policy, body) = &entries[1];
        assert_eq!(policy, &lead.policy_version);
        assert_eq!(body["inputs"]["need"]["status"], "MET");
        assert_eq!(body["scores_before"]["combined"], 7000);
        assert!(body["scores_after"].is_object());
        assert_eq!(body["reasons"][0]["rule_id"], "bant.qualified");
        for (_, _, body) in &entries {
            let text = body.to_string();
            assert!(!text.contains("trail@acme.fr") && !text.contains("Claire") && !text.contains("+33"), "no personal data: {text}");
        }
    }

    async fn a_nurtured_lead_returns_to_the_funnel_when_its_revisit_date_comes(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut request = cfo_demo_request("revisit@acme.fr");
        request.events = vec![engagement(K::WebinarRegistered, None)];
        let lead = app.leads.clone().submit_lead(request).await.unwrap().into_inner().lead.unwrap();
        let mut nurture = override_request(&lead, pb::LeadState::Nurturing, "call back in a moment");
        let soon = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
        nurture.revisit_time = Some(prost_types::Timestamp { seconds: soon.timestamp(), nanos: soon.timestamp_subsec_nanos() as i32 });
        let lead = app.leads.clone().override_lead_state(nurture).await.unwrap().into_inner().lead.unwrap();
        assert_eq!(lead.state, pb::LeadState::Nurturing as i32);
        let name = lead.name.clone();
        let back = eventually(std::time::Duration::from_secs(10), || {
            let mut client = app.leads.clone();
            let name = name.clone();
            async move { client.get_lead(pb::GetLeadRequest { name }).await.unwrap().into_inner().state == pb::LeadState::Lead as i32 }
        })
        .await;
        assert!(back, "the sweeper brings the lead back");
        let lead = get(&app, &lead.name).await;
        assert!(lead.r#override.is_none(), "the person's decision lapsed at its date");
        assert!(lead.revisit_time.is_none());
        assert_eq!(app.db.entries_of_kind("NURTURE_REVISITED").await, 1);
    }

    async fn explain_lead_gives_lines_that_add_up(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut request = cfo_demo_request("explain@acme.fr");
        request.events.push(engagement(K::CaseStudyDownload, None));
        let lead = app.leads.clone().submit_lead(request).await.unwrap().into_inner().lead.unwrap();
        let explanation = app.leads.clone().explain_lead(pb::ExplainLeadRequest { name: lead.name.clone() }).await.unwrap().into_inner();
        let scores = explanation.scores.unwrap();
        let fit: f64 = explanation.fit_lines.iter().map(|l| l.points).sum();
        let engagement: f64 = explanation.engagement_lines.iter().map(|l| l.points).sum();
        assert!((fit - scores.fit_points).abs() < 0.005 && (engagement - scores.engagement_points).abs() < 0.005);
        assert!(explanation.fit_lines.iter().any(|l| l.rule_id == "fit.seniority.executive"));
        assert_eq!(explanation.recommended_state, pb::LeadState::MarketingQualified as i32);
        assert!(explanation.text.contains("fit.industry.target") && explanation.text.contains("The engine decides: MARKETING_QUALIFIED"), "{}", explanation.text);
        let missing = app.leads.clone().explain_lead(pb::ExplainLeadRequest { name: "leads/0193f7a4-0000-7000-8000-000000000000".into() }).await.unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);
    }
}
