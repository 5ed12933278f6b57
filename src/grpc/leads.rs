//! `leadgate.v1.LeadService`: translates requests into use cases and answers back.

use tonic::{Request, Response};

use super::convert::{self, LeadChangeResponse, LeadCommand, LeadCommandRequest, ensure_valid, validated};
use super::{Answer, actor, pb};
use crate::app::{App, ExportSubject, LeadChange};
use crate::domain::query::{LeadField, LeadOrder, parse_list};
use crate::domain::validation::Violations;
use crate::domain::values::Email;

pub struct LeadService {
    app: App,
}

impl LeadService {
    pub fn new(app: App) -> Self {
        Self { app }
    }

    /// Serves an RPC that changes one existing lead: the request is validated whole (every bad
    /// field reported at once), the change is made for the caller, and the lead and the
    /// engine's decision are answered.
    async fn change<R: LeadCommandRequest, A: LeadChangeResponse>(&self, request: Request<R>) -> Answer<A> {
        let actor = actor(&request);
        let (LeadCommand { lead, etag, command }, key) = convert::lead_command(request.into_inner())?;
        let change = self.app.change_lead(&actor, lead, etag, key, command).await?;
        Ok(Response::new(A::from_change(&change)))
    }
}

#[tonic::async_trait]
impl pb::lead_service_server::LeadService for LeadService {
    async fn submit_lead(&self, request: Request<pb::SubmitLeadRequest>) -> Answer<pb::SubmitLeadResponse> {
        let actor = actor(&request);
        let (submission, key) = convert::submission(request.into_inner())?;
        let change: LeadChange = self.app.submit_lead(&actor, submission, key).await?;
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
        self.change(request).await
    }

    async fn record_discovery_call(
        &self,
        request: Request<pb::RecordDiscoveryCallRequest>,
    ) -> Answer<pb::RecordDiscoveryCallResponse> {
        self.change(request).await
    }

    async fn record_contact_attempt(
        &self,
        request: Request<pb::RecordContactAttemptRequest>,
    ) -> Answer<pb::RecordContactAttemptResponse> {
        self.change(request).await
    }

    async fn override_lead_state(
        &self,
        request: Request<pb::OverrideLeadStateRequest>,
    ) -> Answer<pb::OverrideLeadStateResponse> {
        self.change(request).await
    }

    async fn release_lead_override(
        &self,
        request: Request<pb::ReleaseLeadOverrideRequest>,
    ) -> Answer<pb::ReleaseLeadOverrideResponse> {
        self.change(request).await
    }

    async fn convert_lead(
        &self,
        request: Request<pb::ConvertLeadRequest>,
    ) -> Answer<pb::ConvertLeadResponse> {
        self.change(request).await
    }

    async fn update_lead(&self, request: Request<pb::UpdateLeadRequest>) -> Answer<pb::Lead> {
        self.change(request).await
    }

    async fn erase_lead(&self, request: Request<pb::EraseLeadRequest>) -> Answer<pb::EraseLeadResponse> {
        let actor = actor(&request);
        let ((id, reason), key) = convert::erasure(request.into_inner())?;
        let erased = self.app.erase_lead(&actor, id, reason, key).await?;
        Ok(Response::new(pb::EraseLeadResponse {
            lead: Some(convert::lead(&erased.change.lead)),
            erased: erased.erased_now,
        }))
    }

    async fn export_lead_data(
        &self,
        request: Request<pb::ExportLeadDataRequest>,
    ) -> Answer<pb::ExportLeadDataResponse> {
        let pb::ExportLeadDataRequest { name, email } = request.into_inner();
        let mut v = Violations::default();
        let subject = match (name.is_empty(), email.is_empty()) {
            (false, true) => convert::lead_name(&mut v, "name", &name).map(ExportSubject::Lead),
            (true, false) => match Email::parse(&email) {
                Ok(email) => Some(ExportSubject::Email(email)),
                Err(problem) => {
                    v.add("email", problem);
                    None
                }
            },
            (true, true) => {
                v.add("name", "is required (or give email)");
                None
            }
            (false, false) => {
                v.add("email", "must be empty when name is given");
                None
            }
        };
        ensure_valid(v)?;
        let export = self.app.export_lead_data(validated(subject)?).await?;
        let data = serde_json::to_string_pretty(&export)
            .map_err(|e| crate::app::AppError::Internal(format!("export: {e}")))?;
        Ok(Response::new(pb::ExportLeadDataResponse {
            lead: export.lead.id.name(),
            content_type: "application/json".into(),
            data,
        }))
    }

    async fn merge_leads(&self, request: Request<pb::MergeLeadsRequest>) -> Answer<pb::MergeLeadsResponse> {
        let actor = actor(&request);
        let (merge, key) = convert::merge_request(request.into_inner())?;
        let change = self.app.merge_leads(&actor, merge, key).await?;
        Ok(Response::new(pb::MergeLeadsResponse::from_change(&change)))
    }

    async fn import_leads(
        &self,
        request: Request<pb::ImportLeadsRequest>,
    ) -> Answer<pb::ImportLeadsResponse> {
        let actor = actor(&request);
        let (rows, validate_only) = convert::import_rows(request.into_inner())?;
        let results = self.app.import_leads(&actor, rows, validate_only).await?;
        Ok(Response::new(convert::import_results(&results)))
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
