//! Personal data: erasure (GDPR article 17, and the retention sweep), the suppression list that
//! keeps an erased person from coming back unnoticed, and the export of everything held about
//! one person (article 15).

use serde::Serialize;

use super::leads::LeadChange;
use super::{Actor, App, AppError, AppResult, MAX_ATTEMPTS, RequestKey, backoff, idempotency_record, now};
use crate::domain::audit::ENGINE_ACTOR;
use crate::domain::engine::{self, Command, ErasureRequest};
use crate::domain::hex::to_hex;
use crate::domain::lead::Lead;
use crate::domain::policy::ErasedEmailRule;
use crate::domain::query::{AuditField, AuditOrder, ListQuery, parse_list};
use crate::domain::values::{Email, LeadId, Timestamp};
use crate::store::{ErasureWrite, LeadWrite, WriteOutcome};

/// Leads erased per pass of the retention sweep.
const RETENTION_BATCH: usize = 200;

/// The answer to an erasure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Erased {
    pub change: LeadChange,
    /// False when the lead had been erased before (nothing was written).
    pub erased_now: bool,
}

/// Everything leadgate holds about one person: the lead and every audit entry about it, and the
/// same for each lead merged into it (duplicates of the person).
#[derive(Clone, Debug, Serialize)]
pub struct PersonalDataExport {
    pub export_time: Timestamp,
    pub lead: Lead,
    pub history: Vec<ExportedEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub merged_leads: Vec<ExportedLead>,
}

/// A lead merged into the exported one, with its own history.
#[derive(Clone, Debug, Serialize)]
pub struct ExportedLead {
    pub lead: Lead,
    pub history: Vec<ExportedEntry>,
}

/// One audit entry of an export, with its inputs and reasons as recorded.
#[derive(Clone, Debug, Serialize)]
pub struct ExportedEntry {
    pub position: i64,
    pub kind: &'static str,
    pub record_time: Timestamp,
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_before: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_after: Option<&'static str>,
    pub policy_version: String,
    pub body: serde_json::Value,
    pub hash: String,
}

/// Whether a submission of an email whose lead was erased may create a lead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suppression {
    /// The email was never erased.
    None,
    /// It was, and the policy accepts it as a new consent: the submission says so.
    Accepted,
}

impl App {
    /// Erases a person's data: the lead `id` names (for an alias, the lead it was merged into)
    /// and every lead merged into it, each with [`App::erase_one`]. The aliases go first, so a
    /// retry after a crash finds the rest to do. Erasing an erased lead changes nothing.
    pub async fn erase_lead(
        &self,
        actor: &Actor,
        id: LeadId,
        reason: String,
        key: Option<RequestKey>,
    ) -> AppResult<Erased> {
        if let Some(key) = &key
            && let Some(replayed) = self.stored_answer(actor, key).await?
        {
            return Ok(replayed);
        }
        let lead = self.load(id).await?;
        for alias in self.store.aliases(lead.id).await? {
            self.erase_one(actor, alias, reason.clone(), None).await?;
        }
        self.erase_one(actor, lead.id, reason, key).await
    }

