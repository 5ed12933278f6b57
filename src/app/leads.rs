//! Lead use cases: submit, change, read, list.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::privacy::Suppression;
use super::texts;
use super::{Actor, App, AppError, AppResult, MAX_ATTEMPTS, RequestKey, backoff, idempotency_record, now};
use crate::domain::audit::AuditEntry;
use crate::domain::audit::ENGINE_ACTOR;
use crate::domain::engine::{self, Command, Context, Decision, EventInput, ProfileField, ProfileValues};
use crate::domain::lead::Lead;
use crate::domain::query::{LeadField, LeadOrder, ListQuery};
use crate::domain::sla::{self, SlaState};
use crate::domain::values::{LeadId, Profile, Timestamp};
use crate::store::{LeadWrite, MergeWrite, WriteOutcome};

/// A lead as readers see it at a given time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadView {
    pub lead: Lead,
    /// The SLA clock read at `read_at`.
    pub sla_state: SlaState,
    pub min_attempts_before_recycle: u32,
    pub read_at: Timestamp,
}

/// The answer to a change: the lead after it and what was decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadChange {
    pub lead: LeadView,
    pub decision: Decision,
    /// Whether a submission created the lead (false for a known email).
    pub created: bool,
}

/// One page of leads.
#[derive(Clone, Debug)]
pub struct LeadPage {
    pub leads: Vec<LeadView>,
    pub next_page_token: String,
}

/// A validated MergeLeads request.
#[derive(Clone, Debug)]
pub struct MergeRequest {
    pub winner: LeadId,
    pub loser: LeadId,
    /// The etags the caller read the leads at, when it sent them.
    pub winner_etag: Option<String>,
    pub loser_etag: Option<String>,
    /// Why the leads are one person (may be empty).
    pub reason: String,
}

/// How many merges a read follows at most to find the lead an alias stands for. The store keeps
/// every alias pointing at the end of its merges, so one is followed; more only when a merge
/// commits between the reads.
const MAX_ALIAS_HOPS: usize = 4;

/// A validated submission.
#[derive(Clone, Debug)]
pub struct Submission {
    pub profile: Profile,
    pub events: Vec<EventInput>,
}

impl App {
    pub(super) fn view(&self, lead: Lead, at: Timestamp) -> LeadView {
        LeadView {
            sla_state: sla::state_at(lead.sla.as_ref(), &self.policy.rules, at),
            min_attempts_before_recycle: self.policy.rules.sla.min_attempts_before_recycle,
            read_at: at,
            lead,
        }
    }

