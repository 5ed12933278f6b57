//! Properties that hold for any sequence of commands, under the shipped policy and under policies
//! that ask for fewer BANT criteria or disqualify more.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use chrono::Duration;
use proptest::prelude::*;

use super::fixtures::*;
use super::*;
use crate::domain::audit::AuditKind;
use crate::domain::facts::{AuthorityFinding, BudgetFinding, NeedFinding, TimingFinding};
use crate::domain::values::{
    ContactChannel, ContactOutcome, CriterionStatus, DecisionMakerInvolvement, Email, SourceChannel,
};

/// The policies histories run under: the shipped one, N of 4, and one that disqualifies leads
/// outside the profile instead of nurturing them.
static POLICIES: LazyLock<Vec<Policy>> = LazyLock::new(|| {
    vec![
        policy(),
        policy_with(&[("bant_required = 4", "bant_required = 3")]),
        policy_with(&[
            ("bant_required = 4", "bant_required = 2"),
            ("need_required = true", "need_required = false"),
        ]),
        policy_with(&[("on_poor_fit = \"nurture\"", "on_poor_fit = \"disqualify\"")]),
        policy_with(&[("profile = \"fill_empty\"", "profile = \"newest_wins\"")]),
    ]
});

#[derive(Clone, Debug)]
enum Action {
    /// Signals, each as (kind, seconds before now).
    Engagement(Vec<(usize, i64)>),
    /// The email submitted again through a channel, with or without a demo request, bringing
    /// the contact and company of one of the profiles.
    Resubmit(usize, bool, usize),
    /// A correction: the fields of a mask (one bit per `ProfileField`), to the values of one of
    /// the profiles (its email made unique to the step).
    Update(usize, u16),
    /// Statuses of need, budget, authority, timing; the decision-maker; budget and timing dates
    /// (days from now).
    Call([Option<usize>; 4], Option<usize>, Option<i64>, Option<i64>),
    Attempt(usize),
    Override(usize, Option<usize>, Option<i64>),
    Release,
    Convert,
    Tick,
}

/// How long before now a signal happened: mostly minutes (so demo clocks start and tighten while
/// others run), sometimes months (so signals decay, expire, and penalties outlive them).
fn seconds_back() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => 0i64..600,
        2 => 0i64..200 * 86_400,
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let kind = (0..EngagementKind::ALL.len(), seconds_back());
    let status = proptest::option::of(0..CriterionStatus::ALL.len());
    let decision_maker = proptest::option::of(0..DecisionMakerInvolvement::ALL.len());
    let days = proptest::option::of(-100i64..400);
    prop_oneof![
        4 => proptest::collection::vec(kind, 1..4).prop_map(Action::Engagement),
        2 => (0..SourceChannel::ALL.len(), any::<bool>(), 0..5usize)
            .prop_map(|(c, demo, profile)| Action::Resubmit(c, demo, profile)),
        2 => (0..5usize, any::<u16>()).prop_map(|(profile, mask)| Action::Update(profile, mask)),
        2 => ([status.clone(), status.clone(), status.clone(), status], decision_maker, days.clone(), days)
            .prop_map(|(s, decision_maker, budget, timing)| Action::Call(s, decision_maker, budget, timing)),
        3 => (0..ContactOutcome::ALL.len()).prop_map(Action::Attempt),
        1 => (0..LeadState::ALL.len(), proptest::option::of(0..DisqualificationReason::ALL.len()), proptest::option::of(1i64..200))
            .prop_map(|(s, d, r)| Action::Override(s, d, r)),
        1 => Just(Action::Release),
        1 => Just(Action::Convert),
        3 => Just(Action::Tick),
    ]
}

/// The time between two commands: often within a clock's target (touches in time, tightened
/// clocks), often past it, sometimes months.
fn gap() -> impl Strategy<Value = i64> {
    // At least a second: two changes at the same instant would read as one on replay.
    prop_oneof![
        3 => 1i64..600,
        2 => 1i64..3 * 3600,
        2 => 1i64..60 * 86_400,
    ]
}

fn steps() -> impl Strategy<Value = Vec<(i64, Action)>> {
    proptest::collection::vec((gap(), action()), 1..30)
}

