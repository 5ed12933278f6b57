//! One test per rule of the engine.

use chrono::Duration;

use super::fixtures::*;
use super::*;
use crate::domain::audit::AuditKind;
use crate::domain::facts::{AuthorityFinding, BudgetFinding, NeedFinding, Points, TimingFinding};
use crate::domain::scoring::ScoreLine;
use crate::domain::sla::{self, SlaState};
use crate::domain::values::{
    ContactChannel, ContactOutcome, CriterionStatus as C, DecisionMakerInvolvement, EngagementKind as K,
    FitGrade,
};

fn met() -> Option<C> {
    Some(C::Met)
}

fn call(need: Option<C>, budget: Option<C>, authority: Option<C>, timing: Option<C>) -> DiscoveryCall {
    DiscoveryCall {
        call_at: None,
        need: NeedFinding {
            status: need,
            evidence: "need".into(),
        },
        budget: BudgetFinding {
            status: budget,
            ..Default::default()
        },
        authority: AuthorityFinding {
            status: authority,
            decision_maker: (authority == met()).then_some(DecisionMakerInvolvement::Involved),
            evidence: String::new(),
        },
        timing: TimingFinding {
            status: timing,
            ..Default::default()
        },
        conducted_by: "rep-1".into(),
    }
}

fn attempt(outcome: ContactOutcome, at: Timestamp) -> Command {
    Command::RecordContactAttempt(ContactAttempt {
        channel: ContactChannel::Phone,
        outcome,
        attempt_at: Some(at),
        agent: "rep-1".into(),
    })
}

fn override_to(state: LeadState, reason: &str) -> Command {
    Command::Override(OverrideRequest {
        state,
        reason: reason.into(),
        disqualification: None,
        revisit_at: None,
    })
}

/// Sums score lines the way scores add them up.
fn total(lines: &[ScoreLine]) -> Points {
    lines.iter().map(|l| l.points).sum()
}

fn rule_ids(reasons: &[Reason]) -> Vec<&str> {
    reasons.iter().map(|r| r.rule_id.as_str()).collect()
}

// ---- scores ----

#[test]
fn fit_adds_the_matching_rules_and_grades_the_total() {
    let p = policy();
    let lead = submit(&cfo(), &[], &p, t0()).lead;
    assert_eq!(lead.scores.fit, Points(4000));
    assert_eq!(lead.scores.grade, FitGrade::A);
    let lines = scoring::explain_fit(&lead.profile, &p.rules);
    assert_eq!(total(&lines), lead.scores.fit, "the lines add up to the score");
    assert!(
        lines
            .iter()
            .any(|l| l.rule_id == "fit.industry.target" && l.input == "industry=manufacturing")
    );
}

#[test]
fn a_rule_with_a_max_grade_caps_the_grade_whatever_the_points() {
    let p = policy();
    // Executive (+10), finance (+5), FR (+5), legal (-10), 12 employees (-10): 0 points, and
    // legal services caps the grade at D anyway.
    let lead = submit(&law_firm(), &[], &p, t0()).lead;
    assert_eq!(lead.scores.grade, FitGrade::D);
    let senior_big_law = ProfileSpec {
        employees: Some(300),
        ..law_firm()
    };
    let lead = submit(&senior_big_law, &[], &p, t0()).lead;
    assert_eq!(lead.scores.fit, Points(2000), "B by points");
    assert_eq!(lead.scores.grade, FitGrade::D, "but capped at D");
}

#[test]
fn a_personal_email_costs_points() {
    let p = policy();
    let gmail = ProfileSpec {
        email: "cfo.acme@gmail.com",
        ..cfo()
    };
    assert_eq!(submit(&gmail, &[], &p, t0()).lead.scores.fit, Points(3500));
}

#[test]
fn engagement_halves_every_half_life() {
    let p = policy();
    let lead = submit(
        &unknown(),
        &[event(K::DemoRequest, t0() - Duration::days(30))],
        &p,
        t0(),
    )
    .lead;
    assert_eq!(lead.scores.engagement, Points(1500));
    let older = submit(
        &unknown(),
        &[event(K::DemoRequest, t0() - Duration::days(60))],
        &p,
        t0(),
    )
    .lead;
    assert_eq!(older.scores.engagement, Points(750));
}

#[test]
fn events_past_the_maximum_age_count_for_nothing_and_are_dropped() {
    let p = policy();
    let lead = submit(
        &unknown(),
        &[event(K::CaseStudyDownload, t0() - Duration::days(181))],
        &p,
        t0(),
    )
    .lead;
    assert_eq!(lead.scores.engagement, Points::ZERO);
    assert!(lead.events.is_empty());
}

