//! What both backends share: statements (written with `$n` placeholders, which SQLite accepts
//! too; the inserts of a lead's write from [`super::statements`]), row shapes, and the
//! translation of list queries into SQL.

use std::sync::LazyLock;

use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Row, Type};
use uuid::Uuid;

use super::{
    AccountContact, AccountRecord, IdempotencyKey, IdempotencyRecord, PolicyRecord, StoreError, StoreResult,
    statements,
};
use crate::domain::account::{AccountKey, AccountState, AccountView, CommitteeRole, Contribution, Rollup};
use crate::domain::audit::{
    Admission, AuditEntry, AuditKind, ChainHead, ChainTip, ChainedEntry, Refusal, Seal, SealedEntry,
};
use crate::domain::facts::Points;
use crate::domain::funnel::{EntryFacts, SlaFacts};
use crate::domain::lead::Lead;
use crate::domain::lifecycle::LeadState;
use crate::domain::query::fold;
use crate::domain::values::{DisqualificationReason, LeadId, SourceChannel, Timestamp};

pub static INSERT_LEAD: LazyLock<String> = LazyLock::new(|| statements::LEADS.sql());

pub const UPDATE_LEAD: &str = "UPDATE leads SET state = $3, source_channel = $4, fit_grade = $5, \
     combined_points = $6, update_time = $8, revision = $9, sla_due_time = $10, revisit_time = $11, \
     document = $12, company_domain = $13, company_name_folded = $14, source_campaign = $15, \
     external_reference = $16 WHERE id = $1 AND email = $2 AND create_time = $7 AND revision = $17";

/// [`UPDATE_LEAD`] for a lead whose email changed (UpdateLead): SQLite's only when that one finds
/// no row, so that other writes do not rewrite the email's unique index entry (it costs them
/// more than twice the time).
pub const UPDATE_LEAD_EMAIL: &str = "UPDATE leads SET email = $2, state = $3, source_channel = $4, \
     fit_grade = $5, combined_points = $6, update_time = $8, revision = $9, sla_due_time = $10, \
     revisit_time = $11, document = $12, company_domain = $13, company_name_folded = $14, \
     source_campaign = $15, external_reference = $16 WHERE id = $1 AND create_time = $7 \
     AND revision = $17";

/// [`UPDATE_LEAD_EMAIL`] for an erasure: the erase time is the update time.
pub const ERASE_LEAD: &str = "UPDATE leads SET erase_time = $8, email = $2, state = $3, \
     source_channel = $4, fit_grade = $5, combined_points = $6, update_time = $8, revision = $9, \
     sla_due_time = $10, revisit_time = $11, document = $12, company_domain = $13, \
     company_name_folded = $14, source_campaign = $15, external_reference = $16 WHERE id = $1 \
     AND create_time = $7 AND revision = $17";

/// The answers kept for request ids whose response names a lead (`$1`: `%<lead id>%`).
pub const FORGET_ANSWERS: &str = "DELETE FROM idempotency_keys WHERE response LIKE $1";

pub const INSERT_SUPPRESSION: &str = "INSERT INTO suppressed_emails (email_hash, suppress_time) \
     VALUES ($1, $2) ON CONFLICT (email_hash) DO NOTHING";

pub const SELECT_SUPPRESSED: &str = "SELECT email_hash FROM suppressed_emails WHERE email_hash";

pub const SELECT_UNCHANGED: &str = "SELECT id FROM leads WHERE erase_time IS NULL \
     AND update_time < $1 AND merged_into IS NULL ORDER BY update_time, id LIMIT $2";

/// The leads merged into `$1` (its aliases).
pub const SELECT_ALIASES: &str = "SELECT id FROM leads WHERE merged_into = $1 ORDER BY id";

pub static INSERT_INBOX: LazyLock<String> = LazyLock::new(|| statements::AUDIT_INBOX.sql());

pub static INSERT_IDEMPOTENCY: LazyLock<String> = LazyLock::new(|| statements::IDEMPOTENCY_KEYS.sql());

pub const SELECT_IDEMPOTENCY: &str = "SELECT principal, request_id, method, fingerprint, response, \
     create_time FROM idempotency_keys WHERE principal = $1 AND request_id = $2";

/// Several request ids of one principal (`$1`): `SELECT_IDEMPOTENCY_MANY IN ($2, ...)`, see
/// [`in_list_sql_after`].
pub const SELECT_IDEMPOTENCY_MANY: &str = "SELECT principal, request_id, method, fingerprint, \
     response, create_time FROM idempotency_keys WHERE principal = $1 AND request_id";

pub const PURGE_IDEMPOTENCY: &str = "DELETE FROM idempotency_keys WHERE create_time < $1";

