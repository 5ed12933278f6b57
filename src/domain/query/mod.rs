//! List queries: the filter language (a subset of AIP-160), `order_by`, and opaque keyset page
//! tokens, typed per resource (`resources`: `LeadField`, `LeadOrder`, ...). Parsing yields typed
//! fields, operators and values; only the store maps them to columns and SQL.
//!
//! Grammar: `term (AND term)*`, where a term is `[NOT] field op value` or
//! `[NOT] ( [NOT] field op value OR [NOT] field op value ... )` (the fields of one group may
//! differ); `op` is one of `= != < <= > >= :` (`:` is "contains", on the text fields that say so);
//! a value is a "quoted string", a number, or a bare enum name. `NOT` is the complement of what
//! it negates (a row whose column is NULL matches `NOT x = v`); `NOT (a OR b)` is read as
//! `NOT a AND NOT b`, so a filter stays a conjunction of groups.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::validation::{Lines, no_control_characters};
use super::values::{DomainName, Email, LeadId, clip};

mod resources;
pub use resources::{AuditField, AuditOrder, LeadField, LeadOrder, NoField, PolicyOrder, QuarantineOrder};

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 2048;
/// The most comparisons accepted in one filter.
pub const MAX_COMPARISONS: usize = 32;
/// The page size when none is given.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The largest page; larger requests are served this many.
pub const MAX_PAGE_SIZE: usize = 1000;

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `:`, "contains" (case-insensitive on folded fields).
    Has,
    /// Written `= "text*"` on fields that allow it: starts with.
    Prefix,
}

impl Op {
    /// How the filter language writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Has => ":",
            Op::Prefix => "=",
        }
    }
}

/// A value a field is compared with, or one value of a sort key; typed by its field (times in
/// microseconds since the epoch, points in hundredths).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    Text(String),
    Int(i64),
    Uuid(Uuid),
}

/// What a filter field holds, which decides the values and operators it accepts.
#[derive(Clone, Copy, Debug)]
pub enum FieldKind {
    /// A closed set of names, accepted with or without the proto enum's prefix.
    Enum {
        names: &'static [&'static str],
        prefix: &'static str,
    },
    /// A quoted string, compared exactly (`=`, `!=`).
    Text,
    /// A quoted string, compared exactly or by `:` (contains, ignoring ASCII case).
    SearchText,
    /// A quoted email address, normalised as a submitted one is (`=`, `!=`).
    Email,
    /// A quoted domain name, lower-cased without its trailing dot (`=`, `!=`, `:`).
    Domain,
    /// A quoted name compared ignoring case: `=`, `!=`, `:` (contains), and `= "prefix*"`.
    FoldedText,
    /// A quoted `leads/{uuid}`.
    LeadName,
    /// A quoted RFC 3339 time, compared as microseconds since the epoch.
    Time,
    /// A number of points, compared in hundredths.
    Points,
    /// An integer.
    Integer,
}

impl FieldKind {
    /// The filter kind of a closed set of names.
    pub const fn names_of(names: &'static [&'static str], prefix: &'static str) -> FieldKind {
        FieldKind::Enum { names, prefix }
    }
}

/// The fields a resource's filter may name. A new field is a variant, its name and kind here,
/// and its column in the store.
pub trait Field: Copy + Eq + std::fmt::Debug + 'static {
    /// Every field, in the order error messages list them.
    const ALL: &'static [Self];
    /// How filters spell it (`source.channel`).
    fn name(self) -> &'static str;
    fn kind(self) -> FieldKind;
}

/// The orders a resource may be listed in.
pub trait Order: Copy + Eq + std::fmt::Debug + 'static {
    /// Every order; the first is the default.
    const ALL: &'static [Self];
    /// The `order_by` text that selects it (`create_time desc`).
    fn name(self) -> &'static str;
    /// The types of its sort key: the ordering value's, then the tie-break's.
    fn key_types(self) -> &'static [KeyType];
}

/// One parsed comparison: `field op value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition<F> {
    pub field: F,
    pub op: Op,
    pub value: Value,
    /// `NOT`: the condition holds when the comparison does not (a NULL column included).
    pub negated: bool,
}

/// A parsed filter: every group must hold; a group holds when any of its conditions does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter<F> {
    pub groups: Vec<Vec<Condition<F>>>,
}

impl<F> Default for Filter<F> {
    fn default() -> Self {
        Filter { groups: Vec::new() }
    }
}

