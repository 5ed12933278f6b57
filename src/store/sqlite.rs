//! The SQLite store: the zero-set-up default, one process over one file. What SQLite does its
//! own way: connecting (WAL, a single writer beside read-only readers, the size cap), its error
//! codes, the lead write as statements in a transaction shared with other writes (see
//! [`super::group_commit`]), and its migrations. The rest is the
//! shared body in [`super::shared`].

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{Executor, Sqlite, SqliteConnection};

use super::group_commit::{GroupCommit, PreparedWrite};
use super::notify::HeadListener;
use super::shared::{Dialect, SqlStore};
use super::sql::{self, LeadColumns};
use super::tx::WriteTx;
use super::{
    Backend, BatchWrite, ConnectOptions, IdempotencyRecord, LeadWrite, StoreError, StoreResult, WriteOutcome,
    statements,
};
use crate::domain::audit::{ChainedEntry, SealedEntry};
use crate::domain::values::LeadId;

pub type SqliteStore = SqlStore<Sqlite>;

/// Readers run beside the single writer (WAL lets them).
const READERS: u32 = 4;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

impl SqliteStore {
    /// Opens (creating if needed) the database file.
    pub async fn connect(options: &ConnectOptions) -> StoreResult<Self> {
        let connect = SqliteConnectOptions::from_str(&options.url)
            .map_err(|e| StoreError::Database(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Every acknowledged write is on disk before the answer.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        // No ping before each use: a local file does not drop connections, and every ping is a
        // round trip through the connection's worker thread.
        let max_size = options.sqlite_max_size;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if let Some(bytes) = max_size {
                        // The cap is a count of pages, and a setting of each connection.
                        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
                            .fetch_one(&mut *connection)
                            .await?;
                        let pages = (bytes / page_size.max(512) as u64).max(1);
                        connection
                            .execute(format!("PRAGMA max_page_count = {pages}").as_str())
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect.clone())
            .await
            .map_err(classify)?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .test_before_acquire(false)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.read_only(true))
            .await
            .map_err(classify)?;
        let writes = GroupCommit::start(writer.clone());
        Ok(SqlStore::new(readers, Some(writer), (), writes))
    }
}

#[expect(
    clippy::wildcard_enum_match_arm,
    reason = "sqlx's errors are open-ended; those not classified are database errors"
)]
pub(super) fn classify(error: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match &error {
        E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
            StoreError::Unavailable(error.to_string())
        }
        // SQLite's primary result code is the low byte of the extended one.
        E::Database(db) => match db.code().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff) {
            // SQLITE_BUSY / SQLITE_LOCKED: another process holds the file.
            Some(5 | 6) => StoreError::Unavailable(error.to_string()),
            // SQLITE_FULL: the disk, or the size cap, has no room.
            Some(13) => StoreError::StorageFull(error.to_string()),
            // SQLITE_READONLY: the file or its directory cannot be written.
            Some(8) => StoreError::ReadOnly(error.to_string()),
            _ => StoreError::Database(error.to_string()),
        },
        _ => StoreError::Database(error.to_string()),
    }
}

/// The message of a unique violation. SQLite names the columns, not the constraint: "UNIQUE
/// constraint failed: leads.email".
fn unique_violation(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .filter(|d| d.kind() == sqlx::error::ErrorKind::UniqueViolation)
        .map(|d| d.message().to_owned())
}

/// Runs an insert; a unique violation on a lead's email or a request id is an answer.
async fn insert_or_conflict<'c>(
    conn: &mut SqliteConnection,
    query: sqlx::query::Query<'c, Sqlite, sqlx::sqlite::SqliteArguments<'c>>,
) -> StoreResult<Option<WriteOutcome>> {
    match conn.execute(query).await {
        Ok(_) => Ok(None),
        Err(e) => match unique_violation(&e) {
            Some(m) if m.contains("leads.email") => Ok(Some(WriteOutcome::EmailTaken)),
            Some(m) if m.contains("idempotency_keys.") => Ok(Some(WriteOutcome::RequestIdTaken)),
            _ => Err(classify(e)),
        },
    }
}

