//! The decision engine: applies one command to a lead at a given time and returns the new lead,
//! the audit entries that record the change, and the decision made. Pure: no I/O, no clock.
//!
//! Every command first runs what has fallen due by `now` (an SLA breach, a nurture revisit),
//! each as its own audit entry by the engine, then the command itself. Replaying a lead's audit
//! entries in order at their recorded times therefore rebuilds the same lead.

use chrono::Duration;
use serde::{Deserialize, Serialize};

use super::audit::{AuditBody, AuditEntry, ENGINE_ACTOR, encode_body};
use super::facts::{
    ContactAttempt, DiscoveryCall, EngagementEvent, Override, Reason, Recommendation, Scores, SlaClock,
};
use super::lead::Lead;
use super::lifecycle::{IllegalTransition, LeadState, Mover, check_transition};
use super::policy::{Outcome, Policy, Rules};
use super::scoring;
use super::validation::Violations;
use super::values::{
    CriterionStatus, DecisionMakerInvolvement, DisqualificationReason, EngagementKind, LeadId, Profile,
    SlaTrigger, Source, Timestamp,
};

/// How far in the future a reported time may be (clock skew between systems).
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;
/// The most engagement events kept on a lead; older ones are dropped first.
pub const MAX_KEPT_EVENTS: usize = 1000;

/// What a command is applied with.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub now: Timestamp,
    /// The authenticated caller.
    pub actor: &'a str,
    pub request_id: Option<&'a str>,
    pub policy: &'a Policy,
}

/// A signal as reported; the time defaults to `now`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInput {
    pub kind: EngagementKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
}

/// A person's decision on a lead's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverrideRequest {
    pub state: LeadState,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disqualification: Option<DisqualificationReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisit_at: Option<Timestamp>,
}

/// Everything that can happen to an existing lead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// A known email was submitted again.
    Resubmit {
        source: Source,
        events: Vec<EventInput>,
        /// The contact and company it brings; the policy's `[resubmission] profile` rule says
        /// which of them change the lead.
        #[serde(default)]
        profile: ProfileValues,
    },
    /// Corrects contact and company data (UpdateLead).
    UpdateProfile(ProfileUpdate),
    RecordEngagement {
        events: Vec<EventInput>,
    },
    RecordDiscoveryCall(DiscoveryCall),
    RecordContactAttempt(ContactAttempt),
    Override(OverrideRequest),
    ReleaseOverride {
        reason: String,
    },
    Convert {
        opportunity_reference: String,
    },
    /// Erases the lead's personal data (EraseLead, retention).
    Erase(ErasureRequest),
    /// Only what has fallen due (the sweeper).
    Tick,
}

/// Why a command was refused. Nothing changes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("invalid request: {0}")]
    Invalid(Violations),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("{0}")]
    Precondition(String),
    /// The lead's personal data was erased: it takes no more changes.
    #[error("lead {0} was erased: it is kept as a pseudonymous record and takes no more changes")]
    Erased(LeadId),
    /// Refused for a reason of its own (e.g. `LEAD_MERGED`), named for callers.
    #[error("{message}")]
    Refused { reason: &'static str, message: String },
}

/// What one command decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub state_before: Option<LeadState>,
    pub state_after: LeadState,
    pub reasons: Vec<Reason>,
    pub recommendation: Option<Recommendation>,
    pub policy_version: String,
}

impl Decision {
    pub fn state_changed(&self) -> bool {
        self.state_before != Some(self.state_after)
    }
}

/// The result of a command: the lead to store and the entries to append with it.
#[derive(Clone, Debug)]
pub struct Applied {
    pub lead: Lead,
    /// Empty when nothing changed (a tick with nothing due): then nothing is written.
    pub entries: Vec<AuditEntry>,
    pub decision: Decision,
}

/// Where the engine thinks a lead belongs, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub state: LeadState,
    pub reasons: Vec<Reason>,
    pub disqualification: Option<DisqualificationReason>,
    pub revisit_at: Option<Timestamp>,
}

impl Target {
    fn new(state: LeadState, reason: Reason) -> Self {
        Self {
            state,
            reasons: vec![reason],
            disqualification: None,
            revisit_at: None,
        }
    }
}

