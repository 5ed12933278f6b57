//! The gRPC surface: generated code, service implementations, proto ↔ domain conversion and
//! error → status mapping. It translates; it never touches SQL.

mod audit;
pub mod convert;
mod leads;
pub mod observe;
mod policy;
mod reports;
pub mod status;

use tokio_util::sync::CancellationToken;
use tonic::Request;

use crate::app::{App, Caller};

/// Code generated from `proto/leadgate/v1`.
pub mod pb {
    #![allow(clippy::all)]
    tonic::include_proto!("leadgate.v1");
}

/// The encoded descriptors of the contract, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/leadgate_descriptor.bin"));

/// The principal recorded for callers when authentication is off.
pub const ANONYMOUS: &str = "anonymous";

/// The caller of a request, as the authentication layer left it in the request's extensions.
pub fn caller<T>(request: &Request<T>) -> Caller {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_else(|| Caller {
            principal: ANONYMOUS.to_owned(),
        })
}

/// The names of leadgate's own services, as health checks and reflection know them.
pub const SERVICE_NAMES: &[&str] = &[
    "leadgate.v1.LeadService",
    "leadgate.v1.AuditService",
    "leadgate.v1.PolicyService",
    "leadgate.v1.ReportService",
];

/// The service servers, ready to add to a router.
pub struct Services {
    pub leads: pb::lead_service_server::LeadServiceServer<leads::LeadService>,
    pub audit: pb::audit_service_server::AuditServiceServer<audit::AuditService>,
    pub policy: pb::policy_service_server::PolicyServiceServer<policy::PolicyService>,
    pub reports: pb::report_service_server::ReportServiceServer<reports::ReportService>,
}

/// Builds every service over the use cases; `stop` ends open streams at shutdown.
pub fn services(app: &App, stop: CancellationToken) -> Services {
    Services {
        leads: pb::lead_service_server::LeadServiceServer::new(leads::LeadService::new(app.clone())),
        audit: pb::audit_service_server::AuditServiceServer::new(audit::AuditService::new(app.clone(), stop)),
        policy: pb::policy_service_server::PolicyServiceServer::new(policy::PolicyService::new(app.clone())),
        reports: pb::report_service_server::ReportServiceServer::new(reports::ReportService::new(
            app.clone(),
        )),
    }
}
