//! Rebuilding a lead from its audit entries: each entry's inputs, applied at its recorded time
//! by its actor under its policy, give back the same lead. This is what makes the trail an
//! explanation of every decision, not only a log of them.

use super::{AuditInputs, Command, Context, EventInput, apply, create};
use crate::domain::audit::{AuditEntry, AuditKind};
use crate::domain::lead::Lead;
use crate::domain::policy::Policy;
use crate::domain::values::{Contact, Email, Profile};

/// Why a trail could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("entry {index}: {message}")]
    Entry { index: usize, message: String },
}

/// The entry's inputs, as its kind records them.
fn inputs(entry: &AuditEntry, index: usize) -> Result<AuditInputs, ReplayError> {
    AuditInputs::parse(entry.kind, entry.parsed_body().inputs).map_err(|e| ReplayError::Entry {
        index,
        message: format!("{} inputs: {e}", entry.kind),
    })
}

fn replayed_events(events: Vec<crate::domain::facts::EngagementEvent>) -> Vec<EventInput> {
    events
        .into_iter()
        .map(|e| EventInput {
            kind: e.kind,
            occurred_at: Some(e.occurred_at),
            subject: e.subject,
        })
        .collect()
}

/// Whether an entry records what fell due rather than a command.
fn is_housekeeping(kind: AuditKind) -> bool {
    matches!(kind, AuditKind::SlaBreached | AuditKind::NurtureRevisited)
}

/// Rebuilds a lead from its entries, oldest first. Personal data is not in the trail: the
/// rebuilt contact has only the email's domain (all that scoring reads).
///
/// Entries written by one change share its time: what fell due is recorded before the command,
/// and replaying the command records it again, so such entries are not replayed on their own.
/// Only due entries written by the sweeper alone are replayed, as a tick at their time.
pub fn replay<'p>(
    entries: &[AuditEntry],
    policy_of: impl Fn(&str) -> Option<&'p Policy>,
) -> Result<Lead, ReplayError> {
    let mut lead: Option<Lead> = None;
    for (index, entry) in entries.iter().enumerate() {
        let next = entries.get(index + 1);
        if is_housekeeping(entry.kind)
            && next.is_some_and(|n| n.recorded_at == entry.recorded_at && n.lead == entry.lead)
        {
            continue;
        }
        let fail = |message: String| ReplayError::Entry { index, message };
        let policy = policy_of(&entry.policy_version)
            .ok_or_else(|| fail(format!("policy {} is not known", entry.policy_version)))?;
        let ctx = Context {
            now: entry.recorded_at,
            actor: &entry.actor,
            request_id: entry.request_id.as_deref(),
            policy,
        };
        let id = entry.lead.ok_or_else(|| fail("the entry names no lead".into()))?;
        let applied = match (&lead, entry.kind) {
            (None, AuditKind::LeadSubmitted) => {
                let AuditInputs::Submitted(s) = inputs(entry, index)? else {
                    unreachable!("a submission's inputs are parsed as one")
                };
                let email = Email::parse(&format!("redacted@{}", s.email_domain)).map_err(fail)?;
                let profile = Profile {
                    contact: Contact {
                        email,
                        given_name: String::new(),
                        family_name: String::new(),
                        phone: String::new(),
                        job_title: String::new(),
                        seniority: s.seniority,
                        job_function: s.job_function,
                    },
                    company: s.company,
                    source: s.source,
                    external_reference: s.external_reference,
                };
                create(id, profile, &replayed_events(s.events), &ctx)
            }
            (None, kind) => return Err(fail(format!("the trail starts with {kind}, not a submission"))),
            (Some(current), kind) => {
                let command = match kind {
                    AuditKind::LeadSubmitted => return Err(fail("a second submission".into())),
                    AuditKind::PolicyActivated => {
                        return Err(fail("a policy entry in a lead's trail".into()));
                    }
                    // A merge needs the other lead's state too: one trail does not rebuild it.
                    AuditKind::LeadsMerged | AuditKind::LeadMergedInto => {
                        return Err(fail("a merge, which one lead's trail cannot rebuild".into()));
                    }
                    // What falls due is derived from time alone: applying "nothing" at the entry's
                    // time records it again (and is a no-op if an earlier step already did).
                    AuditKind::SlaBreached | AuditKind::NurtureRevisited => Command::Tick,
                    AuditKind::LeadResubmitted
                    | AuditKind::EngagementRecorded
                    | AuditKind::DiscoveryCallRecorded
                    | AuditKind::ContactAttemptRecorded
                    | AuditKind::StateOverridden
                    | AuditKind::OverrideReleased
                    | AuditKind::LeadConverted
                    | AuditKind::LeadUpdated
                    | AuditKind::LeadErased => match inputs(entry, index)? {
                        AuditInputs::Resubmitted(r) => Command::Resubmit {
                            source: r.source,
                            events: replayed_events(r.events),
                            profile: r.profile.replayed(index).map_err(fail)?.values,
                        },
                        AuditInputs::Updated(change) => {
                            Command::UpdateProfile(change.replayed(index).map_err(fail)?)
                        }
                        AuditInputs::Engagement(e) => Command::RecordEngagement {
                            events: replayed_events(e.events),
                        },
                        AuditInputs::DiscoveryCall(call) => Command::RecordDiscoveryCall(call),
                        AuditInputs::ContactAttempt(attempt) => Command::RecordContactAttempt(attempt),
                        AuditInputs::Override(request) => Command::Override(request),
                        AuditInputs::OverrideReleased(r) => Command::ReleaseOverride { reason: r.reason },
                        AuditInputs::Erased(e) => Command::Erase(super::ErasureRequest { reason: e.reason }),
                        AuditInputs::Converted(c) => Command::Convert {
                            opportunity_reference: c.opportunity_reference,
                        },
                        other @ (AuditInputs::Submitted(_)
                        | AuditInputs::SlaBreached(_)
                        | AuditInputs::NurtureRevisited(_)
                        | AuditInputs::PolicyActivated(_)
                        | AuditInputs::LeadsMerged(_)
                        | AuditInputs::MergedInto(_)) => {
                            unreachable!("{kind} inputs are parsed as {:?}", other.kind())
                        }
                    },
                };
                apply(current, command, &ctx)
            }
        };
        lead = Some(applied.map_err(|e| fail(e.to_string()))?.lead);
    }
    lead.ok_or(ReplayError::Entry {
        index: 0,
        message: "no entries".into(),
    })
}
