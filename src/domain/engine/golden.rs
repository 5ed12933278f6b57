//! Audit bodies pinned byte for byte. Entries are hash-chained: a body written once must encode
//! the same way for as long as leadgate runs, and keep parsing back into the command it records.
//! The trails below touch every kind of input the engine writes; `PINNED` is their bodies as
//! stored.

use super::fixtures::*;
use super::*;
use crate::domain::audit::AuditKind;
use crate::domain::audit::{AuditBody, encode_body};
use crate::domain::values::{
    ContactChannel, ContactOutcome, CriterionStatus as C, DisqualificationReason, EngagementKind as K,
    SourceChannel,
};

/// Three leads' trails: one through every kind of input from submission to a nurture revisit,
/// one converted, one disqualified by a person then released.
fn trails(p: &Policy) -> Vec<(Vec<AuditEntry>, Lead)> {
    let mut trails = Vec::new();
    let mut profile = cfo().build();
    profile.external_reference = "crm-42".into();
    profile.source.campaign = "spring".into();
    let demo = EventInput {
        subject: "pricing".into(),
        ..event(K::DemoRequest, t0())
    };
    let submitted = create(
        LeadId::from_uuid(uuid::Uuid::from_u128(7)),
        profile,
        &[demo],
        &person(p, t0(), "web-form"),
    )
    .expect("a valid submission");
    let mut entries = submitted.entries;
    let mut lead = submitted.lead;
    let step = |lead: &mut Lead, entries: &mut Vec<AuditEntry>, command: Command, minutes: i64| {
        let applied = apply(lead, command, &person(p, at(minutes), "rep-1")).expect("the command applies");
        entries.extend(applied.entries);
        *lead = applied.lead;
    };
    // Past the five-minute clock: the breach is recorded before the resubmission.
    let resubmit = Command::Resubmit {
        source: Source {
            channel: SourceChannel::TradeShow,
            campaign: "salon".into(),
        },
        events: vec![event(K::WebinarAttended, at(5))],
        profile: Default::default(),
    };
    step(&mut lead, &mut entries, resubmit, 10);
    let engagement = Command::RecordEngagement {
        events: vec![EventInput {
            subject: "whitepaper".into(),
            ..event(K::ContentDownload, at(11))
        }],
    };
    step(&mut lead, &mut entries, engagement, 12);
    let attempt = Command::RecordContactAttempt(ContactAttempt {
        channel: ContactChannel::Phone,
        outcome: ContactOutcome::Connected,
        attempt_at: Some(at(20)),
        agent: "rep-1".into(),
    });
    step(&mut lead, &mut entries, attempt, 21);
    let finding = |status| Some(status);
    let call = Command::RecordDiscoveryCall(DiscoveryCall {
        call_at: None,
        need: crate::domain::facts::NeedFinding {
            status: finding(C::Met),
            evidence: "audit trail".into(),
        },
        budget: Default::default(),
        authority: Default::default(),
        timing: Default::default(),
        conducted_by: "rep-1".into(),
    });
    step(&mut lead, &mut entries, call, 30);
    let nurture = Command::Override(OverrideRequest {
        state: LeadState::Nurturing,
        reason: "back in the autumn".into(),
        disqualification: None,
        revisit_at: Some(at(60 * 24 * 10)),
    });
    step(&mut lead, &mut entries, nurture, 40);
    // The revisit falls due: the sweeper's tick records it.
    step(&mut lead, &mut entries, Command::Tick, 60 * 24 * 10);
    trails.push((entries, lead));

    let second = submit(&cfo(), &[event(K::DemoRequest, t0())], p, t0());
    let mut entries = second.entries;
    let mut lead = second.lead;
    let all_met = |need| {
        Command::RecordDiscoveryCall(DiscoveryCall {
            call_at: Some(at(2)),
            need: crate::domain::facts::NeedFinding {
                status: need,
                evidence: String::new(),
            },
            budget: crate::domain::facts::BudgetFinding {
                status: Some(C::Met),
                ..Default::default()
            },
            authority: crate::domain::facts::AuthorityFinding {
                status: Some(C::Met),
                decision_maker: Some(crate::domain::values::DecisionMakerInvolvement::Involved),
                evidence: String::new(),
            },
            timing: crate::domain::facts::TimingFinding {
                status: Some(C::Met),
                ..Default::default()
            },
            conducted_by: String::new(),
        })
    };
    step(&mut lead, &mut entries, all_met(Some(C::Met)), 3);
    let convert = Command::Convert {
        opportunity_reference: "OPP-2026-001".into(),
    };
    step(&mut lead, &mut entries, convert, 4);
    trails.push((entries, lead));

    let third = submit(&law_firm(), &[], p, t0());
    let mut entries = third.entries;
    let mut lead = third.lead;
    let disqualify = Command::Override(OverrideRequest {
        state: LeadState::Disqualified,
        reason: "went with a competitor".into(),
        disqualification: Some(DisqualificationReason::LostToCompetitor),
        revisit_at: None,
    });
    step(&mut lead, &mut entries, disqualify, 4);
    let release = Command::ReleaseOverride {
        reason: "they came back".into(),
    };
    step(&mut lead, &mut entries, release, 5);
    // A correction, then a resubmission that fills what the lead lacks (the default rule).
    let mut corrected = ProfileValues::of(&cfo().build());
    corrected.email = Some(crate::domain::values::Email::parse("associee@cabinet-avocats.fr").unwrap());
    corrected.phone.clear();
    let update = Command::UpdateProfile(ProfileUpdate {
        fields: [
            ProfileField::ContactEmail,
            ProfileField::ContactPhone,
            ProfileField::CompanyIndustry,
            ProfileField::CompanyEmployeeCount,
        ]
        .into(),
        values: corrected,
    });
    step(&mut lead, &mut entries, update, 6);
    let resubmit = Command::Resubmit {
        source: Source {
            channel: SourceChannel::Website,
            campaign: String::new(),
        },
        events: vec![],
        profile: ProfileValues::of(&cfo().build()),
    };
    step(&mut lead, &mut entries, resubmit, 7);
    trails.push((entries, lead));
    trails
}

