//! `leadgate.v1.LeadService`: translates requests into use cases and answers back.

use tonic::{Request, Response, Status};

use super::convert::{self as c, finish, validated};
use super::{caller, pb, status};
use crate::app::{App, LeadChange, Submission};
use crate::domain::query::parse_list;
use crate::domain::validation::Violations;

pub struct LeadService {
    app: App,
}

impl LeadService {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::lead_service_server::LeadService for LeadService {
    async fn submit_lead(&self, request: Request<pb::SubmitLeadRequest>) -> Answer<pb::SubmitLeadResponse> {
        let caller = caller(&request);
        let mut req = request.into_inner();
        let mut v = Violations::default();
        let request_id = std::mem::take(&mut req.request_id);
        let key = c::request_key(&mut v, "SubmitLead", &request_id, &req);
        let pb::SubmitLeadRequest {
            contact,
            company,
            source,
            external_reference,
            events,
            request_id: _,
        } = req;
        let contact = c::contact(&mut v, contact);
        let company = c::company(&mut v, company);
        let source = c::source(&mut v, source);
        let external_reference = v.max_chars("external_reference", external_reference.trim(), 128);
        let events = c::events(&mut v, "events", events);
        finish(v)?;
        let submission = Submission {
            profile: crate::domain::values::Profile {
                contact: validated(contact)?,
                company,
                source: validated(source)?,
                external_reference,
            },
            events,
        };
        let change: LeadChange = self.app.submit_lead(&caller, submission, key).await?;
        let (lead, decision) = c::change(&change);
        Ok(Response::new(pb::SubmitLeadResponse {
            lead,
            created: change.created,
            decision,
        }))
    }

    async fn get_lead(&self, request: Request<pb::GetLeadRequest>) -> Answer<pb::Lead> {
        let pb::GetLeadRequest { name } = request.into_inner();
        let mut v = Violations::default();
        let id = c::lead_name(&mut v, "name", &name);
        finish(v)?;
        let view = self.app.get_lead(validated(id)?).await?;
        Ok(Response::new(c::lead(&view)))
    }

    async fn list_leads(&self, request: Request<pb::ListLeadsRequest>) -> Answer<pb::ListLeadsResponse> {
        let pb::ListLeadsRequest {
            page_size,
            page_token,
            filter,
            order_by,
        } = request.into_inner();
        let query = parse_list(
            &filter,
            &order_by,
            &page_token,
            page_size,
            crate::app::LEAD_FILTER_FIELDS,
            crate::app::LEAD_ORDERS,
        )
        .map_err(|(field, e)| crate::app::AppError::invalid(field, e.0))?;
        let page = self.app.list_leads(&query).await?;
        Ok(Response::new(pb::ListLeadsResponse {
            leads: page.leads.iter().map(c::lead).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn record_engagement(
        &self,
        _: Request<pb::RecordEngagementRequest>,
    ) -> Answer<pb::RecordEngagementResponse> {
        Err(status::unimplemented("RecordEngagement"))
    }

    async fn record_discovery_call(
        &self,
        _: Request<pb::RecordDiscoveryCallRequest>,
    ) -> Answer<pb::RecordDiscoveryCallResponse> {
        Err(status::unimplemented("RecordDiscoveryCall"))
    }

    async fn record_contact_attempt(
        &self,
        _: Request<pb::RecordContactAttemptRequest>,
    ) -> Answer<pb::RecordContactAttemptResponse> {
        Err(status::unimplemented("RecordContactAttempt"))
    }

    async fn override_lead_state(
        &self,
        _: Request<pb::OverrideLeadStateRequest>,
    ) -> Answer<pb::OverrideLeadStateResponse> {
        Err(status::unimplemented("OverrideLeadState"))
    }

    async fn release_lead_override(
        &self,
        _: Request<pb::ReleaseLeadOverrideRequest>,
    ) -> Answer<pb::ReleaseLeadOverrideResponse> {
        Err(status::unimplemented("ReleaseLeadOverride"))
    }

    async fn convert_lead(&self, _: Request<pb::ConvertLeadRequest>) -> Answer<pb::ConvertLeadResponse> {
        Err(status::unimplemented("ConvertLead"))
    }

    async fn explain_lead(&self, _: Request<pb::ExplainLeadRequest>) -> Answer<pb::LeadExplanation> {
        Err(status::unimplemented("ExplainLead"))
    }
}
