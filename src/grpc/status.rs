//! `AppError` → `tonic::Status`. One exhaustive match: a new error variant does not compile until
//! someone decides what callers see. Every status carries `google.rpc.ErrorInfo`.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::app::AppError;

/// The `ErrorInfo.domain` of every leadgate error.
pub const ERROR_DOMAIN: &str = "leadgate";

/// A status with `ErrorInfo` (and whatever else `details` holds).
pub fn status(code: Code, reason: &str, message: impl Into<String>, details: ErrorDetails) -> Status {
    status_with_metadata(code, reason, message, details, HashMap::new())
}

/// A status with `ErrorInfo` carrying `metadata` (values a program may act on).
pub fn status_with_metadata(
    code: Code,
    reason: &str,
    message: impl Into<String>,
    mut details: ErrorDetails,
    metadata: HashMap<String, String>,
) -> Status {
    details.set_error_info(reason, ERROR_DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

/// The `ErrorInfo.metadata` key of the position a stream's consumer resumes after.
pub const RESUME_AFTER_POSITION: &str = "resume_after_position";

impl From<AppError> for Status {
    fn from(error: AppError) -> Self {
        match error {
            AppError::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for v in violations.iter() {
                    details.add_bad_request_violation(&v.field, &v.description);
                }
                status(
                    Code::InvalidArgument,
                    "INVALID_ARGUMENT",
                    format!("invalid request: {violations}"),
                    details,
                )
            }
            AppError::NotFound(message) => status(Code::NotFound, "NOT_FOUND", message, ErrorDetails::new()),
            AppError::FailedPrecondition { reason, message } => {
                status(Code::FailedPrecondition, reason, message, ErrorDetails::new())
            }
            AppError::Aborted { reason, message } => {
                status(Code::Aborted, reason, message, ErrorDetails::new())
            }
            AppError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                let mut details = ErrorDetails::new();
                details.set_retry_info(Some(std::time::Duration::from_secs(1)));
                status(
                    Code::Unavailable,
                    "DATABASE_UNAVAILABLE",
                    "the database is unavailable: retry shortly",
                    details,
                )
            }
            AppError::DeadlineExceeded(detail) => {
                tracing::warn!(error = %detail, "database statement cancelled at the call cap");
                status(
                    Code::DeadlineExceeded,
                    "DEADLINE_EXCEEDED",
                    "the call took longer than the server allows; nothing was written",
                    ErrorDetails::new(),
                )
            }
            AppError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                status(
                    Code::Internal,
                    "INTERNAL",
                    "internal error (logged on the server)",
                    ErrorDetails::new(),
                )
            }
            AppError::SlowConsumer { resume_after, waited } => status_with_metadata(
                Code::ResourceExhausted,
                "SLOW_CONSUMER",
                format!(
                    "the stream was ended: its consumer took nothing for {} ms while entries waited; \
                     reconnect with after_position = {resume_after}",
                    waited.as_millis()
                ),
                ErrorDetails::new(),
                HashMap::from([(RESUME_AFTER_POSITION.to_owned(), resume_after.to_string())]),
            ),
            AppError::ShuttingDown { resume_after } => {
                let mut details = ErrorDetails::new();
                details.set_retry_info(Some(std::time::Duration::from_secs(1)));
                status_with_metadata(
                    Code::Unavailable,
                    "SHUTTING_DOWN",
                    format!("the server is shutting down: reconnect with after_position = {resume_after}"),
                    details,
                    HashMap::from([(RESUME_AFTER_POSITION.to_owned(), resume_after.to_string())]),
                )
            }
        }
    }
}
