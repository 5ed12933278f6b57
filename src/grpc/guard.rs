//! What every call goes through before reaching a service: authentication, the role check (deny by
//! default), load shedding and the deadline cap — in that order, so a refused caller never reaches
//! storage and never learns whether a lead exists. Health checks skip all of it. Every error
//! response leaving the server carries `google.rpc.ErrorInfo`, including tonic's own (an oversized
//! message); a request tonic could not read is the caller's mistake (INVALID_ARGUMENT).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};

use super::codec::malformed_request;
use super::status::ERROR_DOMAIN;
use crate::app::Actor;
use crate::auth::{Access, Authenticator, access};
use crate::domain::values::clip;

/// The limits and credentials every call is checked against.
#[derive(Clone, Debug)]
pub struct GuardSettings {
    pub auth: Arc<Authenticator>,
    /// Calls served at once; more are refused with RESOURCE_EXHAUSTED rather than queued.
    pub max_concurrent_calls: usize,
    /// The longest a call may take to answer, whatever deadline the client sets.
    pub max_call_duration: Duration,
}

/// When the caller stops waiting for this call: its `grpc-timeout` or the server's cap, whichever
/// is sooner. In the request's extensions, for work that can stop early and say so
/// (VerifyAuditTrail) rather than be cut off.
#[derive(Clone, Copy, Debug)]
pub struct CallDeadline(pub Instant);

/// The time a `grpc-timeout` header gives: up to 8 digits and a unit (gRPC over HTTP/2). `None` if
/// absent or malformed (tonic then applies no client deadline either).
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[derive(Clone, Debug)]
pub struct GuardLayer {
    settings: Arc<GuardSettings>,
    in_flight: Arc<Semaphore>,
}

impl GuardLayer {
    pub fn new(settings: GuardSettings) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(settings.max_concurrent_calls)),
            settings: Arc::new(settings),
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;
    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Guard<S> {
    inner: S,
    layer: GuardLayer,
}

/// A trailers-only error response with ErrorInfo.
fn reject<B: Default>(code: Code, reason: &str, message: impl Into<String>) -> http::Response<B> {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(code, message, details).into_http()
}

/// What tonic answers, as INTERNAL, when it cannot read a request's frames before any codec
/// runs (tonic 0.14 `codec/decode.rs`, `server/grpc.rs`), and what prost says through the codecs
/// of the services that are not leadgate's (health, reflection). Leadgate's own codec answers
/// decode errors itself (`codec.rs`). Pinned by the malformed-request tests.
const UNREADABLE_REQUEST: &[&str] = &[
    // A body without any message.
    "Missing request message.",
    // A body that ends inside a frame.
    "Unexpected EOF decoding stream.",
    // A frame whose compressed flag is neither 0 nor 1, or 1 without `grpc-encoding`.
    "protocol error: received message with",
    // prost's `DecodeError`.
    "failed to decode Protobuf message",
];

/// Adds ErrorInfo to an error answered without details (by tonic itself). A request tonic could
/// not read is the caller's mistake: INVALID_ARGUMENT rather than tonic's INTERNAL.
fn with_error_info<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    if headers.contains_key("grpc-status-details-bin") {
        return response;
    }
    let Some(status) = Status::from_header_map(headers).filter(|s| s.code() != Code::Ok) else {
        return response;
    };
    if status.code() == Code::Internal && UNREADABLE_REQUEST.iter().any(|m| status.message().starts_with(m)) {
        let _ = malformed_request(status.message()).add_header(headers);
        return response;
    }
    let reason = format!("{:?}", status.code());
    let reason: String = reason
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
            sep.into_iter().chain(std::iter::once(c.to_ascii_uppercase()))
        })
        .collect();
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
    let _ = Status::with_error_details(status.code(), status.message(), details).add_header(headers);
    response
}

