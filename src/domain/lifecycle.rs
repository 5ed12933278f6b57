//! The lead lifecycle: its states and, in one table, every move allowed between them.

use super::names::named_enum;

named_enum! {
    prefix = "LEAD_STATE_",
    /// Where a lead stands.
    pub enum LeadState {
        /// Showed interest; nothing known yet about need, budget, authority or timing.
        Lead => "LEAD",
        /// The combined score reached the threshold: handed to sales, the SLA clock runs.
        MarketingQualified => "MARKETING_QUALIFIED",
        /// A prospect: BANT confirmed as the policy asks, with an acceptable fit.
        SalesQualified => "SALES_QUALIFIED",
        /// Not ready yet; kept warm until a revisit date or new signals.
        Nurturing => "NURTURING",
        /// Out of the funnel with a reason; only a person re-opens it.
        Disqualified => "DISQUALIFIED",
        /// Became an opportunity in the CRM. Terminal.
        Converted => "CONVERTED",
    }
}

/// Who asks for a move. The engine makes forward moves and sanctioned recycles; only people
/// re-open a disqualified lead or convert one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mover {
    Engine,
    Person,
}

/// One allowed move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: LeadState,
    pub to: LeadState,
    /// Whether the engine may make it by itself (people may make every move in the table).
    pub by_engine: bool,
    /// What the move means, for error messages and documentation.
    pub meaning: &'static str,
}

const fn t(from: LeadState, to: LeadState, by_engine: bool, meaning: &'static str) -> Transition {
    Transition {
        from,
        to,
        by_engine,
        meaning,
    }
}

use LeadState::{Converted, Disqualified, Lead, MarketingQualified, Nurturing, SalesQualified};

/// Every allowed move. Anything else is refused, whoever asks.
pub const TRANSITIONS: &[Transition] = &[
    t(Lead, MarketingQualified, true, "the score reached the threshold"),
    t(Lead, SalesQualified, true, "qualified on a discovery call"),
    t(Lead, Nurturing, true, "not ready yet"),
    t(Lead, Disqualified, true, "out of the funnel"),
    t(
        MarketingQualified,
        SalesQualified,
        true,
        "qualified on a discovery call",
    ),
    t(MarketingQualified, Nurturing, true, "recycled to nurturing"),
    t(MarketingQualified, Disqualified, true, "out of the funnel"),
    t(SalesQualified, Converted, false, "became a CRM opportunity"),
    t(SalesQualified, Nurturing, true, "recycled to nurturing"),
    t(SalesQualified, Disqualified, true, "out of the funnel"),
    t(Nurturing, Lead, true, "back in the funnel"),
    t(
        Nurturing,
        MarketingQualified,
        true,
        "back in the funnel, handed to sales",
    ),
    t(Nurturing, SalesQualified, true, "qualified on a discovery call"),
    t(Nurturing, Disqualified, true, "out of the funnel"),
    t(Disqualified, Lead, false, "re-opened"),
];

/// A move the lifecycle does not allow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a lead cannot move from {from} to {to}{hint}")]
pub struct IllegalTransition {
    pub from: LeadState,
    pub to: LeadState,
    hint: &'static str,
}

/// Checks a move against the table.
pub fn check_transition(
    from: LeadState,
    to: LeadState,
    mover: Mover,
) -> Result<&'static Transition, IllegalTransition> {
    let found = TRANSITIONS.iter().find(|t| t.from == from && t.to == to);
    match found {
        Some(t) if mover == Mover::Person || t.by_engine => Ok(t),
        Some(_) => Err(IllegalTransition {
            from,
            to,
            hint: " without a person's decision",
        }),
        None => Err(IllegalTransition {
            from,
            to,
            hint: match from {
                Converted => " (CONVERTED is terminal)",
                Disqualified => " (re-open it to LEAD first)",
                Lead | MarketingQualified | SalesQualified | Nurturing => "",
            },
        }),
    }
}

impl LeadState {
    /// States the engine never leaves by itself.
    pub fn is_held_for_people(self) -> bool {
        matches!(self, Disqualified | Converted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_state_moves_to_itself_through_the_table() {
        assert!(TRANSITIONS.iter().all(|t| t.from != t.to));
    }

    #[test]
    fn converted_is_terminal() {
        for to in LeadState::ALL {
            assert!(check_transition(Converted, *to, Mover::Person).is_err());
        }
    }

    #[test]
    fn only_people_reopen_and_convert() {
        assert!(check_transition(Disqualified, Lead, Mover::Engine).is_err());
        assert!(check_transition(Disqualified, Lead, Mover::Person).is_ok());
        assert!(check_transition(SalesQualified, Converted, Mover::Engine).is_err());
        assert!(check_transition(SalesQualified, Converted, Mover::Person).is_ok());
    }

    #[test]
    fn a_disqualified_lead_must_be_reopened_before_anything_else() {
        for to in [MarketingQualified, SalesQualified, Nurturing, Converted] {
            let err = check_transition(Disqualified, to, Mover::Person).unwrap_err();
            assert!(err.to_string().contains("re-open"), "{err}");
        }
    }

    #[test]
    fn marketing_qualified_never_falls_back_to_lead() {
        assert!(check_transition(MarketingQualified, Lead, Mover::Person).is_err());
        assert!(check_transition(SalesQualified, MarketingQualified, Mover::Person).is_err());
    }
}
