//! The lead aggregate: a profile, the facts recorded about it, and what the engine decided.

use serde::{Deserialize, Serialize};

use super::facts::{Bant, EngagementEvent, Override, Reason, Recommendation, Scores, SlaClock};
use super::lifecycle::LeadState;
use super::values::{DisqualificationReason, LeadId, Profile, Timestamp};

/// A lead as stored: one JSON document per lead, plus indexed projections of a few fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lead {
    pub id: LeadId,
    pub profile: Profile,
    pub state: LeadState,
    pub state_reasons: Vec<Reason>,
    pub state_changed_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disqualification: Option<DisqualificationReason>,
    /// Set while NURTURING: when the engine looks at the lead again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisit_at: Option<Timestamp>,
    /// The scores of the latest evaluation.
    pub scores: Scores,
    /// The engagement signals that can still score (older ones decay to nothing and are pruned).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EngagementEvent>,
    #[serde(default)]
    pub bant: Bant,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<SlaClock>,
    /// How many speed-to-lead clocks this lead ever started (numbers them for reports).
    #[serde(default)]
    pub sla_clocks: u32,
    /// Whether any contact attempt ever reached the person.
    #[serde(default)]
    pub reached: bool,
    #[serde(rename = "override", default, skip_serializing_if = "Option::is_none")]
    pub human_override: Option<Override>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<Recommendation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opportunity_reference: Option<String>,
    /// The key the free text of the lead's audit entries is sealed under (`domain::texts`);
    /// erasure destroys it. `None` for a lead written before keys existed, and once erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_key: Option<super::texts::TextKey>,
    /// When the lead's personal data was erased: from then on it is a pseudonymous record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<Timestamp>,
    pub policy_version: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Incremented by every change; the source of the etag and of optimistic concurrency.
    pub revision: i64,
    /// Set when this lead was merged into another (MergeLeads): the lead it was merged into then.
    /// A merged lead keeps its history, but nothing happens to it any more: readers and writers
    /// are sent to the lead its merges end at (the store keeps that, see `Store::merge_target`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<LeadId>,
}

impl Lead {
    /// The opaque etag clients send back to make a change conditional (AIP-154).
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.revision)
    }

    /// When the speed-to-lead clock breaches if nobody touches the lead: its due time while the
    /// clock runs (no first touch, no breach recorded yet); `None` when no clock runs, or the lead
    /// was merged into another (nothing falls due on an alias).
    pub fn sla_due_at(&self) -> Option<Timestamp> {
        if self.merged_into.is_some() {
            return None;
        }
        self.sla
            .as_ref()
            .filter(|clock| clock.first_touch_at.is_none() && clock.breached_at.is_none())
            .map(|clock| clock.due_at)
    }

    /// When the engine looks at a nurtured lead again: its revisit date, while it is NURTURING
    /// (a date left on a lead in another state, or on a merged lead, brings nothing back).
    pub fn revisit_due_at(&self) -> Option<Timestamp> {
        self.revisit_at
            .filter(|_| self.state == LeadState::Nurturing && self.merged_into.is_none())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::engine::fixtures::{policy, submit, t0, unknown};
    use crate::domain::values::SlaTrigger;

    /// A lead in state LEAD with no clock and no revisit date.
    fn lead() -> Lead {
        let submitted = submit(&unknown(), &[], &policy(), t0()).lead;
        Lead {
            state: LeadState::Lead,
            revisit_at: None,
            sla: None,
            ..submitted
        }
    }

    fn clock(due_at: Timestamp) -> SlaClock {
        SlaClock {
            number: 1,
            trigger: SlaTrigger::DemoRequest,
            started_at: due_at - Duration::minutes(5),
            due_at,
            first_touch_at: None,
            breached_at: None,
            attempts: 0,
        }
    }

    #[test]
    fn a_running_clock_is_due_at_its_due_time() {
        let due = t0() + Duration::minutes(5);
        let lead = Lead {
            sla: Some(clock(due)),
            ..lead()
        };
        assert_eq!(lead.sla_due_at(), Some(due));
    }

    #[test]
    fn a_touched_or_breached_clock_and_no_clock_are_never_due() {
        let due = t0() + Duration::minutes(5);
        let touched = SlaClock {
            first_touch_at: Some(t0()),
            ..clock(due)
        };
        let breached = SlaClock {
            breached_at: Some(due),
            ..clock(due)
        };
        for sla in [Some(touched), Some(breached), None] {
            assert_eq!(Lead { sla, ..lead() }.sla_due_at(), None);
        }
    }

    #[test]
    fn a_revisit_is_due_only_while_nurturing() {
        let revisit = t0() + Duration::days(90);
        let nurtured = Lead {
            state: LeadState::Nurturing,
            revisit_at: Some(revisit),
            ..lead()
        };
        assert_eq!(nurtured.revisit_due_at(), Some(revisit));
        for state in [
            LeadState::Lead,
            LeadState::MarketingQualified,
            LeadState::Disqualified,
        ] {
            let elsewhere = Lead {
                state,
                ..nurtured.clone()
            };
            assert_eq!(elsewhere.revisit_due_at(), None, "{state}");
        }
        let undated = Lead {
            revisit_at: None,
            ..nurtured
        };
        assert_eq!(undated.revisit_due_at(), None);
    }
}
