//! Any text as a page token (with any filter, order and size): refused or accepted, and a token
//! the server issues is always accepted back.
#![no_main]

use leadgate::app::{AUDIT_FILTER_FIELDS, AUDIT_ORDERS, LEAD_FILTER_FIELDS, LEAD_ORDERS};
use leadgate::domain::query::{SqlValue, parse_list};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str, &str, i32)| {
    let (token, filter, order_by, size) = input;
    let _ = parse_list(filter, order_by, token, size, AUDIT_FILTER_FIELDS, AUDIT_ORDERS);
    if let Ok(query) = parse_list(filter, order_by, token, size, LEAD_FILTER_FIELDS, LEAD_ORDERS) {
        let issued = query.token_after(vec![SqlValue::Int(size.into()), SqlValue::Uuid(Default::default())]);
        assert!(parse_list(filter, order_by, &issued, size, LEAD_FILTER_FIELDS, LEAD_ORDERS).is_ok());
    }
});
