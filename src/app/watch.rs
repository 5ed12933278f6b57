//! The stream of decisions: the entries after a cursor that match a filter, then new ones as
//! they are chained.
//!
//! Each stream has a producer task that reads the trail into a small buffer, and a consumer
//! ([`Watch`]) that the transport polls only when HTTP/2 flow control lets it send: a consumer
//! that stops reading stops the transport, which stops taking from the buffer, which stops the
//! producer. What one stream holds is therefore bounded by [`WATCH_BUFFER_BYTES`] (plus what the
//! transport holds for the client's flow-control window). A consumer that takes nothing for the
//! slow-consumer timeout while entries wait is ended (`SLOW_CONSUMER`) and its buffer freed; it
//! resumes from its last position. An idle producer waits on the process's chain head (see
//! `heads`) and reads only once the head passes what it has read.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_stream::Stream;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{App, AppError, AppResult};
use crate::domain::audit::ChainedEntry;
use crate::domain::query::{AuditField, AuditOrder, Filter, ListQuery};

/// The entries one stream holds, in bytes (about: see `entry_bytes`), beyond what HTTP/2 flow
/// control lets out to the client. The buffer is refilled once it is half empty; one entry
/// larger than all of it still passes, alone.
pub const WATCH_BUFFER_BYTES: usize = 64 * 1024;
/// Most entries read by one query: with small entries, the buffer's room would ask for more
/// than a read needs to keep a consumer busy.
const MAX_READ: usize = 64;
/// What an entry is assumed to weigh before any was read: a quarter of the buffer, so the first
/// read brings a few entries whatever their size; later reads follow the sizes seen.
const FIRST_ENTRY_BYTES_GUESS: usize = WATCH_BUFFER_BYTES / 4;
/// What an entry weighs besides its variable-length fields.
const ENTRY_OVERHEAD_BYTES: usize = 256;
/// The first pause after a failed read that may succeed if retried; it doubles up to
/// [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// The longest pause between two attempts: a database back within it is read again soon.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);
/// How long reads may keep failing before the stream ends with the error: the client then
/// reconnects, perhaps to a replica that reaches the database.
const MAX_FAILING: Duration = Duration::from_secs(60);

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchStart {
    /// After this position (0: from the first entry).
    After(i64),
    /// After the head: only entries chained from now on.
    Head,
}

/// How the server runs every watch stream.
#[derive(Clone, Debug)]
pub struct WatchTerms {
    /// A consumer that takes no entry for this long while entries wait is ended.
    pub slow_consumer_timeout: Duration,
    /// Ends every stream when the server shuts down.
    pub stop: CancellationToken,
}

/// Why a producer ended its stream; the consumer turns it into an error once it has handed out
/// what the buffer still holds.
#[derive(Debug)]
enum End {
    /// The consumer left entries waiting this long; the buffer was emptied.
    SlowConsumer { waited: Duration },
    /// The server is shutting down; the buffer was emptied.
    ShuttingDown,
    /// Reading failed, and retrying would not help (or did not, for too long).
    Failed(AppError),
}

/// What the producer and the consumer share.
struct Shared {
    /// Locked briefly by either side; never across an await.
    state: Mutex<Buffer>,
    /// Wakes the producer when the consumer takes an entry.
    taken: Notify,
}

