//! Persistence: one [`Store`] trait, a PostgreSQL and a SQLite implementation, and the audit
//! chain's sequencer. The store writes what the app decided, atomically; it never decides.

mod held;
mod notify;
mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::audit::{AuditEntry, ChainHead, ChainedEntry};
use crate::domain::lead::Lead;
use crate::domain::query::ListQuery;
use crate::domain::values::{Email, LeadId, Timestamp};

pub use notify::{CHAIN_HEAD_CHANNEL, HeadListener};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Which database a store uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        })
    }
}

/// What can go wrong below the domain. Each variant says what the caller sees.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is restarting: retryable (`UNAVAILABLE`).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database gave up on a statement that ran past the time allowed (`DEADLINE_EXCEEDED`);
    /// it wrote nothing.
    #[error("database statement timed out: {0}")]
    Timeout(String),
    /// Stored data that does not read back as written (`INTERNAL`, logged).
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    /// Any other database failure (`INTERNAL`, logged).
    #[error("database error: {0}")]
    Database(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Who sent a request id: keys are scoped per caller so callers cannot collide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub principal: String,
    pub request_id: String,
}

/// The first response given to an idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub key: IdempotencyKey,
    /// The RPC the key was used with.
    pub method: String,
    /// A hash of the request as received (without its request id).
    pub fingerprint: [u8; 32],
    /// The response, serialised by the app.
    pub response: String,
    pub created_at: Timestamp,
}

/// One atomic write: the lead, the audit entries recording the change, and the idempotency
/// record of the request that made it.
#[derive(Clone, Copy, Debug)]
pub struct LeadWrite<'a> {
    pub lead: &'a Lead,
    pub entries: &'a [AuditEntry],
    pub idempotency: Option<&'a IdempotencyRecord>,
}

/// How a write ended. Anything but `Written` means nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// Another lead has this email (a concurrent submission won).
    EmailTaken,
    /// The lead changed since it was read.
    RevisionConflict,
    /// The request id was used by a concurrent request that committed first.
    RequestIdTaken,
}

/// A policy version as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRecord {
    pub version: String,
    pub name: String,
    pub content: String,
    pub activated_at: Timestamp,
}

/// How the connection pool is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    pub in_use: u32,
    pub idle: u32,
    pub max: u32,
}

/// Audit entries committed but not chained yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboxStats {
    pub entries: i64,
    pub oldest: Option<Timestamp>,
}

/// Persistence for leads, the audit trail, idempotency keys and policies.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Connections held now (for metrics).
    fn pool_stats(&self) -> PoolStats;

    /// How far the sequencer is behind (for metrics).
    async fn inbox_stats(&self) -> StoreResult<InboxStats>;

    /// Leads per state (for metrics).
    async fn leads_by_state(&self) -> StoreResult<Vec<(crate::domain::lifecycle::LeadState, i64)>>;

    /// Applies pending migrations (safe with several replicas at once).
    async fn migrate(&self) -> StoreResult<()>;

    /// Answers when the database does.
    async fn ping(&self) -> StoreResult<()>;

    /// Inserts a new lead with its entries and idempotency record.
    async fn insert_lead(&self, write: LeadWrite<'_>) -> StoreResult<WriteOutcome>;

    /// Replaces a lead if its revision is still `expected_revision`.
    async fn update_lead(&self, write: LeadWrite<'_>, expected_revision: i64) -> StoreResult<WriteOutcome>;

    async fn get_lead(&self, id: LeadId) -> StoreResult<Option<Lead>>;

    /// The leads among `ids` that exist, in any order (one query for many readers).
    async fn get_leads(&self, ids: &[LeadId]) -> StoreResult<Vec<Lead>>;

    async fn find_lead_by_email(&self, email: &Email) -> StoreResult<Option<Lead>>;

    /// Up to `query.limit + 1` leads (the extra one tells that another page exists).
    async fn list_leads(&self, query: &ListQuery) -> StoreResult<Vec<Lead>>;

    /// Leads with an SLA breach or a nurture revisit due at `now`.
    async fn leads_due(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<LeadId>>;

    async fn find_idempotency(&self, key: &IdempotencyKey) -> StoreResult<Option<IdempotencyRecord>>;

    /// Forgets idempotency keys created before `before`; returns how many.
    async fn purge_idempotency(&self, before: Timestamp) -> StoreResult<u64>;

    /// Chains up to `max` committed inbox entries onto the log; returns how many. Several
    /// replicas may call it at once: one chains, the others return 0.
    async fn sequence(&self, max: usize) -> StoreResult<usize>;

    async fn chain_head(&self) -> StoreResult<ChainHead>;

    /// Listens for the heads other processes chain (`None`: this database has no such notices,
    /// and one process both chains and watches).
    async fn listen_for_heads(&self) -> StoreResult<Option<HeadListener>> {
        Ok(None)
    }

    /// Entries with positions in `(after, after + limit]`, in order.
    async fn chain_range(&self, after: i64, limit: usize) -> StoreResult<Vec<ChainedEntry>>;

    /// Up to `query.limit + 1` log entries matching the query.
    async fn list_audit(&self, query: &ListQuery) -> StoreResult<Vec<ChainedEntry>>;

    /// Activates a policy version unless it is already the active one, with its audit entry.
    /// Returns whether it was activated now.
    async fn activate_policy(&self, policy: &PolicyRecord, entry: &AuditEntry) -> StoreResult<bool>;

    async fn get_policy(&self, version: &str) -> StoreResult<Option<PolicyRecord>>;

    async fn active_policy_version(&self) -> StoreResult<Option<String>>;

    /// Up to `query.limit + 1` policies.
    async fn list_policies(&self, query: &ListQuery) -> StoreResult<Vec<PolicyRecord>>;
}

/// Connection settings shared by both backends.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `sqlite://path` or `postgres://...`.
    pub url: String,
    /// Most connections held to PostgreSQL (SQLite uses one writer and a few readers).
    pub max_connections: u32,
    /// How long a call waits for a connection before failing as unavailable.
    pub acquire_timeout: Duration,
    /// PostgreSQL cancels a statement running longer than this (nothing is written). The server
    /// sets it below its call cap, so a call cut at the cap never commits afterwards.
    pub statement_timeout: Option<Duration>,
}

/// Opens the store the URL names. Does not migrate.
pub async fn connect(options: &ConnectOptions) -> StoreResult<Arc<dyn Store>> {
    let url = options.url.as_str();
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(options).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PgStore::connect(options).await?))
    } else {
        Err(StoreError::Database(
            "the database URL must start with sqlite: or postgres:".into(),
        ))
    }
}
