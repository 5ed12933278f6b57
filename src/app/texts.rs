//! Sealing the free text of audit entries under the lead's key (ChaCha20-Poly1305), and opening
//! it for readers. The chain hashes the sealed text; erasing the lead destroys its key, and its
//! entries' free text reads `[erased]` from then on, the chain whole.

use std::collections::HashMap;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};

use crate::domain::audit::{AuditEntry, ChainedEntry};
use crate::domain::lead::Lead;
use crate::domain::texts::{TextKey, map_free_texts};
use crate::domain::values::LeadId;

/// What a sealed text starts with (then base64 of the nonce and the ciphertext).
const SEALED: &str = "sealed:v1:";
/// What a reader sees of a text whose key was destroyed.
pub const ERASED_TEXT: &str = "[erased]";

/// A new random key for a lead.
pub fn new_text_key() -> TextKey {
    TextKey(ChaCha20Poly1305::generate_key(&mut OsRng).into())
}

/// Gives a lead a key if it has none (a lead written before keys existed), unless erased.
pub fn ensure_key(lead: &mut Lead) {
    if lead.text_key.is_none() && lead.erased_at.is_none() {
        lead.text_key = Some(new_text_key());
    }
}

/// Seals the free text of the lead's entries under its key (entries of a lead without one, an
/// erased lead's, keep their text as it is).
pub fn seal_entries(lead: &Lead, entries: &[AuditEntry]) -> Vec<AuditEntry> {
    let Some(key) = lead.text_key else {
        return entries.to_vec();
    };
    let cipher = ChaCha20Poly1305::new(&key.0.into());
    entries
        .iter()
        .map(|entry| {
            let mut entry = entry.clone();
            if entry.lead == Some(lead.id)
                && let Some(body) = map_free_texts(&entry.body, |text| Some(seal(&cipher, text)))
            {
                entry.body = body;
            }
            entry
        })
        .collect()
}

fn seal(cipher: &ChaCha20Poly1305, text: &str) -> String {
    let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
    let sealed = cipher
        .encrypt(&nonce, text.as_bytes())
        .expect("encrypting a short text cannot fail");
    let mut bytes = nonce.to_vec();
    bytes.extend(sealed);
    format!(
        "{SEALED}{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
    )
}

/// Opens the sealed free text of `entries` with the keys of their leads (`keys`: the leads read,
/// with their keys or none); a text whose key is gone reads [`ERASED_TEXT`].
pub fn open_entries(entries: &mut [ChainedEntry], keys: &HashMap<LeadId, Option<TextKey>>) {
    for chained in entries {
        let key = chained.entry.lead.and_then(|id| keys.get(&id).copied().flatten());
        let cipher = key.map(|k| ChaCha20Poly1305::new(&k.0.into()));
        let opened = map_free_texts(&chained.entry.body, |text| {
            let sealed = text.strip_prefix(SEALED)?;
            Some(
                cipher
                    .as_ref()
                    .and_then(|c| open(c, sealed))
                    .unwrap_or_else(|| ERASED_TEXT.to_owned()),
            )
        });
        if let Some(body) = opened {
            chained.entry.body = body;
        }
    }
}

fn open(cipher: &ChaCha20Poly1305, sealed: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(sealed)
        .ok()?;
    if bytes.len() < 12 {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(12);
    let text = cipher.decrypt(Nonce::from_slice(nonce), ciphertext).ok()?;
    String::from_utf8(text).ok()
}

/// Whether any of `entries` holds sealed text (only then are their leads' keys read).
pub fn any_sealed(entries: &[ChainedEntry]) -> bool {
    entries.iter().any(|e| e.entry.body.contains(SEALED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::{AuditBody, AuditKind, encode_body};

    fn entry(lead: LeadId, reason: &str) -> AuditEntry {
        AuditEntry {
            lead: Some(lead),
            kind: AuditKind::StateOverridden,
            recorded_at: chrono::Utc::now(),
            actor: "manager-1".into(),
            request_id: None,
            state_before: None,
            state_after: None,
            source_channel: None,
            policy_version: "v".into(),
            body: encode_body(&AuditBody {
                inputs: serde_json::json!({"reason": reason, "state": "NURTURING"}),
                ..AuditBody::default()
            }),
        }
    }

    fn chained(entry: AuditEntry) -> ChainedEntry {
        ChainedEntry {
            position: 1,
            entry,
            previous_hash: [0; 32],
            hash: [0; 32],
            time_max: chrono::Utc::now(),
            seal: None,
        }
    }

    #[test]
    fn sealed_text_opens_with_the_key_and_reads_erased_without_it() {
        use crate::domain::engine::fixtures::{cfo, policy, submit, t0};
        let key = new_text_key();
        let mut lead = submit(&cfo(), &[], &policy(), t0()).lead;
        lead.text_key = Some(key);
        let id = lead.id;
        let lead_key = |key: Option<TextKey>| HashMap::from([(id, key)]);
        let written = entry(id, "Claire's budget is frozen");
        let sealed = seal_entries(&lead, std::slice::from_ref(&written));
        assert!(!sealed[0].body.contains("Claire"), "{}", sealed[0].body);
        assert!(sealed[0].body.contains("NURTURING"), "only free text is sealed");

        let mut read = vec![chained(sealed[0].clone())];
        open_entries(&mut read, &lead_key(Some(key)));
        assert_eq!(read[0].entry.body, written.body);

        let mut after_erasure = vec![chained(sealed[0].clone())];
        open_entries(&mut after_erasure, &lead_key(None));
        assert!(after_erasure[0].entry.body.contains(ERASED_TEXT));
        let mut wrong_key = vec![chained(sealed[0].clone())];
        open_entries(&mut wrong_key, &lead_key(Some(new_text_key())));
        assert!(wrong_key[0].entry.body.contains(ERASED_TEXT));
    }
}
