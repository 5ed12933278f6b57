//! Group commit for SQLite's single writer: concurrent lead writes share one transaction, so
//! that one fsync makes many of them durable.
//!
//! Every SQLite commit in WAL mode with `synchronous = FULL` waits for an fsync, and there is one
//! writer: committed one by one, writes queue behind each other's fsyncs. Here a writer task
//! takes every write queued (up to [`MAX_BATCH`]), runs each inside its own savepoint, commits
//! once, and only then answers each caller:
//!
//! - a write that conflicts (email or request id taken, stale revision) or fails is rolled back
//!   to its savepoint and answered alone; its neighbours go on;
//! - if the commit fails, or the transaction ends under the batch (SQLite rolls back by itself
//!   on a full disk or an I/O error), every write of the batch is answered with that error:
//!   nothing that was not committed is acknowledged, and a crash before the commit loses only
//!   writes nobody was told about;
//! - a caller that has gone (its call cut at the deadline) before its write's turn — including
//!   while the batch waited for the write lock — is skipped, so that a call cut short is not
//!   written afterwards.
//!
//! An import's batch ([`GroupCommit::write_batch`]) is queued as one item: its writes run in
//! order in one transaction (each in its own savepoint, so a later write sees an earlier one of
//! the same batch), never split across two.
//!
//! The queue is bounded ([`QUEUE_LENGTH`]): when the disk cannot keep up, callers wait to
//! enqueue, and a call's deadline still cuts the wait.

use sqlx::{Executor, Pool, Sqlite};
use tokio::sync::{mpsc, oneshot};

use super::sql::LeadColumns;
use super::sqlite::{classify, write_new_rows, write_rows};
use super::tx::WriteTx;
use super::{IdempotencyRecord, LeadWrite, StoreError, StoreResult, WriteOutcome};
use crate::domain::audit::SealedEntry;

/// The most writes one transaction takes: enough to share an fsync widely, few enough that the
/// writer lock is not held for long.
pub const MAX_BATCH: usize = 256;

/// Writes waiting for the writer, at most.
pub const QUEUE_LENGTH: usize = 4096;

/// A lead write that owns what it binds, so it can wait in the queue.
pub struct PreparedWrite {
    pub lead: LeadColumns,
    pub entries: Vec<SealedEntry>,
    pub idempotency: Option<IdempotencyRecord>,
    /// `None`: insert a new lead; else update it if still at this revision.
    pub expected_revision: Option<i64>,
    /// See [`LeadWrite::unless_suppressed`].
    pub unless_suppressed: Vec<[u8; 32]>,
}

impl PreparedWrite {
    pub fn of(write: LeadWrite<'_>, expected_revision: Option<i64>) -> Self {
        Self {
            lead: LeadColumns::of(write.lead),
            entries: write.entries.to_vec(),
            idempotency: write.idempotency.cloned(),
            expected_revision,
            unless_suppressed: write.unless_suppressed.to_vec(),
        }
    }
}

/// Writes in the queue (one, or an import's batch) and the caller waiting for their outcomes.
struct Queued {
    writes: Vec<PreparedWrite>,
    reply: oneshot::Sender<Vec<StoreResult<WriteOutcome>>>,
}

/// The handle callers enqueue through; the writer task ends when the last handle is dropped.
pub struct GroupCommit {
    queue: mpsc::Sender<Queued>,
}

impl GroupCommit {
    /// Starts the writer task on `writer` (a pool of one connection).
    pub fn start(writer: Pool<Sqlite>) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE_LENGTH);
        tokio::spawn(run(writer, receiver));
        Self { queue }
    }

    /// Writes in the next transaction; answers once it committed (or failed).
    pub async fn write(&self, write: PreparedWrite) -> StoreResult<WriteOutcome> {
        self.write_batch(vec![write])
            .await?
            .pop()
            .unwrap_or_else(|| Err(writer_gone()))
    }

    /// Writes all of `writes`, in order, in the next transaction; an outcome per write, once it
    /// committed (or failed).
    pub async fn write_batch(
        &self,
        writes: Vec<PreparedWrite>,
    ) -> StoreResult<Vec<StoreResult<WriteOutcome>>> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Queued { writes, reply })
            .await
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the database writer has stopped".into())
}

