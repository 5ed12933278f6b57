//! What a use case can answer instead of a result. Each variant says which gRPC status it
//! becomes (see `grpc::status`).

use crate::domain::engine::Rejection;
use crate::domain::validation::Violations;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad fields, each named (`INVALID_ARGUMENT` with `BadRequest`). Nothing was written.
    #[error("invalid request: {0}")]
    InvalidArgument(Violations),
    /// No such resource (`NOT_FOUND`).
    #[error("{0}")]
    NotFound(String),
    /// The request is valid but the resource's state refuses it (`FAILED_PRECONDITION`).
    #[error("{message}")]
    FailedPrecondition { reason: &'static str, message: String },
    /// The value of `field` belongs to another resource (`ALREADY_EXISTS`, with `BadRequest`
    /// naming the field). Nothing was written.
    #[error("{message}")]
    AlreadyExists {
        reason: &'static str,
        field: &'static str,
        message: String,
    },
    /// A concurrent change won (`ABORTED`): re-read and retry.
    #[error("{message}")]
    Aborted { reason: &'static str, message: String },
    /// The database cannot be reached (`UNAVAILABLE`): retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The database has no room for the write (`RESOURCE_EXHAUSTED`): nothing was written; retry
    /// once space is freed.
    #[error("{0}")]
    StorageFull(String),
    /// The database refuses writes (`UNAVAILABLE`): nothing was written; retry later.
    #[error("{0}")]
    ReadOnly(String),
    /// The work took longer than the server allows and was abandoned, writing nothing
    /// (`DEADLINE_EXCEEDED`).
    #[error("{0}")]
    DeadlineExceeded(String),
    /// A fault of leadgate's own (`INTERNAL`); the detail is logged, never sent.
    #[error("{0}")]
    Internal(String),
    /// A stream's consumer took nothing for `waited` while entries waited, and its stream was
    /// ended (`RESOURCE_EXHAUSTED`, `SLOW_CONSUMER`); it resumes after `resume_after`.
    #[error("slow consumer: nothing taken for {waited:?}; resume after position {resume_after}")]
    SlowConsumer {
        resume_after: i64,
        waited: std::time::Duration,
    },
    /// The server is shutting down and ended a stream (`UNAVAILABLE`, `SHUTTING_DOWN`); the
    /// consumer resumes after `resume_after`, on another replica or after the restart.
    #[error("shutting down; resume after position {resume_after}")]
    ShuttingDown { resume_after: i64 },
}

impl AppError {
    /// Whether the same work may succeed if tried again shortly, as is.
    pub fn is_transient(&self) -> bool {
        match self {
            // Storage that is full or read-only may come back: retried like the others.
            AppError::Unavailable(_)
            | AppError::DeadlineExceeded(_)
            | AppError::Aborted { .. }
            | AppError::StorageFull(_)
            | AppError::ReadOnly(_) => true,
            AppError::InvalidArgument(_)
            | AppError::NotFound(_)
            | AppError::FailedPrecondition { .. }
            | AppError::AlreadyExists { .. }
            | AppError::Internal(_)
            | AppError::SlowConsumer { .. }
            | AppError::ShuttingDown { .. } => false,
        }
    }

    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        let mut v = Violations::default();
        v.add(field, description);
        AppError::InvalidArgument(v)
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(m) => AppError::Unavailable(m),
            StoreError::Timeout(m) => AppError::DeadlineExceeded(m),
            StoreError::StorageFull(m) => AppError::StorageFull(m),
            StoreError::ReadOnly(m) => AppError::ReadOnly(m),
            StoreError::Corrupt(m) | StoreError::Database(m) => AppError::Internal(m),
        }
    }
}

impl From<Rejection> for AppError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Invalid(v) => AppError::InvalidArgument(v),
            Rejection::Illegal(e) => AppError::FailedPrecondition {
                reason: "ILLEGAL_TRANSITION",
                message: e.to_string(),
            },
            Rejection::Precondition(message) => AppError::FailedPrecondition {
                reason: "PRECONDITION_NOT_MET",
                message,
            },
            erased @ Rejection::Erased(_) => AppError::FailedPrecondition {
                reason: "LEAD_ERASED",
                message: erased.to_string(),
            },
            Rejection::Refused { reason, message } => AppError::FailedPrecondition { reason, message },
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
