//! Use cases: load what a request needs, let the domain decide, and write the change with its
//! audit entries and idempotency record in one transaction. Also the background work every
//! replica runs (sequencing the audit chain, sweeping what falls due).

mod accounts;
mod audit;
mod background;
mod error;
mod heads;
mod import;
mod leads;
mod loader;
mod pacing;
mod policy;
mod privacy;
mod report;
mod texts;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::Notify;

pub use audit::{AuditPage, QuarantinePage, Verification, VerifyRequest};
pub use background::spawn_background;
pub use error::{AppError, AppResult};
pub use import::{ImportRow, RowOutcome, RowResult, row_request_id};
pub use leads::{LeadChange, LeadPage, LeadView, MergeRequest, Submission};
pub use policy::{PolicySelector, PolicyView, SimulatedLead, Simulation};
pub use privacy::{Erased, ExportSubject, ExportedEntry, ExportedLead, PersonalDataExport};
pub use report::FunnelReport;
pub use watch::{WATCH_BUFFER_BYTES, Watch, WatchStart, WatchTerms};

use crate::domain::audit::{
    Admission, AuditBody, AuditEntry, AuditKeys, AuditKind, ChainedEntry, ENGINE_ACTOR, SealedEntry,
    encode_body,
};
use crate::domain::engine::{AuditInputs, PolicyActivation};
use crate::domain::policy::Policy;
use crate::domain::values::LeadId;
use crate::domain::values::{Timestamp, to_storage_precision};
use crate::store::{IdempotencyKey, IdempotencyRecord, PolicyRecord, Store};

/// On whose behalf a use case runs: an authenticated caller, or leadgate's engine for the work
/// it does by itself (the sweeper). Not [`crate::auth::Identity`]: who may call what is decided
/// before a request reaches the use cases, so an actor carries no roles, only its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// Recorded as the actor of every audit entry the change writes, and owns the request ids
    /// it sends (one principal's ids never replay another's answers).
    pub principal: String,
}

/// An idempotency key with what it protects.
#[derive(Clone, Debug)]
pub struct RequestKey {
    pub request_id: String,
    /// The RPC, so one id cannot replay another method's answer.
    pub method: &'static str,
    /// A hash of the request as received, without its request id.
    pub fingerprint: [u8; 32],
}

/// Tunables of the use cases.
#[derive(Clone, Debug)]
pub struct AppSettings {
    /// How long idempotency keys are remembered (at least 24 h).
    pub idempotency_retention: Duration,
    /// How often due SLA breaches and nurture revisits are looked for.
    pub sweep_interval: Duration,
    /// How often the retention sweep looks for leads to erase.
    pub retention_interval: Duration,
    /// The keys that seal audit entries when they are written and links when they are chained.
    pub audit_keys: Arc<AuditKeys>,
    /// Until then, the sequencer also chains unsealed entries (written by an earlier version of
    /// leadgate while an upgrade rolls out).
    pub accept_unsealed_until: Option<Timestamp>,
    /// The longest one VerifyAuditTrail call spends checking entries before it stops and hands
    /// back a resume token (sooner if the call's deadline is closer).
    pub verify_call_budget: Duration,
}

/// How often the retention sweep usually looks for leads to erase (when the policy asks it to).
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(600);

/// The usual `verify_call_budget`: a third of the server's usual 30 s call cap, so a call
/// answers well within it.
pub const DEFAULT_VERIFY_CALL_BUDGET: Duration = Duration::from_secs(10);

impl AppSettings {
    /// The usual settings, with these audit keys.
    pub fn with_keys(audit_keys: AuditKeys) -> Self {
        Self {
            idempotency_retention: Duration::from_secs(72 * 3600),
            sweep_interval: Duration::from_secs(1),
            retention_interval: DEFAULT_RETENTION_INTERVAL,
            audit_keys: Arc::new(audit_keys),
            accept_unsealed_until: None,
            verify_call_budget: DEFAULT_VERIFY_CALL_BUDGET,
        }
    }
}

/// The use cases, over one store and the active policy.
#[derive(Clone)]
pub struct App {
    store: Arc<dyn Store>,
    policy: Arc<Policy>,
    settings: AppSettings,
    /// Wakes the sequencer after a write added audit entries.
    entries_written: Arc<Notify>,
    /// The chain's head as this process knows it: watchers wait on it.
    heads: heads::ChainHeads,
    /// Single-lead reads, batched.
    loader: loader::Loader,
    /// Whether writes wait for the sequencer.
    pacer: pacing::Pacer,
}

/// The current time at the precision leadgate stores.
pub fn now() -> Timestamp {
    to_storage_precision(chrono::Utc::now())
}

/// How often a change is retried after losing a race with another writer of the same lead.
const MAX_ATTEMPTS: usize = 40;

/// The pause before retry `attempt` (from 1): jittered exponential backoff from 1 ms to 50 ms, so
/// writers racing on one lead spread out instead of colliding again (at most about 1.5 s in all).
async fn backoff(attempt: usize) {
    if attempt == 0 {
        return;
    }
    let ceiling = (1u64 << attempt.min(6)).min(50);
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos(),
    );
    tokio::time::sleep(Duration::from_micros(500 + jitter % (ceiling * 1000))).await;
}

