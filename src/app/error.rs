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
}

impl AppError {
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
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
