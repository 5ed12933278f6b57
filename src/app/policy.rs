//! Policy use cases: read the policies kept, check a candidate, simulate it on stored leads.

use std::collections::BTreeMap;

use super::leads::{LEAD_ORDERS, sort_key};
use super::{App, AppError, AppResult, now};
use crate::domain::engine;
use crate::domain::facts::{Reason, Scores};
use crate::domain::lifecycle::LeadState;
use crate::domain::policy::Policy;
use crate::domain::query::{Filter, KeyType, ListQuery, OrderSpec, SqlValue};
use crate::domain::values::LeadId;
use crate::store::PolicyRecord;

/// Which policy a request names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicySelector {
    /// The version activated last.
    Active,
    Version(String),
}

/// A stored policy and whether it is the active one.
#[derive(Clone, Debug)]
pub struct PolicyView {
    pub record: PolicyRecord,
    pub active: bool,
}

/// The orders ListPolicies accepts.
pub const POLICY_ORDERS: &[OrderSpec] = &[OrderSpec {
    name: "activate_time desc",
    column: "activate_time",
    tie_break: Some("version"),
    key_types: &[KeyType::Int, KeyType::Text],
    descending: true,
}];

/// One lead under a candidate policy.
#[derive(Clone, Debug)]
pub struct SimulatedLead {
    pub lead: LeadId,
    pub current_state: LeadState,
    pub simulated_state: LeadState,
    pub current_scores: Scores,
    pub simulated_scores: Scores,
    pub reasons: Vec<Reason>,
}

/// What a candidate policy would do to the stored leads.
#[derive(Clone, Debug)]
pub struct Simulation {
    pub candidate_version: String,
    pub active_version: String,
    pub leads_evaluated: i64,
    pub leads_changed: i64,
    pub transitions: BTreeMap<(LeadState, LeadState), i64>,
    pub samples: Vec<SimulatedLead>,
}

/// Leads read per page while simulating.
const SIMULATION_PAGE: usize = 500;

impl App {
    pub async fn get_policy(&self, selector: PolicySelector) -> AppResult<PolicyView> {
        let active = self.store.active_policy_version().await?;
        let version = match selector {
            PolicySelector::Active => active
                .clone()
                .ok_or_else(|| AppError::NotFound("no policy is active yet".into()))?,
            PolicySelector::Version(v) => v,
        };
        let record = self
            .store
            .get_policy(&version)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("policy {version} was never activated")))?;
        Ok(PolicyView {
            active: active.as_deref() == Some(record.version.as_str()),
            record,
        })
    }

    pub async fn list_policies(&self, query: &ListQuery) -> AppResult<(Vec<PolicyView>, String)> {
        let active = self.store.active_policy_version().await?;
        let mut records = self.store.list_policies(query).await?;
        let token = if records.len() > query.limit {
            records.truncate(query.limit);
            records
                .last()
                .map(|r| {
                    query.token_after(vec![
                        SqlValue::Int(r.activated_at.timestamp_micros()),
                        SqlValue::Text(r.version.clone()),
                    ])
                })
                .unwrap_or_default()
        } else {
            String::new()
        };
        let views = records
            .into_iter()
            .map(|record| PolicyView {
                active: active.as_deref() == Some(record.version.as_str()),
                record,
            })
            .collect();
        Ok((views, token))
    }

    /// Re-evaluates the leads the filter selects under `candidate`, as the engine would if the
    /// candidate were active: overrides and the lifecycle hold leads where they are, and their
    /// reasons then say what the candidate recommends. Changes nothing.
    pub async fn simulate_policy(
        &self,
        candidate: &Policy,
        filter: Filter,
        sample_size: usize,
    ) -> AppResult<Simulation> {
        let at = now();
        let mut simulation = Simulation {
            candidate_version: candidate.version.clone(),
            active_version: self.policy.version.clone(),
            leads_evaluated: 0,
            leads_changed: 0,
            transitions: BTreeMap::new(),
            samples: Vec::new(),
        };
        let mut query = ListQuery::new(filter, &LEAD_ORDERS[0], SIMULATION_PAGE);
        loop {
            let mut leads = self.store.list_leads(&query).await?;
            let more = leads.len() > SIMULATION_PAGE;
            leads.truncate(SIMULATION_PAGE);
            for lead in &leads {
                let (state, scores, reasons) = engine::simulate(lead, candidate, at);
                simulation.leads_evaluated += 1;
                *simulation.transitions.entry((lead.state, state)).or_default() += 1;
                if state != lead.state {
                    simulation.leads_changed += 1;
                    if simulation.samples.len() < sample_size {
                        simulation.samples.push(SimulatedLead {
                            lead: lead.id,
                            current_state: lead.state,
                            simulated_state: state,
                            current_scores: lead.scores.clone(),
                            simulated_scores: scores,
                            reasons,
                        });
                    }
                }
            }
            match (more, leads.last()) {
                (true, Some(last)) => query.after = Some(sort_key(last, query.order)),
                _ => return Ok(simulation),
            }
        }
    }
}