/// Why a filter, an order or a page token was refused; the message is for the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(message.into()))
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(String),
    Op(Op),
    And,
    Or,
    Not,
    Has,
    Open,
    Close,
}

fn tokenize(input: &str) -> Result<Vec<Token>, QueryError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            ':' => {
                chars.next();
                tokens.push(Token::Has);
            }
            '"' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, escaped)) => text.push(escaped),
                            None => return err("unterminated string in filter"),
                        },
                        Some((_, other)) => text.push(other),
                        None => return err("unterminated string in filter"),
                    }
                }
                tokens.push(Token::Str(text));
            }
            '=' | '!' | '<' | '>' => {
                chars.next();
                let eq = chars.next_if(|&(_, n)| n == '=').is_some();
                let op = match (c, eq) {
                    ('=', false) => Op::Eq,
                    ('!', true) => Op::Ne,
                    ('<', false) => Op::Lt,
                    ('<', true) => Op::Le,
                    ('>', false) => Op::Gt,
                    ('>', true) => Op::Ge,
                    _ => {
                        return err(format!("unexpected character {c:?} at offset {at} in filter"));
                    }
                };
                tokens.push(Token::Op(op));
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let mut text = String::new();
                while let Some((_, n)) = chars.next_if(|&(_, n)| n.is_ascii_digit() || "+-.eE".contains(n)) {
                    text.push(n);
                }
                tokens.push(Token::Num(text));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut text = String::new();
                while let Some((_, n)) =
                    chars.next_if(|&(_, n)| n.is_ascii_alphanumeric() || n == '_' || n == '.')
                {
                    text.push(n);
                }
                tokens.push(match text.as_str() {
                    "AND" => Token::And,
                    "OR" => Token::Or,
                    "NOT" => Token::Not,
                    _ => Token::Ident(text),
                });
            }
            other => {
                return err(format!("unexpected character {other:?} at offset {at} in filter"));
            }
        }
    }
    Ok(tokens)
}

struct Parser<'a, F> {
    tokens: std::iter::Peekable<std::vec::IntoIter<Token>>,
    fields: &'a [F],
    comparisons: usize,
}

impl<F: Field> Parser<'_, F> {
    /// Any number of `NOT`s: whether they negate what follows.
    fn negations(&mut self) -> bool {
        let mut negated = false;
        while self.tokens.next_if_eq(&Token::Not).is_some() {
            negated = !negated;
        }
        negated
    }

    fn comparison(&mut self) -> Result<Condition<F>, QueryError> {
        let negated = self.negations();
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            return err(format!("filter has more than {MAX_COMPARISONS} comparisons"));
        }
        let name = match self.tokens.next() {
            Some(Token::Ident(name)) => name,
            other => {
                return err(format!(
                    "expected a field name in filter, found {}",
                    describe(other)
                ));
            }
        };
        let field = *self.fields.iter().find(|f| f.name() == name).ok_or_else(|| {
            let known: Vec<_> = self.fields.iter().map(|f| f.name()).collect();
            QueryError(format!(
                "unknown filter field {:?}; known fields: {}",
                clip(&name),
                known.join(", ")
            ))
        })?;
        let op = match self.tokens.next() {
            Some(Token::Op(op)) => op,
            Some(Token::Has) => Op::Has,
            other => {
                return err(format!(
                    "expected an operator after {name}, found {}",
                    describe(other)
                ));
            }
        };
        let (op, value) = convert_value(field, op, self.tokens.next())?;
        // `!= "x*"` is `NOT = "x*"`.
        let not_prefix = op == Op::Ne && matches!(field.kind(), FieldKind::FoldedText) && is_prefix(&value);
        let (op, negated) = if not_prefix {
            (Op::Prefix, !negated)
        } else {
            (op, negated)
        };
        let value = match (op, value) {
            (Op::Prefix, Value::Text(v)) => Value::Text(v.trim_end_matches('*').to_owned()),
            (_, value) => value,
        };
        Ok(Condition {
            field,
            op,
            value,
            negated,
        })
    }

    /// One group of the filter's conjunction; `NOT (a OR b)` is two: `NOT a`, `NOT b`.
    fn term(&mut self) -> Result<Vec<Vec<Condition<F>>>, QueryError> {
        let negated = {
            let mut ahead = self.tokens.clone();
            let mut negated = false;
            while ahead.next_if_eq(&Token::Not).is_some() {
                negated = !negated;
            }
            if ahead.peek() == Some(&Token::Open) {
                self.negations();
                self.tokens.next();
                Some(negated)
            } else {
                None
            }
        };
        let Some(negated) = negated else {
            return Ok(vec![vec![self.comparison()?]]);
        };
        let mut group = vec![self.comparison()?];
        loop {
            match self.tokens.next() {
                Some(Token::Or) => group.push(self.comparison()?),
                Some(Token::Close) => break,
                other => {
                    return err(format!("expected OR or ) in filter, found {}", describe(other)));
                }
            }
        }
        if !negated {
            return Ok(vec![group]);
        }
        Ok(group
            .into_iter()
            .map(|c| {
                vec![Condition {
                    negated: !c.negated,
                    ..c
                }]
            })
            .collect())
    }
}