fn days(n: u32) -> Duration {
    Duration::days(i64::from(n))
}

fn fmt_time(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Where the facts put the lead now, ignoring overrides and what the lifecycle allows.
pub fn recommend(lead: &Lead, scores: &Scores, rules: &Rules, now: Timestamp) -> Target {
    let q = &rules.qualification;
    let bant = &lead.bant;
    let knockout = |outcome: Outcome, disqualification, reason: Reason| match outcome {
        Outcome::Disqualify => Target {
            disqualification: Some(disqualification),
            ..Target::new(LeadState::Disqualified, reason)
        },
        Outcome::Nurture => Target {
            revisit_at: Some(now + days(q.nurture_days)),
            ..Target::new(LeadState::Nurturing, reason)
        },
    };

    if bant.need.status == Some(CriterionStatus::NotMet) {
        return knockout(
            q.on_no_need,
            DisqualificationReason::NoNeed,
            Reason::new(
                "bant.need.not_met",
                "no concrete need was recognised on the discovery call",
            ),
        );
    }
    if !q.accepted_fit_grades.contains(&scores.grade) {
        let accepted: Vec<_> = q.accepted_fit_grades.iter().map(|g| g.as_str()).collect();
        return knockout(
            q.on_poor_fit,
            DisqualificationReason::PoorFit,
            Reason::new(
                "fit.outside_profile",
                format!(
                    "fit grade {} is outside the ideal customer profile (accepted: {})",
                    scores.grade,
                    accepted.join(", ")
                ),
            ),
        );
    }

    let met = bant.met_count();
    let need_ok = !q.need_required || bant.need.status == Some(CriterionStatus::Met);
    if need_ok && met >= q.bant_required {
        return Target::new(
            LeadState::SalesQualified,
            Reason::new(
                "bant.qualified",
                format!(
                    "{met} of 4 BANT criteria met (policy asks {}); fit grade {} accepted",
                    q.bant_required, scores.grade
                ),
            ),
        );
    }

    // Need is there (or not yet known) but the money or the project comes later: wait for it.
    let mut deferrals = Vec::new();
    if bant.timing.status == Some(CriterionStatus::NotMet) {
        deferrals.push(("timing", bant.timing.target_at));
    }
    if bant.budget.status == Some(CriterionStatus::NotMet) {
        deferrals.push(("budget", bant.budget.available_at));
    }
    let mut blockers = Vec::new();
    if !deferrals.is_empty() {
        let revisit = deferrals
            .iter()
            .map(|(_, date)| match date {
                Some(date) => *date - days(q.revisit_lead_days),
                None => now + days(q.nurture_days),
            })
            .max()
            .expect("at least one deferral");
        let what: Vec<_> = deferrals
            .iter()
            .map(|(name, date)| match date {
                Some(d) => format!("{name} comes on {}", fmt_time(*d)),
                None => format!("{name} comes later"),
            })
            .collect();
        if revisit > now {
            return Target {
                revisit_at: Some(revisit),
                ..Target::new(
                    LeadState::Nurturing,
                    Reason::new(
                        "bant.later",
                        format!("{}; revisit on {}", what.join(" and "), fmt_time(revisit)),
                    ),
                )
            };
        }
        if bant.need.status == Some(CriterionStatus::Met) {
            return Target::new(
                LeadState::MarketingQualified,
                Reason::new(
                    "bant.date_reached",
                    format!("{}: the date has come, sales re-confirms", what.join(" and ")),
                ),
            );
        }
        blockers.push(Reason::new(
            "bant.date_reached",
            format!("{}: the date has come", what.join(" and ")),
        ));
    }
    if bant.assessed() {
        if bant.authority.decision_maker == Some(DecisionMakerInvolvement::NotInvolved) {
            blockers.push(Reason::new(
                "bant.authority.committee",
                "authority is not met: the final decision-maker (or the committee the contact depends \
                 on) is not involved yet",
            ));
        } else if !bant.authority.is_met() {
            blockers.push(Reason::new(
                "bant.authority.missing",
                "authority is not confirmed",
            ));
        }
        blockers.push(Reason::new(
            "bant.incomplete",
            format!(
                "{met} of 4 BANT criteria met; the policy asks {}{}",
                q.bant_required,
                if q.need_required { " including need" } else { "" }
            ),
        ));
    }

    let mut target = if scores.combined >= scores.threshold {
        Target::new(
            LeadState::MarketingQualified,
            Reason::new(
                "score.threshold",
                format!(
                    "combined score {} reached the threshold {}",
                    scores.combined, scores.threshold
                ),
            ),
        )
    } else {
        Target::new(
            LeadState::Lead,
            Reason::new(
                "score.below_threshold",
                format!(
                    "combined score {} is below the threshold {}",
                    scores.combined, scores.threshold
                ),
            ),
        )
    };
    target.reasons.extend(blockers);
    target
}

fn clock_target(rules: &Rules, trigger: SlaTrigger) -> Duration {
    Duration::seconds(match trigger {
        SlaTrigger::DemoRequest => rules.sla.demo_request_first_touch_secs,
        SlaTrigger::MarketingQualified => rules.sla.marketing_qualified_first_touch_secs,
    })
}

/// Starts a speed-to-lead clock, or tightens the one running if this trigger is due sooner. A
/// clock that was answered or breached is done: the lead gets a new one, with the next number.
fn start_clock(lead: &mut Lead, trigger: SlaTrigger, started_at: Timestamp, rules: &Rules) {
    let due_at = started_at + clock_target(rules, trigger);
    let running = lead.sla_due_at().is_some();
    match &mut lead.sla {
        Some(clock) if running => {
            if due_at < clock.due_at {
                clock.trigger = trigger;
                clock.started_at = started_at;
                clock.due_at = due_at;
            }
        }
        _ => {
            lead.sla_clocks += 1;
            lead.sla = Some(SlaClock {
                number: lead.sla_clocks,
                trigger,
                started_at,
                due_at,
                first_touch_at: None,
                breached_at: None,
                attempts: 0,
            })
        }
    }
}

/// Moves the lead into a state (the move has been checked).
fn enter(lead: &mut Lead, target: Target, rules: &Rules, now: Timestamp) {
    let entering = target.state != lead.state;
    if entering {
        lead.state = target.state;
        lead.state_changed_at = now;
    }
    lead.state_reasons = target.reasons;
    lead.disqualification = target
        .disqualification
        .filter(|_| lead.state == LeadState::Disqualified);
    lead.revisit_at = target.revisit_at.filter(|_| lead.state == LeadState::Nurturing);
    match lead.state {
        LeadState::MarketingQualified if entering => {
            start_clock(lead, SlaTrigger::MarketingQualified, now, rules)
        }
        LeadState::Lead | LeadState::MarketingQualified | LeadState::SalesQualified => {}
        // Out of sales' hands: a clock nobody answered yet no longer runs (a breach already
        // recorded stays).
        LeadState::Nurturing | LeadState::Disqualified | LeadState::Converted => {
            if lead.sla_due_at().is_some() {
                lead.sla = None;
            }
        }
    }
}

fn prune_events(lead: &mut Lead, rules: &Rules, now: Timestamp) {
    // Lifted signals go with what lifted them in view, so that dropping the lifter later (too old)
    // never brings them back.
    let last_seen = scoring::LastSeen::of(&lead.events);
    lead.events
        .retain(|e| !scoring::expired(e, rules, &last_seen, now));
    if lead.events.len() > MAX_KEPT_EVENTS {
        // The oldest go first; a signal held until lifted (an unsubscribe) goes last.
        lead.events
            .sort_by_key(|e| (scoring::is_held(e, rules), e.occurred_at));
        let excess = lead.events.len() - MAX_KEPT_EVENTS;
        lead.events.drain(..excess);
    }
}

fn active_override(lead: &Lead, now: Timestamp) -> Option<&Override> {
    lead.human_override
        .as_ref()
        .filter(|o| o.expires_at.is_none_or(|at| at > now))
}

/// Rescores the lead and lets the engine decide, within what overrides and the lifecycle allow.
fn reevaluate(lead: &mut Lead, ctx: &Context) {
    let rules = &ctx.policy.rules;
    prune_events(lead, rules, ctx.now);
    lead.scores = scoring::score(&lead.profile, &lead.events, rules, ctx.now);
    lead.policy_version = ctx.policy.version.clone();
    let target = recommend(lead, &lead.scores, rules, ctx.now);

    let held_by = active_override(lead, ctx.now)
        .map(|o| o.state)
        .or_else(|| lead.state.is_held_for_people().then_some(lead.state));
    if let Some(held) = held_by {
        lead.recommendation = (target.state != held).then_some(Recommendation {
            state: target.state,
            reasons: target.reasons,
            made_at: ctx.now,
        });
        return;
    }
    lead.recommendation = None;
    if target.state == lead.state || check_transition(lead.state, target.state, Mover::Engine).is_ok() {
        enter(lead, target, rules, ctx.now);
    } else {
        // The engine does not move this lead back (sales owns it); say so next to why it is here.
        lead.state_reasons.retain(|r| r.rule_id != "lifecycle.held");
        lead.state_reasons.push(Reason::new(
            "lifecycle.held",
            format!(
                "stays {}: the engine does not move a lead from {} to {} (its facts point to {})",
                lead.state, lead.state, target.state, target.state
            ),
        ));
    }
}

/// Resolves reported signal times and checks them.
fn resolve_events(
    inputs: &[EventInput],
    field: &str,
    now: Timestamp,
    v: &mut Violations,
) -> Vec<EngagementEvent> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, e)| EngagementEvent {
            kind: e.kind,
            occurred_at: resolve_time(e.occurred_at, &format!("{field}[{i}].occur_time"), now, v),
            subject: e.subject.clone(),
        })
        .collect()
}

