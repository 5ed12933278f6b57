//! Any entry content hashes and chains, an intact chain always verifies, and any change to an
//! entry is found; digests and hashes from any text parse or are refused.
#![no_main]

use leadgate::domain::audit::{AuditEntry, AuditKind, ChainHead, ChainTip, Verifier, link};
use leadgate::domain::hex::from_hex;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<(String, String, i64, u8)>, String)| {
    let (fields, text) = input;
    let _ = ChainHead::parse_token(&text);
    let _ = from_hex(&text);
    let entries: Vec<AuditEntry> = fields
        .iter()
        .take(20)
        .map(|(actor, body, micros, kind)| AuditEntry {
            lead: None,
            kind: AuditKind::ALL[usize::from(*kind) % AuditKind::ALL.len()],
            recorded_at: chrono::DateTime::from_timestamp_micros(*micros % 10_000_000_000_000_000)
                .unwrap_or_default(),
            actor: actor.clone(),
            request_id: (!actor.is_empty()).then(|| body.clone()),
            state_before: None,
            state_after: None,
            source_channel: None,
            policy_version: String::new(),
            body: body.clone(),
        })
        .collect();
    for e in &entries {
        let _ = e.parsed_body();
    }
    let chain = link(ChainTip::GENESIS, entries);
    let mut verifier = Verifier::new(ChainTip::GENESIS, None);
    for c in &chain {
        verifier.check(c).expect("an intact chain verifies");
    }
    if let Some(first) = chain.first() {
        let mut changed = first.clone();
        changed.entry.body.push('x');
        assert!(
            Verifier::new(ChainTip::GENESIS, None).check(&changed).is_err(),
            "a changed entry is found"
        );
    }
});
