//! Funnel reports, computed from the audit trail.

use super::audit::AUDIT_ORDERS;
use super::{App, AppError, AppResult};
use crate::domain::funnel::{ChannelFunnel, FunnelBuilder};
use crate::domain::query::{Condition, Filter, ListQuery, Op, SqlValue};
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
                column: "record_time",
                op: Op::Ge,
                value: SqlValue::Int(start.timestamp_micros()),
            }],
            vec![Condition {
                column: "record_time",
                op: Op::Lt,
                value: SqlValue::Int(end.timestamp_micros()),
            }],
        ];
        if !channels.is_empty() {
            groups.push(
                channels
                    .iter()
                    .map(|c| Condition {
                        column: "source_channel",
                        op: Op::Eq,
                        value: SqlValue::Text(c.as_str().into()),
                    })
                    .collect(),
            );
        }
        let mut query = ListQuery::new(Filter { groups }, &AUDIT_ORDERS[0], REPORT_BATCH);
        let mut builder = FunnelBuilder::new(start, end);
        loop {
            let mut entries = self.store.list_audit(&query).await?;
            let more = entries.len() > REPORT_BATCH;
            entries.truncate(REPORT_BATCH);
            for e in &entries {
                builder.add(&e.entry);
            }
            match (more, entries.last()) {
                (true, Some(last)) => query.after = Some(vec![SqlValue::Int(last.position)]),
                _ => break,
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