/// A policy activation's body, as the app records it.
fn policy_activation(p: &Policy) -> String {
    encode_body(&AuditBody {
        inputs: AuditInputs::PolicyActivated(PolicyActivation {
            version: p.version.clone(),
            name: p.name.clone(),
        })
        .to_value(),
        ..AuditBody::default()
    })
}

/// The trails' bodies, in order, as the engine wrote them when this test was written.
const PINNED: [(AuditKind, &str); 16] = [
    (
        AuditKind::LeadSubmitted,
        r#"{"inputs":{"company":{"country":"FR","employee_count":300,"industry":"manufacturing","name":"Company"},"email_domain":"acme-industrie.fr","events":[{"kind":"DEMO_REQUEST","occurred_at":"2026-03-02T09:00:00Z","subject":"pricing"}],"external_reference":"crm-42","job_function":"finance","seniority":"EXECUTIVE","source":{"campaign":"spring","channel":"WEBSITE"}},"scores_after":{"fit":4000,"grade":"A","engagement":3000,"combined":7000,"threshold":5000,"evaluated_at":"2026-03-02T09:00:00Z"},"reasons":[{"rule_id":"score.threshold","message":"combined score 70.00 reached the threshold 50.00"}],"sla":{"number":1,"trigger":"DEMO_REQUEST","started_at":"2026-03-02T09:00:00Z","due_at":"2026-03-02T09:05:00Z","attempts":0}}"#,
    ),
    (
        AuditKind::SlaBreached,
        r#"{"inputs":{"due_at":"2026-03-02T09:05:00Z","trigger":"DEMO_REQUEST"},"scores_before":{"fit":4000,"grade":"A","engagement":3000,"combined":7000,"threshold":5000,"evaluated_at":"2026-03-02T09:00:00Z"},"scores_after":{"fit":4000,"grade":"A","engagement":3000,"combined":7000,"threshold":5000,"evaluated_at":"2026-03-02T09:00:00Z"},"reasons":[{"rule_id":"sla.breached","message":"first touch was due at 2026-03-02T09:05:00Z (DEMO_REQUEST) and none was recorded"}],"sla":{"number":1,"trigger":"DEMO_REQUEST","started_at":"2026-03-02T09:00:00Z","due_at":"2026-03-02T09:05:00Z","breached_at":"2026-03-02T09:05:00Z","attempts":0}}"#,
    ),
    (
        AuditKind::LeadResubmitted,
        r#"{"inputs":{"events":[{"kind":"WEBINAR_ATTENDED","occurred_at":"2026-03-02T09:05:00Z"}],"source":{"campaign":"salon","channel":"TRADE_SHOW"}},"scores_before":{"fit":4000,"grade":"A","engagement":3000,"combined":7000,"threshold":5000,"evaluated_at":"2026-03-02T09:00:00Z"},"scores_after":{"fit":4000,"grade":"A","engagement":5000,"combined":9000,"threshold":5000,"evaluated_at":"2026-03-02T09:10:00Z"},"reasons":[{"rule_id":"score.threshold","message":"combined score 90.00 reached the threshold 50.00"}],"sla":{"number":1,"trigger":"DEMO_REQUEST","started_at":"2026-03-02T09:00:00Z","due_at":"2026-03-02T09:05:00Z","breached_at":"2026-03-02T09:05:00Z","attempts":0}}"#,
    ),
    (
        AuditKind::EngagementRecorded,
        r#"{"inputs":{"events":[{"kind":"CONTENT_DOWNLOAD","occurred_at":"2026-03-02T09:11:00Z","subject":"whitepaper"}]},"scores_before":{"fit":4000,"grade":"A","engagement":5000,"combined":9000,"threshold":5000,"evaluated_at":"2026-03-02T09:10:00Z"},"scores_after":{"fit":4000,"grade":"A","engagement":5499,"combined":9499,"threshold":5000,"evaluated_at":"2026-03-02T09:12:00Z"},"reasons":[{"rule_id":"score.threshold","message":"combined score 94.99 reached the threshold 50.00"}],"sla":{"number":1,"trigger":"DEMO_REQUEST","started_at":"2026-03-02T09:00:00Z","due_at":"2026-03-02T09:05:00Z","breached_at":"2026-03-02T09:05:00Z","attempts":0}}"#,
    ),
    (
        AuditKind::ContactAttemptRecorded,
        r#"{"inputs":{"agent":"rep-1","attempt_at":"2026-03-02T09:20:00Z","channel":"PHONE","outcome":"CONNECTED"},"scores_before":{"fit":4000,"grade":"A","engagement":5499,"combined":9499,"threshold":5000,"evaluated_at":"2026-03-02T09:12:00Z"},"scores_after":{"fit":4000,"grade":"A","engagement":5499,"combined":9499,"threshold":5000,"evaluated_at":"2026-03-02T09:21:00Z"},"reasons":[{"rule_id":"score.threshold","message":"combined score 94.99 reached the threshold 50.00"}],"sla":{"number":1,"trigger":"DEMO_REQUEST","started_at":"2026-03-02T09:00:00Z","due_at":"2026-03-02T09:05:00Z","first_touch_at":"2026-03-02T09:20:00Z","breached_at":"2026-03-02T09:05:00Z","attempts":1}}"#,
    ),
    (
        AuditKind::DiscoveryCallRecorded,
        r#"{"inputs":{"authority":{},"budget":{},"call_at":"2026-03-02T09:30:00Z","conducted_by":"rep-1","need":{"evidence":"audit trail","status":"MET"},"timing":{}},"scores_before":{"fit":4000,"grade":"A","engagement":5499,"combined":9499,"threshold":5000,"evaluated_at":"2026-03-02T09:21:00Z"},"scores_after":{"fit":4000,"grade":"A","engagement":5498,"combined":9498,"threshold":5000,"evaluated_at":"2026-03-02T09:30:00Z"},"reasons":[{"rule_id":"score.threshold","message":"combined score 94.98 reached the threshold 50.00"},{"rule_id":"bant.authority.missing","message":"authority is not confirmed"},{"rule_id":"bant.incomplete","message":"1 of 4 BANT criteria met; the policy asks 4 including need"}],"sla":{"number":1,"trigger":"DEMO_REQUEST","started_at":"2026-03-02T09:00:00Z","due_at":"2026-03-02T09:05:00Z","first_touch_at":"2026-03-02T09:20:00Z","breached_at":"2026-03-02T09:05:00Z","attempts":1}}"#,
    ),
    (
        AuditKind::StateOverridden,
        r#"{"inputs":{"reason":"back in the autumn","revisit_at":"2026-03-12T09:00:00Z","state":"NURTURING"},"scores_before":{"fit":4000,"grade":"A","engagement":5498,"combined":9498,"threshold":5000,"evaluated_at":"2026-03-02T09:30:00Z"},"scores_after":{"fit":4000,"grade":"A","engagement":5497,"combined":9497,"threshold":5000,"evaluated_at":"2026-03-02T09:40:00Z"},"reasons":[{"rule_id":"override","message":"decided by rep-1: back in the autumn"}],"recommended_state":"MARKETING_QUALIFIED","sla":{"number":1,"trigger":"DEMO_REQUEST","started_at":"2026-03-02T09:00:00Z","due_at":"2026-03-02T09:05:00Z","first_touch_at":"2026-03-02T09:20:00Z","breached_at":"2026-03-02T09:05:00Z","attempts":1}}"#,
    ),
    (
        AuditKind::NurtureRevisited,
        r#"{"inputs":{"revisit_at":"2026-03-12T09:00:00Z"},"scores_before":{"fit":4000,"grade":"A","engagement":5497,"combined":9497,"threshold":5000,"evaluated_at":"2026-03-02T09:40:00Z"},"scores_after":{"fit":4000,"grade":"A","engagement":4366,"combined":8366,"threshold":5000,"evaluated_at":"2026-03-12T09:00:00Z"},"reasons":[{"rule_id":"score.threshold","message":"combined score 83.66 reached the threshold 50.00"},{"rule_id":"bant.authority.missing","message":"authority is not confirmed"},{"rule_id":"bant.incomplete","message":"1 of 4 BANT criteria met; the policy asks 4 including need"}],"sla":{"number":2,"trigger":"MARKETING_QUALIFIED","started_at":"2026-03-12T09:00:00Z","due_at":"2026-03-12T10:00:00Z","attempts":0}}"#,
    ),
    (
        AuditKind::LeadSubmitted,
        r#"{"inputs":{"company":{"country":"FR","employee_count":300,"industry":"manufacturing","name":"Company"},"email_domain":"acme-industrie.fr","events":[{"kind":"DEMO_REQUEST","occurred_at":"2026-03-02T09:00:00Z"}],"job_function":"finance","seniority":"EXECUTIVE","source":{"channel":"WEBSITE"}},"scores_after":{"fit":4000,"grade":"A","engagement":3000,"combined":7000,"threshold":5000,"evaluated_at":"2026-03-02T09:00:00Z"},"reasons":[{"rule_id":"score.threshold","message":"combined score 70.00 reached the threshold 50.00"}],"sla":{"number":1,"trigger":"DEMO_REQUEST","started_at":"2026-03-02T09:00:00Z","due_at":"2026-03-02T09:05:00Z","attempts":0}}"#,
    ),
    (
        AuditKind::DiscoveryCallRecorded,
        r#"{"inputs":{"authority":{"decision_maker":"INVOLVED","status":"MET"},"budget":{"status":"MET"},"call_at":"2026-03-02T09:02:00Z","need":{"status":"MET"},"timing":{"status":"MET"}},"scores_before":{"fit":4000,"grade":"A","engagement":3000,"combined":7000,"threshold":5000,"evaluated_at":"2026-03-02T09:00:00Z"},"scores_after":{"fit":4000,"grade":"A","engagement":3000,"combined":7000,"threshold":5000,"evaluated_at":"2026-03-02T09:03:00Z"},"reasons":[{"rule_id":"bant.qualified","message":"4 of 4 BANT criteria met (policy asks 4); fit grade A accepted"}],"sla":{"number":1,"trigger":"DEMO_REQUEST","started_at":"2026-03-02T09:00:00Z","due_at":"2026-03-02T09:05:00Z","attempts":0}}"#,
    ),
    (
        AuditKind::LeadConverted,
        r#"{"inputs":{"opportunity_reference":"OPP-2026-001"},"scores_before":{"fit":4000,"grade":"A","engagement":3000,"combined":7000,"threshold":5000,"evaluated_at":"2026-03-02T09:03:00Z"},"scores_after":{"fit":4000,"grade":"A","engagement":3000,"combined":7000,"threshold":5000,"evaluated_at":"2026-03-02T09:04:00Z"},"reasons":[{"rule_id":"converted","message":"became CRM opportunity OPP-2026-001"}]}"#,
    ),
    (
        AuditKind::LeadSubmitted,
        r#"{"inputs":{"company":{"country":"FR","employee_count":12,"industry":"legal_services","name":"Company"},"email_domain":"cabinet-avocats.fr","events":[],"job_function":"finance","seniority":"EXECUTIVE","source":{"channel":"WEBSITE"}},"scores_after":{"fit":0,"grade":"D","engagement":0,"combined":0,"threshold":5000,"evaluated_at":"2026-03-02T09:00:00Z"},"reasons":[{"rule_id":"fit.outside_profile","message":"fit grade D is outside the ideal customer profile (accepted: A, B, C)"}]}"#,
    ),
    (
        AuditKind::StateOverridden,
        r#"{"inputs":{"disqualification":"LOST_TO_COMPETITOR","reason":"went with a competitor","state":"DISQUALIFIED"},"scores_before":{"fit":0,"grade":"D","engagement":0,"combined":0,"threshold":5000,"evaluated_at":"2026-03-02T09:00:00Z"},"scores_after":{"fit":0,"grade":"D","engagement":0,"combined":0,"threshold":5000,"evaluated_at":"2026-03-02T09:04:00Z"},"reasons":[{"rule_id":"override","message":"decided by rep-1: went with a competitor"}],"recommended_state":"NURTURING","disqualification":"LOST_TO_COMPETITOR"}"#,
    ),
    (
        AuditKind::OverrideReleased,
        r#"{"inputs":{"reason":"they came back"},"scores_before":{"fit":0,"grade":"D","engagement":0,"combined":0,"threshold":5000,"evaluated_at":"2026-03-02T09:04:00Z"},"scores_after":{"fit":0,"grade":"D","engagement":0,"combined":0,"threshold":5000,"evaluated_at":"2026-03-02T09:05:00Z"},"reasons":[{"rule_id":"override","message":"decided by rep-1: went with a competitor"}],"recommended_state":"NURTURING","disqualification":"LOST_TO_COMPETITOR"}"#,
    ),
    (
        AuditKind::LeadUpdated,
        r#"{"inputs":{"company":{"employee_count":300,"industry":"manufacturing"},"email_domain":"cabinet-avocats.fr","fields":["contact.email","contact.phone","company.industry","company.employee_count"]},"scores_before":{"fit":0,"grade":"D","engagement":0,"combined":0,"threshold":5000,"evaluated_at":"2026-03-02T09:05:00Z"},"scores_after":{"fit":4000,"grade":"A","engagement":0,"combined":4000,"threshold":5000,"evaluated_at":"2026-03-02T09:06:00Z"},"reasons":[{"rule_id":"override","message":"decided by rep-1: went with a competitor"}],"recommended_state":"LEAD","disqualification":"LOST_TO_COMPETITOR"}"#,
    ),
    (
        AuditKind::LeadResubmitted,
        r#"{"inputs":{"events":[],"profile":{"fields":["contact.phone"]},"source":{"channel":"WEBSITE"}},"scores_before":{"fit":4000,"grade":"A","engagement":0,"combined":4000,"threshold":5000,"evaluated_at":"2026-03-02T09:06:00Z"},"scores_after":{"fit":4000,"grade":"A","engagement":500,"combined":4500,"threshold":5000,"evaluated_at":"2026-03-02T09:07:00Z"},"reasons":[{"rule_id":"override","message":"decided by rep-1: went with a competitor"}],"recommended_state":"LEAD","disqualification":"LOST_TO_COMPETITOR"}"#,
    ),
];

