//! Notices of the chain's new head between processes: the PostgreSQL sequencer sends `NOTIFY`
//! with the last position it chained when its transaction commits, and each process keeps one
//! [`HeadListener`] on its own connection. SQLite has no such notices: one process chains and
//! watches, and wakes its watchers in memory.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use super::postgres::classify;
use super::{StoreError, StoreResult};

/// The channel the sequencer notifies on; the payload is the new head position, in decimal.
pub const CHAIN_HEAD_CHANNEL: &str = "leadgate_chain_head";
/// How long opening the listener's connection may take: the caller polls meanwhile, and retries.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One process's subscription to [`CHAIN_HEAD_CHANNEL`], on a connection of its own.
pub struct HeadListener {
    /// sqlx's listener, over a pool of one connection of its own.
    listener: PgListener,
}

impl HeadListener {
    /// Opens a connection (outside the store's pool, so listening never takes a connection from
    /// the calls) and listens.
    pub(super) async fn connect(options: &PgConnectOptions) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options.clone().application_name("leadgate-listener"))
            .await
            .map_err(classify)?;
        let mut listener = PgListener::connect_with(&pool).await.map_err(classify)?;
        // A lost connection is reported at once, not repaired behind the caller's back: the
        // caller reads the head itself, since notices sent meanwhile are lost.
        listener.eager_reconnect(false);
        listener.ignore_pool_close_event(true);
        listener.listen(CHAIN_HEAD_CHANNEL).await.map_err(classify)?;
        Ok(Self { listener })
    }

    /// The next head position notified; `Ok(None)` once the connection is lost (notices may
    /// have been missed). Dropping the future before it completes may lose the connection's
    /// place: only drop it to stop listening.
    pub async fn next(&mut self) -> StoreResult<Option<i64>> {
        let Some(notice) = self.listener.try_recv().await.map_err(classify)? else {
            return Ok(None);
        };
        notice.payload().parse().map(Some).map_err(|_| {
            StoreError::Corrupt(format!(
                "a chain head notice that is not a position: {:?}",
                notice.payload()
            ))
        })
    }
}