/// The entries read and not yet handed to the transport.
#[derive(Default)]
struct Buffer {
    /// In position order, each with its [`entry_bytes`].
    entries: VecDeque<(ChainedEntry, usize)>,
    /// The sum of the entries' [`entry_bytes`].
    bytes: usize,
    /// Set once by the producer as it stops.
    end: Option<End>,
    /// The consumer, waiting for an entry or the end.
    consumer: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // A panic while holding the lock leaves a consistent buffer: nothing is half-written.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, entries: Vec<ChainedEntry>) {
        let mut buffer = self.lock();
        for entry in entries {
            let bytes = entry_bytes(&entry);
            buffer.bytes += bytes;
            buffer.entries.push_back((entry, bytes));
        }
        if let Some(consumer) = buffer.consumer.take() {
            consumer.wake();
        }
    }

    /// Ends the stream; a slow consumer's or a shutdown's buffer is emptied at once.
    fn end(&self, end: End) {
        let mut buffer = self.lock();
        if buffer.end.is_some() {
            return;
        }
        if matches!(end, End::SlowConsumer { .. } | End::ShuttingDown) {
            buffer.entries = VecDeque::new();
            buffer.bytes = 0;
        }
        buffer.end = Some(end);
        if let Some(consumer) = buffer.consumer.take() {
            consumer.wake();
        }
    }

    /// Returns once the buffer is at most half full, or `Err(waited)` if the consumer took
    /// nothing for `patience`.
    async fn room(&self, patience: Duration) -> Result<(), Duration> {
        loop {
            if self.lock().bytes <= WATCH_BUFFER_BYTES / 2 {
                return Ok(());
            }
            // The consumer stores a permit if it takes an entry before this waits.
            if tokio::time::timeout(patience, self.taken.notified())
                .await
                .is_err()
            {
                return Err(patience);
            }
        }
    }

    /// How many entries of `typical` bytes fit in the buffer's free room (at least one).
    fn entries_that_fit(&self, typical: usize) -> usize {
        let free = WATCH_BUFFER_BYTES.saturating_sub(self.lock().bytes);
        (free / typical.max(1)).clamp(1, MAX_READ)
    }
}

/// About what an entry holds in memory: its variable-length fields and a fixed overhead.
fn entry_bytes(entry: &ChainedEntry) -> usize {
    let e = &entry.entry;
    ENTRY_OVERHEAD_BYTES
        + e.body.len()
        + e.actor.len()
        + e.policy_version.len()
        + e.request_id.as_ref().map_or(0, String::len)
}

/// The consumer's side of a watch: entries in position order, then at most one error. Dropping
/// it stops the producer.
pub struct Watch {
    /// The buffer the producer fills.
    shared: Arc<Shared>,
    /// The last position handed out (or the starting cursor): where the consumer resumes.
    position: i64,
    /// The end was handed out; nothing follows.
    finished: bool,
    /// Tells the producer the consumer is gone, when dropped.
    _gone: DropGuard,
}

impl Stream for Watch {
    type Item = AppResult<ChainedEntry>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        let mut buffer = this.shared.lock();
        if let Some((entry, bytes)) = buffer.entries.pop_front() {
            buffer.bytes -= bytes;
            drop(buffer);
            this.shared.taken.notify_one();
            this.position = entry.position;
            return Poll::Ready(Some(Ok(entry)));
        }
        if let Some(end) = buffer.end.take() {
            this.finished = true;
            let resume_after = this.position;
            return Poll::Ready(Some(Err(match end {
                End::SlowConsumer { waited } => AppError::SlowConsumer { resume_after, waited },
                End::ShuttingDown => AppError::ShuttingDown { resume_after },
                End::Failed(error) => error,
            })));
        }
        buffer.consumer = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Ends the stream with an internal error if the producer stops without saying why (a panic);
/// does nothing once an end is set.
struct ProducerGuard(Arc<Shared>);

impl Drop for ProducerGuard {
    fn drop(&mut self) {
        self.0.end(End::Failed(AppError::Internal(
            "the watch producer stopped unexpectedly".into(),
        )));
    }
}

impl App {
    /// Streams the entries after `start` that match `filter`, then new ones as they are chained,
    /// until the consumer is dropped, is too slow, reading fails for good, or the server stops.
    pub async fn watch(
        &self,
        start: WatchStart,
        filter: Filter<AuditField>,
        terms: &WatchTerms,
    ) -> AppResult<Watch> {
        let cursor = match start {
            WatchStart::After(position) => position,
            WatchStart::Head => self.store.chain_head().await?.position,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(Buffer::default()),
            taken: Notify::new(),
        });
        let gone = CancellationToken::new();
        let mut query = ListQuery::new(filter, AuditOrder::Position, MAX_READ);
        query.after = Some(AuditOrder::Position.key(cursor));
        let producer = Producer {
            app: self.clone(),
            shared: shared.clone(),
            query,
            heads: self.heads.subscribe(),
            read_through: cursor,
            terms: terms.clone(),
            gone: gone.clone(),
        };
        tokio::spawn(producer.run());
        Ok(Watch {
            shared,
            position: cursor,
            finished: false,
            _gone: gone.drop_guard(),
        })
    }
}

