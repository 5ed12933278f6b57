//! Any text as a ListLeads, ListAuditEvents or WatchDecisions filter: parsed or refused, never a
//! panic.
#![no_main]

use leadgate::app::{AUDIT_FILTER_FIELDS, LEAD_FILTER_FIELDS};
use leadgate::domain::query::parse_filter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = parse_filter(text, LEAD_FILTER_FIELDS);
    let _ = parse_filter(text, AUDIT_FILTER_FIELDS);
});
