//! What each resource's lists may filter on and be ordered by: one enum of fields and one of
//! orders per resource. A new filter field is a variant here (its name and kind) and its column
//! in the store; the sort key of an order comes from the item itself, by an exhaustive match.

use super::{Field, FieldKind, KeyType, Order, Value};
use crate::domain::audit::AuditKind;
use crate::domain::lead::Lead;
use crate::domain::lifecycle::LeadState;
use crate::domain::values::{FitGrade, SourceChannel, Timestamp};

/// The filter fields of ListLeads (and of SimulatePolicy's selection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeadField {
    State,
    SourceChannel,
    FitGrade,
    CombinedPoints,
    CreateTime,
    UpdateTime,
    /// The normalised email (the deduplication key).
    Email,
    /// The company's domain, or the email's when none was given (as scoring uses it).
    CompanyDomain,
    /// The company's name, compared ignoring case.
    CompanyName,
    SourceCampaign,
    /// The caller's own identifier (CRM id).
    ExternalReference,
}

impl Field for LeadField {
    const ALL: &'static [Self] = &[
        LeadField::State,
        LeadField::SourceChannel,
        LeadField::FitGrade,
        LeadField::CombinedPoints,
        LeadField::CreateTime,
        LeadField::UpdateTime,
        LeadField::Email,
        LeadField::CompanyDomain,
        LeadField::CompanyName,
        LeadField::SourceCampaign,
        LeadField::ExternalReference,
    ];

    fn name(self) -> &'static str {
        match self {
            LeadField::State => "state",
            LeadField::SourceChannel => "source.channel",
            LeadField::FitGrade => "scores.fit_grade",
            LeadField::CombinedPoints => "scores.combined_points",
            LeadField::CreateTime => "create_time",
            LeadField::UpdateTime => "update_time",
            LeadField::Email => "contact.email",
            LeadField::CompanyDomain => "company.domain",
            LeadField::CompanyName => "company.name",
            LeadField::SourceCampaign => "source.campaign",
            LeadField::ExternalReference => "external_reference",
        }
    }

    fn kind(self) -> FieldKind {
        match self {
            LeadField::State => FieldKind::names_of(LeadState::NAMES, LeadState::PREFIX),
            LeadField::SourceChannel => FieldKind::names_of(SourceChannel::NAMES, SourceChannel::PREFIX),
            LeadField::FitGrade => FieldKind::names_of(FitGrade::NAMES, FitGrade::PREFIX),
            LeadField::CombinedPoints => FieldKind::Points,
            LeadField::CreateTime | LeadField::UpdateTime => FieldKind::Time,
            LeadField::Email => FieldKind::Email,
            LeadField::CompanyDomain => FieldKind::Domain,
            LeadField::CompanyName => FieldKind::FoldedText,
            LeadField::SourceCampaign => FieldKind::SearchText,
            LeadField::ExternalReference => FieldKind::Text,
        }
    }
}

/// The orders of ListLeads; ties are broken by the lead's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeadOrder {
    CreateTime,
    CreateTimeDesc,
    UpdateTime,
    UpdateTimeDesc,
    CombinedPointsDesc,
}

impl Order for LeadOrder {
    const ALL: &'static [Self] = &[
        LeadOrder::CreateTime,
        LeadOrder::CreateTimeDesc,
        LeadOrder::UpdateTime,
        LeadOrder::UpdateTimeDesc,
        LeadOrder::CombinedPointsDesc,
    ];

    fn name(self) -> &'static str {
        match self {
            LeadOrder::CreateTime => "create_time",
            LeadOrder::CreateTimeDesc => "create_time desc",
            LeadOrder::UpdateTime => "update_time",
            LeadOrder::UpdateTimeDesc => "update_time desc",
            LeadOrder::CombinedPointsDesc => "scores.combined_points desc",
        }
    }

    fn key_types(self) -> &'static [KeyType] {
        &[KeyType::Int, KeyType::Uuid]
    }
}

impl LeadOrder {
    /// The sort key of a lead in this order: the ordering value, then the id.
    pub fn key(self, lead: &Lead) -> Vec<Value> {
        let value = match self {
            LeadOrder::CreateTime | LeadOrder::CreateTimeDesc => lead.created_at.timestamp_micros(),
            LeadOrder::UpdateTime | LeadOrder::UpdateTimeDesc => lead.updated_at.timestamp_micros(),
            LeadOrder::CombinedPointsDesc => lead.scores.combined.0,
        };
        vec![Value::Int(value), Value::Uuid(lead.id.as_uuid())]
    }
}

