//! Merging a duplicate lead into another (MergeLeads): what the winner takes from the loser, and
//! what becomes of the loser.
//!
//! The rules, in the order they apply:
//! - What had fallen due on either lead by `now` (an SLA breach, a nurture revisit) is recorded
//!   first, on its own lead, as before any other change.
//! - **Signals**: every engagement signal the loser still holds joins the winner's; the winner is
//!   then scored as if they had been recorded on it (signals that decayed to nothing are pruned as
//!   usual, so a merge never loses points that still counted on either lead).
//! - **Findings**: for each BANT criterion, a criterion only one lead has assessed is taken as it
//!   is; when both have, the lead whose latest discovery call is more recent wins it (the winner on
//!   a tie or when a date is missing). Whether the decision-maker takes part is kept from the other
//!   lead when the chosen finding does not say. The latest call is the later of both.
//! - **Contact attempts**: the attempts made on the loser's speed-to-lead clock count on the
//!   winner's clock (toward the minimum before recycling), and a first touch of the loser made
//!   since the winner's clock started is the winner's first touch (the person was reached). A
//!   winner without a clock starts none. Whether the person was ever reached is kept from either.
//! - **Profile**: the winner's empty contact and company fields are filled from the loser's (the
//!   email, source and external reference stay the winner's).
//! - The winner is re-decided by the engine as after any other change: it never moves back by
//!   itself (see `lifecycle`), overrides and held states stay.
//! - The loser keeps its history, state and scores, records the winner in `merged_into`, and
//!   nothing falls due on it any more.
//!
//! A lead cannot be merged with itself, with a lead already merged into another, nor when either
//! lead is CONVERTED (its history belongs to a CRM opportunity).

use serde::{Deserialize, Serialize};

use super::{
    AuditInputs, Context, Decision, ProfileChange, ProfileValues, Recorder, Rejection, decision,
    housekeeping, profile, reevaluate,
};
use crate::domain::audit::AuditEntry;
use crate::domain::facts::Bant;
use crate::domain::lead::Lead;
use crate::domain::lifecycle::LeadState;
use crate::domain::policy::ProfileRule;
use crate::domain::validation::Violations;
use crate::domain::values::LeadId;

/// `LEADS_MERGED`: what the winner took from the loser, counted; never personal values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadsMerged {
    /// The lead merged into this one.
    pub loser: LeadId,
    /// How many engagement signals the loser brought.
    pub events: u32,
    /// The BANT criteria taken from the loser (`need`, `budget`, `authority`, `timing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
    /// How many contact attempts of the loser's clock now count on the winner's.
    pub attempts: u32,
    /// The contact and company fields filled from the loser (left out when none).
    #[serde(default, skip_serializing_if = "ProfileChange::is_empty")]
    pub profile: ProfileChange,
    /// Why the caller merged them (left out when not given).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// `LEAD_MERGED_INTO`: the lead this one now stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedInto {
    pub winner: LeadId,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// The result of a merge: both leads to store (each at its next revision), the entries of both,
/// and what was decided for the winner.
#[derive(Clone, Debug)]
pub struct Merged {
    pub winner: Lead,
    pub loser: Lead,
    pub entries: Vec<AuditEntry>,
    pub decision: Decision,
}

/// Why two leads cannot be merged: `reason` is the error's machine-readable reason.
fn refused(reason: &'static str, message: String) -> Rejection {
    Rejection::Refused { reason, message }
}

/// Checks that `loser` may be merged into `winner`: see the module's rules.
pub fn check_mergeable(winner: &Lead, loser: &Lead) -> Result<(), Rejection> {
    if winner.id == loser.id {
        let mut v = Violations::default();
        v.add(
            "loser",
            "must name another lead than winner: a lead cannot be merged with itself",
        );
        return Err(Rejection::Invalid(v));
    }
    for (role, lead) in [("winner", winner), ("loser", loser)] {
        if let Some(into) = lead.merged_into {
            return Err(refused(
                "LEAD_MERGED",
                format!(
                    "the {role} {} was already merged into {}: merge into or from that lead",
                    lead.id.name(),
                    into.name()
                ),
            ));
        }
    }
    for lead in [winner, loser] {
        if lead.erased_at.is_some() {
            return Err(Rejection::Erased(lead.id));
        }
    }
    for (role, lead) in [("winner", winner), ("loser", loser)] {
        if lead.state == LeadState::Converted {
            return Err(refused(
                "LEAD_CONVERTED",
                format!(
                    "the {role} {} is CONVERTED: its history belongs to a CRM opportunity",
                    lead.id.name()
                ),
            ));
        }
    }
    Ok(())
}