/// A policy activation's body for the default policy.
const PINNED_POLICY_ACTIVATION: &str = r#"{"inputs":{"name":"default","version":"c632c9f353b7566e"}}"#;

#[test]
fn the_engine_writes_the_pinned_bodies() {
    let p = policy();
    let written: Vec<(AuditKind, String)> = trails(&p)
        .into_iter()
        .flat_map(|(entries, _)| entries)
        .map(|e| (e.kind, e.body))
        .collect();
    assert_eq!(written.len(), PINNED.len());
    for (index, ((kind, body), (pinned_kind, pinned))) in written.iter().zip(PINNED).enumerate() {
        assert_eq!(*kind, pinned_kind, "entry {index}");
        assert_eq!(body, pinned, "entry {index} ({kind})");
    }
}

#[test]
fn a_policy_activation_is_written_as_pinned() {
    assert_eq!(policy_activation(&policy()), PINNED_POLICY_ACTIVATION);
}

#[test]
fn the_pinned_bodies_replay_into_the_same_leads() {
    let p = policy();
    let mut pinned = PINNED.iter();
    for (mut entries, lead) in trails(&p) {
        for entry in &mut entries {
            let (kind, body) = pinned.next().unwrap();
            assert_eq!(entry.kind, *kind);
            entry.body = (*body).to_owned();
        }
        let rebuilt = replay(&entries, |v| (v == p.version).then_some(&p)).unwrap();
        assert_eq!(rebuilt.state, lead.state);
        assert_eq!(rebuilt.scores, lead.scores);
        assert_eq!(rebuilt.bant, lead.bant);
        assert_eq!(rebuilt.sla, lead.sla);
        assert_eq!(rebuilt.revision, lead.revision);
    }
}

