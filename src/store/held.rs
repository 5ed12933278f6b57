//! A pooled connection kept by one user that queries back to back (the batched lead reads).
//!
//! sqlx checks every connection as it returns to its pool — on PostgreSQL a round trip, on SQLite
//! a hop to the connection's thread — so a caller that queries thousands of times a second saves
//! one check per query by keeping its connection. After an error the connection is let go, and the
//! next query takes a fresh one: a restarted database costs one failed query, as with the pool.

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

pub struct HeldConnection<DB: Database> {
    pool: Pool<DB>,
    held: Mutex<Option<PoolConnection<DB>>>,
}

impl<DB: Database> HeldConnection<DB> {
    pub fn new(pool: Pool<DB>) -> Self {
        Self {
            pool,
            held: Mutex::new(None),
        }
    }

    /// The held connection, taken from the pool if none is held. After a failed query on it,
    /// call [`HeldConnection::let_go`].
    pub async fn connection(&self) -> Result<MappedMutexGuard<'_, PoolConnection<DB>>, sqlx::Error> {
        let mut held = self.held.lock().await;
        if held.is_none() {
            *held = Some(self.pool.acquire().await?);
        }
        Ok(MutexGuard::map(held, |c| c.as_mut().expect("acquired above")))
    }

    /// Gives the connection back to the pool (which closes it if it is broken).
    pub async fn let_go(&self) {
        self.held.lock().await.take();
    }
}