pub const SELECT_LEAD: &str = "SELECT document FROM leads WHERE id = $1";
/// Several leads: `SELECT_LEAD_DOCUMENTS IN (...)`, see [`in_list_sql`].
pub const SELECT_LEAD_DOCUMENTS: &str = "SELECT document FROM leads WHERE id";
pub const SELECT_LEAD_BY_EMAIL: &str = "SELECT document FROM leads WHERE email = $1";
/// Several leads by email: `SELECT_LEADS_BY_EMAIL IN (...)`, see [`in_list_sql`].
pub const SELECT_LEADS_BY_EMAIL: &str = "SELECT document FROM leads WHERE email";

/// Where a merged lead's merges end (NULL: not merged).
pub const SELECT_MERGE_TARGET: &str = "SELECT merged_into FROM leads WHERE id = $1";
/// Makes the loser (`$2`) and every lead merged into it before aliases of the winner (`$1`).
pub const REPOINT_ALIASES: &str = "UPDATE leads SET merged_into = $1 WHERE id = $2 OR merged_into = $2";

/// Due leads after a (due, id) cursor, in that order; each half reads its partial index in order.
pub const SELECT_DUE: &str = "SELECT due, id FROM ( \
     SELECT sla_due_time AS due, id FROM leads WHERE sla_due_time <= $1 \
     UNION ALL SELECT revisit_time AS due, id FROM leads WHERE revisit_time <= $1) AS due_leads \
     WHERE (due, id) > ($2, $3) ORDER BY due, id LIMIT $4";

pub const SELECT_INBOX: &str = "SELECT id, lead_id, kind, record_time, actor, request_id, \
     state_before, state_after, source_channel, policy_version, body, seal_key_id, seal \
     FROM audit_inbox ORDER BY id LIMIT $1";

pub const LOG_COLUMNS: &str = "position, lead_id, kind, record_time, actor, request_id, \
     state_before, state_after, source_channel, policy_version, body, previous_hash, hash, \
     record_time_max, seal_key_id, seal";

/// The first position that must carry a seal.
pub const SELECT_SEALED_FROM: &str = "SELECT sealed_from FROM audit_settings";

/// Sets a row of the inbox aside, with why.
pub const INSERT_QUARANTINE: &str = "INSERT INTO audit_quarantine (inbox_id, quarantine_time, reason, \
     detail, lead_id, kind, record_time, actor, request_id, state_before, state_after, source_channel, \
     policy_version, body, seal_key_id, seal) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
pub const DELETE_INBOX_ROW: &str = "DELETE FROM audit_inbox WHERE id = $1";

pub const QUARANTINE_COLUMNS: &str = "id, inbox_id, quarantine_time, reason, detail, lead_id, kind, \
     record_time, actor, request_id, seal_key_id";

pub const SELECT_TIP: &str =
    "SELECT position, hash, record_time_max FROM audit_log ORDER BY position DESC LIMIT 1";

pub const SELECT_ACTIVE_POLICY: &str = "SELECT version FROM policy_activations ORDER BY id DESC LIMIT 1";
pub const INSERT_POLICY: &str = "INSERT INTO policies (version, name, content, activate_time) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (version) DO NOTHING";
pub const INSERT_ACTIVATION: &str = "INSERT INTO policy_activations (version, activate_time) VALUES ($1, $2)";
pub const SELECT_POLICY: &str =
    "SELECT version, name, content, activate_time FROM policies WHERE version = $1";

pub const SELECT_APPLIED_MIGRATIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success";

/// The write probe's row, and its removal (with any a crash left behind).
pub const INSERT_PROBE: &str = "INSERT INTO storage_probe (id, filler) VALUES ($1, $2)";
pub const DELETE_PROBE: &str = "DELETE FROM storage_probe";

pub const SELECT_ACCOUNT_POSITION: &str = "SELECT position FROM account_projection WHERE id = 1";
pub const ADVANCE_ACCOUNT_POSITION: &str =
    "UPDATE account_projection SET position = $2 WHERE id = 1 AND position = $1";
/// Accounts by key: `SELECT_ACCOUNTS IN (...)`, see [`in_list_sql`].
pub const SELECT_ACCOUNTS: &str = "SELECT account_key, state, contacts, engagement, qualified_contacts, \
     customer_contacts, create_time, update_time FROM accounts WHERE account_key";
/// What an account upsert ([`statements::ACCOUNTS`]'s rows) changes of an account that exists:
/// everything but its creation time.
pub const ACCOUNT_CONFLICT: &str = " ON CONFLICT (account_key) DO UPDATE SET state = excluded.state, \
     contacts = excluded.contacts, engagement = excluded.engagement, \
     qualified_contacts = excluded.qualified_contacts, customer_contacts = excluded.customer_contacts, \
     update_time = excluded.update_time";
