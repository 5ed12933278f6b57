//! leadgate's database, read as another client would: the sequencer's lag, a real lead's
//! documents for the write baselines.

use sqlx::Connection;

const OLDEST: &str = "SELECT record_time FROM audit_inbox ORDER BY id LIMIT 1";

/// A read-only connection to leadgate's database.
pub enum Reader {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Reader {
    pub async fn open(url: &str) -> Result<Reader, String> {
        if url.starts_with("sqlite:") {
            let options: sqlx::sqlite::SqliteConnectOptions =
                url.parse().map_err(|e: sqlx::Error| e.to_string())?;
            let conn = sqlx::SqliteConnection::connect_with(&options.read_only(true))
                .await
                .map_err(|e| e.to_string())?;
            Ok(Reader::Sqlite(conn))
        } else {
            let conn = sqlx::PgConnection::connect(url)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Reader::Postgres(conn))
        }
    }

    /// The record time (µs since the epoch) of the oldest entry not chained yet.
    pub async fn oldest(&mut self) -> Result<Option<i64>, String> {
        match self {
            Reader::Sqlite(c) => sqlx::query_scalar(OLDEST).fetch_optional(c).await,
            Reader::Postgres(c) => sqlx::query_scalar(OLDEST).fetch_optional(c).await,
        }
        .map_err(|e| e.to_string())
    }

    /// The text of the first row's first column.
    pub async fn text(&mut self, sql: &'static str) -> Result<String, String> {
        match self {
            Reader::Sqlite(c) => sqlx::query_scalar(sql).fetch_one(c).await,
            Reader::Postgres(c) => sqlx::query_scalar(sql).fetch_one(c).await,
        }
        .map_err(|e| e.to_string())
    }
}
