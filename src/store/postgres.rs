//! The PostgreSQL store: production, several replicas over one database. What PostgreSQL does its
//! own way: connecting (a lazy pool, durable commits, the statement timeout), its error codes, the
//! lead write as one statement, advisory locks for the sequencer and policy activations, the
//! chain head's NOTIFY, migrations on a connection of their own, roles and grants. The rest is the
//! shared body in [`super::shared`].

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::LazyLock;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{ConnectOptions as _, Executor, PgConnection, Postgres, QueryBuilder};

use super::notify::{CHAIN_HEAD_CHANNEL, HeadListener};
use super::shared::{Dialect, SqlStore};
use super::sql::{self, LeadColumns};
use super::statements::postgres_new_lead::{ANSWER, LEAD_END, ONLY_IF_WRITTEN, OPEN};
use super::statements::{AUDIT_INBOX, IDEMPOTENCY_KEYS, Insert, LEADS};
use super::tx::WriteTx;
use super::{
    Backend, BatchWrite, ConnectOptions, IdempotencyKey, IdempotencyRecord, LeadWrite, StoreError,
    StoreResult, WriteOutcome,
};
use crate::domain::audit::{ChainedEntry, SealedEntry};
use crate::domain::funnel::{EntryFacts, SlaFacts};
use crate::domain::values::LeadId;

pub type PgStore = SqlStore<Postgres>;

/// Advisory lock held by the replica that is chaining entries.
const SEQUENCER_LOCK: i64 = 0x6c65_6164_6761_7401;
/// Advisory lock held while activating a policy, so replicas starting together record it once.
const POLICY_LOCK: i64 = 0x6c65_6164_6761_7402;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Sorts PostgreSQL failures: lost or refused connections and shutdowns are retryable.
#[expect(
    clippy::wildcard_enum_match_arm,
    reason = "sqlx's errors are open-ended; those not classified are database errors"
)]
pub(super) fn classify(error: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match &error {
        E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Tls(_) | E::Protocol(_) => {
            StoreError::Unavailable(error.to_string())
        }
        E::Database(db) if db.code().as_deref() == Some("57014") => StoreError::Timeout(error.to_string()),
        E::Database(db) => match db.code().as_deref() {
            // connection_exception, operator_intervention (shutdowns), too_many_connections,
            // serialization and deadlock failures.
            Some(code)
                if code.starts_with("08")
                    || code.starts_with("57P")
                    || matches!(code, "53300" | "40001" | "40P01") =>
            {
                StoreError::Unavailable(error.to_string())
            }
            // disk_full.
            Some("53100") => StoreError::StorageFull(error.to_string()),
            // read_only_sql_transaction: a read-only database, or a standby.
            Some("25006") => StoreError::ReadOnly(error.to_string()),
            _ => StoreError::Database(error.to_string()),
        },
        _ => StoreError::Database(error.to_string()),
    }
}

/// The unique constraint a failed insert ran into, if that is why it failed.
fn violated_constraint(error: &sqlx::Error) -> Option<String> {
    let db = error.as_database_error()?;
    (db.kind() == sqlx::error::ErrorKind::UniqueViolation)
        .then(|| db.constraint().unwrap_or_default().to_owned())
}

impl PgStore {
    /// Prepares a pool; connections are opened on first use, so a database that is still down
    /// does not stop the server from starting (it reports NOT_SERVING until it answers).
    pub async fn connect(options: &ConnectOptions) -> StoreResult<Self> {
        let mut settings = vec![
            // Acknowledged writes are durable whatever the server's default.
            ("synchronous_commit".to_string(), "on".to_string()),
        ];
        if let Some(timeout) = options.statement_timeout {
            settings.push((
                "statement_timeout".into(),
                format!("{}ms", timeout.as_millis().max(1)),
            ));
        }
        let base = PgConnectOptions::from_str(&options.url)
            .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("leadgate");
        let migrations = base.clone().options([("synchronous_commit", "on")]);
        let connect = base.options(settings);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            // A broken connection fails its call (UNAVAILABLE) and is replaced; a ping before
            // every call would double the round trips.
            .test_before_acquire(false)
            .connect_lazy_with(connect);
        Ok(SqlStore::new(pool, None, migrations, ()))
    }
}

