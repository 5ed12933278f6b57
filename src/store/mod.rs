//! Persistence: one [`Store`] trait, a PostgreSQL and a SQLite implementation, and the audit
//! chain's sequencer. The store writes what the app decided, atomically; it never decides.
//!
//! - `shared`: the one body both backends run (`SqlStore`), generic over the database, and
//!   the `Dialect` trait through which each says what it does its own way.
//! - `sqlite`, `postgres`: those ways (connecting, errors, the lead write, locks, migrations).
//! - [`statements`]: the inserts of a lead's write, table by table, which the benchmark runs too;
//!   `sql`: the statements and row shapes both use; `tx`: the write transaction; `group_commit`:
//!   SQLite's lead writes sharing transactions; `held`: the batched reads' connection;
//!   `notify`: PostgreSQL's chain-head notices.

mod group_commit;
mod held;
mod list;
mod notify;
mod postgres;
mod shared;
mod sql;
mod sqlite;
pub mod statements;
mod tx;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio_stream::Stream;

use crate::domain::account::{AccountKey, AccountView, Contribution};
use crate::domain::audit::{Admission, ChainHead, ChainedEntry, Refusal, SealedEntry};
use crate::domain::funnel::EntryFacts;
use crate::domain::lead::Lead;
use crate::domain::query::{
    AuditField, AuditOrder, LeadField, LeadOrder, ListQuery, NoField, PolicyOrder, QuarantineOrder,
};
use crate::domain::values::{Email, LeadId, SourceChannel, Timestamp};

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
    /// The database has no room for the write: a full disk, or the size cap of an embedded
    /// database (`RESOURCE_EXHAUSTED`, retry once space is freed). Nothing was written.
    #[error("database storage is full: {0}")]
    StorageFull(String),
    /// The database accepts reads but refuses writes: a read-only PostgreSQL database or
    /// standby, a read-only SQLite file (`UNAVAILABLE`). Nothing was written.
    #[error("database is read-only: {0}")]
    ReadOnly(String),
    /// Any other database failure (`INTERNAL`, logged).
    #[error("database error: {0}")]
    Database(String),
}

impl StoreError {
    /// Whether the error says that writes cannot succeed until an operator acts (space freed,
    /// database made writable): readiness turns NOT_SERVING until a write goes through again.
    pub fn refuses_writes(&self) -> bool {
        matches!(self, StoreError::StorageFull(_) | StoreError::ReadOnly(_))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What [`Store::funnel_entries`] streams.
pub type FactStream<'a> = Pin<Box<dyn Stream<Item = StoreResult<EntryFacts>> + Send + 'a>>;

/// Whether the database refuses writes (no room, read-only). Set by the first write refused for
/// that reason; cleared only by a probe write that commits ([`Store::probe_write`]), so that
/// readiness stays off until writes go through again rather than flapping with each write that
/// happens to fit.
#[derive(Debug, Default)]
pub struct WriteHealth {
    refused: AtomicBool,
}

impl WriteHealth {
    /// Learns from the outcome of a write: a refusal for lack of room or permission sets it.
    pub fn observe<T>(&self, result: &StoreResult<T>) {
        if let Err(error) = result
            && error.refuses_writes()
        {
            self.refused.store(true, Ordering::Relaxed);
        }
    }

    /// Learns from the outcome of a probe write: a commit clears it (other failures, such as a
    /// lost connection, say nothing about room or permission).
    pub fn probed(&self, result: &StoreResult<()>) {
        match result {
            Ok(()) => self.refused.store(false, Ordering::Relaxed),
            Err(_) => self.observe(result),
        }
    }

    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }
}

/// How many bytes the write probe stores: more than a typical change (a lead, its entries and
/// its idempotency record take a few KiB), so a probe that fits means ordinary writes fit too.
pub const PROBE_BYTES: usize = 64 * 1024;

/// Random, incompressible bytes for the write probe.
fn probe_filler() -> Vec<u8> {
    (0..PROBE_BYTES / 16)
        .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
        .collect()
}

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
    pub entries: &'a [SealedEntry],
    pub idempotency: Option<&'a IdempotencyRecord>,
    /// For a new lead, the keyed hashes of its email: when one is on the suppression list, the
    /// insert writes nothing and answers [`WriteOutcome::EmailTaken`] (the caller then looks
    /// the list up itself). Empty: no such check. Checked in the write's own transaction, so
    /// an erasure committed first is seen.
    pub unless_suppressed: &'a [[u8; 32]],
}