/// What a contact upsert ([`statements::ACCOUNT_CONTACTS`]'s rows) changes of a stored contact.
pub const ACCOUNT_CONTACT_CONFLICT: &str = " ON CONFLICT (lead_id) DO UPDATE SET \
     account_key = excluded.account_key, engagement = excluded.engagement, \
     committee_role = excluded.committee_role, involved_time = excluded.involved_time, \
     left_account = excluded.left_account, qualified = excluded.qualified, customer = excluded.customer";
/// Contacts by lead: `SELECT_ACCOUNT_CONTACTS IN (...)`, see [`in_list_sql`].
pub const SELECT_ACCOUNT_CONTACTS: &str = "SELECT lead_id, account_key, engagement, committee_role, \
     involved_time, left_account, qualified, customer FROM account_contacts WHERE lead_id";
pub const DELETE_ACCOUNT_CONTACT: &str = "DELETE FROM account_contacts WHERE lead_id = $1";

/// An account's row, as [`SELECT_ACCOUNTS`] reads it.
pub type AccountRow = (String, String, i64, i64, i64, i64, i64, i64);

pub fn account_record(row: AccountRow) -> StoreResult<AccountRecord> {
    let (key, state, contacts, engagement, qualified_contacts, customer_contacts, created, updated) = row;
    Ok(AccountRecord {
        key: account_key(&key)?,
        view: AccountView {
            state: AccountState::from_name(&state)
                .ok_or_else(|| StoreError::Database(format!("unknown account state {state:?}")))?,
            rollup: Rollup {
                contacts,
                engagement: Points(engagement),
                qualified_contacts,
                customer_contacts,
            },
        },
        created_at: micros(created)?,
        updated_at: micros(updated)?,
    })
}

/// A contact's row, as [`SELECT_ACCOUNT_CONTACTS`] reads it.
pub type AccountContactRow = (Uuid, String, i64, Option<String>, Option<i64>, i64, i64, i64);

pub fn account_contact(row: AccountContactRow) -> StoreResult<AccountContact> {
    let (lead, key, engagement, role, involved, left, qualified, customer) = row;
    let role = role
        .map(|r| {
            CommitteeRole::from_name(&r)
                .ok_or_else(|| StoreError::Database(format!("unknown committee role {r:?}")))
        })
        .transpose()?;
    Ok(AccountContact {
        lead: LeadId::from_uuid(lead),
        key: account_key(&key)?,
        contribution: Contribution {
            engagement: Points(engagement),
            role,
            involved_at: involved.map(micros).transpose()?,
            left: left != 0,
            qualified: qualified != 0,
            customer: customer != 0,
        },
    })
}

fn account_key(stored: &str) -> StoreResult<AccountKey> {
    AccountKey::from_stored(stored)
        .ok_or_else(|| StoreError::Database(format!("unknown account key {stored:?}")))
}

/// The columns of `leads`, projected from a lead.
pub struct LeadColumns {
    pub id: Uuid,
    pub email: String,
    pub state: &'static str,
    pub source_channel: &'static str,
    pub fit_grade: &'static str,
    pub combined_points: i64,
    pub create_time: i64,
    pub update_time: i64,
    pub revision: i64,
    pub sla_due_time: Option<i64>,
    pub revisit_time: Option<i64>,
    pub document: String,
    /// What ListLeads finds leads by (`store::list`).
    pub company_domain: String,
    pub company_name_folded: String,
    pub source_campaign: String,
    pub external_reference: String,
}

impl LeadColumns {
    pub fn of(lead: &Lead) -> Self {
        // The sweeper's indexes: when the domain says the lead falls due.
        let sla_due_time = lead.sla_due_at().map(|t| t.timestamp_micros());
        let revisit_time = lead.revisit_due_at().map(|t| t.timestamp_micros());
        Self {
            id: lead.id.as_uuid(),
            email: lead.profile.contact.email.as_str().to_owned(),
            state: lead.state.as_str(),
            source_channel: lead.profile.source.channel.as_str(),
            fit_grade: lead.scores.grade.as_str(),
            combined_points: lead.scores.combined.0,
            create_time: lead.created_at.timestamp_micros(),
            update_time: lead.updated_at.timestamp_micros(),
            revision: lead.revision,
            sla_due_time,
            revisit_time,
            document: serde_json::to_string(lead).expect("a lead serialises"),
            company_domain: lead.profile.company_domain().to_owned(),
            company_name_folded: fold(&lead.profile.company.name),
            source_campaign: lead.profile.source.campaign.clone(),
            external_reference: lead.profile.external_reference.clone(),
        }
    }