#[test]
fn each_kind_adds_up_to_its_cap_and_the_cap_is_a_line() {
    let p = policy();
    let events: Vec<_> = (0..5).map(|_| event(K::CaseStudyDownload, t0())).collect();
    let lead = submit(&unknown(), &events, &p, t0()).lead;
    assert_eq!(lead.scores.engagement, Points(3000), "5 × 10 capped at 30");
    let lines = scoring::explain_engagement(&lead.events, &p.rules, t0());
    assert_eq!(total(&lines), Points(3000));
    let cap = lines
        .iter()
        .find(|l| l.rule_id == "engagement.CASE_STUDY_DOWNLOAD.cap")
        .unwrap();
    assert_eq!(cap.points, Points(-2000));
}

#[test]
fn penalties_subtract_and_do_not_decay() {
    let p = policy();
    let events = [
        event(K::WebinarAttended, t0()),
        event(K::Unsubscribe, t0() - Duration::days(90)),
    ];
    let lead = submit(&unknown(), &events, &p, t0()).lead;
    assert_eq!(lead.scores.engagement, Points(1500 - 3000));
    assert_eq!(lead.scores.combined, Points(-1500));
}

#[test]
fn a_penalty_outlives_the_maximum_age_until_a_newer_signal_lifts_it() {
    let p = policy();
    let unsubscribed = t0() - Duration::days(400);
    let lead = submit(&cfo(), &[event(K::Unsubscribe, unsubscribed)], &p, t0()).lead;
    assert_eq!(
        lead.scores.engagement,
        Points(-3000),
        "older than max_age_days, still counted"
    );
    assert_eq!(lead.events.len(), 1, "and kept");
    let line = &scoring::explain_engagement(&lead.events, &p.rules, t0())[0];
    assert_eq!(line.points, Points(-3000));
    assert!(line.reason.contains("holds until a later"), "{line:?}");

    // Watching a webinar or clicking an ad is not coming back.
    let still = run(
        &lead,
        Command::RecordEngagement {
            events: vec![event(K::WebinarAttended, at(1)), event(K::AdClick, at(1))],
        },
        &p,
        at(1),
    )
    .lead;
    assert_eq!(still.scores.engagement, Points(1500 + 200 - 3000));

    // Filling in a form is: the unsubscribe stops counting, and is dropped for good.
    let back = run(
        &still,
        Command::RecordEngagement {
            events: vec![event(K::FormFill, at(2))],
        },
        &p,
        at(2),
    )
    .lead;
    assert_eq!(back.scores.engagement, Points(1500 + 200 + 500));
    assert!(back.events.iter().all(|e| e.kind != K::Unsubscribe));
    // Long after, the form is too old to count: the unsubscribe it lifted does not come back.
    let much_later = t0() + Duration::days(400);
    let later = run(
        &back,
        Command::RecordEngagement {
            events: vec![event(K::EmailOpen, much_later)],
        },
        &p,
        much_later,
    )
    .lead;
    assert_eq!(later.scores.engagement, Points(100));
}

#[test]
fn a_signal_older_than_the_penalty_does_not_lift_it() {
    let p = policy();
    let events = [
        event(K::FormFill, t0() - Duration::days(2)),
        event(K::EmailBounce, t0() - Duration::days(1)),
    ];
    let lead = submit(&cfo(), &events, &p, t0()).lead;
    assert!(lead.events.iter().any(|e| e.kind == K::EmailBounce));
    let form = lead.scores.engagement - Points(-2000);
    assert!(
        form > Points::ZERO && form < Points(500),
        "a decayed form, and the bounce: {form}"
    );
    // An email opened after the bounce shows the address works.
    let opened = run(
        &lead,
        Command::RecordEngagement {
            events: vec![event(K::EmailOpen, at(1))],
        },
        &p,
        at(1),
    )
    .lead;
    assert!(opened.events.iter().all(|e| e.kind != K::EmailBounce));
    assert!(opened.scores.engagement > Points::ZERO);
}

#[test]
fn a_held_penalty_is_the_last_signal_dropped_when_a_lead_has_too_many() {
    let p = policy();
    let mut events = vec![event(K::Unsubscribe, t0() - Duration::days(30))];
    events.extend((0..99).map(|_| event(K::AdClick, t0() - Duration::days(60))));
    let mut lead = submit(&cfo(), &events, &p, t0()).lead;
    for batch in 0..10 {
        let clicks = (0..100).map(|_| event(K::AdClick, at(batch))).collect();
        lead = run(&lead, Command::RecordEngagement { events: clicks }, &p, at(batch)).lead;
    }
    assert_eq!(lead.events.len(), MAX_KEPT_EVENTS);
    assert!(lead.events.iter().any(|e| e.kind == K::Unsubscribe));
}