/// One atomic merge (MergeLeads): both leads, each updated only if still at the revision it was
/// read at, the audit entries of both, and the idempotency record of the request that made it.
#[derive(Clone, Copy, Debug)]
pub struct MergeWrite<'a> {
    /// The lead that stays, after the merge.
    pub winner: &'a Lead,
    pub winner_revision: i64,
    /// The lead merged into the winner, after the merge.
    pub loser: &'a Lead,
    pub loser_revision: i64,
    pub entries: &'a [SealedEntry],
    pub idempotency: Option<&'a IdempotencyRecord>,
}

/// One write of a batch ([`Store::write_leads`]): inserted when `expected_revision` is `None`,
/// else updated if the lead is still at that revision.
#[derive(Clone, Copy, Debug)]
pub struct BatchWrite<'a> {
    pub write: LeadWrite<'a>,
    pub expected_revision: Option<i64>,
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

/// An account as stored: what the account projection keeps of it (`app::accounts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRecord {
    pub key: AccountKey,
    pub view: AccountView,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A contact as the account projection stored it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountContact {
    pub lead: LeadId,
    pub key: AccountKey,
    pub contribution: Contribution,
}

/// What one run of the account projection writes, all or nothing: the accounts it changed as
/// they now stand, its contacts set (or removed, `None`), and the chain position it read up to.
#[derive(Clone, Copy, Debug)]
pub struct AccountProjectionWrite<'a> {
    /// The position the run started from: written only if the projection is still there.
    pub from: i64,
    pub to: i64,
    pub accounts: &'a [AccountRecord],
    pub contacts: &'a [(LeadId, Option<(AccountKey, Contribution)>)],
}

/// What an erasure writes besides the pseudonymous lead and its entry.
#[derive(Clone, Copy, Debug)]
pub struct ErasureWrite<'a> {
    /// The keyed hash of the erased email, for the suppression list.
    pub suppressed_email: &'a [u8; 32],
    /// Forget the answers kept for request ids that name the lead (they hold its personal
    /// data): needless when the lead changed before the oldest answer still kept.
    pub forget_answers: bool,
}

/// A lead with something due, and since when (microseconds since the epoch, as stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DueLead {
    pub due: i64,
    pub id: LeadId,
}

impl DueLead {
    /// Before every due lead.
    pub const START: DueLead = DueLead {
        due: i64::MIN,
        id: LeadId::NIL,
    };
}

/// What one run of the sequencer did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sequenced {
    /// Entries chained.
    pub chained: usize,
    /// Rows of the inbox set aside (inbox id, why), never chained.
    pub quarantined: Vec<(i64, Refusal)>,
}