    /// Binds `$1..$16` in the order of [`INSERT_LEAD`], [`UPDATE_LEAD`] and [`UPDATE_LEAD_EMAIL`].
    pub fn bind<'q, DB>(&'q self, sql: &'q str) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
    where
        DB: Database,
        Uuid: Encode<'q, DB> + Type<DB>,
        &'q str: Encode<'q, DB> + Type<DB>,
        i64: Encode<'q, DB> + Type<DB>,
        Option<i64>: Encode<'q, DB> + Type<DB>,
    {
        self.bind_to(sqlx::query(sql))
    }

    /// Binds the columns next, in the order of [`statements::LEADS`] (a row of a multi-row
    /// insert, [`statements::Insert::rows_sql`]).
    pub fn bind_to<'q, DB>(
        &'q self,
        query: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    ) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
    where
        DB: Database,
        Uuid: Encode<'q, DB> + Type<DB>,
        &'q str: Encode<'q, DB> + Type<DB>,
        i64: Encode<'q, DB> + Type<DB>,
        Option<i64>: Encode<'q, DB> + Type<DB>,
    {
        query
            .bind(self.id)
            .bind(self.email.as_str())
            .bind(self.state)
            .bind(self.source_channel)
            .bind(self.fit_grade)
            .bind(self.combined_points)
            .bind(self.create_time)
            .bind(self.update_time)
            .bind(self.revision)
            .bind(self.sla_due_time)
            .bind(self.revisit_time)
            .bind(self.document.as_str())
            .bind(self.company_domain.as_str())
            .bind(self.company_name_folded.as_str())
            .bind(self.source_campaign.as_str())
            .bind(self.external_reference.as_str())
    }
}

/// Binds a sealed entry to [`INSERT_INBOX`].
pub fn bind_entry<'q, DB>(sealed: &'q SealedEntry) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    Option<Uuid>: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    bind_entry_to(sqlx::query(&INSERT_INBOX), sealed)
}

/// Binds a sealed entry's columns next, in the order of [`statements::AUDIT_INBOX`].
pub fn bind_entry_to<'q, DB>(
    query: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    sealed: &'q SealedEntry,
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    Option<Uuid>: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    bind_entry_columns(query, &sealed.entry)
        .bind(sealed.seal.key_id.as_str())
        .bind(sealed.seal.tag.as_slice())
}

/// Binds an entry's columns, `lead_id` to `body`, in the order of [`INSERT_INBOX`] and
/// [`LOG_COLUMNS`].
fn bind_entry_columns<'q, DB>(
    query: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    entry: &'q AuditEntry,
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    Option<Uuid>: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(entry.lead.map(|l| l.as_uuid()))
        .bind(entry.kind.as_str())
        .bind(entry.recorded_at.timestamp_micros())
        .bind(entry.actor.as_str())
        .bind(entry.request_id.as_deref())
        .bind(entry.state_before.map(LeadState::as_str))
        .bind(entry.state_after.map(LeadState::as_str))
        .bind(entry.source_channel.map(SourceChannel::as_str))
        .bind(entry.policy_version.as_str())
        .bind(entry.body.as_str())
}

/// Binds a record to [`INSERT_IDEMPOTENCY`].
pub fn bind_idempotency<'q, DB>(
    record: &'q IdempotencyRecord,
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    bind_idempotency_to(sqlx::query(&INSERT_IDEMPOTENCY), record)
}

/// Binds a record's columns next, in the order of [`statements::IDEMPOTENCY_KEYS`].
pub fn bind_idempotency_to<'q, DB>(
    query: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    record: &'q IdempotencyRecord,
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(record.key.principal.as_str())
        .bind(record.key.request_id.as_str())
        .bind(record.method.as_str())
        .bind(record.fingerprint.as_slice())
        .bind(record.response.as_str())
        .bind(record.created_at.timestamp_micros())
}

pub fn decode_lead(document: &str) -> StoreResult<Lead> {
    serde_json::from_str(document).map_err(|e| StoreError::Corrupt(format!("lead document: {e}")))
}

pub fn micros(t: i64) -> StoreResult<Timestamp> {
    chrono::DateTime::from_timestamp_micros(t).ok_or_else(|| StoreError::Corrupt(format!("time {t}")))
}

fn state(name: Option<String>) -> StoreResult<Option<LeadState>> {
    name.map(|n| LeadState::from_name(&n).ok_or_else(|| StoreError::Corrupt(format!("state {n:?}"))))
        .transpose()
}

