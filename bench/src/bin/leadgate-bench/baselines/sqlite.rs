//! The SQLite store's write of a new lead, as fast as one writer goes: its statements (the
//! idempotency record, the lead, its audit entry: [`leadgate::store::statements`]), through the
//! SQLite leadgate links (sqlx's bundled libsqlite3-sys) with the store's settings (WAL,
//! `synchronous=FULL`), on a scratch file migrated as leadgate's, with no server attached. Once
//! one write per `BEGIN IMMEDIATE` transaction (what one SubmitLead commits), once
//! [`super::pgbench::BATCH`] per transaction.

use std::str::FromStr;
use std::time::{Duration, Instant};

use leadgate::store::statements::{AUDIT_INBOX, IDEMPOTENCY_KEYS, LEADS};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Executor, SqliteConnection};

use super::Template;
use super::pgbench::BATCH;
use crate::Args;
use crate::measure::{Figures, summarize};
use crate::servers::{Scratch, Server};

/// Both SQLite baselines: one write per transaction, and [`BATCH`] per transaction.
pub struct SqliteBaselines {
    pub one: Result<Figures, String>,
    pub batched: Result<Figures, String>,
}

/// The store's settings for a database file.
fn options(url: &str) -> Result<SqliteConnectOptions, String> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(|e| e.to_string())?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true))
}

/// Runs both baselines, each on a scratch file of its own.
pub async fn sqlite_baselines(template: &Template, args: &Args) -> SqliteBaselines {
    SqliteBaselines {
        one: writes(template, args, 1).await,
        batched: writes(template, args, BATCH).await,
    }
}

/// One writer committing `per_tx` lead writes per transaction for warm-up + duration. The
/// figures' rate is in writes per second, their latencies per transaction.
async fn writes(template: &Template, args: &Args, per_tx: usize) -> Result<Figures, String> {
    let dir = Scratch::new(&format!("sqlite-baseline-{per_tx}"));
    let url = format!("sqlite://{}", dir.0.join("baseline.db").display());
    // leadgate's migrations, by a leadgate server that is gone before the writes start.
    let migrating = Server::leadgate(&url);
    migrating.serving(Instant::now()).await;
    drop(migrating);
    let mut conn = SqliteConnection::connect_with(&options(&url)?)
        .await
        .map_err(|e| e.to_string())?;
    let (lead_sql, entry_sql, idempotency_sql) = (LEADS.sql(), AUDIT_INBOX.sql(), IDEMPOTENCY_KEYS.sql());
    let start = Instant::now();
    let (measure_from, end) = (start + args.warmup, start + args.warmup + args.duration);
    let (mut latencies, mut n) = (Vec::new(), 0u64);
    let failed = |e: sqlx::Error| e.to_string();
    loop {
        let began = Instant::now();
        if began >= end {
            break;
        }
        conn.execute("BEGIN IMMEDIATE").await.map_err(failed)?;
        for _ in 0..per_tx {
            n += 1;
            // Increasing ids, as leadgate's time-ordered ones.
            let id = uuid_bytes(n);
            let request_id = format!("baseline-{n}");
            // In the store's order: the idempotency record, the lead, its audit entry.
            let idempotency = sqlx::query(&idempotency_sql)
                .bind("baseline")
                .bind(&request_id)
                .bind("SubmitLead")
                .bind([0u8; 32].as_slice())
                .bind(&template.response)
                .bind(0i64);
            conn.execute(idempotency).await.map_err(failed)?;
            let lead = sqlx::query(&lead_sql)
                .bind(id.as_slice())
                .bind(format!("baseline-{n}@example.com"))
                .bind("MARKETING_QUALIFIED")
                .bind("WEBSITE")
                .bind("A")
                .bind(5500i64)
                .bind(0i64)
                .bind(0i64)
                .bind(1i64)
                .bind(None::<i64>)
                .bind(None::<i64>)
                .bind(&template.document)
                .bind("example.com")
                .bind("")
                .bind("")
                .bind("");
            conn.execute(lead).await.map_err(failed)?;
            let entry = sqlx::query(&entry_sql)
                .bind(id.as_slice())
                .bind("LEAD_SUBMITTED")
                .bind(0i64)
                .bind("baseline")
                .bind(&request_id)
                .bind(None::<&str>)
                .bind("MARKETING_QUALIFIED")
                .bind("WEBSITE")
                .bind("v")
                .bind(&template.body)
                .bind("bench")
                .bind([0u8; 32].as_slice());
            conn.execute(entry).await.map_err(failed)?;
        }
        conn.execute("COMMIT").await.map_err(failed)?;
        if began >= measure_from {
            latencies.push(began.elapsed().as_micros() as u32);
        }
    }
    let _ = conn.close().await;
    let mut figures = summarize(latencies, 0, args.duration);
    figures.per_second *= per_tx as f64;
    Ok(figures)
}

/// A UUID's 16 bytes (as sqlx binds a `Uuid` to SQLite) for the `n`th write: a version-7 shape,
/// increasing with `n`.
fn uuid_bytes(n: u64) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    bytes[8..].copy_from_slice(&(0x8000_0000_0000_0000 | n).to_be_bytes());
    bytes
}