fn describe(token: Option<Token>) -> String {
    match token {
        None => "the end of the filter".into(),
        Some(Token::Ident(s)) => format!("{:?}", clip(&s)),
        Some(Token::Str(s)) => format!("the string {:?}", clip(&s)),
        Some(Token::Num(s)) => format!("the number {}", clip(&s)),
        Some(Token::Op(op)) => format!("the operator {}", op.symbol()),
        Some(Token::And) => "AND".into(),
        Some(Token::Or) => "OR".into(),
        Some(Token::Not) => "NOT".into(),
        Some(Token::Has) => "the operator :".into(),
        Some(Token::Open) => "(".into(),
        Some(Token::Close) => ")".into(),
    }
}

fn is_prefix(value: &Value) -> bool {
    matches!(value, Value::Text(v) if v.ends_with('*'))
}

/// The operators a kind of field accepts, as error messages list them.
fn operators(kind: FieldKind) -> Option<&'static str> {
    match kind {
        FieldKind::Enum { .. } | FieldKind::Text | FieldKind::LeadName | FieldKind::Email => Some("= and !="),
        FieldKind::SearchText | FieldKind::Domain | FieldKind::FoldedText => Some("=, != and :"),
        FieldKind::Time | FieldKind::Points | FieldKind::Integer => None,
    }
}

/// The typed value of a comparison, and its operator (`= "x*"` on a folded field is a prefix).
fn convert_value<F: Field>(spec: F, op: Op, token: Option<Token>) -> Result<(Op, Value), QueryError> {
    let field = spec.name();
    let allowed = match (operators(spec.kind()), op) {
        (_, Op::Prefix) => false,
        (Some(_), Op::Eq | Op::Ne) => true,
        (Some(list), Op::Has) => list.contains(':'),
        (Some(_), _) => false,
        (None, Op::Has) => false,
        (None, _) => true,
    };
    if !allowed {
        return err(match operators(spec.kind()) {
            Some(list) => format!("{field} accepts only {list}"),
            None => format!("{field} does not accept {}", op.symbol()),
        });
    }
    let text = |v: String| -> Result<String, QueryError> {
        no_control_characters(&v, Lines::Single)
            .map(|()| v)
            .map_err(|why| QueryError(format!("{field} {why}")))
    };
    let value = match (spec.kind(), token) {
        (FieldKind::Enum { names, prefix }, Some(Token::Ident(v))) => {
            let bare = v.strip_prefix(prefix).unwrap_or(&v);
            match names.iter().find(|n| **n == bare) {
                Some(name) => Value::Text((*name).to_owned()),
                None => {
                    return err(format!(
                        "{field} must be one of {}, got {:?}",
                        names.join(", "),
                        clip(&v)
                    ));
                }
            }
        }
        (FieldKind::Text, Some(Token::Str(v))) => Value::Text(text(v)?),
        // Contains ignores ASCII case, as the store compares.
        (FieldKind::SearchText, Some(Token::Str(v))) => Value::Text(if op == Op::Has {
            text(v)?.to_ascii_lowercase()
        } else {
            text(v)?
        }),
        (FieldKind::Email, Some(Token::Str(v))) => {
            let v = text(v)?;
            Value::Text(
                Email::parse(&v)
                    .map_err(|why| QueryError(format!("{field} {why}")))?
                    .as_str()
                    .to_owned(),
            )
        }
        (FieldKind::Domain, Some(Token::Str(v))) => {
            let v = text(v)?;
            if op == Op::Has {
                // A part of a domain need not be one.
                Value::Text(v.trim().to_lowercase())
            } else {
                Value::Text(
                    DomainName::parse(&v)
                        .map_err(|why| QueryError(format!("{field} {why}")))?
                        .as_str()
                        .to_owned(),
                )
            }
        }
        (FieldKind::FoldedText, Some(Token::Str(v))) => {
            let folded = fold(&text(v)?);
            if matches!(op, Op::Eq) && folded.ends_with('*') {
                if folded.trim_end_matches('*').is_empty() {
                    return err(format!("{field} needs text before * (a prefix)"));
                }
                return Ok((Op::Prefix, Value::Text(folded)));
            }
            Value::Text(folded)
        }
        (FieldKind::LeadName, Some(Token::Str(v))) => LeadId::parse_name(&v)
            .map(|id| Value::Uuid(id.as_uuid()))
            .map_err(|why| QueryError(format!("{field} {why}")))?,
        (FieldKind::Time, Some(Token::Str(v))) => chrono::DateTime::parse_from_rfc3339(&v)
            .map(|t| Value::Int(t.timestamp_micros()))
            .map_err(|_| {
                QueryError(format!(
                    "{field} must be an RFC 3339 time such as \"2026-01-31T00:00:00Z\", got {:?}",
                    clip(&v)
                ))
            })?,
        (FieldKind::Points, Some(Token::Num(v))) => v
            .parse::<f64>()
            .ok()
            .filter(|p| p.is_finite() && p.abs() < 1e12)
            .map(|p| Value::Int((p * 100.0).round() as i64))
            .ok_or_else(|| QueryError(format!("{field} must be a number, got {}", clip(&v))))?,
        (FieldKind::Integer, Some(Token::Num(v))) => v
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| QueryError(format!("{field} must be an integer, got {}", clip(&v))))?,
        (kind, other) => {
            let expected = match kind {
                FieldKind::Enum { .. } => "a bare name such as LEAD",
                FieldKind::Text
                | FieldKind::SearchText
                | FieldKind::Email
                | FieldKind::Domain
                | FieldKind::FoldedText
                | FieldKind::LeadName => "a quoted string",
                FieldKind::Time => "a quoted RFC 3339 time",
                FieldKind::Points | FieldKind::Integer => "a number",
            };
            return err(format!("{field} expects {expected}, found {}", describe(other)));
        }
    };
    Ok((op, value))
}