/// The columns of an audit entry as written: in the inbox, and again in the log.
#[derive(Clone, sqlx::FromRow)]
pub struct EntryColumns {
    pub lead_id: Option<Uuid>,
    pub kind: String,
    pub record_time: i64,
    pub actor: String,
    pub request_id: Option<String>,
    pub state_before: Option<String>,
    pub state_after: Option<String>,
    pub source_channel: Option<String>,
    pub policy_version: String,
    pub body: String,
    pub seal_key_id: Option<String>,
    pub seal: Option<Vec<u8>>,
}

/// A seal as stored: both columns, or neither.
fn stored_seal(key_id: Option<String>, tag: Option<Vec<u8>>) -> StoreResult<Option<Seal>> {
    match (key_id, tag) {
        (Some(key_id), Some(tag)) => Ok(Some(Seal {
            key_id,
            tag: hash32(tag, "seal")?,
        })),
        _ => Ok(None),
    }
}

impl EntryColumns {
    /// The entry, without its seal (see [`EntryColumns::take_seal`]).
    pub fn into_entry(self) -> StoreResult<AuditEntry> {
        let kind = AuditKind::from_name(&self.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("audit kind {:?}", self.kind)))?;
        let source_channel = self
            .source_channel
            .map(|c| {
                SourceChannel::from_name(&c).ok_or_else(|| StoreError::Corrupt(format!("channel {c:?}")))
            })
            .transpose()?;
        Ok(AuditEntry {
            lead: self.lead_id.map(LeadId::from_uuid),
            kind,
            recorded_at: micros(self.record_time)?,
            actor: self.actor,
            request_id: self.request_id,
            state_before: state(self.state_before)?,
            state_after: state(self.state_after)?,
            source_channel,
            policy_version: self.policy_version,
            body: self.body,
        })
    }

    /// The seal columns, taken out to be read apart from the entry.
    fn take_seal(&mut self) -> (Option<String>, Option<Vec<u8>>) {
        (self.seal_key_id.take(), self.seal.take())
    }
}

/// An inbox row: an entry that is committed but not chained yet.
#[derive(Clone, sqlx::FromRow)]
pub struct InboxRow {
    pub id: i64,
    #[sqlx(flatten)]
    pub columns: EntryColumns,
}

impl InboxRow {
    /// Whether the sequencer may chain this row, and the entry if so.
    pub fn admit(mut self, admission: &Admission<'_>) -> Result<(i64, AuditEntry), Refusal> {
        let (key_id, tag) = self.columns.take_seal();
        let seal = stored_seal(key_id, tag).map_err(|e| Refusal::Undecodable(e.to_string()))?;
        let entry = self
            .columns
            .into_entry()
            .map_err(|e| Refusal::Undecodable(e.to_string()))?;
        admission.admit(&entry, seal.as_ref())?;
        Ok((self.id, entry))
    }
}

/// A log row: a chained entry.
#[derive(sqlx::FromRow)]
pub struct LogRow {
    pub position: i64,
    #[sqlx(flatten)]
    pub columns: EntryColumns,
    pub previous_hash: Vec<u8>,
    pub hash: Vec<u8>,
    pub record_time_max: i64,
}

fn hash32(bytes: Vec<u8>, what: &str) -> StoreResult<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} is not 32 bytes")))
}

impl LogRow {
    pub fn into_chained(mut self) -> StoreResult<ChainedEntry> {
        let (key_id, tag) = self.columns.take_seal();
        Ok(ChainedEntry {
            position: self.position,
            entry: self.columns.into_entry()?,
            previous_hash: hash32(self.previous_hash, "previous_hash")?,
            hash: hash32(self.hash, "hash")?,
            time_max: micros(self.record_time_max)?,
            seal: stored_seal(key_id, tag)?,
        })
    }
}

/// Chained entries per multi-row insert into the log (SQLite's sequencer). Kept small: SQLite
/// finds a bound parameter's name by walking the statement's list of them, so binding costs
/// grow with the square of the parameters (17 per row); 500 rows a statement took a tenth of
/// the CPU of a SQLite import.
pub const LOG_ROWS_PER_INSERT: usize = 32;

/// The columns [`bind_log_rows`] binds for each entry: its inbox id, [`LOG_COLUMNS`], then
/// [`FUNNEL_FACT_COLUMNS`].
const LOG_INSERT_COLUMNS: usize = 22;

/// What funnel reports read of an entry's body, kept beside it in the log when it is chained:
/// the SLA clock's number, start and first touch (microseconds), whether it was breached (0/1),
/// and the disqualification reason. `NULL` SLA columns: the body carries no clock. Like
/// `record_time_max`, they are derived from the entry and not hashed: the body stays the record.
pub const FUNNEL_FACT_COLUMNS: &str =
    "sla_number, sla_start_time, sla_first_touch_time, sla_breached, disqualification";

