//! Client commands for people: they talk to a running server over gRPC and print tables, CSV or
//! JSON lines.

mod audit;
mod format;
mod funnel;
pub mod import;
mod leads;

use std::process::ExitCode;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::Channel;

use crate::cli::args::ClientArgs;

pub use audit::audit;
pub use funnel::funnel;
pub use leads::leads;

/// Adds the bearer token, if any, to every call.
#[derive(Clone)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl Interceptor for Auth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request.metadata_mut().insert("authorization", token.clone());
        }
        Ok(request)
    }
}

type Intercepted = tonic::service::interceptor::InterceptedService<Channel, Auth>;

/// A connection to the server, with the caller's credentials.
pub struct Connection {
    channel: Channel,
    auth: Auth,
}

impl Connection {
    pub async fn open(args: &ClientArgs) -> Result<Self, String> {
        let auth = match &args.token {
            Some(token) => {
                Auth(Some(format!("Bearer {}", token.expose()).parse().map_err(
                    |_| "the token has characters a header cannot carry".to_string(),
                )?))
            }
            None => Auth(None),
        };
        let endpoint = Channel::from_shared(args.server.clone())
            .map_err(|e| format!("invalid --server {:?}: {e}", args.server))?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot reach leadgate at {}: {e}", args.server))?;
        Ok(Self { channel, auth })
    }

    pub fn leads(&self) -> crate::grpc::pb::lead_service_client::LeadServiceClient<Intercepted> {
        crate::grpc::pb::lead_service_client::LeadServiceClient::with_interceptor(
            self.channel.clone(),
            self.auth.clone(),
        )
    }

    pub fn audit(&self) -> crate::grpc::pb::audit_service_client::AuditServiceClient<Intercepted> {
        crate::grpc::pb::audit_service_client::AuditServiceClient::with_interceptor(
            self.channel.clone(),
            self.auth.clone(),
        )
    }

    pub fn reports(&self) -> crate::grpc::pb::report_service_client::ReportServiceClient<Intercepted> {
        crate::grpc::pb::report_service_client::ReportServiceClient::with_interceptor(
            self.channel.clone(),
            self.auth.clone(),
        )
    }
}

/// `leadgate health`: exits 0 when the server reports SERVING for `service`.
pub async fn health(args: ClientArgs, service: String) -> ExitCode {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let connection = match Connection::open(&args).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match HealthClient::new(connection.channel.clone())
        .check(HealthCheckRequest { service })
        .await
    {
        Ok(answer) if answer.get_ref().status == ServingStatus::Serving as i32 => {
            println!("SERVING");
            ExitCode::SUCCESS
        }
        Ok(answer) => {
            println!(
                "{:?}",
                ServingStatus::try_from(answer.get_ref().status).unwrap_or(ServingStatus::Unknown)
            );
            ExitCode::FAILURE
        }
        Err(status) => fail(describe(&status)),
    }
}

/// A failed call, for people: the code, the message and every bad field.
pub fn describe(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(bad) = status.get_details_bad_request() {
        for v in bad.field_violations {
            text.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    text
}

/// Prints an error and gives the exit code for it.
pub fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// `leads/{id}` from either that or a bare id.
pub fn lead_name(name: &str) -> String {
    if name.starts_with("leads/") {
        name.to_owned()
    } else {
        format!("leads/{name}")
    }
}
