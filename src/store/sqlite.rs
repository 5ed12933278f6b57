//! The SQLite store: the zero-set-up default, one process over one file.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Executor, Sqlite};

use super::held::HeldConnection;
use super::list;
use super::sql::{self, InboxRow, LeadColumns, LogRow};
use super::tx::WriteTx;
use super::{
    Backend, ConnectOptions, DueLead, IdempotencyKey, IdempotencyRecord, InboxStats, LeadWrite, PolicyRecord,
    PoolStats, QuarantinedEntry, Sequenced, Store, StoreError, StoreResult, WriteHealth, WriteOutcome,
    probe_filler,
};
use crate::domain::audit::{
    self, Admission, AuditEntry, ChainHead, ChainTip, ChainedEntry, Refusal, SealedEntry,
};
use crate::domain::lead::Lead;
use crate::domain::query::{
    AuditField, AuditOrder, LeadField, LeadOrder, ListQuery, NoField, PolicyOrder, QuarantineOrder,
};
use crate::domain::values::{Email, LeadId, Timestamp};

/// Readers run beside the single writer (WAL lets them).
const READERS: u32 = 4;

pub struct SqliteStore {
    /// One connection: SQLite has one writer at a time, and queueing here is cheaper than
    /// retrying on SQLITE_BUSY.
    writer: SqlitePool,
    reader: SqlitePool,
    /// The batched lead reads' own connection, one of the readers.
    batch_reader: HeldConnection<Sqlite>,
    /// Whether the last write was refused for lack of room or permission.
    health: WriteHealth,
}

