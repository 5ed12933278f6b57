//! The bare tonic server: gRPC health checks and, given a lead, GetLead answering with it,
//! and nothing else: what gRPC itself costs under the benchmark's load.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use leadgate::grpc::pb;

use crate::Args;
use crate::measure::{Figures, drive, measured};
use crate::scenarios::health_check;
use crate::servers::Server;

/// A bare tonic server answering health checks, under the same load: the cost of gRPC itself.
pub async fn bare_tonic(args: &Args) -> Figures {
    let server = Server::bare(None);
    server.serving(Instant::now()).await;
    let channels = server.channels(4).await;
    measured(
        &server,
        drive(
            &channels,
            args.concurrency,
            args.warmup,
            args.duration,
            health_check,
        ),
    )
    .await
}

/// The bare server's LeadService: GetLead answers with one canned lead, nothing else exists.
struct CannedLeads(pb::Lead);

/// The LeadService impl: GetLead answers, the other methods are unimplemented. (A macro around
/// the whole impl, so that `async_trait` sees the expanded methods.)
macro_rules! canned_lead_service {
    ($($method:ident($request:ty) -> $response:ty;)*) => {
        #[tonic::async_trait]
        impl pb::lead_service_server::LeadService for CannedLeads {
            async fn get_lead(
                &self,
                _: tonic::Request<pb::GetLeadRequest>,
            ) -> Result<tonic::Response<pb::Lead>, tonic::Status> {
                Ok(tonic::Response::new(self.0.clone()))
            }
            $(
                async fn $method(
                    &self,
                    _: tonic::Request<$request>,
                ) -> Result<tonic::Response<$response>, tonic::Status> {
                    Err(tonic::Status::unimplemented("not in the bare server"))
                }
            )*
        }
    };
}

canned_lead_service! {
    submit_lead(pb::SubmitLeadRequest) -> pb::SubmitLeadResponse;
    list_leads(pb::ListLeadsRequest) -> pb::ListLeadsResponse;
    record_engagement(pb::RecordEngagementRequest) -> pb::RecordEngagementResponse;
    record_discovery_call(pb::RecordDiscoveryCallRequest) -> pb::RecordDiscoveryCallResponse;
    record_contact_attempt(pb::RecordContactAttemptRequest) -> pb::RecordContactAttemptResponse;
    override_lead_state(pb::OverrideLeadStateRequest) -> pb::OverrideLeadStateResponse;
    release_lead_override(pb::ReleaseLeadOverrideRequest) -> pb::ReleaseLeadOverrideResponse;
    convert_lead(pb::ConvertLeadRequest) -> pb::ConvertLeadResponse;
    update_lead(pb::UpdateLeadRequest) -> pb::Lead;
    merge_leads(pb::MergeLeadsRequest) -> pb::MergeLeadsResponse;
    import_leads(pb::ImportLeadsRequest) -> pb::ImportLeadsResponse;
    explain_lead(pb::ExplainLeadRequest) -> pb::LeadExplanation;
    erase_lead(pb::EraseLeadRequest) -> pb::EraseLeadResponse;
    export_lead_data(pb::ExportLeadDataRequest) -> pb::ExportLeadDataResponse;
}

/// Serves the bare server's health checks and, given `lead_file`, its canned GetLead.
pub async fn serve(listen: std::net::SocketAddr, lead_file: Option<PathBuf>) -> ExitCode {
    use prost::Message;
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let leads = lead_file.map(|path| {
        let bytes = std::fs::read(path).expect("the canned lead");
        let lead = pb::Lead::decode(bytes.as_slice()).expect("a protobuf Lead");
        pb::lead_service_server::LeadServiceServer::new(CannedLeads(lead))
    });
    let served = tonic::transport::Server::builder()
        .add_service(service)
        .add_optional_service(leads)
        .serve(listen)
        .await;
    if served.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
