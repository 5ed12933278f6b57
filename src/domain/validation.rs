//! Field-level validation: every bad field of a request is reported at once, by its API path.

use serde::{Deserialize, Serialize};

/// One rejected field: its path in the request (`contact.email`, `events[2].kind`) and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// Collects the violations of one request; empty means the request is valid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Records a violation.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Keeps the value of a successful check, or records why the field is bad.
    pub fn check<T>(&mut self, field: impl Into<String>, result: Result<T, String>) -> Option<T> {
        result.map_err(|why| self.add(field, why)).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was recorded.
    pub fn into_result(self) -> Result<(), Violations> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldViolation> {
        self.0.iter()
    }
}

impl std::fmt::Display for Violations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.description)?;
        }
        Ok(())
    }
}

/// Which control characters a text may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lines {
    /// Names, titles, references, identifiers: no control character at all.
    Single,
    /// Free text (evidence, reasons): line feeds and tabs, nothing else.
    Multi,
}

/// Refuses control characters: PostgreSQL refuses NUL in text (the call would fail as the
/// server's fault), and the others forge lines in logs, exports and audit trails.
pub fn no_control_characters(value: &str, lines: Lines) -> Result<(), String> {
    let allowed = |c: char| lines == Lines::Multi && matches!(c, '\n' | '\t');
    match value
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && !allowed(*c))
    {
        None => Ok(()),
        Some((at, c)) => Err(format!(
            "must not contain control characters{} (found U+{:04X} at character {})",
            if lines == Lines::Multi {
                " other than line feed and tab"
            } else {
                ""
            },
            u32::from(c),
            at + 1
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_text_refuses_every_control_character() {
        for bad in ["a\0b", "a\nb", "tab\there", "cr\r", "del\u{7f}", "c1\u{85}"] {
            assert!(no_control_characters(bad, Lines::Single).is_err(), "{bad:?}");
        }
        assert!(no_control_characters("Directrice financière — 東京", Lines::Single).is_ok());
    }

    #[test]
    fn multi_line_text_keeps_line_feeds_and_tabs_only() {
        assert!(no_control_characters("line one\n\tline two", Lines::Multi).is_ok());
        for bad in ["a\0b", "a\r\nb", "bell\u{7}", "esc\u{1b}[31m"] {
            assert!(no_control_characters(bad, Lines::Multi).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_refusal_says_which_character_and_where() {
        let why = no_control_characters("ab\0", Lines::Single).unwrap_err();
        assert!(why.contains("U+0000 at character 3"), "{why}");
    }
}
