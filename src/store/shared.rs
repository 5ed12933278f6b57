//! The store's one body: [`SqlStore`] implements [`Store`] once for both databases, and each
//! backend says through [`Dialect`] only what it does its own way.
//!
//! # Why sqlx generics and a dialect trait
//!
//! Most of the store is the same SQL (see [`super::sql`]) run the same way on either database;
//! only the pool differs. Written once, generic over sqlx's [`Database`], that code is checked by
//! the compiler once and cannot drift between the backends. What sqlx needs of the database to
//! run it (its values encode and decode, its connections execute) is spelt out once, in the
//! `where` clause of the `impl Store` below: the drivers have it all, and a type leadgate starts
//! binding or reading is added there, in one place.
//!
//! [`Dialect`], implemented on sqlx's own `Sqlite` and `Postgres`, is the short list of what
//! truly differs: how a backend classifies errors, writes a lead (SQLite: statements in a
//! transaction its single writer shares among concurrent writes; PostgreSQL: one statement),
//! takes the sequencer's turn, moves chained entries into the log and announces the chain's
//! head, runs migrations, grants roles and reads a batch of leads. Connecting lives beside it, in
//! each backend's file. A macro stamping the shared bodies out per backend was the other way; it
//! would hide the bodies from the compiler until expanded and from the reader behind a level of
//! indirection, for no gain the generics do not give.
//!
//! The price of generics: that `where` clause, and multi-row statements built as text plus binds
//! rather than with sqlx's `QueryBuilder` (see [`sql::insert_log_sql`]).
//!
//! Every multi-statement write goes through [`WriteTx`] (see its module doc for why never sqlx's
//! `Transaction`), and every write path records refusals in [`WriteHealth`].

use std::future::Future;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::query::QueryAs;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type};
use uuid::Uuid;

use super::held::HeldConnection;
use super::list;
use super::notify::HeadListener;
use super::sql::{self, InboxRow, LeadColumns, LogRow};
use super::statements;
use super::tx::WriteTx;
use super::{
    AccountContact, AccountProjectionWrite, AccountRecord, Backend, BatchWrite, DueLead, ErasureWrite,
    FactStream, IdempotencyKey, IdempotencyRecord, InboxStats, LeadWrite, MergeWrite, PolicyRecord,
    PoolStats, QuarantinedEntry, Sequenced, Store, StoreError, StoreResult, WriteHealth, WriteOutcome,
    probe_filler,
};
use crate::domain::account::{AccountKey, Contribution};
use crate::domain::audit::{self, Admission, AuditEntry, ChainHead, ChainedEntry, Refusal, SealedEntry};
use crate::domain::lead::Lead;
use crate::domain::lifecycle::LeadState;
use crate::domain::query::{
    AuditField, AuditOrder, LeadField, LeadOrder, ListQuery, NoField, PolicyOrder, QuarantineOrder,
};
use crate::domain::values::{Email, LeadId, SourceChannel, Timestamp};

/// What a backend does its own way. Implemented on sqlx's `Sqlite` and `Postgres`.
pub trait Dialect: Database {
    const BACKEND: Backend;

    /// The statement that starts a write transaction.
    const BEGIN_WRITE: &'static str;

    /// Whether the write probe commits its row before removing it: a database that looks for
    /// room only when it commits must commit the row to show that writes fit.
    const PROBE_COMMITS_ROW: bool;

    /// How the backend opens connections outside its pools, for work that must not take one
    /// from the calls or must run without their limits.
    type Direct: Send + Sync + 'static;

    /// Where lead writes go before the database, if anywhere (SQLite: the group commit).
    type Writes: Send + Sync + 'static;

    /// Sorts a database error into what the caller sees.
    fn classify(error: sqlx::Error) -> StoreError;

    /// The migrations this version knows.
    fn migrator() -> &'static Migrator;

    /// How many rows a statement changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// Writes the lead (inserted, or updated if its revision is still `expected_revision`), its
    /// audit entries and its idempotency record, all or nothing. A request id already taken is
    /// [`WriteOutcome::RequestIdTaken`] whatever else conflicts: a replay must win.
    fn write_lead(
        store: &SqlStore<Self>,
        write: LeadWrite<'_>,
        expected_revision: Option<i64>,
    ) -> impl Future<Output = StoreResult<WriteOutcome>> + Send;

