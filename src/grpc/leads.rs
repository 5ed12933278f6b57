//! `leadgate.v1.LeadService`: translates requests into use cases and answers back.

use tonic::{Request, Response};

use super::convert::{self, ensure_valid, validated};
use super::{Answer, caller, pb};
use crate::app::{App, LeadChange};
use crate::domain::engine::{Command, OverrideRequest};
use crate::domain::lifecycle::LeadState;
use crate::domain::query::{LeadField, LeadOrder, parse_list};
use crate::domain::validation::Violations;
use crate::domain::values::DisqualificationReason;

pub struct LeadService {
    app: App,
}

impl LeadService {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::lead_service_server::LeadService for LeadService {
    async fn submit_lead(&self, request: Request<pb::SubmitLeadRequest>) -> Answer<pb::SubmitLeadResponse> {
        let caller = caller(&request);
        let (submission, key) = convert::submission(request.into_inner())?;
        let change: LeadChange = self.app.submit_lead(&caller, submission, key).await?;
        let (lead, decision) = convert::change(&change);
        Ok(Response::new(pb::SubmitLeadResponse {
            lead,
            created: change.created,
            decision,
        }))
    }

    async fn get_lead(&self, request: Request<pb::GetLeadRequest>) -> Answer<pb::Lead> {
        let pb::GetLeadRequest { name } = request.into_inner();
        let mut v = Violations::default();
        let id = convert::lead_name(&mut v, "name", &name);
        ensure_valid(v)?;
        let view = self.app.get_lead(validated(id)?).await?;
        Ok(Response::new(convert::lead(&view)))
    }

