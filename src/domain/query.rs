//! List queries: the filter language (a subset of AIP-160), `order_by`, and opaque keyset page
//! tokens. Parsing is pure; the store turns a parsed query into SQL.
//!
//! Grammar: `term (AND term)*`, where a term is `field op value` or a parenthesised
//! `(field op value OR field op value ...)`; `op` is one of `= != < <= > >=`; a value is a
//! "quoted string", a number, or a bare enum name.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::validation::{Lines, no_control_characters};
use super::values::{LeadId, clip};

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
}

impl Op {
    pub fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// A value compared with a column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SqlValue {
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
    /// A quoted string.
    Text,
    /// A quoted `leads/{uuid}`.
    LeadName,
    /// A quoted RFC 3339 time, compared as microseconds since the epoch.
    Time,
    /// A number of points, compared in hundredths.
    Points,
    /// An integer.
    Integer,
}

/// A field a filter may name, and the column it reads.
#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    pub name: &'static str,
    pub column: &'static str,
    pub kind: FieldKind,
}

/// One parsed comparison, ready for SQL: `column op value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub column: &'static str,
    pub op: Op,
    pub value: SqlValue,
}

/// A parsed filter: every group must hold; a group holds when any of its conditions does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub groups: Vec<Vec<Condition>>,
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

struct Parser<'a> {
    tokens: std::iter::Peekable<std::vec::IntoIter<Token>>,
    fields: &'a [FieldSpec],
    comparisons: usize,
}

impl Parser<'_> {
    fn comparison(&mut self) -> Result<Condition, QueryError> {
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
        let spec = self.fields.iter().find(|f| f.name == name).ok_or_else(|| {
            let known: Vec<_> = self.fields.iter().map(|f| f.name).collect();
            QueryError(format!(
                "unknown filter field {:?}; known fields: {}",
                clip(&name),
                known.join(", ")
            ))
        })?;
        let op = match self.tokens.next() {
            Some(Token::Op(op)) => op,
            other => {
                return err(format!(
                    "expected an operator after {name}, found {}",
                    describe(other)
                ));
            }
        };
        let value = self.tokens.next();
        let value = convert_value(spec, op, value)?;
        Ok(Condition {
            column: spec.column,
            op,
            value,
        })
    }

    fn term(&mut self) -> Result<Vec<Condition>, QueryError> {
        if self.tokens.next_if_eq(&Token::Open).is_none() {
            return Ok(vec![self.comparison()?]);
        }
        let mut group = vec![self.comparison()?];
        loop {
            match self.tokens.next() {
                Some(Token::Or) => group.push(self.comparison()?),
                Some(Token::Close) => return Ok(group),
                other => {
                    return err(format!("expected OR or ) in filter, found {}", describe(other)));
                }
            }
        }
    }
}

fn describe(token: Option<Token>) -> String {
    match token {
        None => "the end of the filter".into(),
        Some(Token::Ident(s)) => format!("{:?}", clip(&s)),
        Some(Token::Str(s)) => format!("the string {:?}", clip(&s)),
        Some(Token::Num(s)) => format!("the number {}", clip(&s)),
        Some(Token::Op(op)) => format!("the operator {}", op.sql()),
        Some(Token::And) => "AND".into(),
        Some(Token::Or) => "OR".into(),
        Some(Token::Open) => "(".into(),
        Some(Token::Close) => ")".into(),
    }
}

fn convert_value(spec: &FieldSpec, op: Op, token: Option<Token>) -> Result<SqlValue, QueryError> {
    let equality_only = matches!(
        spec.kind,
        FieldKind::Enum { .. } | FieldKind::Text | FieldKind::LeadName
    );
    if equality_only && !matches!(op, Op::Eq | Op::Ne) {
        return err(format!("{} accepts only = and !=", spec.name));
    }
    let field = spec.name;
    match (spec.kind, token) {
        (FieldKind::Enum { names, prefix }, Some(Token::Ident(v))) => {
            let bare = v.strip_prefix(prefix).unwrap_or(&v);
            match names.iter().find(|n| **n == bare) {
                Some(name) => Ok(SqlValue::Text((*name).to_owned())),
                None => err(format!(
                    "{field} must be one of {}, got {:?}",
                    names.join(", "),
                    clip(&v)
                )),
            }
        }
        (FieldKind::Text, Some(Token::Str(v))) => no_control_characters(&v, Lines::Single)
            .map(|()| SqlValue::Text(v))
            .map_err(|why| QueryError(format!("{field} {why}"))),
        (FieldKind::LeadName, Some(Token::Str(v))) => LeadId::parse_name(&v)
            .map(|id| SqlValue::Uuid(id.as_uuid()))
            .map_err(|why| QueryError(format!("{field} {why}"))),
        (FieldKind::Time, Some(Token::Str(v))) => chrono::DateTime::parse_from_rfc3339(&v)
            .map(|t| SqlValue::Int(t.timestamp_micros()))
            .map_err(|_| {
                QueryError(format!(
                    "{field} must be an RFC 3339 time such as \"2026-01-31T00:00:00Z\", got {:?}",
                    clip(&v)
                ))
            }),
        (FieldKind::Points, Some(Token::Num(v))) => v
            .parse::<f64>()
            .ok()
            .filter(|p| p.is_finite() && p.abs() < 1e12)
            .map(|p| SqlValue::Int((p * 100.0).round() as i64))
            .ok_or_else(|| QueryError(format!("{field} must be a number, got {}", clip(&v)))),
        (FieldKind::Integer, Some(Token::Num(v))) => v
            .parse::<i64>()
            .map(SqlValue::Int)
            .map_err(|_| QueryError(format!("{field} must be an integer, got {}", clip(&v)))),
        (kind, other) => {
            let expected = match kind {
                FieldKind::Enum { .. } => "a bare name such as LEAD",
                FieldKind::Text | FieldKind::LeadName => "a quoted string",
                FieldKind::Time => "a quoted RFC 3339 time",
                FieldKind::Points | FieldKind::Integer => "a number",
            };
            err(format!("{field} expects {expected}, found {}", describe(other)))
        }
    }
}