    /// Writes a batch in one transaction, each write in a savepoint of its own (see
    /// [`Store::write_leads`]). A conflict may be answered as `EmailTaken` or `RevisionConflict`
    /// even when the request id was taken too: the caller looks its answers up again.
    fn write_leads(
        store: &SqlStore<Self>,
        writes: &[BatchWrite<'_>],
    ) -> impl Future<Output = Vec<StoreResult<WriteOutcome>>> + Send;

    /// The documents of the leads among `ids` that exist.
    fn lead_documents(
        connection: &mut Self::Connection,
        ids: &[LeadId],
    ) -> impl Future<Output = Result<Vec<String>, sqlx::Error>> + Send;

    /// Of the inbox rows `ids`, those whose entries are already in the log.
    fn chained_inbox_ids(
        tx: &mut WriteTx<Self>,
        ids: &[i64],
    ) -> impl Future<Output = StoreResult<std::collections::HashSet<i64>>> + Send;

    /// Appends chained entries (with their inbox ids) to the log and removes them from the inbox.
    fn move_to_log(
        tx: &mut WriteTx<Self>,
        chained: &[(i64, ChainedEntry)],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Whether this transaction may chain entries now; `false`: another process is chaining.
    fn take_sequencer_turn(tx: &mut WriteTx<Self>) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Tells other processes, once the transaction commits, that the chain's head is `position`.
    fn announce_head(tx: &mut WriteTx<Self>, position: i64) -> impl Future<Output = StoreResult<()>> + Send;

    /// Waits until no other process is activating a policy (until the transaction ends).
    fn lock_policy_activation(tx: &mut WriteTx<Self>) -> impl Future<Output = StoreResult<()>> + Send;

    /// Applies pending migrations.
    fn migrate(store: &SqlStore<Self>) -> impl Future<Output = StoreResult<()>> + Send;

    /// See [`Store::grant_service_role`].
    fn grant_service_role(store: &SqlStore<Self>, role: &str)
    -> impl Future<Output = StoreResult<()>> + Send;

    /// See [`Store::privilege_warning`].
    fn privilege_warning(store: &SqlStore<Self>) -> impl Future<Output = StoreResult<Option<String>>> + Send;

    /// See [`Store::listen_for_heads`].
    fn listen_for_heads(
        store: &SqlStore<Self>,
    ) -> impl Future<Output = StoreResult<Option<HeadListener>>> + Send;
}

/// A store over one database: its pools, and what both backends keep.
pub struct SqlStore<DB: Dialect> {
    /// Reads, and the writes of a backend without a writer of its own: SQLite's read-only
    /// connections beside its writer (WAL lets them run); PostgreSQL's one pool.
    pub(super) pool: Pool<DB>,
    /// SQLite's single writer, a pool of one connection: SQLite has one writer at a time, and
    /// queueing here is cheaper than retrying on SQLITE_BUSY. `None`: writes use `pool`.
    pub(super) single_writer: Option<Pool<DB>>,
    /// The batched lead reads' own connection, from `pool`.
    batch_reader: HeldConnection<DB>,
    /// Whether the last write was refused for lack of room or permission.
    health: WriteHealth,
    /// How to open connections outside the pools ([`Dialect::Direct`]).
    pub(super) direct: DB::Direct,
    /// The lead writes' way in ([`Dialect::Writes`]).
    pub(super) writes: DB::Writes,
}

impl<DB: Dialect> SqlStore<DB> {
    pub(super) fn new(
        pool: Pool<DB>,
        single_writer: Option<Pool<DB>>,
        direct: DB::Direct,
        writes: DB::Writes,
    ) -> Self {
        Self {
            writes,
            batch_reader: HeldConnection::new(pool.clone()),
            pool,
            single_writer,
            health: WriteHealth::default(),
            direct,
        }
    }

    /// Where writes go.
    pub(super) fn writer(&self) -> &Pool<DB> {
        self.single_writer.as_ref().unwrap_or(&self.pool)
    }
}

impl<DB: Dialect> SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    /// A write transaction on the writer.
    pub(super) async fn begin_write(&self) -> StoreResult<WriteTx<DB>> {
        WriteTx::begin(self.writer(), DB::BEGIN_WRITE)
            .await
            .map_err(DB::classify)
    }

    /// The rows of `{statement} IN (...)` over `values` (after `first`, bound as `$1` when
    /// given), [`sql::IN_LIST_CHUNK`] values a statement: SQLite's cost of binding grows with
    /// the square of a statement's parameters.
    async fn select_in<V, R>(
        &self,
        statement: &str,
        first: Option<&str>,
        values: &[V],
        bind: impl for<'q> Fn(
            QueryAs<'q, DB, R, DB::Arguments<'q>>,
            &'q V,
        ) -> QueryAs<'q, DB, R, DB::Arguments<'q>>
        + Send
        + Sync,
    ) -> StoreResult<Vec<R>>
    where
        V: Sync,
        R: for<'r> FromRow<'r, DB::Row> + Send + Unpin,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    {
        let mut rows = Vec::with_capacity(values.len());
        for chunk in values.chunks(sql::IN_LIST_CHUNK) {
            let select = sql::in_list_sql_after(statement, usize::from(first.is_some()) + 1, chunk.len());
            let start = match first {
                Some(value) => sqlx::query_as(&select).bind(value),
                None => sqlx::query_as(&select),
            };
            let query = chunk.iter().fold(start, &bind);
            rows.extend(query.fetch_all(&self.pool).await.map_err(DB::classify)?);
        }
        Ok(rows)
    }
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Dialect,
    // Statements run on a connection (and so on a pool), with the database's own arguments...
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    // ...binding these values...
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q [u8]>: Encode<'q, DB>,
    // ...and reading these columns, by position or by name.
    for<'r> i64: Decode<'r, DB>,
    for<'r> Uuid: Decode<'r, DB>,
    for<'r> &'r str: Decode<'r, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'n> &'n str: ColumnIndex<DB::Row>,
{
    fn backend(&self) -> Backend {
        DB::BACKEND
    }

    fn pool_stats(&self) -> PoolStats {
        let pools = || std::iter::once(&self.pool).chain(&self.single_writer);
        let size: u32 = pools().map(|p| p.size()).sum();
        let idle: u32 = pools().map(|p| p.num_idle() as u32).sum();
        PoolStats {
            in_use: size.saturating_sub(idle),
            idle,
            max: pools().map(|p| p.options().get_max_connections()).sum(),
        }
    }

    async fn inbox_stats(&self) -> StoreResult<InboxStats> {
        let row: (i64, Option<i64>) = sqlx::query_as(sql::INBOX_STATS)
            .fetch_one(&self.pool)
            .await
            .map_err(DB::classify)?;
        sql::inbox_stats(row)
    }

    async fn leads_by_state(&self) -> StoreResult<Vec<(LeadState, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::LEADS_BY_STATE)
            .fetch_all(&self.pool)
            .await
            .map_err(DB::classify)?;
        sql::leads_by_state(rows)
    }