/// How far behind the chain's running maximum of `record_time` an entry is "late": the
/// predicate of index `audit_log_late` (migration `20260302000000_audit_late_entries`).
pub const LATE_ENTRY_MICROS: i64 = 3_600_000_000;

/// The two SELECTs of a funnel report's entries: those of leads recorded in `[$1, $2)` that can
/// change a funnel ([`EntryFacts::counts`]: a submission, a state entered, or an SLA clock), with
/// [`FUNNEL_FACT_COLUMNS`] in place of the body; `channels` more binds (`$4..`, distinct)
/// restrict the entries' source channel. `$3` is `$2 + LATE_ENTRY_MICROS`.
///
/// `record_time_max` never decreases along the chain, so the first statement, ordered by it then
/// position, reads in position order a range of index `audit_log_funnel` (which holds every
/// column read): from the first entry whose `record_time_max` reaches `$1` (no earlier one can
/// be of the period) to the first whose `record_time_max` reaches `$3`. The entries of the
/// period after that are late ones (see [`LATE_ENTRY_MICROS`]): the second statement reads them
/// from index `audit_log_late`, in position order, after every entry of the first.
pub fn select_funnel_sql(channels: usize) -> [&'static str; 2] {
    static STATEMENTS: LazyLock<Vec<[String; 2]>> =
        LazyLock::new(|| (0..=SourceChannel::ALL.len()).map(funnel_sql).collect());
    let [main, late] = STATEMENTS
        .get(channels)
        .expect("at most one bind per source channel");
    [main, late]
}

fn funnel_sql(channels: usize) -> [String; 2] {
    let channel_filter = match channels {
        0 => String::new(),
        n => format!(" AND source_channel IN ({})", placeholders(4, n)),
    };
    let submitted = AuditKind::LeadSubmitted.as_str();
    let merged = AuditKind::LeadMergedInto.as_str();
    let select = format!(
        "SELECT lead_id, kind, record_time, state_before, state_after, source_channel, \
         {FUNNEL_FACT_COLUMNS} FROM audit_log \
         WHERE record_time >= $1 AND record_time < $2 AND lead_id IS NOT NULL{channel_filter} \
         AND (kind IN ('{submitted}', '{merged}') OR sla_number IS NOT NULL \
              OR (state_after IS NOT NULL AND (state_before IS NULL OR state_before <> state_after)))"
    );
    [
        format!(
            "{select} AND record_time_max >= $1 AND record_time_max < $3 \
             ORDER BY record_time_max, position"
        ),
        format!(
            // `record_time_max - $3 >= 0`, not `record_time_max >= $3`: a bound on the column
            // would let the planner prefer `audit_log_funnel` from `$3` to the end of the log.
            "{select} AND record_time_max - record_time > {LATE_ENTRY_MICROS} \
             AND record_time_max - $3 >= 0 ORDER BY position"
        ),
    ]
}

/// A row of [`select_funnel_sql`], read by position with its text borrowed from the row, and
/// without comparing each value's type with the column's (the statement and the columns' types
/// are fixed; a mismatch is still a decoding error): a quarter is hundreds of thousands of rows.
pub struct FunnelRow<'r> {
    lead_id: Uuid,
    kind: &'r str,
    record_time: i64,
    state_before: Option<&'r str>,
    state_after: Option<&'r str>,
    source_channel: Option<&'r str>,
    sla_number: Option<i64>,
    sla_start_time: Option<i64>,
    sla_first_touch_time: Option<i64>,
    sla_breached: Option<i64>,
    disqualification: Option<&'r str>,
}

