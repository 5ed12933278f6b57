//! Audit use cases: list, verify, digest (the stream of decisions is in `watch`).

use std::time::{Duration, Instant};

use super::{App, AppError, AppResult};
use crate::domain::audit::{
    ChainHead, ChainTip, ChainedEntry, Finding, Problem, ResumePoint, Verifier, verify_request_fingerprint,
};
use crate::domain::query::{AuditField, AuditOrder, ListQuery, NoField, QuarantineOrder};
use crate::store::QuarantinedEntry;

/// One page of rows the sequencer set aside.
pub struct QuarantinePage {
    pub entries: Vec<QuarantinedEntry>,
    pub next_page_token: String,
}

/// Entries read per query while verifying.
const READ_BATCH: usize = 5000;

/// One page of entries.
pub struct AuditPage {
    pub entries: Vec<ChainedEntry>,
    pub next_page_token: String,
}

/// What a caller asks `verify_audit` for.
#[derive(Clone, Copy, Debug, Default)]
pub struct VerifyRequest<'a> {
    /// The first position; 0 means 1.
    pub start: i64,
    /// The last position; 0 means the head.
    pub end: i64,
    /// A digest kept earlier, which must still be in the trail.
    pub expected: Option<ChainHead>,
    /// Continues an earlier call's verification; empty to start one.
    pub resume_token: &'a str,
    /// At most this many entries in this call; 0 means no limit but the time budget.
    pub max_entries: i64,
    /// When the caller stops waiting (its deadline or the server's cap): the call stops well
    /// before it.
    pub deadline: Option<Instant>,
}

/// The outcome of a verification call.
#[derive(Clone, Debug)]
pub struct Verification {
    /// Entries checked, by this call and the ones it continues.
    pub checked: i64,
    pub finding: Option<Finding>,
    pub head: ChainHead,
    /// The last position of the range.
    pub end: i64,
    /// The last position found sound.
    pub verified_through: i64,
    /// Continues the verification; `None` once it ended (complete, or a problem found).
    pub resume_token: Option<String>,
}

impl Verification {
    /// A verification that ended on a finding.
    fn ended(checked: i64, finding: Finding, head: ChainHead, end: i64) -> Self {
        Verification {
            checked,
            verified_through: finding.position - 1,
            finding: Some(finding),
            head,
            end,
            resume_token: None,
        }
    }
}

impl App {
    pub async fn list_audit(&self, query: &ListQuery<AuditField, AuditOrder>) -> AppResult<AuditPage> {
        let mut entries = self.store.list_audit(query).await?;
        let next_page_token = query.page(&mut entries, |last| query.order.key(last.position));
        self.open_texts(&mut entries).await?;
        Ok(AuditPage {
            entries,
            next_page_token,
        })
    }

    /// Rows of the inbox the sequencer refused to chain, newest first.
    pub async fn list_quarantine(
        &self,
        query: &ListQuery<NoField, QuarantineOrder>,
    ) -> AppResult<QuarantinePage> {
        let mut entries = self.store.list_quarantine(query).await?;
        let next_page_token = query.page(&mut entries, |last| query.order.key(last.id));
        Ok(QuarantinePage {
            entries,
            next_page_token,
        })
    }

    pub async fn audit_digest(&self) -> AppResult<ChainHead> {
        Ok(self.store.chain_head().await?)
    }

