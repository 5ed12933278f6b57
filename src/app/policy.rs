//! Policy use cases: read the policies kept, check a candidate, simulate it on stored leads.

use std::collections::BTreeMap;

use super::{App, AppError, AppResult, now};
use crate::domain::engine;
use crate::domain::facts::{Reason, Scores};
use crate::domain::lifecycle::LeadState;
use crate::domain::policy::Policy;
use crate::domain::query::{Filter, LeadField, LeadOrder, ListQuery, NoField, Order, PolicyOrder};
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

    pub async fn list_policies(
        &self,
        query: &ListQuery<NoField, PolicyOrder>,
    ) -> AppResult<(Vec<PolicyView>, String)> {
        let active = self.store.active_policy_version().await?;
        let mut records = self.store.list_policies(query).await?;
        let token = query.page(&mut records, |last| {
            query.order.key(last.activated_at, &last.version)
        });
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
        filter: Filter<LeadField>,
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
        let mut query = ListQuery::new(filter, LeadOrder::ALL[0], SIMULATION_PAGE);
        loop {
            let mut leads = self.store.list_leads(&query).await?;
            let order = query.order;
            let more = query.advance(&mut leads, |last| order.key(last));
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
            if !more {
                return Ok(simulation);
            }
        }
    }
}