impl<'r> FunnelRow<'r> {
    pub fn read<R: Row>(row: &'r R) -> Result<Self, sqlx::Error>
    where
        usize: ColumnIndex<R>,
        Uuid: Decode<'r, R::Database> + Type<R::Database>,
        i64: Decode<'r, R::Database> + Type<R::Database>,
        &'r str: Decode<'r, R::Database> + Type<R::Database>,
    {
        Ok(Self {
            lead_id: row.try_get_unchecked(0)?,
            kind: row.try_get_unchecked(1)?,
            record_time: row.try_get_unchecked(2)?,
            state_before: row.try_get_unchecked(3)?,
            state_after: row.try_get_unchecked(4)?,
            source_channel: row.try_get_unchecked(5)?,
            sla_number: row.try_get_unchecked(6)?,
            sla_start_time: row.try_get_unchecked(7)?,
            sla_first_touch_time: row.try_get_unchecked(8)?,
            sla_breached: row.try_get_unchecked(9)?,
            disqualification: row.try_get_unchecked(10)?,
        })
    }

    pub fn into_facts(self) -> StoreResult<EntryFacts> {
        fn named<T>(
            name: Option<&str>,
            what: &str,
            from_name: fn(&str) -> Option<T>,
        ) -> StoreResult<Option<T>> {
            name.map(|n| from_name(n).ok_or_else(|| StoreError::Corrupt(format!("{what} {n:?}"))))
                .transpose()
        }
        let sla = match (self.sla_number, self.sla_start_time) {
            (Some(number), Some(started)) => Some(SlaFacts {
                number: u32::try_from(number)
                    .map_err(|_| StoreError::Corrupt(format!("sla_number {number}")))?,
                started_at: micros(started)?,
                first_touch_at: self.sla_first_touch_time.map(micros).transpose()?,
                breached: self.sla_breached.unwrap_or(0) != 0,
            }),
            _ => None,
        };
        Ok(EntryFacts {
            lead: LeadId::from_uuid(self.lead_id),
            kind: AuditKind::from_name(self.kind)
                .ok_or_else(|| StoreError::Corrupt(format!("audit kind {:?}", self.kind)))?,
            recorded_at: micros(self.record_time)?,
            state_before: named(self.state_before, "state", LeadState::from_name)?,
            state_after: named(self.state_after, "state", LeadState::from_name)?,
            source_channel: named(self.source_channel, "channel", SourceChannel::from_name)?,
            sla,
            disqualification: named(
                self.disqualification,
                "disqualification",
                DisqualificationReason::from_name,
            )?,
        })
    }
}

/// `$first, ..., $(first + count - 1)`.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The most values one multi-row insert of new leads binds on SQLite (see [`LOG_ROWS_PER_INSERT`]
/// for why few): 32 leads of 16 columns.
pub const VALUES_PER_INSERT: usize = 512;

/// The multi-row insert that appends `rows` chained entries to the log; see [`bind_log_rows`].
///
/// Statement text and binds are built apart (not with sqlx's `QueryBuilder`, whose query borrows
/// the builder for as long as its binds): code generic over the database can then run it.
pub fn insert_log_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            format!(
                "({})",
                placeholders(row * LOG_INSERT_COLUMNS + 1, LOG_INSERT_COLUMNS)
            )
        })
        .collect();
    format!(
        "INSERT INTO audit_log (inbox_id, {LOG_COLUMNS}, {FUNNEL_FACT_COLUMNS}) VALUES {}",
        values.join(", ")
    )
}

/// Binds chained entries, in order, to the statement of [`insert_log_sql`].
pub fn bind_log_rows<'q, DB>(
    query: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    chained: &'q [(i64, ChainedEntry)],
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    Option<Uuid>: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
{
    chained.iter().fold(query, |query, (inbox_id, c)| {
        let facts = EntryFacts::of(&c.entry);
        let sla = facts.as_ref().and_then(|f| f.sla);
        bind_entry_columns(query.bind(*inbox_id).bind(c.position), &c.entry)
            .bind(c.previous_hash.as_slice())
            .bind(c.hash.as_slice())
            .bind(c.time_max.timestamp_micros())
            .bind(c.seal.as_ref().map(|s| s.key_id.as_str()))
            .bind(c.seal.as_ref().map(|s| s.tag.as_slice()))
            .bind(sla.map(|s| i64::from(s.number)))
            .bind(sla.map(|s| s.started_at.timestamp_micros()))
            .bind(sla.and_then(|s| s.first_touch_at).map(|t| t.timestamp_micros()))
            .bind(sla.map(|s| i64::from(s.breached)))
            .bind(
                facts
                    .and_then(|f| f.disqualification)
                    .map(DisqualificationReason::as_str),
            )
    })
}

/// Removes chained entries from the inbox: `DELETE_INBOX_ROWS IN (...)`, see [`in_list_sql`].
pub const DELETE_INBOX_ROWS: &str = "DELETE FROM audit_inbox WHERE id";

/// The inbox ids among some that are already in the log: `SELECT_CHAINED_INBOX_IDS IN (...)`.
pub const SELECT_CHAINED_INBOX_IDS: &str = "SELECT inbox_id FROM audit_log WHERE inbox_id";

/// `{statement} IN ($1, ..., $count)`, for a statement ending in a column.
/// The most values one `IN (...)` list binds: sqlx's SQLite driver looks each parameter up by
/// scanning the statement's parameters, so the cost of a list grows with its square (a list of
/// 1,000 took a tenth of an import's CPU).
pub const IN_LIST_CHUNK: usize = 100;

pub fn in_list_sql(statement: &str, count: usize) -> String {
    format!("{statement} IN ({})", placeholders(1, count))
}

