//! One span and one log line per RPC: method, gRPC status code, latency. Nothing from the
//! request or response bodies is logged, so no personal data reaches the logs.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Instrument;

/// Wraps every RPC of the server.
#[derive(Clone, Copy, Debug, Default)]
pub struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Observe { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
}

/// What is known of an RPC while it runs.
struct Call {
    method: String,
    started: Instant,
    span: tracing::Span,
    finished: bool,
}

impl Call {
    /// Logs the call's end once, with its gRPC status code.
    fn finish(&mut self, code: Option<i32>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let code = tonic::Code::from_i32(code.unwrap_or(tonic::Code::Cancelled as i32));
        let latency = self.started.elapsed();
        crate::metrics::rpc_handled(&self.method, code, latency);
        let latency_ms = latency.as_secs_f64() * 1000.0;
        let _enter = self.span.enter();
        match code {
            tonic::Code::Ok
            | tonic::Code::InvalidArgument
            | tonic::Code::NotFound
            | tonic::Code::AlreadyExists
            | tonic::Code::FailedPrecondition
            | tonic::Code::Aborted
            | tonic::Code::OutOfRange
            | tonic::Code::Cancelled => {
                tracing::info!(rpc.method = %self.method, grpc.code = ?code, latency_ms, "rpc finished")
            }
            tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::PermissionDenied
            | tonic::Code::ResourceExhausted
            | tonic::Code::Unimplemented
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
            | tonic::Code::Unauthenticated => {
                tracing::warn!(rpc.method = %self.method, grpc.code = ?code, latency_ms, "rpc failed")
            }
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // The client went away before the end of the response.
        self.finish(None);
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

impl<S, B, ResBody> Service<http::Request<B>> for Observe<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send,
    B: Send,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        crate::metrics::rpc_started(&method);
        let span = tracing::info_span!("rpc", rpc.method = %method);
        let future = {
            let _enter = span.enter();
            self.inner.call(request)
        };
        let mut call = Call {
            method,
            started: Instant::now(),
            span: span.clone(),
            finished: false,
        };
        Box::pin(
            async move {
                let response = future.await?;
                // An error before any message is sent comes as "trailers only", in the headers.
                if let Some(code) = grpc_status(response.headers()) {
                    call.finish(Some(code));
                }
                tracing::trace!(method = %call.method, "response started");
                Ok(response.map(|body| ObservedBody { inner: body, call }))
            }
            .instrument(span),
        )
    }
}

pin_project! {
    /// A response body that reports the call's end when its trailers pass.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        call: Call,
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.call.finish(grpc_status(trailers).or(Some(0)));
                }
            }
            Poll::Ready(Some(Err(_))) => this.call.finish(Some(tonic::Code::Internal as i32)),
            Poll::Ready(None) => this.call.finish(Some(0)),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