fn resolve_time(t: Option<Timestamp>, field: &str, now: Timestamp, v: &mut Violations) -> Timestamp {
    let t = t.unwrap_or(now);
    if t > now + Duration::seconds(MAX_CLOCK_SKEW_SECS) {
        v.add(
            field,
            format!(
                "must not be more than {} minutes in the future",
                MAX_CLOCK_SKEW_SECS / 60
            ),
        );
    }
    t
}

fn demo_triggers(lead: &mut Lead, events: &[EngagementEvent], rules: &Rules) {
    if !matches!(lead.state, LeadState::Lead | LeadState::MarketingQualified) {
        return;
    }
    for event in events.iter().filter(|e| e.kind == EngagementKind::DemoRequest) {
        start_clock(lead, SlaTrigger::DemoRequest, event.occurred_at, rules);
    }
}

struct Recorder<'a> {
    ctx: &'a Context<'a>,
    entries: Vec<AuditEntry>,
}

impl Recorder<'_> {
    fn record(
        &mut self,
        actor: &str,
        before: Option<(LeadState, &Scores)>,
        lead: &Lead,
        inputs: AuditInputs,
        reasons: Vec<Reason>,
    ) {
        let kind = inputs.kind();
        let body = AuditBody {
            inputs: inputs.to_value(),
            scores_before: before.map(|(_, s)| s.clone()),
            scores_after: Some(lead.scores.clone()),
            reasons,
            recommended_state: lead.recommendation.as_ref().map(|r| r.state),
            sla: lead.sla.clone(),
            disqualification: lead.disqualification,
        };
        let own = actor != ENGINE_ACTOR;
        self.entries.push(AuditEntry {
            lead: Some(lead.id),
            kind,
            recorded_at: self.ctx.now,
            actor: actor.to_owned(),
            request_id: if own {
                self.ctx.request_id.map(str::to_owned)
            } else {
                None
            },
            state_before: before.map(|(s, _)| s),
            state_after: Some(lead.state),
            source_channel: Some(lead.profile.source.channel),
            policy_version: self.ctx.policy.version.clone(),
            body: encode_body(&body),
        });
    }
}