/// `{statement} IN (${first}, ..., ${first + count - 1})`, for a statement that binds
/// `first - 1` values before the list.
pub fn in_list_sql_after(statement: &str, first: usize, count: usize) -> String {
    format!("{statement} IN ({})", placeholders(first, count))
}

/// Binds a refused inbox row to [`INSERT_QUARANTINE`].
pub fn bind_quarantine<'q, DB>(
    row: &'q InboxRow,
    refusal: &'q Refusal,
    detail: &'q str,
    at: Timestamp,
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    Option<Uuid>: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    sqlx::query(INSERT_QUARANTINE)
        .bind(row.id)
        .bind(at.timestamp_micros())
        .bind(refusal.code())
        .bind(detail)
        .bind(row.columns.lead_id)
        .bind(row.columns.kind.as_str())
        .bind(row.columns.record_time)
        .bind(row.columns.actor.as_str())
        .bind(row.columns.request_id.as_deref())
        .bind(row.columns.state_before.as_deref())
        .bind(row.columns.state_after.as_deref())
        .bind(row.columns.source_channel.as_deref())
        .bind(row.columns.policy_version.as_str())
        .bind(row.columns.body.as_str())
        .bind(row.columns.seal_key_id.as_deref())
        .bind(row.columns.seal.as_deref())
}

/// A row set aside by the sequencer, as listed.
#[derive(sqlx::FromRow)]
pub struct QuarantineRow {
    pub id: i64,
    pub inbox_id: i64,
    pub quarantine_time: i64,
    pub reason: String,
    pub detail: String,
    pub lead_id: Option<Uuid>,
    pub kind: String,
    pub record_time: i64,
    pub actor: String,
    pub request_id: Option<String>,
    pub seal_key_id: Option<String>,
}

impl QuarantineRow {
    pub fn into_record(self) -> StoreResult<super::QuarantinedEntry> {
        Ok(super::QuarantinedEntry {
            id: self.id,
            inbox_id: self.inbox_id,
            quarantined_at: micros(self.quarantine_time)?,
            reason: self.reason,
            detail: self.detail,
            lead: self.lead_id.map(LeadId::from_uuid),
            kind: self.kind,
            record_time: self.record_time,
            actor: self.actor,
            request_id: self.request_id,
            seal_key_id: self.seal_key_id,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct IdempotencyRow {
    pub principal: String,
    pub request_id: String,
    pub method: String,
    pub fingerprint: Vec<u8>,
    pub response: String,
    pub create_time: i64,
}

impl IdempotencyRow {
    pub fn into_record(self) -> StoreResult<IdempotencyRecord> {
        Ok(IdempotencyRecord {
            key: IdempotencyKey {
                principal: self.principal,
                request_id: self.request_id,
            },
            method: self.method,
            fingerprint: hash32(self.fingerprint, "fingerprint")?,
            response: self.response,
            created_at: micros(self.create_time)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct PolicyRow {
    pub version: String,
    pub name: String,
    pub content: String,
    pub activate_time: i64,
}

impl PolicyRow {
    pub fn into_record(self) -> StoreResult<PolicyRecord> {
        Ok(PolicyRecord {
            version: self.version,
            name: self.name,
            content: self.content,
            activated_at: micros(self.activate_time)?,
        })
    }
}

pub const POLICY_COLUMNS: &str = "version, name, content, activate_time";

/// The chain's tip from its row, or the genesis tip.
pub fn tip_from(row: Option<(i64, Vec<u8>, i64)>) -> StoreResult<ChainTip> {
    match row {
        None => Ok(ChainTip::GENESIS),
        Some((position, hash, time_max)) => Ok(ChainTip {
            head: ChainHead {
                position,
                hash: hash32(hash, "hash")?,
            },
            time_max: Some(micros(time_max)?),
        }),
    }
}

pub const INBOX_STATS: &str = "SELECT COUNT(*), MIN(record_time) FROM audit_inbox";
/// Merged leads are aliases: not counted.
pub const LEADS_BY_STATE: &str = "SELECT state, COUNT(*) FROM leads WHERE merged_into IS NULL GROUP BY state";

pub fn inbox_stats(row: (i64, Option<i64>)) -> StoreResult<super::InboxStats> {
    Ok(super::InboxStats {
        entries: row.0,
        oldest: row.1.map(micros).transpose()?,
    })
}

pub fn leads_by_state(rows: Vec<(String, i64)>) -> StoreResult<Vec<(LeadState, i64)>> {
    rows.into_iter()
        .map(|(name, n)| {
            Ok((
                LeadState::from_name(&name).ok_or_else(|| StoreError::Corrupt(format!("state {name:?}")))?,
                n,
            ))
        })
        .collect()
}