#[test]
fn scores_are_the_same_whatever_the_order_of_events() {
    let p = policy();
    let mut events = vec![
        event(K::DemoRequest, t0() - Duration::days(3)),
        event(K::CaseStudyDownload, t0() - Duration::days(10)),
        event(K::CaseStudyDownload, t0() - Duration::days(1)),
        event(K::EmailBounce, t0()),
    ];
    let a = submit(&cfo(), &events, &p, t0()).lead.scores;
    events.reverse();
    let b = submit(&cfo(), &events, &p, t0()).lead.scores;
    assert_eq!(a, b);
}

// ---- the lifecycle ----

#[test]
fn exactly_the_threshold_is_marketing_qualified() {
    let p = policy();
    // Fit 40 + a webinar attended (15) - a bounce... use exact numbers: 40 + 10 = 50.
    let lead = submit(&cfo(), &[event(K::TradeShowScan, t0())], &p, t0()).lead;
    assert_eq!(lead.scores.combined, Points(5000));
    assert_eq!(lead.state, LeadState::MarketingQualified);
    assert_eq!(rule_ids(&lead.state_reasons), ["score.threshold"]);
    let just_under = submit(
        &cfo(),
        &[event(K::TradeShowScan, t0() - Duration::hours(1))],
        &p,
        t0(),
    )
    .lead;
    assert!(just_under.scores.combined < Points(5000));
    assert_eq!(just_under.state, LeadState::Lead);
}

#[test]
fn a_marketing_qualified_lead_is_handed_to_sales_with_a_one_hour_clock() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::TradeShowScan, t0())], &p, t0()).lead;
    let clock = lead.sla.as_ref().unwrap();
    assert_eq!(clock.trigger, SlaTrigger::MarketingQualified);
    assert_eq!(clock.due_at, t0() + Duration::hours(1));
    assert_eq!(
        sla::state_at(lead.sla.as_ref(), &p.rules, at(10)),
        SlaState::OnTrack
    );
    assert_eq!(
        sla::state_at(lead.sla.as_ref(), &p.rules, at(31)),
        SlaState::AtRisk
    );
    assert_eq!(
        sla::state_at(lead.sla.as_ref(), &p.rules, at(61)),
        SlaState::Breached
    );
}

#[test]
fn a_demo_request_starts_the_five_minute_clock_even_below_the_threshold() {
    let p = policy();
    let lead = submit(&unknown(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    assert_eq!(lead.state, LeadState::Nurturing, "grade D is nurtured: no clock");
    assert!(lead.sla.is_none());
    let mid = ProfileSpec {
        seniority: None,
        function: None,
        ..cfo()
    }; // 25 points, B
    let lead = submit(&mid, &[event(K::DemoRequest, t0())], &p, t0()).lead;
    assert_eq!(lead.state, LeadState::MarketingQualified);
    let clock = lead.sla.unwrap();
    assert_eq!(clock.trigger, SlaTrigger::DemoRequest);
    assert_eq!(
        clock.due_at,
        t0() + Duration::minutes(5),
        "the tighter target wins"
    );
}

#[test]
fn a_first_touch_in_time_meets_the_sla() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    let touched = run(&lead, attempt(ContactOutcome::NoAnswer, at(3)), &p, at(3)).lead;
    let clock = touched.sla.as_ref().unwrap();
    assert_eq!(clock.first_touch_at, Some(at(3)));
    assert_eq!(clock.attempts, 1);
    assert_eq!(sla::state_at(Some(clock), &p.rules, at(100)), SlaState::Met);
    assert_eq!(sla::time_to_first_touch(clock), Some(Duration::minutes(3)));
}

#[test]
fn a_breach_is_recorded_once_by_the_engine() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    assert!(
        run(&lead, Command::Tick, &p, at(4)).entries.is_empty(),
        "nothing is due yet"
    );
    let breached = run(&lead, Command::Tick, &p, at(6));
    assert_eq!(breached.entries.len(), 1);
    assert_eq!(breached.entries[0].kind, AuditKind::SlaBreached);
    assert_eq!(breached.entries[0].actor, ENGINE_ACTOR);
    assert_eq!(breached.lead.sla.as_ref().unwrap().breached_at, Some(at(5)));
    assert!(
        run(&breached.lead, Command::Tick, &p, at(7)).entries.is_empty(),
        "never twice"
    );
    // A touch reported late does not undo the breach.
    let late = run(
        &breached.lead,
        attempt(ContactOutcome::Connected, at(4)),
        &p,
        at(8),
    )
    .lead;
    assert_eq!(
        sla::state_at(late.sla.as_ref(), &p.rules, at(8)),
        SlaState::Breached
    );
}