#[test]
fn the_pinned_inputs_parse_back_and_write_the_same_bytes() {
    let bodies = PINNED
        .iter()
        .copied()
        .chain([(AuditKind::PolicyActivated, PINNED_POLICY_ACTIVATION)]);
    for (kind, pinned) in bodies {
        let mut body: AuditBody = serde_json::from_str(pinned).unwrap();
        let inputs = AuditInputs::parse(kind, body.inputs.clone())
            .unwrap_or_else(|e| panic!("{kind} inputs parse: {e}"));
        assert_eq!(inputs.kind(), kind);
        body.inputs = inputs.to_value();
        assert_eq!(encode_body(&body), pinned, "{kind}");
    }
}

#[test]
fn a_revisit_without_a_date_is_written_as_null_and_reads_back() {
    let none = AuditInputs::NurtureRevisited(NurtureRevisit { revisit_at: None });
    assert_eq!(none.to_value().to_string(), r#"{"revisit_at":null}"#);
    let parsed = AuditInputs::parse(
        AuditKind::NurtureRevisited,
        serde_json::json!({ "revisit_at": null }),
    );
    assert_eq!(parsed.unwrap(), none);
}

#[test]
fn inputs_of_another_kind_do_not_parse() {
    let reason = serde_json::json!({ "reason": "they came back" });
    assert!(AuditInputs::parse(AuditKind::OverrideReleased, reason.clone()).is_ok());
    assert!(AuditInputs::parse(AuditKind::LeadConverted, reason).is_err());
}
