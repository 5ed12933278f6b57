//! The gRPC surface: generated code, service implementations, proto ↔ domain conversion and
//! error → status mapping. It translates; it never touches SQL.

mod audit;
pub(crate) mod codec;
pub mod convert;
pub(crate) mod guard;
mod leads;
pub(crate) mod observe;
mod policy;
mod reports;
pub(crate) mod status;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::app::{Actor, App};
use crate::auth::ANONYMOUS;

/// Code generated from `proto/leadgate/v1`.
pub mod pb {
    #![allow(clippy::all)]
    tonic::include_proto!("leadgate.v1");
}

/// Every RPC of the contract, named once: `Rpc`, generated from the protos by build.rs.
mod rpc {
    include!(concat!(env!("OUT_DIR"), "/leadgate_rpc.rs"));
}
pub use rpc::Rpc;

/// The encoded descriptors of the contract, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/leadgate_descriptor.bin"));

/// What every RPC handler answers.
type Answer<T> = Result<Response<T>, Status>;

/// The actor of a request: its caller, as the guard left it in the request's extensions once the
/// caller's identity was authenticated and its roles checked.
pub fn actor<T>(request: &Request<T>) -> Actor {
    request
        .extensions()
        .get::<Actor>()
        .cloned()
        .unwrap_or_else(|| Actor {
            principal: ANONYMOUS.to_owned(),
        })
}

/// The names of leadgate's own services, as health checks and reflection know them.
pub const SERVICE_NAMES: &[&str] = Rpc::SERVICES;

/// The service servers, ready to add to a router.
pub struct Services {
    pub leads: pb::lead_service_server::LeadServiceServer<leads::LeadService>,
    pub audit: pb::audit_service_server::AuditServiceServer<audit::AuditService>,
    pub policy: pb::policy_service_server::PolicyServiceServer<policy::PolicyService>,
    pub reports: pb::report_service_server::ReportServiceServer<reports::ReportService>,
}

/// How many streams the server keeps open, and how long it waits for their consumers.
#[derive(Clone, Debug)]
pub struct StreamLimits {
    /// Streams open at once; more are refused with RESOURCE_EXHAUSTED (`TOO_MANY_STREAMS`).
    pub max_open_streams: usize,
    /// A consumer that takes nothing for this long while entries wait is ended (`SLOW_CONSUMER`).
    pub slow_consumer_timeout: Duration,
    /// Ends every open stream when the server shuts down.
    pub stop: CancellationToken,
}

/// Builds every service over the use cases, with its stream limits. Messages are limited to
/// `max_in` bytes in and `max_out` bytes out.
pub fn services(app: &App, streams: &StreamLimits, max_in: usize, max_out: usize) -> Services {
    use pb::{
        audit_service_server as a, lead_service_server as l, policy_service_server as p,
        report_service_server as r,
    };
    Services {
        leads: l::LeadServiceServer::new(leads::LeadService::new(app.clone()))
            .max_decoding_message_size(max_in)
            .max_encoding_message_size(max_out),
        audit: a::AuditServiceServer::new(audit::AuditService::new(app.clone(), streams))
            .max_decoding_message_size(max_in)
            .max_encoding_message_size(max_out),
        policy: p::PolicyServiceServer::new(policy::PolicyService::new(app.clone()))
            .max_decoding_message_size(max_in)
            .max_encoding_message_size(max_out),
        reports: r::ReportServiceServer::new(reports::ReportService::new(app.clone()))
            .max_decoding_message_size(max_in)
            .max_encoding_message_size(max_out),
    }
}