#[test]
fn a_lead_back_with_sales_after_a_breached_clock_gets_a_new_clock() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::TradeShowScan, t0())], &p, t0()).lead;
    assert_eq!(lead.state, LeadState::MarketingQualified);
    let breached = run(&lead, Command::Tick, &p, at(61)).lead;
    assert!(breached.sla.as_ref().unwrap().breached_at.is_some());
    let budget_date = t0() + Duration::days(120);
    let mut budget_later = call(met(), Some(C::NotMet), met(), met());
    budget_later.budget.available_at = Some(budget_date);
    let nurtured = run(&breached, Command::RecordDiscoveryCall(budget_later), &p, at(90)).lead;
    assert_eq!(nurtured.state, LeadState::Nurturing);
    let revisit = nurtured.revisit_at.unwrap();

    let back = run(&nurtured, Command::Tick, &p, revisit).lead;
    assert_eq!(back.state, LeadState::MarketingQualified);
    let clock = back.sla.as_ref().unwrap();
    assert_eq!(clock.number, 2, "a new hand-off, a new clock");
    assert_eq!(clock.trigger, SlaTrigger::MarketingQualified);
    assert_eq!(clock.started_at, revisit);
    assert_eq!(clock.breached_at, None);
    assert_eq!(
        sla::state_at(back.sla.as_ref(), &p.rules, revisit),
        SlaState::OnTrack
    );
    let late = run(&back, Command::Tick, &p, revisit + Duration::minutes(61));
    assert_eq!(late.entries.len(), 1, "the new clock breaches on its own");
    assert_eq!(late.entries[0].kind, AuditKind::SlaBreached);
}

#[test]
fn a_demo_request_after_a_breached_clock_starts_a_new_one() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    let breached = run(&lead, Command::Tick, &p, at(6)).lead;
    let again = run(
        &breached,
        Command::RecordEngagement {
            events: vec![event(K::DemoRequest, at(20))],
        },
        &p,
        at(20),
    )
    .lead;
    let clock = again.sla.as_ref().unwrap();
    assert_eq!(clock.number, 2);
    assert_eq!(clock.trigger, SlaTrigger::DemoRequest);
    assert_eq!((clock.started_at, clock.due_at), (at(20), at(25)));
    assert_eq!(clock.breached_at, None);
}

#[test]
fn a_demo_request_after_an_answered_clock_starts_a_new_one() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    let touched = run(&lead, attempt(ContactOutcome::Connected, at(2)), &p, at(2)).lead;
    let again = run(
        &touched,
        Command::RecordEngagement {
            events: vec![event(K::DemoRequest, at(20))],
        },
        &p,
        at(20),
    )
    .lead;
    let clock = again.sla.as_ref().unwrap();
    assert_eq!(clock.number, 2);
    assert_eq!((clock.first_touch_at, clock.attempts), (None, 0));
}

#[test]
fn a_demo_request_tightens_the_running_clock_which_keeps_its_number() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::TradeShowScan, t0())], &p, t0()).lead;
    assert_eq!(lead.sla.as_ref().unwrap().due_at, at(60));
    let demo = |lead: &Lead, minute: i64| {
        run(
            lead,
            Command::RecordEngagement {
                events: vec![event(K::DemoRequest, at(minute))],
            },
            &p,
            at(minute),
        )
        .lead
    };
    let tightened = demo(&lead, 10);
    let clock = tightened.sla.as_ref().unwrap();
    assert_eq!((clock.number, clock.trigger), (1, SlaTrigger::DemoRequest));
    assert_eq!((clock.started_at, clock.due_at), (at(10), at(15)));
    let clock = demo(&tightened, 12).sla.unwrap();
    assert_eq!(
        (clock.number, clock.due_at),
        (1, at(15)),
        "a later request never loosens it"
    );
}

#[test]
fn a_command_after_the_due_time_records_the_breach_first() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    let applied = run(&lead, attempt(ContactOutcome::Connected, at(9)), &p, at(9));
    let kinds: Vec<_> = applied.entries.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [AuditKind::SlaBreached, AuditKind::ContactAttemptRecorded]);
    assert_eq!(
        applied.lead.revision,
        lead.revision + 1,
        "one change, two entries"
    );
}

#[test]
fn all_four_bant_criteria_and_an_accepted_fit_make_a_prospect() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    let applied = run(
        &lead,
        Command::RecordDiscoveryCall(call(met(), met(), met(), met())),
        &p,
        at(30),
    );
    assert_eq!(applied.lead.state, LeadState::SalesQualified);
    assert_eq!(rule_ids(&applied.lead.state_reasons), ["bant.qualified"]);
    assert_eq!(applied.decision.state_before, Some(LeadState::MarketingQualified));
    assert!(applied.lead.reached, "a discovery call reached the contact");
}

#[test]
fn authority_not_met_keeps_the_lead_short_of_prospect() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    let no_weight = call(met(), met(), Some(C::NotMet), met());
    let lead = run(&lead, Command::RecordDiscoveryCall(no_weight), &p, at(30)).lead;
    assert_eq!(lead.state, LeadState::MarketingQualified);
    let ids = rule_ids(&lead.state_reasons);
    assert!(ids.contains(&"bant.authority.missing"), "{ids:?}");
}

