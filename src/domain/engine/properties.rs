//! Properties that hold for any sequence of commands.

use chrono::Duration;
use proptest::prelude::*;

use super::fixtures::*;
use super::*;
use crate::domain::facts::{AuthorityFinding, BudgetFinding, NeedFinding, TimingFinding};
use crate::domain::values::{ContactChannel, ContactOutcome, CriterionStatus, DecisionMakerInvolvement};

#[derive(Clone, Debug)]
enum Action {
    Engagement(Vec<(usize, i64)>),
    Call([Option<usize>; 4], Option<usize>, Option<i64>, Option<i64>),
    Attempt(usize),
    Override(usize, Option<usize>, Option<i64>),
    Release,
    Convert,
    Tick,
}

fn action() -> impl Strategy<Value = Action> {
    let kind = (0..EngagementKind::ALL.len(), 0i64..200 * 24 * 60);
    let status = proptest::option::of(0..3usize);
    prop_oneof![
        4 => proptest::collection::vec(kind, 1..4).prop_map(Action::Engagement),
        2 => ([status.clone(), status.clone(), status.clone(), status], proptest::option::of(0..2usize), proptest::option::of(-100i64..400), proptest::option::of(-100i64..400))
            .prop_map(|(s, decision_maker, budget, timing)| Action::Call(s, decision_maker, budget, timing)),
        2 => (0..ContactOutcome::ALL.len()).prop_map(Action::Attempt),
        1 => (0..LeadState::ALL.len(), proptest::option::of(0..DisqualificationReason::ALL.len()), proptest::option::of(1i64..200))
            .prop_map(|(s, d, r)| Action::Override(s, d, r)),
        1 => Just(Action::Release),
        1 => Just(Action::Convert),
        3 => Just(Action::Tick),
    ]
}

fn profiles() -> Vec<ProfileSpec> {
    vec![
        cfo(),
        purchasing_director(),
        law_firm(),
        unknown(),
        ProfileSpec {
            seniority: None,
            function: None,
            ..cfo()
        },
    ]
}

fn command(action: &Action, now: Timestamp) -> Command {
    let status = |i: Option<usize>| i.map(|i| CriterionStatus::ALL[i]);
    match action {
        Action::Engagement(events) => Command::RecordEngagement {
            events: events
                .iter()
                .map(|(k, back)| event(EngagementKind::ALL[*k], now - Duration::minutes(*back)))
                .collect(),
        },
        Action::Call(s, decision_maker, budget_days, timing_days) => {
            let mut call = DiscoveryCall {
                call_at: None,
                need: NeedFinding {
                    status: status(s[0]),
                    evidence: String::new(),
                },
                budget: BudgetFinding {
                    status: status(s[1]),
                    available_at: budget_days.map(|d| now + Duration::days(d)),
                    ..Default::default()
                },
                authority: AuthorityFinding {
                    status: status(s[2]),
                    decision_maker: decision_maker.map(|i| DecisionMakerInvolvement::ALL[i]),
                    evidence: String::new(),
                },
                timing: TimingFinding {
                    status: status(s[3]),
                    target_at: timing_days.map(|d| now + Duration::days(d)),
                    evidence: String::new(),
                },
                conducted_by: String::new(),
            };
            if s.iter().all(Option::is_none) {
                call.need.status = Some(CriterionStatus::Unknown);
            }
            Command::RecordDiscoveryCall(call)
        }
        Action::Attempt(o) => Command::RecordContactAttempt(ContactAttempt {
            channel: ContactChannel::Phone,
            outcome: ContactOutcome::ALL[*o],
            attempt_at: None,
            agent: String::new(),
        }),
        Action::Override(s, d, revisit) => {
            let state = LeadState::ALL[*s];
            Command::Override(OverrideRequest {
                state,
                reason: "a person decided".into(),
                disqualification: (state == LeadState::Disqualified)
                    .then(|| DisqualificationReason::ALL[d.unwrap_or(0)]),
                revisit_at: revisit
                    .filter(|_| state == LeadState::Nurturing)
                    .map(|r| now + Duration::days(r)),
            })
        }
        Action::Release => Command::ReleaseOverride {
            reason: "released".into(),
        },
        Action::Convert => Command::Convert {
            opportunity_reference: "OPP-1".into(),
        },
        Action::Tick => Command::Tick,
    }
}

