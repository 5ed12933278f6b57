//! `leadgate-bench`: leadgate under load, next to baselines measured in the same run.
//!
//! `cargo run --release --bin leadgate-bench` starts what it needs (a leadgate server per
//! database, a bare tonic server, pgbench), drives each scenario with the same load generator for
//! a fixed time, and prints one table: throughput, p50/p99 latency and server RSS, with the ratios
//! to the baselines — a bare tonic unary server (gRPC health) under the same load, and pgbench
//! running the same INSERTs as one SubmitLead (idempotency key, lead, audit entry) at the same
//! concurrency. Machines here are shared and noisy: read the ratios, not the absolute figures.

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use leadgate::grpc::pb;
use pb::lead_service_client::LeadServiceClient;
use sqlx::{Connection, Executor};
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

#[derive(Parser)]
#[command(about = "leadgate under load, with baselines measured in the same run")]
struct Args {
    /// Measured time per scenario.
    #[arg(long, default_value = "10s", value_parser = duration)]
    duration: Duration,
    /// Load before measuring, per scenario.
    #[arg(long, default_value = "2s", value_parser = duration)]
    warmup: Duration,
    /// Concurrent callers.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// A PostgreSQL server where a benchmark database may be created (and dropped).
    #[arg(
        long,
        env = "LEADGATE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    /// Only SQLite.
    #[arg(long)]
    skip_postgres: bool,
    /// Only these scenarios (health, submit, engage, get, mixed); leads are seeded for the others.
    #[arg(long, value_delimiter = ',', default_value = "health,submit,engage,get,mixed")]
    only: Vec<String>,
    #[command(subcommand)]
    role: Option<Role>,
}

