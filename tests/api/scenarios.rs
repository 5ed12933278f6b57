//! The article's scenarios, end to end through gRPC.

use leadgate::grpc::pb;
use pb::CriterionStatus::{Met, NotMet};
use pb::EngagementKind as K;

use crate::contract;
use crate::helpers::*;

type Client = pb::lead_service_client::LeadServiceClient<tonic::transport::Channel>;

async fn submit(client: &Client, request: pb::SubmitLeadRequest) -> pb::Lead {
    client
        .clone()
        .submit_lead(request)
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap()
}

async fn engage(
    client: &Client,
    lead: &pb::Lead,
    events: Vec<pb::EngagementEvent>,
) -> pb::RecordEngagementResponse {
    let request = pb::RecordEngagementRequest {
        name: lead.name.clone(),
        events,
        ..Default::default()
    };
    client
        .clone()
        .record_engagement(request)
        .await
        .unwrap()
        .into_inner()
}

async fn call(
    client: &Client,
    lead: &pb::Lead,
    findings: pb::DiscoveryCallFindings,
) -> pb::RecordDiscoveryCallResponse {
    let request = pb::RecordDiscoveryCallRequest {
        name: lead.name.clone(),
        findings: Some(findings),
        ..Default::default()
    };
    client
        .clone()
        .record_discovery_call(request)
        .await
        .unwrap()
        .into_inner()
}

async fn reach(
    client: &Client,
    lead: &pb::Lead,
    outcome: pb::ContactOutcome,
) -> pb::RecordContactAttemptResponse {
    let request = pb::RecordContactAttemptRequest {
        name: lead.name.clone(),
        attempt: Some(pb::ContactAttempt {
            channel: pb::ContactChannel::Phone as i32,
            outcome: outcome as i32,
            attempt_time: None,
            agent: "rep-7".into(),
        }),
        ..Default::default()
    };
    client
        .clone()
        .record_contact_attempt(request)
        .await
        .unwrap()
        .into_inner()
}

fn state(lead: &pb::Lead) -> pb::LeadState {
    pb::LeadState::try_from(lead.state).unwrap()
}

fn rule_ids(lead: &pb::Lead) -> Vec<String> {
    lead.state_reasons.iter().map(|r| r.rule_id.clone()).collect()
}

fn seconds(t: &Option<prost_types::Timestamp>) -> i64 {
    t.as_ref().unwrap().seconds
}

fn profile(
    email: &str,
    industry: &str,
    employees: i32,
    seniority: pb::Seniority,
    function: &str,
    channel: pb::SourceChannel,
) -> pb::SubmitLeadRequest {
    pb::SubmitLeadRequest {
        contact: Some(pb::Contact {
            email: email.into(),
            seniority: seniority as i32,
            job_function: function.into(),
            ..Default::default()
        }),
        company: Some(pb::Company {
            name: "Company".into(),
            industry: industry.into(),
            employee_count: employees,
            country_code: "FR".into(),
            ..Default::default()
        }),
        source: Some(pb::Source {
            channel: channel as i32,
            campaign: String::new(),
        }),
        ..Default::default()
    }
}

