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
    pub policy_version: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Incremented by every change; the source of the etag and of optimistic concurrency.
    pub revision: i64,
}

impl Lead {
    /// The opaque etag clients send back to make a change conditional (AIP-154).
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.revision)
    }
}
