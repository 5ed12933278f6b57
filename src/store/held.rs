//! A pooled connection kept by one user that queries back to back (the batched lead reads).
//!
//! sqlx checks every connection as it returns to its pool — on PostgreSQL a round trip, on SQLite
//! a hop to the connection's thread — so a caller that queries thousands of times a second saves
//! one check per query by keeping its connection. After an error the connection is let go, and the
//! next query takes a fresh one: a restarted database costs one failed query, as with the pool.

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};
use tokio::sync::Mutex;

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

    /// Runs `query` on the held connection (taken from the pool if none is held); lets the
    /// connection go if the query fails.
    pub async fn with<T>(
        &self,
        query: impl AsyncFnOnce(&mut DB::Connection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let mut held = self.held.lock().await;
        let connection = match held.as_mut() {
            Some(connection) => connection,
            None => held.insert(self.pool.acquire().await?),
        };
        let result = query(connection).await;
        if result.is_err() {
            held.take(); // back to the pool, which closes it if it is broken
        }
        result
    }
}