#[test]
fn a_cio_whose_committee_is_not_involved_does_not_meet_authority() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    // The CIO has weight (authority MET) but the executive committee decides and is not involved.
    let mut cio = call(met(), met(), met(), met());
    cio.authority.decision_maker = Some(DecisionMakerInvolvement::NotInvolved);
    let lead = run(&lead, Command::RecordDiscoveryCall(cio), &p, at(30)).lead;
    assert_eq!(lead.state, LeadState::MarketingQualified);
    assert_eq!(lead.bant.met_count(), 3, "authority does not count");
    let committee = lead
        .state_reasons
        .iter()
        .find(|r| r.rule_id == "bant.authority.committee")
        .expect("the reason names the missing decision-maker");
    assert!(
        committee.message.contains("final decision-maker"),
        "{committee:?}"
    );
    assert!(committee.message.contains("committee"), "{committee:?}");
}

#[test]
fn the_committee_stays_uninvolved_until_a_call_says_it_is_involved() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    let mut cio = call(met(), met(), met(), met());
    cio.authority.decision_maker = Some(DecisionMakerInvolvement::NotInvolved);
    let lead = run(&lead, Command::RecordDiscoveryCall(cio), &p, at(30)).lead;
    // A second call confirms authority again without saying who decides: still not involved.
    let mut again = call(None, None, met(), None);
    again.authority.decision_maker = None;
    let lead = run(&lead, Command::RecordDiscoveryCall(again), &p, at(40)).lead;
    assert_eq!(lead.state, LeadState::MarketingQualified);
    assert_eq!(
        lead.bant.authority.decision_maker,
        Some(DecisionMakerInvolvement::NotInvolved)
    );
    let mut involved = call(None, None, met(), None);
    involved.authority.decision_maker = Some(DecisionMakerInvolvement::Involved);
    let lead = run(&lead, Command::RecordDiscoveryCall(involved), &p, at(50)).lead;
    assert_eq!(lead.state, LeadState::SalesQualified);
}

#[test]
fn authority_met_with_nothing_said_of_the_decision_maker_still_qualifies() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    let mut unsaid = call(met(), met(), met(), met());
    unsaid.authority.decision_maker = None;
    let lead = run(&lead, Command::RecordDiscoveryCall(unsaid), &p, at(30)).lead;
    assert_eq!(lead.state, LeadState::SalesQualified);
}

#[test]
fn authority_findings_written_before_the_decision_maker_field_still_read() {
    use crate::domain::facts::Bant;
    let involved: AuthorityFinding =
        serde_json::from_str(r#"{"status":"MET","decision_maker_involved":true}"#).unwrap();
    assert_eq!(involved.decision_maker, Some(DecisionMakerInvolvement::Involved));
    let unsaid: AuthorityFinding =
        serde_json::from_str(r#"{"status":"NOT_MET","decision_maker_involved":false,"evidence":"x"}"#)
            .unwrap();
    assert_eq!(
        unsaid.decision_maker, None,
        "the old false could not say \"not involved\""
    );
    assert_eq!(unsaid.status, Some(C::NotMet));
    let bant: Bant = serde_json::from_str(
        r#"{"need":{},"budget":{},"authority":{"decision_maker_involved":true},"timing":{}}"#,
    )
    .unwrap();
    assert_eq!(
        bant.authority.decision_maker,
        Some(DecisionMakerInvolvement::Involved)
    );
    // What is written now reads back the same.
    let not_involved = AuthorityFinding {
        status: met(),
        decision_maker: Some(DecisionMakerInvolvement::NotInvolved),
        evidence: String::new(),
    };
    let json = serde_json::to_string(&not_involved).unwrap();
    assert_eq!(json, r#"{"status":"MET","decision_maker":"NOT_INVOLVED"}"#);
    assert_eq!(
        serde_json::from_str::<AuthorityFinding>(&json).unwrap(),
        not_involved
    );
}

#[test]
fn a_trail_written_before_the_decision_maker_field_replays() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0());
    let called = run(
        &lead.lead,
        Command::RecordDiscoveryCall(call(met(), met(), met(), met())),
        &p,
        at(30),
    );
    assert_eq!(called.lead.state, LeadState::SalesQualified);
    // The call's inputs as the earlier version recorded them.
    let mut entries = lead.entries.clone();
    entries.extend(called.entries.iter().cloned());
    let old = entries.last_mut().unwrap();
    assert_eq!(old.kind, AuditKind::DiscoveryCallRecorded);
    let mut body: serde_json::Value = serde_json::from_str(&old.body).unwrap();
    let authority = &mut body["inputs"]["authority"];
    assert_eq!(authority["decision_maker"], "INVOLVED");
    authority.as_object_mut().unwrap().remove("decision_maker");
    authority["decision_maker_involved"] = true.into();
    old.body = body.to_string();
    let rebuilt = replay(&entries, |v| (v == p.version).then_some(&p)).unwrap();
    assert_eq!(rebuilt.state, LeadState::SalesQualified);
    assert_eq!(rebuilt.bant, called.lead.bant);
}

#[test]
fn a_policy_may_ask_for_three_of_four() {
    let p = policy_with(&[("bant_required = 4", "bant_required = 3")]);
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    let lead = run(
        &lead,
        Command::RecordDiscoveryCall(call(met(), met(), Some(C::NotMet), met())),
        &p,
        at(30),
    )
    .lead;
    assert_eq!(lead.state, LeadState::SalesQualified);
}

#[test]
fn need_is_required_by_default_even_when_three_others_are_met() {
    let p = policy_with(&[("bant_required = 4", "bant_required = 3")]);
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    let lead = run(
        &lead,
        Command::RecordDiscoveryCall(call(Some(C::Unknown), met(), met(), met())),
        &p,
        at(30),
    )
    .lead;
    assert_eq!(lead.state, LeadState::MarketingQualified);
}

#[test]
fn no_need_disqualifies_or_nurtures_as_the_policy_says() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    let no_need = call(Some(C::NotMet), None, None, None);
    let disqualified = run(&lead, Command::RecordDiscoveryCall(no_need.clone()), &p, at(30)).lead;
    assert_eq!(disqualified.state, LeadState::Disqualified);
    assert_eq!(
        disqualified.disqualification,
        Some(DisqualificationReason::NoNeed)
    );

    let p = policy_with(&[("on_no_need = \"disqualify\"", "on_no_need = \"nurture\"")]);
    let nurtured = run(&lead, Command::RecordDiscoveryCall(no_need), &p, at(30)).lead;
    assert_eq!(nurtured.state, LeadState::Nurturing);
    assert_eq!(nurtured.revisit_at, Some(at(30) + Duration::days(90)));
}

