//! Audit use cases: list, verify, digest (the stream of decisions is in `watch`).

use super::{App, AppError, AppResult};
use crate::domain::audit::{ChainHead, ChainTip, ChainedEntry, Finding, Verifier};
use crate::domain::query::{FieldKind, FieldSpec, KeyType, ListQuery, OrderSpec, SqlValue};
use crate::store::QuarantinedEntry;

const STATES: &[&str] = &[
    "LEAD",
    "MARKETING_QUALIFIED",
    "SALES_QUALIFIED",
    "NURTURING",
    "DISQUALIFIED",
    "CONVERTED",
];

/// Fields of the audit filter (WatchDecisions accepts all but `position`).
pub const AUDIT_FILTER_FIELDS: &[FieldSpec] = &[
    FieldSpec {
        name: "lead",
        column: "lead_id",
        kind: FieldKind::LeadName,
    },
    FieldSpec {
        name: "actor",
        column: "actor",
        kind: FieldKind::Text,
    },
    FieldSpec {
        name: "kind",
        column: "kind",
        kind: FieldKind::Enum {
            names: &[
                "LEAD_SUBMITTED",
                "LEAD_RESUBMITTED",
                "ENGAGEMENT_RECORDED",
                "DISCOVERY_CALL_RECORDED",
                "CONTACT_ATTEMPT_RECORDED",
                "STATE_OVERRIDDEN",
                "OVERRIDE_RELEASED",
                "LEAD_CONVERTED",
                "SLA_BREACHED",
                "NURTURE_REVISITED",
                "POLICY_ACTIVATED",
            ],
            prefix: "AUDIT_EVENT_KIND_",
        },
    },
    FieldSpec {
        name: "state_before",
        column: "state_before",
        kind: FieldKind::Enum {
            names: STATES,
            prefix: "LEAD_STATE_",
        },
    },
    FieldSpec {
        name: "state_after",
        column: "state_after",
        kind: FieldKind::Enum {
            names: STATES,
            prefix: "LEAD_STATE_",
        },
    },
    FieldSpec {
        name: "policy_version",
        column: "policy_version",
        kind: FieldKind::Text,
    },
    FieldSpec {
        name: "source.channel",
        column: "source_channel",
        kind: FieldKind::Enum {
            names: &[
                "WEBSITE",
                "CONTENT",
                "WEBINAR",
                "TRADE_SHOW",
                "PAID_SOCIAL",
                "PAID_SEARCH",
                "EMAIL",
                "REFERRAL",
                "PARTNER",
                "OUTBOUND",
                "OTHER",
            ],
            prefix: "SOURCE_CHANNEL_",
        },
    },
    FieldSpec {
        name: "record_time",
        column: "record_time",
        kind: FieldKind::Time,
    },
    FieldSpec {
        name: "position",
        column: "position",
        kind: FieldKind::Integer,
    },
];

/// The filter fields of WatchDecisions: the cursor is the position.
pub fn watch_filter_fields() -> &'static [FieldSpec] {
    &AUDIT_FILTER_FIELDS[..AUDIT_FILTER_FIELDS.len() - 1]
}

/// The orders ListAuditEvents accepts.
pub const AUDIT_ORDERS: &[OrderSpec] = &[
    OrderSpec {
        name: "position",
        column: "position",
        tie_break: None,
        key_types: &[KeyType::Int],
        descending: false,
    },
    OrderSpec {
        name: "position desc",
        column: "position",
        tie_break: None,
        key_types: &[KeyType::Int],
        descending: true,
    },
];

/// The order of the quarantine's list: newest first.
pub const QUARANTINE_ORDERS: &[OrderSpec] = &[OrderSpec {
    name: "id desc",
    column: "id",
    tie_break: None,
    descending: true,
    key_types: &[KeyType::Int],
}];

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
    pub async fn list_audit(&self, query: &ListQuery) -> AppResult<AuditPage> {
        let mut entries = self.store.list_audit(query).await?;
        let next_page_token = if entries.len() > query.limit {
            entries.truncate(query.limit);
            entries
                .last()
                .map(|e| query.token_after(vec![SqlValue::Int(e.position)]))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(AuditPage {
            entries,
            next_page_token,
        })
    }

    /// Rows of the inbox the sequencer refused to chain, newest first.
    pub async fn list_quarantine(&self, query: &ListQuery) -> AppResult<QuarantinePage> {
        let mut entries = self.store.list_quarantine(query).await?;
        let next_page_token = if entries.len() > query.limit {
            entries.truncate(query.limit);
            entries
                .last()
                .map(|e| query.token_after(vec![SqlValue::Int(e.id)]))
                .unwrap_or_default()
        } else {
            String::new()
        };
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
