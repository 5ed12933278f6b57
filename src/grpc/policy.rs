//! `leadgate.v1.PolicyService`.

use tonic::{Request, Response};

use super::convert::{self, ensure_valid};
use super::{Answer, pb};
use crate::app::{App, AppError, PolicySelector, PolicyView};
use crate::domain::policy::{MAX_POLICY_BYTES, Policy, PolicyProblem};
use crate::domain::query::{Field, LeadField, NoField, PolicyOrder, parse_filter, parse_list};
use crate::domain::validation::Violations;

pub struct PolicyService {
    app: App,
}

impl PolicyService {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

/// How many simulated leads are returned when the request does not say.
const DEFAULT_SAMPLE: usize = 20;
/// The most simulated leads returned.
const MAX_SAMPLE: usize = 200;

fn policy(view: &PolicyView, with_content: bool) -> pb::Policy {
    let r = &view.record;
    pb::Policy {
        name: format!("policies/{}", r.version),
        version: r.version.clone(),
        display_name: r.name.clone(),
        content: if with_content {
            r.content.clone()
        } else {
            String::new()
        },
        active: view.active,
        activate_time: Some(convert::time_to_proto(r.activated_at)),
    }
}

fn problem(p: &PolicyProblem) -> pb::PolicyProblem {
    pb::PolicyProblem {
        key: p.key.clone(),
        line: p.line as i32,
        column: p.column as i32,
        message: p.message.clone(),
    }
}

/// A candidate document: present and not too large.
fn content(v: &mut Violations, content: &str) {
    if content.trim().is_empty() {
        v.add("content", "is required");
    } else if content.len() > MAX_POLICY_BYTES {
        v.add("content", format!("must be at most {MAX_POLICY_BYTES} bytes"));
    }
}

#[tonic::async_trait]
impl pb::policy_service_server::PolicyService for PolicyService {
    async fn get_policy(&self, request: Request<pb::GetPolicyRequest>) -> Answer<pb::Policy> {
        let pb::GetPolicyRequest { name } = request.into_inner();
        let selector = match name.strip_prefix("policies/") {
            Some("active") => PolicySelector::Active,
            Some(v) if v.len() == 16 && v.chars().all(|c| c.is_ascii_hexdigit()) => {
                PolicySelector::Version(v.to_ascii_lowercase())
            }
            _ => {
                return Err(AppError::invalid(
                    "name",
                    "must be policies/active or policies/{version} (16 hex digits)",
                )
                .into());
            }
        };
        let view = self.app.get_policy(selector).await?;
        Ok(Response::new(policy(&view, true)))
    }

    async fn list_policies(
        &self,
        request: Request<pb::ListPoliciesRequest>,
    ) -> Answer<pb::ListPoliciesResponse> {
        let pb::ListPoliciesRequest {
            page_size,
            page_token,
            filter,
            order_by,
        } = request.into_inner();
        if !filter.trim().is_empty() {
            return Err(AppError::invalid("filter", "policies cannot be filtered; leave it empty").into());
        }
        let query = parse_list::<NoField, PolicyOrder>("", &order_by, &page_token, page_size)
            .map_err(|(field, e)| AppError::invalid(field, e.0))?;
        let (views, next_page_token) = self.app.list_policies(&query).await?;
        Ok(Response::new(pb::ListPoliciesResponse {
            policies: views.iter().map(|v| policy(v, false)).collect(),
            next_page_token,
        }))
    }

    async fn validate_policy(
        &self,
        request: Request<pb::ValidatePolicyRequest>,
    ) -> Answer<pb::ValidatePolicyResponse> {
        let pb::ValidatePolicyRequest { content: text } = request.into_inner();
        let mut v = Violations::default();
        content(&mut v, &text);
        ensure_valid(v)?;
        Ok(Response::new(match Policy::parse(&text) {
            Ok(candidate) => pb::ValidatePolicyResponse {
                valid: true,
                version: candidate.version,
                problems: Vec::new(),
            },
            Err(problems) => pb::ValidatePolicyResponse {
                valid: false,
                version: String::new(),
                problems: problems.iter().map(problem).collect(),
            },
        }))
    }

    async fn simulate_policy(
        &self,
        request: Request<pb::SimulatePolicyRequest>,
    ) -> Answer<pb::SimulatePolicyResponse> {
        let pb::SimulatePolicyRequest {
            content: text,
            filter,
            sample_size,
        } = request.into_inner();
        let mut v = Violations::default();
        content(&mut v, &text);
        let candidate = if v.is_empty() {
            match Policy::parse(&text) {
                Ok(candidate) => Some(candidate),
                Err(problems) => {
                    for p in problems {
                        v.add("content", p.to_string());
                    }
                    None
                }
            }
        } else {
            None
        };
        let filter = v.check("filter", parse_filter(&filter, LeadField::ALL).map_err(|e| e.0));
        let sample_size = match sample_size {
            n if n < 0 => {
                v.add("sample_size", "must not be negative");
                0
            }
            0 => DEFAULT_SAMPLE,
            n => (n as usize).min(MAX_SAMPLE),
        };
        ensure_valid(v)?;
        let (Some(candidate), Some(filter)) = (candidate, filter) else {
            return Err(AppError::Internal("a validated policy or filter is missing".into()).into());
        };
        let sim = self.app.simulate_policy(&candidate, filter, sample_size).await?;
        Ok(Response::new(pb::SimulatePolicyResponse {
            candidate_version: sim.candidate_version,
            active_version: sim.active_version,
            leads_evaluated: sim.leads_evaluated,
            leads_changed: sim.leads_changed,
            transitions: sim
                .transitions
                .iter()
                .map(|((from, to), n)| pb::StateTransitionCount {
                    from_state: convert::EnumMapping::to_proto(*from),
                    to_state: convert::EnumMapping::to_proto(*to),
                    leads: *n,
                })
                .collect(),
            samples: sim
                .samples
                .iter()
                .map(|s| pb::SimulatedLead {
                    lead: s.lead.name(),
                    current_state: convert::EnumMapping::to_proto(s.current_state),
                    simulated_state: convert::EnumMapping::to_proto(s.simulated_state),
                    current_scores: Some(convert::scores(&s.current_scores)),
                    simulated_scores: Some(convert::scores(&s.simulated_scores)),
                    reasons: convert::reasons(&s.reasons),
                })
                .collect(),
        }))
    }
}