/// Records what has fallen due by `now`: an SLA breach, a nurture revisit.
fn housekeeping(lead: &mut Lead, ctx: &Context, rec: &mut Recorder) {
    let now = ctx.now;
    if lead.sla_due_at().is_some_and(|due| now > due)
        && let Some(clock) = lead.sla.as_mut()
    {
        clock.breached_at = Some(clock.due_at);
        let reason = Reason::new(
            "sla.breached",
            format!(
                "first touch was due at {} ({}) and none was recorded",
                fmt_time(clock.due_at),
                clock.trigger
            ),
        );
        let inputs = AuditInputs::SlaBreached(SlaBreach {
            trigger: clock.trigger,
            due_at: clock.due_at,
        });
        let scores = lead.scores.clone();
        rec.record(
            ENGINE_ACTOR,
            Some((lead.state, &scores)),
            lead,
            inputs,
            vec![reason],
        );
    }
    if lead.revisit_due_at().is_some_and(|at| at <= now) {
        let before = (lead.state, lead.scores.clone());
        let due = lead.revisit_at;
        if lead
            .human_override
            .as_ref()
            .is_some_and(|o| o.expires_at.is_some_and(|at| at <= now))
        {
            lead.human_override = None;
        }
        reevaluate(lead, ctx);
        let reasons = lead.state_reasons.clone();
        let inputs = AuditInputs::NurtureRevisited(NurtureRevisit { revisit_at: due });
        rec.record(ENGINE_ACTOR, Some((before.0, &before.1)), lead, inputs, reasons);
    }
}