/// Runs a random history; returns the final lead, every entry, and how many changes were made.
fn history(
    profile: usize,
    initial: &[(usize, i64)],
    steps: &[(i64, Action)],
) -> (Lead, Vec<AuditEntry>, i64) {
    let p = policy();
    let spec = &profiles()[profile];
    let events: Vec<_> = initial
        .iter()
        .map(|(k, back)| event(EngagementKind::ALL[*k], t0() - Duration::minutes(*back)))
        .collect();
    let created = submit(spec, &events, &p, t0());
    let mut lead = created.lead;
    let mut entries = created.entries;
    let mut changes = 1;
    let mut now = t0();
    for (gap, action) in steps {
        now += Duration::minutes(*gap);
        let ctx = person(&p, now, "manager-1");
        if let Ok(applied) = apply(&lead, command(action, now), &ctx) {
            if !applied.entries.is_empty() {
                changes += 1;
            }
            lead = applied.lead;
            entries.extend(applied.entries);
        }
    }
    (lead, entries, changes)
}

fn steps() -> impl Strategy<Value = Vec<(i64, Action)>> {
    proptest::collection::vec((0i64..60 * 24 * 60, action()), 1..30)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_recorded_move_is_an_allowed_one(
        profile in 0..5usize,
        initial in proptest::collection::vec((0..EngagementKind::ALL.len(), 0i64..10_000), 0..4),
        steps in steps(),
    ) {
        let (_, entries, _) = history(profile, &initial, &steps);
        for entry in &entries {
            let after = entry.state_after.unwrap();
            let mover = match entry.kind {
                AuditKind::StateOverridden | AuditKind::LeadConverted => Mover::Person,
                _ => Mover::Engine,
            };
            match entry.state_before {
                None => prop_assert!(after == LeadState::Lead || check_transition(LeadState::Lead, after, Mover::Engine).is_ok()),
                Some(before) if before == after => {}
                Some(before) => prop_assert!(
                    check_transition(before, after, mover).is_ok(),
                    "{:?}: {before} -> {after} by {mover:?}", entry.kind
                ),
            }
        }
    }

    #[test]
    fn replaying_the_trail_rebuilds_the_lead(
        profile in 0..5usize,
        initial in proptest::collection::vec((0..EngagementKind::ALL.len(), 0i64..10_000), 0..4),
        steps in steps(),
    ) {
        let (lead, entries, changes) = history(profile, &initial, &steps);
        let p = policy();
        let mut rebuilt = replay(&entries, |v| (v == p.version).then_some(&p)).unwrap();
        rebuilt.profile.contact = lead.profile.contact.clone();
        prop_assert_eq!(&rebuilt, &lead);
        prop_assert_eq!(lead.revision, changes);
    }

    #[test]
    fn scores_are_a_function_of_the_facts_and_the_time(
        profile in 0..5usize,
        initial in proptest::collection::vec((0..EngagementKind::ALL.len(), 0i64..10_000), 0..4),
        steps in steps(),
    ) {
        let (lead, _, _) = history(profile, &initial, &steps);
        let p = policy();
        let again = scoring::score(&lead.profile, &lead.events, &p.rules, lead.scores.evaluated_at);
        prop_assert_eq!(&again, &lead.scores);
        let mut shuffled = lead.events.clone();
        shuffled.reverse();
        prop_assert_eq!(scoring::score(&lead.profile, &shuffled, &p.rules, lead.scores.evaluated_at), again);
    }
}