#[test]
fn timing_later_nurtures_until_shortly_before_the_date() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    let next_fiscal_year = t0() + Duration::days(300);
    let mut later = call(met(), met(), met(), Some(C::NotMet));
    later.timing.target_at = Some(next_fiscal_year);
    let lead = run(&lead, Command::RecordDiscoveryCall(later), &p, at(30)).lead;
    assert_eq!(lead.state, LeadState::Nurturing);
    assert_eq!(lead.revisit_at, Some(next_fiscal_year - Duration::days(30)));
    assert!(
        lead.sla
            .as_ref()
            .is_none_or(|c| c.first_touch_at.is_some() || c.breached_at.is_some()),
        "no clock runs while nurtured"
    );
}

#[test]
fn when_the_revisit_date_comes_the_lead_returns_to_sales() {
    let p = policy();
    let lead = submit(&purchasing_director(), &[event(K::TradeShowScan, t0())], &p, t0()).lead;
    let budget_date = t0() + Duration::days(120);
    let mut budget_later = call(met(), Some(C::NotMet), met(), met());
    budget_later.budget.available_at = Some(budget_date);
    let nurtured = run(&lead, Command::RecordDiscoveryCall(budget_later), &p, at(60)).lead;
    assert_eq!(nurtured.state, LeadState::Nurturing);
    let revisit = budget_date - Duration::days(30);
    assert_eq!(nurtured.revisit_at, Some(revisit));
    assert!(
        run(&nurtured, Command::Tick, &p, revisit - Duration::minutes(1))
            .entries
            .is_empty()
    );
    let back = run(&nurtured, Command::Tick, &p, revisit);
    assert_eq!(back.entries.len(), 1);
    assert_eq!(back.entries[0].kind, AuditKind::NurtureRevisited);
    assert_eq!(back.lead.state, LeadState::MarketingQualified);
    assert_eq!(rule_ids(&back.lead.state_reasons), ["bant.date_reached"]);
    assert_eq!(
        back.lead.sla.as_ref().unwrap().trigger,
        SlaTrigger::MarketingQualified,
        "a new hand-off"
    );
}

#[test]
fn a_lead_outside_the_profile_is_nurtured_or_disqualified_as_the_policy_says() {
    let p = policy();
    let lead = submit(
        &law_firm(),
        &[event(K::DemoRequest, t0()), event(K::WebinarAttended, t0())],
        &p,
        t0(),
    )
    .lead;
    assert_eq!(lead.state, LeadState::Nurturing);
    assert_eq!(rule_ids(&lead.state_reasons), ["fit.outside_profile"]);
    let p = policy_with(&[("on_poor_fit = \"nurture\"", "on_poor_fit = \"disqualify\"")]);
    let lead = submit(&law_firm(), &[], &p, t0()).lead;
    assert_eq!(lead.state, LeadState::Disqualified);
    assert_eq!(lead.disqualification, Some(DisqualificationReason::PoorFit));
}