/// Parses a filter against the fields a resource allows. The empty filter matches everything.
pub fn parse_filter(input: &str, fields: &[FieldSpec]) -> Result<Filter, QueryError> {
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
        filter.groups.push(parser.term()?);
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

impl SqlValue {
    fn has_type(&self, key_type: KeyType) -> bool {
        matches!(
            (self, key_type),
            (SqlValue::Int(_), KeyType::Int)
                | (SqlValue::Text(_), KeyType::Text)
                | (SqlValue::Uuid(_), KeyType::Uuid)
        )
    }
}

/// One way a list may be ordered: by `column`, ties broken by `tie_break` (a unique column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderSpec {
    /// The `order_by` text that selects it.
    pub name: &'static str,
    pub column: &'static str,
    pub tie_break: Option<&'static str>,
    /// The types of the sort key: the column's, then the tie-break's.
    pub key_types: &'static [KeyType],
    pub descending: bool,
}

impl OrderSpec {
    /// How many key values a page token carries for this order.
    pub fn key_len(&self) -> usize {
        1 + usize::from(self.tie_break.is_some())
    }

    /// Whether `key` is a sort key of this order: as many values as the order has columns, each
    /// of its column's type, and no text the database would refuse.
    fn accepts(&self, key: &[SqlValue]) -> bool {
        key.len() == self.key_len()
            && key.len() == self.key_types.len()
            && key.iter().zip(self.key_types).all(|(value, key_type)| {
                value.has_type(*key_type)
                    && match value {
                        SqlValue::Text(text) => no_control_characters(text, Lines::Single).is_ok(),
                        SqlValue::Int(_) | SqlValue::Uuid(_) => true,
                    }
            })
    }
}

