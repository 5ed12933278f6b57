//! One write transaction on one pooled connection, which always ends in a known state: committed,
//! rolled back, or — when the database could not say which — with its connection closed and never
//! handed out again.
//!
//! sqlx's own `Transaction` counts open transactions on the client side. SQLite rolls a
//! transaction back by itself on some errors (a full disk, I/O errors); the rollback sqlx then
//! sends fails ("no transaction is active"), its count stays at one, and that connection's next
//! `begin` becomes a SAVEPOINT of a transaction nobody will commit. Here the statements are plain
//! `BEGIN` / `COMMIT` / `ROLLBACK`, and a connection whose transaction did not end cleanly —
//! including a call dropped half-way, e.g. cut at the deadline cap — is closed: the database
//! rolls back whatever it still held, and the pool opens a fresh connection for the next write.

use sqlx::pool::PoolConnection;
use sqlx::{Database, Executor, Pool};

pub struct WriteTx<DB: Database> {
    connection: PoolConnection<DB>,
    /// From just before `BEGIN` until a `COMMIT` or `ROLLBACK` succeeded: while set, dropping the
    /// transaction closes its connection.
    open: bool,
}

impl<DB: Database> WriteTx<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    /// Takes a connection from `pool` and starts a transaction with `begin` (`BEGIN`, or SQLite's
    /// `BEGIN IMMEDIATE`, which takes the write lock at once).
    pub async fn begin(pool: &Pool<DB>, begin: &'static str) -> Result<Self, sqlx::Error> {
        let connection = pool.acquire().await?;
        let mut tx = WriteTx {
            connection,
            open: true,
        };
        tx.connection.execute(begin).await?;
        Ok(tx)
    }

    /// The connection, to run the transaction's statements on.
    pub fn connection(&mut self) -> &mut DB::Connection {
        &mut self.connection
    }

    /// Commits. An error means nothing was committed as far as this process can tell.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        match self.connection.execute("COMMIT").await {
            Ok(_) => {
                self.open = false;
                Ok(())
            }
            Err(error) => {
                // A COMMIT refused with the transaction still open (SQLite on a busy or full
                // database, a deferred constraint) is rolled back here; if even that fails, the
                // connection is closed on drop.
                self.rollback_in_place().await;
                Err(error)
            }
        }
    }

    /// Rolls back what the transaction did (a write that found a conflict).
    pub async fn rollback(mut self) {
        self.rollback_in_place().await;
    }

    async fn rollback_in_place(&mut self) {
        if self.connection.execute("ROLLBACK").await.is_ok() {
            self.open = false;
        }
    }
}

impl<DB: Database> Drop for WriteTx<DB> {
    fn drop(&mut self) {
        if self.open {
            self.connection.close_on_drop();
        }
    }
}
