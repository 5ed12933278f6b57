//! Proto ↔ domain, in three parts:
//!
//! - `enums`: each domain enum and its proto twin, matched by value name.
//! - `request`: requests validated and decoded into domain values, every bad field reported
//!   at once.
//! - `response`: domain values and use-case results encoded as responses.
//!
//! Everything is re-exported here, so callers write `convert::lead`, `convert::submission`.

mod enums;
mod request;
mod response;

pub use enums::{EnumMapping, optional_enum, required_enum};
pub use request::{
    Idempotent, LeadCommand, LeadCommandRequest, MAX_EVENTS, MAX_IMPORT_ID_LEN, MAX_IMPORT_ROWS,
    MAX_REQUEST_ID_LEN, company, contact, contact_attempt, discovery_call, ensure_valid, erasure, events,
    import_rows, lead_command, lead_name, merge_request, optional_etag, request_key, required_multiline_text,
    required_text, source, submission, time_from_proto, validated,
};
pub use response::{
    LeadChangeResponse, audit_event, change, decision, digest, duration_to_proto, explanation,
    import_results, json_value, lead, reasons, scores, time_to_proto,
};
