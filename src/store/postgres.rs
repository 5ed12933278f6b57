//! The PostgreSQL store: production, several replicas over one database.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions as _, Postgres, QueryBuilder};

use super::held::HeldConnection;
use super::list;
use super::notify::{CHAIN_HEAD_CHANNEL, HeadListener};
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

/// Advisory lock held by the replica that is chaining entries.
const SEQUENCER_LOCK: i64 = 0x6c65_6164_6761_7401;
/// Advisory lock held while activating a policy, so replicas starting together record it once.
const POLICY_LOCK: i64 = 0x6c65_6164_6761_7402;

pub struct PgStore {
    pool: PgPool,
    /// The batched lead reads' own connection.
    batch_reader: HeldConnection<Postgres>,
    /// How to connect for migrations and the head listener: like the pool, without the
    /// statement timeout.
    migrations: PgConnectOptions,
    /// Whether the last write was refused for lack of room or permission.
    health: WriteHealth,
}

/// Sorts PostgreSQL failures: lost or refused connections and shutdowns are retryable.
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
        let batch_reader = HeldConnection::new(pool.clone());
        Ok(Self {
            pool,
            batch_reader,
            migrations,
            health: WriteHealth::default(),
        })
    }

    /// One statement, one round trip, one implicit transaction: the lead (inserted, or updated if
    /// its revision is still `expected_revision`), its audit entries and the idempotency record.
    /// On a revision conflict nothing is inserted; a unique violation aborts the whole statement.
    async fn write(&self, write: LeadWrite<'_>, expected_revision: Option<i64>) -> StoreResult<WriteOutcome> {
        let c = LeadColumns::of(write.lead);
        let mut b = QueryBuilder::<Postgres>::new("WITH lead AS (");
        match expected_revision {
            None => {
                b.push(
                    "INSERT INTO leads (id, email, state, source_channel, fit_grade, combined_points, create_time, \
                     update_time, revision, sla_due_time, revisit_time, document) VALUES (",
                );
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
                    .push_bind(&c.document);
                // A known email is an answer, not an error (nor a line in PostgreSQL's log).
                b.push(") ON CONFLICT (email) DO NOTHING RETURNING 1)");
            }
            Some(revision) => {
                b.push("UPDATE leads SET state = ").push_bind(c.state);
                b.push(", source_channel = ").push_bind(c.source_channel);
                b.push(", fit_grade = ").push_bind(c.fit_grade);
                b.push(", combined_points = ").push_bind(c.combined_points);
                b.push(", update_time = ").push_bind(c.update_time);
                b.push(", revision = ").push_bind(c.revision);
                b.push(", sla_due_time = ").push_bind(c.sla_due_time);
                b.push(", revisit_time = ").push_bind(c.revisit_time);
                b.push(", document = ").push_bind(&c.document);
                b.push(" WHERE id = ").push_bind(c.id);
                b.push(" AND revision = ").push_bind(revision);
                b.push(" RETURNING 1)");
            }
        }
        // Inserted only if the lead was written (an update may find another revision).
        const ONLY_IF_WRITTEN: &str = " WHERE EXISTS (SELECT 1 FROM lead)";
        if let Some(record) = write.idempotency {
            b.push(", idem AS (INSERT INTO idempotency_keys (principal, request_id, method, fingerprint, response, create_time) SELECT ");
            let mut v = b.separated(", ");
            v.push_bind(&record.key.principal)
                .push_bind(&record.key.request_id)
                .push_bind(&record.method)
                .push_bind(record.fingerprint.as_slice())
                .push_bind(&record.response)
                .push_bind(record.created_at.timestamp_micros());
            b.push(ONLY_IF_WRITTEN).push(")");
        }
        b.push(
            ", entries AS (INSERT INTO audit_inbox (lead_id, kind, record_time, actor, request_id, state_before, \
             state_after, source_channel, policy_version, body, seal_key_id, seal) SELECT * FROM (",
        );
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
        b.push(") AS entry")
            .push(ONLY_IF_WRITTEN)
            .push(") SELECT COUNT(*) FROM lead");
        let result = match b.build_query_scalar::<i64>().fetch_one(&self.pool).await {
            Ok(0) if expected_revision.is_none() => Ok(WriteOutcome::EmailTaken),
            Ok(0) => Ok(WriteOutcome::RevisionConflict),
            Ok(_) => Ok(WriteOutcome::Written),
            Err(e) => match violated_constraint(&e).as_deref() {
                Some("leads_email_key") => Ok(WriteOutcome::EmailTaken),
                Some("idempotency_keys_pkey") => Ok(WriteOutcome::RequestIdTaken),
                _ => Err(classify(e)),
            },
        };
        self.health.observe(&result);
        result
    }

    async fn begin_write(&self) -> StoreResult<WriteTx<Postgres>> {
        WriteTx::begin(&self.pool, "BEGIN").await.map_err(classify)
    }

    async fn tip_in(conn: &mut sqlx::PgConnection) -> StoreResult<ChainTip> {
        let row: Option<(i64, Vec<u8>, i64)> = sqlx::query_as(sql::SELECT_TIP)
            .fetch_optional(conn)
            .await
            .map_err(classify)?;
        sql::tip_from(row)
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn pool_stats(&self) -> PoolStats {
        let (size, idle) = (self.pool.size(), self.pool.num_idle() as u32);
        PoolStats {
            in_use: size.saturating_sub(idle),
            idle,
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn inbox_stats(&self) -> StoreResult<InboxStats> {
        let row: (i64, Option<i64>) = sqlx::query_as(sql::INBOX_STATS)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        sql::inbox_stats(row)
    }

    async fn leads_by_state(&self) -> StoreResult<Vec<(crate::domain::lifecycle::LeadState, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::LEADS_BY_STATE)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        sql::leads_by_state(rows)
    }

    async fn migrate(&self) -> StoreResult<()> {
        // Migrations may take long (backfills): on their own connection, without the statement
        // timeout.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(self.migrations.clone());
        let migrated = sqlx::migrate!("migrations/postgres").run(&pool).await;
        pool.close().await;
        migrated.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => classify(e),
            other => StoreError::Database(other.to_string()),
        })
    }

    async fn check_migrated(&self) -> StoreResult<()> {
        let applied: Vec<i64> = sqlx::query_scalar(sql::SELECT_APPLIED_MIGRATIONS)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| match classify(e) {
                StoreError::Database(m) => {
                    StoreError::Unavailable(format!("migrations not applied yet: {m}"))
                }
                other => other,
            })?;
        super::missing_migrations(&sqlx::migrate!("migrations/postgres"), &applied)
    }

    async fn grant_service_role(&self, role: &str) -> StoreResult<()> {
        if !super::valid_role_name(role) {
            return Err(StoreError::Database(format!(
                "{role:?} is not a role name leadgate accepts (a-z, 0-9, _)"
            )));
        }
        let mut connection = self.migrations.connect().await.map_err(classify)?;
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

    async fn privilege_warning(&self) -> StoreResult<Option<String>> {
        let (owner, can_change): (bool, bool) = sqlx::query_as(
            "SELECT pg_catalog.pg_get_userbyid(c.relowner) = current_user, \
                    has_table_privilege('audit_log', 'UPDATE') OR has_table_privilege('audit_log', 'DELETE') \
             FROM pg_catalog.pg_class c WHERE c.oid = 'audit_log'::regclass",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        Ok((owner || can_change).then(|| {
            "the service's database role owns the audit tables or may change them: it could alter \
             or remove audit entries. Run the service as a role granted by `leadgate migrate --grant-to`"
                .to_string()
        }))
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    fn writes_refused(&self) -> bool {
        self.health.refused()
    }

    async fn probe_write(&self) -> StoreResult<()> {
        let result = async {
            let mut tx = self.begin_write().await?;
            sqlx::query(sql::INSERT_PROBE)
                .bind(uuid::Uuid::new_v4())
                .bind(probe_filler())
                .execute(tx.connection())
                .await
                .map_err(classify)?;
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
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        doc.as_deref().map(sql::decode_lead).transpose()
    }

    async fn get_leads(&self, ids: &[LeadId]) -> StoreResult<Vec<Lead>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // One statement for every batch size (an IN list would prepare one per size).
        let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let docs: Vec<String> = self
            .batch_reader
            .with(async |connection| {
                sqlx::query_scalar("SELECT document FROM leads WHERE id = ANY($1)")
                    .bind(ids)
                    .fetch_all(connection)
                    .await
            })
            .await
            .map_err(classify)?;
        docs.iter().map(|d| sql::decode_lead(d)).collect()
    }

    async fn find_lead_by_email(&self, email: &Email) -> StoreResult<Option<Lead>> {
        let doc: Option<String> = sqlx::query_scalar(sql::SELECT_LEAD_BY_EMAIL)
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        doc.as_deref().map(sql::decode_lead).transpose()
    }

    async fn list_leads(&self, query: &ListQuery<LeadField, LeadOrder>) -> StoreResult<Vec<Lead>> {
        let (text, binds) = list::leads(query);
        let docs: Vec<(String,)> = list::bind_values::<Postgres>(&text, &binds)
            .try_map(|row| sqlx::FromRow::from_row(&row))
            .fetch_all(&self.pool)
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
            .fetch_all(&self.pool)
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
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.map(sql::IdempotencyRow::into_record).transpose()
    }

    async fn purge_idempotency(&self, before: Timestamp) -> StoreResult<u64> {
        let result = sqlx::query(sql::PURGE_IDEMPOTENCY)
            .bind(before.timestamp_micros())
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(classify);
        self.health.observe(&result);
        result
    }

    async fn sequence(&self, max: usize, admission: &Admission<'_>) -> StoreResult<Sequenced> {
        let result = async {
            let mut tx = self.begin_write().await?;
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(SEQUENCER_LOCK)
                .fetch_one(tx.connection())
                .await
                .map_err(classify)?;
            if !locked {
                tx.rollback().await;
                return Ok(Sequenced::default());
            }
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
            let already: std::collections::HashSet<i64> = sql::select_chained_inbox_ids::<Postgres>(&ids)
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
                    sql::insert_log::<Postgres>(chunk)
                        .build()
                        .execute(tx.connection())
                        .await
                        .map_err(classify)?;
                    sql::delete_inbox::<Postgres>(chunk)
                        .build()
                        .execute(tx.connection())
                        .await
                        .map_err(classify)?;
                }
                chained_count = chained.len();
                if let Some((_, last)) = chained.last() {
                    // Delivered on commit: wakes the watchers of every process (see `notify`).
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(CHAIN_HEAD_CHANNEL)
                        .bind(last.position.to_string())
                        .execute(tx.connection())
                        .await
                        .map_err(classify)?;
                }
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
            .fetch_one(&self.pool)
            .await
            .map_err(classify)
    }

    async fn list_quarantine(
        &self,
        query: &ListQuery<NoField, QuarantineOrder>,
    ) -> StoreResult<Vec<QuarantinedEntry>> {
        let (text, binds) = list::quarantine(query);
        let rows: Vec<sql::QuarantineRow> = list::bind_values::<Postgres>(&text, &binds)
            .try_map(|row| sqlx::FromRow::from_row(&row))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.into_iter().map(sql::QuarantineRow::into_record).collect()
    }

    async fn chain_head(&self) -> StoreResult<ChainHead> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        Ok(Self::tip_in(&mut conn).await?.head)
    }

    async fn listen_for_heads(&self) -> StoreResult<Option<HeadListener>> {
        HeadListener::connect(&self.migrations).await.map(Some)
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
        .map_err(classify)?;
        rows.into_iter().map(LogRow::into_chained).collect()
    }

    async fn list_audit(&self, query: &ListQuery<AuditField, AuditOrder>) -> StoreResult<Vec<ChainedEntry>> {
        let (text, binds) = list::audit(query);
        let rows: Vec<LogRow> = list::bind_values::<Postgres>(&text, &binds)
            .try_map(|row| sqlx::FromRow::from_row(&row))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.into_iter().map(LogRow::into_chained).collect()
    }

    async fn activate_policy(&self, policy: &PolicyRecord, entry: &SealedEntry) -> StoreResult<bool> {
        let result = async {
            let mut tx = self.begin_write().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(POLICY_LOCK)
                .execute(tx.connection())
                .await
                .map_err(classify)?;
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
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.map(sql::PolicyRow::into_record).transpose()
    }

    async fn active_policy_version(&self) -> StoreResult<Option<String>> {
        sqlx::query_scalar(sql::SELECT_ACTIVE_POLICY)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)
    }

    async fn list_policies(&self, query: &ListQuery<NoField, PolicyOrder>) -> StoreResult<Vec<PolicyRecord>> {
        let (text, binds) = list::policies(query);
        let rows: Vec<sql::PolicyRow> = list::bind_values::<Postgres>(&text, &binds)
            .try_map(|row| sqlx::FromRow::from_row(&row))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.into_iter().map(sql::PolicyRow::into_record).collect()
    }
}
