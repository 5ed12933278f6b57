//! The audit trail at scale (targets: verify 1 million entries < 30 s; a filtered page of 50
//! over 1 million entries < 50 ms), on SQLite and, when it answers, PostgreSQL.
//!
//! `cargo bench --bench audit` seeds a fresh database with realistic entries (chained by the
//! real sequencer), then times the real use cases next to a baseline measured in the same run:
//! a plain scan of the same rows for verification, an unfiltered first page for pages.
//! `LEADGATE_BENCH_AUDIT_ENTRIES` changes the size (default 1,000,000);
//! `LEADGATE_BENCH_POSTGRES_URL` the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres);
//! `LEADGATE_BENCH_KEEP=1` keeps the seeded databases (to look at query plans).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use leadgate::app::{App, AppSettings};
use leadgate::domain::audit::{AuditBody, AuditEntry, AuditKind, encode_body};
use leadgate::domain::facts::{Points, Reason, Scores};
use leadgate::domain::lifecycle::LeadState;
use leadgate::domain::policy::Policy;
use leadgate::domain::query::{AuditField, AuditOrder, parse_list};
use leadgate::domain::values::{FitGrade, LeadId, SourceChannel};
use leadgate::store::{ConnectOptions, Store};
use sqlx::{Connection, Executor};

const ENTRIES_PER_LEAD: usize = 10;

fn entry(i: usize) -> AuditEntry {
    let lead = i / ENTRIES_PER_LEAD;
    let step = i % ENTRIES_PER_LEAD;
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(i as i64 * 3);
    let kind = match step {
        0 => AuditKind::LeadSubmitted,
        1..=5 => AuditKind::EngagementRecorded,
        6 => AuditKind::ContactAttemptRecorded,
        7 if lead.is_multiple_of(50) => AuditKind::SlaBreached,
        7 => AuditKind::ContactAttemptRecorded,
        8 => AuditKind::DiscoveryCallRecorded,
        _ => AuditKind::EngagementRecorded,
    };
    let (before, after) = match step {
        0 => (None, LeadState::Lead),
        1..=4 => (Some(LeadState::Lead), LeadState::Lead),
        5 => (Some(LeadState::Lead), LeadState::MarketingQualified),
        6 | 7 => (Some(LeadState::MarketingQualified), LeadState::MarketingQualified),
        8 => (Some(LeadState::MarketingQualified), LeadState::SalesQualified),
        _ => (Some(LeadState::SalesQualified), LeadState::SalesQualified),
    };
    let scores = Scores {
        fit: Points(3700),
        grade: FitGrade::A,
        engagement: Points(1000 + step as i64 * 300),
        combined: Points(4700 + step as i64 * 300),
        threshold: Points(5000),
        evaluated_at: at,
    };
    let body = AuditBody {
        inputs: serde_json::json!({ "events": [{ "kind": "CASE_STUDY_DOWNLOAD", "occurred_at": at, "subject": "acme-case" }] }),
        scores_before: Some(scores.clone()),
        scores_after: Some(scores),
        reasons: vec![Reason::new(
            "score.threshold",
            "combined score 50.00 reached the threshold 50.00",
        )],
        ..AuditBody::default()
    };
    AuditEntry {
        lead: Some(LeadId::from_uuid(uuid::Uuid::from_u128(lead as u128 + 1))),
        kind,
        recorded_at: at,
        actor: ["web-forms", "crm-sync", "dialer", "engine"][lead % 4].into(),
        request_id: Some(format!("req-{i}")),
        state_before: before,
        state_after: Some(after),
        source_channel: Some(SourceChannel::ALL[lead % SourceChannel::ALL.len()]),
        policy_version: "149c38d6cd438fff".into(),
        body: encode_body(&body),
    }
}