    /// Recomputes the chain over `[start, end]` (0 means the first / the head), also proving
    /// that `expected` (an earlier digest) is still in it. A position past the head (and past
    /// `expected`) is refused, naming the head.
    ///
    /// A call stops early, leaving a resume token, once its time budget is spent (the
    /// `verify_call_budget` setting, or half the time left before `deadline` if that is sooner)
    /// or `max_entries` were checked; it always checks at least one batch, so every call makes
    /// progress. `resume_token` continues such a verification, for the same arguments.
    pub async fn verify_audit(&self, request: VerifyRequest<'_>) -> AppResult<Verification> {
        let started = Instant::now();
        let budget = call_budget(self.settings.verify_call_budget, request.deadline, started);
        // `None`: a budget too large to reach.
        let stop_at = started.checked_add(budget);
        let VerifyRequest {
            start,
            end,
            expected,
            resume_token,
            max_entries,
            ..
        } = request;
        let fingerprint = verify_request_fingerprint(start, end, expected);
        let head = self.store.chain_head().await?;
        let resumed = if resume_token.is_empty() {
            None
        } else {
            Some(
                ResumePoint::decode(resume_token, &fingerprint, &self.settings.audit_keys)
                    .map_err(|e| AppError::invalid("resume_token", e))?,
            )
        };
        let (anchor, end, expected, checked_before) = match resumed {
            Some(point) => {
                // Anchored on the hash verified by the earlier call, not on the stored row: a row
                // changed since is reported, not trusted.
                let stored = self.store.chain_range(point.tip.head.position - 1, 1).await?;
                if let Err(finding) = point.check_anchor(stored.first()) {
                    return Ok(Verification::ended(point.checked, finding, head, point.end));
                }
                (point.tip, point.end, point.expected, point.checked)
            }
            None => {
                let (start, end) = resolve_range(start, end, expected, head)?;
                let anchor = if start == 1 {
                    ChainTip::GENESIS
                } else {
                    match self.store.chain_range(start - 2, 1).await?.first() {
                        Some(e) if e.position == start - 1 => ChainTip::of(e),
                        _ => {
                            let finding = Finding {
                                position: start - 1,
                                problem: Problem::MissingEntry,
                                message: format!("entry {} is missing", start - 1),
                            };
                            return Ok(Verification::ended(0, finding, head, end));
                        }
                    }
                };
                (anchor, end, expected, 0)
            }
        };
        let sealed_from = self.store.sealed_from().await?;
        let mut verifier =
            Verifier::new(anchor, expected).with_seals((*self.settings.audit_keys).clone(), sealed_from);
        let allowance = if max_entries > 0 { max_entries } else { i64::MAX };
        let mut after = anchor.head.position;
        let outcome = 'read: loop {
            let wanted = (end - after).min(allowance - verifier.checked).max(0) as usize;
            let batch = self.store.chain_range(after, READ_BATCH.min(wanted)).await?;
            let full = batch.len() == READ_BATCH.min(wanted);
            for entry in &batch {
                if let Err(finding) = verifier.check(entry) {
                    break 'read Outcome::Found(finding);
                }
                after = entry.position;
            }
            if after >= end || !full || batch.is_empty() {
                break match verifier.finish(end) {
                    Ok(()) => Outcome::Complete,
                    Err(finding) => Outcome::Found(finding),
                };
            }
            if verifier.checked >= allowance || stop_at.is_some_and(|t| Instant::now() >= t) {
                break Outcome::Stopped;
            }
        };
        let checked = checked_before + verifier.checked;
        let tip = verifier.tip();
        Ok(match outcome {
            Outcome::Complete => Verification {
                checked,
                finding: None,
                head,
                end,
                verified_through: tip.head.position,
                resume_token: None,
            },
            Outcome::Found(finding) => Verification::ended(checked, finding, head, end),
            Outcome::Stopped => Verification {
                checked,
                finding: None,
                head,
                end,
                verified_through: tip.head.position,
                resume_token: Some(
                    ResumePoint {
                        request: fingerprint,
                        end,
                        expected,
                        tip,
                        checked,
                    }
                    .encode(&self.settings.audit_keys),
                ),
            },
        })
    }
}

/// How long a verification call may check entries: the setting, or half the time left before the
/// caller's deadline if that is sooner (the other half answers, and absorbs the last batch read).
fn call_budget(setting: Duration, deadline: Option<Instant>, now: Instant) -> Duration {
    deadline.map_or(setting, |deadline| {
        setting.min(deadline.saturating_duration_since(now) / 2)
    })
}

/// How one verification call ended.
enum Outcome {
    /// The whole range holds.
    Complete,
    Found(Finding),
    /// Out of time or entries for this call, with more to check.
    Stopped,
}

/// The range a new verification checks: `[start, end]` with the defaults applied (0 means the
/// first / the head) and extended to the expected digest. Positions past the head (and past the
/// digest) are the caller's mistake.
fn resolve_range(
    start: i64,
    end: i64,
    expected: Option<ChainHead>,
    head: ChainHead,
) -> AppResult<(i64, i64)> {
    // Positions past the head are entries that do not exist: the caller's mistake, not a gap in
    // the trail. An earlier digest may reach past the head (the trail was truncated since), and a
    // range up to it is verified, so the truncation is reported.
    let reach = expected.map_or(head.position, |d| d.position.max(head.position));
    let mut past_head = crate::domain::validation::Violations::default();
    for (field, position) in [("start_position", start), ("end_position", end)] {
        if position > reach {
            past_head.add(
                field,
                format!(
                    "must not be past the head of the trail (position {})",
                    head.position
                ),
            );
        }
    }
    past_head.into_result().map_err(AppError::InvalidArgument)?;
    let start = start.max(1);
    let mut end = if end == 0 { head.position } else { end };
    if let Some(digest) = expected {
        end = end.max(digest.position);
    }
    if start > end {
        return Err(AppError::invalid(
            "start_position",
            format!("must not be after the end of the range ({end})"),
        ));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_checks_for_half_the_time_left_and_never_more_than_the_setting() {
        let now = Instant::now();
        let setting = Duration::from_secs(10);
        assert_eq!(call_budget(setting, None, now), setting);
        let soon = now + Duration::from_secs(4);
        assert_eq!(call_budget(setting, Some(soon), now), Duration::from_secs(2));
        let late = now + Duration::from_secs(60);
        assert_eq!(call_budget(setting, Some(late), now), setting);
        assert_eq!(
            call_budget(setting, Some(now), now + Duration::from_secs(1)),
            Duration::ZERO
        );
    }
}