/// The inputs of a submission as recorded: the profile without personal data, and enough to
/// score it again (the email's domain, not the email).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmissionInputs {
    pub source: Source,
    pub company: super::values::Company,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seniority: Option<super::values::Seniority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_function: Option<super::values::Code>,
    pub email_domain: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub external_reference: String,
    pub events: Vec<EngagementEvent>,
    /// The email was on the suppression list (its lead erased) and the policy accepted it as a
    /// new consent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_erasure: bool,
}

impl SubmissionInputs {
    fn of(profile: &Profile, events: &[EngagementEvent]) -> Self {
        Self {
            source: profile.source.clone(),
            company: profile.company.clone(),
            seniority: profile.contact.seniority,
            job_function: profile.contact.job_function.clone(),
            email_domain: profile.contact.email.domain().to_owned(),
            external_reference: profile.external_reference.clone(),
            events: events.to_vec(),
            after_erasure: false,
        }
    }
}

/// Creates a lead from a submission and decides where it stands.
pub fn create(
    id: LeadId,
    profile: Profile,
    events: &[EventInput],
    ctx: &Context,
) -> Result<Applied, Rejection> {
    create_with(id, profile, events, ctx, false)
}

/// [`create`], for an email whose lead was erased before when `after_erasure` (the entry says
/// so).
pub fn create_with(
    id: LeadId,
    profile: Profile,
    events: &[EventInput],
    ctx: &Context,
    after_erasure: bool,
) -> Result<Applied, Rejection> {
    let mut violations = Violations::default();
    let events = resolve_events(events, "events", ctx.now, &mut violations);
    violations.into_result().map_err(Rejection::Invalid)?;
    let rules = &ctx.policy.rules;
    let mut lead = Lead {
        id,
        scores: scoring::score(&profile, &events, rules, ctx.now),
        profile,
        state: LeadState::Lead,
        state_reasons: Vec::new(),
        state_changed_at: ctx.now,
        disqualification: None,
        revisit_at: None,
        events: events.clone(),
        bant: Default::default(),
        sla: None,
        sla_clocks: 0,
        reached: false,
        human_override: None,
        recommendation: None,
        opportunity_reference: None,
        text_key: None,
        erased_at: None,
        policy_version: ctx.policy.version.clone(),
        created_at: ctx.now,
        updated_at: ctx.now,
        revision: 1,
        merged_into: None,
    };
    reevaluate(&mut lead, ctx);
    demo_triggers(&mut lead, &events, rules);
    let mut rec = Recorder {
        ctx,
        entries: Vec::new(),
    };
    let inputs = AuditInputs::Submitted(SubmissionInputs {
        after_erasure,
        ..SubmissionInputs::of(&lead.profile, &events)
    });
    let reasons = lead.state_reasons.clone();
    rec.record(ctx.actor, None, &lead, inputs, reasons);
    Ok(Applied {
        decision: decision(None, &lead, ctx),
        lead,
        entries: rec.entries,
    })
}