#[test]
fn the_engine_does_not_move_a_marketing_qualified_lead_back() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::TradeShowScan, t0())], &p, t0()).lead;
    let later = t0() + Duration::days(200);
    let lead = run(
        &lead,
        Command::RecordEngagement {
            events: vec![event(K::EmailOpen, later)],
        },
        &p,
        later,
    )
    .lead;
    assert!(lead.scores.combined < lead.scores.threshold);
    assert_eq!(lead.state, LeadState::MarketingQualified);
    assert!(rule_ids(&lead.state_reasons).contains(&"lifecycle.held"));
}

// ---- people ----

#[test]
fn an_override_holds_and_new_facts_only_recommend() {
    let p = policy();
    let lead = submit(&cfo(), &[], &p, t0()).lead;
    assert_eq!(lead.state, LeadState::Lead);
    let held = apply(
        &lead,
        override_to(LeadState::Nurturing, "budget frozen this year"),
        &person(&p, at(1), "manager-1"),
    )
    .unwrap();
    assert_eq!(held.lead.state, LeadState::Nurturing);
    assert_eq!(held.entries[0].kind, AuditKind::StateOverridden);
    assert_eq!(held.entries[0].actor, "manager-1");
    let over = held.lead.human_override.as_ref().unwrap();
    assert_eq!(over.actor, "manager-1");
    assert_eq!(over.expires_at, Some(at(1) + Duration::days(90)));

    let with_demo = run(
        &held.lead,
        Command::RecordEngagement {
            events: vec![event(K::DemoRequest, at(2))],
        },
        &p,
        at(2),
    );
    assert_eq!(
        with_demo.lead.state,
        LeadState::Nurturing,
        "the person's decision holds"
    );
    assert_eq!(
        with_demo.lead.recommendation.as_ref().unwrap().state,
        LeadState::MarketingQualified
    );
    assert_eq!(
        with_demo.decision.recommendation.as_ref().unwrap().state,
        LeadState::MarketingQualified
    );
    assert!(
        with_demo.entries[0]
            .body
            .contains("\"recommended_state\":\"MARKETING_QUALIFIED\"")
    );

    let released = run(
        &with_demo.lead,
        Command::ReleaseOverride {
            reason: "budget unfrozen".into(),
        },
        &p,
        at(3),
    );
    assert_eq!(released.lead.state, LeadState::MarketingQualified);
    assert!(released.lead.human_override.is_none());
    assert!(released.lead.recommendation.is_none());
}

#[test]
fn an_override_to_nurturing_lapses_at_its_revisit_date() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::WebinarRegistered, t0())], &p, t0()).lead;
    assert_eq!(lead.state, LeadState::Lead);
    let revisit = at(60 * 24 * 10);
    let request = OverrideRequest {
        state: LeadState::Nurturing,
        reason: "call back after the holidays".into(),
        disqualification: None,
        revisit_at: Some(revisit),
    };
    let lead = apply(&lead, Command::Override(request), &person(&p, at(1), "manager-1"))
        .unwrap()
        .lead;
    let back = run(&lead, Command::Tick, &p, revisit).lead;
    assert!(back.human_override.is_none());
    assert_eq!(
        back.state,
        LeadState::Lead,
        "back in the funnel, where its score puts it"
    );
}

#[test]
fn illegal_moves_are_refused_and_change_nothing() {
    let p = policy();
    let lead = submit(&cfo(), &[], &p, t0()).lead;
    let request = OverrideRequest {
        state: LeadState::Disqualified,
        reason: "competitor".into(),
        disqualification: Some(DisqualificationReason::LostToCompetitor),
        revisit_at: None,
    };
    let disqualified = run(&lead, Command::Override(request), &p, at(1)).lead;
    for state in [
        LeadState::SalesQualified,
        LeadState::MarketingQualified,
        LeadState::Nurturing,
    ] {
        let refused = apply(&disqualified, override_to(state, "try"), &ctx(&p, at(2)));
        assert!(
            matches!(refused, Err(Rejection::Illegal(_))),
            "{state}: {refused:?}"
        );
    }
    let convert = apply(
        &lead,
        Command::Convert {
            opportunity_reference: "OPP-1".into(),
        },
        &ctx(&p, at(2)),
    );
    assert!(
        matches!(convert, Err(Rejection::Illegal(_))),
        "only a prospect converts"
    );
    let reopened = run(
        &disqualified,
        override_to(LeadState::Lead, "they came back"),
        &p,
        at(3),
    )
    .lead;
    assert_eq!(reopened.state, LeadState::Lead);
}