/// Whether a request id was used already (committed by now).
async fn request_id_taken(store: &PgStore, key: &IdempotencyKey) -> StoreResult<bool> {
    let record = sqlx::query(sql::SELECT_IDEMPOTENCY)
        .bind(key.principal.as_str())
        .bind(key.request_id.as_str())
        .fetch_optional(&store.pool)
        .await
        .map_err(classify)?;
    Ok(record.is_some())
}

/// Appends chained entries given as one array per column, in the order of [`LogColumns`].
static INSERT_LOG_ARRAYS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO audit_log (inbox_id, {}) SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], \
         $3::UUID[], $4::TEXT[], $5::BIGINT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], \
         $10::TEXT[], $11::TEXT[], $12::TEXT[], $13::BYTEA[], $14::BYTEA[], $15::BIGINT[], \
         $16::TEXT[], $17::BYTEA[], $18::BIGINT[], $19::BIGINT[], $20::BIGINT[], $21::BIGINT[], \
         $22::TEXT[])",
        format_args!("{}, {}", sql::LOG_COLUMNS, sql::FUNNEL_FACT_COLUMNS)
    )
});

/// `INSERT INTO {table} ({columns}) SELECT * FROM UNNEST($1::{type}[], ...)`: rows given as one
/// array per column, one statement (prepared once) for any number of rows.
fn insert_arrays_sql(insert: &Insert, types: &[&str]) -> String {
    assert_eq!(
        insert.column_names().count(),
        types.len(),
        "a type per column of {}",
        insert.table
    );
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", i + 1))
        .collect();
    format!(
        "INSERT INTO {} ({}) SELECT * FROM UNNEST({})",
        insert.table,
        insert.columns,
        arrays.join(", ")
    )
}

static INSERT_LEADS_ARRAYS: LazyLock<String> = LazyLock::new(|| {
    insert_arrays_sql(
        &LEADS,
        &[
            "UUID", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT",
            "BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT",
        ],
    )
});

static INSERT_IDEMPOTENCY_ARRAYS: LazyLock<String> = LazyLock::new(|| {
    insert_arrays_sql(
        &IDEMPOTENCY_KEYS,
        &["TEXT", "TEXT", "TEXT", "BYTEA", "TEXT", "BIGINT"],
    )
});

static INSERT_INBOX_ARRAYS: LazyLock<String> = LazyLock::new(|| {
    insert_arrays_sql(
        &AUDIT_INBOX,
        &[
            "UUID", "TEXT", "BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BYTEA",
        ],
    )
});