    async fn migrate(&self) -> StoreResult<()> {
        DB::migrate(self).await
    }

    async fn check_migrated(&self) -> StoreResult<()> {
        let applied: Vec<i64> = sqlx::query_scalar(sql::SELECT_APPLIED_MIGRATIONS)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| match DB::classify(e) {
                // No migrations table yet, most likely.
                StoreError::Database(m) => {
                    StoreError::Unavailable(format!("migrations not applied yet: {m}"))
                }
                other @ (StoreError::Unavailable(_)
                | StoreError::Timeout(_)
                | StoreError::Corrupt(_)
                | StoreError::StorageFull(_)
                | StoreError::ReadOnly(_)) => other,
            })?;
        super::missing_migrations(DB::migrator(), &applied)
    }

    async fn grant_service_role(&self, role: &str) -> StoreResult<()> {
        DB::grant_service_role(self, role).await
    }

    async fn privilege_warning(&self) -> StoreResult<Option<String>> {
        DB::privilege_warning(self).await
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(DB::classify)?;
        Ok(())
    }

    fn writes_refused(&self) -> bool {
        self.health.refused()
    }

    async fn probe_write(&self) -> StoreResult<()> {
        let (id, filler) = (Uuid::new_v4(), probe_filler());
        let result = async {
            let mut tx = self.begin_write().await?;
            sqlx::query(sql::INSERT_PROBE)
                .bind(id)
                .bind(filler.as_slice())
                .execute(tx.connection())
                .await
                .map_err(DB::classify)?;
            if DB::PROBE_COMMITS_ROW {
                tx.commit().await.map_err(DB::classify)?;
                tx = self.begin_write().await?;
            }
            sqlx::query(sql::DELETE_PROBE)
                .execute(tx.connection())
                .await
                .map_err(DB::classify)?;
            tx.commit().await.map_err(DB::classify)
        }
        .await;
        self.health.probed(&result);
        result
    }

    async fn insert_lead(&self, write: LeadWrite<'_>) -> StoreResult<WriteOutcome> {
        let result = DB::write_lead(self, write, None).await;
        self.health.observe(&result);
        result
    }

    async fn update_lead(&self, write: LeadWrite<'_>, expected_revision: i64) -> StoreResult<WriteOutcome> {
        let result = DB::write_lead(self, write, Some(expected_revision)).await;
        self.health.observe(&result);
        result
    }

    async fn erase_lead(
        &self,
        write: LeadWrite<'_>,
        expected_revision: i64,
        erasure: ErasureWrite<'_>,
    ) -> StoreResult<WriteOutcome> {
        let columns = sql::LeadColumns::of(write.lead);
        let answers_naming_lead = format!("%{}%", write.lead.id.as_uuid());
        let result = async {
            let mut tx = self.begin_write().await?;
            let updated = columns
                .bind::<DB>(sql::ERASE_LEAD)
                .bind(expected_revision)
                .execute(tx.connection())
                .await
                .map_err(DB::classify)?;
            if DB::rows_affected(&updated) == 0 {
                tx.rollback().await;
                return Ok(WriteOutcome::RevisionConflict);
            }
            for sealed in write.entries {
                sql::bind_entry(sealed)
                    .execute(tx.connection())
                    .await
                    .map_err(DB::classify)?;
            }
            if erasure.forget_answers {
                sqlx::query(sql::FORGET_ANSWERS)
                    .bind(answers_naming_lead.as_str())
                    .execute(tx.connection())
                    .await
                    .map_err(DB::classify)?;
            }
            if let Some(record) = write.idempotency {
                let inserted = sql::bind_idempotency(record).execute(tx.connection()).await;
                if let Err(error) = inserted {
                    tx.rollback().await;
                    // A concurrent request with this id committed first: its answer wins.
                    return match self.find_idempotency(&record.key).await {
                        Ok(Some(_)) => Ok(WriteOutcome::RequestIdTaken),
                        _ => Err(DB::classify(error)),
                    };
                }
            }
            sqlx::query(sql::INSERT_SUPPRESSION)
                .bind(erasure.suppressed_email.as_slice())
                .bind(columns.update_time)
                .execute(tx.connection())
                .await
                .map_err(DB::classify)?;
            tx.commit().await.map_err(DB::classify)?;
            Ok(WriteOutcome::Written)
        }
        .await;
        self.health.observe(&result);
        result
    }

    /// One transaction on the writer, statement by statement: the idempotency record first (a
    /// taken request id answers before anything else), both leads in the order of their ids (two
    /// merges of the same pair taken in opposite roles wait for each other rather than deadlock),
    /// the aliases re-pointed, the entries. Any conflict rolls everything back; any error ends
    /// the transaction (see [`WriteTx`]).
    async fn merge_leads(&self, write: MergeWrite<'_>) -> StoreResult<WriteOutcome> {
        let result = async {
            let mut tx = self.begin_write().await?;
            if let Some(record) = write.idempotency
                && let Err(e) = sql::bind_idempotency(record).execute(tx.connection()).await
            {
                let taken = e
                    .as_database_error()
                    .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::UniqueViolation);
                if !taken {
                    return Err(DB::classify(e));
                }
                tx.rollback().await;
                return Ok(WriteOutcome::RequestIdTaken);
            }
            let mut leads = [
                (LeadColumns::of(write.winner), write.winner_revision),
                (LeadColumns::of(write.loser), write.loser_revision),
            ];
            leads.sort_by_key(|(columns, _)| columns.id);
            for (columns, revision) in &leads {
                let done = columns
                    .bind(sql::UPDATE_LEAD)
                    .bind(*revision)
                    .execute(tx.connection())
                    .await
                    .map_err(DB::classify)?;
                if DB::rows_affected(&done) == 0 {
                    tx.rollback().await;
                    return Ok(WriteOutcome::RevisionConflict);
                }
            }
            sqlx::query(sql::REPOINT_ALIASES)
                .bind(write.winner.id.as_uuid())
                .bind(write.loser.id.as_uuid())
                .execute(tx.connection())
                .await
                .map_err(DB::classify)?;
            for entry in write.entries {
                sql::bind_entry(entry)
                    .execute(tx.connection())
                    .await
                    .map_err(DB::classify)?;
            }
            tx.commit().await.map_err(DB::classify)?;
            Ok(WriteOutcome::Written)
        }
        .await;
        self.health.observe(&result);
        result
    }

    async fn suppressed_among(
        &self,
        hashes: &[[u8; 32]],
    ) -> StoreResult<std::collections::HashSet<[u8; 32]>> {
        let rows: Vec<(Vec<u8>,)> = self
            .select_in(sql::SELECT_SUPPRESSED, None, hashes, |query, hash| {
                query.bind(hash.as_slice())
            })
            .await?;
        let found = rows
            .into_iter()
            .filter_map(|(row,)| <[u8; 32]>::try_from(row).ok())
            .collect();
        Ok(found)
    }

    async fn leads_unchanged_since(&self, before: Timestamp, limit: usize) -> StoreResult<Vec<LeadId>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(sql::SELECT_UNCHANGED)
            .bind(before.timestamp_micros())
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(DB::classify)?;
        Ok(ids.into_iter().map(LeadId::from_uuid).collect())
    }

    async fn aliases(&self, id: LeadId) -> StoreResult<Vec<LeadId>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(sql::SELECT_ALIASES)
            .bind(id.as_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(DB::classify)?;
        Ok(ids.into_iter().map(LeadId::from_uuid).collect())
    }

    async fn merge_target(&self, id: LeadId) -> StoreResult<Option<LeadId>> {
        let target: Option<Option<Uuid>> = sqlx::query_scalar(sql::SELECT_MERGE_TARGET)
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::classify)?;
        Ok(target.flatten().map(LeadId::from_uuid))
    }

    async fn write_leads(&self, writes: &[BatchWrite<'_>]) -> Vec<StoreResult<WriteOutcome>> {
        if writes.is_empty() {
            return Vec::new();
        }
        let outcomes = DB::write_leads(self, writes).await;
        for outcome in &outcomes {
            self.health.observe(outcome);
        }
        outcomes
    }

    async fn get_lead(&self, id: LeadId) -> StoreResult<Option<Lead>> {
        let doc: Option<String> = sqlx::query_scalar(sql::SELECT_LEAD)
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::classify)?;
        doc.as_deref().map(sql::decode_lead).transpose()
    }

    async fn get_leads(&self, ids: &[LeadId]) -> StoreResult<Vec<Lead>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let docs = self
            .batch_reader
            .with(async |connection| DB::lead_documents(connection, ids).await)
            .await
            .map_err(DB::classify)?;
        docs.iter().map(|d| sql::decode_lead(d)).collect()
    }

    async fn account_position(&self) -> StoreResult<i64> {
        sqlx::query_scalar(sql::SELECT_ACCOUNT_POSITION)
            .fetch_one(&self.pool)
            .await
            .map_err(DB::classify)
    }

    async fn account_contacts(&self, leads: &[LeadId]) -> StoreResult<Vec<AccountContact>> {
        let rows: Vec<sql::AccountContactRow> = self
            .select_in(sql::SELECT_ACCOUNT_CONTACTS, None, leads, |query, lead| {
                query.bind(lead.as_uuid())
            })
            .await?;
        rows.into_iter().map(sql::account_contact).collect()
    }

    async fn accounts(&self, keys: &[AccountKey]) -> StoreResult<Vec<AccountRecord>> {
        let stored: Vec<String> = keys.iter().map(AccountKey::stored).collect();
        let rows: Vec<sql::AccountRow> = self
            .select_in(sql::SELECT_ACCOUNTS, None, &stored, |query, key| {
                query.bind(key.as_str())
            })
            .await?;
        rows.into_iter().map(sql::account_record).collect()
    }

    /// One transaction on the writer: the position moved first (no row: another run went
    /// first, and nothing is written), then the accounts and the contacts in multi-row upserts.
    async fn write_account_projection(&self, write: AccountProjectionWrite<'_>) -> StoreResult<bool> {
        let result = async {
            let mut tx = self.begin_write().await?;
            let moved = sqlx::query(sql::ADVANCE_ACCOUNT_POSITION)
                .bind(write.from)
                .bind(write.to)
                .execute(tx.connection())
                .await
                .map_err(DB::classify)?;
            if DB::rows_affected(&moved) == 0 {
                tx.rollback().await;
                return Ok(false);
            }
            // Multi-row upserts, a few hundred values a statement.
            let keys: Vec<String> = write.accounts.iter().map(|a| a.key.stored()).collect();
            let per = sql::VALUES_PER_INSERT / statements::ACCOUNTS.column_names().count();
            for (chunk, keys) in write.accounts.chunks(per).zip(keys.chunks(per)) {
                let upsert = format!(
                    "{}{}",
                    statements::ACCOUNTS.rows_sql(chunk.len()),
                    sql::ACCOUNT_CONFLICT
                );
                chunk
                    .iter()
                    .zip(keys)
                    .fold(sqlx::query(&upsert), |query, (account, key)| {
                        let rollup = &account.view.rollup;
                        query
                            .bind(key.as_str())
                            .bind(account.view.state.as_str())
                            .bind(rollup.contacts)
                            .bind(rollup.engagement.0)
                            .bind(rollup.qualified_contacts)
                            .bind(rollup.customer_contacts)
                            .bind(account.created_at.timestamp_micros())
                            .bind(account.updated_at.timestamp_micros())
                    })
                    .execute(tx.connection())
                    .await
                    .map_err(DB::classify)?;
            }
            let (kept, removed): (Vec<_>, Vec<_>) = write.contacts.iter().partition(|(_, c)| c.is_some());
            let kept: Vec<(LeadId, String, &Contribution)> = kept
                .into_iter()
                .filter_map(|(lead, c)| c.as_ref().map(|(key, c)| (*lead, key.stored(), c)))
                .collect();
            let per = sql::VALUES_PER_INSERT / statements::ACCOUNT_CONTACTS.column_names().count();
            for chunk in kept.chunks(per) {
                let upsert = format!(
                    "{}{}",
                    statements::ACCOUNT_CONTACTS.rows_sql(chunk.len()),
                    sql::ACCOUNT_CONTACT_CONFLICT
                );
                chunk
                    .iter()
                    .fold(sqlx::query(&upsert), |query, (lead, key, c)| {
                        query
                            .bind(lead.as_uuid())
                            .bind(key.as_str())
                            .bind(c.engagement.0)
                            .bind(c.role.map(|r| r.as_str()))
                            .bind(c.involved_at.map(|t| t.timestamp_micros()))
                            .bind(i64::from(c.left))
                            .bind(i64::from(c.qualified))
                            .bind(i64::from(c.customer))
                    })
                    .execute(tx.connection())
                    .await
                    .map_err(DB::classify)?;
            }
            for (lead, _) in removed {
                sqlx::query(sql::DELETE_ACCOUNT_CONTACT)
                    .bind(lead.as_uuid())
                    .execute(tx.connection())
                    .await
                    .map_err(DB::classify)?;
            }
            tx.commit().await.map_err(DB::classify)?;
            Ok(true)
        }
        .await;
        self.health.observe(&result);
        result
    }

    async fn find_lead_by_email(&self, email: &Email) -> StoreResult<Option<Lead>> {
        let doc: Option<String> = sqlx::query_scalar(sql::SELECT_LEAD_BY_EMAIL)
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::classify)?;
        doc.as_deref().map(sql::decode_lead).transpose()
    }

    async fn find_leads_by_emails(&self, emails: &[Email]) -> StoreResult<Vec<Lead>> {
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        let docs: Vec<(String,)> = self
            .select_in(sql::SELECT_LEADS_BY_EMAIL, None, emails, |query, email| {
                query.bind(email.as_str())
            })
            .await?;
        docs.iter().map(|(d,)| sql::decode_lead(d)).collect()
    }

    async fn list_leads(&self, query: &ListQuery<LeadField, LeadOrder>) -> StoreResult<Vec<Lead>> {
        let (text, binds) = list::leads(query);
        let docs: Vec<(String,)> = list::bind_values::<DB>(&text, &binds)
            .try_map(|row| sqlx::FromRow::from_row(&row))
            .fetch_all(&self.pool)
            .await
            .map_err(DB::classify)?;
        docs.iter().map(|(d,)| sql::decode_lead(d)).collect()
    }

    async fn leads_due(
        &self,
        now: Timestamp,
        after: Option<&DueLead>,
        limit: usize,
    ) -> StoreResult<Vec<DueLead>> {
        let after = after.unwrap_or(&DueLead::START);
        let rows: Vec<(i64, Uuid)> = sqlx::query_as(sql::SELECT_DUE)
            .bind(now.timestamp_micros())
            .bind(after.due)
            .bind(after.id.as_uuid())
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(DB::classify)?;
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
            .bind(key.principal.as_str())
            .bind(key.request_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::classify)?;
        row.map(sql::IdempotencyRow::into_record).transpose()
    }

    async fn find_idempotency_many(
        &self,
        principal: &str,
        request_ids: &[String],
    ) -> StoreResult<Vec<IdempotencyRecord>> {
        if request_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<sql::IdempotencyRow> = self
            .select_in(
                sql::SELECT_IDEMPOTENCY_MANY,
                Some(principal),
                request_ids,
                |query, id| query.bind(id.as_str()),
            )
            .await?;
        rows.into_iter().map(sql::IdempotencyRow::into_record).collect()
    }

    async fn purge_idempotency(&self, before: Timestamp) -> StoreResult<u64> {
        // One statement: the database's own transaction around it ends with it, whatever happens.
        let result = sqlx::query(sql::PURGE_IDEMPOTENCY)
            .bind(before.timestamp_micros())
            .execute(self.writer())
            .await
            .map(|done| DB::rows_affected(&done))
            .map_err(DB::classify);
        self.health.observe(&result);
        result
    }

    async fn sequence(&self, max: usize, admission: &Admission<'_>) -> StoreResult<Sequenced> {
        let result = async {
            let mut tx = self.begin_write().await?;
            if !DB::take_sequencer_turn(&mut tx).await? {
                tx.rollback().await;
                return Ok(Sequenced::default());
            }
            let rows: Vec<InboxRow> = sqlx::query_as(sql::SELECT_INBOX)
                .bind(max as i64)
                .fetch_all(tx.connection())
                .await
                .map_err(DB::classify)?;
            if rows.is_empty() {
                tx.rollback().await;
                return Ok(Sequenced::default());
            }
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            let already = DB::chained_inbox_ids(&mut tx, &ids).await?;
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
                    .map_err(DB::classify)?;
                sqlx::query(sql::DELETE_INBOX_ROW)
                    .bind(row.id)
                    .execute(tx.connection())
                    .await
                    .map_err(DB::classify)?;
            }
            let mut chained_count = 0;
            if !admitted.is_empty() {
                let tip = sqlx::query_as(sql::SELECT_TIP)
                    .fetch_optional(tx.connection())
                    .await
                    .map_err(DB::classify)?;
                let tip = sql::tip_from(tip)?;
                let (ids, entries): (Vec<i64>, Vec<AuditEntry>) = admitted.into_iter().unzip();
                let chained: Vec<(i64, ChainedEntry)> = ids
                    .into_iter()
                    .zip(audit::link_and_seal(tip, entries, admission.keys))
                    .collect();
                DB::move_to_log(&mut tx, &chained).await?;
                chained_count = chained.len();
                if let Some((_, last)) = chained.last() {
                    DB::announce_head(&mut tx, last.position).await?;
                }
            }
            tx.commit().await.map_err(DB::classify)?;
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
            .fetch_one(&self.pool)
            .await
            .map_err(DB::classify)
    }

    async fn list_quarantine(
        &self,
        query: &ListQuery<NoField, QuarantineOrder>,
    ) -> StoreResult<Vec<QuarantinedEntry>> {
        let (text, binds) = list::quarantine(query);
        let rows: Vec<sql::QuarantineRow> = list::bind_values::<DB>(&text, &binds)
            .try_map(|row| sqlx::FromRow::from_row(&row))
            .fetch_all(&self.pool)
            .await
            .map_err(DB::classify)?;
        rows.into_iter().map(sql::QuarantineRow::into_record).collect()
    }

    async fn chain_head(&self) -> StoreResult<ChainHead> {
        let tip = sqlx::query_as(sql::SELECT_TIP)
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::classify)?;
        Ok(sql::tip_from(tip)?.head)
    }

    async fn listen_for_heads(&self) -> StoreResult<Option<HeadListener>> {
        DB::listen_for_heads(self).await
    }

    async fn chain_range(&self, after: i64, limit: usize) -> StoreResult<Vec<ChainedEntry>> {
        let rows: Vec<LogRow> = sqlx::query_as(&format!(
            "SELECT {} FROM audit_log WHERE position > $1 ORDER BY position LIMIT $2",
            sql::LOG_COLUMNS
        ))
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(DB::classify)?;
        rows.into_iter().map(LogRow::into_chained).collect()
    }

    async fn list_audit(&self, query: &ListQuery<AuditField, AuditOrder>) -> StoreResult<Vec<ChainedEntry>> {
        let (text, binds) = list::audit(query);
        let rows: Vec<LogRow> = list::bind_values::<DB>(&text, &binds)
            .try_map(|row| sqlx::FromRow::from_row(&row))
            .fetch_all(&self.pool)
            .await
            .map_err(DB::classify)?;
        rows.into_iter().map(LogRow::into_chained).collect()
    }

    fn funnel_entries<'a>(
        &'a self,
        start: Timestamp,
        end: Timestamp,
        channels: &[SourceChannel],
    ) -> FactStream<'a> {
        use tokio_stream::StreamExt;
        let mut channels = channels.to_vec();
        channels.sort();
        channels.dedup();
        let (start, end) = (start.timestamp_micros(), end.timestamp_micros());
        let [main, late] = sql::select_funnel_sql(channels.len()).map(|text| {
            let query = sqlx::query::<DB>(text)
                .bind(start)
                .bind(end)
                .bind(end.saturating_add(sql::LATE_ENTRY_MICROS));
            channels
                .iter()
                .fold(query, |query, channel| query.bind(channel.as_str()))
        });
        // Streamed: the rows of a quarter are folded as they arrive, never held. The late
        // entries' statement runs once the first is read: they all come after its entries.
        let rows = main.fetch(&self.pool).chain(late.fetch(&self.pool));
        Box::pin(rows.map(|row| {
            let row = row.map_err(DB::classify)?;
            sql::FunnelRow::read(&row).map_err(DB::classify)?.into_facts()
        }))
    }

    async fn activate_policy(&self, policy: &PolicyRecord, entry: &SealedEntry) -> StoreResult<bool> {
        let result = async {
            let mut tx = self.begin_write().await?;
            DB::lock_policy_activation(&mut tx).await?;
            let active: Option<String> = sqlx::query_scalar(sql::SELECT_ACTIVE_POLICY)
                .fetch_optional(tx.connection())
                .await
                .map_err(DB::classify)?;
            if active.as_deref() == Some(policy.version.as_str()) {
                tx.rollback().await;
                return Ok(false);
            }
            let at = policy.activated_at.timestamp_micros();
            sqlx::query(sql::INSERT_POLICY)
                .bind(policy.version.as_str())
                .bind(policy.name.as_str())
                .bind(policy.content.as_str())
                .bind(at)
                .execute(tx.connection())
                .await
                .map_err(DB::classify)?;
            sqlx::query(sql::INSERT_ACTIVATION)
                .bind(policy.version.as_str())
                .bind(at)
                .execute(tx.connection())
                .await
                .map_err(DB::classify)?;
            sql::bind_entry(entry)
                .execute(tx.connection())
                .await
                .map_err(DB::classify)?;
            tx.commit().await.map_err(DB::classify)?;
            Ok(true)
        }
        .await;
        self.health.observe(&result);
        result
    }

    async fn get_policy(&self, version: &str) -> StoreResult<Option<PolicyRecord>> {
        let row: Option<sql::PolicyRow> = sqlx::query_as(sql::SELECT_POLICY)
            .bind(version)
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::classify)?;
        row.map(sql::PolicyRow::into_record).transpose()
    }

    async fn active_policy_version(&self) -> StoreResult<Option<String>> {
        sqlx::query_scalar(sql::SELECT_ACTIVE_POLICY)
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::classify)
    }

    async fn list_policies(&self, query: &ListQuery<NoField, PolicyOrder>) -> StoreResult<Vec<PolicyRecord>> {
        let (text, binds) = list::policies(query);
        let rows: Vec<sql::PolicyRow> = list::bind_values::<DB>(&text, &binds)
            .try_map(|row| sqlx::FromRow::from_row(&row))
            .fetch_all(&self.pool)
            .await
            .map_err(DB::classify)?;
        rows.into_iter().map(sql::PolicyRow::into_record).collect()
    }
}