/// How a folded field is stored and compared: lower case (Unicode), so `=` and `:` ignore case.
pub fn fold(text: &str) -> String {
    text.to_lowercase()
}

/// Parses a filter against the fields a resource allows (usually `F::ALL`). The empty filter
/// matches everything.
pub fn parse_filter<F: Field>(input: &str, fields: &[F]) -> Result<Filter<F>, QueryError> {
    if input.len() > MAX_FILTER_LEN {
        return err(format!("filter must be at most {MAX_FILTER_LEN} bytes"));
    }
    let tokens = tokenize(input)?;
    let mut parser = Parser {
        tokens: tokens.into_iter().peekable(),
        fields,
        comparisons: 0,
    };
    let mut filter = Filter::default();
    if parser.tokens.peek().is_none() {
        return Ok(filter);
    }
    loop {
        filter.groups.extend(parser.term()?);
        match parser.tokens.next() {
            None => return Ok(filter),
            Some(Token::And) => continue,
            other => return err(format!("expected AND in filter, found {}", describe(other))),
        }
    }
}

/// The type of one sort-key value. A page token comes back from the caller, so the values it
/// carries are checked against these before they are compared with a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Int,
    Text,
    Uuid,
}

impl Value {
    fn has_type(&self, key_type: KeyType) -> bool {
        matches!(
            (self, key_type),
            (Value::Int(_), KeyType::Int) | (Value::Text(_), KeyType::Text) | (Value::Uuid(_), KeyType::Uuid)
        )
    }
}

/// Whether `key` is a sort key of `order`: as many values as the order has, each of its type, and
/// no text the database would refuse.
fn accepts<O: Order>(order: O, key: &[Value]) -> bool {
    let types = order.key_types();
    key.len() == types.len()
        && key.iter().zip(types).all(|(value, key_type)| {
            value.has_type(*key_type)
                && match value {
                    Value::Text(text) => no_control_characters(text, Lines::Single).is_ok(),
                    Value::Int(_) | Value::Uuid(_) => true,
                }
        })
}

/// Picks the order named by `order_by`; the first of `O::ALL` is the default.
pub fn parse_order_by<O: Order>(order_by: &str) -> Result<O, QueryError> {
    let wanted = order_by.split_whitespace().collect::<Vec<_>>().join(" ");
    let wanted = wanted.strip_suffix(" asc").unwrap_or(&wanted);
    if wanted.is_empty() {
        return Ok(O::ALL[0]);
    }
    O::ALL
        .iter()
        .copied()
        .find(|o| o.name() == wanted)
        .ok_or_else(|| {
            let known: Vec<_> = O::ALL.iter().map(|o| o.name()).collect();
            QueryError(format!(
                "order_by must be one of {}, got {:?}",
                known.join(", "),
                clip(order_by)
            ))
        })
}