async fn run(writer: Pool<Sqlite>, mut receiver: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        batch.retain(|queued: &Queued| !queued.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let mut outcomes = commit(&writer, &batch).await.into_iter();
        crate::metrics::group_committed(batch.iter().map(|q| q.writes.len()).sum());
        for queued in batch.drain(..) {
            let answers = outcomes.by_ref().take(queued.writes.len()).collect();
            // A caller that has gone since learns nothing; what committed stays committed.
            let _ = queued.reply.send(answers);
        }
    }
}

/// One transaction for the batch: an outcome per write (of every queued item, flattened), in
/// order.
async fn commit(writer: &Pool<Sqlite>, batch: &[Queued]) -> Vec<StoreResult<WriteOutcome>> {
    let count: usize = batch.iter().map(|q| q.writes.len()).sum();
    let every = |error: StoreError| (0..count).map(|_| Err(error.clone())).collect();
    let mut tx = match WriteTx::begin(writer, "BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(error) => return every(classify(error)),
    };
    // A write alone needs no savepoint: the transaction is its unit.
    let savepoints = count > 1;
    let mut outcomes = Vec::with_capacity(count);
    for queued in batch {
        let together = match write_together(&mut tx, queued).await {
            Ok(together) => together,
            Err(error) => {
                tx.rollback().await;
                return every(error);
            }
        };
        for (write, together) in queued.writes.iter().zip(together) {
            // Checked again now that the writer lock is held, which may have taken a while.
            if queued.reply.is_closed() {
                outcomes.push(Err(StoreError::Timeout("the call ended before its write".into())));
                continue;
            }
            if together {
                outcomes.push(Ok(WriteOutcome::Written));
                continue;
            }
            if savepoints && let Err(error) = tx.connection().execute("SAVEPOINT write").await {
                tx.rollback().await;
                return every(classify(error));
            }
            let outcome = write_rows(tx.connection(), write).await;
            let keep = matches!(outcome, Ok(None));
            if savepoints {
                // Undo a write that conflicted or failed; if the transaction itself is gone
                // (SQLite rolled it back), nothing of the batch survives: all fail alike.
                let end = if keep {
                    "RELEASE write"
                } else {
                    "ROLLBACK TO write; RELEASE write"
                };
                if let Err(error) = tx.connection().execute(end).await {
                    tx.rollback().await;
                    return every(outcome.err().unwrap_or_else(|| classify(error)));
                }
            }
            outcomes.push(outcome.map(|conflict| conflict.unwrap_or(WriteOutcome::Written)));
        }
    }
    if !outcomes.iter().any(|o| matches!(o, Ok(WriteOutcome::Written))) {
        tx.rollback().await;
        return outcomes;
    }
    match tx.commit().await {
        Ok(()) => outcomes,
        Err(error) => every(classify(error)),
    }
}

/// Writes the new leads of an import's batch together ([`write_new_rows`]), in a savepoint:
/// which of the item's writes are done (all its new leads, or none when one of them conflicts
/// or fails: then each is written alone, after the item's others in order, to answer each).
/// Written first: a later write of the batch may update a lead an earlier one creates, and
/// none depends on an update that comes before it. `Err`: the transaction itself is gone.
async fn write_together(tx: &mut WriteTx<Sqlite>, queued: &Queued) -> StoreResult<Vec<bool>> {
    let new: Vec<&PreparedWrite> = queued
        .writes
        .iter()
        .filter(|w| w.expected_revision.is_none())
        .collect();
    let mut together = vec![false; queued.writes.len()];
    if new.len() < 2 || queued.reply.is_closed() {
        return Ok(together);
    }
    tx.connection()
        .execute("SAVEPOINT together")
        .await
        .map_err(classify)?;
    let written = matches!(write_new_rows(tx.connection(), &new).await, Ok(true));
    let end = if written {
        "RELEASE together"
    } else {
        "ROLLBACK TO together; RELEASE together"
    };
    tx.connection().execute(end).await.map_err(classify)?;
    if written {
        for (done, write) in together.iter_mut().zip(&queued.writes) {
            *done = write.expected_revision.is_none();
        }
    }
    Ok(together)
}