/// Merges `loser` into `winner` at `ctx.now`, by `ctx.actor`.
pub fn merge(winner: &Lead, loser: &Lead, reason: &str, ctx: &Context) -> Result<Merged, Rejection> {
    check_mergeable(winner, loser)?;
    let mut rec = Recorder {
        ctx,
        entries: Vec::new(),
    };
    let (mut w, mut l) = (winner.clone(), loser.clone());
    let state_before = w.state;
    housekeeping(&mut w, ctx, &mut rec);
    housekeeping(&mut l, ctx, &mut rec);
    let (w_before, w_scores) = (w.state, w.scores.clone());
    let (l_before, l_scores) = (l.state, l.scores.clone());

    let events = l.events.len() as u32;
    w.events.extend(l.events.iter().cloned());
    let findings = take_findings(&mut w.bant, &l.bant);
    let attempts = take_attempts(&mut w, &l);
    w.reached |= l.reached;
    let profile = profile::resubmit(
        &mut w.profile,
        &ProfileValues::of(&l.profile),
        ProfileRule::FillEmpty,
    );
    reevaluate(&mut w, ctx);
    let inputs = AuditInputs::LeadsMerged(LeadsMerged {
        loser: l.id,
        events,
        findings: findings.iter().map(|f| (*f).to_owned()).collect(),
        attempts,
        profile,
        reason: reason.to_owned(),
    });
    let reasons = w.state_reasons.clone();
    rec.record(ctx.actor, Some((w_before, &w_scores)), &w, inputs, reasons);

    l.merged_into = Some(w.id);
    let inputs = AuditInputs::MergedInto(MergedInto {
        winner: w.id,
        reason: reason.to_owned(),
    });
    let reasons = l.state_reasons.clone();
    rec.record(ctx.actor, Some((l_before, &l_scores)), &l, inputs, reasons);

    for (lead, current) in [(&mut w, winner), (&mut l, loser)] {
        lead.revision = current.revision + 1;
        lead.updated_at = ctx.now;
    }
    Ok(Merged {
        decision: decision(Some(state_before), &w, ctx),
        winner: w,
        loser: l,
        entries: rec.entries,
    })
}

/// Takes the loser's findings by the rule of the module; returns the criteria taken.
fn take_findings(winner: &mut Bant, loser: &Bant) -> Vec<&'static str> {
    // Strictly more recent: on a tie, or without both dates, the winner's finding stays.
    let loser_newer = match (winner.last_call_at, loser.last_call_at) {
        (Some(w), Some(l)) => l > w,
        (None, Some(_)) => true,
        (Some(_), None) | (None, None) => false,
    };
    let take = |w: bool, l: bool| l && (!w || loser_newer);
    let mut taken = Vec::new();
    if take(winner.need.status.is_some(), loser.need.status.is_some()) {
        winner.need = loser.need.clone();
        taken.push("need");
    }
    if take(winner.budget.status.is_some(), loser.budget.status.is_some()) {
        winner.budget = loser.budget.clone();
        taken.push("budget");
    }
    let decision_maker = (winner.authority.decision_maker, loser.authority.decision_maker);
    if take(
        winner.authority.status.is_some(),
        loser.authority.status.is_some(),
    ) {
        winner.authority = loser.authority.clone();
        winner.authority.decision_maker = decision_maker.1.or(decision_maker.0);
        taken.push("authority");
    } else {
        winner.authority.decision_maker = decision_maker.0.or(decision_maker.1);
    }
    if take(winner.timing.status.is_some(), loser.timing.status.is_some()) {
        winner.timing = loser.timing.clone();
        taken.push("timing");
    }
    winner.last_call_at = winner.last_call_at.max(loser.last_call_at);
    taken
}

