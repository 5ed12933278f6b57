//! Any text as a page token (with any filter, order and size): refused or accepted, and a token
//! the server issues is always accepted back.
#![no_main]

use leadgate::domain::query::{AuditField, AuditOrder, LeadField, LeadOrder, ListQuery, Value, parse_list};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str, &str, i32)| {
    let (token, filter, order_by, size) = input;
    if let Ok(query) = parse_list::<AuditField, AuditOrder>(filter, order_by, token, size) {
        let issued = query.token_after(vec![Value::Int(size.into())]);
        assert!(parse_list::<AuditField, AuditOrder>(filter, order_by, &issued, size).is_ok());
    }
    let lead_query: Result<ListQuery<LeadField, LeadOrder>, _> = parse_list(filter, order_by, token, size);
    if let Ok(query) = lead_query {
        let issued = query.token_after(vec![Value::Int(size.into()), Value::Uuid(Default::default())]);
        assert!(parse_list::<LeadField, LeadOrder>(filter, order_by, &issued, size).is_ok());
    }
});
