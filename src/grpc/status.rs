//! `AppError` → `tonic::Status`. One exhaustive match: a new error variant does not compile until
//! someone decides what callers see. Every status carries `google.rpc.ErrorInfo`.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::app::AppError;

/// The `ErrorInfo.domain` of every leadgate error.
pub const ERROR_DOMAIN: &str = "leadgate";

/// How long a caller refused for lack of storage waits before retrying: freeing space takes an
/// operator, not a moment.
const STORAGE_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(30);

/// A status with `ErrorInfo` (and whatever else `details` holds).
pub fn status(code: Code, reason: &str, message: impl Into<String>, mut details: ErrorDetails) -> Status {
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(code, message, details)
}

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
            AppError::StorageFull(detail) => {
                tracing::warn!(error = %detail, "database storage full: write refused");
                let mut details = ErrorDetails::new();
                details.set_retry_info(Some(STORAGE_RETRY_DELAY));
                status(
                    Code::ResourceExhausted,
                    "STORAGE_FULL",
                    "the database has no room for this write; nothing was written: retry once space is freed",
                    details,
                )
            }
            AppError::ReadOnly(detail) => {
                tracing::warn!(error = %detail, "database read-only: write refused");
                let mut details = ErrorDetails::new();
                details.set_retry_info(Some(STORAGE_RETRY_DELAY));
                status(
                    Code::Unavailable,
                    "DATABASE_READ_ONLY",
                    "the database accepts no writes at the moment; nothing was written: retry later",
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
        }
    }
}