/// Validates `page_size`: 0 means the default, above the maximum means the maximum.
pub fn page_size(requested: i32) -> Result<usize, QueryError> {
    match requested {
        n if n < 0 => err("must not be negative"),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok((n as usize).min(MAX_PAGE_SIZE)),
    }
}

/// A parsed list request: the filter, the order, where to resume and how many to return.
#[derive(Clone, Debug)]
pub struct ListQuery<F, O> {
    pub filter: Filter<F>,
    pub order: O,
    /// The sort key of the last item already returned.
    pub after: Option<Vec<Value>>,
    pub limit: usize,
    /// Binds the page token to this filter and order.
    fingerprint: String,
}

#[derive(Serialize, Deserialize)]
struct PageToken {
    /// Fingerprint of the filter and order the token was issued for.
    q: String,
    /// Sort key of the last item returned.
    k: Vec<Value>,
}

/// Parses a list request against a resource's fields and orders; an error names the field of the
/// request it is about.
pub fn parse_list<F: Field, O: Order>(
    filter: &str,
    order_by: &str,
    page_token: &str,
    requested_page_size: i32,
) -> Result<ListQuery<F, O>, (&'static str, QueryError)> {
    let limit = page_size(requested_page_size).map_err(|e| ("page_size", e))?;
    let parsed_filter = parse_filter(filter, F::ALL).map_err(|e| ("filter", e))?;
    let order = parse_order_by::<O>(order_by).map_err(|e| ("order_by", e))?;
    let fingerprint = {
        let digest = Sha256::new()
            .chain_update(filter.trim())
            .chain_update([0])
            .chain_update(order.name())
            .finalize();
        super::hex::to_hex(&digest[..8])
    };
    let after = if page_token.is_empty() {
        None
    } else {
        Some(decode_token(page_token, &fingerprint, order).map_err(|e| ("page_token", e))?)
    };
    Ok(ListQuery {
        filter: parsed_filter,
        order,
        after,
        limit,
        fingerprint,
    })
}

