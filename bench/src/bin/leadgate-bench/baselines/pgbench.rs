//! pgbench running leadgate's own write of a new lead: the PostgreSQL store's one statement
//! ([`leadgate::store::statements::new_lead_write`]: the lead, its idempotency record and its
//! audit entry), prepared (`-M prepared`), with `synchronous_commit=on`, at the concurrency of
//! leadgate's pool, into a scratch database of its own (migrated as leadgate's, with no server
//! attached: no sweeper, no sequencer touches its rows). Once one write per transaction (what one
//! SubmitLead commits), once [`BATCH`] writes per transaction (the limit of the machine for these
//! writes).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use leadgate::store::statements::{Insert, new_lead_write};
use sqlx::{Connection, Executor};

use super::Template;
use crate::Args;
use crate::measure::{Figures, summarize};
use crate::servers::{Scratch, Server};

/// Writes per transaction in the batched baselines.
pub const BATCH: usize = 32;

/// pgbench's threads.
const THREADS: u32 = 2;

/// The setting forced on pgbench's sessions (leadgate's pool sets the same on its connections).
pub const SYNCHRONOUS_COMMIT: &str = "on";

/// The lead id of pgbench's current write: increasing, as leadgate's time-ordered ids are
/// (random ids would scatter index writes). `nextval` in the lead's insert, which the statement
/// runs first; `currval` in the others.
fn row_id(next: bool) -> String {
    let call = if next { "nextval" } else { "currval" };
    format!("('00000000-0000-7000-8000-' || lpad(to_hex({call}('pgbench_keys')), 12, '0'))::uuid")
}

/// A 32-byte value, as the fingerprint and the seal are.
const BYTES_32: &str = "'\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea";

/// Each column's value: a new id, email and request id per write; the documents of a real lead
/// (the pgbench variables `:document`, `:body`, `:response`, sent as parameters as leadgate
/// sends its own); no SLA due time, so no sweeper would ever pick the lead up.
fn value(insert: &Insert, column: &str) -> String {
    let value = match (insert.table, column) {
        ("leads", "id") => return row_id(true),
        ("leads", "email") => "'pgbench-' || currval('pgbench_keys') || '@example.com'",
        ("leads", "state") | ("audit_inbox", "state_after") => "'MARKETING_QUALIFIED'",
        ("leads" | "audit_inbox", "source_channel") => "'WEBSITE'",
        ("leads", "fit_grade") => "'A'",
        ("leads", "combined_points") => "5500",
        ("leads", "revision") => "1",
        ("leads", "sla_due_time" | "revisit_time") | ("audit_inbox", "state_before") => "NULL",
        ("leads", "document") => ":document",
        ("leads", "company_domain") => "'example.com'",
        ("leads", "company_name_folded" | "source_campaign" | "external_reference") => "''",
        ("idempotency_keys", "principal") | ("audit_inbox", "actor") => "'pgbench'",
        ("idempotency_keys" | "audit_inbox", "request_id") => "'pgbench-' || currval('pgbench_keys')",
        ("idempotency_keys", "method") => "'SubmitLead'",
        ("idempotency_keys", "fingerprint") | ("audit_inbox", "seal") => BYTES_32,
        ("idempotency_keys", "response") => ":response",
        ("audit_inbox", "lead_id") => return row_id(false),
        ("audit_inbox", "kind") => "'LEAD_SUBMITTED'",
        ("audit_inbox", "policy_version") => "'v'",
        ("audit_inbox", "body") => ":body",
        ("audit_inbox", "seal_key_id") => "'bench'",
        // Times, in microseconds.
        _ => "0",
    };
    value.to_string()
}

/// The size of leadgate's pool: the server's `--db-max-connections`, as the benchmark's servers
/// run (the default, or `LEADGATE_DB_MAX_CONNECTIONS`, which they inherit).
pub fn leadgate_pool_size() -> u32 {
    use clap::Parser;
    let cli = leadgate::cli::args::Cli::parse_from(["leadgate", "serve"]);
    if let leadgate::cli::args::Command::Serve(serve) = cli.command {
        serve.database.db_max_connections
    } else {
        unreachable!("`leadgate serve` parses as Serve")
    }
}

