//! Services of the v1 contract whose behaviour is not built yet: they answer UNIMPLEMENTED with
//! a message, so clients generated from the contract already work against this server.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{pb, status::unimplemented};

type Answer<T> = Result<Response<T>, Status>;

pub struct AuditService;

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for AuditService {
    type WatchDecisionsStream =
        Pin<Box<dyn Stream<Item = Result<pb::WatchDecisionsResponse, Status>> + Send>>;

    async fn list_audit_events(
        &self,
        _: Request<pb::ListAuditEventsRequest>,
    ) -> Answer<pb::ListAuditEventsResponse> {
        Err(unimplemented("ListAuditEvents"))
    }
    async fn verify_audit_trail(
        &self,
        _: Request<pb::VerifyAuditTrailRequest>,
    ) -> Answer<pb::VerifyAuditTrailResponse> {
        Err(unimplemented("VerifyAuditTrail"))
    }
    async fn get_audit_digest(&self, _: Request<pb::GetAuditDigestRequest>) -> Answer<pb::AuditDigest> {
        Err(unimplemented("GetAuditDigest"))
    }
    async fn watch_decisions(
        &self,
        _: Request<pb::WatchDecisionsRequest>,
    ) -> Answer<Self::WatchDecisionsStream> {
        Err(unimplemented("WatchDecisions"))
    }
}

pub struct ReportService;

#[tonic::async_trait]
impl pb::report_service_server::ReportService for ReportService {
    async fn get_funnel_report(&self, _: Request<pb::GetFunnelReportRequest>) -> Answer<pb::FunnelReport> {
        Err(unimplemented("GetFunnelReport"))
    }
}
