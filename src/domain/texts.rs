//! The free text of audit entries: what callers wrote in their own words (signal subjects,
//! discovery evidence, reasons, names of agents, CRM references). It may hold personal data, and
//! the entries are hash-chained, so it is stored sealed under a key of the lead's (see
//! `app::texts`): erasing the lead destroys the key, the text can no longer be read, and the
//! chain still verifies.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::audit::{AuditBody, encode_body};
use super::hex::{from_hex, to_hex};

/// The keys of an entry's inputs whose string values are free text.
pub const FREE_TEXT_FIELDS: &[&str] = &[
    "subject",
    "evidence",
    "reason",
    "conducted_by",
    "agent",
    "external_reference",
];

/// A lead's key for the free text of its audit entries. Kept only in the lead's document, so
/// that erasing the lead destroys it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TextKey(pub [u8; 32]);

impl std::fmt::Debug for TextKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.write_str("TextKey(..)")
    }
}

impl Serialize for TextKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&to_hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for TextKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        from_hex(&text)
            .ok()
            .map(TextKey)
            .ok_or_else(|| serde::de::Error::custom("a text key is 64 hex digits"))
    }
}

/// Rewrites, with `rewrite`, every non-empty free text of the inputs of an entry's `body`, at any
/// depth. Returns the new body, written the one way bodies are ([`encode_body`]), when anything
/// changed (`rewrite` returning `None` keeps a text).
pub fn map_free_texts(body: &str, mut rewrite: impl FnMut(&str) -> Option<String>) -> Option<String> {
    // Most bodies hold no free text (empty texts are left out): not parsed at all.
    if !FREE_TEXT_FIELDS.iter().any(|key| holds_text(body, key)) {
        return None;
    }
    let mut parsed: AuditBody = serde_json::from_str(body).ok()?;
    let mut changed = false;
    visit(&mut parsed.inputs, &mut |text| match rewrite(text) {
        Some(new) => {
            changed = true;
            Some(new)
        }
        None => None,
    });
    changed.then(|| encode_body(&parsed))
}

/// Whether `"key":"` followed by something else than `"` appears in `body` (a non-empty text
/// under that key, somewhere).
fn holds_text(body: &str, key: &str) -> bool {
    let bytes = body.as_bytes();
    body.match_indices(key).any(|(at, _)| {
        let (before, after) = (at.checked_sub(1).map(|i| bytes[i]), &body[at + key.len()..]);
        before == Some(b'"') && after.starts_with("\":\"") && !after.starts_with("\":\"\"")
    })
}

fn visit(value: &mut serde_json::Value, rewrite: &mut dyn FnMut(&str) -> Option<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                match item {
                    serde_json::Value::String(text) if FREE_TEXT_FIELDS.contains(&key.as_str()) => {
                        if !text.is_empty()
                            && let Some(new) = rewrite(text)
                        {
                            *text = new;
                        }
                    }
                    serde_json::Value::String(_)
                    | serde_json::Value::Object(_)
                    | serde_json::Value::Array(_)
                    | serde_json::Value::Null
                    | serde_json::Value::Bool(_)
                    | serde_json::Value::Number(_) => visit(item, rewrite),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|item| visit(item, rewrite)),
        serde_json::Value::String(_)
        | serde_json::Value::Null
        | serde_json::Value::Bool(_)
        | serde_json::Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_free_texts_of_the_inputs_are_rewritten_and_keys_stay_sorted() {
        let body = r#"{"inputs":{"agent":"sdr-1","events":[{"kind":"DEMO_REQUEST","subject":"demo"}],"need":{"evidence":"","status":"MET"},"reason":"x"},"reasons":[{"rule_id":"reason","message":"m"}]}"#;
        let new = map_free_texts(body, |t| Some(t.to_uppercase())).unwrap();
        assert_eq!(
            new,
            r#"{"inputs":{"agent":"SDR-1","events":[{"kind":"DEMO_REQUEST","subject":"DEMO"}],"need":{"evidence":"","status":"MET"},"reason":"X"},"reasons":[{"rule_id":"reason","message":"m"}]}"#
        );
        assert_eq!(map_free_texts(body, |_| None), None, "nothing changed");
        assert_eq!(
            map_free_texts(r#"{"inputs":{"kind":"x"}}"#, |t| Some(t.into())),
            None
        );
    }

    #[test]
    fn a_text_key_reads_back_as_written_and_never_shows_in_debug() {
        let key = TextKey([7; 32]);
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(serde_json::from_str::<TextKey>(&json).unwrap(), key);
        assert_eq!(format!("{key:?}"), "TextKey(..)");
        assert!(serde_json::from_str::<TextKey>("\"07\"").is_err());
    }
}