    async fn list_leads(&self, request: Request<pb::ListLeadsRequest>) -> Answer<pb::ListLeadsResponse> {
        let pb::ListLeadsRequest {
            page_size,
            page_token,
            filter,
            order_by,
        } = request.into_inner();
        let query = parse_list::<LeadField, LeadOrder>(&filter, &order_by, &page_token, page_size)
            .map_err(|(field, e)| crate::app::AppError::invalid(field, e.0))?;
        let page = self.app.list_leads(&query).await?;
        Ok(Response::new(pb::ListLeadsResponse {
            leads: page.leads.iter().map(convert::lead).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn record_engagement(
        &self,
        request: Request<pb::RecordEngagementRequest>,
    ) -> Answer<pb::RecordEngagementResponse> {
        let caller = caller(&request);
        let mut req = request.into_inner();
        let mut v = Violations::default();
        let request_id = std::mem::take(&mut req.request_id);
        let key = convert::request_key(&mut v, "RecordEngagement", &request_id, &req);
        let pb::RecordEngagementRequest {
            name,
            events,
            etag,
            request_id: _,
        } = req;
        let id = convert::lead_name(&mut v, "name", &name);
        if events.is_empty() {
            v.add("events", "must hold at least one event");
        }
        let events = convert::events(&mut v, "events", events);
        ensure_valid(v)?;
        let command = Command::RecordEngagement { events };
        let change = self
            .app
            .change_lead(
                &caller,
                validated(id)?,
                convert::optional_etag(etag),
                key,
                command,
            )
            .await?;
        let (lead, decision) = convert::change(&change);
        Ok(Response::new(pb::RecordEngagementResponse { lead, decision }))
    }

    async fn record_discovery_call(
        &self,
        request: Request<pb::RecordDiscoveryCallRequest>,
    ) -> Answer<pb::RecordDiscoveryCallResponse> {
        let caller = caller(&request);
        let mut req = request.into_inner();
        let mut v = Violations::default();
        let request_id = std::mem::take(&mut req.request_id);
        let key = convert::request_key(&mut v, "RecordDiscoveryCall", &request_id, &req);
        let pb::RecordDiscoveryCallRequest {
            name,
            findings,
            etag,
            request_id: _,
        } = req;
        let id = convert::lead_name(&mut v, "name", &name);
        let findings = convert::discovery_call(&mut v, findings);
        ensure_valid(v)?;
        let command = Command::RecordDiscoveryCall(findings);
        let change = self
            .app
            .change_lead(
                &caller,
                validated(id)?,
                convert::optional_etag(etag),
                key,
                command,
            )
            .await?;
        let (lead, decision) = convert::change(&change);
        Ok(Response::new(pb::RecordDiscoveryCallResponse { lead, decision }))
    }

    async fn record_contact_attempt(
        &self,
        request: Request<pb::RecordContactAttemptRequest>,
    ) -> Answer<pb::RecordContactAttemptResponse> {
        let caller = caller(&request);
        let mut req = request.into_inner();
        let mut v = Violations::default();
        let request_id = std::mem::take(&mut req.request_id);
        let key = convert::request_key(&mut v, "RecordContactAttempt", &request_id, &req);
        let pb::RecordContactAttemptRequest {
            name,
            attempt,
            etag,
            request_id: _,
        } = req;
        let id = convert::lead_name(&mut v, "name", &name);
        let attempt = convert::contact_attempt(&mut v, attempt);
        ensure_valid(v)?;
        let command = Command::RecordContactAttempt(validated(attempt)?);
        let change = self
            .app
            .change_lead(
                &caller,
                validated(id)?,
                convert::optional_etag(etag),
                key,
                command,
            )
            .await?;
        let (lead, decision) = convert::change(&change);
        Ok(Response::new(pb::RecordContactAttemptResponse { lead, decision }))
    }

    async fn override_lead_state(
        &self,
        request: Request<pb::OverrideLeadStateRequest>,
    ) -> Answer<pb::OverrideLeadStateResponse> {
        let caller = caller(&request);
        let mut req = request.into_inner();
        let mut v = Violations::default();
        let request_id = std::mem::take(&mut req.request_id);
        let key = convert::request_key(&mut v, "OverrideLeadState", &request_id, &req);
        let pb::OverrideLeadStateRequest {
            name,
            state,
            reason,
            disqualification_reason,
            revisit_time,
            etag,
            request_id: _,
        } = req;
        let id = convert::lead_name(&mut v, "name", &name);
        let state: Option<LeadState> = convert::required_enum(&mut v, "state", state);
        let reason = convert::required_multiline_text(&mut v, "reason", reason, 1000);
        let disqualification: Option<DisqualificationReason> =
            convert::optional_enum(&mut v, "disqualification_reason", disqualification_reason);
        match (state, disqualification) {
            (Some(LeadState::Disqualified), None) => {
                v.add("disqualification_reason", "is required to disqualify")
            }
            (Some(s), Some(_)) if s != LeadState::Disqualified => {
                v.add("disqualification_reason", "is only for DISQUALIFIED")
            }
            _ => {}
        }
        let revisit_at = revisit_time.and_then(|t| v.check("revisit_time", convert::time_from_proto(&t)));
        if revisit_at.is_some() && state.is_some_and(|s| s != LeadState::Nurturing) {
            v.add("revisit_time", "is only for NURTURING");
        }
        ensure_valid(v)?;
        let command = Command::Override(OverrideRequest {
            state: validated(state)?,
            reason,
            disqualification,
            revisit_at,
        });
        let change = self
            .app
            .change_lead(
                &caller,
                validated(id)?,
                convert::optional_etag(etag),
                key,
                command,
            )
            .await?;
        let (lead, decision) = convert::change(&change);
        Ok(Response::new(pb::OverrideLeadStateResponse { lead, decision }))
    }

    async fn release_lead_override(
        &self,
        request: Request<pb::ReleaseLeadOverrideRequest>,
    ) -> Answer<pb::ReleaseLeadOverrideResponse> {
        let caller = caller(&request);
        let mut req = request.into_inner();
        let mut v = Violations::default();
        let request_id = std::mem::take(&mut req.request_id);
        let key = convert::request_key(&mut v, "ReleaseLeadOverride", &request_id, &req);
        let pb::ReleaseLeadOverrideRequest {
            name,
            reason,
            etag,
            request_id: _,
        } = req;
        let id = convert::lead_name(&mut v, "name", &name);
        let reason = convert::required_multiline_text(&mut v, "reason", reason, 1000);
        ensure_valid(v)?;
        let command = Command::ReleaseOverride { reason };
        let change = self
            .app
            .change_lead(
                &caller,
                validated(id)?,
                convert::optional_etag(etag),
                key,
                command,
            )
            .await?;
        let (lead, decision) = convert::change(&change);
        Ok(Response::new(pb::ReleaseLeadOverrideResponse { lead, decision }))
    }

    async fn convert_lead(
        &self,
        request: Request<pb::ConvertLeadRequest>,
    ) -> Answer<pb::ConvertLeadResponse> {
        let caller = caller(&request);
        let mut req = request.into_inner();
        let mut v = Violations::default();
        let request_id = std::mem::take(&mut req.request_id);
        let key = convert::request_key(&mut v, "ConvertLead", &request_id, &req);
        let pb::ConvertLeadRequest {
            name,
            opportunity_reference,
            etag,
            request_id: _,
        } = req;
        let id = convert::lead_name(&mut v, "name", &name);
        let opportunity_reference =
            convert::required_text(&mut v, "opportunity_reference", opportunity_reference, 128);
        ensure_valid(v)?;
        let command = Command::Convert {
            opportunity_reference,
        };
        let change = self
            .app
            .change_lead(
                &caller,
                validated(id)?,
                convert::optional_etag(etag),
                key,
                command,
            )
            .await?;
        let (lead, decision) = convert::change(&change);
        Ok(Response::new(pb::ConvertLeadResponse { lead, decision }))
    }

    async fn explain_lead(&self, request: Request<pb::ExplainLeadRequest>) -> Answer<pb::LeadExplanation> {
        let pb::ExplainLeadRequest { name } = request.into_inner();
        let mut v = Violations::default();
        let id = convert::lead_name(&mut v, "name", &name);
        ensure_valid(v)?;
        let (view, explanation) = self.app.explain_lead(validated(id)?).await?;
        Ok(Response::new(convert::explanation(&view, &explanation)))
    }
}