/// A row of the inbox the sequencer set aside: what it claimed to be, and why it was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantinedEntry {
    pub id: i64,
    pub inbox_id: i64,
    pub quarantined_at: Timestamp,
    /// [`Refusal::code`].
    pub reason: String,
    pub detail: String,
    pub lead: Option<LeadId>,
    /// As written, which may be a kind this version does not know.
    pub kind: String,
    /// Microseconds since the epoch, as written.
    pub record_time: i64,
    pub actor: String,
    pub request_id: Option<String>,
    pub seal_key_id: Option<String>,
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

    /// Fails (as unavailable) until every migration this version knows was applied, by
    /// whoever runs them (`leadgate migrate`, e.g. as a Kubernetes Job).
    async fn check_migrated(&self) -> StoreResult<()>;

    /// Gives `role` exactly what the service needs: read and write leads, keys and policies,
    /// append to the audit tables — never change or remove audit entries, nor alter any table.
    /// PostgreSQL only.
    async fn grant_service_role(&self, role: &str) -> StoreResult<()>;

    /// Why the privileges this connection holds weaken the trail (e.g. it owns the audit tables,
    /// so it could drop their protection), if they do.
    async fn privilege_warning(&self) -> StoreResult<Option<String>>;

    /// Answers when the database does.
    async fn ping(&self) -> StoreResult<()>;

    /// Whether the last write was refused for lack of room or permission (see [`WriteHealth`]).
    fn writes_refused(&self) -> bool;

    /// Commits a write of [`PROBE_BYTES`] and removes it: succeeds when writes can again.
    async fn probe_write(&self) -> StoreResult<()>;

    /// Inserts a new lead with its entries and idempotency record.
    async fn insert_lead(&self, write: LeadWrite<'_>) -> StoreResult<WriteOutcome>;

    /// Replaces a lead if its revision is still `expected_revision`.
    async fn update_lead(&self, write: LeadWrite<'_>, expected_revision: i64) -> StoreResult<WriteOutcome>;

    /// Erases a lead's personal data, if its revision is still `expected_revision`: the
    /// pseudonymous lead (with its erase time), its entries and idempotency record, the answers
    /// kept for its other request ids removed, its email's hash on the suppression list. All or
    /// nothing.
    async fn erase_lead(
        &self,
        write: LeadWrite<'_>,
        expected_revision: i64,
        erasure: ErasureWrite<'_>,
    ) -> StoreResult<WriteOutcome>;
    /// Whether any of `hashes` (an email's keyed hashes, one per audit key) is suppressed.
    async fn email_suppressed(&self, hashes: &[[u8; 32]]) -> StoreResult<bool> {
        Ok(!self.suppressed_among(hashes).await?.is_empty())
    }
    /// Those of `hashes` on the suppression list.
    async fn suppressed_among(&self, hashes: &[[u8; 32]])
    -> StoreResult<std::collections::HashSet<[u8; 32]>>;
    /// Up to `limit` leads not erased, not merged into another, and unchanged since before
    /// `before`, least recently changed first (the retention sweep).
    async fn leads_unchanged_since(&self, before: Timestamp, limit: usize) -> StoreResult<Vec<LeadId>>;
    /// Writes a merge, all or nothing: both leads (a revision conflict on either writes
    /// nothing), their entries, the idempotency record; and the loser, with every lead merged
    /// into it before, becomes an alias of the winner ([`Store::merge_target`]). A request id
    /// already taken is [`WriteOutcome::RequestIdTaken`] whatever else conflicts.
    async fn merge_leads(&self, write: MergeWrite<'_>) -> StoreResult<WriteOutcome>;

    /// The lead a merged lead is now an alias of: where its merges end, one read however many
    /// merges led there. `None` for a lead not merged, or unknown.
    async fn merge_target(&self, id: LeadId) -> StoreResult<Option<LeadId>>;

    /// The leads merged into `id` (its aliases), in id order.
    async fn aliases(&self, id: LeadId) -> StoreResult<Vec<LeadId>>;
    /// Writes a batch in one transaction, in order (a write sees the earlier ones of the batch),
    /// each write all or nothing in a savepoint of its own: a write that conflicts or fails is
    /// undone alone and its neighbours go on. An outcome per write; a write answered `Written`
    /// committed. If the transaction cannot commit, every write is answered with that error.
    async fn write_leads(&self, writes: &[BatchWrite<'_>]) -> Vec<StoreResult<WriteOutcome>>;

    async fn get_lead(&self, id: LeadId) -> StoreResult<Option<Lead>>;

    /// The chain position the account projection has read up to.
    async fn account_position(&self) -> StoreResult<i64>;

    /// The contacts among `leads` the account projection stored.
    async fn account_contacts(&self, leads: &[LeadId]) -> StoreResult<Vec<AccountContact>>;

    /// The accounts among `keys` that exist.
    async fn accounts(&self, keys: &[AccountKey]) -> StoreResult<Vec<AccountRecord>>;

    /// Writes a run of the account projection, all or nothing: `Ok(false)` (nothing written)
    /// when its position is no longer `write.from` (another replica's run went first).
    async fn write_account_projection(&self, write: AccountProjectionWrite<'_>) -> StoreResult<bool>;

    /// The leads among `ids` that exist, in any order (one query for many readers).
    async fn get_leads(&self, ids: &[LeadId]) -> StoreResult<Vec<Lead>>;

    async fn find_lead_by_email(&self, email: &Email) -> StoreResult<Option<Lead>>;

    /// The leads among `emails` that exist, in any order (one query).
    async fn find_leads_by_emails(&self, emails: &[Email]) -> StoreResult<Vec<Lead>>;

    /// Up to `query.limit + 1` leads (the extra one tells that another page exists).
    async fn list_leads(&self, query: &ListQuery<LeadField, LeadOrder>) -> StoreResult<Vec<Lead>>;

    /// Up to `limit` leads with an SLA breach or a nurture revisit due at `now`, in order of due
    /// time then id, after `after` (a pass of the sweeper walks them page by page, so leads it
    /// cannot sweep do not keep it from the others).
    async fn leads_due(
        &self,
        now: Timestamp,
        after: Option<&DueLead>,
        limit: usize,
    ) -> StoreResult<Vec<DueLead>>;

    async fn find_idempotency(&self, key: &IdempotencyKey) -> StoreResult<Option<IdempotencyRecord>>;

    /// The records of `principal` among `request_ids` that exist, in any order (one query).
    async fn find_idempotency_many(
        &self,
        principal: &str,
        request_ids: &[String],
    ) -> StoreResult<Vec<IdempotencyRecord>>;

    /// Forgets idempotency keys created before `before`; returns how many.
    async fn purge_idempotency(&self, before: Timestamp) -> StoreResult<u64>;

    /// Chains up to `max` committed inbox entries onto the log, sealing each link, and sets aside
    /// (in quarantine) the rows `admission` refuses. Several replicas may call it at once: one
    /// chains, the others find nothing to do.
    async fn sequence(&self, max: usize, admission: &Admission<'_>) -> StoreResult<Sequenced>;

    /// The first position that must carry a seal (entries before it were chained unsealed).
    async fn sealed_from(&self) -> StoreResult<i64>;

    /// Up to `query.limit + 1` quarantined rows, newest first.
    async fn list_quarantine(
        &self,
        query: &ListQuery<NoField, QuarantineOrder>,
    ) -> StoreResult<Vec<QuarantinedEntry>>;

    async fn chain_head(&self) -> StoreResult<ChainHead>;

    /// Listens for the heads other processes chain (`None`: this database has no such notices,
    /// and one process both chains and watches).
    async fn listen_for_heads(&self) -> StoreResult<Option<HeadListener>> {
        Ok(None)
    }

    /// Entries with positions in `(after, after + limit]`, in order.
    async fn chain_range(&self, after: i64, limit: usize) -> StoreResult<Vec<ChainedEntry>>;

    /// Up to `query.limit + 1` log entries matching the query.
    async fn list_audit(&self, query: &ListQuery<AuditField, AuditOrder>) -> StoreResult<Vec<ChainedEntry>>;

    /// Streams, in position order and as one statement, the facts of every log entry of a lead
    /// recorded in `[start, end)` that can change a funnel ([`EntryFacts::counts`]), with a
    /// source channel among `channels` unless empty: the columns a funnel report reads, bodies
    /// left unread.
    fn funnel_entries<'a>(
        &'a self,
        start: Timestamp,
        end: Timestamp,
        channels: &[SourceChannel],
    ) -> FactStream<'a>;

    /// Activates a policy version unless it is already the active one, with its audit entry.
    /// Returns whether it was activated now.
    async fn activate_policy(&self, policy: &PolicyRecord, entry: &SealedEntry) -> StoreResult<bool>;

    async fn get_policy(&self, version: &str) -> StoreResult<Option<PolicyRecord>>;

    async fn active_policy_version(&self) -> StoreResult<Option<String>>;

    /// Up to `query.limit + 1` policies.
    async fn list_policies(&self, query: &ListQuery<NoField, PolicyOrder>) -> StoreResult<Vec<PolicyRecord>>;
}

/// Connection settings shared by both backends.
#[derive(Clone, Default)]
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
    /// SQLite only: the most bytes the database file may hold (rounded down to whole pages).
    /// Writes past it answer RESOURCE_EXHAUSTED, as on a full disk.
    pub sqlite_max_size: Option<u64>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("url", &redacted_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("sqlite_max_size", &self.sqlite_max_size)
            .finish()
    }
}

/// A database URL fit for logs and `Debug`: a password, in the user part or as a `password`
/// parameter, is replaced by `***`.
pub fn redacted_url(url: &str) -> String {
    let (head, query) = url.split_once('?').map_or((url, None), |(h, q)| (h, Some(q)));
    let mut redacted = match head.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
            let authority = match authority.rsplit_once('@') {
                Some((user_info, host)) => match user_info.split_once(':') {
                    Some((user, _password)) => format!("{user}:***@{host}"),
                    None => authority.to_owned(),
                },
                None => authority.to_owned(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => head.to_owned(),
    };
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => parameter.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&parameters.join("&"));
    }
    redacted
}

/// Whether `name` may be used as a database role name: lower-case letters, digits and `_`,
/// starting with a letter or `_`, at most 63 characters (PostgreSQL's limit).
pub fn valid_role_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Which migrations of `migrator` are missing from those applied.
fn missing_migrations(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> StoreResult<()> {
    let missing: Vec<i64> = migrator
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Unavailable(format!(
            "{} migrations not applied yet ({}): run `leadgate migrate`",
            missing.len(),
            missing.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
        )))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redacted_url_keeps_everything_but_the_password() {
        for (url, shown) in [
            (
                "postgres://app:s3cret@db:5432/leads",
                "postgres://app:***@db:5432/leads",
            ),
            ("postgres://app@db/leads", "postgres://app@db/leads"),
            (
                "postgres://db/leads?user=app&password=s3cret&sslmode=require",
                "postgres://db/leads?user=app&password=***&sslmode=require",
            ),
            ("postgres://app:p@ss:word@db/leads", "postgres://app:***@db/leads"),
            ("sqlite://leadgate.db", "sqlite://leadgate.db"),
        ] {
            assert_eq!(redacted_url(url), shown);
        }
    }

    #[test]
    fn connect_options_never_show_a_password_in_debug() {
        let options = ConnectOptions {
            url: "postgres://app:s3cret@db/leads".into(),
            ..ConnectOptions::default()
        };
        assert!(!format!("{options:?}").contains("s3cret"));
    }
}
