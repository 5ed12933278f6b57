//! Writes paced to the audit sequencer: a change counts once its audit entry is chained, so
//! when the chain falls behind, new writes wait for it rather than pile up in the inbox.
//!
//! Writers commit in parallel; the sequencer chains alone. Under sustained load on a busy
//! database the writers can outrun it, and then every acknowledged write adds to an inbox that
//! only grows: the trail, the decision stream and the funnel fall further behind the leads. The
//! sequencer says after each run how many entries it found waiting (those it chained; after a
//! full run, or on a replica that is not chaining, the inbox counted). A write waits before it
//! commits while that is [`BEHIND`] or more, until the sequencer catches up, at most
//! [`MAX_PAUSE`] — a sequencer that cannot chain (its database refusing the log) must not make
//! writes unavailable, it only slows them.
//!
//! An import's batch writes a thousand entries at once, so it would always find the chain
//! behind after the batch before it, and writes and chaining would take turns. It waits only
//! while [`IMPORT_BEHIND`] entries or more are waiting: the next batch is decided and written
//! while the sequencer chains the last one, and the inbox stays bounded all the same.

use std::time::Duration;

use tokio::sync::watch;

/// Entries waiting that make the chain "behind" for a single write: a few of the sequencer's
/// quickest runs.
pub const BEHIND: usize = 256;

/// Entries waiting that make the chain "behind" for an import's batch: a few of the
/// sequencer's full runs.
pub const IMPORT_BEHIND: usize = 4096;

/// The longest a write waits for the sequencer.
pub const MAX_PAUSE: Duration = Duration::from_millis(500);

/// How many entries the sequencer last found waiting, shared by the sequencer (which sets it)
/// and the writers.
#[derive(Clone, Debug)]
pub struct Pacer {
    waiting: watch::Sender<usize>,
}

impl Default for Pacer {
    fn default() -> Self {
        Self {
            waiting: watch::Sender::new(0),
        }
    }
}

impl Pacer {
    /// The sequencer's count after a run: `waiting` entries were found waiting (chained by
    /// this replica, or counted in the inbox).
    pub fn observe(&self, waiting: usize) {
        self.waiting
            .send_if_modified(|was| std::mem::replace(was, waiting) != waiting);
    }

    /// Returns at once unless the chain is behind; then when it caught up, or after
    /// [`MAX_PAUSE`].
    pub async fn wait(&self) {
        self.wait_below(BEHIND).await;
    }

    /// [`Pacer::wait`] for an import's batch: behind from [`IMPORT_BEHIND`] entries.
    pub async fn wait_for_batch(&self) {
        self.wait_below(IMPORT_BEHIND).await;
    }

    async fn wait_below(&self, limit: usize) {
        let mut waiting = self.waiting.subscribe();
        if *waiting.borrow_and_update() < limit {
            return;
        }
        crate::metrics::write_paced();
        let _ = tokio::time::timeout(MAX_PAUSE, waiting.wait_for(|w| *w < limit)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_waits_while_the_chain_is_behind_and_goes_once_it_caught_up() {
        let pacer = Pacer::default();
        // Not behind: no wait at all.
        tokio::time::timeout(Duration::from_millis(1), pacer.wait())
            .await
            .expect("no pause while the chain keeps up");
        pacer.observe(BEHIND);
        assert_eq!(*pacer.waiting.borrow(), BEHIND);
        let waiting = tokio::spawn({
            let pacer = pacer.clone();
            async move {
                let started = tokio::time::Instant::now();
                pacer.wait().await;
                started.elapsed()
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "held while behind");
        pacer.observe(BEHIND - 1);
        let waited = waiting.await.unwrap();
        assert!(
            waited >= Duration::from_millis(100) && waited < MAX_PAUSE,
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_sequencer_that_never_catches_up_only_slows_writes() {
        let pacer = Pacer::default();
        pacer.observe(10 * BEHIND);
        let started = tokio::time::Instant::now();
        pacer.wait().await;
        assert_eq!(started.elapsed(), MAX_PAUSE);
    }

    #[tokio::test(start_paused = true)]
    async fn an_import_goes_on_while_a_few_runs_are_waiting_and_waits_beyond() {
        let pacer = Pacer::default();
        pacer.observe(IMPORT_BEHIND - 1);
        tokio::time::timeout(Duration::from_millis(1), pacer.wait_for_batch())
            .await
            .expect("no pause while the backlog is a few runs");
        let started = tokio::time::Instant::now();
        pacer.wait().await;
        assert_eq!(
            started.elapsed(),
            MAX_PAUSE,
            "a single write waits at that backlog"
        );
        pacer.observe(IMPORT_BEHIND);
        let waiting = tokio::spawn({
            let pacer = pacer.clone();
            async move {
                let started = tokio::time::Instant::now();
                pacer.wait_for_batch().await;
                started.elapsed()
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "held while the backlog is larger");
        pacer.observe(1000);
        let waited = waiting.await.unwrap();
        assert!(
            waited >= Duration::from_millis(100) && waited < MAX_PAUSE,
            "{waited:?}"
        );
    }
}
