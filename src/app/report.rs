//! Funnel reports, computed from the audit trail.

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_util::task::AbortOnDropHandle;

use super::{App, AppError, AppResult};
use crate::domain::funnel::{ChannelFunnel, EntryFacts, FunnelBuilder};
use crate::domain::values::{SourceChannel, Timestamp};
use crate::store::StoreError;

/// Entries handed to the fold at a time, and batches queued for it.
const FOLD_BATCH: usize = 4096;
const FOLD_QUEUE: usize = 4;

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
        // Rows are read and decoded in a task of their own, outside the call's span (entered at
        // every poll), and folded on a blocking thread: a quarter is hundreds of thousands of
        // rows, and the two halves of the work then run side by side.
        let (batches, mut received) = mpsc::channel::<Vec<EntryFacts>>(FOLD_QUEUE);
        let store = self.store.clone();
        let wanted = channels.to_vec();
        let reader = AbortOnDropHandle::new(tokio::spawn(async move {
            let mut rows = store.funnel_entries(start, end, &wanted);
            let mut batch = Vec::with_capacity(FOLD_BATCH);
            while let Some(facts) = rows.next().await {
                batch.push(facts?);
                if batch.len() == FOLD_BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(FOLD_BATCH));
                    if batches.send(full).await.is_err() {
                        return Ok(());
                    }
                }
            }
            let _ = batches.send(batch).await;
            Ok::<_, StoreError>(())
        }));
        let fold = tokio::task::spawn_blocking(move || {
            let mut builder = FunnelBuilder::new(start, end);
            while let Some(batch) = received.blocking_recv() {
                batch.iter().for_each(|facts| builder.add_facts(facts));
            }
            builder.finish()
        });
        reader
            .await
            .map_err(|e| AppError::Internal(format!("reading the funnel's entries: {e}")))??;
        let (channels, total) = fold
            .await
            .map_err(|e| AppError::Internal(format!("folding the funnel's entries: {e}")))?;
        Ok(FunnelReport {
            start,
            end,
            channels,
            total,
        })
    }
}