impl App {
    /// Builds the use cases; call it within a Tokio runtime (it starts the read batching task).
    pub fn new(store: Arc<dyn Store>, policy: Arc<Policy>, settings: AppSettings) -> Self {
        Self {
            loader: loader::Loader::start(store.clone()),
            store,
            policy,
            settings,
            entries_written: Arc::new(Notify::new()),
            heads: heads::ChainHeads::new(),
            pacer: pacing::Pacer::default(),
        }
    }

    /// Seals entries as they are written: their free text under the key of their lead (among
    /// `leads`), then each entry, as the sequencer chains only what leadgate sealed.
    fn seal(&self, leads: &[&crate::domain::lead::Lead], entries: &[AuditEntry]) -> Vec<SealedEntry> {
        let mut entries = entries.to_vec();
        for lead in leads {
            entries = texts::seal_entries(lead, &entries);
        }
        self.settings.audit_keys.seal_all(&entries)
    }

    /// Opens the free text of entries read from the trail with their leads' keys (text of an
    /// erased lead reads `[erased]`).
    async fn open_texts(&self, entries: &mut [ChainedEntry]) -> AppResult<()> {
        if !texts::any_sealed(entries) {
            return Ok(());
        }
        let mut ids: Vec<LeadId> = entries.iter().filter_map(|e| e.entry.lead).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut keys: std::collections::HashMap<LeadId, Option<crate::domain::texts::TextKey>> =
            ids.iter().map(|id| (*id, None)).collect();
        for lead in self.store.get_leads(&ids).await? {
            keys.insert(lead.id, lead.text_key);
        }
        texts::open_entries(entries, &keys);
        Ok(())
    }

    /// What the sequencer admits into the chain now.
    fn admission(&self) -> Admission<'_> {
        Admission {
            keys: &self.settings.audit_keys,
            accept_unsealed_until: self.settings.accept_unsealed_until,
            now: now(),
        }
    }

    /// After a write committed entries: wake the sequencer, count them.
    fn written(&self, entries: &[AuditEntry]) {
        self.entries_written.notify_one();
        crate::metrics::entries_written(entries.iter().map(|e| e.kind.as_str()));
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Records this replica's policy as the active one if it is not already.
    pub async fn activate_policy(&self) -> AppResult<bool> {
        let now = now();
        let policy = &self.policy;
        let entry = AuditEntry {
            lead: None,
            kind: AuditKind::PolicyActivated,
            recorded_at: now,
            actor: ENGINE_ACTOR.to_owned(),
            request_id: None,
            state_before: None,
            state_after: None,
            source_channel: None,
            policy_version: policy.version.clone(),
            body: encode_body(&AuditBody {
                inputs: AuditInputs::PolicyActivated(PolicyActivation {
                    version: policy.version.clone(),
                    name: policy.name.clone(),
                })
                .to_value(),
                ..AuditBody::default()
            }),
        };
        let record = PolicyRecord {
            version: policy.version.clone(),
            name: policy.name.clone(),
            content: policy.content.clone(),
            activated_at: now,
        };
        let sealed = self.settings.audit_keys.seal_all(std::slice::from_ref(&entry));
        let activated = self.store.activate_policy(&record, &sealed[0]).await?;
        if activated {
            self.written(std::slice::from_ref(&entry));
        }
        Ok(activated)
    }

    /// The first answer given to this key, if the same request was already served; an error if
    /// the key was used for another request.
    async fn stored_answer<T: DeserializeOwned>(
        &self,
        actor: &Actor,
        key: &RequestKey,
    ) -> AppResult<Option<T>> {
        let stored = self
            .store
            .find_idempotency(&IdempotencyKey {
                principal: actor.principal.clone(),
                request_id: key.request_id.clone(),
            })
            .await?;
        match stored {
            None => Ok(None),
            Some(record) if record.method == key.method && record.fingerprint == key.fingerprint => {
                serde_json::from_str(&record.response)
                    .map(Some)
                    .map_err(|e| AppError::Internal(format!("stored response for a request id: {e}")))
            }
            Some(record) => Err(AppError::FailedPrecondition {
                reason: "REQUEST_ID_REUSED",
                message: format!(
                    "request_id {:?} was already used for a different {} request",
                    key.request_id, record.method
                ),
            }),
        }
    }

    /// The answer a concurrent twin request stored first.
    async fn stored_answer_after_conflict<T: DeserializeOwned>(
        &self,
        actor: &Actor,
        key: Option<&RequestKey>,
    ) -> AppResult<T> {
        let key = key.ok_or_else(|| AppError::Internal("request id conflict without a request id".into()))?;
        self.stored_answer(actor, key)
            .await?
            .ok_or_else(|| AppError::Internal("request id taken but no stored response".into()))
    }
}

fn idempotency_record<T: Serialize>(
    actor: &Actor,
    key: &RequestKey,
    response: &T,
    now: Timestamp,
) -> IdempotencyRecord {
    IdempotencyRecord {
        key: IdempotencyKey {
            principal: actor.principal.clone(),
            request_id: key.request_id.clone(),
        },
        method: key.method.to_owned(),
        fingerprint: key.fingerprint,
        response: serde_json::to_string(response).expect("responses serialise"),
        created_at: now,
    }
}