fn decision(state_before: Option<LeadState>, lead: &Lead, ctx: &Context) -> Decision {
    Decision {
        state_before,
        state_after: lead.state,
        reasons: lead.state_reasons.clone(),
        recommendation: lead.recommendation.clone(),
        policy_version: ctx.policy.version.clone(),
    }
}

/// Applies a command to a lead.
pub fn apply(current: &Lead, command: Command, ctx: &Context) -> Result<Applied, Rejection> {
    let rules = &ctx.policy.rules;
    let now = ctx.now;
    let mut lead = current.clone();
    let mut rec = Recorder {
        ctx,
        entries: Vec::new(),
    };
    let state_before = lead.state;
    let mut violations = Violations::default();

    // An erased lead only keeps its clocks running; erasing it again changes nothing.
    if current.erased_at.is_some() {
        match command {
            Command::Tick => {}
            Command::Erase(_) => return Ok(finish(lead, current, rec, state_before, ctx)),
            Command::Resubmit { .. }
            | Command::UpdateProfile(_)
            | Command::RecordEngagement { .. }
            | Command::RecordDiscoveryCall(_)
            | Command::RecordContactAttempt(_)
            | Command::Override(_)
            | Command::ReleaseOverride { .. }
            | Command::Convert { .. } => return Err(Rejection::Erased(current.id)),
        }
    }

    // Resolve times first so nothing is touched when the request is invalid.
    let command = match command {
        Command::Resubmit {
            source,
            events,
            profile,
        } => Resolved::Resubmit {
            events: resolve_events(&events, "events", now, &mut violations),
            source,
            profile,
        },
        Command::UpdateProfile(update) => Resolved::Update(update),
        Command::RecordEngagement { events } => {
            Resolved::Engagement(resolve_events(&events, "events", now, &mut violations))
        }
        Command::RecordDiscoveryCall(mut call) => {
            call.call_at = Some(resolve_time(
                call.call_at,
                "findings.call_time",
                now,
                &mut violations,
            ));
            Resolved::DiscoveryCall(call)
        }
        Command::RecordContactAttempt(mut attempt) => {
            attempt.attempt_at = Some(resolve_time(
                attempt.attempt_at,
                "attempt.attempt_time",
                now,
                &mut violations,
            ));
            Resolved::ContactAttempt(attempt)
        }
        Command::Override(mut request) => {
            if request.state == LeadState::Converted {
                violations.add("state", "use ConvertLead to convert a lead");
            }
            if request.state == LeadState::Nurturing {
                let revisit = request
                    .revisit_at
                    .unwrap_or(now + days(rules.qualification.nurture_days));
                if revisit <= now {
                    violations.add("revisit_time", "must be in the future");
                }
                request.revisit_at = Some(revisit);
            }
            Resolved::Override(request)
        }
        Command::ReleaseOverride { reason } => Resolved::Release(reason),
        Command::Convert {
            opportunity_reference,
        } => Resolved::Convert(opportunity_reference),
        Command::Erase(request) => Resolved::Erase(request),
        Command::Tick => Resolved::Tick,
    };
    violations.into_result().map_err(Rejection::Invalid)?;

    housekeeping(&mut lead, ctx, &mut rec);
    let before_scores = lead.scores.clone();
    let before = lead.state;

    let inputs = match command {
        Resolved::Tick => {
            return Ok(finish(lead, current, rec, state_before, ctx));
        }
        Resolved::Resubmit {
            source,
            events,
            profile,
        } => {
            let change = profile::resubmit(&mut lead.profile, &profile, rules.resubmission.profile);
            let inputs = AuditInputs::Resubmitted(Resubmission {
                source: source.clone(),
                events: events.clone(),
                profile: change,
            });
            // A resubmission is itself a signal of interest.
            lead.events.push(EngagementEvent {
                kind: EngagementKind::Resubmission,
                occurred_at: now,
                subject: source.channel.as_str().to_owned(),
            });
            lead.events.extend(events.iter().cloned());
            reevaluate(&mut lead, ctx);
            demo_triggers(&mut lead, &events, rules);
            inputs
        }
        Resolved::Update(update) => {
            let change = profile::update(&mut lead.profile, &update.fields, &update.values);
            // Nothing to correct: nothing of its own is written (what fell due still is).
            if change.is_empty() {
                return Ok(finish(lead, current, rec, state_before, ctx));
            }
            reevaluate(&mut lead, ctx);
            AuditInputs::Updated(change)
        }
        Resolved::Engagement(events) => {
            let inputs = AuditInputs::Engagement(Engagement {
                events: events.clone(),
            });
            lead.events.extend(events.iter().cloned());
            reevaluate(&mut lead, ctx);
            demo_triggers(&mut lead, &events, rules);
            inputs
        }
        Resolved::DiscoveryCall(call) => {
            let inputs = AuditInputs::DiscoveryCall(call.clone());
            merge_findings(&mut lead, call);
            reevaluate(&mut lead, ctx);
            inputs
        }
        Resolved::ContactAttempt(attempt) => {
            let inputs = AuditInputs::ContactAttempt(attempt.clone());
            let at = attempt.attempt_at.unwrap_or(now);
            if let Some(clock) = lead.sla.as_mut() {
                clock.attempts += 1;
                if clock.first_touch_at.is_none() {
                    clock.first_touch_at = Some(at);
                }
            }
            lead.reached |= attempt.outcome.reached_contact();
            reevaluate(&mut lead, ctx);
            inputs
        }
        Resolved::Override(request) => {
            let inputs = AuditInputs::Override(request.clone());
            if request.state != lead.state {
                check_transition(lead.state, request.state, Mover::Person)?;
            }
            check_recycle(&lead, &request, rules)?;
            lead.human_override = Some(Override {
                state: request.state,
                reason: request.reason.clone(),
                actor: ctx.actor.to_owned(),
                decided_at: now,
                expires_at: request.revisit_at,
            });
            let target = Target {
                state: request.state,
                reasons: vec![Reason::new(
                    "override",
                    format!("decided by {}: {}", ctx.actor, request.reason),
                )],
                disqualification: request.disqualification,
                revisit_at: request.revisit_at,
            };
            enter(&mut lead, target, rules, now);
            reevaluate(&mut lead, ctx);
            inputs
        }
        Resolved::Release(reason) => {
            if active_override(&lead, now).is_none() {
                return Err(Rejection::Precondition(
                    "no override is in force on this lead".into(),
                ));
            }
            lead.human_override = None;
            reevaluate(&mut lead, ctx);
            AuditInputs::OverrideReleased(Release { reason })
        }
        // Not a decision: state, scores and clocks stay as they are.
        Resolved::Erase(request) => {
            let fields = erasure::pseudonymise(&mut lead);
            lead.erased_at = Some(now);
            AuditInputs::Erased(Erasure {
                reason: request.reason,
                fields,
            })
        }
        Resolved::Convert(reference) => {
            check_transition(lead.state, LeadState::Converted, Mover::Person)?;
            let inputs = AuditInputs::Converted(Conversion {
                opportunity_reference: reference.clone(),
            });
            lead.human_override = None;
            lead.recommendation = None;
            lead.opportunity_reference = Some(reference.clone());
            lead.scores = scoring::score(&lead.profile, &lead.events, rules, now);
            lead.policy_version = ctx.policy.version.clone();
            let target = Target::new(
                LeadState::Converted,
                Reason::new("converted", format!("became CRM opportunity {reference}")),
            );
            enter(&mut lead, target, rules, now);
            inputs
        }
    };
    let reasons = lead.state_reasons.clone();
    rec.record(ctx.actor, Some((before, &before_scores)), &lead, inputs, reasons);
    Ok(finish(lead, current, rec, state_before, ctx))
}

