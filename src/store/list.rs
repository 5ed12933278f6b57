//! List queries in SQL: the only place where a resource's filter fields and orders meet their
//! columns. A new filter field is one arm in its resource's `*_column`.

use sqlx::query::Query;
use sqlx::{Database, Encode, Type};
use uuid::Uuid;

use super::sql::{LOG_COLUMNS, POLICY_COLUMNS, QUARANTINE_COLUMNS};
use crate::domain::query::{
    AuditField, AuditOrder, Condition, LeadField, LeadOrder, ListQuery, NoField, Op, PolicyOrder,
    QuarantineOrder, Value,
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
    }
}

/// `SELECT document FROM leads ...`.
pub fn leads(query: &ListQuery<LeadField, LeadOrder>) -> (String, Vec<Value>) {
    select(
        "document",
        "leads",
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
        "audit_log",
        query,
        audit_column,
        audit_order(query.order),
        |group, binds, clauses| {
            if let [c] = group
                && c.field == AuditField::RecordTime
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
    select(POLICY_COLUMNS, "policies", query, no_column, order, |_, _, _| {})
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
        "audit_quarantine",
        query,
        no_column,
        order,
        |_, _, _| {},
    )
}

/// `SELECT {columns} FROM {table} WHERE <filter and page> ORDER BY <order> LIMIT <limit + 1>`;
/// `extra` may add clauses for a group of the filter.
fn select<F: Copy, O>(
    columns: &str,
    table: &str,
    query: &ListQuery<F, O>,
    column: fn(F) -> &'static str,
    order: OrderColumns,
    extra: impl Fn(&[Condition<F>], &mut Vec<Value>, &mut Vec<String>),
) -> (String, Vec<Value>) {
    let mut binds = Vec::new();
    let mut clauses = Vec::new();
    for group in &query.filter.groups {
        let alternatives: Vec<String> = group
            .iter()
            .map(|c| {
                binds.push(c.value.clone());
                format!("{} {} ${}", column(c.field), op_sql(c.op), binds.len())
            })
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
