//! Funnel reports, computed from the audit trail.

use super::{App, AppError, AppResult};
use crate::domain::funnel::{ChannelFunnel, FunnelBuilder};
use crate::domain::query::{AuditField, AuditOrder, Condition, Filter, ListQuery, Op, Value};
use crate::domain::values::{SourceChannel, Timestamp};

/// Entries read per query while building a report.
const REPORT_BATCH: usize = 5000;

/// A funnel report.
pub struct FunnelReport {
    pub start: Timestamp,
    pub end: Timestamp,
    pub channels: Vec<ChannelFunnel>,
    pub total: ChannelFunnel,
}

impl App {
    pub async fn funnel(
        &self,
        start: Timestamp,
        end: Timestamp,
        channels: &[SourceChannel],
    ) -> AppResult<FunnelReport> {
        if end <= start {
            return Err(AppError::invalid("end_time", "must be after start_time"));
        }
        let mut groups = vec![
            vec![Condition {
                field: AuditField::RecordTime,
                op: Op::Ge,
                value: Value::Int(start.timestamp_micros()),
            }],
            vec![Condition {
                field: AuditField::RecordTime,
                op: Op::Lt,
                value: Value::Int(end.timestamp_micros()),
            }],
        ];
        if !channels.is_empty() {
            groups.push(
                channels
                    .iter()
                    .map(|c| Condition {
                        field: AuditField::SourceChannel,
                        op: Op::Eq,
                        value: Value::Text(c.as_str().into()),
                    })
                    .collect(),
            );
        }
        let mut query = ListQuery::new(Filter { groups }, AuditOrder::Position, REPORT_BATCH);
        let mut builder = FunnelBuilder::new(start, end);
        loop {
            let mut entries = self.store.list_audit(&query).await?;
            let more = query.advance(&mut entries, |last| AuditOrder::Position.key(last.position));
            for e in &entries {
                builder.add(&e.entry);
            }
            if !more {
                break;
            }
        }
        let (channels, total) = builder.finish();
        Ok(FunnelReport {
            start,
            end,
            channels,
            total,
        })
    }
}