/// Picks the order named by `order_by`; the first of `orders` is the default.
pub fn parse_order_by(
    order_by: &str,
    orders: &'static [OrderSpec],
) -> Result<&'static OrderSpec, QueryError> {
    let wanted = order_by.split_whitespace().collect::<Vec<_>>().join(" ");
    let wanted = wanted.strip_suffix(" asc").unwrap_or(&wanted);
    if wanted.is_empty() {
        return Ok(&orders[0]);
    }
    orders.iter().find(|o| o.name == wanted).ok_or_else(|| {
        let known: Vec<_> = orders.iter().map(|o| o.name).collect();
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
pub struct ListQuery {
    pub filter: Filter,
    pub order: &'static OrderSpec,
    /// The sort key of the last item already returned.
    pub after: Option<Vec<SqlValue>>,
    pub limit: usize,
    /// Binds the page token to this filter and order.
    fingerprint: String,
}

#[derive(Serialize, Deserialize)]
struct PageToken {
    /// Fingerprint of the filter and order the token was issued for.
    q: String,
    /// Sort key of the last item returned.
    k: Vec<SqlValue>,
}

/// Parses a list request against a resource's fields and orders.
pub fn parse_list(
    filter: &str,
    order_by: &str,
    page_token: &str,
    requested_page_size: i32,
    fields: &[FieldSpec],
    orders: &'static [OrderSpec],
) -> Result<ListQuery, (&'static str, QueryError)> {
    let limit = page_size(requested_page_size).map_err(|e| ("page_size", e))?;
    let parsed_filter = parse_filter(filter, fields).map_err(|e| ("filter", e))?;
    let order = parse_order_by(order_by, orders).map_err(|e| ("order_by", e))?;
    let fingerprint = {
        let digest = Sha256::new()
            .chain_update(filter.trim())
            .chain_update([0])
            .chain_update(order.name)
            .finalize();
        super::audit::to_hex(&digest[..8])
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

fn decode_token(token: &str, fingerprint: &str, order: &OrderSpec) -> Result<Vec<SqlValue>, QueryError> {
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
    if !order.accepts(&decoded.k) {
        return Err(invalid());
    }
    Ok(decoded.k)
}

impl ListQuery {
    /// A query built by the server itself (no page token to check).
    pub fn new(filter: Filter, order: &'static OrderSpec, limit: usize) -> Self {
        Self {
            filter,
            order,
            after: None,
            limit,
            fingerprint: String::new(),
        }
    }

    /// The token that resumes after an item with this sort key.
    pub fn token_after(&self, key: Vec<SqlValue>) -> String {
        debug_assert!(
            self.order.accepts(&key),
            "the sort key {key:?} does not fit the order {:?}",
            self.order
        );
        let token = PageToken {
            q: self.fingerprint.clone(),
            k: key,
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).expect("a page token serialises"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[FieldSpec] = &[
        FieldSpec {
            name: "state",
            column: "state",
            kind: FieldKind::Enum {
                names: &["LEAD", "NURTURING"],
                prefix: "LEAD_STATE_",
            },
        },
        FieldSpec {
            name: "create_time",
            column: "create_time",
            kind: FieldKind::Time,
        },
        FieldSpec {
            name: "scores.combined_points",
            column: "combined_points",
            kind: FieldKind::Points,
        },
    ];
    const ORDERS: &[OrderSpec] = &[OrderSpec {
        name: "create_time",
        column: "create_time",
        tie_break: Some("id"),
        key_types: &[KeyType::Int, KeyType::Uuid],
        descending: false,
    }];

    #[test]
    fn parses_conjunctions_and_disjunctions() {
        let f = parse_filter(
            r#"(state = LEAD OR state = LEAD_STATE_NURTURING) AND create_time >= "2026-01-01T00:00:00Z" AND scores.combined_points > 49.5"#,
            FIELDS,
        )
        .unwrap();
        assert_eq!(f.groups.len(), 3);
        assert_eq!(f.groups[0].len(), 2);
        assert_eq!(f.groups[0][1].value, SqlValue::Text("NURTURING".into()));
        assert_eq!(f.groups[2][0].value, SqlValue::Int(4950));
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
        const ACTOR: &[FieldSpec] = &[FieldSpec {
            name: "actor",
            column: "actor",
            kind: FieldKind::Text,
        }];
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
        let q = parse_list("state = LEAD", "", "", 10, FIELDS, ORDERS).unwrap();
        let token = q.token_after(vec![SqlValue::Int(5), SqlValue::Uuid(Uuid::nil())]);
        assert!(parse_list("state = LEAD", "", &token, 10, FIELDS, ORDERS).is_ok());
        let (field, _) = parse_list("state = NURTURING", "", &token, 10, FIELDS, ORDERS).unwrap_err();
        assert_eq!(field, "page_token");
        assert!(parse_list("", "", "garbage!", 10, FIELDS, ORDERS).is_err());
    }

    #[test]
    fn a_page_token_with_key_values_of_the_wrong_types_is_refused() {
        let q = parse_list("", "", "", 10, FIELDS, ORDERS).unwrap();
        let forge = |k: Vec<SqlValue>| {
            URL_SAFE_NO_PAD.encode(
                serde_json::to_vec(&PageToken {
                    q: q.fingerprint.clone(),
                    k,
                })
                .unwrap(),
            )
        };
        for key in [
            vec![SqlValue::Text("2026-01-01".into()), SqlValue::Uuid(Uuid::nil())],
            vec![SqlValue::Int(5), SqlValue::Int(7)],
            vec![SqlValue::Int(5), SqlValue::Text("x".into())],
            vec![SqlValue::Uuid(Uuid::nil()), SqlValue::Uuid(Uuid::nil())],
            vec![SqlValue::Int(5)],
        ] {
            let (field, why) = parse_list("", "", &forge(key.clone()), 10, FIELDS, ORDERS).unwrap_err();
            assert_eq!(field, "page_token", "{key:?}");
            assert!(why.0.contains("not a token this list returned"), "{key:?}: {why}");
        }
        assert!(
            parse_list(
                "",
                "",
                &forge(vec![SqlValue::Int(5), SqlValue::Uuid(Uuid::nil())]),
                10,
                FIELDS,
                ORDERS
            )
            .is_ok()
        );
    }

    #[test]
    fn a_text_key_holding_nul_is_refused() {
        const BY_VERSION: &[OrderSpec] = &[OrderSpec {
            name: "activate_time desc",
            column: "activate_time",
            tie_break: Some("version"),
            key_types: &[KeyType::Int, KeyType::Text],
            descending: true,
        }];
        let q = parse_list("", "", "", 10, &[], BY_VERSION).unwrap();
        let token = q.token_after(vec![SqlValue::Int(1), SqlValue::Text("v1".into())]);
        assert!(parse_list("", "", &token, 10, &[], BY_VERSION).is_ok());
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&PageToken {
                q: q.fingerprint.clone(),
                k: vec![SqlValue::Int(1), SqlValue::Text("v\0".into())],
            })
            .unwrap(),
        );
        assert_eq!(
            parse_list("", "", &forged, 10, &[], BY_VERSION).unwrap_err().0,
            "page_token"
        );
    }

    #[test]
    fn page_size_defaults_caps_and_rejects_negative() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(5000).unwrap(), MAX_PAGE_SIZE);
        assert!(page_size(-1).is_err());
    }
}