enum Resolved {
    Resubmit {
        source: Source,
        events: Vec<EngagementEvent>,
        profile: ProfileValues,
    },
    Update(ProfileUpdate),
    Engagement(Vec<EngagementEvent>),
    DiscoveryCall(DiscoveryCall),
    ContactAttempt(ContactAttempt),
    Override(OverrideRequest),
    Release(String),
    Convert(String),
    Erase(ErasureRequest),
    Tick,
}

fn finish(mut lead: Lead, current: &Lead, rec: Recorder, state_before: LeadState, ctx: &Context) -> Applied {
    if !rec.entries.is_empty() {
        lead.revision = current.revision + 1;
        lead.updated_at = ctx.now;
    }
    Applied {
        decision: decision(Some(state_before), &lead, ctx),
        lead,
        entries: rec.entries,
    }
}

/// A lead sales never reached may be recycled, or disqualified as unreachable, only after the
/// policy's minimum number of attempts.
fn check_recycle(lead: &Lead, request: &OverrideRequest, rules: &Rules) -> Result<(), Rejection> {
    let recycling = request.state == LeadState::Nurturing
        || (request.state == LeadState::Disqualified
            && request.disqualification == Some(DisqualificationReason::Unreachable));
    if lead.state != LeadState::MarketingQualified || !recycling || lead.reached || lead.bant.assessed() {
        return Ok(());
    }
    let attempts = lead.sla.as_ref().map_or(0, |c| c.attempts);
    let min = rules.sla.min_attempts_before_recycle;
    if attempts < min {
        return Err(Rejection::Precondition(format!(
            "the contact was never reached and {attempts} of the {min} attempts the policy asks were made: \
             keep trying before recycling this lead"
        )));
    }
    Ok(())
}