/// Writes the new leads of a batch together, in a savepoint: which of the writes are done (all
/// the new leads, or none when one of them conflicts or fails: then each is written alone, to
/// answer each). Written first: a later write of the batch may update a lead an earlier one
/// creates, and none depends on an update that comes before it. `Err`: the transaction itself
/// is gone.
async fn write_together(
    tx: &mut WriteTx<Postgres>,
    writes: &[BatchWrite<'_>],
    columns: &[LeadColumns],
) -> StoreResult<Vec<bool>> {
    let together: Vec<bool> = writes.iter().map(|w| w.expected_revision.is_none()).collect();
    if together.iter().filter(|t| **t).count() < 2 {
        return Ok(vec![false; writes.len()]);
    }
    tx.connection()
        .execute("SAVEPOINT together")
        .await
        .map_err(classify)?;
    let new: Vec<(&LeadWrite<'_>, &LeadColumns)> = writes
        .iter()
        .zip(columns)
        .filter(|(w, _)| w.expected_revision.is_none())
        .map(|(w, c)| (&w.write, c))
        .collect();
    let written = matches!(write_new_rows(tx.connection(), &new).await, Ok(true));
    let end = if written {
        "RELEASE SAVEPOINT together"
    } else {
        "ROLLBACK TO SAVEPOINT together; RELEASE SAVEPOINT together"
    };
    tx.connection().execute(end).await.map_err(classify)?;
    Ok(if written {
        together
    } else {
        vec![false; writes.len()]
    })
}

/// New leads with their idempotency records and entries: a suppression check for all, then a
/// statement per table, each row given as arrays. `Ok(false)`: one of them conflicts (a
/// suppressed email, or a unique email or request id), and nothing may be kept.
async fn write_new_rows(
    connection: &mut PgConnection,
    new: &[(&LeadWrite<'_>, &LeadColumns)],
) -> StoreResult<bool> {
    let hashes: Vec<&[u8]> = new
        .iter()
        .flat_map(|(w, _)| w.unless_suppressed.iter().map(|h| h.as_slice()))
        .collect();
    if !hashes.is_empty() {
        let suppressed: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM suppressed_emails WHERE email_hash = ANY($1))")
                .bind(&hashes)
                .fetch_one(&mut *connection)
                .await
                .map_err(classify)?;
        if suppressed {
            return Ok(false);
        }
    }
    let leads = |f: fn(&LeadColumns) -> &str| -> Vec<&str> { new.iter().map(|(_, c)| f(c)).collect() };
    let numbers = |f: fn(&LeadColumns) -> i64| -> Vec<i64> { new.iter().map(|(_, c)| f(c)).collect() };
    let times =
        |f: fn(&LeadColumns) -> Option<i64>| -> Vec<Option<i64>> { new.iter().map(|(_, c)| f(c)).collect() };
    let insert_leads = sqlx::query(&INSERT_LEADS_ARRAYS)
        .bind(new.iter().map(|(_, c)| c.id).collect::<Vec<_>>())
        .bind(leads(|c| &c.email))
        .bind(leads(|c| c.state))
        .bind(leads(|c| c.source_channel))
        .bind(leads(|c| c.fit_grade))
        .bind(numbers(|c| c.combined_points))
        .bind(numbers(|c| c.create_time))
        .bind(numbers(|c| c.update_time))
        .bind(numbers(|c| c.revision))
        .bind(times(|c| c.sla_due_time))
        .bind(times(|c| c.revisit_time))
        .bind(leads(|c| &c.document))
        .bind(leads(|c| &c.company_domain))
        .bind(leads(|c| &c.company_name_folded))
        .bind(leads(|c| &c.source_campaign))
        .bind(leads(|c| &c.external_reference));
    let records: Vec<&IdempotencyRecord> = new.iter().filter_map(|(w, _)| w.idempotency).collect();
    let record = |f: fn(&IdempotencyRecord) -> &str| -> Vec<&str> { records.iter().map(|r| f(r)).collect() };
    let insert_records = sqlx::query(&INSERT_IDEMPOTENCY_ARRAYS)
        .bind(record(|r| &r.key.principal))
        .bind(record(|r| &r.key.request_id))
        .bind(record(|r| &r.method))
        .bind(
            records
                .iter()
                .map(|r| r.fingerprint.as_slice())
                .collect::<Vec<_>>(),
        )
        .bind(record(|r| &r.response))
        .bind(
            records
                .iter()
                .map(|r| r.created_at.timestamp_micros())
                .collect::<Vec<_>>(),
        );
    let entries: Vec<&SealedEntry> = new.iter().flat_map(|(w, _)| w.entries).collect();
    let entry =
        |f: fn(&SealedEntry) -> Option<&str>| -> Vec<Option<&str>> { entries.iter().map(|e| f(e)).collect() };
    let insert_entries = sqlx::query(&INSERT_INBOX_ARRAYS)
        .bind(
            entries
                .iter()
                .map(|e| e.entry.lead.map(|l| l.as_uuid()))
                .collect::<Vec<_>>(),
        )
        .bind(entry(|e| Some(e.entry.kind.as_str())))
        .bind(
            entries
                .iter()
                .map(|e| e.entry.recorded_at.timestamp_micros())
                .collect::<Vec<_>>(),
        )
        .bind(entry(|e| Some(e.entry.actor.as_str())))
        .bind(entry(|e| e.entry.request_id.as_deref()))
        .bind(entry(|e| e.entry.state_before.map(|s| s.as_str())))
        .bind(entry(|e| e.entry.state_after.map(|s| s.as_str())))
        .bind(entry(|e| e.entry.source_channel.map(|s| s.as_str())))
        .bind(entry(|e| Some(e.entry.policy_version.as_str())))
        .bind(entry(|e| Some(e.entry.body.as_str())))
        .bind(entry(|e| Some(e.seal.key_id.as_str())))
        .bind(entries.iter().map(|e| e.seal.tag.as_slice()).collect::<Vec<_>>());
    for insert in [insert_leads, insert_records, insert_entries] {
        match connection.execute(insert).await {
            Ok(_) => {}
            Err(e) if violated_constraint(&e).is_some() => return Ok(false),
            Err(e) => return Err(classify(e)),
        }
    }
    Ok(true)
}

/// Chained entries, column by column: the arrays [`INSERT_LOG_ARRAYS`] binds.
struct LogColumns<'a> {
    inbox_id: Vec<i64>,
    position: Vec<i64>,
    lead_id: Vec<Option<uuid::Uuid>>,
    kind: Vec<&'a str>,
    record_time: Vec<i64>,
    actor: Vec<&'a str>,
    request_id: Vec<Option<&'a str>>,
    state_before: Vec<Option<&'a str>>,
    state_after: Vec<Option<&'a str>>,
    source_channel: Vec<Option<&'a str>>,
    policy_version: Vec<&'a str>,
    body: Vec<&'a str>,
    previous_hash: Vec<&'a [u8]>,
    hash: Vec<&'a [u8]>,
    record_time_max: Vec<i64>,
    seal_key_id: Vec<Option<&'a str>>,
    seal: Vec<Option<&'a [u8]>>,
    // The funnel's facts of each entry (see `sql::FUNNEL_FACT_COLUMNS`).
    sla_number: Vec<Option<i64>>,
    sla_start_time: Vec<Option<i64>>,
    sla_first_touch_time: Vec<Option<i64>>,
    sla_breached: Vec<Option<i64>>,
    disqualification: Vec<Option<&'static str>>,
}

impl<'a> LogColumns<'a> {
    fn of(chained: &'a [(i64, ChainedEntry)]) -> Self {
        let facts: Vec<Option<EntryFacts>> = chained.iter().map(|(_, c)| EntryFacts::of(&c.entry)).collect();
        let sla = |f: &dyn Fn(&SlaFacts) -> Option<i64>| {
            facts
                .iter()
                .map(|e| e.as_ref().and_then(|e| e.sla.as_ref()).and_then(f))
                .collect::<Vec<_>>()
        };
        let column = |f: &dyn Fn(&'a (i64, ChainedEntry)) -> i64| chained.iter().map(f).collect::<Vec<_>>();
        LogColumns {
            inbox_id: column(&|(id, _)| *id),
            position: column(&|(_, c)| c.position),
            lead_id: chained
                .iter()
                .map(|(_, c)| c.entry.lead.map(|l| l.as_uuid()))
                .collect(),
            kind: chained.iter().map(|(_, c)| c.entry.kind.as_str()).collect(),
            record_time: column(&|(_, c)| c.entry.recorded_at.timestamp_micros()),
            actor: chained.iter().map(|(_, c)| c.entry.actor.as_str()).collect(),
            request_id: chained
                .iter()
                .map(|(_, c)| c.entry.request_id.as_deref())
                .collect(),
            state_before: chained
                .iter()
                .map(|(_, c)| c.entry.state_before.map(|s| s.as_str()))
                .collect(),
            state_after: chained
                .iter()
                .map(|(_, c)| c.entry.state_after.map(|s| s.as_str()))
                .collect(),
            source_channel: chained
                .iter()
                .map(|(_, c)| c.entry.source_channel.map(|s| s.as_str()))
                .collect(),
            policy_version: chained
                .iter()
                .map(|(_, c)| c.entry.policy_version.as_str())
                .collect(),
            body: chained.iter().map(|(_, c)| c.entry.body.as_str()).collect(),
            previous_hash: chained.iter().map(|(_, c)| c.previous_hash.as_slice()).collect(),
            hash: chained.iter().map(|(_, c)| c.hash.as_slice()).collect(),
            record_time_max: column(&|(_, c)| c.time_max.timestamp_micros()),
            seal_key_id: chained
                .iter()
                .map(|(_, c)| c.seal.as_ref().map(|s| s.key_id.as_str()))
                .collect(),
            seal: chained
                .iter()
                .map(|(_, c)| c.seal.as_ref().map(|s| s.tag.as_slice()))
                .collect(),
            sla_number: sla(&|s| Some(i64::from(s.number))),
            sla_start_time: sla(&|s| Some(s.started_at.timestamp_micros())),
            sla_first_touch_time: sla(&|s| s.first_touch_at.map(|t| t.timestamp_micros())),
            sla_breached: sla(&|s| Some(i64::from(s.breached))),
            disqualification: facts
                .iter()
                .map(|e| e.as_ref().and_then(|e| e.disqualification).map(|d| d.as_str()))
                .collect(),
        }
    }
}

/// The one statement that writes a lead (inserted, or updated if its revision is still
/// `expected_revision`), its audit entries and its idempotency record (see `Dialect::write_lead`).
fn lead_write_statement<'a>(
    c: &'a LeadColumns,
    write: LeadWrite<'a>,
    expected_revision: Option<i64>,
) -> QueryBuilder<'a, Postgres> {
    let mut b = QueryBuilder::<Postgres>::new(OPEN);
    match expected_revision {
        None => {
            // With suppressed hashes to check, the values are selected only when none of them
            // is on the suppression list.
            let guarded = !write.unless_suppressed.is_empty();
            b.push(format_args!(
                "INSERT INTO {} ({}) {}",
                LEADS.table,
                LEADS.columns,
                if guarded { "SELECT " } else { "VALUES (" }
            ));
            let mut v = b.separated(", ");
            v.push_bind(c.id)
                .push_bind(&c.email)
                .push_bind(c.state)
                .push_bind(c.source_channel)
                .push_bind(c.fit_grade)
                .push_bind(c.combined_points)
                .push_bind(c.create_time)
                .push_bind(c.update_time)
                .push_bind(c.revision)
                .push_bind(c.sla_due_time)
                .push_bind(c.revisit_time)
                .push_bind(&c.document)
                .push_bind(&c.company_domain)
                .push_bind(&c.company_name_folded)
                .push_bind(&c.source_campaign)
                .push_bind(&c.external_reference);
            // A known email is an answer, not an error (nor a line in PostgreSQL's log).
            if guarded {
                let hashes: Vec<Vec<u8>> = write.unless_suppressed.iter().map(|h| h.to_vec()).collect();
                b.push(" WHERE NOT EXISTS (SELECT 1 FROM suppressed_emails WHERE email_hash = ANY(")
                    .push_bind(hashes)
                    .push("))");
                // Without the parenthesis that closes `VALUES (`.
                b.push(&LEAD_END[1..]);
            } else {
                b.push(LEAD_END);
            }
        }
        Some(revision) => {
            // The email too: UpdateLead may correct it (`leads_email_key` refuses another's).
            // An unchanged email touches no index: PostgreSQL compares the values.
            b.push("UPDATE leads SET email = ").push_bind(&c.email);
            b.push(", state = ").push_bind(c.state);
            b.push(", source_channel = ").push_bind(c.source_channel);
            b.push(", fit_grade = ").push_bind(c.fit_grade);
            b.push(", combined_points = ").push_bind(c.combined_points);
            b.push(", update_time = ").push_bind(c.update_time);
            b.push(", revision = ").push_bind(c.revision);
            b.push(", sla_due_time = ").push_bind(c.sla_due_time);
            b.push(", revisit_time = ").push_bind(c.revisit_time);
            b.push(", document = ").push_bind(&c.document);
            b.push(", company_domain = ").push_bind(&c.company_domain);
            b.push(", company_name_folded = ")
                .push_bind(&c.company_name_folded);
            b.push(", source_campaign = ").push_bind(&c.source_campaign);
            b.push(", external_reference = ").push_bind(&c.external_reference);
            b.push(" WHERE id = ").push_bind(c.id);
            b.push(" AND revision = ").push_bind(revision);
            b.push(" RETURNING 1)");
        }
    }
    // Inserted only if the lead was written (an update may find another revision).
    if let Some(record) = write.idempotency {
        b.push(format_args!(
            ", idem AS (INSERT INTO {} ({}) SELECT ",
            IDEMPOTENCY_KEYS.table, IDEMPOTENCY_KEYS.columns
        ));
        let mut v = b.separated(", ");
        v.push_bind(&record.key.principal)
            .push_bind(&record.key.request_id)
            .push_bind(&record.method)
            .push_bind(record.fingerprint.as_slice())
            .push_bind(&record.response)
            .push_bind(record.created_at.timestamp_micros());
        b.push(ONLY_IF_WRITTEN).push(")");
    }
    b.push(format_args!(
        ", entries AS (INSERT INTO {} ({}) SELECT * FROM (",
        AUDIT_INBOX.table, AUDIT_INBOX.columns
    ));
    b.push_values(write.entries, |mut row, sealed| {
        let e = &sealed.entry;
        row.push_bind(e.lead.map(|l| l.as_uuid()))
            .push_bind(e.kind.as_str())
            .push_bind(e.recorded_at.timestamp_micros())
            .push_bind(e.actor.as_str())
            .push_bind(e.request_id.as_deref())
            .push_bind(e.state_before.map(|s| s.as_str()))
            .push_bind(e.state_after.map(|s| s.as_str()))
            .push_bind(e.source_channel.map(|s| s.as_str()))
            .push_bind(e.policy_version.as_str())
            .push_bind(e.body.as_str())
            .push_bind(sealed.seal.key_id.as_str())
            .push_bind(sealed.seal.tag.as_slice());
    });
    b.push(") AS entry").push(ONLY_IF_WRITTEN).push(ANSWER);
    b
}

/// What the statement of [`lead_write_statement`] answered: `None` when the lead was written,
/// else the conflict that kept it from being written.
fn outcome_of(
    answer: Result<i64, sqlx::Error>,
    expected_revision: Option<i64>,
) -> StoreResult<Option<WriteOutcome>> {
    match answer {
        Ok(0) if expected_revision.is_none() => Ok(Some(WriteOutcome::EmailTaken)),
        Ok(0) => Ok(Some(WriteOutcome::RevisionConflict)),
        Ok(_) => Ok(None),
        Err(e) => match violated_constraint(&e).as_deref() {
            Some("leads_email_key") => Ok(Some(WriteOutcome::EmailTaken)),
            Some("idempotency_keys_pkey") => Ok(Some(WriteOutcome::RequestIdTaken)),
            _ => Err(classify(e)),
        },
    }
}

impl Dialect for Postgres {
    const BACKEND: Backend = Backend::Postgres;
    const BEGIN_WRITE: &'static str = "BEGIN";
    /// PostgreSQL finds room for the row (table and WAL) as it inserts it.
    const PROBE_COMMITS_ROW: bool = false;

    /// How to connect for migrations, grants and the head listener: like the pool, without the
    /// statement timeout.
    type Direct = PgConnectOptions;
    /// None: each lead write is one statement on the pool; the database groups concurrent
    /// commits' WAL flushes itself.
    type Writes = ();

    fn classify(error: sqlx::Error) -> StoreError {
        classify(error)
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    /// One statement, one round trip, one implicit transaction: the lead (inserted, or updated if
    /// its revision is still `expected_revision`), its audit entries and the idempotency record,
    /// each insert with the columns of [`super::statements`]. A new lead with its idempotency
    /// record and one entry is the statement of `statements::new_lead_write` (the benchmark's
    /// pgbench baseline runs that one).
    /// On a revision conflict nothing is inserted; a unique violation aborts the whole statement.
    /// A known email is no error here, so a taken request id is looked for after the statement.
    async fn write_lead(
        store: &PgStore,
        write: LeadWrite<'_>,
        expected_revision: Option<i64>,
    ) -> StoreResult<WriteOutcome> {
        let columns = LeadColumns::of(write.lead);
        let mut b = lead_write_statement(&columns, write, expected_revision);
        let answer = b.build_query_scalar::<i64>().fetch_one(&store.pool).await;
        match outcome_of(answer, expected_revision)? {
            // Nothing written: the email was taken or the lead changed, and the statement never
            // reached the idempotency record. A taken request id answers first all the same.
            Some(conflict) => match write.idempotency {
                Some(record) if request_id_taken(store, &record.key).await? => {
                    Ok(WriteOutcome::RequestIdTaken)
                }
                _ => Ok(conflict),
            },
            None => Ok(WriteOutcome::Written),
        }
    }

    /// One transaction. The new leads first, together ([`write_together`]); then each other
    /// write's statement (the one `write_lead` runs) in a savepoint: a write that conflicts or
    /// fails is rolled back to its savepoint alone. Committed once, if anything was written. Two
    /// round trips a write written alone: its statement, then the end of its savepoint sent with
    /// the start of the next one (COMMIT releases the last).
    async fn write_leads(store: &PgStore, writes: &[BatchWrite<'_>]) -> Vec<StoreResult<WriteOutcome>> {
        let every = |error: StoreError| writes.iter().map(|_| Err(error.clone())).collect();
        let mut tx = match WriteTx::begin(store.writer(), "BEGIN").await {
            Ok(tx) => tx,
            Err(error) => return every(classify(error)),
        };
        let columns: Vec<LeadColumns> = writes.iter().map(|w| LeadColumns::of(w.write.lead)).collect();
        let together = match write_together(&mut tx, writes, &columns).await {
            Ok(together) => together,
            Err(error) => {
                tx.rollback().await;
                return every(error);
            }
        };
        let alone: Vec<usize> = (0..writes.len()).filter(|i| !together[*i]).collect();
        if !alone.is_empty()
            && let Err(error) = tx.connection().execute("SAVEPOINT write").await
        {
            tx.rollback().await;
            return every(classify(error));
        }
        let mut outcomes: Vec<StoreResult<WriteOutcome>> =
            together.iter().map(|_| Ok(WriteOutcome::Written)).collect();
        for (n, &i) in alone.iter().enumerate() {
            let w = &writes[i];
            let mut b = lead_write_statement(&columns[i], w.write, w.expected_revision);
            let answer = b
                .build_query_scalar::<i64>()
                .fetch_one(&mut *tx.connection())
                .await;
            let outcome = outcome_of(answer, w.expected_revision);
            let (kept, last) = (matches!(outcome, Ok(None)), n + 1 == alone.len());
            let end = match (kept, last) {
                (true, false) => Some("RELEASE SAVEPOINT write; SAVEPOINT write"),
                (false, false) => {
                    Some("ROLLBACK TO SAVEPOINT write; RELEASE SAVEPOINT write; SAVEPOINT write")
                }
                (false, true) => Some("ROLLBACK TO SAVEPOINT write"),
                (true, true) => None,
            };
            if let Some(end) = end
                && let Err(error) = tx.connection().execute(end).await
            {
                tx.rollback().await;
                return every(classify(error));
            }
            outcomes[i] = outcome.map(|conflict| conflict.unwrap_or(WriteOutcome::Written));
        }
        if !outcomes.iter().any(|o| matches!(o, Ok(WriteOutcome::Written))) {
            tx.rollback().await;
            return outcomes;
        }
        match tx.commit().await {
            Ok(()) => outcomes,
            Err(error) => every(classify(error)),
        }
    }

    async fn lead_documents(
        connection: &mut PgConnection,
        ids: &[LeadId],
    ) -> Result<Vec<String>, sqlx::Error> {
        // One statement for every batch size (an IN list would prepare one per size).
        let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        sqlx::query_scalar("SELECT document FROM leads WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(connection)
            .await
    }

    /// One statement whatever the batch's size (an IN list would be parsed and planned anew for
    /// each size).
    async fn chained_inbox_ids(tx: &mut WriteTx<Postgres>, ids: &[i64]) -> StoreResult<HashSet<i64>> {
        let chained: Vec<i64> = sqlx::query_scalar("SELECT inbox_id FROM audit_log WHERE inbox_id = ANY($1)")
            .bind(ids)
            .fetch_all(tx.connection())
            .await
            .map_err(classify)?;
        Ok(chained.into_iter().collect())
    }

    /// Two statements whatever the batch's size: the entries go in as one array per column
    /// (`UNNEST`), and leave the inbox by `= ANY`. Both are prepared once per connection, where
    /// multi-row `VALUES` would be parsed and planned anew for each batch size.
    async fn move_to_log(tx: &mut WriteTx<Postgres>, chained: &[(i64, ChainedEntry)]) -> StoreResult<()> {
        let columns = LogColumns::of(chained);
        sqlx::query(&INSERT_LOG_ARRAYS)
            .bind(&columns.inbox_id)
            .bind(&columns.position)
            .bind(&columns.lead_id)
            .bind(&columns.kind)
            .bind(&columns.record_time)
            .bind(&columns.actor)
            .bind(&columns.request_id)
            .bind(&columns.state_before)
            .bind(&columns.state_after)
            .bind(&columns.source_channel)
            .bind(&columns.policy_version)
            .bind(&columns.body)
            .bind(&columns.previous_hash)
            .bind(&columns.hash)
            .bind(&columns.record_time_max)
            .bind(&columns.seal_key_id)
            .bind(&columns.seal)
            .bind(&columns.sla_number)
            .bind(&columns.sla_start_time)
            .bind(&columns.sla_first_touch_time)
            .bind(&columns.sla_breached)
            .bind(&columns.disqualification)
            .execute(tx.connection())
            .await
            .map_err(classify)?;
        sqlx::query("DELETE FROM audit_inbox WHERE id = ANY($1)")
            .bind(&columns.inbox_id)
            .execute(tx.connection())
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// The sequencer's advisory lock, if no other replica holds it (until the transaction ends).
    async fn take_sequencer_turn(tx: &mut WriteTx<Postgres>) -> StoreResult<bool> {
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(SEQUENCER_LOCK)
            .fetch_one(tx.connection())
            .await
            .map_err(classify)
    }

    /// Delivered on commit: wakes the watchers of every process (see `notify`).
    async fn announce_head(tx: &mut WriteTx<Postgres>, position: i64) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHAIN_HEAD_CHANNEL)
            .bind(position.to_string())
            .execute(tx.connection())
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn lock_policy_activation(tx: &mut WriteTx<Postgres>) -> StoreResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(POLICY_LOCK)
            .execute(tx.connection())
            .await
            .map_err(classify)?;
        Ok(())
    }

    #[expect(
        clippy::wildcard_enum_match_arm,
        reason = "sqlx's migration errors are open-ended; those not named are database errors"
    )]
    async fn migrate(store: &PgStore) -> StoreResult<()> {
        // Migrations may take long (backfills): on their own connection, without the statement
        // timeout.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(store.direct.clone());
        let migrated = MIGRATOR.run(&pool).await;
        pool.close().await;
        migrated.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => classify(e),
            other => StoreError::Database(other.to_string()),
        })
    }

    async fn grant_service_role(store: &PgStore, role: &str) -> StoreResult<()> {
        if !super::valid_role_name(role) {
            return Err(StoreError::Database(format!(
                "{role:?} is not a role name leadgate accepts (a-z, 0-9, _)"
            )));
        }
        let mut connection = store.direct.connect().await.map_err(classify)?;
        // `current_schema` is a function, not a name, in GRANT: spell the schema out.
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&mut connection)
            .await
            .map_err(classify)?;
        // Exactly these privileges: whatever was granted before is taken back first.
        let statements = [
            format!("REVOKE ALL ON ALL TABLES IN SCHEMA current_schema FROM {role}"),
            format!("REVOKE ALL ON ALL SEQUENCES IN SCHEMA current_schema FROM {role}"),
            format!("GRANT USAGE ON SCHEMA current_schema TO {role}"),
            format!("GRANT SELECT, INSERT, UPDATE ON leads TO {role}"),
            format!("GRANT SELECT, INSERT, DELETE ON idempotency_keys, audit_inbox, storage_probe TO {role}"),
            format!(
                "GRANT SELECT, INSERT ON audit_log, audit_quarantine, policies, policy_activations TO {role}"
            ),
            format!("GRANT SELECT, INSERT ON suppressed_emails TO {role}"),
            format!("GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, account_contacts TO {role}"),
            format!("GRANT SELECT, UPDATE ON account_projection TO {role}"),
            format!("GRANT SELECT ON audit_settings, _sqlx_migrations TO {role}"),
            format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA current_schema TO {role}"),
        ];
        let mut tx = sqlx::Connection::begin(&mut connection).await.map_err(classify)?;
        for statement in statements {
            let statement = statement.replace("current_schema", &format!("\"{schema}\""));
            sqlx::query(&statement)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
        let _ = sqlx::Connection::close(connection).await;
        Ok(())
    }

    async fn privilege_warning(store: &PgStore) -> StoreResult<Option<String>> {
        let (owner, can_change): (bool, bool) = sqlx::query_as(
            "SELECT pg_catalog.pg_get_userbyid(c.relowner) = current_user, \
                    has_table_privilege('audit_log', 'UPDATE') OR has_table_privilege('audit_log', 'DELETE') \
             FROM pg_catalog.pg_class c WHERE c.oid = 'audit_log'::regclass",
        )
        .fetch_one(&store.pool)
        .await
        .map_err(classify)?;
        Ok((owner || can_change).then(|| {
            "the service's database role owns the audit tables or may change them: it could alter \
             or remove audit entries. Run the service as a role granted by `leadgate migrate --grant-to`"
                .to_string()
        }))
    }

    async fn listen_for_heads(store: &PgStore) -> StoreResult<Option<HeadListener>> {
        HeadListener::connect(&store.direct).await.map(Some)
    }
}