    pub(super) fn context<'a>(
        &'a self,
        actor: &'a Actor,
        key: Option<&'a RequestKey>,
        now: Timestamp,
    ) -> Context<'a> {
        Context {
            now,
            actor: &actor.principal,
            request_id: key.map(|k| k.request_id.as_str()),
            policy: &self.policy,
        }
    }

    /// Submits a contact: creates the lead, or records a resubmission of a known email.
    pub async fn submit_lead(
        &self,
        actor: &Actor,
        submission: Submission,
        key: Option<RequestKey>,
    ) -> AppResult<LeadChange> {
        let email = submission.profile.contact.email.clone();
        // An erased person's email (on the suppression list): a new lead's write checks it in its
        // own transaction and writes nothing then, as for a taken email; the next attempt, which
        // finds no lead with the email, looks the list up and refuses, or accepts it as a new
        // consent (the policy says).
        let email_hashes = self.settings.audit_keys.email_hashes(email.as_str());
        let mut after_erasure = false;
        // Most submissions are new leads under new request ids: the first attempt writes without
        // reading, and the store says whether the email or the request id was taken. Later
        // attempts read what they need; the second follows a known email, not a race: no pause.
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt.saturating_sub(1)).await;
            if attempt == 1
                && let Some(key) = &key
                && let Some(replayed) = self.stored_answer(actor, key).await?
            {
                return Ok(replayed);
            }
            // Not past a chain that is falling behind (see `pacing`); before the decision's
            // time is taken, so that the wait is not counted as the sequencer's lag.
            self.pacer.wait().await;
            let now = now();
            let ctx = self.context(actor, key.as_ref(), now);
            let existing = match attempt {
                0 => None,
                // The email of a lead merged into another resubmits the lead it was merged into.
                _ => match self.store.find_lead_by_email(&email).await? {
                    Some(lead) if lead.merged_into.is_some() => Some(self.resolve(lead).await?),
                    found => found,
                },
            };
            if attempt > 0 && existing.is_none() && !after_erasure {
                after_erasure = self.check_suppression(&email).await? == Suppression::Accepted;
            }
            let (mut applied, expected_revision) = match &existing {
                None => {
                    let id = LeadId::from_uuid(Uuid::now_v7());
                    (
                        engine::create_with(
                            id,
                            submission.profile.clone(),
                            &submission.events,
                            &ctx,
                            after_erasure,
                        )?,
                        None,
                    )
                }
                Some(lead) => {
                    let command = Command::Resubmit {
                        source: submission.profile.source.clone(),
                        events: submission.events.clone(),
                        profile: ProfileValues::of(&submission.profile),
                    };
                    (engine::apply(lead, command, &ctx)?, Some(lead.revision))
                }
            };
            texts::ensure_key(&mut applied.lead);
            let change = LeadChange {
                decision: applied.decision,
                created: existing.is_none(),
                lead: self.view(applied.lead, now),
            };
            let answer = key.as_ref().map(|k| (actor, k, &change));
            let unless_suppressed: &[[u8; 32]] = if after_erasure { &[] } else { &email_hashes };
            let outcome = self
                .commit(
                    &change.lead.lead,
                    &applied.entries,
                    answer,
                    expected_revision,
                    now,
                    unless_suppressed,
                )
                .await?;
            match outcome {
                WriteOutcome::Written => return Ok(change),
                // A concurrent submission of the same email, a suppressed email, or a change to
                // the lead: start over.
                WriteOutcome::EmailTaken | WriteOutcome::RevisionConflict => continue,
                WriteOutcome::RequestIdTaken => {
                    return self.stored_answer_after_conflict(actor, key.as_ref()).await;
                }
            }
        }
        Err(contention())
    }

    /// Applies a command to an existing lead. With an etag, fails if the lead changed since;
    /// without, applies the command to the latest state.
    pub async fn change_lead(
        &self,
        actor: &Actor,
        id: LeadId,
        etag: Option<String>,
        key: Option<RequestKey>,
        command: Command,
    ) -> AppResult<LeadChange> {
        if let Some(key) = &key
            && let Some(replayed) = self.stored_answer(actor, key).await?
        {
            return Ok(replayed);
        }
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            // As in `submit_lead`: before the read and the decision's time.
            self.pacer.wait().await;
            let lead = self.load(id).await?;
            if let Some(etag) = &etag
                && *etag != lead.etag()
            {
                return Err(etag_mismatch());
            }
            self.check_email_free(&lead, &command).await?;
            let now = now();
            let mut applied = engine::apply(&lead, command.clone(), &self.context(actor, key.as_ref(), now))?;
            if !applied.entries.is_empty() {
                texts::ensure_key(&mut applied.lead);
            }
            let change = LeadChange {
                decision: applied.decision,
                created: false,
                lead: self.view(applied.lead, now),
            };
            // A correction that changes nothing (and nothing fell due): nothing to write, and no
            // answer kept for its request id (a retry reads the lead as it is then).
            if applied.entries.is_empty() {
                return Ok(change);
            }
            let answer = key.as_ref().map(|k| (actor, k, &change));
            let outcome = self
                .commit(
                    &change.lead.lead,
                    &applied.entries,
                    answer,
                    Some(lead.revision),
                    now,
                    &[],
                )
                .await?;
            match outcome {
                WriteOutcome::Written => return Ok(change),
                WriteOutcome::RevisionConflict if etag.is_some() => return Err(etag_mismatch()),
                WriteOutcome::RevisionConflict => continue,
                // Only a corrected email can be taken: another lead got it first.
                WriteOutcome::EmailTaken => return Err(email_taken()),
                WriteOutcome::RequestIdTaken => {
                    return self.stored_answer_after_conflict(actor, key.as_ref()).await;
                }
            }
        }
        Err(contention())
    }

    /// Refuses a correction to an email another lead has, before anything is decided (the unique
    /// index still refuses one taken meanwhile).
    async fn check_email_free(&self, lead: &Lead, command: &Command) -> AppResult<()> {
        let Command::UpdateProfile(update) = command else {
            return Ok(());
        };
        let Some(email) = update.values.email.as_ref().filter(|e| {
            update.fields.contains(&ProfileField::ContactEmail) && **e != lead.profile.contact.email
        }) else {
            return Ok(());
        };
        match self.store.find_lead_by_email(email).await? {
            Some(other) if other.id != lead.id => Err(email_taken()),
            _ => Ok(()),
        }
    }

    /// Records what has fallen due on one lead (SLA breach, nurture revisit). Returns whether
    /// anything was recorded; a lost race means another replica recorded it.
    pub async fn sweep_lead(&self, id: LeadId) -> AppResult<bool> {
        let actor = Actor {
            principal: ENGINE_ACTOR.to_owned(),
        };
        let Some(lead) = self.store.get_lead(id).await? else {
            return Ok(false);
        };
        let now = now();
        let applied = engine::apply(&lead, Command::Tick, &self.context(&actor, None, now))?;
        if applied.entries.is_empty() {
            return Ok(false);
        }
        let outcome = self
            .commit(
                &applied.lead,
                &applied.entries,
                None,
                Some(lead.revision),
                now,
                &[],
            )
            .await?;
        Ok(outcome == WriteOutcome::Written)
    }

    /// Writes one change in one transaction: the lead (inserted when `expected_revision` is
    /// `None`, else updated if still at that revision), its entries, sealed, and — for a request
    /// with an id — the answer kept for replays. Wakes the sequencer once it committed; any other
    /// outcome wrote nothing.
    async fn commit(
        &self,
        lead: &Lead,
        entries: &[AuditEntry],
        answer: Option<(&Actor, &RequestKey, &LeadChange)>,
        expected_revision: Option<i64>,
        now: Timestamp,
        unless_suppressed: &[[u8; 32]],
    ) -> AppResult<WriteOutcome> {
        let record = answer.map(|(actor, key, change)| idempotency_record(actor, key, change, now));
        let sealed = self.seal(&[lead], entries);
        let write = LeadWrite {
            lead,
            entries: &sealed,
            idempotency: record.as_ref(),
            unless_suppressed,
        };
        let outcome = match expected_revision {
            None => self.store.insert_lead(write).await?,
            Some(revision) => self.store.update_lead(write, revision).await?,
        };
        if outcome == WriteOutcome::Written {
            self.written(entries);
        }
        Ok(outcome)
    }

    /// The lead `id` names: the lead itself, or for a lead merged into another, the lead its
    /// merges end at (reads and changes sent to an alias go there).
    pub(super) async fn load(&self, id: LeadId) -> AppResult<Lead> {
        let lead = self.load_own(id).await?;
        self.resolve(lead).await
    }

    /// The lead itself, merged or not.
    pub(super) async fn load_own(&self, id: LeadId) -> AppResult<Lead> {
        self.loader
            .get(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("lead {id} does not exist")))
    }

    /// The lead a merged lead stands for (a lead not merged stands for itself).
    pub(super) async fn resolve(&self, mut lead: Lead) -> AppResult<Lead> {
        for _ in 0..MAX_ALIAS_HOPS {
            if lead.merged_into.is_none() {
                return Ok(lead);
            }
            let target = self.store.merge_target(lead.id).await?.ok_or_else(|| {
                AppError::Internal(format!("lead {} is merged but has no merge target", lead.id))
            })?;
            lead = self.load_own(target).await?;
        }
        Err(AppError::Internal(format!(
            "lead {} is merged but its merges did not end after {MAX_ALIAS_HOPS} reads",
            lead.id
        )))
    }

    /// Merges a duplicate into another lead (see `engine::merge`), both leads and their entries
    /// in one transaction; answers the winner after the merge.
    pub async fn merge_leads(
        &self,
        actor: &Actor,
        request: MergeRequest,
        key: Option<RequestKey>,
    ) -> AppResult<LeadChange> {
        if let Some(key) = &key
            && let Some(replayed) = self.stored_answer(actor, key).await?
        {
            return Ok(replayed);
        }
        let etags_given = request.winner_etag.is_some() || request.loser_etag.is_some();
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            self.pacer.wait().await;
            // Not resolved: a merged lead is refused by name, never silently replaced.
            let winner = self.load_own(request.winner).await?;
            let loser = self.load_own(request.loser).await?;
            for (etag, lead) in [(&request.winner_etag, &winner), (&request.loser_etag, &loser)] {
                if etag.as_ref().is_some_and(|etag| *etag != lead.etag()) {
                    return Err(etag_mismatch());
                }
            }
            let now = now();
            let ctx = self.context(actor, key.as_ref(), now);
            let mut merged = engine::merge(&winner, &loser, &request.reason, &ctx)?;
            texts::ensure_key(&mut merged.winner);
            texts::ensure_key(&mut merged.loser);
            let change = LeadChange {
                decision: merged.decision,
                created: false,
                lead: self.view(merged.winner, now),
            };
            let record = key.as_ref().map(|k| idempotency_record(actor, k, &change, now));
            let sealed = self.seal(&[&change.lead.lead, &merged.loser], &merged.entries);
            let outcome = self
                .store
                .merge_leads(MergeWrite {
                    winner: &change.lead.lead,
                    winner_revision: winner.revision,
                    loser: &merged.loser,
                    loser_revision: loser.revision,
                    entries: &sealed,
                    idempotency: record.as_ref(),
                })
                .await?;
            match outcome {
                WriteOutcome::Written => {
                    self.written(&merged.entries);
                    return Ok(change);
                }
                WriteOutcome::RevisionConflict if etags_given => return Err(etag_mismatch()),
                WriteOutcome::RevisionConflict => continue,
                WriteOutcome::EmailTaken => {
                    return Err(AppError::Internal("a merge changes no email".into()));
                }
                WriteOutcome::RequestIdTaken => {
                    return self.stored_answer_after_conflict(actor, key.as_ref()).await;
                }
            }
        }
        Err(contention())
    }

    pub async fn get_lead(&self, id: LeadId) -> AppResult<LeadView> {
        let lead = self.load(id).await?;
        Ok(self.view(lead, now()))
    }

    pub async fn list_leads(&self, query: &ListQuery<LeadField, LeadOrder>) -> AppResult<LeadPage> {
        let mut leads = self.store.list_leads(query).await?;
        let next_page_token = query.page(&mut leads, |last| query.order.key(last));
        let at = now();
        Ok(LeadPage {
            leads: leads.into_iter().map(|l| self.view(l, at)).collect(),
            next_page_token,
        })
    }

    /// The engine's view of a lead now, line by line.
    pub async fn explain_lead(&self, id: LeadId) -> AppResult<(LeadView, engine::Explanation)> {
        let lead = self.load(id).await?;
        let at = now();
        let explanation = engine::explain(&lead, &self.policy, at);
        Ok((self.view(lead, at), explanation))
    }
}

fn etag_mismatch() -> AppError {
    AppError::Aborted {
        reason: "ETAG_MISMATCH",
        message: "the lead changed since the etag was read: read it again and retry".into(),
    }
}

fn email_taken() -> AppError {
    AppError::AlreadyExists {
        reason: "EMAIL_TAKEN",
        field: "lead.contact.email",
        message: "another lead has this email: each email is one lead".into(),
    }
}

fn contention() -> AppError {
    AppError::Aborted {
        reason: "CONCURRENT_MODIFICATION",
        message: "the lead is being changed by other requests: retry".into(),
    }
}