/// One stream's reader of the trail.
struct Producer {
    /// Reads the trail through its store.
    app: App,
    /// The buffer it fills for the consumer.
    shared: Arc<Shared>,
    /// The filter, and the position of the last entry read.
    query: ListQuery<AuditField, AuditOrder>,
    /// The process's chain head.
    heads: watch::Receiver<i64>,
    /// Every matching entry up to this position has been read.
    read_through: i64,
    /// The slow-consumer timeout and the server's stop.
    terms: WatchTerms,
    /// Cancelled when the consumer is dropped.
    gone: CancellationToken,
}

/// Why a producer stopped.
enum Stop {
    /// Nobody reads any more: nothing to tell.
    ConsumerGone,
    /// The consumer is told why, after what the buffer still holds.
    Ended(End),
}

impl Producer {
    async fn run(mut self) {
        let guard = ProducerGuard(self.shared.clone());
        let Err(stop) = self.produce().await;
        if let Stop::Ended(end) = stop {
            crate::metrics::watch_stream_ended(match end {
                End::SlowConsumer { .. } => "SLOW_CONSUMER",
                End::ShuttingDown => "SHUTTING_DOWN",
                End::Failed(_) => "FAILED",
            });
            guard.0.end(end);
        }
    }

    /// Reads until the stream ends.
    async fn produce(&mut self) -> Result<Infallible, Stop> {
        // Whether entries may wait beyond what was read: true until a read comes back short.
        let mut more = true;
        let mut typical_bytes = FIRST_ENTRY_BYTES_GUESS;
        let mut failing_since: Option<Instant> = None;
        let mut pause = FIRST_RETRY_PAUSE;
        loop {
            if !more {
                let read_through = self.read_through;
                let mut heads = self.heads.clone();
                let moved = self
                    .interruptible(async move { heads.wait_for(|head| *head > read_through).await.is_ok() })
                    .await?;
                if !moved {
                    return Err(Stop::Ended(End::ShuttingDown));
                }
            }
            let shared = self.shared.clone();
            let patience = self.terms.slow_consumer_timeout;
            if let Err(waited) = self
                .interruptible(async move { shared.room(patience).await })
                .await?
            {
                tracing::info!(
                    read_through = self.read_through,
                    waited_ms = waited.as_millis() as u64,
                    "watch: the consumer took nothing while entries waited; ending its stream"
                );
                return Err(Stop::Ended(End::SlowConsumer { waited }));
            }

            let head = *self.heads.borrow_and_update();
            self.query.limit = self.shared.entries_that_fit(typical_bytes);
            let read = match self.app.store.list_audit(&self.query).await {
                Ok(mut entries) => self.app.open_texts(&mut entries).await.map(|()| entries),
                Err(error) => Err(AppError::from(error)),
            };
            match read {
                Ok(mut entries) => {
                    failing_since = None;
                    pause = FIRST_RETRY_PAUSE;
                    more = entries.len() > self.query.limit;
                    entries.truncate(self.query.limit);
                    if !more {
                        // Entries up to `head` were committed before this read began.
                        self.read_through = self.read_through.max(head);
                    }
                    if let Some(last) = entries.last() {
                        self.read_through = self.read_through.max(last.position);
                        self.query.after = Some(AuditOrder::Position.key(last.position));
                        let bytes: usize = entries.iter().map(entry_bytes).sum();
                        // Follows growth at once, shrinkage slowly: the next read stays small.
                        typical_bytes = (bytes / entries.len()).max(typical_bytes * 3 / 4);
                    }
                    self.shared.push(entries);
                }
                Err(error) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if !error.is_transient() || since.elapsed() >= MAX_FAILING {
                        tracing::warn!(%error, "watch: reading the trail failed; ending the stream");
                        return Err(Stop::Ended(End::Failed(error)));
                    }
                    tracing::warn!(%error, retry_in = ?pause, "watch: reading the trail failed; retrying");
                    self.interruptible(tokio::time::sleep(pause)).await?;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                    more = true;
                }
            }
        }
    }

    /// Waits for `event`, unless the consumer leaves or the server stops first.
    async fn interruptible<T>(&self, event: impl Future<Output = T>) -> Result<T, Stop> {
        tokio::select! {
            biased;
            _ = self.gone.cancelled() => Err(Stop::ConsumerGone),
            _ = self.terms.stop.cancelled() => Err(Stop::Ended(End::ShuttingDown)),
            happened = event => Ok(happened),
        }
    }
}
