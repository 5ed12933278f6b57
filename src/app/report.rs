//! Funnel reports, computed from the audit trail.

use super::{App, AppError, AppResult};
use crate::domain::funnel::{ChannelFunnel, FunnelBuilder};
use crate::domain::values::{SourceChannel, Timestamp};

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
        let mut builder = FunnelBuilder::new(start, end);
        self.store
            .funnel_entries(start, end, channels, &mut |facts| builder.add_facts(&facts))
            .await?;
        let (channels, total) = builder.finish();
        Ok(FunnelReport {
            start,
            end,
            channels,
            total,
        })
    }
}
