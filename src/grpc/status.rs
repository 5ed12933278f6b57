//! `AppError` → `tonic::Status`. One exhaustive match: a new error variant does not compile until
//! someone decides what callers see. Every status carries `google.rpc.ErrorInfo`.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::app::AppError;
use crate::domain::validation::Violations;

/// The `ErrorInfo.domain` of every leadgate error.
pub const ERROR_DOMAIN: &str = "leadgate";

/// How long a caller refused for lack of storage waits before retrying: freeing space takes an
/// operator, not a moment.
const STORAGE_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(30);

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

/// The most bytes of `BadRequest` an answer carries (base64 makes it a third larger on the wire).
const MAX_BAD_REQUEST_BYTES: usize = 4096;
/// The most bytes of `grpc-message`, once percent-encoded as gRPC sends it.
const MAX_MESSAGE_BYTES: usize = 1536;
/// The most violations listed, whatever their size.
const MAX_VIOLATIONS_LISTED: usize = 50;
/// Field paths and descriptions are clipped to these many characters in an answer.
const MAX_FIELD_CHARS: usize = 128;
const MAX_DESCRIPTION_CHARS: usize = 256;

/// `INVALID_ARGUMENT` with `BadRequest`. The details and the message travel in HTTP/2 headers,
/// which clients refuse above a limit (16 KiB for most, seen as RESOURCE_EXHAUSTED or a reset):
/// the answer lists the first violations, clipped, in under 8 KiB in all, and `ErrorInfo`
/// metadata gives the total (`violations`) and how many are listed (`violations_listed`).
fn invalid_argument(violations: &Violations) -> Status {
    let total = violations.iter().count();
    let mut details = ErrorDetails::new();
    let mut listed = 0;
    let mut bad_request_bytes = 0;
    let mut message = String::from("invalid request: ");
    let mut message_full = false;
    for v in violations.iter().take(MAX_VIOLATIONS_LISTED) {
        let field = clipped(&v.field, MAX_FIELD_CHARS);
        let description = clipped(&v.description, MAX_DESCRIPTION_CHARS);
        // Two length-delimited strings in a length-delimited message: at most 9 bytes of framing.
        bad_request_bytes += field.len() + description.len() + 9;
        if bad_request_bytes > MAX_BAD_REQUEST_BYTES {
            break;
        }
        details.add_bad_request_violation(field.as_ref(), description.as_ref());
        let line = format!("{}{field}: {description}", if listed > 0 { "; " } else { "" });
        let room = MAX_MESSAGE_BYTES - 96; // what the count at the end needs
        if !message_full && percent_encoded_len(&message) + percent_encoded_len(&line) <= room {
            message.push_str(&line);
        } else {
            message_full = true;
        }
        listed += 1;
    }
    if listed < total || message_full {
        message.push_str(&format!(
            " ({total} violations; BadRequest lists the first {listed})"
        ));
    }
    let metadata = HashMap::from([
        ("violations".to_owned(), total.to_string()),
        ("violations_listed".to_owned(), listed.to_string()),
    ]);
    details.set_error_info("INVALID_ARGUMENT", ERROR_DOMAIN, metadata);
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// At most `max` characters of `text`, marked when cut.
fn clipped(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => text.into(),
        Some((end, _)) => format!("{}…", &text[..end]).into(),
    }
}

/// The length of `text` once percent-encoded for `grpc-message` (controls, non-ASCII bytes, space
/// and ``"#%<>`?{}`` take three bytes each).
fn percent_encoded_len(text: &str) -> usize {
    text.bytes()
        .map(|b| {
            let encoded = !(0x21..0x7f).contains(&b) || b"\"#%<>`?{}".contains(&b);
            if encoded { 3 } else { 1 }
        })
        .sum()
}

impl From<AppError> for Status {
    fn from(error: AppError) -> Self {
        match error {
            AppError::InvalidArgument(violations) => invalid_argument(&violations),
            AppError::NotFound(message) => status(Code::NotFound, "NOT_FOUND", message, ErrorDetails::new()),
            AppError::FailedPrecondition { reason, message } => {
                status(Code::FailedPrecondition, reason, message, ErrorDetails::new())
            }
            AppError::AlreadyExists {
                reason,
                field,
                message,
            } => {
                let mut details = ErrorDetails::new();
                details.add_bad_request_violation(field, message.as_str());
                status(Code::AlreadyExists, reason, message, details)
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

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt;

    use super::*;

    fn violations(n: usize, description: &str) -> Violations {
        let mut v = Violations::default();
        for i in 0..n {
            v.add(format!("events[{i}].subject"), description);
        }
        v
    }

    /// What the answer weighs in headers: the message as sent and the details in base64.
    fn header_bytes(status: &Status) -> usize {
        percent_encoded_len(status.message()) + status.details().len().div_ceil(3) * 4
    }

    #[test]
    fn a_few_violations_are_all_listed_in_the_details_and_the_message() {
        let status = invalid_argument(&violations(3, "is required"));
        assert_eq!(
            status.get_details_bad_request().unwrap().field_violations.len(),
            3
        );
        assert_eq!(
            status.message(),
            "invalid request: events[0].subject: is required; events[1].subject: is required; \
             events[2].subject: is required"
        );
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.metadata["violations"], "3");
        assert_eq!(info.metadata["violations_listed"], "3");
    }

    #[test]
    fn hundreds_of_long_violations_fit_in_eight_kib_and_say_how_many_there_were() {
        for description in ["is required", &"é ".repeat(5000)] {
            let status = invalid_argument(&violations(300, description));
            assert!(
                header_bytes(&status) < 8 * 1024,
                "{} bytes",
                header_bytes(&status)
            );
            let listed = status.get_details_bad_request().unwrap().field_violations;
            assert!(!listed.is_empty() && listed.len() < 300);
            assert_eq!(listed[0].field, "events[0].subject");
            assert!(listed[0].description.chars().count() <= MAX_DESCRIPTION_CHARS + 1);
            let info = status.get_details_error_info().unwrap();
            assert_eq!(info.metadata["violations"], "300");
            assert_eq!(info.metadata["violations_listed"], listed.len().to_string());
            assert!(
                status.message().contains("300 violations"),
                "{}",
                status.message()
            );
        }
    }

    #[test]
    fn the_message_length_counts_what_percent_encoding_adds() {
        assert_eq!(percent_encoded_len("abc"), 3);
        assert_eq!(percent_encoded_len("a b"), 5);
        assert_eq!(percent_encoded_len("é"), 6);
    }
}