/// Whether one of `hashes` is on the suppression list (as the write's transaction sees it).
async fn suppressed(connection: &mut SqliteConnection, hashes: &[[u8; 32]]) -> StoreResult<bool> {
    for chunk in hashes.chunks(sql::IN_LIST_CHUNK) {
        let select = sql::in_list_sql(sql::SELECT_SUPPRESSED, chunk.len());
        let found: Option<Vec<u8>> = chunk
            .iter()
            .fold(sqlx::query_scalar(&select), |query, hash| {
                query.bind(hash.as_slice())
            })
            .fetch_optional(&mut *connection)
            .await
            .map_err(classify)?;
        if found.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// New leads of one batch written together, in the transaction the group commit opened: a
/// suppression check for all, then multi-row inserts of the leads, their idempotency records
/// and their entries (in order), a few hundred values a statement. `Ok(false)`: one of them
/// conflicts (a suppressed email, or a unique email or request id), and the caller undoes what
/// was written and writes each alone, to learn which.
pub(super) async fn write_new_rows(
    connection: &mut SqliteConnection,
    writes: &[&PreparedWrite],
) -> StoreResult<bool> {
    let hashes: Vec<[u8; 32]> = writes
        .iter()
        .flat_map(|w| w.unless_suppressed.iter().copied())
        .collect();
    if suppressed(connection, &hashes).await? {
        return Ok(false);
    }
    let leads: Vec<&LeadColumns> = writes.iter().map(|w| &w.lead).collect();
    let records: Vec<&IdempotencyRecord> = writes.iter().filter_map(|w| w.idempotency.as_ref()).collect();
    let entries: Vec<&SealedEntry> = writes.iter().flat_map(|w| &w.entries).collect();
    let inserted = insert_rows(connection, &statements::LEADS, &leads, |q, c| c.bind_to(q)).await?
        && insert_rows(connection, &statements::IDEMPOTENCY_KEYS, &records, |q, r| {
            sql::bind_idempotency_to(q, r)
        })
        .await?
        && insert_rows(connection, &statements::AUDIT_INBOX, &entries, |q, e| {
            sql::bind_entry_to(q, e)
        })
        .await?;
    Ok(inserted)
}

/// Inserts `rows` into `insert`'s table, [`sql::VALUES_PER_INSERT`] values a statement at most.
/// `Ok(false)`: a unique violation (nothing of that statement was written).
async fn insert_rows<'r, T>(
    connection: &mut SqliteConnection,
    insert: &statements::Insert,
    rows: &'r [&'r T],
    bind: impl for<'q> Fn(SqliteQuery<'q>, &'q T) -> SqliteQuery<'q>,
) -> StoreResult<bool> {
    let per_statement = (sql::VALUES_PER_INSERT / insert.column_names().count()).max(1);
    for chunk in rows.chunks(per_statement) {
        let statement = insert.rows_sql(chunk.len());
        let query = chunk
            .iter()
            .fold(sqlx::query(&statement), |query, row| bind(query, row));
        match connection.execute(query).await {
            Ok(_) => {}
            Err(e) if unique_violation(&e).is_some() => return Ok(false),
            Err(e) => return Err(classify(e)),
        }
    }
    Ok(true)
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// One write's statements, in the transaction the group commit opened. The idempotency record
/// goes first, so a taken request id answers before any other conflict is looked for.
/// `Ok(Some(_))`: a conflict, and the caller undoes what was written.
pub(super) async fn write_rows(
    connection: &mut SqliteConnection,
    write: &PreparedWrite,
) -> StoreResult<Option<WriteOutcome>> {
    if let Some(record) = &write.idempotency
        && let Some(conflict) = insert_or_conflict(connection, sql::bind_idempotency(record)).await?
    {
        return Ok(Some(conflict));
    }
    let columns = &write.lead;
    let conflict = match write.expected_revision {
        None if suppressed(connection, &write.unless_suppressed).await? => Some(WriteOutcome::EmailTaken),
        None => insert_or_conflict(connection, columns.bind(&sql::INSERT_LEAD)).await?,
        Some(revision) => {
            let done = columns
                .bind(sql::UPDATE_LEAD)
                .bind(revision)
                .execute(&mut *connection)
                .await
                .map_err(classify)?;
            if done.rows_affected() > 0 {
                None
            } else {
                // No row: the lead changed since it was read, or its email did (UpdateLead); this
                // one finds the row in the second case only.
                match columns
                    .bind(sql::UPDATE_LEAD_EMAIL)
                    .bind(revision)
                    .execute(&mut *connection)
                    .await
                {
                    Ok(done) => (done.rows_affected() == 0).then_some(WriteOutcome::RevisionConflict),
                    // Another lead has the corrected email.
                    Err(e) if unique_violation(&e).is_some_and(|m| m.contains("leads.email")) => {
                        Some(WriteOutcome::EmailTaken)
                    }
                    Err(e) => return Err(classify(e)),
                }
            }
        }
    };
    if conflict.is_some() {
        return Ok(conflict);
    }
    for entry in &write.entries {
        sql::bind_entry(entry)
            .execute(&mut *connection)
            .await
            .map_err(classify)?;
    }
    Ok(None)
}

impl Dialect for Sqlite {
    const BACKEND: Backend = Backend::Sqlite;
    /// Takes the write lock at once, rather than at the first write, where it could fail busy.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    /// SQLite finds room for the row in the file and its journal as it commits.
    const PROBE_COMMITS_ROW: bool = true;

    /// None: everything runs on the pools.
    type Direct = ();
    /// Lead writes share transactions on the single writer.
    type Writes = GroupCommit;

    fn classify(error: sqlx::Error) -> StoreError {
        classify(error)
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    /// Through the group commit: the write shares a transaction with those queued beside it.
    async fn write_lead(
        store: &SqliteStore,
        write: LeadWrite<'_>,
        expected_revision: Option<i64>,
    ) -> StoreResult<WriteOutcome> {
        store
            .writes
            .write(PreparedWrite::of(write, expected_revision))
            .await
    }

    /// Through the group commit, as one item: the batch is never split across transactions.
    async fn write_leads(store: &SqliteStore, writes: &[BatchWrite<'_>]) -> Vec<StoreResult<WriteOutcome>> {
        let prepared = writes
            .iter()
            .map(|w| PreparedWrite::of(w.write, w.expected_revision))
            .collect();
        match store.writes.write_batch(prepared).await {
            Ok(outcomes) => outcomes,
            Err(error) => writes.iter().map(|_| Err(error.clone())).collect(),
        }
    }

    async fn lead_documents(
        connection: &mut SqliteConnection,
        ids: &[LeadId],
    ) -> Result<Vec<String>, sqlx::Error> {
        let select = sql::in_list_sql(sql::SELECT_LEAD_DOCUMENTS, ids.len());
        ids.iter()
            .fold(sqlx::query_scalar(&select), |query, id| query.bind(id.as_uuid()))
            .fetch_all(connection)
            .await
    }

    async fn chained_inbox_ids(tx: &mut WriteTx<Sqlite>, ids: &[i64]) -> StoreResult<HashSet<i64>> {
        let select = sql::in_list_sql(sql::SELECT_CHAINED_INBOX_IDS, ids.len());
        let chained: Vec<i64> = ids
            .iter()
            .fold(sqlx::query_scalar(&select), |query, id| query.bind(*id))
            .fetch_all(tx.connection())
            .await
            .map_err(classify)?;
        Ok(chained.into_iter().collect())
    }

    /// Multi-row inserts and deletes, [`sql::LOG_ROWS_PER_INSERT`] rows at a time (SQLite
    /// prepares statements in process: a statement per size costs little).
    async fn move_to_log(tx: &mut WriteTx<Sqlite>, chained: &[(i64, ChainedEntry)]) -> StoreResult<()> {
        for chunk in chained.chunks(sql::LOG_ROWS_PER_INSERT) {
            let insert = sql::insert_log_sql(chunk.len());
            sql::bind_log_rows(sqlx::query(&insert), chunk)
                .execute(tx.connection())
                .await
                .map_err(classify)?;
            let delete = sql::in_list_sql(sql::DELETE_INBOX_ROWS, chunk.len());
            chunk
                .iter()
                .fold(sqlx::query(&delete), |query, (inbox_id, _)| query.bind(*inbox_id))
                .execute(tx.connection())
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    /// Always: the single writer already serialises sequencing with every other write.
    async fn take_sequencer_turn(_tx: &mut WriteTx<Sqlite>) -> StoreResult<bool> {
        Ok(true)
    }

    /// Nothing to send: one process both chains and watches, and wakes its watchers in memory.
    async fn announce_head(_tx: &mut WriteTx<Sqlite>, _position: i64) -> StoreResult<()> {
        Ok(())
    }

    /// Nothing to wait for: the single writer already serialises activations.
    async fn lock_policy_activation(_tx: &mut WriteTx<Sqlite>) -> StoreResult<()> {
        Ok(())
    }

    #[expect(
        clippy::wildcard_enum_match_arm,
        reason = "sqlx's migration errors are open-ended; those not named are database errors"
    )]
    async fn migrate(store: &SqliteStore) -> StoreResult<()> {
        MIGRATOR.run(store.writer()).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => classify(e),
            other => StoreError::Database(other.to_string()),
        })
    }

    async fn grant_service_role(_store: &SqliteStore, _role: &str) -> StoreResult<()> {
        Err(StoreError::Database(
            "SQLite has no roles: --grant-to is for PostgreSQL".into(),
        ))
    }

    async fn privilege_warning(_store: &SqliteStore) -> StoreResult<Option<String>> {
        // One process over one file: whoever can write the file holds the trail.
        Ok(None)
    }

    async fn listen_for_heads(_store: &SqliteStore) -> StoreResult<Option<HeadListener>> {
        Ok(None)
    }
}