/// The filter fields of ListAuditEvents (WatchDecisions: all but the position, its cursor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditField {
    Lead,
    Actor,
    Kind,
    StateBefore,
    StateAfter,
    PolicyVersion,
    SourceChannel,
    RecordTime,
    Position,
}

impl AuditField {
    /// The fields of WatchDecisions' filter.
    pub const WATCHABLE: &'static [AuditField] = &[
        AuditField::Lead,
        AuditField::Actor,
        AuditField::Kind,
        AuditField::StateBefore,
        AuditField::StateAfter,
        AuditField::PolicyVersion,
        AuditField::SourceChannel,
        AuditField::RecordTime,
    ];
}

impl Field for AuditField {
    const ALL: &'static [Self] = &[
        AuditField::Lead,
        AuditField::Actor,
        AuditField::Kind,
        AuditField::StateBefore,
        AuditField::StateAfter,
        AuditField::PolicyVersion,
        AuditField::SourceChannel,
        AuditField::RecordTime,
        AuditField::Position,
    ];

    fn name(self) -> &'static str {
        match self {
            AuditField::Lead => "lead",
            AuditField::Actor => "actor",
            AuditField::Kind => "kind",
            AuditField::StateBefore => "state_before",
            AuditField::StateAfter => "state_after",
            AuditField::PolicyVersion => "policy_version",
            AuditField::SourceChannel => "source.channel",
            AuditField::RecordTime => "record_time",
            AuditField::Position => "position",
        }
    }

    fn kind(self) -> FieldKind {
        match self {
            AuditField::Lead => FieldKind::LeadName,
            AuditField::Actor | AuditField::PolicyVersion => FieldKind::Text,
            AuditField::Kind => FieldKind::names_of(AuditKind::NAMES, AuditKind::PREFIX),
            AuditField::StateBefore | AuditField::StateAfter => {
                FieldKind::names_of(LeadState::NAMES, LeadState::PREFIX)
            }
            AuditField::SourceChannel => FieldKind::names_of(SourceChannel::NAMES, SourceChannel::PREFIX),
            AuditField::RecordTime => FieldKind::Time,
            AuditField::Position => FieldKind::Integer,
        }
    }
}

/// The orders of ListAuditEvents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditOrder {
    Position,
    PositionDesc,
}

impl Order for AuditOrder {
    const ALL: &'static [Self] = &[AuditOrder::Position, AuditOrder::PositionDesc];

    fn name(self) -> &'static str {
        match self {
            AuditOrder::Position => "position",
            AuditOrder::PositionDesc => "position desc",
        }
    }

    fn key_types(self) -> &'static [KeyType] {
        &[KeyType::Int]
    }
}

impl AuditOrder {
    /// The sort key of the entry at `position`.
    pub fn key(self, position: i64) -> Vec<Value> {
        match self {
            AuditOrder::Position | AuditOrder::PositionDesc => vec![Value::Int(position)],
        }
    }
}

/// A resource whose list takes no filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoField {}

impl Field for NoField {
    const ALL: &'static [Self] = &[];

    fn name(self) -> &'static str {
        match self {}
    }

    fn kind(self) -> FieldKind {
        match self {}
    }
}

/// The order of ListPolicies: the last activated first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyOrder {
    ActivateTimeDesc,
}

impl Order for PolicyOrder {
    const ALL: &'static [Self] = &[PolicyOrder::ActivateTimeDesc];

    fn name(self) -> &'static str {
        match self {
            PolicyOrder::ActivateTimeDesc => "activate_time desc",
        }
    }

    fn key_types(self) -> &'static [KeyType] {
        &[KeyType::Int, KeyType::Text]
    }
}

impl PolicyOrder {
    /// The sort key of a policy activated at `activated_at`: the time, then the version.
    pub fn key(self, activated_at: Timestamp, version: &str) -> Vec<Value> {
        match self {
            PolicyOrder::ActivateTimeDesc => vec![
                Value::Int(activated_at.timestamp_micros()),
                Value::Text(version.to_owned()),
            ],
        }
    }
}

/// The order of ListQuarantinedAuditEntries: the newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuarantineOrder {
    IdDesc,
}

impl Order for QuarantineOrder {
    const ALL: &'static [Self] = &[QuarantineOrder::IdDesc];

    fn name(self) -> &'static str {
        match self {
            QuarantineOrder::IdDesc => "id desc",
        }
    }

    fn key_types(self) -> &'static [KeyType] {
        &[KeyType::Int]
    }
}

impl QuarantineOrder {
    pub fn key(self, id: i64) -> Vec<Value> {
        match self {
            QuarantineOrder::IdDesc => vec![Value::Int(id)],
        }
    }
}
