//! The inputs of a change as its audit entry records them: one variant per kind of entry.
//!
//! Entries are hash-chained, so the JSON written here is fixed for good: [`AuditInputs::to_value`]
//! gives it (objects with their keys in sorted order at every level, as serde_json's map keeps
//! them), and [`AuditInputs::parse`] reads it back, for the entries written since the first.

use serde::{Deserialize, Serialize};

use super::{LeadsMerged, MergedInto, OverrideRequest, ProfileChange, SubmissionInputs};
use crate::domain::audit::AuditKind;
use crate::domain::facts::{ContactAttempt, DiscoveryCall, EngagementEvent};
use crate::domain::values::{SlaTrigger, Source, Timestamp};

/// What an entry records as the inputs of its change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AuditInputs {
    /// `LEAD_SUBMITTED`: the profile without personal data, and the signals.
    Submitted(SubmissionInputs),
    /// `LEAD_RESUBMITTED`.
    Resubmitted(Resubmission),
    /// `ENGAGEMENT_RECORDED`.
    Engagement(Engagement),
    /// `DISCOVERY_CALL_RECORDED`: the findings, with the call's time resolved.
    DiscoveryCall(DiscoveryCall),
    /// `CONTACT_ATTEMPT_RECORDED`, with the attempt's time resolved.
    ContactAttempt(ContactAttempt),
    /// `STATE_OVERRIDDEN`, with a nurturing override's revisit date resolved.
    Override(OverrideRequest),
    /// `OVERRIDE_RELEASED`.
    OverrideReleased(Release),
    /// `LEAD_CONVERTED`.
    Converted(Conversion),
    /// `SLA_BREACHED`: the clock that ran out.
    SlaBreached(SlaBreach),
    /// `NURTURE_REVISITED`: the revisit date that came.
    NurtureRevisited(NurtureRevisit),
    /// `POLICY_ACTIVATED`.
    PolicyActivated(PolicyActivation),
    /// `LEAD_UPDATED`: the fields corrected, without personal values.
    Updated(ProfileChange),
    /// `LEAD_ERASED`: why, and which fields held personal data (never their values).
    Erased(Erasure),
    /// `LEADS_MERGED`: the duplicate merged in, and what it brought (counts and paths).
    LeadsMerged(LeadsMerged),
    /// `LEAD_MERGED_INTO`: the lead this one was merged into.
    MergedInto(MergedInto),
}

/// A known email submitted again: through which source, with which signals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resubmission {
    pub source: Source,
    pub events: Vec<EngagementEvent>,
    /// The contact and company fields it changed (left out when none, as before it existed).
    #[serde(default, skip_serializing_if = "ProfileChange::is_empty")]
    pub profile: ProfileChange,
}

/// Signals recorded on a lead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Engagement {
    pub events: Vec<EngagementEvent>,
}

/// Why an override was released.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub reason: String,
}

/// The CRM opportunity a lead became.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversion {
    pub opportunity_reference: String,
}

/// The speed-to-lead clock that ran out: what started it, and when it was due.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaBreach {
    pub trigger: SlaTrigger,
    pub due_at: Timestamp,
}

/// The revisit date of a nurtured lead (written as `null` when the lead had none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NurtureRevisit {
    pub revisit_at: Option<Timestamp>,
}

/// A lead's personal data erased.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    pub reason: String,
    /// The API paths of the fields that held something.
    pub fields: Vec<String>,
}

/// The policy a replica activated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyActivation {
    pub version: String,
    pub name: String,
}

impl AuditInputs {
    /// The kind of entry that records these inputs.
    pub fn kind(&self) -> AuditKind {
        match self {
            AuditInputs::Submitted(_) => AuditKind::LeadSubmitted,
            AuditInputs::Resubmitted(_) => AuditKind::LeadResubmitted,
            AuditInputs::Engagement(_) => AuditKind::EngagementRecorded,
            AuditInputs::DiscoveryCall(_) => AuditKind::DiscoveryCallRecorded,
            AuditInputs::ContactAttempt(_) => AuditKind::ContactAttemptRecorded,
            AuditInputs::Override(_) => AuditKind::StateOverridden,
            AuditInputs::OverrideReleased(_) => AuditKind::OverrideReleased,
            AuditInputs::Converted(_) => AuditKind::LeadConverted,
            AuditInputs::SlaBreached(_) => AuditKind::SlaBreached,
            AuditInputs::NurtureRevisited(_) => AuditKind::NurtureRevisited,
            AuditInputs::PolicyActivated(_) => AuditKind::PolicyActivated,
            AuditInputs::Updated(_) => AuditKind::LeadUpdated,
            AuditInputs::Erased(_) => AuditKind::LeadErased,
            AuditInputs::LeadsMerged(_) => AuditKind::LeadsMerged,
            AuditInputs::MergedInto(_) => AuditKind::LeadMergedInto,
        }
    }

    /// The JSON an entry's body holds as its inputs.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("audit inputs serialise")
    }

    /// Reads the inputs of an entry of `kind` back from its body's JSON.
    pub fn parse(kind: AuditKind, inputs: serde_json::Value) -> Result<Self, serde_json::Error> {
        use serde_json::from_value as read;
        Ok(match kind {
            AuditKind::LeadSubmitted => AuditInputs::Submitted(read(inputs)?),
            AuditKind::LeadResubmitted => AuditInputs::Resubmitted(read(inputs)?),
            AuditKind::EngagementRecorded => AuditInputs::Engagement(read(inputs)?),
            AuditKind::DiscoveryCallRecorded => AuditInputs::DiscoveryCall(read(inputs)?),
            AuditKind::ContactAttemptRecorded => AuditInputs::ContactAttempt(read(inputs)?),
            AuditKind::StateOverridden => AuditInputs::Override(read(inputs)?),
            AuditKind::OverrideReleased => AuditInputs::OverrideReleased(read(inputs)?),
            AuditKind::LeadConverted => AuditInputs::Converted(read(inputs)?),
            AuditKind::SlaBreached => AuditInputs::SlaBreached(read(inputs)?),
            AuditKind::NurtureRevisited => AuditInputs::NurtureRevisited(read(inputs)?),
            AuditKind::PolicyActivated => AuditInputs::PolicyActivated(read(inputs)?),
            AuditKind::LeadUpdated => AuditInputs::Updated(read(inputs)?),
            AuditKind::LeadErased => AuditInputs::Erased(read(inputs)?),
            AuditKind::LeadsMerged => AuditInputs::LeadsMerged(read(inputs)?),
            AuditKind::LeadMergedInto => AuditInputs::MergedInto(read(inputs)?),
        })
    }
}
