//! List queries in SQL: the only place where a resource's filter fields and orders meet their
//! columns. A new filter field is one arm in its resource's `*_column`.

use sqlx::query::Query;
use sqlx::{Database, Encode, Type};
use uuid::Uuid;

use super::sql::{LOG_COLUMNS, POLICY_COLUMNS, QUARANTINE_COLUMNS};
use crate::domain::query::{
    AuditField, AuditOrder, Condition, Field, FieldKind, LeadField, LeadOrder, ListQuery, NoField, Op,
    PolicyOrder, QuarantineOrder, Value,
};

/// How an order reads in SQL.
#[derive(Clone, Copy, Debug)]
struct OrderColumns {
    column: &'static str,
    /// A unique column that breaks ties, so that keyset pages never skip nor repeat a row.
    tie_break: Option<&'static str>,
    descending: bool,
}

fn lead_column(field: LeadField) -> &'static str {
    match field {
        LeadField::State => "state",
        LeadField::SourceChannel => "source_channel",
        LeadField::FitGrade => "fit_grade",
        LeadField::CombinedPoints => "combined_points",
        LeadField::CreateTime => "create_time",
        LeadField::UpdateTime => "update_time",
        LeadField::Email => "email",
        LeadField::CompanyDomain => "company_domain",
        LeadField::CompanyName => "company_name_folded",
        LeadField::SourceCampaign => "source_campaign",
        LeadField::ExternalReference => "external_reference",
    }
}

fn lead_order(order: LeadOrder) -> OrderColumns {
    let (column, descending) = match order {
        LeadOrder::CreateTime => ("create_time", false),
        LeadOrder::CreateTimeDesc => ("create_time", true),
        LeadOrder::UpdateTime => ("update_time", false),
        LeadOrder::UpdateTimeDesc => ("update_time", true),
        LeadOrder::CombinedPointsDesc => ("combined_points", true),
    };
    OrderColumns {
        column,
        tie_break: Some("id"),
        descending,
    }
}

fn audit_column(field: AuditField) -> &'static str {
    match field {
        AuditField::Lead => "lead_id",
        AuditField::Actor => "actor",
        AuditField::Kind => "kind",
        AuditField::StateBefore => "state_before",
        AuditField::StateAfter => "state_after",
        AuditField::PolicyVersion => "policy_version",
        AuditField::SourceChannel => "source_channel",
        AuditField::RecordTime => "record_time",
        AuditField::Position => "position",
    }
}

fn audit_order(order: AuditOrder) -> OrderColumns {
    OrderColumns {
        column: "position",
        tie_break: None,
        descending: match order {
            AuditOrder::Position => false,
            AuditOrder::PositionDesc => true,
        },
    }
}

fn no_column(field: NoField) -> &'static str {
    match field {}
}

fn op_sql(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "<>",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Has | Op::Prefix => unreachable!("{op:?} is not a plain comparison"),
    }
}

/// A `LIKE` pattern matching `text` literally (with `ESCAPE '\'`).
fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// The least text greater than every text that starts with `prefix`, in code point order (which
/// is byte order in UTF-8, SQLite's BINARY and PostgreSQL's "C"); none if no text is.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// One condition in SQL, its values pushed to `binds`.
fn condition_sql<F: Field>(column: &str, c: &Condition<F>, binds: &mut Vec<Value>) -> String {
    let text = |v: &Value| match v {
        Value::Text(t) => t.clone(),
        other @ (Value::Int(_) | Value::Uuid(_)) => unreachable!("{other:?} is not text"),
    };
    let sql = match c.op {
        Op::Has => {
            binds.push(Value::Text(format!("%{}%", like_literal(&text(&c.value)))));
            // The folded and normalised columns are lower case already.
            let column = if matches!(c.field.kind(), FieldKind::SearchText) {
                format!("lower({column})")
            } else {
                column.to_owned()
            };
            format!("{column} LIKE ${} ESCAPE '\\'", binds.len())
        }
        // A range rather than LIKE: an index serves it with the value bound as a parameter.
        Op::Prefix => {
            let prefix = text(&c.value);
            let upper = successor(&prefix);
            binds.push(Value::Text(prefix));
            let from = binds.len();
            match upper {
                Some(upper) => {
                    binds.push(Value::Text(upper));
                    format!("{column} >= ${from} AND {column} < ${}", binds.len())
                }
                None => format!("{column} >= ${from}"),
            }
        }
        op @ (Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge) => {
            binds.push(c.value.clone());
            format!("{column} {} ${}", op_sql(op), binds.len())
        }
    };
    if c.negated {
        // The complement, a NULL column included.
        format!("({sql}) IS NOT TRUE")
    } else {
        format!("({sql})")
    }
}

/// `SELECT document FROM leads ...`.
pub fn leads(query: &ListQuery<LeadField, LeadOrder>) -> (String, Vec<Value>) {
    select(
        "document",
        // Leads merged into another are aliases, never listed: their names answer the lead they
        // were merged into.
        ("leads", Some("merged_into IS NULL")),
        query,
        lead_column,
        lead_order(query.order),
        |_, _, _| {},
    )
}

/// The audit log's list. Every "recorded at or after T" condition also starts the scan at the
/// first position whose running maximum time reaches T. Exact: an entry recorded at or after T
/// has a running maximum at or after T.
pub fn audit(query: &ListQuery<AuditField, AuditOrder>) -> (String, Vec<Value>) {
    select(
        LOG_COLUMNS,
        ("audit_log", None),
        query,
        audit_column,
        audit_order(query.order),
        |group, binds, clauses| {
            if let [c] = group
                && c.field == AuditField::RecordTime
                && !c.negated
                && matches!(c.op, Op::Ge | Op::Gt | Op::Eq)
            {
                binds.push(c.value.clone());
                clauses.push(format!(
                    "position >= (SELECT position FROM audit_log WHERE record_time_max >= ${} \
                     ORDER BY record_time_max, position LIMIT 1)",
                    binds.len()
                ));
            }
        },
    )
}

