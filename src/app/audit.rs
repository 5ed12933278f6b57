//! Audit use cases: list, verify, digest (the stream of decisions is in `watch`).

use super::{App, AppError, AppResult};
use crate::domain::audit::{ChainHead, ChainTip, ChainedEntry, Finding, Verifier};
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

/// The outcome of a verification.
#[derive(Clone, Debug)]
pub struct Verification {
    pub checked: i64,
    pub finding: Option<Finding>,
    pub head: ChainHead,
}

impl App {
    pub async fn list_audit(&self, query: &ListQuery<AuditField, AuditOrder>) -> AppResult<AuditPage> {
        let mut entries = self.store.list_audit(query).await?;
        let next_page_token = query.page(&mut entries, |last| query.order.key(last.position));
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
    pub async fn verify_audit(
        &self,
        start: i64,
        end: i64,
        expected: Option<ChainHead>,
    ) -> AppResult<Verification> {
        let head = self.store.chain_head().await?;
        // Positions past the head are entries that do not exist: the caller's mistake, not a
        // gap in the trail. An earlier digest may reach past the head (the trail was truncated
        // since), and a range up to it is verified, so the truncation is reported.
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
        let anchor = if start == 1 {
            ChainTip::GENESIS
        } else {
            match self.store.chain_range(start - 2, 1).await?.first() {
                Some(e) if e.position == start - 1 => ChainTip::of(e),
                _ => {
                    return Ok(Verification {
                        checked: 0,
                        finding: Some(Finding {
                            position: start - 1,
                            problem: crate::domain::audit::Problem::MissingEntry,
                            message: format!("entry {} is missing", start - 1),
                        }),
                        head,
                    });
                }
            }
        };
        let sealed_from = self.store.sealed_from().await?;
        let mut verifier =
            Verifier::new(anchor, expected).with_seals((*self.settings.audit_keys).clone(), sealed_from);
        let mut after = start - 1;
        let finding = 'read: loop {
            let batch = self
                .store
                .chain_range(after, READ_BATCH.min((end - after) as usize))
                .await?;
            let full = batch.len() == READ_BATCH;
            for entry in &batch {
                if let Err(finding) = verifier.check(entry) {
                    break 'read Some(finding);
                }
                after = entry.position;
            }
            if after >= end || !full || batch.is_empty() {
                break verifier.finish(end).err();
            }
        };
        Ok(Verification {
            checked: verifier.checked,
            finding,
            head,
        })
    }
}
