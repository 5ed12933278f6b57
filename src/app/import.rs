//! Importing lists of leads: every row a submission of its own, idempotent by a request id
//! derived from the import's id and the row's number, the rows of a call written in one batch
//! (one transaction, a savepoint per row).
//!
//! A call goes in rounds. Each round reads the answers already stored for the rows still open
//! (a row imported before is answered as it was then), reads the leads their emails name, decides
//! every open row in order (a row whose email an earlier row of the call created or resubmitted
//! is a resubmission of that lead, at the revision the earlier row wrote), and writes them all in
//! one batch. A row that lost a race (its email taken or its lead changed by another writer,
//! or written under an earlier row that was itself undone) is decided again in the next round.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::texts;
use super::{
    Actor, App, AppError, AppResult, MAX_ATTEMPTS, RequestKey, Submission, backoff, idempotency_record, now,
};
use crate::domain::audit::AuditEntry;
use crate::domain::engine::{self, Command, ProfileValues, Rejection};
use crate::domain::lead::Lead;
use crate::domain::policy::ErasedEmailRule;
use crate::domain::validation::{FieldViolation, Violations};
use crate::domain::values::{Email, LeadId, Timestamp};
use crate::store::{BatchWrite, IdempotencyRecord, LeadWrite, WriteOutcome};

/// The request id of row `row` of import `import_id`: unique per row, the same every time the
/// row is sent.
pub fn row_request_id(import_id: &str, row: i64) -> String {
    format!("import:{import_id}:{row}")
}

/// One row of an import as the transport decoded it: a valid submission with its key, or the
/// violations that refuse it.
#[derive(Clone, Debug)]
pub struct ImportRow {
    pub row: i64,
    pub submission: Result<(Submission, RequestKey), Violations>,
}

/// What became of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowOutcome {
    Created,
    Deduplicated,
    Refused,
}

/// The answer for one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowResult {
    pub row: i64,
    pub outcome: RowOutcome,
    /// The lead and its etag after the row; `None` when refused.
    pub lead: Option<(LeadId, String)>,
    /// Why the row was refused (empty otherwise).
    pub violations: Vec<FieldViolation>,
}

/// What is kept for a row's request id, and answered when the row is sent again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct RowAnswer {
    lead: LeadId,
    etag: String,
    created: bool,
}

impl RowAnswer {
    fn result(&self, row: i64) -> RowResult {
        RowResult {
            row,
            outcome: if self.created {
                RowOutcome::Created
            } else {
                RowOutcome::Deduplicated
            },
            lead: Some((self.lead, self.etag.clone())),
            violations: Vec::new(),
        }
    }
}

fn refused(row: i64, violations: Vec<FieldViolation>) -> RowResult {
    RowResult {
        row,
        outcome: RowOutcome::Refused,
        lead: None,
        violations,
    }
}

/// A row decided in this round, waiting for its write.
struct Planned {
    index: usize,
    lead: Lead,
    entries: Vec<AuditEntry>,
    expected_revision: Option<i64>,
    record: Option<IdempotencyRecord>,
    answer: RowAnswer,
    /// For a new lead, its email's keyed hashes (see [`LeadWrite::unless_suppressed`]).
    unless_suppressed: Vec<[u8; 32]>,
}