/// The policies ever activated, the last first.
pub fn policies(query: &ListQuery<NoField, PolicyOrder>) -> (String, Vec<Value>) {
    let order = match query.order {
        PolicyOrder::ActivateTimeDesc => OrderColumns {
            column: "activate_time",
            tie_break: Some("version"),
            descending: true,
        },
    };
    select(
        POLICY_COLUMNS,
        ("policies", None),
        query,
        no_column,
        order,
        |_, _, _| {},
    )
}

/// The quarantined rows, the newest first.
pub fn quarantine(query: &ListQuery<NoField, QuarantineOrder>) -> (String, Vec<Value>) {
    let order = match query.order {
        QuarantineOrder::IdDesc => OrderColumns {
            column: "id",
            tie_break: None,
            descending: true,
        },
    };
    select(
        QUARANTINE_COLUMNS,
        ("audit_quarantine", None),
        query,
        no_column,
        order,
        |_, _, _| {},
    )
}

/// `SELECT {columns} FROM {table} WHERE <filter and page> ORDER BY <order> LIMIT <limit + 1>`;
/// `extra` may add clauses for a group of the filter; `table` comes with a condition every row
/// listed meets, if any.
fn select<F: Field, O>(
    columns: &str,
    (table, always): (&str, Option<&str>),
    query: &ListQuery<F, O>,
    column: fn(F) -> &'static str,
    order: OrderColumns,
    extra: impl Fn(&[Condition<F>], &mut Vec<Value>, &mut Vec<String>),
) -> (String, Vec<Value>) {
    let mut binds = Vec::new();
    let mut clauses: Vec<String> = always.into_iter().map(str::to_owned).collect();
    for group in &query.filter.groups {
        let alternatives: Vec<String> = group
            .iter()
            .map(|c| condition_sql(column(c.field), c, &mut binds))
            .collect();
        clauses.push(format!("({})", alternatives.join(" OR ")));
        extra(group, &mut binds, &mut clauses);
    }
    let (cmp, dir) = if order.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(after) = &query.after {
        binds.extend(after.iter().cloned());
        let n = binds.len();
        clauses.push(match order.tie_break {
            Some(tie) => format!("({}, {tie}) {cmp} (${}, ${n})", order.column, n - 1),
            None => format!("{} {cmp} ${n}", order.column),
        });
    }
    let mut sql = format!("SELECT {columns} FROM {table}");
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY {} {dir}", order.column));
    if let Some(tie) = order.tie_break {
        sql.push_str(&format!(", {tie} {dir}"));
    }
    sql.push_str(&format!(" LIMIT {}", query.limit + 1));
    (sql, binds)
}

/// Binds the values of a built query in order.
pub fn bind_values<'q, DB>(
    sql: &'q str,
    values: &'q [Value],
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    Uuid: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    values.iter().fold(sqlx::query(sql), |q, value| match value {
        Value::Text(v) => q.bind(v.as_str()),
        Value::Int(v) => q.bind(*v),
        Value::Uuid(v) => q.bind(*v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::query::parse_list;

    fn built(filter: &str) -> (String, Vec<Value>) {
        let query: ListQuery<LeadField, LeadOrder> = parse_list(filter, "", "", 10).unwrap();
        leads(&query)
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn a_name_prefix_is_a_range_of_the_folded_column() {
        let (sql, binds) = built(r#"company.name = "Acme*""#);
        assert!(
            sql.contains(
                "WHERE merged_into IS NULL AND ((company_name_folded >= $1 AND company_name_folded < $2))"
            ),
            "{sql}"
        );
        assert_eq!(binds, [text("acme"), text("acmf")]);
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(successor("\u{10FFFF}"), None);
    }

    #[test]
    fn merged_leads_are_never_listed_filter_or_not() {
        let (sql, binds) = built("");
        assert!(
            sql.starts_with("SELECT document FROM leads WHERE merged_into IS NULL ORDER BY"),
            "{sql}"
        );
        assert!(binds.is_empty());
    }

    #[test]
    fn contains_matches_its_text_literally() {
        let (sql, binds) = built(r#"company.name : "50%_off\\""#);
        assert!(sql.contains(r"(company_name_folded LIKE $1 ESCAPE '\')"), "{sql}");
        assert_eq!(binds, [text(r"%50\%\_off\\%")]);
        let (sql, _) = built(r#"source.campaign : "Q3""#);
        assert!(sql.contains("(lower(source_campaign) LIKE $1 ESCAPE"), "{sql}");
    }

    #[test]
    fn not_is_the_complement_and_groups_join_fields_with_or() {
        let (sql, binds) =
            built(r#"NOT state = LEAD AND (contact.email = "a@b.co" OR external_reference = "7")"#);
        assert!(
            sql.contains("WHERE merged_into IS NULL AND ((state = $1) IS NOT TRUE) AND ((email = $2) OR (external_reference = $3))"),
            "{sql}"
        );
        assert_eq!(binds, [text("LEAD"), text("a@b.co"), text("7")]);
    }

    #[test]
    fn a_negated_time_condition_does_not_move_the_audit_scan_start() {
        let query: ListQuery<AuditField, AuditOrder> =
            parse_list(r#"NOT record_time >= "2026-01-01T00:00:00Z""#, "", "", 10).unwrap();
        let (sql, _) = audit(&query);
        assert!(!sql.contains("record_time_max >="), "{sql}");
    }
}
