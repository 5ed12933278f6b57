//! The chain's head as this process knows it: one value that every watch stream waits on, so an
//! idle stream costs nothing and reads only once there is something new.
//!
//! The head moves when this process's sequencer chains entries (it asks for a read of the head),
//! and, on PostgreSQL, when any process's sequencer does: its transaction sends `NOTIFY` with the
//! new head, and one listener per process receives it. While that listener is down, one shared
//! slow poll of the head stands in for it, and it reads the head again once it is back (notices
//! sent meanwhile are lost). A read every 30 seconds bounds what a notice lost otherwise delays.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::App;

/// How often the head is read while the PostgreSQL listener is down.
const FALLBACK_POLL: Duration = Duration::from_secs(1);
/// How often the head is read anyway: the most a lost notice can delay entries (one sent by a
/// replica of an earlier version, which sends none, during a rolling upgrade).
const BACKSTOP_READ: Duration = Duration::from_secs(30);
/// The longest pause between two attempts to reconnect the listener, or to read the head.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(10);
/// The first pause after a failed attempt; it doubles up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The head position every watcher of this process follows.
#[derive(Clone)]
pub(super) struct ChainHeads {
    /// The highest position known to be chained and committed.
    head: Arc<watch::Sender<i64>>,
    /// Asks the reader task to read the head from the database.
    read_requested: Arc<Notify>,
}

impl ChainHeads {
    pub(super) fn new() -> Self {
        Self {
            head: Arc::new(watch::Sender::new(0)),
            read_requested: Arc::new(Notify::new()),
        }
    }

    /// A receiver of the head, for one watcher.
    pub(super) fn subscribe(&self) -> watch::Receiver<i64> {
        self.head.subscribe()
    }

    /// Records a head known to be committed; the head never moves back.
    fn advance(&self, position: i64) {
        self.head.send_if_modified(|head| {
            let moved = position > *head;
            if moved {
                *head = position;
            }
            moved
        });
    }

    /// The sequencer chained entries: read the new head.
    pub(super) fn chained(&self) {
        self.read_requested.notify_one();
    }
}

/// Starts the tasks that keep the head current: the reader, and on PostgreSQL the listener.
pub(super) fn follow_heads(app: &App, stop: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
    app.heads.read_requested.notify_one();
    vec![
        tokio::spawn(read_heads(app.clone(), stop.clone())),
        tokio::spawn(listen_for_heads(app.clone(), stop)),
    ]
}

/// Reads the head whenever asked (and every [`BACKSTOP_READ`]), retrying with backoff until a
/// read succeeds.
async fn read_heads(app: App, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = app.heads.read_requested.notified() => {}
            _ = tokio::time::sleep(BACKSTOP_READ) => {}
            _ = stop.cancelled() => return,
        }
        let mut pause = FIRST_RETRY_PAUSE;
        loop {
            match app.store.chain_head().await {
                Ok(head) => {
                    app.heads.advance(head.position);
                    break;
                }
                Err(error) => tracing::warn!(%error, retry_in = ?pause, "reading the chain head failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.cancelled() => return,
            }
            pause = (pause * 2).min(MAX_RETRY_PAUSE);
        }
    }
}

/// Holds this process's one listener for other processes' heads, reconnecting when it is lost;
/// ends at once where the database has no notices.
async fn listen_for_heads(app: App, stop: CancellationToken) {
    let mut pause = FALLBACK_POLL;
    loop {
        let connected = tokio::select! {
            connected = app.store.listen_for_heads() => connected,
            _ = stop.cancelled() => return,
        };
        let mut listener = match connected {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, retry_in = ?pause, "chain head listener down: polling the head meanwhile");
                if !poll_heads_for(&app, pause, &stop).await {
                    return;
                }
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
                continue;
            }
        };
        pause = FALLBACK_POLL;
        // Whatever was chained while nobody listened.
        app.heads.read_requested.notify_one();
        tracing::debug!("chain head listener connected");
        loop {
            let notice = tokio::select! {
                notice = listener.next() => notice,
                _ = stop.cancelled() => return,
            };
            match notice {
                Ok(Some(position)) => app.heads.advance(position),
                Ok(None) => {
                    tracing::warn!("chain head listener lost its connection: reconnecting");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "chain head listener failed: reconnecting");
                    break;
                }
            }
        }
        app.heads.read_requested.notify_one();
    }
}

/// The shared slow poll: asks for a read of the head every [`FALLBACK_POLL`] for `pause`.
/// Returns false if `stop` came first.
async fn poll_heads_for(app: &App, pause: Duration, stop: &CancellationToken) -> bool {
    let until = tokio::time::Instant::now() + pause;
    loop {
        app.heads.read_requested.notify_one();
        let next = (tokio::time::Instant::now() + FALLBACK_POLL).min(until);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.cancelled() => return false,
        }
        if next >= until {
            return true;
        }
    }
}