impl App {
    /// Imports rows: an answer per row, in order. With `validate_only`, decides every row as it
    /// would be and writes nothing. Fails as a whole only when storage does (rows committed by
    /// then stay committed, and are answered as they were when the call is sent again).
    pub async fn import_leads(
        &self,
        actor: &Actor,
        rows: Vec<ImportRow>,
        validate_only: bool,
    ) -> AppResult<Vec<RowResult>> {
        let mut results: Vec<Option<RowResult>> = Vec::with_capacity(rows.len());
        let mut open = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            match &row.submission {
                Ok(_) => {
                    results.push(None);
                    open.push(index);
                }
                Err(v) => results.push(Some(refused(row.row, v.iter().cloned().collect()))),
            }
        }
        let valid = |index: usize| rows[index].submission.as_ref().ok();
        for attempt in 0..MAX_ATTEMPTS {
            if open.is_empty() {
                break;
            }
            backoff(attempt).await;
            self.replay_stored(actor, &rows, &mut open, &mut results).await?;
            if open.is_empty() {
                break;
            }
            let emails: Vec<_> = open
                .iter()
                .filter_map(|i| valid(*i))
                .map(|(s, _)| s.profile.contact.email.clone())
                .collect();
            let mut known: HashMap<String, Lead> = HashMap::new();
            for lead in self.store.find_leads_by_emails(&emails).await? {
                // The email of a lead merged into another resubmits that one.
                let email = lead.profile.contact.email.as_str().to_owned();
                let lead = if lead.merged_into.is_some() {
                    self.resolve(lead).await?
                } else {
                    lead
                };
                known.insert(email, lead);
            }
            // Emails of erased leads: refused or taken back as a new consent, as the policy says.
            // The hashes of the others go with their writes, checked again in the transaction
            // (an erasure may commit in between).
            let (suppressed, mut hashes) = self
                .suppressed_among(emails.iter().filter(|e| !known.contains_key(e.as_str())))
                .await?;
            if !validate_only {
                self.pacer.wait_for_batch().await;
            }
            let now = now();
            let mut planned = Vec::with_capacity(open.len());
            for &index in &open {
                let Some((submission, key)) = valid(index) else {
                    continue;
                };
                let row = rows[index].row;
                let after_erasure = suppressed.contains(submission.profile.contact.email.as_str());
                if after_erasure && self.policy.rules.privacy.erased_email == ErasedEmailRule::Refuse {
                    results[index] = Some(refused(
                        row,
                        vec![FieldViolation {
                            field: "contact.email".into(),
                            description: "belongs to a person whose data was erased at their request: \
                                          the policy (privacy.erased_email = \"refuse\") does not take it back \
                                          (EMAIL_SUPPRESSED)"
                                .into(),
                        }],
                    ));
                    continue;
                }
                match self.decide_row(actor, submission, key, &known, now, after_erasure) {
                    Ok(plan) => {
                        known.insert(
                            submission.profile.contact.email.as_str().to_owned(),
                            plan.0.clone(),
                        );
                        let (lead, entries, expected_revision) = plan;
                        let answer = RowAnswer {
                            lead: lead.id,
                            etag: lead.etag(),
                            created: expected_revision.is_none(),
                        };
                        let record = (!validate_only).then(|| idempotency_record(actor, key, &answer, now));
                        let unless_suppressed = match expected_revision {
                            None if !after_erasure => hashes
                                .remove(submission.profile.contact.email.as_str())
                                .unwrap_or_default(),
                            _ => Vec::new(),
                        };
                        planned.push(Planned {
                            index,
                            lead,
                            entries,
                            expected_revision,
                            record,
                            answer,
                            unless_suppressed,
                        });
                    }
                    Err(violations) => results[index] = Some(refused(row, violations)),
                }
            }
            if validate_only {
                for plan in planned {
                    results[plan.index] = Some(plan.answer.result(rows[plan.index].row));
                }
                open.clear();
                break;
            }
            let sealed: Vec<_> = planned
                .iter()
                .map(|p| self.seal(&[&p.lead], &p.entries))
                .collect();
            let writes: Vec<BatchWrite<'_>> = planned
                .iter()
                .zip(&sealed)
                .map(|(p, sealed)| BatchWrite {
                    write: LeadWrite {
                        lead: &p.lead,
                        entries: sealed,
                        idempotency: p.record.as_ref(),
                        unless_suppressed: &p.unless_suppressed,
                    },
                    expected_revision: p.expected_revision,
                })
                .collect();
            let outcomes = self.store.write_leads(&writes).await;
            let mut failure = None;
            open.clear();
            for (plan, outcome) in planned.iter().zip(outcomes) {
                match outcome {
                    Ok(WriteOutcome::Written) => {
                        self.written(&plan.entries);
                        results[plan.index] = Some(plan.answer.result(rows[plan.index].row));
                    }
                    // Lost a race, or written after a row of this call that was undone: decided
                    // again (or answered from the stored answer) in the next round.
                    Ok(
                        WriteOutcome::EmailTaken
                        | WriteOutcome::RevisionConflict
                        | WriteOutcome::RequestIdTaken,
                    ) => open.push(plan.index),
                    Err(error) => {
                        failure.get_or_insert(error);
                    }
                }
            }
            if let Some(error) = failure {
                return Err(error.into());
            }
        }
        if !open.is_empty() {
            return Err(AppError::Aborted {
                reason: "CONCURRENT_MODIFICATION",
                message: "the import's leads are being changed by other requests: send the call again".into(),
            });
        }
        results
            .into_iter()
            .map(|r| r.ok_or_else(|| AppError::Internal("an import row was left unanswered".into())))
            .collect()
    }

    /// Answers the open rows whose request id already has an answer (the row was imported
    /// before), and refuses those whose id was used for other content; they leave `open`.
    async fn replay_stored(
        &self,
        actor: &Actor,
        rows: &[ImportRow],
        open: &mut Vec<usize>,
        results: &mut [Option<RowResult>],
    ) -> AppResult<()> {
        let ids: Vec<String> = open
            .iter()
            .filter_map(|i| rows[*i].submission.as_ref().ok())
            .map(|(_, key)| key.request_id.clone())
            .collect();
        let stored: HashMap<String, IdempotencyRecord> = self
            .store
            .find_idempotency_many(&actor.principal, &ids)
            .await?
            .into_iter()
            .map(|record| (record.key.request_id.clone(), record))
            .collect();
        if stored.is_empty() {
            return Ok(());
        }
        let mut still_open = Vec::with_capacity(open.len());
        for &index in open.iter() {
            let row = rows[index].row;
            let Ok((_, key)) = &rows[index].submission else {
                continue;
            };
            match stored.get(&key.request_id) {
                None => still_open.push(index),
                Some(record) if record.method == key.method && record.fingerprint == key.fingerprint => {
                    let answer: RowAnswer = serde_json::from_str(&record.response)
                        .map_err(|e| AppError::Internal(format!("stored answer of an import row: {e}")))?;
                    results[index] = Some(answer.result(row));
                }
                Some(_) => {
                    results[index] = Some(refused(
                        row,
                        vec![FieldViolation {
                            field: "import_id".into(),
                            description: format!(
                                "row {row} of this import was imported before with different content \
                                 (request id {:?}): use a new import id for a changed file",
                                key.request_id
                            ),
                        }],
                    ))
                }
            }
        }
        *open = still_open;
        Ok(())
    }

    /// Decides one row: a new lead, or a resubmission of the lead its email names. The engine's
    /// refusal refuses the row alone.
    fn decide_row(
        &self,
        actor: &Actor,
        submission: &Submission,
        key: &RequestKey,
        known: &HashMap<String, Lead>,
        now: Timestamp,
        after_erasure: bool,
    ) -> Result<(Lead, Vec<AuditEntry>, Option<i64>), Vec<FieldViolation>> {
        let ctx = self.context(actor, Some(key), now);
        let existing = known.get(submission.profile.contact.email.as_str());
        let applied = match existing {
            None => engine::create_with(
                LeadId::from_uuid(Uuid::now_v7()),
                submission.profile.clone(),
                &submission.events,
                &ctx,
                after_erasure,
            ),
            Some(lead) => engine::apply(
                lead,
                Command::Resubmit {
                    source: submission.profile.source.clone(),
                    events: submission.events.clone(),
                    profile: ProfileValues::of(&submission.profile),
                },
                &ctx,
            ),
        };
        match applied {
            Ok(mut applied) => {
                texts::ensure_key(&mut applied.lead);
                Ok((applied.lead, applied.entries, existing.map(|l| l.revision)))
            }
            Err(Rejection::Invalid(v)) => Err(v.iter().cloned().collect()),
            Err(
                rejection @ (Rejection::Illegal(_)
                | Rejection::Precondition(_)
                | Rejection::Erased(_)
                | Rejection::Refused { .. }),
            ) => Err(vec![FieldViolation {
                field: "contact.email".into(),
                description: format!("the lead with this email refuses the resubmission: {rejection}"),
            }]),
        }
    }

    /// Of `emails`, those on the suppression list (one statement for all), and the keyed hashes
    /// of the others by email.
    async fn suppressed_among<'e>(
        &self,
        emails: impl Iterator<Item = &'e Email>,
    ) -> AppResult<(HashSet<String>, HashMap<String, Vec<[u8; 32]>>)> {
        let keys = &self.settings.audit_keys;
        let hashed: HashMap<String, Vec<[u8; 32]>> = emails
            .map(|e| (e.as_str().to_owned(), keys.email_hashes(e.as_str())))
            .collect();
        let all: Vec<[u8; 32]> = hashed.values().flatten().copied().collect();
        let found = self.store.suppressed_among(&all).await?;
        let (suppressed, clear): (HashMap<_, _>, HashMap<_, _>) = hashed
            .into_iter()
            .partition(|(_, h)| h.iter().any(|h| found.contains(h)));
        Ok((suppressed.into_keys().collect(), clear))
    }
}