/// What a child process of the benchmark is.
#[derive(Subcommand)]
enum Role {
    /// The leadgate server (the library's `serve`, as the `leadgate` binary runs it).
    #[command(hide = true)]
    Serve {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// A bare tonic server answering gRPC health checks and, given a lead, GetLead with that
    /// lead: the cost of gRPC itself.
    #[command(hide = true)]
    Bare {
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// A protobuf-encoded Lead that every GetLead answers with.
        #[arg(long)]
        lead_file: Option<PathBuf>,
    },
}

fn duration(text: &str) -> Result<Duration, String> {
    leadgate::domain::duration::parse_duration(text)
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("leadgate-bench-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The key the benchmark's servers seal the audit trail with.
const BENCH_AUDIT_KEYS: &str = "bench:YmVuY2gtYXVkaXQta2V5LWJlbmNoLWF1ZGl0LWtleS1iZW5jaA==";

impl Server {
    fn spawn(args: &[String]) -> Server {
        let port = free_port();
        let mut command = Command::new(std::env::current_exe().expect("the benchmark's own path"));
        command.args(args.iter().map(|a| a.replace("{port}", &port.to_string())));
        command.stdout(Stdio::null()).stderr(Stdio::null());
        // Every replica of one database seals the audit trail with the same key.
        command.env("LEADGATE_AUDIT_KEYS", BENCH_AUDIT_KEYS);
        Server {
            child: command.spawn().expect("a server process"),
            port,
        }
    }

    fn leadgate(database_url: &str) -> Server {
        let args = [
            "serve",
            "serve",
            "--listen",
            "127.0.0.1:{port}",
            "--database-url",
            database_url,
            "--log-format",
            "json",
        ];
        Server::spawn(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn bare(lead_file: Option<&std::path::Path>) -> Server {
        let mut args = vec!["bare".to_string(), "--listen".into(), "127.0.0.1:{port}".into()];
        if let Some(path) = lead_file {
            args.extend(["--lead-file".into(), path.display().to_string()]);
        }
        Server::spawn(&args)
    }

    /// Waits until the health check answers SERVING; returns how long since `started`.
    async fn serving(&self, started: Instant) -> Duration {
        let endpoint = Channel::from_shared(format!("http://127.0.0.1:{}", self.port)).unwrap();
        loop {
            if let Ok(channel) = endpoint.connect().await {
                let answer = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                if answer.is_ok_and(|a| a.into_inner().status == ServingStatus::Serving as i32) {
                    return started.elapsed();
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server did not become SERVING"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn channels(&self, n: usize) -> Vec<Channel> {
        let mut channels = Vec::new();
        for _ in 0..n {
            let endpoint = Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
                .unwrap()
                .tcp_nodelay(true);
            channels.push(endpoint.connect().await.unwrap());
        }
        channels
    }

    /// Peak resident memory since the process started (VmHWM), in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

/// What a scenario measured.
#[derive(Clone, Debug, Default)]
struct Figures {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    rss_mib: Option<f64>,
}

/// Runs `call` from `concurrency` workers for warmup + duration; measures the duration only.
async fn drive<F, Fut>(
    channels: &[Channel],
    concurrency: usize,
    warmup: Duration,
    measured: Duration,
    call: F,
) -> Figures
where
    F: Fn(Channel, usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    let samples = sample(channels, concurrency, warmup, measured, call).await;
    summarize(samples.latencies, samples.errors, measured)
}

/// The latencies (µs) of the calls that succeeded, and how many failed.
#[derive(Default)]
struct Samples {
    latencies: Vec<u32>,
    errors: u64,
}

impl Samples {
    fn add(&mut self, more: Samples) {
        self.latencies.extend(more.latencies);
        self.errors += more.errors;
    }
}

/// `drive`, without the summary.
async fn sample<F, Fut>(
    channels: &[Channel],
    concurrency: usize,
    warmup: Duration,
    measured: Duration,
    call: F,
) -> Samples
where
    F: Fn(Channel, usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    let call = Arc::new(call);
    let start = Instant::now();
    let (measure_from, end) = (start + warmup, start + warmup + measured);
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let channel = channels[worker % channels.len()].clone();
            let call = call.clone();
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                let mut iteration = 0u64;
                loop {
                    let began = Instant::now();
                    if began >= end {
                        break;
                    }
                    let answer = call(channel.clone(), worker, iteration).await;
                    iteration += 1;
                    if began >= measure_from {
                        match answer {
                            Ok(()) => latencies.push(began.elapsed().as_micros() as u32),
                            Err(_) => errors += 1,
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for worker in workers {
        let (l, e) = worker.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    Samples { latencies, errors }
}

/// Throughput and percentiles of the calls (latencies in µs) completed in `measured`.
fn summarize(mut latencies: Vec<u32>, errors: u64, measured: Duration) -> Figures {
    latencies.sort_unstable();
    let at = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |us| *us as f64 / 1000.0)
    };
    Figures {
        per_second: latencies.len() as f64 / measured.as_secs_f64(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        errors,
        rss_mib: None,
    }
}

fn submission(worker: usize, iteration: u64, run: u64) -> pb::SubmitLeadRequest {
    pb::SubmitLeadRequest {
        contact: Some(pb::Contact {
            email: format!("bench-{run}-{worker}-{iteration}@acme-industrie.fr"),
            given_name: "Claire".into(),
            family_name: "Martin".into(),
            phone: "+33 1 23 45 67 89".into(),
            job_title: "Directrice financière".into(),
            seniority: pb::Seniority::Executive as i32,
            job_function: "finance".into(),
        }),
        company: Some(pb::Company {
            name: "Acme Industrie".into(),
            domain: "acme-industrie.fr".into(),
            industry: "manufacturing".into(),
            employee_count: 300,
            country_code: "FR".into(),
        }),
        source: Some(pb::Source {
            channel: pb::SourceChannel::Website as i32,
            campaign: "bench".into(),
        }),
        external_reference: format!("crm-{worker}-{iteration}"),
        events: vec![pb::EngagementEvent {
            kind: pb::EngagementKind::WebinarAttended as i32,
            occur_time: None,
            subject: "webinar".into(),
        }],
        request_id: format!("bench-{run}-{worker}-{iteration}"),
    }
}

/// Lead names, read back from the server (the workload of reads and updates).
async fn lead_names(channel: &Channel, at_most: usize) -> Vec<String> {
    let mut client = LeadServiceClient::new(channel.clone());
    let (mut names, mut token) = (Vec::new(), String::new());
    while names.len() < at_most {
        let page = client
            .list_leads(pb::ListLeadsRequest {
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        names.extend(page.leads.into_iter().map(|l| l.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    names
}

/// Samples the server's peak RSS while `figures` are being measured.
async fn measured<F: Future<Output = Figures>>(server: &Server, run: F) -> Figures {
    let mut figures = run.await;
    figures.rss_mib = Some(server.peak_rss_mib());
    figures
}

struct BackendResults {
    name: &'static str,
    /// The bare tonic server answering health checks, measured in turns with this backend's
    /// GetLead (same conditions).
    bare: Figures,
    /// The bare tonic server answering GetLead with a canned copy of a real lead, in turns too.
    bare_get: Figures,
    /// leadgate's own health check: the per-call cost of the server without the database.
    health: Figures,
    submit: Figures,
    engage: Figures,
    get: Figures,
    mixed: Figures,
    first_start: Duration,
    restart: Duration,
    /// pgbench running SubmitLead's INSERTs (PostgreSQL only).
    pgbench: Option<Result<Figures, String>>,
}

async fn run_backend(name: &'static str, url: &str, args: &Args, run: u64) -> BackendResults {
    let (c, w, d) = (args.concurrency, args.warmup, args.duration);
    let started = Instant::now();
    let server = Server::leadgate(url);
    let first_start = server.serving(started).await;
    let channels = server.channels(4).await;
    let wanted = |scenario: &str| args.only.iter().any(|o| o == scenario);
    eprintln!("{name}: health checks");
    let health = if !wanted("health") {
        Figures::default()
    } else {
        measured(&server, drive(&channels, c, w, d, health_check)).await
    };
    if name == "PostgreSQL" && wanted("submit") {
        settle(url).await; // as before pgbench
    }
    eprintln!("{name}: SubmitLead");
    // Without the scenario, a short unmeasured run still creates the leads the others use.
    let seed = if wanted("submit") {
        d
    } else {
        Duration::from_secs(2)
    };
    let submit = measured(
        &server,
        drive(&channels, c, w, seed, move |ch, worker, i| async move {
            LeadServiceClient::new(ch)
                .submit_lead(submission(worker, i, run))
                .await
                .map(|_| ())
        }),
    )
    .await;
    // On PostgreSQL, pgbench right after SubmitLead: the same database, in the same state.
    let pgbench_inserts = if wanted("submit") && name == "PostgreSQL" {
        settle(url).await;
        eprintln!("pgbench: the same INSERTs as SubmitLead");
        let figures = pgbench(url, args).await;
        forget_pgbench_rows(url).await;
        settle(url).await;
        Some(figures)
    } else {
        None
    };
    let names = Arc::new(lead_names(&channels[0], 20_000).await);
    eprintln!("{name}: RecordEngagement on {} leads", names.len());
    let engage = if !wanted("engage") {
        Figures::default()
    } else {
        let names = names.clone();
        measured(
            &server,
            drive(&channels, c, w, d, move |ch, worker, i| {
                let name = names[(worker * 7919 + i as usize * 31) % names.len()].clone();
                async move {
                    let events = vec![pb::EngagementEvent {
                        kind: pb::EngagementKind::PricingPageVisit as i32,
                        occur_time: None,
                        subject: String::new(),
                    }];
                    LeadServiceClient::new(ch)
                        .record_engagement(pb::RecordEngagementRequest {
                            name,
                            events,
                            ..Default::default()
                        })
                        .await
                        .map(|_| ())
                }
            }),
        )
        .await
    };
    eprintln!("{name}: GetLead, taking turns with the bare tonic servers");
    let (bare, bare_get, get) = if wanted("get") {
        get_with_baselines(args, &server, &channels, names.clone()).await
    } else {
        Default::default()
    };
    eprintln!("{name}: mixed");
    let mixed = if !wanted("mixed") {
        Figures::default()
    } else {
        let names = names.clone();
        measured(
            &server,
            drive(&channels, c, w, d, move |ch, worker, i| {
                let name = names[(worker * 7919 + i as usize * 17) % names.len()].clone();
                async move {
                    let mut client = LeadServiceClient::new(ch);
                    match i % 20 {
                        0..=11 => client.get_lead(pb::GetLeadRequest { name }).await.map(|_| ()),
                        12..=15 => {
                            let events = vec![pb::EngagementEvent {
                                kind: pb::EngagementKind::EmailClick as i32,
                                occur_time: None,
                                subject: String::new(),
                            }];
                            client
                                .record_engagement(pb::RecordEngagementRequest {
                                    name,
                                    events,
                                    ..Default::default()
                                })
                                .await
                                .map(|_| ())
                        }
                        16..=18 => client
                            .submit_lead(submission(worker, i, run + 1))
                            .await
                            .map(|_| ()),
                        _ => client
                            .list_leads(pb::ListLeadsRequest {
                                page_size: 50,
                                ..Default::default()
                            })
                            .await
                            .map(|_| ()),
                    }
                }
            }),
        )
        .await
    };
    drop(channels);
    drop(server);
    let started = Instant::now();
    let again = Server::leadgate(url);
    let restart = again.serving(started).await;
    BackendResults {
        name,
        bare,
        bare_get,
        health,
        submit,
        engage,
        get,
        mixed,
        first_start,
        restart,
        pgbench: pgbench_inserts,
    }
}

/// Deletes the leads and request ids pgbench inserted: their documents are copies of one real
/// lead, which the next scenarios would otherwise read and update as if it were thousands.
/// (Their audit entries stay: the trail is append-only, and nothing below reads it.)
async fn forget_pgbench_rows(url: &str) {
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
async fn settle(url: &str) {
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
async fn pgbench(url: &str, args: &Args) -> Result<Figures, String> {
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
        "\\set unused 0
BEGIN;
INSERT INTO idempotency_keys (principal, request_id, method, fingerprint, response, create_time)
  VALUES ('pgbench', 'pgbench-' || nextval('pgbench_keys'), 'SubmitLead', '\\x{zeros}', $doc${response}$doc$, 0);
INSERT INTO leads (id, email, state, source_channel, fit_grade, combined_points, create_time, update_time, revision, sla_due_time, revisit_time, document)
  VALUES (('00000000-0000-7000-8000-' || lpad(to_hex(currval('pgbench_keys')), 12, '0'))::uuid, 'pgbench-' || currval('pgbench_keys') || '@example.com', 'MARKETING_QUALIFIED', 'WEBSITE', 'A', 5500, 0, 0, 1, 1, NULL, $doc${document}$doc$);
INSERT INTO audit_inbox (lead_id, kind, record_time, actor, request_id, state_before, state_after, source_channel, policy_version, body)
  VALUES (('00000000-0000-7000-8000-' || lpad(to_hex(currval('pgbench_keys')), 12, '0'))::uuid, 'LEAD_SUBMITTED', 0, 'pgbench', 'pgbench', NULL, 'MARKETING_QUALIFIED', 'WEBSITE', 'v', $doc${body}$doc$);
COMMIT;
",
        zeros = "00".repeat(32)
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

fn row(out: &mut String, scenario: &str, backend: &str, f: &Figures, baseline: &str) {
    if f.per_second == 0.0 && f.errors == 0 {
        return; // not run
    }
    let rss = f.rss_mib.map_or("-".into(), |r| format!("{r:.1}"));
    let errors = if f.errors > 0 {
        format!(" ({} errors)", f.errors)
    } else {
        String::new()
    };
    let line = format!(
        "{scenario:<21} {backend:<11} {:>10.0} {:>9.2} {:>9.2} {rss:>9}  {baseline}{errors}",
        f.per_second, f.p50_ms, f.p99_ms
    );
    out.push_str(line.trim_end());
    out.push('\n');
}

/// One gRPC health check (the call of the health scenarios).
async fn health_check(channel: Channel, _: usize, _: u64) -> Result<(), tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|_| ())
}

/// One GetLead.
async fn get_lead(channel: Channel, name: String) -> Result<(), tonic::Status> {
    LeadServiceClient::new(channel)
        .get_lead(pb::GetLeadRequest { name })
        .await
        .map(|_| ())
}

/// A bare tonic server answering health checks, under the same load: the cost of gRPC itself.
async fn bare_tonic(args: &Args) -> Figures {
    let server = Server::bare(None);
    server.serving(Instant::now()).await;
    let channels = server.channels(4).await;
    measured(
        &server,
        drive(
            &channels,
            args.concurrency,
            args.warmup,
            args.duration,
            health_check,
        ),
    )
    .await
}

/// Turns in which GetLead and its baselines are measured one after the other, so that drift in
/// the machine's speed (other processes, CPU frequency, neighbours) weighs on all three alike.
const TURNS: u32 = 5;

/// GetLead on leadgate, and its two baselines: a bare tonic server answering health checks, and
/// one answering GetLead with a canned copy of a real lead (gRPC itself, with the same request and
/// response bytes). The three take `TURNS` turns each; returns (bare health, bare GetLead, GetLead).
async fn get_with_baselines(
    args: &Args,
    server: &Server,
    channels: &[Channel],
    names: Arc<Vec<String>>,
) -> (Figures, Figures, Figures) {
    use prost::Message;
    let lead = LeadServiceClient::new(channels[0].clone())
        .get_lead(pb::GetLeadRequest {
            name: names[0].clone(),
        })
        .await
        .expect("a seeded lead")
        .into_inner();
    let dir = Scratch::new("lead");
    let path = dir.0.join("lead.pb");
    std::fs::write(&path, lead.encode_to_vec()).expect("the canned lead written");
    let bare = Server::bare(None);
    let bare_get = Server::bare(Some(&path));
    bare.serving(Instant::now()).await;
    bare_get.serving(Instant::now()).await;
    let (bare_channels, bare_get_channels) = (bare.channels(4).await, bare_get.channels(4).await);

    let canned = lead.name.clone();
    let get_canned = move |ch: Channel, _: usize, _: u64| get_lead(ch, canned.clone());
    let get = move |ch: Channel, worker: usize, i: u64| {
        get_lead(
            ch,
            names[(worker * 104_729 + i as usize * 13) % names.len()].clone(),
        )
    };
    let (c, warmup, turn) = (args.concurrency, args.warmup / TURNS, args.duration / TURNS);
    let mut totals: [Samples; 3] = Default::default();
    for _ in 0..TURNS {
        totals[0].add(sample(&bare_channels, c, warmup, turn, health_check).await);
        totals[1].add(sample(&bare_get_channels, c, warmup, turn, get_canned.clone()).await);
        totals[2].add(sample(channels, c, warmup, turn, get.clone()).await);
    }
    let measured = turn * TURNS;
    let [h, g, l] = totals.map(|t| summarize(t.latencies, t.errors, measured));
    let with_rss = |mut f: Figures, s: &Server| {
        f.rss_mib = Some(s.peak_rss_mib());
        f
    };
    (with_rss(h, &bare), with_rss(g, &bare_get), with_rss(l, server))
}

/// The bare server's LeadService: GetLead answers with one canned lead, nothing else exists.
struct CannedLeads(pb::Lead);

/// The LeadService impl: GetLead answers, the other methods are unimplemented. (A macro around
/// the whole impl, so that `async_trait` sees the expanded methods.)
macro_rules! canned_lead_service {
    ($($method:ident($request:ty) -> $response:ty;)*) => {
        #[tonic::async_trait]
        impl pb::lead_service_server::LeadService for CannedLeads {
            async fn get_lead(
                &self,
                _: tonic::Request<pb::GetLeadRequest>,
            ) -> Result<tonic::Response<pb::Lead>, tonic::Status> {
                Ok(tonic::Response::new(self.0.clone()))
            }
            $(
                async fn $method(
                    &self,
                    _: tonic::Request<$request>,
                ) -> Result<tonic::Response<$response>, tonic::Status> {
                    Err(tonic::Status::unimplemented("not in the bare server"))
                }
            )*
        }
    };
}

canned_lead_service! {
    submit_lead(pb::SubmitLeadRequest) -> pb::SubmitLeadResponse;
    list_leads(pb::ListLeadsRequest) -> pb::ListLeadsResponse;
    record_engagement(pb::RecordEngagementRequest) -> pb::RecordEngagementResponse;
    record_discovery_call(pb::RecordDiscoveryCallRequest) -> pb::RecordDiscoveryCallResponse;
    record_contact_attempt(pb::RecordContactAttemptRequest) -> pb::RecordContactAttemptResponse;
    override_lead_state(pb::OverrideLeadStateRequest) -> pb::OverrideLeadStateResponse;
    release_lead_override(pb::ReleaseLeadOverrideRequest) -> pb::ReleaseLeadOverrideResponse;
    convert_lead(pb::ConvertLeadRequest) -> pb::ConvertLeadResponse;
    explain_lead(pb::ExplainLeadRequest) -> pb::LeadExplanation;
}

async fn bench(args: Args) -> ExitCode {
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    eprintln!("bare tonic server: health checks");
    let bare = bare_tonic(&args).await;

    let dir = Scratch::new("sqlite");
    let sqlite = run_backend(
        "SQLite",
        &format!("sqlite://{}", dir.0.join("bench.db").display()),
        &args,
        run,
    )
    .await;

    let mut postgres = None;
    if !args.skip_postgres {
        match sqlx::PgConnection::connect(&args.postgres).await {
            Ok(mut admin) => {
                let name = format!("leadgate_bench_{}", std::process::id());
                admin
                    .execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .unwrap();
                let options: sqlx::postgres::PgConnectOptions = args.postgres.parse().unwrap();
                let url = sqlx::ConnectOptions::to_url_lossy(&options.database(&name)).to_string();
                postgres = Some(run_backend("PostgreSQL", &url, &args, run).await);
                admin
                    .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
                    .await
                    .unwrap();
            }
            Err(e) => eprintln!("PostgreSQL skipped: {e}"),
        }
    }
    let inserts = postgres.as_ref().and_then(|pg| pg.pgbench.as_ref());

    let mut out = String::new();
    out.push_str(&format!(
        "leadgate-bench: {} callers, {:?} measured per scenario after {:?} of warm-up\n\n",
        args.concurrency, args.duration, args.warmup
    ));
    out.push_str(&format!(
        "{:<21} {:<11} {:>10} {:>9} {:>9} {:>9}  {}\n",
        "scenario", "backend", "calls/s", "p50 ms", "p99 ms", "RSS MiB", "vs baseline"
    ));
    row(&mut out, "bare tonic (health)", "-", &bare, "baseline");
    if let Some(Ok(pgbench)) = inserts {
        row(&mut out, "pgbench (inserts)", "PostgreSQL", pgbench, "baseline");
    }
    for results in [Some(&sqlite), postgres.as_ref()].into_iter().flatten() {
        let submit_vs = match (inserts, results.name) {
            (Some(Ok(pgbench)), "PostgreSQL") => {
                format!(
                    "{:.0}% of pgbench",
                    100.0 * results.submit.per_second / pgbench.per_second
                )
            }
            _ => String::new(),
        };
        let health_vs = format!(
            "{:.0}% of bare tonic",
            100.0 * results.health.per_second / bare.per_second
        );
        row(
            &mut out,
            "health check",
            results.name,
            &results.health,
            &health_vs,
        );
        row(&mut out, "SubmitLead", results.name, &results.submit, &submit_vs);
        row(&mut out, "RecordEngagement", results.name, &results.engage, "");
        row(
            &mut out,
            "bare tonic (health)",
            results.name,
            &results.bare,
            "baseline for the GetLead below",
        );
        row(
            &mut out,
            "bare tonic (GetLead)",
            results.name,
            &results.bare_get,
            "baseline: a canned copy of a real lead",
        );
        let get_vs = format!(
            "{:.0}% of bare GetLead, {:.0}% of bare health",
            100.0 * results.get.per_second / results.bare_get.per_second,
            100.0 * results.get.per_second / results.bare.per_second
        );
        row(&mut out, "GetLead", results.name, &results.get, &get_vs);
        row(
            &mut out,
            "mixed",
            results.name,
            &results.mixed,
            "60% get, 20% engage, 15% submit, 5% list",
        );
    }
    out.push('\n');
    for results in [Some(&sqlite), postgres.as_ref()].into_iter().flatten() {
        out.push_str(&format!(
            "start-up to SERVING on {}: {:.0} ms on a new database (migrations included), {:.0} ms on a migrated one\n",
            results.name,
            results.first_start.as_secs_f64() * 1000.0,
            results.restart.as_secs_f64() * 1000.0
        ));
    }
    if let Some(Err(e)) = inserts {
        out.push_str(&format!("pgbench failed: {e}\n"));
    }

    out.push_str("\ntargets\n");
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    if let (Some(pg), Some(Ok(pgbench))) = (&postgres, inserts) {
        let ratio = pg.submit.per_second / pgbench.per_second;
        out.push_str(&format!(
            "  SubmitLead on PostgreSQL >= 60% of pgbench: {} ({:.0}%)\n",
            verdict(ratio >= 0.6),
            ratio * 100.0
        ));
        out.push_str(&format!(
            "  SubmitLead p99 < 25 ms at {} callers: {} ({:.1} ms; pgbench's own p99 {:.1} ms)\n",
            args.concurrency,
            verdict(pg.submit.p99_ms < 25.0),
            pg.submit.p99_ms,
            pgbench.p99_ms
        ));
    }
    let measured_get = [Some(&sqlite), postgres.as_ref()]
        .into_iter()
        .flatten()
        .filter(|r| r.bare_get.per_second > 0.0);
    for results in measured_get {
        let ratio = results.get.per_second / results.bare_get.per_second;
        let to_health = results.get.per_second / results.bare.per_second;
        out.push_str(&format!(
            "  GetLead on {} >= 40% of bare tonic answering GetLead: {} ({:.0}%; {:.0}% of bare health checks)\n",
            results.name,
            verdict(ratio >= 0.4),
            ratio * 100.0,
            to_health * 100.0
        ));
    }
    let rss = [&sqlite.submit, &sqlite.engage, &sqlite.get, &sqlite.mixed]
        .iter()
        .filter_map(|f| f.rss_mib)
        .fold(0.0, f64::max);
    out.push_str(&format!(
        "  RSS < 64 MiB on SQLite under load: {} ({rss:.1} MiB peak)\n",
        verdict(rss < 64.0)
    ));
    for results in [Some(&sqlite), postgres.as_ref()].into_iter().flatten() {
        out.push_str(&format!(
            "  SERVING within 1 s of start on a migrated database ({}): {} ({:.0} ms)\n",
            results.name,
            verdict(results.restart < Duration::from_secs(1)),
            results.restart.as_secs_f64() * 1000.0
        ));
    }
    print!("{out}");
    // Targets missed are figures to read; calls that failed, or a baseline that did not run,
    // mean the benchmark itself went wrong.
    let failed_calls: u64 = [Some(&sqlite), postgres.as_ref()]
        .into_iter()
        .flatten()
        .flat_map(|r| {
            [
                &r.health,
                &r.submit,
                &r.engage,
                &r.get,
                &r.mixed,
                &r.bare,
                &r.bare_get,
            ]
        })
        .chain([&bare])
        .map(|f| f.errors)
        .sum();
    if failed_calls > 0 || matches!(inserts, Some(Err(_))) {
        eprintln!("leadgate-bench: {failed_calls} calls failed, or pgbench did");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match args.role {
        Some(Role::Serve { args }) => {
            let cli = <leadgate::cli::args::Cli as Parser>::parse_from(
                std::iter::once("leadgate".to_string()).chain(args),
            );
            match cli.command {
                leadgate::cli::args::Command::Serve(serve) => runtime.block_on(leadgate::cli::serve(*serve)),
                _ => ExitCode::from(2),
            }
        }
        Some(Role::Bare { listen, lead_file }) => runtime.block_on(async move {
            use prost::Message;
            let (reporter, service) = tonic_health::server::health_reporter();
            reporter
                .set_service_status("", tonic_health::ServingStatus::Serving)
                .await;
            let leads = lead_file.map(|path| {
                let bytes = std::fs::read(path).expect("the canned lead");
                let lead = pb::Lead::decode(bytes.as_slice()).expect("a protobuf Lead");
                pb::lead_service_server::LeadServiceServer::new(CannedLeads(lead))
            });
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .add_optional_service(leads)
                .serve(listen)
                .await;
            if served.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }),
        None => runtime.block_on(bench(args)),
    }
}