#[test]
fn converting_a_prospect_is_terminal() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    let lead = run(
        &lead,
        Command::RecordDiscoveryCall(call(met(), met(), met(), met())),
        &p,
        at(30),
    )
    .lead;
    let converted = run(
        &lead,
        Command::Convert {
            opportunity_reference: "OPP-42".into(),
        },
        &p,
        at(31),
    )
    .lead;
    assert_eq!(converted.state, LeadState::Converted);
    assert_eq!(converted.opportunity_reference.as_deref(), Some("OPP-42"));
    for state in LeadState::ALL {
        assert!(apply(&converted, override_to(*state, "x"), &ctx(&p, at(32))).is_err());
    }
}

#[test]
fn a_lead_never_reached_is_recycled_only_after_the_minimum_attempts() {
    let p = policy();
    let mut lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    for i in 0..5 {
        lead = run(&lead, attempt(ContactOutcome::NoAnswer, at(i)), &p, at(i)).lead;
    }
    let refused = apply(
        &lead,
        override_to(LeadState::Nurturing, "no answer"),
        &ctx(&p, at(10)),
    );
    let Err(Rejection::Precondition(message)) = refused else {
        panic!("{refused:?}")
    };
    assert!(message.contains("5 of the 6 attempts"), "{message}");
    lead = run(&lead, attempt(ContactOutcome::Voicemail, at(11)), &p, at(11)).lead;
    assert_eq!(
        run(&lead, override_to(LeadState::Nurturing, "no answer"), &p, at(12))
            .lead
            .state,
        LeadState::Nurturing
    );
}

#[test]
fn a_lead_that_was_reached_may_be_recycled_at_once() {
    let p = policy();
    let lead = submit(&cfo(), &[event(K::DemoRequest, t0())], &p, t0()).lead;
    let lead = run(&lead, attempt(ContactOutcome::Connected, at(2)), &p, at(2)).lead;
    assert_eq!(
        run(&lead, override_to(LeadState::Nurturing, "not now"), &p, at(3))
            .lead
            .state,
        LeadState::Nurturing
    );
}

#[test]
fn releasing_without_an_override_is_refused() {
    let p = policy();
    let lead = submit(&cfo(), &[], &p, t0()).lead;
    let refused = apply(
        &lead,
        Command::ReleaseOverride { reason: "x".into() },
        &ctx(&p, at(1)),
    );
    assert!(matches!(refused, Err(Rejection::Precondition(_))));
}

#[test]
fn a_signal_from_the_future_is_refused() {
    let p = policy();
    let lead = submit(&cfo(), &[], &p, t0()).lead;
    let refused = apply(
        &lead,
        Command::RecordEngagement {
            events: vec![event(K::FormFill, at(10))],
        },
        &ctx(&p, t0()),
    );
    let Err(Rejection::Invalid(v)) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(v.iter().next().unwrap().field, "events[0].occur_time");
}

#[test]
fn a_resubmission_counts_as_engagement() {
    let p = policy();
    let lead = submit(&cfo(), &[], &p, t0()).lead;
    let source = lead.profile.source.clone();
    let again = run(
        &lead,
        Command::Resubmit {
            source,
            events: vec![],
            profile: Default::default(),
        },
        &p,
        at(1),
    );
    assert_eq!(again.entries[0].kind, AuditKind::LeadResubmitted);
    assert_eq!(again.lead.scores.engagement, Points(500));
}

#[test]
fn every_entry_records_inputs_scores_states_reasons_and_policy() {
    let p = policy();
    let lead = submit(&cfo(), &[], &p, t0()).lead;
    let applied = run(
        &lead,
        Command::RecordEngagement {
            events: vec![event(K::DemoRequest, at(1))],
        },
        &p,
        at(1),
    );
    let entry = &applied.entries[0];
    assert_eq!(entry.state_before, Some(LeadState::Lead));
    assert_eq!(entry.state_after, Some(LeadState::MarketingQualified));
    assert_eq!(entry.policy_version, p.version);
    let body = entry.parsed_body();
    assert_eq!(body.scores_before.unwrap().combined, Points(4000));
    assert_eq!(body.scores_after.unwrap().combined, Points(7000));
    assert_eq!(body.inputs["events"][0]["kind"], "DEMO_REQUEST");
    assert_eq!(rule_ids(&body.reasons), ["score.threshold"]);
    assert!(!entry.body.contains("cfo@acme"), "no personal data in the trail");
}

#[test]
fn submissions_record_no_personal_data() {
    let p = policy();
    let applied = submit(&cfo(), &[], &p, t0());
    let body = &applied.entries[0].body;
    for personal in ["cfo@acme-industrie.fr", "Given", "Family", "+33", "Title"] {
        assert!(!body.contains(personal), "{personal} in {body}");
    }
    assert!(
        body.contains("acme-industrie.fr"),
        "the email's domain is kept for scoring"
    );
}