fn push_entries<DB: sqlx::Database>(builder: &mut sqlx::QueryBuilder<'_, DB>, range: std::ops::Range<usize>)
where
    for<'q> Option<uuid::Uuid>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    builder.push(
        "INSERT INTO audit_inbox (lead_id, kind, record_time, actor, request_id, state_before, state_after, source_channel, policy_version, body) ",
    );
    builder.push_values(range.map(entry), |mut row, e| {
        row.push_bind(e.lead.map(|l| l.as_uuid()))
            .push_bind(e.kind.as_str().to_owned())
            .push_bind(e.recorded_at.timestamp_micros())
            .push_bind(e.actor)
            .push_bind(e.request_id)
            .push_bind(e.state_before.map(|s| s.as_str().to_owned()))
            .push_bind(e.state_after.map(|s| s.as_str().to_owned()))
            .push_bind(e.source_channel.map(|s| s.as_str().to_owned()))
            .push_bind(e.policy_version)
            .push_bind(e.body);
    });
}

fn keys() -> leadgate::domain::audit::AuditKeys {
    leadgate::domain::audit::AuditKeys::parse("bench:YmVuY2gtYXVkaXQta2V5LWJlbmNoLWF1ZGl0LWtleS1iZW5jaA==")
        .unwrap()
}

/// The seeded rows are written unsealed, straight into the inbox: the sequencer takes them as it
/// would during an upgrade, and seals their links.
fn seeding() -> leadgate::domain::audit::Admission<'static> {
    static KEYS: std::sync::LazyLock<leadgate::domain::audit::AuditKeys> = std::sync::LazyLock::new(keys);
    let now = chrono::Utc::now();
    leadgate::domain::audit::Admission {
        keys: &KEYS,
        accept_unsealed_until: Some(now + chrono::Duration::days(1)),
        now,
    }
}

/// Fills the inbox, then lets the store's sequencer chain everything.
async fn seed(url: &str, store: &Arc<dyn Store>, total: usize) -> Duration {
    let started = Instant::now();
    const ROWS: usize = 1000;
    let mut done = 0;
    while done < total {
        let n = ROWS.min(total - done);
        if url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            for chunk in (done..done + n).step_by(100) {
                let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new("");
                push_entries(&mut b, chunk..(chunk + 100).min(done + n));
                tx.execute(b.build()).await.unwrap();
            }
            tx.commit().await.unwrap();
        } else {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let mut b = sqlx::QueryBuilder::<sqlx::Postgres>::new("");
            push_entries(&mut b, done..done + n);
            conn.execute(b.build()).await.unwrap();
        }
        done += n;
        if done % 50_000 == 0 {
            while store.sequence(50_000, &seeding()).await.unwrap().chained > 0 {}
            eprint!("\r  seeded {done}/{total}");
        }
    }
    while store.sequence(50_000, &seeding()).await.unwrap().chained > 0 {}
    eprintln!();
    if !url.starts_with("sqlite:") {
        // What autovacuum does after a bulk load in production: give the planner statistics.
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        conn.execute("ANALYZE audit_log").await.unwrap();
    }
    started.elapsed()
}

async fn median_ms<F, Fut>(runs: usize, mut f: F) -> f64
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs {
        let started = Instant::now();
        f(i).await;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    samples[runs / 2]
}

