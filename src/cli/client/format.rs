//! Turning API values into text.

use crate::domain::audit::AuditKind;
use crate::domain::lifecycle::LeadState;
use crate::domain::values::{FitGrade, SourceChannel};
use crate::grpc::pb;

/// A timestamp as RFC 3339 (seconds), or `-`.
pub fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map_or_else(
            || "-".into(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
}

/// A duration as `1h02m03s`, `4m12s` or `7s`.
pub fn duration(d: &Option<prost_types::Duration>) -> String {
    let Some(d) = d else { return "-".into() };
    let s = d.seconds.max(0);
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, min, sec) => format!("{min}m{sec:02}s"),
        (h, min, sec) => format!("{h}h{min:02}m{sec:02}s"),
    }
}

/// An enum value's name without its prefix (`LEAD_STATE_NURTURING` → `NURTURING`), `-` when unset.
/// The prefix is the one the domain enum declares (`LeadState::PREFIX`).
pub fn name(full: &str, prefix: &str) -> String {
    match full.strip_prefix(prefix).unwrap_or(full) {
        "UNSPECIFIED" => "-".into(),
        bare => bare.to_owned(),
    }
}

pub fn state(value: i32) -> String {
    pb::LeadState::try_from(value).map_or_else(
        |_| value.to_string(),
        |s| name(s.as_str_name(), LeadState::PREFIX),
    )
}

pub fn channel(value: i32) -> String {
    pb::SourceChannel::try_from(value).map_or_else(
        |_| value.to_string(),
        |s| name(s.as_str_name(), SourceChannel::PREFIX),
    )
}

pub fn kind(value: i32) -> String {
    pb::AuditEventKind::try_from(value).map_or_else(
        |_| value.to_string(),
        |s| name(s.as_str_name(), AuditKind::PREFIX),
    )
}

pub fn grade(value: i32) -> String {
    pb::FitGrade::try_from(value)
        .map_or_else(|_| value.to_string(), |s| name(s.as_str_name(), FitGrade::PREFIX))
}

/// `google.protobuf.Value` back to JSON.
pub fn json(value: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => (*b).into(),
        // Struct numbers are doubles: give integers back their integer form.
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => (*n as i64).into(),
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, Into::into)
        }
        Some(Kind::StringValue(s)) => s.clone().into(),
        Some(Kind::ListValue(list)) => list.values.iter().map(json).collect(),
        Some(Kind::StructValue(s)) => json_object(s),
    }
}

pub fn json_object(s: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), json(v))).collect())
}

/// A bar of `width` cells filled in proportion to `rate` (0 to 1).
pub fn bar(rate: f64, width: usize) -> String {
    let filled = ((rate.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

/// The id part of a lead name, shortened for tables.
pub fn short_lead(name: &str) -> String {
    name.strip_prefix("leads/").unwrap_or(name).to_owned()
}