/// Criteria assessed on the call replace what was known; the others stay.
fn merge_findings(lead: &mut Lead, call: DiscoveryCall) {
    let bant = &mut lead.bant;
    if call.need.status.is_some() {
        bant.need = call.need;
    }
    if call.budget.status.is_some() {
        bant.budget = call.budget;
    }
    // Whether the decision-maker takes part is kept until a call says otherwise, even when the
    // rest of authority is assessed again.
    let decision_maker = call.authority.decision_maker.or(bant.authority.decision_maker);
    if call.authority.status.is_some() {
        bant.authority = call.authority;
    }
    bant.authority.decision_maker = decision_maker;
    if call.timing.status.is_some() {
        bant.timing = call.timing;
    }
    bant.last_call_at = bant.last_call_at.max(call.call_at);
    lead.reached = true;
}

/// The state and scores a lead would get if re-evaluated now under `policy`.
pub fn simulate(lead: &Lead, policy: &Policy, now: Timestamp) -> (LeadState, Scores, Vec<Reason>) {
    let ctx = Context {
        now,
        actor: ENGINE_ACTOR,
        request_id: None,
        policy,
    };
    let mut lead = lead.clone();
    reevaluate(&mut lead, &ctx);
    let reasons = lead
        .recommendation
        .as_ref()
        .map_or_else(|| lead.state_reasons.clone(), |r| r.reasons.clone());
    (lead.state, lead.scores, reasons)
}

/// One evaluation: the scores at `now` and where the facts put the lead.
pub fn evaluate(lead: &Lead, policy: &Policy, now: Timestamp) -> (Scores, Target) {
    let scores = scoring::score(&lead.profile, &lead.events, &policy.rules, now);
    let target = recommend(lead, &scores, &policy.rules, now);
    (scores, target)
}

mod erasure;
mod explain;
mod inputs;
mod merge;
mod profile;
// Replay rebuilds leads from their trails to prove the trail explains every decision; only the
// engine's tests run it.
#[cfg(test)]
mod replay;
pub use erasure::{ERASED_EMAIL_DOMAIN, ErasureRequest, erased_email};
pub use explain::{Explanation, explain};
pub use inputs::{
    AuditInputs, Conversion, Engagement, Erasure, NurtureRevisit, PolicyActivation, Release, Resubmission,
    SlaBreach,
};
pub use merge::{LeadsMerged, Merged, MergedInto, check_mergeable, merge};
pub use profile::{ProfileChange, ProfileField, ProfileUpdate, ProfileValues};
#[cfg(test)]
pub use replay::{ReplayError, replay};

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;

#[cfg(test)]
mod golden;