fn decode_token<O: Order>(token: &str, fingerprint: &str, order: O) -> Result<Vec<Value>, QueryError> {
    let invalid = || QueryError("page_token is not a token this list returned".into());
    if token.len() > 1024 {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let decoded: PageToken = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if decoded.q != fingerprint {
        return err("page_token was issued for another filter or order_by");
    }
    // A token is a caller's text: a forged one with the right fingerprint may carry values of
    // the wrong types, which PostgreSQL refuses (an error that is not the server's) and SQLite
    // compares by its own type order (a wrong page).
    if !accepts(order, &decoded.k) {
        return Err(invalid());
    }
    Ok(decoded.k)
}

impl<F, O: Order> ListQuery<F, O> {
    /// A query built by the server itself (no page token to check).
    pub fn new(filter: Filter<F>, order: O, limit: usize) -> Self {
        Self {
            filter,
            order,
            after: None,
            limit,
            fingerprint: String::new(),
        }
    }

    /// The token that resumes after an item with this sort key.
    pub fn token_after(&self, key: Vec<Value>) -> String {
        debug_assert!(
            accepts(self.order, &key),
            "the sort key {key:?} does not fit the order {:?}",
            self.order
        );
        let token = PageToken {
            q: self.fingerprint.clone(),
            k: key,
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).expect("a page token serialises"))
    }

    /// Makes a page of what the store returned (at most `limit + 1` items: the extra one says that
    /// another page exists): keeps `limit` items, and gives the token of the next page, empty on
    /// the last one.
    pub fn page<T>(&self, items: &mut Vec<T>, key: impl FnOnce(&T) -> Vec<Value>) -> String {
        if items.len() <= self.limit {
            return String::new();
        }
        items.truncate(self.limit);
        items
            .last()
            .map(|last| self.token_after(key(last)))
            .unwrap_or_default()
    }

    /// Whether the store returned more than a page, after which the next page starts at `key`.
    pub fn advance<T>(&mut self, items: &mut Vec<T>, key: impl FnOnce(&T) -> Vec<Value>) -> bool {
        let more = items.len() > self.limit;
        items.truncate(self.limit);
        match (more, items.last()) {
            (true, Some(last)) => {
                self.after = Some(key(last));
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[LeadField] = LeadField::ALL;

    fn leads(
        filter: &str,
        token: &str,
    ) -> Result<ListQuery<LeadField, LeadOrder>, (&'static str, QueryError)> {
        parse_list(filter, "", token, 10)
    }

    #[test]
    fn parses_conjunctions_and_disjunctions() {
        let f = parse_filter(
            r#"(state = LEAD OR state = LEAD_STATE_NURTURING) AND create_time >= "2026-01-01T00:00:00Z" AND scores.combined_points > 49.5"#,
            FIELDS,
        )
        .unwrap();
        assert_eq!(f.groups.len(), 3);
        assert_eq!(f.groups[0].len(), 2);
        assert_eq!(f.groups[0][1].value, Value::Text("NURTURING".into()));
        assert_eq!(f.groups[2][0].value, Value::Int(4950));
    }

    #[test]
    fn rejects_unknown_fields_values_and_operators() {
        for bad in [
            "colour = RED",
            "state = PURPLE",
            "state > LEAD",
            "create_time >= yesterday",
            "create_time >= \"not a time\"",
            "state = LEAD AND",
            "state = LEAD OR state = NURTURING",
            "(state = LEAD",
            "\"unterminated",
            "state = LEAD; DROP TABLE leads",
        ] {
            assert!(parse_filter(bad, FIELDS).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_values_with_control_characters_are_refused_naming_the_field() {
        const ACTOR: &[AuditField] = &[AuditField::Actor];
        for bad in [
            "actor = \"a\u{0}b\"",
            "actor = \"two\nlines\"",
            "actor != \"\u{1b}[2J\"",
        ] {
            let why = parse_filter(bad, ACTOR).unwrap_err().0;
            assert!(
                why.starts_with("actor must not contain control characters"),
                "{bad:?}: {why}"
            );
        }
        assert!(parse_filter("actor = \"ana@example.com\"", ACTOR).is_ok());
    }

    #[test]
    fn page_tokens_are_bound_to_their_query() {
        let q = leads("state = LEAD", "").unwrap();
        let token = q.token_after(vec![Value::Int(5), Value::Uuid(Uuid::nil())]);
        assert!(leads("state = LEAD", &token).is_ok());
        let (field, _) = leads("state = NURTURING", &token).unwrap_err();
        assert_eq!(field, "page_token");
        assert!(leads("", "garbage!").is_err());
    }

    #[test]
    fn a_page_token_with_key_values_of_the_wrong_types_is_refused() {
        let q = leads("", "").unwrap();
        let forge = |k: Vec<Value>| {
            URL_SAFE_NO_PAD.encode(
                serde_json::to_vec(&PageToken {
                    q: q.fingerprint.clone(),
                    k,
                })
                .unwrap(),
            )
        };
        for key in [
            vec![Value::Text("2026-01-01".into()), Value::Uuid(Uuid::nil())],
            vec![Value::Int(5), Value::Int(7)],
            vec![Value::Int(5), Value::Text("x".into())],
            vec![Value::Uuid(Uuid::nil()), Value::Uuid(Uuid::nil())],
            vec![Value::Int(5)],
        ] {
            let (field, why) = leads("", &forge(key.clone())).unwrap_err();
            assert_eq!(field, "page_token", "{key:?}");
            assert!(why.0.contains("not a token this list returned"), "{key:?}: {why}");
        }
        assert!(leads("", &forge(vec![Value::Int(5), Value::Uuid(Uuid::nil())])).is_ok());
    }

    #[test]
    fn a_text_key_holding_nul_is_refused() {
        let policies = |token: &str| parse_list::<NoField, PolicyOrder>("", "", token, 10);
        let q = policies("").unwrap();
        let token = q.token_after(vec![Value::Int(1), Value::Text("v1".into())]);
        assert!(policies(&token).is_ok());
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&PageToken {
                q: q.fingerprint.clone(),
                k: vec![Value::Int(1), Value::Text("v\0".into())],
            })
            .unwrap(),
        );
        assert_eq!(policies(&forged).unwrap_err().0, "page_token");
    }

    #[test]
    fn the_sort_key_of_every_order_fits_its_key_types() {
        use crate::domain::engine::fixtures::{cfo, policy, submit, t0};
        let lead = submit(&cfo(), &[], &policy(), t0()).lead;
        for order in LeadOrder::ALL {
            assert!(accepts(*order, &order.key(&lead)), "{order:?}");
        }
        for order in AuditOrder::ALL {
            assert!(accepts(*order, &order.key(7)), "{order:?}");
        }
    }

    #[test]
    fn a_page_keeps_the_limit_and_tells_where_the_next_one_starts() {
        let q = leads("", "").unwrap();
        let mut items: Vec<i64> = (0..11).collect();
        let token = q.page(&mut items, |last| {
            vec![Value::Int(*last), Value::Uuid(Uuid::nil())]
        });
        assert_eq!(items.len(), 10);
        assert!(leads("", &token).unwrap().after == Some(vec![Value::Int(9), Value::Uuid(Uuid::nil())]));
        let mut last_page: Vec<i64> = (0..10).collect();
        assert_eq!(q.page(&mut last_page, |_| unreachable!()), "");
    }

    #[test]
    fn every_name_of_a_closed_set_is_a_filter_value_with_or_without_its_prefix() {
        use crate::domain::audit::AuditKind;
        use crate::domain::lifecycle::LeadState;
        use crate::domain::values::{FitGrade, SourceChannel};
        let cases: [(&str, &[&str], &str); 4] = [
            ("state", LeadState::NAMES, LeadState::PREFIX),
            ("source.channel", SourceChannel::NAMES, SourceChannel::PREFIX),
            ("scores.fit_grade", FitGrade::NAMES, FitGrade::PREFIX),
            ("kind", AuditKind::NAMES, AuditKind::PREFIX),
        ];
        for (field, names, prefix) in cases {
            for name in names {
                for written in [name.to_string(), format!("{prefix}{name}")] {
                    let filter = format!("{field} = {written}");
                    let parsed = if field == "kind" {
                        parse_filter(&filter, AuditField::ALL).map(|f| f.groups[0][0].value.clone())
                    } else {
                        parse_filter(&filter, LeadField::ALL).map(|f| f.groups[0][0].value.clone())
                    };
                    assert_eq!(parsed, Ok(Value::Text(name.to_string())), "{filter}");
                }
            }
        }
    }

    fn one(filter: &str) -> Condition<LeadField> {
        let parsed = parse_filter(filter, FIELDS).unwrap();
        assert_eq!(parsed.groups.len(), 1, "{filter}");
        assert_eq!(parsed.groups[0].len(), 1, "{filter}");
        parsed.groups[0][0].clone()
    }

    #[test]
    fn search_values_are_normalised_as_the_service_stores_them() {
        let text = |s: &str| Value::Text(s.into());
        assert_eq!(
            one(r#"contact.email = " Jane.Doe@ACME.com. ""#).value,
            text("jane.doe@acme.com")
        );
        assert_eq!(one(r#"company.domain = "ACME.com.""#).value, text("acme.com"));
        assert_eq!(one(r#"company.domain : "ACME""#).value, text("acme"));
        assert_eq!(
            one(r#"company.name = "Société GÉNÉRALE""#).value,
            text("société générale")
        );
        assert_eq!(one(r#"source.campaign = "Q3-Launch""#).value, text("Q3-Launch"));
        assert_eq!(one(r#"source.campaign : "Q3-Launch""#).value, text("q3-launch"));
        assert_eq!(one(r#"external_reference = "CRM-0042""#).value, text("CRM-0042"));
    }

    #[test]
    fn a_trailing_star_on_a_company_name_is_a_prefix() {
        let c = one(r#"company.name = "ACME*""#);
        assert_eq!(
            (c.op, c.value, c.negated),
            (Op::Prefix, Value::Text("acme".into()), false)
        );
        let c = one(r#"company.name != "Acme*""#);
        assert_eq!((c.op, c.negated), (Op::Prefix, true));
        let c = one(r#"company.name : "acme*""#);
        assert_eq!((c.op, c.value), (Op::Has, Value::Text("acme*".into())));
        assert!(parse_filter(r#"company.name = "*""#, FIELDS).is_err());
    }

    #[test]
    fn contains_is_accepted_on_searchable_text_fields_only() {
        for good in [
            r#"company.domain : "acme""#,
            r#"company.name : "acme""#,
            r#"source.campaign : "launch""#,
        ] {
            assert_eq!(one(good).op, Op::Has, "{good}");
        }
        for (bad, why) in [
            (r#"contact.email : "acme""#, "contact.email accepts only = and !="),
            (
                r#"external_reference : "42""#,
                "external_reference accepts only = and !=",
            ),
            ("state : LEAD", "state accepts only = and !="),
            (
                "scores.combined_points : 5",
                "scores.combined_points does not accept :",
            ),
            (r#"company.name > "a""#, "company.name accepts only =, != and :"),
        ] {
            assert_eq!(parse_filter(bad, FIELDS).unwrap_err().0, why, "{bad}");
        }
        assert!(parse_filter(r#"actor : "ana""#, AuditField::ALL).is_err());
    }

    #[test]
    fn a_bad_email_or_domain_is_refused_naming_the_field() {
        let why = parse_filter(r#"contact.email = "jane""#, FIELDS).unwrap_err().0;
        assert!(why.starts_with("contact.email must be an email address"), "{why}");
        let why = parse_filter(r#"company.domain = "not a domain""#, FIELDS)
            .unwrap_err()
            .0;
        assert!(why.starts_with("company.domain must be a domain name"), "{why}");
    }

    #[test]
    fn not_negates_a_comparison_or_a_group_by_de_morgan() {
        let c = one("NOT state = LEAD");
        assert!(c.negated && c.op == Op::Eq);
        assert!(!one("NOT NOT state = LEAD").negated);
        let f = parse_filter(
            r#"NOT (state = LEAD OR NOT company.domain = "acme.com") AND create_time > "2026-01-01T00:00:00Z""#,
            FIELDS,
        )
        .unwrap();
        let shape: Vec<Vec<(LeadField, bool)>> = f
            .groups
            .iter()
            .map(|g| g.iter().map(|c| (c.field, c.negated)).collect())
            .collect();
        assert_eq!(
            shape,
            [
                vec![(LeadField::State, true)],
                vec![(LeadField::CompanyDomain, false)],
                vec![(LeadField::CreateTime, false)],
            ]
        );
        let f = parse_filter(r#"(NOT state = LEAD OR external_reference = "x")"#, FIELDS).unwrap();
        assert_eq!(f.groups.len(), 1);
        assert!(f.groups[0][0].negated && !f.groups[0][1].negated);
    }

    #[test]
    fn or_may_join_different_fields_inside_a_group() {
        let f = parse_filter(
            r#"(contact.email = "a@acme.com" OR company.domain = "acme.com" OR external_reference = "42")"#,
            FIELDS,
        )
        .unwrap();
        let fields: Vec<_> = f.groups[0].iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                LeadField::Email,
                LeadField::CompanyDomain,
                LeadField::ExternalReference
            ]
        );
    }

    #[test]
    fn misplaced_nots_and_colons_are_refused_saying_what_was_expected() {
        for (bad, why) in [
            (
                "NOT",
                "expected a field name in filter, found the end of the filter",
            ),
            ("state = LEAD NOT", "expected AND in filter, found NOT"),
            ("state NOT = LEAD", "expected an operator after state, found NOT"),
            (
                "NOT (state = LEAD",
                "expected OR or ) in filter, found the end of the filter",
            ),
            (
                "NOT (state = LEAD AND state = LOST)",
                "expected OR or ) in filter, found AND",
            ),
            (
                r#"company.name = : "a""#,
                "company.name expects a quoted string, found the operator :",
            ),
            (": \"a\"", "expected a field name in filter, found the operator :"),
        ] {
            assert_eq!(parse_filter(bad, FIELDS).unwrap_err().0, why, "{bad}");
        }
    }

    #[test]
    fn nots_count_no_comparison_but_their_comparisons_do() {
        let many = vec!["NOT state = LEAD"; MAX_COMPARISONS].join(" AND ");
        assert!(parse_filter(&many, FIELDS).is_ok());
        let group = format!("NOT ({})", vec!["state = LEAD"; MAX_COMPARISONS + 1].join(" OR "));
        let why = parse_filter(&group, FIELDS).unwrap_err().0;
        assert_eq!(why, format!("filter has more than {MAX_COMPARISONS} comparisons"));
    }

    #[test]
    fn page_tokens_are_bound_to_a_search_filter() {
        let q = leads(r#"company.domain = "acme.com""#, "").unwrap();
        let token = q.token_after(vec![Value::Int(5), Value::Uuid(Uuid::nil())]);
        assert!(leads(r#"company.domain = "acme.com""#, &token).is_ok());
        for other in [
            r#"NOT company.domain = "acme.com""#,
            r#"company.domain : "acme.com""#,
        ] {
            assert_eq!(leads(other, &token).unwrap_err().0, "page_token", "{other}");
        }
    }

    #[test]
    fn page_size_defaults_caps_and_rejects_negative() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(5000).unwrap(), MAX_PAGE_SIZE);
        assert!(page_size(-1).is_err());
    }
}
