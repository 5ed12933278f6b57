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

    /// `INSERT INTO {table} ({columns}) VALUES ($1, ...), ($n+1, ...), ...`: `rows` rows, their
    /// placeholders numbered row by row in column order (a multi-row insert).
    pub fn rows_sql(&self, rows: usize) -> String {
        let width = self.column_names().count();
        let values: Vec<String> = (0..rows)
            .map(|row| {
                let marks: Vec<String> = (1..=width).map(|c| format!("${}", row * width + c)).collect();
                format!("({})", marks.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO {} ({}) VALUES {}",
            self.table,
            self.columns,
            values.join(", ")
        )
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
/// sorted on (`store::sql::LeadColumns` projects them from the lead).
pub const LEADS: Insert = Insert {
    table: "leads",
    columns: "id, email, state, source_channel, fit_grade, combined_points, create_time, \
              update_time, revision, sla_due_time, revisit_time, document, company_domain, \
              company_name_folded, source_campaign, external_reference",
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

/// An account as the account projection keeps it.
pub const ACCOUNTS: Insert = Insert {
    table: "accounts",
    columns: "account_key, state, contacts, engagement, qualified_contacts, customer_contacts, \
              create_time, update_time",
};

/// A contact's part in its account.
pub const ACCOUNT_CONTACTS: Insert = Insert {
    table: "account_contacts",
    columns: "lead_id, account_key, engagement, committee_role, involved_time, left_account, \
              qualified, customer",
};

/// The PostgreSQL store's write of a new lead, one statement: the lead (a known email inserts
/// nothing), then, only if it was inserted, its idempotency record and its audit entries.
pub mod postgres_new_lead {
    /// `WITH lead AS (`: the statement's beginning.
    pub const OPEN: &str = "WITH lead AS (";
    /// Ends the lead's insert: a known email is an answer, not an error.
    pub const LEAD_END: &str = ") ON CONFLICT (email) DO NOTHING RETURNING 1)";
    /// The condition of the other inserts: the lead was written.
    pub const ONLY_IF_WRITTEN: &str = " WHERE EXISTS (SELECT 1 FROM lead)";
    /// The statement's answer: 1 if the lead was written, 0 if not.
    pub const ANSWER: &str = ") SELECT COUNT(*) FROM lead";
}

/// The PostgreSQL store's write of a new lead with its idempotency record and one audit entry,
/// as the store sends it (see `postgres::write_lead`), with each column's value given as a SQL
/// expression by table and column. [`new_lead_write_sql`] is the same with `$n` placeholders.
pub fn new_lead_write(mut value: impl FnMut(&Insert, &str) -> String) -> String {
    use postgres_new_lead::{ANSWER, LEAD_END, ONLY_IF_WRITTEN, OPEN};
    let mut values = |insert: &Insert| -> String {
        insert
            .column_names()
            .map(|column| value(insert, column))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{OPEN}INSERT INTO {} ({}) VALUES ({}{LEAD_END}, idem AS (INSERT INTO {} ({}) SELECT {}\
         {ONLY_IF_WRITTEN}), entries AS (INSERT INTO {} ({}) SELECT * FROM (VALUES ({})) AS entry\
         {ONLY_IF_WRITTEN}{ANSWER}",
        LEADS.table,
        LEADS.columns,
        values(&LEADS),
        IDEMPOTENCY_KEYS.table,
        IDEMPOTENCY_KEYS.columns,
        values(&IDEMPOTENCY_KEYS),
        AUDIT_INBOX.table,
        AUDIT_INBOX.columns,
        values(&AUDIT_INBOX),
    )
}

/// [`new_lead_write`] with `$1..$n` placeholders, numbered in the order the store binds them:
/// the lead's columns, the idempotency record's, the audit entry's.
pub fn new_lead_write_sql() -> String {
    let mut n = 0;
    new_lead_write(|_, _| {
        n += 1;
        format!("${n}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAIRS: Insert = Insert {
        table: "pairs",
        columns: "a, b",
    };

    #[test]
    fn the_new_lead_write_numbers_the_lead_then_the_idempotency_record_then_the_entry() {
        let sql = new_lead_write_sql();
        assert!(sql.starts_with("WITH lead AS (INSERT INTO leads (id, "), "{sql}");
        assert!(sql.contains("VALUES ($1, $2, "), "{sql}");
        assert!(
            sql.contains(
                "$16) ON CONFLICT (email) DO NOTHING RETURNING 1), idem AS (INSERT INTO idempotency_keys"
            ),
            "{sql}"
        );
        assert!(sql.contains("SELECT $17, "), "{sql}");
        assert!(sql.contains("SELECT * FROM (VALUES ($23, "), "{sql}");
        assert!(
            sql.ends_with("$34)) AS entry WHERE EXISTS (SELECT 1 FROM lead)) SELECT COUNT(*) FROM lead"),
            "{sql}"
        );
    }

    #[test]
    fn an_insert_binds_its_columns_in_order_or_takes_their_values() {
        assert_eq!(PAIRS.sql(), "INSERT INTO pairs (a, b) VALUES ($1, $2)");
        assert_eq!(
            PAIRS.rows_sql(2),
            "INSERT INTO pairs (a, b) VALUES ($1, $2), ($3, $4)"
        );
        let values = PAIRS.with_values(|column| format!("'{column}'"));
        assert_eq!(values, "INSERT INTO pairs (a, b) VALUES ('a', 'b')");
    }
}