/// Counts the loser's contact attempts on the winner's clock; returns how many.
fn take_attempts(winner: &mut Lead, loser: &Lead) -> u32 {
    let (Some(clock), Some(theirs)) = (winner.sla.as_mut(), loser.sla.as_ref()) else {
        return 0;
    };
    clock.attempts += theirs.attempts;
    if clock.first_touch_at.is_none()
        && let Some(touch) = theirs.first_touch_at.filter(|t| *t >= clock.started_at)
    {
        clock.first_touch_at = Some(touch);
    }
    theirs.attempts
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use proptest::prelude::*;

    use super::super::fixtures::*;
    use super::super::{Command, create};
    use super::*;
    use crate::domain::audit::AuditKind;
    use crate::domain::facts::{NeedFinding, SlaClock};
    use crate::domain::scoring;
    use crate::domain::values::{
        ContactChannel, ContactOutcome, CriterionStatus as C, EngagementKind as K, SlaTrigger, Timestamp,
    };

    fn lead(n: u128, spec: &ProfileSpec, events: &[super::super::EventInput]) -> Lead {
        let id = LeadId::from_uuid(uuid::Uuid::from_u128(n));
        create(id, spec.build(), events, &ctx(&policy(), t0()))
            .expect("a valid submission")
            .lead
    }

    fn duplicate() -> ProfileSpec {
        ProfileSpec {
            email: "c.f.o@gmail.com",
            ..cfo()
        }
    }

    fn found(need: Option<C>, budget: Option<C>, at: i64) -> Command {
        Command::RecordDiscoveryCall(crate::domain::facts::DiscoveryCall {
            call_at: Some(super::super::fixtures::at(at)),
            need: NeedFinding {
                status: need,
                evidence: String::new(),
            },
            budget: crate::domain::facts::BudgetFinding {
                status: budget,
                ..Default::default()
            },
            authority: Default::default(),
            timing: Default::default(),
            conducted_by: "rep-1".into(),
        })
    }

    fn merged(winner: &Lead, loser: &Lead, minutes: i64) -> Merged {
        let p = policy();
        merge(winner, loser, "same person", &person(&p, at(minutes), "rep-1")).expect("mergeable")
    }

    #[test]
    fn the_winner_takes_the_losers_signals_and_is_scored_with_them() {
        let winner = lead(1, &cfo(), &[]);
        let loser = lead(
            2,
            &duplicate(),
            &[
                event(K::WebinarAttended, at(-60)),
                event(K::CaseStudyDownload, at(-30)),
            ],
        );
        let m = merged(&winner, &loser, 1);
        assert_eq!(m.winner.events.len(), winner.events.len() + loser.events.len());
        let p = policy();
        let expected = scoring::score(&m.winner.profile, &m.winner.events, &p.rules, at(1));
        assert_eq!(m.winner.scores, expected);
        assert!(m.winner.scores.engagement > winner.scores.engagement);
        let body = m.entries[0].parsed_body();
        assert_eq!(body.inputs["events"], 2);
        assert_eq!(body.inputs["loser"], loser.id.as_uuid().to_string());
        assert_eq!(body.inputs["reason"], "same person");
    }

    #[test]
    fn both_leads_get_one_entry_and_their_next_revision_and_the_loser_becomes_an_alias() {
        let winner = lead(1, &cfo(), &[]);
        let loser = lead(2, &duplicate(), &[event(K::DemoRequest, at(0))]);
        assert!(loser.sla_due_at().is_some(), "a demo request starts a clock");
        let m = merged(&winner, &loser, 1);
        let kinds: Vec<_> = m.entries.iter().map(|e| (e.kind, e.lead)).collect();
        assert_eq!(
            kinds,
            [
                (AuditKind::LeadsMerged, Some(winner.id)),
                (AuditKind::LeadMergedInto, Some(loser.id))
            ]
        );
        assert!(m.entries.iter().all(|e| e.actor == "rep-1"));
        assert_eq!(
            (m.winner.revision, m.loser.revision),
            (winner.revision + 1, loser.revision + 1)
        );
        assert_eq!(m.loser.merged_into, Some(winner.id));
        assert_eq!(m.loser.state, loser.state, "the loser keeps its state");
        assert_eq!(m.loser.sla_due_at(), None, "nothing falls due on an alias");
        let into = m.entries[1].parsed_body();
        assert_eq!(into.inputs["winner"], winner.id.as_uuid().to_string());
    }

    #[test]
    fn empty_fields_are_filled_from_the_loser_and_recorded_without_personal_values() {
        let mut winner = lead(1, &cfo(), &[]);
        winner.profile.contact.phone.clear();
        winner.profile.company.name.clear();
        let mut loser = lead(2, &duplicate(), &[]);
        loser.profile.contact.phone = "+33 6 99 88 77 66".into();
        loser.profile.contact.given_name = "Another".into();
        loser.profile.company.name = "Acme Industrie".into();
        let m = merged(&winner, &loser, 1);
        assert_eq!(m.winner.profile.contact.phone, "+33 6 99 88 77 66");
        assert_eq!(m.winner.profile.company.name, "Acme Industrie");
        assert_eq!(
            m.winner.profile.contact.given_name, "Given",
            "a field the winner has stays"
        );
        assert_eq!(m.winner.profile.contact.email, winner.profile.contact.email);
        for entry in &m.entries {
            for personal in ["99 88 77 66", "Another", "c.f.o@gmail.com", "Given"] {
                assert!(!entry.body.contains(personal), "{personal} in {}", entry.body);
            }
        }
        let body = m.entries[0].parsed_body();
        assert_eq!(
            body.inputs["profile"]["fields"],
            serde_json::json!(["contact.phone", "company.name"])
        );
    }

    #[test]
    fn of_two_findings_on_one_criterion_the_more_recent_call_wins() {
        let p = policy();
        let winner = run(&lead(1, &cfo(), &[]), found(Some(C::Met), None, 10), &p, at(10)).lead;
        // The loser's call is later: its need replaces the winner's; its budget fills a gap.
        let later = run(
            &lead(2, &duplicate(), &[]),
            found(Some(C::NotMet), Some(C::Met), 20),
            &p,
            at(20),
        )
        .lead;
        let m = merged(&winner, &later, 30);
        assert_eq!(m.winner.bant.need.status, Some(C::NotMet));
        assert_eq!(m.winner.bant.budget.status, Some(C::Met));
        assert_eq!(m.winner.bant.last_call_at, Some(at(20)));
        let body = m.entries[0].parsed_body();
        assert_eq!(body.inputs["findings"], serde_json::json!(["need", "budget"]));
        // An earlier call of the loser only fills what the winner does not know.
        let earlier = run(
            &lead(3, &duplicate(), &[]),
            found(Some(C::NotMet), Some(C::Met), 5),
            &p,
            at(5),
        )
        .lead;
        let m = merged(&winner, &earlier, 30);
        assert_eq!(m.winner.bant.need.status, Some(C::Met));
        assert_eq!(m.winner.bant.budget.status, Some(C::Met));
        assert_eq!(m.winner.bant.last_call_at, Some(at(10)));
    }

    #[test]
    fn the_losers_attempts_count_on_the_winners_clock() {
        let p = policy();
        let winner = lead(1, &cfo(), &[event(K::DemoRequest, at(0))]);
        let attempt = |at_minute| {
            Command::RecordContactAttempt(crate::domain::facts::ContactAttempt {
                channel: ContactChannel::Phone,
                outcome: ContactOutcome::NoAnswer,
                attempt_at: Some(at(at_minute)),
                agent: "rep-1".into(),
            })
        };
        let mut loser = lead(2, &duplicate(), &[event(K::DemoRequest, at(0))]);
        loser = run(&loser, attempt(1), &p, at(1)).lead;
        loser = run(&loser, attempt(2), &p, at(2)).lead;
        let m = merged(&winner, &loser, 3);
        let clock: &SlaClock = m.winner.sla.as_ref().unwrap();
        assert_eq!(clock.attempts, 2);
        assert_eq!(
            clock.first_touch_at,
            Some(at(1)),
            "the person was touched through the loser"
        );
        assert_eq!(clock.trigger, SlaTrigger::DemoRequest);
        assert!(m.winner.sla_due_at().is_none());
    }

    #[test]
    fn a_qualified_winner_is_never_moved_back_by_a_merge() {
        // The facts after the merge point to LEAD (nothing found, little engagement): the engine
        // does not move a prospect back by itself.
        let winner = Lead {
            state: LeadState::SalesQualified,
            ..lead(1, &cfo(), &[])
        };
        let loser = lead(2, &duplicate(), &[event(K::EmailClick, at(0))]);
        let m = merged(&winner, &loser, 30);
        assert_eq!(m.winner.state, LeadState::SalesQualified);
        assert_eq!(m.decision.state_after, LeadState::SalesQualified);
        assert!(!m.decision.state_changed());
    }

    #[test]
    fn a_newer_finding_of_the_loser_moves_the_winner_as_any_finding_would() {
        let p = policy();
        let winner = run(&lead(1, &cfo(), &[]), found(Some(C::Met), None, 10), &p, at(10)).lead;
        let loser = run(
            &lead(2, &duplicate(), &[]),
            found(Some(C::NotMet), None, 20),
            &p,
            at(20),
        )
        .lead;
        let alone = run(&winner, found(Some(C::NotMet), None, 20), &p, at(30)).lead;
        let m = merged(&winner, &loser, 30);
        assert_eq!(m.winner.state, alone.state);
        assert_eq!(m.winner.bant.need, alone.bant.need);
    }

    #[test]
    fn a_lead_cannot_be_merged_with_itself_a_merged_lead_or_a_converted_one() {
        let winner = lead(1, &cfo(), &[]);
        let loser = lead(2, &duplicate(), &[]);
        let Err(Rejection::Invalid(v)) = check_mergeable(&winner, &winner) else {
            panic!("a self-merge is invalid");
        };
        assert_eq!(v.iter().next().unwrap().field, "loser");
        let gone = Lead {
            merged_into: Some(LeadId::from_uuid(uuid::Uuid::from_u128(9))),
            ..loser.clone()
        };
        for (w, l, role) in [(&winner, &gone, "loser"), (&gone, &winner, "winner")] {
            let Err(Rejection::Refused { reason, message }) = check_mergeable(w, l) else {
                panic!("a merged {role} is refused");
            };
            assert_eq!(reason, "LEAD_MERGED");
            assert!(
                message.contains(role) && message.contains(&gone.id.name()),
                "{message}"
            );
        }
        let converted = Lead {
            state: LeadState::Converted,
            ..loser
        };
        let Err(Rejection::Refused { reason, message }) = check_mergeable(&converted, &winner) else {
            panic!("a converted winner is refused");
        };
        assert_eq!(reason, "LEAD_CONVERTED");
        assert!(message.contains("winner"), "{message}");
    }

    /// The inputs are hash-chained: their JSON is pinned here, byte for byte.
    #[test]
    fn the_inputs_of_both_entries_are_pinned() {
        let p = policy();
        let winner = run(&lead(1, &cfo(), &[]), found(Some(C::Met), None, 10), &p, at(10)).lead;
        let mut loser = lead(2, &duplicate(), &[event(K::WebinarAttended, at(-5))]);
        loser = run(&loser, found(None, Some(C::Met), 20), &p, at(20)).lead;
        loser.profile.company.name = "Acme".into();
        let mut winner = winner;
        winner.profile.company.name.clear();
        let m = merged(&winner, &loser, 30);
        let inputs: Vec<String> = m
            .entries
            .iter()
            .map(|e| e.parsed_body().inputs.to_string())
            .collect();
        assert_eq!(
            inputs,
            [
                r#"{"attempts":0,"events":1,"findings":["budget"],"loser":"00000000-0000-0000-0000-000000000002","profile":{"company":{"name":"Acme"},"fields":["company.name"]},"reason":"same person"}"#,
                r#"{"reason":"same person","winner":"00000000-0000-0000-0000-000000000001"}"#,
            ]
        );
    }

    fn signals() -> impl Strategy<Value = Vec<(usize, i64)>> {
        let back = prop_oneof![3 => 0i64..600, 2 => 0i64..200 * 86_400];
        proptest::collection::vec((0..K::ALL.len(), back), 0..8)
    }

    fn with_events(n: u128, spec: &ProfileSpec, signals: &[(usize, i64)], now: Timestamp) -> Lead {
        let mut lead = lead(n, spec, &[]);
        lead.events = signals
            .iter()
            .map(|(kind, back)| crate::domain::facts::EngagementEvent {
                kind: K::ALL[*kind],
                occurred_at: now - Duration::seconds(*back),
                subject: String::new(),
            })
            .collect();
        lead
    }

    proptest! {
        /// Whichever lead a signal was recorded on, the merged lead scores the same: a merge
        /// loses no signal that still counted on either lead, and invents none.
        #[test]
        fn the_merged_engagement_does_not_depend_on_which_lead_held_a_signal(
            a in signals(),
            b in signals(),
        ) {
            let now = at(60);
            let p = policy();
            let context = person(&p, now, "rep-1");
            let one = merge(
                &with_events(1, &cfo(), &a, now),
                &with_events(2, &duplicate(), &b, now),
                "",
                &context,
            ).unwrap();
            let all: Vec<(usize, i64)> = a.iter().chain(&b).copied().collect();
            let other = merge(
                &with_events(1, &cfo(), &all, now),
                &with_events(2, &duplicate(), &[], now),
                "",
                &context,
            ).unwrap();
            prop_assert_eq!(one.winner.scores.engagement, other.winner.scores.engagement);
            let recorded = with_events(3, &cfo(), &all, now).events;
            let alone = scoring::engagement(&recorded, &p.rules, now);
            prop_assert_eq!(one.winner.scores.engagement, alone);
        }
    }
}
