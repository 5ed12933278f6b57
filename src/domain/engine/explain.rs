//! Why a lead has its scores and its state, line by line, for people and programs.

use std::fmt::Write;

use super::{Target, recommend};
use crate::domain::facts::{Points, Scores};
use crate::domain::lead::Lead;
use crate::domain::policy::Policy;
use crate::domain::scoring::{self, ScoreLine};
use crate::domain::values::Timestamp;

/// A lead's scores and the engine's decision, line by line, at one time.
#[derive(Clone, Debug)]
pub struct Explanation {
    pub evaluated_at: Timestamp,
    pub policy_version: String,
    pub scores: Scores,
    pub fit_lines: Vec<ScoreLine>,
    pub engagement_lines: Vec<ScoreLine>,
    /// Where the facts put the lead (an override in force may hold it elsewhere).
    pub target: Target,
}

/// Explains how the engine sees a lead at `now` under `policy`.
pub fn explain(lead: &Lead, policy: &Policy, now: Timestamp) -> Explanation {
    let rules = &policy.rules;
    let scores = scoring::score(&lead.profile, &lead.events, rules, now);
    Explanation {
        evaluated_at: now,
        policy_version: policy.version.clone(),
        fit_lines: scoring::explain_fit(&lead.profile, rules),
        engagement_lines: scoring::explain_engagement(&lead.events, rules, now),
        target: recommend(lead, &scores, rules, now),
        scores,
    }
}

fn signed(points: Points) -> String {
    if points.0 >= 0 {
        format!("+{points}")
    } else {
        points.to_string()
    }
}

fn write_lines(out: &mut String, lines: &[ScoreLine]) {
    if lines.is_empty() {
        out.push_str("  (nothing)\n");
    }
    for line in lines {
        let _ = writeln!(
            out,
            "  {:>8}  {:<34} {}  ({})",
            signed(line.points),
            line.rule_id,
            line.input,
            line.reason
        );
    }
}

impl Explanation {
    /// The explanation as plain text.
    pub fn render(&self, lead: &Lead) -> String {
        let s = &self.scores;
        let mut out = String::new();
        let at = self
            .evaluated_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let _ = writeln!(out, "{} at {at}, policy {}", lead.id, self.policy_version);
        let _ = writeln!(out, "\nFit: {} points, grade {}", s.fit, s.grade);
        write_lines(&mut out, &self.fit_lines);
        let _ = writeln!(out, "\nEngagement: {} points", s.engagement);
        write_lines(&mut out, &self.engagement_lines);
        let _ = writeln!(
            out,
            "\nCombined: {} points (threshold {})",
            s.combined, s.threshold
        );
        let _ = writeln!(out, "\nState: {}", lead.state);
        let _ = writeln!(out, "The engine decides: {}", self.target.state);
        for reason in &self.target.reasons {
            let _ = writeln!(out, "  {}: {}", reason.rule_id, reason.message);
        }
        if let Some(o) = &lead.human_override {
            let _ = writeln!(
                out,
                "Override in force: {} by {} ({})",
                o.state, o.actor, o.reason
            );
        }
        out
    }
}
