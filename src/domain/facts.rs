//! What leadgate records about a lead besides its profile: signals, findings, attempts, the SLA
//! clock, human decisions, and the scores and reasons derived from them.

use serde::{Deserialize, Serialize};

use super::lifecycle::LeadState;
use super::values::{
    BudgetStatus, ContactChannel, ContactOutcome, CriterionStatus, DecisionMakerInvolvement, EngagementKind,
    FitGrade, SlaTrigger, Timestamp,
};

/// Points in hundredths, so that every explanation line adds up exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Points(pub i64);

impl Points {
    pub const ZERO: Points = Points(0);

    /// Whole points (policy files speak in points).
    pub fn from_f64(points: f64) -> Self {
        Points((points * 100.0).round() as i64)
    }

    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl std::ops::Add for Points {
    type Output = Points;
    fn add(self, rhs: Points) -> Points {
        Points(self.0.saturating_add(rhs.0))
    }
}

impl std::ops::Sub for Points {
    type Output = Points;
    fn sub(self, rhs: Points) -> Points {
        Points(self.0.saturating_sub(rhs.0))
    }
}

impl std::iter::Sum for Points {
    fn sum<I: Iterator<Item = Points>>(iter: I) -> Points {
        iter.fold(Points::ZERO, |a, b| a + b)
    }
}

impl std::fmt::Display for Points {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        write!(f, "{sign}{}.{:02}", self.0.abs() / 100, self.0.abs() % 100)
    }
}

/// One rule's contribution to a decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub rule_id: String,
    pub message: String,
}

impl Reason {
    pub fn new(rule_id: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            rule_id: rule_id.into(),
            message: message.into(),
        }
    }
}

/// A lead's scores as of one evaluation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scores {
    pub fit: Points,
    pub grade: FitGrade,
    pub engagement: Points,
    pub combined: Points,
    pub threshold: Points,
    pub evaluated_at: Timestamp,
}

/// A behaviour signal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngagementEvent {
    pub kind: EngagementKind,
    pub occurred_at: Timestamp,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
}

/// What is known about need.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedFinding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CriterionStatus>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub evidence: String,
}

/// An amount in whole units of a currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub currency: String,
    pub units: i64,
}

/// What is known about budget.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetFinding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CriterionStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_status: Option<BudgetStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub evidence: String,
}

/// What is known about authority.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredAuthorityFinding")]
pub struct AuthorityFinding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CriterionStatus>,
    /// Whether the final decision-maker takes part; `None` when nobody said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_maker: Option<DecisionMakerInvolvement>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub evidence: String,
}

impl AuthorityFinding {
    /// Whether authority counts as met: MET, unless the final decision-maker is said not to take
    /// part (the CIO who depends on a committee that is not involved stays short of prospect).
    pub fn is_met(&self) -> bool {
        self.status == Some(CriterionStatus::Met)
            && self.decision_maker != Some(DecisionMakerInvolvement::NotInvolved)
    }
}

/// An authority finding as lead documents and audit inputs hold it, written by this version or by
/// an earlier one that kept only `decision_maker_involved: bool`.
#[derive(Deserialize)]
struct StoredAuthorityFinding {
    #[serde(default)]
    status: Option<CriterionStatus>,
    #[serde(default)]
    decision_maker: Option<DecisionMakerInvolvement>,
    #[serde(default)]
    decision_maker_involved: bool,
    #[serde(default)]
    evidence: String,
}

impl From<StoredAuthorityFinding> for AuthorityFinding {
    fn from(stored: StoredAuthorityFinding) -> Self {
        // The old `true` said the decision-maker takes part; the old `false` was also the default,
        // so it says nothing.
        let legacy = stored
            .decision_maker_involved
            .then_some(DecisionMakerInvolvement::Involved);
        Self {
            status: stored.status,
            decision_maker: stored.decision_maker.or(legacy),
            evidence: stored.evidence,
        }
    }
}

/// What is known about timing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimingFinding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CriterionStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub evidence: String,
}

/// The findings of one discovery call; a criterion left `status: None` was not discussed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_at: Option<Timestamp>,
    pub need: NeedFinding,
    pub budget: BudgetFinding,
    pub authority: AuthorityFinding,
    pub timing: TimingFinding,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub conducted_by: String,
}

/// BANT as established by all discovery calls so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bant {
    pub need: NeedFinding,
    pub budget: BudgetFinding,
    pub authority: AuthorityFinding,
    pub timing: TimingFinding,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_call_at: Option<Timestamp>,
}

impl Bant {
    /// How many criteria are met (authority as [`AuthorityFinding::is_met`] says).
    pub fn met_count(&self) -> u8 {
        let met = |status: Option<CriterionStatus>| u8::from(status == Some(CriterionStatus::Met));
        met(self.need.status)
            + met(self.budget.status)
            + u8::from(self.authority.is_met())
            + met(self.timing.status)
    }

    /// Whether any discovery call assessed anything.
    pub fn assessed(&self) -> bool {
        self.last_call_at.is_some()
    }
}

/// One attempt by sales to reach a contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactAttempt {
    pub channel: ContactChannel,
    pub outcome: ContactOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent: String,
}

/// A speed-to-lead clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaClock {
    /// 1 for a lead's first clock, then 2, 3... (a tightened clock keeps its number).
    #[serde(default)]
    pub number: u32,
    pub trigger: SlaTrigger,
    pub started_at: Timestamp,
    pub due_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_touch_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breached_at: Option<Timestamp>,
    /// Attempts since this clock started.
    #[serde(default)]
    pub attempts: u32,
}

/// A person's decision that holds against the engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    pub state: LeadState,
    pub reason: String,
    pub actor: String,
    pub decided_at: Timestamp,
    /// When the decision lapses (a nurturing revisit date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// What the engine would decide while an override holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    pub state: LeadState,
    pub reasons: Vec<Reason>,
    pub made_at: Timestamp,
}