impl<S, B, ResBody> Service<http::Request<B>> for Guard<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The service polled ready is the one that must serve this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            let needs = access(&path);
            if needs == Access::Open {
                return inner.call(request).await.map(with_error_info);
            }
            let authorization = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            let certificate = request
                .extensions()
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.peer_certs())
                .and_then(|certs| certs.first().map(|c| c.to_vec()));
            let identity = match layer
                .settings
                .auth
                .authenticate(authorization, certificate.as_deref())
            {
                Ok(identity) => identity,
                Err(refusal) => return Ok(reject(Code::Unauthenticated, refusal.reason, refusal.message)),
            };
            match needs {
                Access::Open | Access::Authenticated => {}
                Access::Roles(roles) if roles.iter().any(|r| identity.roles.has(*r)) => {}
                Access::Roles(roles) => {
                    let wanted = roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ");
                    return Ok(reject(
                        Code::PermissionDenied,
                        "PERMISSION_DENIED",
                        format!(
                            "{} may not call {path} (roles allowed: {wanted})",
                            identity.principal
                        ),
                    ));
                }
                // Answered here, so a method missing from the roles table reaches no service.
                Access::Unknown => {
                    return Ok(reject(
                        Code::Unimplemented,
                        "UNKNOWN_METHOD",
                        format!("leadgate has no method {:?}", clip(&path)),
                    ));
                }
            }
            // The roles are checked: the service knows the caller by its principal alone.
            request.extensions_mut().insert(Actor {
                principal: identity.principal,
            });
            let Ok(_permit) = layer.in_flight.clone().try_acquire_owned() else {
                return Ok(reject(
                    Code::ResourceExhausted,
                    "OVERLOADED",
                    "too many calls in progress: retry with backoff",
                ));
            };
            let cap = layer.settings.max_call_duration;
            let time_left = grpc_timeout(request.headers()).map_or(cap, |asked| asked.min(cap));
            request
                .extensions_mut()
                .insert(CallDeadline(Instant::now() + time_left));
            match tokio::time::timeout(cap, inner.call(request)).await {
                Ok(answer) => answer.map(with_error_info),
                Err(_) => Ok(reject(
                    Code::DeadlineExceeded,
                    "DEADLINE_EXCEEDED",
                    format!(
                        "the call took longer than the server allows ({} ms)",
                        cap.as_millis()
                    ),
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt;

    use super::*;

    fn answered(status: Status) -> Status {
        let response = with_error_info(status.into_http::<()>());
        Status::from_header_map(response.headers()).unwrap()
    }

    #[test]
    fn grpc_timeout_headers_are_read_in_every_unit_and_malformed_ones_ignored() {
        let read = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-timeout", value.parse().unwrap());
            grpc_timeout(&headers)
        };
        assert_eq!(read("2S"), Some(Duration::from_secs(2)));
        assert_eq!(read("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(read("3M"), Some(Duration::from_secs(180)));
        assert_eq!(read("250m"), Some(Duration::from_millis(250)));
        assert_eq!(read("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(read("5n"), Some(Duration::from_nanos(5)));
        for bad in ["", "S", "123456789S", "10", "10x", "-1S", "1.5S"] {
            assert_eq!(read(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&http::HeaderMap::new()), None);
    }

    #[test]
    fn a_request_tonic_could_not_read_is_invalid_argument() {
        for message in [
            "Missing request message.",
            "Unexpected EOF decoding stream.",
            "protocol error: received message with invalid compression flag: 7 (valid flags are 0 and 1), while sending request",
            "failed to decode Protobuf message: invalid wire type value: 7",
        ] {
            let status = answered(Status::internal(message));
            assert_eq!(status.code(), Code::InvalidArgument, "{message}");
            assert_eq!(
                status.get_details_error_info().unwrap().reason,
                "MALFORMED_REQUEST"
            );
            assert!(status.message().ends_with(message));
        }
    }

    #[test]
    fn other_internal_errors_stay_internal_with_error_info() {
        for message in ["Error encoding: buffer full", "something else broke"] {
            let status = answered(Status::internal(message));
            assert_eq!(status.code(), Code::Internal, "{message}");
            assert_eq!(status.get_details_error_info().unwrap().reason, "INTERNAL");
            assert_eq!(status.message(), message);
        }
        let unimplemented = answered(Status::unimplemented(""));
        assert_eq!(
            unimplemented.get_details_error_info().unwrap().reason,
            "UNIMPLEMENTED"
        );
    }
}