    /// Erases one lead's own record: its contact details and free text go, a pseudonymous record
    /// stays (state, scores, clocks, source, company facts) with a `LEAD_ERASED` entry, the
    /// answers kept for its request ids are forgotten, and its email's keyed hash goes on the
    /// suppression list.
    async fn erase_one(
        &self,
        actor: &Actor,
        id: LeadId,
        reason: String,
        key: Option<RequestKey>,
    ) -> AppResult<Erased> {
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            let lead = self.load_own(id).await?;
            let now = now();
            let ctx = self.context(actor, key.as_ref(), now);
            let applied = engine::apply(
                &lead,
                Command::Erase(ErasureRequest {
                    reason: reason.clone(),
                }),
                &ctx,
            )?;
            let answer = Erased {
                change: LeadChange {
                    decision: applied.decision,
                    created: false,
                    lead: self.view(applied.lead, now),
                },
                erased_now: !applied.entries.is_empty(),
            };
            if !answer.erased_now {
                return Ok(answer);
            }
            let hashes = self
                .settings
                .audit_keys
                .email_hashes(lead.profile.contact.email.as_str());
            let record = key.as_ref().map(|k| idempotency_record(actor, k, &answer, now));
            let sealed = self.seal(&[&answer.change.lead.lead], &applied.entries);
            // Answers are kept `idempotency_retention`: a lead unchanged for longer has none.
            let kept_since = chrono::Duration::from_std(self.settings.idempotency_retention)
                .ok()
                .and_then(|retention| now.checked_sub_signed(retention))
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
            let write = LeadWrite {
                lead: &answer.change.lead.lead,
                entries: &sealed,
                idempotency: record.as_ref(),
                unless_suppressed: &[],
            };
            let erasure = ErasureWrite {
                suppressed_email: &hashes[0],
                forget_answers: lead.updated_at >= kept_since,
            };
            match self.store.erase_lead(write, lead.revision, erasure).await? {
                WriteOutcome::Written => {
                    self.written(&applied.entries);
                    return Ok(answer);
                }
                WriteOutcome::RevisionConflict | WriteOutcome::EmailTaken => continue,
                WriteOutcome::RequestIdTaken => {
                    return self.stored_answer_after_conflict(actor, key.as_ref()).await;
                }
            }
        }
        Err(AppError::Aborted {
            reason: "CONCURRENT_MODIFICATION",
            message: "the lead is being changed by other requests: retry".into(),
        })
    }

    /// What a submission of `email` may do, given the suppression list and the policy: an error
    /// when the policy refuses an erased person's email.
    pub(super) async fn check_suppression(&self, email: &Email) -> AppResult<Suppression> {
        let hashes = self.settings.audit_keys.email_hashes(email.as_str());
        if !self.store.email_suppressed(&hashes).await? {
            return Ok(Suppression::None);
        }
        match self.policy.rules.privacy.erased_email {
            ErasedEmailRule::Accept => Ok(Suppression::Accepted),
            ErasedEmailRule::Refuse => Err(AppError::FailedPrecondition {
                reason: "EMAIL_SUPPRESSED",
                message: "contact.email belongs to a person whose data was erased at their request; \
                          the policy (privacy.erased_email = \"refuse\") does not take it back"
                    .into(),
            }),
        }
    }

    /// Everything held about the lead `id`, or about the person with `email` (for an alias, the
    /// lead it was merged into), and about the leads merged into it.
    pub async fn export_lead_data(&self, lead: ExportSubject) -> AppResult<PersonalDataExport> {
        let lead = match lead {
            ExportSubject::Lead(id) => self.load(id).await?,
            ExportSubject::Email(email) => match self.store.find_lead_by_email(&email).await? {
                Some(lead) => self.load(lead.id).await?,
                None => return Err(AppError::NotFound("no lead has this email".into())),
            },
        };
        let mut lead = lead;
        // The key of its entries' free text is not the person's data (the texts are, opened).
        lead.text_key = None;
        let mut merged_leads = Vec::new();
        for alias in self.store.aliases(lead.id).await? {
            let mut alias = self.load_own(alias).await?;
            alias.text_key = None;
            let history = self.history(alias.id).await?;
            merged_leads.push(ExportedLead { lead: alias, history });
        }
        Ok(PersonalDataExport {
            export_time: now(),
            history: self.history(lead.id).await?,
            lead,
            merged_leads,
        })
    }

    /// Every chained audit entry of one lead, in position order.
    async fn history(&self, id: LeadId) -> AppResult<Vec<ExportedEntry>> {
        let filter = format!("lead = \"{id}\"");
        let mut history = Vec::new();
        let mut page_token = String::new();
        loop {
            let query: ListQuery<AuditField, AuditOrder> = parse_list(&filter, "position", &page_token, 1000)
                .map_err(|(field, e)| AppError::Internal(format!("export query ({field}): {e}")))?;
            let page = self.list_audit(&query).await?;
            history.extend(page.entries.into_iter().map(|chained| {
                let entry = chained.entry;
                ExportedEntry {
                    position: chained.position,
                    kind: entry.kind.as_str(),
                    record_time: entry.recorded_at,
                    actor: entry.actor,
                    request_id: entry.request_id,
                    state_before: entry.state_before.map(|s| s.as_str()),
                    state_after: entry.state_after.map(|s| s.as_str()),
                    policy_version: entry.policy_version,
                    body: serde_json::from_str(&entry.body).unwrap_or(serde_json::Value::Null),
                    hash: to_hex(&chained.hash),
                }
            }));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        Ok(history)
    }

    /// One pass of the retention sweep: erases the leads no change touched for the policy's
    /// `privacy.erase_inactive_after_months`. Replicas may run it at once: each erasure is
    /// revision-checked, and an erased lead is never erased again. Returns how many it erased.
    pub async fn erase_inactive_leads(&self) -> AppResult<usize> {
        let months = self.policy.rules.privacy.erase_inactive_after_months;
        if months == 0 {
            return Ok(0);
        }
        let Some(cutoff) = now().checked_sub_months(chrono::Months::new(months)) else {
            return Ok(0);
        };
        let actor = Actor {
            principal: ENGINE_ACTOR.to_owned(),
        };
        let reason = format!("retention: unchanged for {months} months");
        let mut erased = 0;
        loop {
            let ids = self.store.leads_unchanged_since(cutoff, RETENTION_BATCH).await?;
            let mut progressed = false;
            for id in &ids {
                // Read again: a change since the listing keeps the lead.
                let Some(lead) = self.store.get_lead(*id).await? else {
                    continue;
                };
                if lead.updated_at >= cutoff || lead.erased_at.is_some() {
                    continue;
                }
                match self.erase_lead(&actor, *id, reason.clone(), None).await {
                    Ok(done) => {
                        progressed = true;
                        erased += usize::from(done.erased_now);
                    }
                    Err(error) => tracing::warn!(%error, lead = %id, "erasing an inactive lead failed"),
                }
            }
            if ids.len() < RETENTION_BATCH || !progressed {
                return Ok(erased);
            }
        }
    }
}

/// Whose data an export is about.
#[derive(Clone, Debug)]
pub enum ExportSubject {
    Lead(LeadId),
    Email(Email),
}
