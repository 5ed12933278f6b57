//! Any text as a ListLeads, ListAuditEvents or WatchDecisions filter: parsed or refused, never a
//! panic.
#![no_main]

use leadgate::domain::query::{AuditField, Field, LeadField, parse_filter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = parse_filter(text, LeadField::ALL);
    let _ = parse_filter(text, AuditField::ALL);
    let _ = parse_filter(text, AuditField::WATCHABLE);
});