async fn scan_baseline(url: &str) -> f64 {
    let sql = "SELECT COUNT(*), SUM(LENGTH(body)), SUM(LENGTH(hash)) FROM audit_log";
    let started = Instant::now();
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        conn.execute(sql).await.unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        conn.execute(sql).await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

async fn bench(label: &str, url: &str, total: usize) {
    let options = ConnectOptions {
        url: url.into(),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(30),
        statement_timeout: None,
        sqlite_max_size: None,
    };
    let store = leadgate::store::connect(&options).await.unwrap();
    store.migrate().await.unwrap();
    eprintln!("{label}: seeding {total} entries");
    let seeding = seed(url, &store, total).await;
    let app = App::new(
        store.clone(),
        Arc::new(Policy::default_policy()),
        AppSettings {
            // The whole trail in one call: what the baseline scan does.
            verify_call_budget: std::time::Duration::from_secs(3600),
            ..AppSettings::with_keys(keys())
        },
    );
    let head = app.audit_digest().await.unwrap();
    assert_eq!(head.position as usize, total);

    let scan = scan_baseline(url).await;
    let started = Instant::now();
    let verification = app
        .verify_audit(leadgate::app::VerifyRequest::default())
        .await
        .unwrap();
    let verify = started.elapsed().as_secs_f64();
    assert!(verification.finding.is_none() && verification.checked as usize == total);

    let page = |filter: String| {
        let app = app.clone();
        async move {
            let query = parse_list::<AuditField, AuditOrder>(&filter, "", "", 50).unwrap();
            std::hint::black_box(app.list_audit(&query).await.unwrap());
        }
    };
    let leads = total / ENTRIES_PER_LEAD;
    let unfiltered = median_ms(21, |_| page(String::new())).await;
    let by_lead = median_ms(21, |i| {
        page(format!(
            "lead = \"leads/{}\"",
            uuid::Uuid::from_u128((i * 7919 % leads) as u128 + 1)
        ))
    })
    .await;
    let by_kind = median_ms(21, |_| page("kind = SLA_BREACHED".into())).await;
    let by_time = median_ms(21, |_| {
        page("record_time >= \"2026-01-20T00:00:00Z\" AND record_time < \"2026-01-21T00:00:00Z\"".into())
    })
    .await;
    let by_actor_time = median_ms(21, |_| {
        page("actor = \"dialer\" AND record_time >= \"2026-01-20T00:00:00Z\"".into())
    })
    .await;
    let by_state_channel = median_ms(21, |_| {
        page("state_after = SALES_QUALIFIED AND source.channel = TRADE_SHOW".into())
    })
    .await;
    let deep = median_ms(21, |_| {
        page(format!(
            "kind = DISCOVERY_CALL_RECORDED AND position > {}",
            total * 9 / 10
        ))
    })
    .await;

    println!(
        "\n{label}: {total} chained entries (seeded in {:.1} s)",
        seeding.as_secs_f64()
    );
    println!("  {:<58} {:>10} {:>12}", "operation", "time", "× baseline");
    println!(
        "  {:<58} {:>8.2} s {:>12}",
        "baseline: scan every entry (COUNT/SUM in SQL)", scan, "1.00"
    );
    println!(
        "  {:<58} {:>8.2} s {:>12.2}",
        "VerifyAuditTrail over the whole trail",
        verify,
        verify / scan
    );
    println!(
        "  {:<58} {:>7.2} ms {:>12}",
        "baseline: first page of 50, no filter", unfiltered, "1.00"
    );
    for (name, ms) in [
        ("page of 50: lead = ...", by_lead),
        ("page of 50: kind = SLA_BREACHED (1 in 500)", by_kind),
        ("page of 50: one day (record_time range)", by_time),
        ("page of 50: actor = ... AND record_time >= ...", by_actor_time),
        (
            "page of 50: state_after = ... AND source.channel = ...",
            by_state_channel,
        ),
        ("page of 50: kind = ... AND position > 90%", deep),
    ] {
        println!("  {name:<58} {ms:>7.2} ms {:>12.2}", ms / unfiltered);
    }
    let worst = [by_lead, by_kind, by_time, by_actor_time, by_state_channel, deep]
        .into_iter()
        .fold(0.0, f64::max);
    println!(
        "  targets: verify < 30 s: {} ({verify:.1} s); filtered page < 50 ms: {} (worst {worst:.1} ms)",
        if verify < 30.0 { "met" } else { "NOT met" },
        if worst < 50.0 { "met" } else { "NOT met" }
    );
}

#[tokio::main]
async fn main() {
    let total: usize = std::env::var("LEADGATE_BENCH_AUDIT_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let keep = std::env::var("LEADGATE_BENCH_KEEP").is_ok();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    bench("SQLite", &sqlite, total).await;
    if keep {
        println!("kept {sqlite}");
        std::mem::forget(dir);
    }

    let admin = std::env::var("LEADGATE_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    match sqlx::PgConnection::connect(&admin).await {
        Ok(mut conn) => {
            let name = format!("leadgate_bench_{}", std::process::id());
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap();
            let options: sqlx::postgres::PgConnectOptions = admin.parse().unwrap();
            let url = sqlx::ConnectOptions::to_url_lossy(&options.database(&name)).to_string();
            bench("PostgreSQL", &url, total).await;
            if keep {
                println!("kept {url}");
            } else {
                conn.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
                    .await
                    .unwrap();
            }
        }
        Err(e) => println!("\nPostgreSQL: skipped ({e})"),
    }
}
