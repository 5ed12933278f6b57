//! Domain enums ↔ proto enums, matched by value name: the prefix the domain enum declares in
//! its `named_enum!` and its stable name (`LEAD_STATE_` + `NURTURING`).

use std::sync::LazyLock;

use crate::domain::lifecycle::LeadState;
use crate::domain::sla;
use crate::domain::validation::Violations;
use crate::domain::values::{
    BudgetStatus, ContactChannel, ContactOutcome, CriterionStatus, DisqualificationReason, EngagementKind,
    FitGrade, Seniority, SlaTrigger, SourceChannel,
};
use crate::grpc::pb;

/// Maps a domain enum to and from its proto enum by value name (`LEAD_STATE_` + `LEAD`).
macro_rules! enum_mapping {
    ($domain:ty, $proto:ty) => {
        impl EnumMapping for $domain {
            const PREFIX: &'static str = <$domain>::PREFIX;

            fn to_proto(self) -> i32 {
                static TABLE: LazyLock<Vec<i32>> = LazyLock::new(|| {
                    <$domain>::ALL
                        .iter()
                        .map(|d| {
                            <$proto>::from_str_name(&format!("{}{}", <$domain>::PREFIX, d.as_str()))
                                .map_or(0, |p| p as i32)
                        })
                        .collect()
                });
                TABLE[self as usize]
            }

            fn from_proto(value: i32) -> Result<Option<Self>, String> {
                let proto = <$proto>::try_from(value).map_err(|_| format!("{value} is not a known value"))?;
                let name = proto.as_str_name();
                let bare = name.strip_prefix(<$domain>::PREFIX).unwrap_or(name);
                if bare == "UNSPECIFIED" {
                    return Ok(None);
                }
                <$domain>::from_name(bare)
                    .map(Some)
                    .ok_or_else(|| format!("{name} is not supported"))
            }
        }
    };
}

/// A domain enum with a proto twin.
pub trait EnumMapping: Sized + Copy {
    /// The prefix of the proto values' names: the one the domain enum declares.
    const PREFIX: &'static str;
    fn to_proto(self) -> i32;
    /// `Ok(None)` for the `*_UNSPECIFIED` value.
    fn from_proto(value: i32) -> Result<Option<Self>, String>;
}

enum_mapping!(LeadState, pb::LeadState);
enum_mapping!(Seniority, pb::Seniority);
enum_mapping!(SourceChannel, pb::SourceChannel);
enum_mapping!(DisqualificationReason, pb::DisqualificationReason);
enum_mapping!(FitGrade, pb::FitGrade);
enum_mapping!(CriterionStatus, pb::CriterionStatus);
enum_mapping!(BudgetStatus, pb::BudgetStatus);
enum_mapping!(EngagementKind, pb::EngagementKind);
enum_mapping!(ContactChannel, pb::ContactChannel);
enum_mapping!(ContactOutcome, pb::ContactOutcome);
enum_mapping!(SlaTrigger, pb::SlaTrigger);
enum_mapping!(sla::SlaState, pb::SlaState);
enum_mapping!(crate::domain::audit::AuditKind, pb::AuditEventKind);
enum_mapping!(crate::domain::audit::Problem, pb::VerificationProblem);

/// An optional domain enum as its proto value: `None` is UNSPECIFIED (0).
pub(super) fn opt_enum<E: EnumMapping>(value: Option<E>) -> i32 {
    value.map_or(0, E::to_proto)
}

/// An optional enum field: UNSPECIFIED is `None`, an unknown number a violation.
pub fn optional_enum<E: EnumMapping>(v: &mut Violations, field: &str, value: i32) -> Option<E> {
    v.check(field, E::from_proto(value)).flatten()
}

/// A required enum field.
pub fn required_enum<E: EnumMapping>(v: &mut Violations, field: &str, value: i32) -> Option<E> {
    match E::from_proto(value) {
        Ok(Some(e)) => Some(e),
        Ok(None) => {
            v.add(field, "is required");
            None
        }
        Err(why) => {
            v.add(field, why);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<E: EnumMapping + PartialEq + std::fmt::Debug>(all: &[E]) {
        for value in all {
            let proto = value.to_proto();
            assert_ne!(proto, 0, "{value:?} has no proto value");
            assert_eq!(E::from_proto(proto).unwrap(), Some(*value));
        }
    }

    fn covers<P: TryFrom<i32>, E: EnumMapping>(count: i32) {
        for n in 1..count {
            assert!(
                E::from_proto(n).unwrap().is_some(),
                "{}{n} has no domain value",
                E::PREFIX
            );
        }
        assert!(
            P::try_from(count).is_err(),
            "{} has values beyond {count}",
            E::PREFIX
        );
        assert_eq!(E::from_proto(0).unwrap().map(E::to_proto), None);
    }

    #[test]
    fn every_enum_maps_both_ways() {
        round_trips(LeadState::ALL);
        round_trips(Seniority::ALL);
        round_trips(SourceChannel::ALL);
        round_trips(DisqualificationReason::ALL);
        round_trips(FitGrade::ALL);
        round_trips(CriterionStatus::ALL);
        round_trips(BudgetStatus::ALL);
        round_trips(EngagementKind::ALL);
        round_trips(ContactChannel::ALL);
        round_trips(ContactOutcome::ALL);
        round_trips(SlaTrigger::ALL);
        round_trips(sla::SlaState::ALL);
        round_trips(crate::domain::audit::AuditKind::ALL);
        round_trips(crate::domain::audit::Problem::ALL);
        covers::<pb::LeadState, LeadState>(LeadState::ALL.len() as i32 + 1);
        covers::<pb::EngagementKind, EngagementKind>(EngagementKind::ALL.len() as i32 + 1);
        covers::<pb::SourceChannel, SourceChannel>(SourceChannel::ALL.len() as i32 + 1);
        covers::<pb::AuditEventKind, crate::domain::audit::AuditKind>(
            crate::domain::audit::AuditKind::ALL.len() as i32 + 1,
        );
    }

    #[test]
    fn unknown_enum_numbers_are_rejected() {
        assert!(LeadState::from_proto(99).is_err());
    }
}
