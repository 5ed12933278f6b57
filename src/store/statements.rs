//! The inserts a new lead's write runs (the lead, its idempotency record, its audit entries),
//! with their columns in the order the stores bind them. Both stores build their statements from
//! these (the shared `INSERT`s, and the PostgreSQL store's one-statement write), and so does the
//! benchmark's pgbench baseline: a new column's name is written here, once (its value is bound
//! next to the others', in `sql` and `postgres`).

/// An `INSERT` into one table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insert {
    pub table: &'static str,
    /// The columns, comma-separated, in the order the stores bind them.
    pub columns: &'static str,
}

impl Insert {
    /// The columns' names, in order.
    pub fn column_names(&self) -> impl Iterator<Item = &'static str> + use<> {
        self.columns.split(", ")
    }

    /// `INSERT INTO {table} ({columns}) VALUES ($1, ..., $n)`.
    pub fn sql(&self) -> String {
        let placeholders: Vec<String> = (1..=self.column_names().count())
            .map(|n| format!("${n}"))
            .collect();
        self.with(&placeholders)
    }

    /// The insert with a SQL expression for each column's value, given its name.
    pub fn with_values(&self, value: impl FnMut(&str) -> String) -> String {
        let values: Vec<String> = self.column_names().map(value).collect();
        self.with(&values)
    }

    fn with(&self, values: &[String]) -> String {
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.table,
            self.columns,
            values.join(", ")
        )
    }
}

/// A lead's row; its document is the lead as JSON, the other columns are what is searched and
/// sorted on.
pub const LEADS: Insert = Insert {
    table: "leads",
    columns: "id, email, state, source_channel, fit_grade, combined_points, create_time, \
              update_time, revision, sla_due_time, revisit_time, document",
};

/// An audit entry, committed with its change and not chained yet.
pub const AUDIT_INBOX: Insert = Insert {
    table: "audit_inbox",
    columns: "lead_id, kind, record_time, actor, request_id, state_before, state_after, \
              source_channel, policy_version, body, seal_key_id, seal",
};

/// The answer to a request id, kept for retries.
pub const IDEMPOTENCY_KEYS: Insert = Insert {
    table: "idempotency_keys",
    columns: "principal, request_id, method, fingerprint, response, create_time",
};

#[cfg(test)]
mod tests {
    use super::*;

    const PAIRS: Insert = Insert {
        table: "pairs",
        columns: "a, b",
    };

    #[test]
    fn an_insert_binds_its_columns_in_order_or_takes_their_values() {
        assert_eq!(PAIRS.sql(), "INSERT INTO pairs (a, b) VALUES ($1, $2)");
        let values = PAIRS.with_values(|column| format!("'{column}'"));
        assert_eq!(values, "INSERT INTO pairs (a, b) VALUES ('a', 'b')");
    }
}