fn initial() -> impl Strategy<Value = Vec<(usize, i64)>> {
    proptest::collection::vec((0..EngagementKind::ALL.len(), seconds_back()), 0..4)
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
    let signal =
        |(kind, back): &(usize, i64)| event(EngagementKind::ALL[*kind], now - Duration::seconds(*back));
    match action {
        Action::Engagement(events) => Command::RecordEngagement {
            events: events.iter().map(signal).collect(),
        },
        Action::Update(profile, mask) => {
            let built = profiles()[*profile].build();
            let mut values = ProfileValues::of(&built);
            let domain = built.contact.email.domain();
            values.email = Email::parse(&format!("corrected.{}@{domain}", now.timestamp())).ok();
            Command::UpdateProfile(ProfileUpdate {
                fields: ProfileField::ALL
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, f)| *f)
                    .collect(),
                values,
            })
        }
        Action::Resubmit(channel, demo, profile) => Command::Resubmit {
            profile: ProfileValues::of(&profiles()[*profile].build()),
            source: Source {
                channel: SourceChannel::ALL[*channel],
                campaign: "again".into(),
            },
            events: demo
                .then(|| event(EngagementKind::DemoRequest, now))
                .into_iter()
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

/// A random history, as the engine recorded it.
struct History {
    policy: &'static Policy,
    lead: Lead,
    entries: Vec<AuditEntry>,
    /// For each entry: whether a person's override was in force when its command began.
    under_override: Vec<bool>,
    /// How many changes were made (each change may write several entries).
    changes: i64,
}

fn history(policy: usize, profile: usize, initial: &[(usize, i64)], steps: &[(i64, Action)]) -> History {
    let policy = &POLICIES[policy];
    let spec = &profiles()[profile];
    let events: Vec<_> = initial
        .iter()
        .map(|(k, back)| event(EngagementKind::ALL[*k], t0() - Duration::seconds(*back)))
        .collect();
    let created = submit(spec, &events, policy, t0());
    let mut history = History {
        policy,
        under_override: vec![false; created.entries.len()],
        lead: created.lead,
        entries: created.entries,
        changes: 1,
    };
    let mut now = t0();
    for (gap, action) in steps {
        now += Duration::seconds(*gap);
        let ctx = person(policy, now, "manager-1");
        let held = active_override(&history.lead, now).is_some();
        if let Ok(applied) = apply(&history.lead, command(action, now), &ctx) {
            if !applied.entries.is_empty() {
                history.changes += 1;
            }
            history.lead = applied.lead;
            history
                .under_override
                .extend(std::iter::repeat_n(held, applied.entries.len()));
            history.entries.extend(applied.entries);
        }
    }
    history
}

/// Whether a person, not the engine, made the move an entry records.
fn by_a_person(kind: AuditKind) -> bool {
    matches!(
        kind,
        AuditKind::StateOverridden | AuditKind::OverrideReleased | AuditKind::LeadConverted
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_recorded_move_is_an_allowed_one(
        policy in 0..POLICIES.len(), profile in 0..5usize, initial in initial(), steps in steps(),
    ) {
        let history = history(policy, profile, &initial, &steps);
        for entry in &history.entries {
            let after = entry.state_after.unwrap();
            let mover = match entry.kind {
                AuditKind::StateOverridden | AuditKind::LeadConverted => Mover::Person,
                AuditKind::LeadSubmitted
                | AuditKind::LeadResubmitted
                | AuditKind::EngagementRecorded
                | AuditKind::DiscoveryCallRecorded
                | AuditKind::ContactAttemptRecorded
                | AuditKind::OverrideReleased
                | AuditKind::SlaBreached
                | AuditKind::NurtureRevisited
                | AuditKind::PolicyActivated
                | AuditKind::LeadUpdated
                | AuditKind::LeadErased => Mover::Engine,
                | AuditKind::LeadsMerged
                | AuditKind::LeadMergedInto => Mover::Engine,
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
    fn each_entry_starts_where_the_previous_one_ended(
        policy in 0..POLICIES.len(), profile in 0..5usize, initial in initial(), steps in steps(),
    ) {
        let history = history(policy, profile, &initial, &steps);
        prop_assert_eq!(history.entries[0].state_before, None);
        for pair in history.entries.windows(2) {
            prop_assert_eq!(
                pair[1].state_before, pair[0].state_after,
                "{:?} after {:?}", pair[1].kind, pair[0].kind
            );
        }
        prop_assert_eq!(history.entries.last().unwrap().state_after, Some(history.lead.state));
    }

    #[test]
    fn the_engine_never_moves_a_lead_while_an_override_holds(
        policy in 0..POLICIES.len(), profile in 0..5usize, initial in initial(), steps in steps(),
    ) {
        let history = history(policy, profile, &initial, &steps);
        for (entry, held) in history.entries.iter().zip(&history.under_override) {
            if *held && !by_a_person(entry.kind) {
                prop_assert_eq!(
                    entry.state_before, entry.state_after,
                    "{:?} moved a lead held by a person", entry.kind
                );
            }
        }
    }

    #[test]
    fn each_clock_is_breached_at_most_once(
        policy in 0..POLICIES.len(), profile in 0..5usize, initial in initial(), steps in steps(),
    ) {
        let history = history(policy, profile, &initial, &steps);
        let mut breached = BTreeSet::new();
        let mut last_number = 0;
        for entry in &history.entries {
            let body = entry.parsed_body();
            if let Some(clock) = &body.sla {
                prop_assert!(clock.number >= last_number, "clock numbers never go back");
                last_number = clock.number;
            }
            if entry.kind == AuditKind::SlaBreached {
                let clock = body.sla.expect("a breach records its clock");
                prop_assert!(clock.breached_at.is_some());
                prop_assert!(breached.insert(clock.number), "clock {} breached twice", clock.number);
            }
        }
    }

    #[test]
    fn every_hand_off_to_sales_has_a_running_clock(
        policy in 0..POLICIES.len(), profile in 0..5usize, initial in initial(), steps in steps(),
    ) {
        let history = history(policy, profile, &initial, &steps);
        for entry in &history.entries {
            let entering = entry.state_after == Some(LeadState::MarketingQualified)
                && entry.state_before != Some(LeadState::MarketingQualified);
            if entering {
                let clock = entry.parsed_body().sla;
                prop_assert!(
                    clock.as_ref().is_some_and(|c| c.first_touch_at.is_none() && c.breached_at.is_none()),
                    "{:?} entered MARKETING_QUALIFIED with {:?}", entry.kind, clock
                );
            }
        }
    }

    #[test]
    fn replaying_the_trail_rebuilds_the_lead(
        policy in 0..POLICIES.len(), profile in 0..5usize, initial in initial(), steps in steps(),
    ) {
        let history = history(policy, profile, &initial, &steps);
        let p = history.policy;
        let mut rebuilt = replay(&history.entries, |v| (v == p.version).then_some(p)).unwrap();
        rebuilt.profile.contact = history.lead.profile.contact.clone();
        prop_assert_eq!(&rebuilt, &history.lead);
        prop_assert_eq!(history.lead.revision, history.changes);
    }

    #[test]
    fn erasing_after_any_history_keeps_the_decisions_and_no_personal_data(
        policy in 0..POLICIES.len(), profile in 0..5usize, initial in initial(), steps in steps(),
    ) {
        let history = history(policy, profile, &initial, &steps);
        let (p, lead) = (history.policy, &history.lead);
        let at = lead.updated_at + Duration::seconds(1);
        let erase = Command::Erase(ErasureRequest { reason: "DSR-1".into() });
        let erased = apply(lead, erase.clone(), &person(p, at, "privacy-1")).unwrap();
        let last = erased.entries.last().unwrap();
        prop_assert_eq!(last.kind, AuditKind::LeadErased);
        let after = &erased.lead;
        // Not a decision: what the reports read stays (a clock that fell due meanwhile aside).
        prop_assert_eq!(last.state_before, last.state_after);
        prop_assert_eq!(&after.profile.source, &lead.profile.source);
        prop_assert_eq!(after.profile.company_domain(), lead.profile.company_domain());
        // Nothing personal is left.
        let contact = &after.profile.contact;
        prop_assert_eq!(&contact.email, &erased_email(lead.id));
        prop_assert!(contact.given_name.is_empty() && contact.family_name.is_empty());
        prop_assert!(contact.phone.is_empty() && contact.job_title.is_empty());
        prop_assert!(after.profile.external_reference.is_empty());
        prop_assert!(after.events.iter().all(|e| e.subject.is_empty()));
        let bant = &after.bant;
        for evidence in [&bant.need.evidence, &bant.budget.evidence, &bant.authority.evidence, &bant.timing.evidence] {
            prop_assert!(evidence.is_empty());
        }
        prop_assert!(after.human_override.iter().all(|o| o.reason.is_empty()));
        // The trail rebuilds the erased lead exactly (the trail never held the personal data).
        let mut trail = history.entries.clone();
        trail.extend(erased.entries.clone());
        let rebuilt = replay(&trail, |v| (v == p.version).then_some(p)).unwrap();
        prop_assert_eq!(&rebuilt, after);
        // Erasing again writes nothing; changes are refused; time still runs.
        let later = at + Duration::days(400);
        prop_assert!(apply(after, erase, &person(p, later, "privacy-1")).unwrap().entries.is_empty());
        let engagement = Command::RecordEngagement { events: Vec::new() };
        prop_assert_eq!(
            apply(after, engagement, &person(p, later, "sales-1")).unwrap_err(),
            Rejection::Erased(lead.id)
        );
        prop_assert!(apply(after, Command::Tick, &person(p, later, "engine")).is_ok());
    }

    #[test]
    fn scores_are_a_function_of_the_facts_and_the_time(
        policy in 0..POLICIES.len(), profile in 0..5usize, initial in initial(), steps in steps(),
    ) {
        let History { lead, policy, .. } = history(policy, profile, &initial, &steps);
        let again = scoring::score(&lead.profile, &lead.events, &policy.rules, lead.scores.evaluated_at);
        prop_assert_eq!(&again, &lead.scores);
        let mut shuffled = lead.events.clone();
        shuffled.reverse();
        prop_assert_eq!(scoring::score(&lead.profile, &shuffled, &policy.rules, lead.scores.evaluated_at), again);
    }
}