/// Both pgbench baselines: one write per transaction, and [`BATCH`] per transaction.
pub struct PgBaselines {
    pub one: Result<Figures, String>,
    pub batched: Result<Figures, String>,
    pub clients: u32,
}

/// Runs both baselines in a scratch database on the server of `admin_url`, then drops it.
pub async fn pgbench(admin_url: &str, template: &Template, args: &Args) -> Result<PgBaselines, String> {
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|e| e.to_string())?;
    let name = format!("leadgate_pgbench_{}", std::process::id());
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .map_err(|e| e.to_string())?;
    let options: sqlx::postgres::PgConnectOptions =
        admin_url.parse().map_err(|e: sqlx::Error| e.to_string())?;
    let url = sqlx::ConnectOptions::to_url_lossy(&options.clone().database(&name)).to_string();
    let ran = async {
        // leadgate's migrations, by a leadgate server that is gone before pgbench starts.
        let migrating = Server::leadgate(&url);
        migrating.serving(Instant::now()).await;
        drop(migrating);
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .map_err(|e| e.to_string())?;
        conn.execute("CREATE SEQUENCE pgbench_keys")
            .await
            .map_err(|e| e.to_string())?;
        let clients = leadgate_pool_size();
        let statement = new_lead_write(value);
        let scratch = options.clone().database(&name);
        let one = run(&scratch, &format!("{statement};\n"), 1, clients, template, args).await;
        settle(&url).await;
        let batch = format!("BEGIN;\n{}COMMIT;\n", format!("{statement};\n").repeat(BATCH));
        let batched = run(&scratch, &batch, BATCH, clients, template, args).await;
        Ok(PgBaselines {
            one,
            batched,
            clients,
        })
    };
    let result = ran.await;
    admin
        .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
        .await
        .map_err(|e| e.to_string())?;
    result
}

/// One pgbench run of `script` (`writes` lead writes per transaction) by `clients` clients;
/// its per-transaction log gives the latencies, counted after the same warm-up as the others.
/// The figures' rate is in writes per second, their latencies per transaction.
async fn run(
    options: &sqlx::postgres::PgConnectOptions,
    script: &str,
    writes: usize,
    clients: u32,
    template: &Template,
    args: &Args,
) -> Result<Figures, String> {
    let dir = Scratch::new(&format!("pgbench-{writes}"));
    let path = dir.0.join("write.sql");
    std::fs::write(&path, script).map_err(|e| e.to_string())?;
    let seconds = (args.duration + args.warmup).as_secs().max(1).to_string();
    let started = std::time::SystemTime::now();
    let output = Command::new("pgbench")
        .env("PGOPTIONS", format!("-c synchronous_commit={SYNCHRONOUS_COMMIT}"))
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &clients.to_string(),
            "-j",
            &THREADS.to_string(),
        ])
        .args(["-T", &seconds, "-l", "--log-prefix"])
        .arg(dir.0.join("tx"))
        .arg("-D")
        .arg(format!("document={}", template.document))
        .arg("-D")
        .arg(format!("body={}", template.body))
        .arg("-D")
        .arg(format!("response={}", template.response))
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
    let mut figures = from_log(&dir.0, started + args.warmup, args.duration)?;
    figures.per_second *= writes as f64;
    Ok(figures)
}

/// The latencies of the transactions that ended after `measure_from`, from pgbench's logs.
fn from_log(dir: &Path, measure_from: std::time::SystemTime, duration: Duration) -> Result<Figures, String> {
    // Log lines: client transaction latency_us script epoch_s epoch_us (the transaction's end).
    let (mut latencies, mut last_end) = (Vec::new(), measure_from);
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
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
    let measured = last_end.duration_since(measure_from).unwrap_or(duration);
    Ok(summarize(latencies, 0, measured))
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
