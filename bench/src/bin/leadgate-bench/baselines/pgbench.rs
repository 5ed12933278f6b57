//! pgbench running the INSERTs of one SubmitLead: the idempotency record, the lead and its
//! audit entry, in one transaction. The statements are the store's own
//! ([`leadgate::store::statements`]): only the values are the benchmark's, by column, and a
//! column it does not know takes its default.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use leadgate::store::statements::{AUDIT_INBOX, IDEMPOTENCY_KEYS, LEADS};
use sqlx::{Connection, Executor};

use crate::Args;
use crate::measure::{Figures, summarize};
use crate::servers::Scratch;

/// The id of pgbench's current row: increasing, as leadgate's time-ordered ids are.
const ROW_ID: &str = "('00000000-0000-7000-8000-' || lpad(to_hex(currval('pgbench_keys')), 12, '0'))::uuid";

/// A text as a dollar-quoted literal.
fn literal(text: &str) -> String {
    format!("$doc${text}$doc$")
}

/// The idempotency record's values: a new request id per transaction, a real stored answer.
fn idempotency_value(column: &str, response: &str) -> String {
    match column {
        "principal" => "'pgbench'".into(),
        "request_id" => "'pgbench-' || nextval('pgbench_keys')".into(),
        "method" => "'SubmitLead'".into(),
        "fingerprint" => format!("'\\x{}'", "00".repeat(32)),
        "response" => literal(response),
        "create_time" => "0".into(),
        _ => "DEFAULT".into(),
    }
}

/// The lead's values: a new id and email per transaction, a real lead's document.
fn lead_value(column: &str, document: &str) -> String {
    match column {
        "id" => ROW_ID.into(),
        "email" => "'pgbench-' || currval('pgbench_keys') || '@example.com'".into(),
        "state" => "'MARKETING_QUALIFIED'".into(),
        "source_channel" => "'WEBSITE'".into(),
        "fit_grade" => "'A'".into(),
        "combined_points" => "5500".into(),
        "create_time" | "update_time" => "0".into(),
        "revision" | "sla_due_time" => "1".into(),
        "revisit_time" => "NULL".into(),
        "document" => literal(document),
        _ => "DEFAULT".into(),
    }
}

/// The audit entry's values: a real submission's body, unsealed.
fn entry_value(column: &str, body: &str) -> String {
    match column {
        "lead_id" => ROW_ID.into(),
        "kind" => "'LEAD_SUBMITTED'".into(),
        "record_time" => "0".into(),
        "actor" | "request_id" => "'pgbench'".into(),
        "state_before" => "NULL".into(),
        "state_after" => "'MARKETING_QUALIFIED'".into(),
        "source_channel" => "'WEBSITE'".into(),
        "policy_version" => "'v'".into(),
        "body" => literal(body),
        _ => "DEFAULT".into(),
    }
}

/// Deletes the leads and request ids pgbench inserted: their documents are copies of one real
/// lead, which the next scenarios would otherwise read and update as if it were thousands.
/// (Their audit entries stay: the trail is append-only, and nothing below reads it.)
pub async fn forget_pgbench_rows(url: &str) {
    let forgotten = async {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        conn.execute("DELETE FROM leads WHERE email LIKE 'pgbench-%'")
            .await?;
        conn.execute("DELETE FROM idempotency_keys WHERE principal = 'pgbench'")
            .await
    };
    forgotten.await.expect("pgbench's rows deleted");
}

/// Vacuums and checkpoints the PostgreSQL database after a burst of inserts, so that the next
/// scenario does not pay for the last one's autovacuum and checkpoint. (CHECKPOINT needs a
/// superuser or pg_checkpoint; without, the run goes on unsettled.)
pub async fn settle(url: &str) {
    let settled = async {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        conn.execute("VACUUM ANALYZE").await?;
        conn.execute("CHECKPOINT").await
    };
    if let Err(e) = settled.await {
        eprintln!("PostgreSQL not settled before the next scenario: {e}");
    }
}

/// pgbench running the INSERTs of one SubmitLead, with rows of the sizes leadgate writes and ids
/// in increasing order as leadgate's time-ordered ones (random ids would scatter index writes);
/// its per-transaction log gives the latencies, counted after the same warm-up as the others.
pub async fn pgbench(url: &str, args: &Args) -> Result<Figures, String> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let document: String = sqlx::query_scalar("SELECT document FROM leads LIMIT 1")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let body: String = sqlx::query_scalar("SELECT body FROM audit_log WHERE kind = 'LEAD_SUBMITTED' LIMIT 1")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let response: String = sqlx::query_scalar("SELECT response FROM idempotency_keys LIMIT 1")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    conn.execute("CREATE SEQUENCE IF NOT EXISTS pgbench_keys")
        .await
        .map_err(|e| e.to_string())?;
    let script = format!(
        "\\set unused 0\nBEGIN;\n{};\n{};\n{};\nCOMMIT;\n",
        IDEMPOTENCY_KEYS.with_values(|column| idempotency_value(column, &response)),
        LEADS.with_values(|column| lead_value(column, &document)),
        AUDIT_INBOX.with_values(|column| entry_value(column, &body)),
    );
    let dir = Scratch::new("pgbench");
    let path: PathBuf = dir.0.join("submit.sql");
    std::fs::write(&path, script).map_err(|e| e.to_string())?;
    let options: sqlx::postgres::PgConnectOptions = url.parse().map_err(|e: sqlx::Error| e.to_string())?;
    let seconds = (args.duration + args.warmup).as_secs().max(1).to_string();
    let started = std::time::SystemTime::now();
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &args.concurrency.to_string(),
            "-j",
            "2",
            "-T",
            &seconds,
            "-l",
            "--log-prefix",
        ])
        .arg(dir.0.join("tx"))
        .arg("-f")
        .arg(&path)
        .args([
            "-h",
            options.get_host(),
            "-p",
            &options.get_port().to_string(),
            "-U",
            options.get_username(),
            options.get_database().unwrap_or("postgres"),
        ])
        .output()
        .map_err(|e| format!("pgbench: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "pgbench said: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // Log lines: client transaction latency_us script epoch_s epoch_us (the transaction's end).
    let measure_from = started + args.warmup;
    let (mut latencies, mut last_end) = (Vec::new(), measure_from);
    for entry in std::fs::read_dir(&dir.0).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("tx"))
        {
            continue;
        }
        for line in std::fs::read_to_string(&path).map_err(|e| e.to_string())?.lines() {
            let fields: Vec<u64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
            if let [_, _, latency, _, seconds, micros] = fields[..] {
                let ended =
                    std::time::UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_micros(micros);
                if ended >= measure_from + Duration::from_micros(latency) {
                    latencies.push(latency as u32);
                    last_end = last_end.max(ended);
                }
            }
        }
    }
    if latencies.is_empty() {
        return Err("pgbench logged no transactions".into());
    }
    let measured = last_end.duration_since(measure_from).unwrap_or(args.duration);
    Ok(summarize(latencies, 0, measured))
}