contract! {
    /// A purchasing director leaves a card at a trade show; the need is there, the budget comes
    /// later: a prospect in nurturing until the budget is available.
    async fn the_trade_show_card_whose_budget_comes_later_is_nurtured_until_then(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut card = profile("achats@acme.fr", "manufacturing", 300, pb::Seniority::Director, "purchasing", pb::SourceChannel::TradeShow);
        card.events.push(engagement(K::TradeShowScan, None));
        let lead = submit(&app.leads, card).await;
        assert_eq!(state(&lead), pb::LeadState::Lead, "37 + 10 = 47 points");
        reach(&app.leads, &lead, pb::ContactOutcome::Connected).await;
        let mut budget_later = findings(Met, NotMet, Met, Met);
        let budget_date = days_from_now(120);
        budget_later.budget.as_mut().unwrap().budget_status = pb::BudgetStatus::Planned as i32;
        budget_later.budget.as_mut().unwrap().available_time = Some(budget_date);
        let lead = call(&app.leads, &lead, budget_later).await.lead.unwrap();
        assert_eq!(state(&lead), pb::LeadState::Nurturing);
        assert_eq!(rule_ids(&lead), ["bant.later"]);
        assert_eq!(seconds(&lead.revisit_time), budget_date.seconds - 30 * 86_400, "back a month before the budget");
    }

    /// A supply-chain director comes from LinkedIn Ads to a webinar, downloads case studies,
    /// asks for a demo and is confirmed on the call: lead, marketing-qualified, prospect.
    async fn the_linkedin_webinar_attendee_becomes_a_prospect(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut attendee = profile("supply@logistique.fr", "logistics", 400, pb::Seniority::Director, "supply_chain", pb::SourceChannel::PaidSocial);
        attendee.events.push(engagement(K::WebinarRegistered, None));
        let lead = submit(&app.leads, attendee).await;
        assert_eq!(state(&lead), pb::LeadState::Lead);
        let attended = engage(&app.leads, &lead, vec![engagement(K::WebinarAttended, None)]).await;
        let lead = attended.lead.unwrap();
        assert_eq!(state(&lead), pb::LeadState::MarketingQualified);
        assert!(attended.decision.unwrap().state_changed);
        assert_eq!(lead.sla.as_ref().unwrap().trigger, pb::SlaTrigger::MarketingQualified as i32);
        let lead = engage(&app.leads, &lead, vec![engagement(K::CaseStudyDownload, None), engagement(K::CaseStudyDownload, None), engagement(K::DemoRequest, None)])
            .await
            .lead
            .unwrap();
        assert_eq!(lead.sla.as_ref().unwrap().trigger, pb::SlaTrigger::DemoRequest as i32, "the demo request tightens the clock");
        reach(&app.leads, &lead, pb::ContactOutcome::MeetingBooked).await;
        let confirmed = call(&app.leads, &lead, findings(Met, Met, Met, Met)).await;
        let lead = confirmed.lead.unwrap();
        assert_eq!(state(&lead), pb::LeadState::SalesQualified);
        assert_eq!(lead.sla.unwrap().state, pb::SlaState::Met as i32);
        assert_eq!(confirmed.decision.unwrap().state_before, pb::LeadState::MarketingQualified as i32);
    }

    /// A CFO fills in the demo form: five minutes to call back; confirmed, a prospect at once.
    async fn the_cfo_inbound_demo_is_called_within_five_minutes_and_confirmed(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = submit(&app.leads, cfo_demo_request("cfo@acme-industrie.fr")).await;
        let sla = lead.sla.unwrap();
        assert_eq!(sla.trigger, pb::SlaTrigger::DemoRequest as i32);
        assert_eq!(seconds(&sla.due_time) - seconds(&sla.start_time), 300);
        let touched = reach(&app.leads, &lead, pb::ContactOutcome::Connected).await.lead.unwrap();
        let sla = touched.sla.unwrap();
        assert_eq!(sla.state, pb::SlaState::Met as i32);
        assert_eq!(sla.attempt_count, 1);
        assert!(sla.time_to_first_touch.unwrap().seconds < 300);
        let lead = call(&app.leads, &lead, findings(Met, Met, Met, Met)).await.lead.unwrap();
        assert_eq!(state(&lead), pb::LeadState::SalesQualified);
        assert_eq!(lead.bant.unwrap().met_count, 4);
    }

    /// A CIO is interested and has weight, but depends on an executive committee that is not
    /// involved: not a prospect until the final decision-maker is involved.
    async fn the_cio_who_depends_on_a_committee_stays_short_of_prospect(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut cio = profile("dsi@acme.fr", "manufacturing", 800, pb::Seniority::Executive, "it", pb::SourceChannel::Website);
        cio.events.push(engagement(K::DemoRequest, None));
        let lead = submit(&app.leads, cio).await;
        assert_eq!(state(&lead), pb::LeadState::MarketingQualified);
        let mut committee = findings(Met, Met, Met, Met);
        let authority = committee.authority.as_mut().unwrap();
        authority.decision_maker = pb::DecisionMakerInvolvement::NotInvolved as i32;
        authority.evidence = "the executive committee decides".into();
        let answer = call(&app.leads, &lead, committee).await;
        let lead = answer.lead.unwrap();
        assert_eq!(state(&lead), pb::LeadState::MarketingQualified);
        let committee_reason = lead.state_reasons.iter().find(|r| r.rule_id == "bant.authority.committee");
        let committee_reason = committee_reason.unwrap_or_else(|| panic!("{:?}", rule_ids(&lead)));
        assert!(committee_reason.message.contains("final decision-maker"), "{committee_reason:?}");
        assert!(answer.decision.unwrap().reasons.iter().any(|r| r.rule_id == "bant.authority.committee"));
        let bant = lead.bant.clone().unwrap();
        assert_eq!(bant.authority.unwrap().decision_maker, pb::DecisionMakerInvolvement::NotInvolved as i32, "the answer shows it");
        assert_eq!(bant.met_count, 3, "authority does not count while the committee is not involved");

        let mut involved = findings(pb::CriterionStatus::Unspecified, pb::CriterionStatus::Unspecified, Met, pb::CriterionStatus::Unspecified);
        involved.authority.as_mut().unwrap().evidence = "the CEO joined the second call".into();
        let lead = call(&app.leads, &lead, involved).await.lead.unwrap();
        assert_eq!(state(&lead), pb::LeadState::SalesQualified, "earlier findings are kept");
        let got = app.leads.clone().get_lead(pb::GetLeadRequest { name: lead.name.clone() }).await.unwrap().into_inner();
        assert_eq!(got.bant.unwrap().authority.unwrap().decision_maker, pb::DecisionMakerInvolvement::Involved as i32);
    }

    /// A company plans to change software next fiscal year: nurtured until the date comes closer.
    async fn next_fiscal_years_project_is_nurtured_until_then(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = submit(&app.leads, cfo_demo_request("daf@acme.fr")).await;
        let mut later = findings(Met, Met, Met, NotMet);
        let next_year = days_from_now(300);
        later.timing.as_mut().unwrap().target_time = Some(next_year);
        later.timing.as_mut().unwrap().evidence = "switch planned for next fiscal year".into();
        let lead = call(&app.leads, &lead, later).await.lead.unwrap();
        assert_eq!(state(&lead), pb::LeadState::Nurturing);
        assert_eq!(seconds(&lead.revisit_time), next_year.seconds - 30 * 86_400);
    }

    /// A law firm interested in a CRM built for 50+ person B2B sales teams does not fit: a
    /// low-priority lead in nurturing by default.
    async fn the_law_firm_outside_the_profile_is_nurtured_by_default(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut firm = profile("associe@cabinet.fr", "legal_services", 12, pb::Seniority::Executive, "general_management", pb::SourceChannel::Website);
        firm.events.extend([engagement(K::DemoRequest, None), engagement(K::WebinarAttended, None)]);
        let lead = submit(&app.leads, firm).await;
        assert_eq!(lead.scores.as_ref().unwrap().fit_grade, pb::FitGrade::D as i32);
        assert_eq!(state(&lead), pb::LeadState::Nurturing);
        assert_eq!(rule_ids(&lead), ["fit.outside_profile"]);
        assert!(lead.revisit_time.is_some());
    }

    /// The same law firm, under a policy that disqualifies leads outside the profile.
    async fn the_law_firm_is_disqualified_when_the_policy_says_so(backend: Backend) {
        let options = Options {
            policy: policy_with(&[("on_poor_fit = \"nurture\"", "on_poor_fit = \"disqualify\"")]),
            ..Options::default()
        };
        let app = spawn_app_with(&backend, options).await;
        let firm = profile("associe@cabinet.fr", "legal_services", 12, pb::Seniority::Executive, "general_management", pb::SourceChannel::Website);
        let lead = submit(&app.leads, firm).await;
        assert_eq!(state(&lead), pb::LeadState::Disqualified);
        assert_eq!(lead.disqualification_reason, pb::DisqualificationReason::PoorFit as i32);
    }

    /// A contact who unsubscribed long ago: the penalty does not fade with time, only when the
    /// contact comes back by their own hand.
    async fn an_unsubscribe_counts_until_the_contact_comes_back(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut request = cfo_demo_request("optout@acme.fr");
        // Older than the policy's max_age_days (180).
        request.events = vec![engagement(K::Unsubscribe, Some(days_from_now(-400)))];
        let lead = submit(&app.leads, request).await;
        assert_eq!(lead.scores.as_ref().unwrap().engagement_points, -30.0);
        let explanation = app.leads.clone().explain_lead(pb::ExplainLeadRequest { name: lead.name.clone() }).await.unwrap().into_inner();
        let line = explanation.engagement_lines.iter().find(|l| l.rule_id == "engagement.UNSUBSCRIBE").expect("the penalty is a line");
        assert_eq!(line.points, -30.0);
        assert!(line.reason.contains("FORM_FILL"), "the line says what lifts it: {line:?}");

        let clicked = engage(&app.leads, &lead, vec![engagement(K::AdClick, None)]).await.lead.unwrap();
        assert_eq!(clicked.scores.unwrap().engagement_points, 2.0 - 30.0, "an ad click is not coming back");
        let back = engage(&app.leads, &lead, vec![engagement(K::FormFill, None)]).await.lead.unwrap();
        assert_eq!(back.scores.unwrap().engagement_points, 2.0 + 5.0, "a form is");
    }

    /// A lead at exactly the threshold is handed to sales.
    async fn a_lead_at_exactly_the_threshold_is_marketing_qualified(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut request = cfo_demo_request("exact@acme.fr");
        request.events = vec![engagement(K::TradeShowScan, None)];
        let lead = submit(&app.leads, request).await;
        let scores = lead.scores.unwrap();
        assert_eq!((scores.fit_points, scores.engagement_points, scores.combined_points), (40.0, 10.0, 50.0));
        assert_eq!(state(&lead), pb::LeadState::MarketingQualified);
    }
}