fn classify(error: sqlx::Error) -> StoreError {
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

async fn insert_or_conflict<'c>(
    conn: &mut sqlx::SqliteConnection,
    query: sqlx::query::Query<'c, Sqlite, sqlx::sqlite::SqliteArguments<'c>>,
) -> StoreResult<Option<WriteOutcome>> {
    match conn.execute(query).await {
        Ok(_) => Ok(None),
        Err(e) => {
            // SQLite names the columns, not the constraint: "UNIQUE constraint failed: leads.email".
            let message = e
                .as_database_error()
                .filter(|d| d.kind() == sqlx::error::ErrorKind::UniqueViolation)
                .map(|d| d.message().to_owned());
            match message {
                Some(m) if m.contains("leads.email") => Ok(Some(WriteOutcome::EmailTaken)),
                Some(m) if m.contains("idempotency_keys.") => Ok(Some(WriteOutcome::RequestIdTaken)),
                _ => Err(classify(e)),
            }
        }
    }
}

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
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .test_before_acquire(false)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.read_only(true))
            .await
            .map_err(classify)?;
        let batch_reader = HeldConnection::new(reader.clone());
        Ok(Self {
            writer,
            reader,
            batch_reader,
            health: WriteHealth::default(),
        })
    }

    /// The lead (inserted, or updated if its revision is still `expected_revision`), its audit
    /// entries and the idempotency record, in one transaction on the single writer.
    async fn write(&self, write: LeadWrite<'_>, expected_revision: Option<i64>) -> StoreResult<WriteOutcome> {
        let columns = LeadColumns::of(write.lead);
        let result = async {
            let mut tx = self.begin_write().await?;
            let conflict = match write.idempotency {
                Some(record) => insert_or_conflict(tx.connection(), sql::bind_idempotency(record)).await?,
                None => None,
            };
            let conflict = match (conflict, expected_revision) {
                (Some(outcome), _) => Some(outcome),
                (None, None) => insert_or_conflict(tx.connection(), columns.bind(sql::INSERT_LEAD)).await?,
                (None, Some(revision)) => {
                    let done = columns
                        .bind(sql::UPDATE_LEAD)
                        .bind(revision)
                        .execute(tx.connection())
                        .await
                        .map_err(classify)?;
                    (done.rows_affected() == 0).then_some(WriteOutcome::RevisionConflict)
                }
            };
            if let Some(outcome) = conflict {
                tx.rollback().await;
                return Ok(outcome);
            }
            for entry in write.entries {
                sql::bind_entry(entry)
                    .execute(tx.connection())
                    .await
                    .map_err(classify)?;
            }
            tx.commit().await.map_err(classify)?;
            Ok(WriteOutcome::Written)
        }
        .await;
        self.health.observe(&result);
        result
    }

    /// A write transaction on the single writer, holding SQLite's write lock from the start.
    async fn begin_write(&self) -> StoreResult<WriteTx<Sqlite>> {
        WriteTx::begin(&self.writer, "BEGIN IMMEDIATE")
            .await
            .map_err(classify)
    }

    async fn tip_in(conn: &mut sqlx::SqliteConnection) -> StoreResult<ChainTip> {
        let row: Option<(i64, Vec<u8>, i64)> = sqlx::query_as(sql::SELECT_TIP)
            .fetch_optional(conn)
            .await
            .map_err(classify)?;
        sql::tip_from(row)
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn pool_stats(&self) -> PoolStats {
        let pools = [&self.writer, &self.reader];
        let size: u32 = pools.iter().map(|p| p.size()).sum();
        let idle: u32 = pools.iter().map(|p| p.num_idle() as u32).sum();
        PoolStats {
            in_use: size.saturating_sub(idle),
            idle,
            max: pools.iter().map(|p| p.options().get_max_connections()).sum(),
        }
    }

    async fn inbox_stats(&self) -> StoreResult<InboxStats> {
        let row: (i64, Option<i64>) = sqlx::query_as(sql::INBOX_STATS)
            .fetch_one(&self.reader)
            .await
            .map_err(classify)?;
        sql::inbox_stats(row)
    }

    async fn leads_by_state(&self) -> StoreResult<Vec<(crate::domain::lifecycle::LeadState, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::LEADS_BY_STATE)
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?;
        sql::leads_by_state(rows)
    }

    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("migrations/sqlite")
            .run(&self.writer)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(e) => classify(e),
                other => StoreError::Database(other.to_string()),
            })
    }

    async fn check_migrated(&self) -> StoreResult<()> {
        let applied: Vec<i64> = sqlx::query_scalar(sql::SELECT_APPLIED_MIGRATIONS)
            .fetch_all(&self.reader)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migrations not applied yet: {e}")))?;
        super::missing_migrations(&sqlx::migrate!("migrations/sqlite"), &applied)
    }

    async fn grant_service_role(&self, _role: &str) -> StoreResult<()> {
        Err(StoreError::Database(
            "SQLite has no roles: --grant-to is for PostgreSQL".into(),
        ))
    }

    async fn privilege_warning(&self) -> StoreResult<Option<String>> {
        // One process over one file: whoever can write the file holds the trail.
        Ok(None)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(classify)?;
        Ok(())
    }

    fn writes_refused(&self) -> bool {
        self.health.refused()
    }

    async fn probe_write(&self) -> StoreResult<()> {
        // Two commits: the first must find room for the row in the file and its journal.
        let id = uuid::Uuid::new_v4();
        let result = async {
            let mut tx = self.begin_write().await?;
            sqlx::query(sql::INSERT_PROBE)
                .bind(id)
                .bind(probe_filler())
                .execute(tx.connection())
                .await
                .map_err(classify)?;
            tx.commit().await.map_err(classify)?;
            let mut tx = self.begin_write().await?;
            sqlx::query(sql::DELETE_PROBE)
                .execute(tx.connection())
                .await
                .map_err(classify)?;
            tx.commit().await.map_err(classify)
        }
        .await;
        self.health.probed(&result);
        result
    }

    async fn insert_lead(&self, write: LeadWrite<'_>) -> StoreResult<WriteOutcome> {
        self.write(write, None).await
    }

    async fn update_lead(&self, write: LeadWrite<'_>, expected_revision: i64) -> StoreResult<WriteOutcome> {
        self.write(write, Some(expected_revision)).await
    }

    async fn get_lead(&self, id: LeadId) -> StoreResult<Option<Lead>> {
        let doc: Option<String> = sqlx::query_scalar(sql::SELECT_LEAD)
            .bind(id.as_uuid())
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?;
        doc.as_deref().map(sql::decode_lead).transpose()
    }

    async fn get_leads(&self, ids: &[LeadId]) -> StoreResult<Vec<Lead>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let docs: Vec<(String,)> = self
            .batch_reader
            .with(async |connection| {
                sql::select_leads::<Sqlite>(ids)
                    .build_query_as()
                    .fetch_all(connection)
                    .await
            })
            .await
            .map_err(classify)?;
        docs.iter().map(|(d,)| sql::decode_lead(d)).collect()
    }

    async fn find_lead_by_email(&self, email: &Email) -> StoreResult<Option<Lead>> {
        let doc: Option<String> = sqlx::query_scalar(sql::SELECT_LEAD_BY_EMAIL)
            .bind(email.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?;
        doc.as_deref().map(sql::decode_lead).transpose()
    }

    async fn list_leads(&self, query: &ListQuery<LeadField, LeadOrder>) -> StoreResult<Vec<Lead>> {
        let (text, binds) = list::leads(query);
        let docs: Vec<(String,)> = list::bind_values::<Sqlite>(&text, &binds)
            .try_map(|row| sqlx::FromRow::from_row(&row))
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?;
        docs.iter().map(|(d,)| sql::decode_lead(d)).collect()
    }

    async fn leads_due(
        &self,
        now: Timestamp,
        after: Option<&DueLead>,
        limit: usize,
    ) -> StoreResult<Vec<DueLead>> {
        let after = after.unwrap_or(&DueLead::START);
        let rows: Vec<(i64, uuid::Uuid)> = sqlx::query_as(sql::SELECT_DUE)
            .bind(now.timestamp_micros())
            .bind(after.due)
            .bind(after.id.as_uuid())
            .bind(limit as i64)
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?;
        Ok(rows
            .into_iter()
            .map(|(due, id)| DueLead {
                due,
                id: LeadId::from_uuid(id),
            })
            .collect())
    }

    async fn find_idempotency(&self, key: &IdempotencyKey) -> StoreResult<Option<IdempotencyRecord>> {
        let row: Option<sql::IdempotencyRow> = sqlx::query_as(sql::SELECT_IDEMPOTENCY)
            .bind(&key.principal)
            .bind(&key.request_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?;
        row.map(sql::IdempotencyRow::into_record).transpose()
    }

    async fn purge_idempotency(&self, before: Timestamp) -> StoreResult<u64> {
        // One statement: SQLite's own transaction around it ends with it, whatever happens.
        let result = sqlx::query(sql::PURGE_IDEMPOTENCY)
            .bind(before.timestamp_micros())
            .execute(&self.writer)
            .await
            .map(|done| done.rows_affected())
            .map_err(classify);
        self.health.observe(&result);
        result
    }

    async fn sequence(&self, max: usize, admission: &Admission<'_>) -> StoreResult<Sequenced> {
        // The single writer connection already serialises sequencing with every other write.
        let result = async {
            let mut tx = self.begin_write().await?;
            let rows: Vec<InboxRow> = sqlx::query_as(sql::SELECT_INBOX)
                .bind(max as i64)
                .fetch_all(tx.connection())
                .await
                .map_err(classify)?;
            if rows.is_empty() {
                tx.rollback().await;
                return Ok(Sequenced::default());
            }
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            let already: std::collections::HashSet<i64> = sql::select_chained_inbox_ids::<Sqlite>(&ids)
                .build_query_scalar()
                .fetch_all(tx.connection())
                .await
                .map_err(classify)?
                .into_iter()
                .collect();
            let mut admitted = Vec::with_capacity(rows.len());
            let mut refused = Vec::new();
            for row in rows {
                let verdict = match already.contains(&row.id) {
                    true => Err(Refusal::Duplicate(row.id)),
                    false => row.clone().admit(admission),
                };
                match verdict {
                    Ok(admitted_entry) => admitted.push(admitted_entry),
                    Err(refusal) => refused.push((row, refusal)),
                }
            }
            // Set aside, never chained, never in the way of the rest.
            for (row, refusal) in &refused {
                let detail = refusal.to_string();
                sql::bind_quarantine(row, refusal, &detail, admission.now)
                    .execute(tx.connection())
                    .await
                    .map_err(classify)?;
                sqlx::query(sql::DELETE_INBOX_ROW)
                    .bind(row.id)
                    .execute(tx.connection())
                    .await
                    .map_err(classify)?;
            }
            let mut chained_count = 0;
            if !admitted.is_empty() {
                let tip = Self::tip_in(tx.connection()).await?;
                let (ids, entries): (Vec<i64>, Vec<AuditEntry>) = admitted.into_iter().unzip();
                let chained: Vec<(i64, ChainedEntry)> = ids
                    .into_iter()
                    .zip(audit::link_and_seal(tip, entries, admission.keys))
                    .collect();
                for chunk in chained.chunks(sql::SEQUENCE_BATCH) {
                    sql::insert_log::<Sqlite>(chunk)
                        .build()
                        .execute(tx.connection())
                        .await
                        .map_err(classify)?;
                    sql::delete_inbox::<Sqlite>(chunk)
                        .build()
                        .execute(tx.connection())
                        .await
                        .map_err(classify)?;
                }
                chained_count = chained.len();
            }
            tx.commit().await.map_err(classify)?;
            Ok(Sequenced {
                chained: chained_count,
                quarantined: refused
                    .into_iter()
                    .map(|(row, refusal)| (row.id, refusal))
                    .collect(),
            })
        }
        .await;
        self.health.observe(&result);
        result
    }

    async fn sealed_from(&self) -> StoreResult<i64> {
        sqlx::query_scalar(sql::SELECT_SEALED_FROM)
            .fetch_one(&self.reader)
            .await
            .map_err(classify)
    }

    async fn list_quarantine(
        &self,
        query: &ListQuery<NoField, QuarantineOrder>,
    ) -> StoreResult<Vec<QuarantinedEntry>> {
        let (text, binds) = list::quarantine(query);
        let rows: Vec<sql::QuarantineRow> = list::bind_values::<Sqlite>(&text, &binds)
            .try_map(|row| sqlx::FromRow::from_row(&row))
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?;
        rows.into_iter().map(sql::QuarantineRow::into_record).collect()
    }

    async fn chain_head(&self) -> StoreResult<ChainHead> {
        let mut conn = self.reader.acquire().await.map_err(classify)?;
        Ok(Self::tip_in(&mut conn).await?.head)
    }

    async fn chain_range(&self, after: i64, limit: usize) -> StoreResult<Vec<ChainedEntry>> {
        let rows: Vec<LogRow> = sqlx::query_as(&format!(
            "SELECT {} FROM audit_log WHERE position > $1 ORDER BY position LIMIT $2",
            sql::LOG_COLUMNS
        ))
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await
        .map_err(classify)?;
        rows.into_iter().map(LogRow::into_chained).collect()
    }

    async fn list_audit(&self, query: &ListQuery<AuditField, AuditOrder>) -> StoreResult<Vec<ChainedEntry>> {
        let (text, binds) = list::audit(query);
        let rows: Vec<LogRow> = list::bind_values::<Sqlite>(&text, &binds)
            .try_map(|row| sqlx::FromRow::from_row(&row))
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?;
        rows.into_iter().map(LogRow::into_chained).collect()
    }

    async fn activate_policy(&self, policy: &PolicyRecord, entry: &SealedEntry) -> StoreResult<bool> {
        let result = async {
            let mut tx = self.begin_write().await?;
            let active: Option<String> = sqlx::query_scalar(sql::SELECT_ACTIVE_POLICY)
                .fetch_optional(tx.connection())
                .await
                .map_err(classify)?;
            if active.as_deref() == Some(policy.version.as_str()) {
                tx.rollback().await;
                return Ok(false);
            }
            let at = policy.activated_at.timestamp_micros();
            sqlx::query(sql::INSERT_POLICY)
                .bind(&policy.version)
                .bind(&policy.name)
                .bind(&policy.content)
                .bind(at)
                .execute(tx.connection())
                .await
                .map_err(classify)?;
            sqlx::query(sql::INSERT_ACTIVATION)
                .bind(&policy.version)
                .bind(at)
                .execute(tx.connection())
                .await
                .map_err(classify)?;
            sql::bind_entry(entry)
                .execute(tx.connection())
                .await
                .map_err(classify)?;
            tx.commit().await.map_err(classify)?;
            Ok(true)
        }
        .await;
        self.health.observe(&result);
        result
    }

    async fn get_policy(&self, version: &str) -> StoreResult<Option<PolicyRecord>> {
        let row: Option<sql::PolicyRow> = sqlx::query_as(sql::SELECT_POLICY)
            .bind(version)
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?;
        row.map(sql::PolicyRow::into_record).transpose()
    }

    async fn active_policy_version(&self) -> StoreResult<Option<String>> {
        sqlx::query_scalar(sql::SELECT_ACTIVE_POLICY)
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)
    }

    async fn list_policies(&self, query: &ListQuery<NoField, PolicyOrder>) -> StoreResult<Vec<PolicyRecord>> {
        let (text, binds) = list::policies(query);
        let rows: Vec<sql::PolicyRow> = list::bind_values::<Sqlite>(&text, &binds)
            .try_map(|row| sqlx::FromRow::from_row(&row))
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?;
        rows.into_iter().map(sql::PolicyRow::into_record).collect()
    }
}
