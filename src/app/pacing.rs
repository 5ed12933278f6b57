//! Writes paced to the audit sequencer: a change counts once its audit entry is chained, so
//! when the chain falls behind, new writes wait for it rather than pile up in the inbox.
//!
//! Writers commit in parallel; the sequencer chains alone. Under sustained load on a busy
//! database the writers can outrun it, and then every acknowledged write adds to an inbox that
//! only grows: the trail, the decision stream and the funnel fall further behind the leads. The
//! sequencer says after each run whether the chain is behind (a run that chained at least
//! [`BEHIND`] entries, or, on a replica that is not chaining, an inbox holding that many); while
//! it is, a write waits before it commits until the sequencer catches up, at most
//! [`MAX_PAUSE`] — a sequencer that cannot chain (its database refusing the log) must not make
//! writes unavailable, it only slows them.

use std::time::Duration;

use tokio::sync::watch;

/// Entries waiting that make the chain "behind": a few of the sequencer's quickest runs.
pub const BEHIND: usize = 256;

/// The longest a write waits for the sequencer.
pub const MAX_PAUSE: Duration = Duration::from_millis(500);

/// Whether the chain is behind, shared by the sequencer (which sets it) and the writers.
#[derive(Clone, Debug)]
pub struct Pacer {
    behind: watch::Sender<bool>,
}

impl Default for Pacer {
    fn default() -> Self {
        Self {
            behind: watch::Sender::new(false),
        }
    }
}

impl Pacer {
    /// The sequencer's verdict after a run: `waiting` entries were found waiting (chained by
    /// this replica, or counted in the inbox).
    pub fn observe(&self, waiting: usize) {
        let behind = waiting >= BEHIND;
        self.behind
            .send_if_modified(|was| std::mem::replace(was, behind) != behind);
    }

    /// Returns at once unless the chain is behind; then when it caught up, or after
    /// [`MAX_PAUSE`].
    pub async fn wait(&self) {
        let mut behind = self.behind.subscribe();
        if !*behind.borrow_and_update() {
            return;
        }
        crate::metrics::write_paced();
        let _ = tokio::time::timeout(MAX_PAUSE, behind.wait_for(|b| !*b)).await;
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
        assert!(*pacer.behind.borrow());
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
}
