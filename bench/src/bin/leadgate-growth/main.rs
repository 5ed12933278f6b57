//! `leadgate-growth`: how the cost of reads grows with the data.
//!
//! `cargo run --release -p leadgate-bench --bin leadgate-growth -- --sizes 10k,100k,1m` grows one
//! database per backend (a scratch SQLite file; a scratch database on the PostgreSQL at
//! `--postgres`, created and dropped) from one size to the next — leads made by leadgate's
//! engine, their audit entries sealed and chained by leadgate's sequencer (see `seed`, `trail`) —
//! and at each size starts a leadgate server on it (this program again, in the Serve role) and
//! times, one call at a time through gRPC: GetLead on random leads, a filtered ListLeads page,
//! ExplainLead, GetFunnelReport for the last quarter of the data, and ListLeads finding a random
//! lead by email, by company domain and by external reference. It prints one table: p50
//! and p99 per operation, size and backend, and the ratio of the largest size to the smallest.
//! Point operations should stay flat (a ratio near 1); the funnel reads a quarter whose content
//! grows with the data (each size adds its leads over one more year, so the last quarter holds
//! about a quarter of the newest year's leads).

mod seed;
mod trail;

use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use leadgate::domain::audit::AuditKeys;
use leadgate::grpc::pb;
use leadgate_bench::{free_port, serving};
use pb::lead_service_client::LeadServiceClient;
use pb::report_service_client::ReportServiceClient;
use sqlx::{Connection, Executor};
use tonic::transport::Channel;

#[derive(Parser)]
#[command(about = "how the cost of leadgate's reads grows with the number of leads")]
struct Args {
    /// Sizes to measure, in leads, ascending (`10k`, `1m`); the database grows from one to the next.
    #[arg(long, value_delimiter = ',', default_value = "10k,100k", value_parser = size)]
    sizes: Vec<u64>,
    /// Timed calls per point operation (GetLead, ListLeads, ExplainLead) at each size.
    #[arg(long, default_value_t = 300)]
    calls: usize,
    /// Timed GetFunnelReport calls at each size.
    #[arg(long, default_value_t = 10)]
    report_calls: usize,
    /// A PostgreSQL server where a scratch database may be created (and dropped).
    #[arg(
        long,
        env = "LEADGATE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    /// Only SQLite.
    #[arg(long)]
    skip_postgres: bool,
    /// Only PostgreSQL (seeding SQLite is the slow part at 1m).
    #[arg(long, conflicts_with = "skip_postgres")]
    skip_sqlite: bool,
    /// Keep the grown databases (their URLs are printed) instead of removing them, to query or
    /// profile them afterwards.
    #[arg(long)]
    keep: bool,
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
}

/// `10k`, `1m`, `2500`.
fn size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (digits, unit) = match lower.strip_suffix('k') {
        Some(d) => (d, 1_000),
        None => match lower.strip_suffix('m') {
            Some(d) => (d, 1_000_000),
            None => (lower.as_str(), 1),
        },
    };
    digits
        .parse::<u64>()
        .map(|n| n * unit)
        .map_err(|e| format!("{text:?}: {e}"))
}

/// The key the benchmark's servers seal the audit trail with (and the seeding too).
const AUDIT_KEYS: &str = "growth:Z3Jvd3RoLWF1ZGl0LWtleS1ncm93dGgtYXVkaXQta2V5LWdyb3d0aA==";

/// The operations timed, in the table's order.
const OPERATIONS: [&str; 7] = [
    "GetLead",
    "ListLeads (MQL page)",
    "ExplainLead",
    "GetFunnelReport (quarter)",
    "ListLeads by email",
    "ListLeads by domain",
    "ListLeads by external reference",
];

/// A leadgate server process, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(database_url: &str) -> Server {
        let port = free_port();
        let child = Command::new(std::env::current_exe().expect("the benchmark's own path"))
            .args(["serve", "serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--database-url", database_url, "--log-format", "json"])
            .env("LEADGATE_AUDIT_KEYS", AUDIT_KEYS)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("a server process");
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// p50 and p99 of one operation at one size, in milliseconds.
#[derive(Clone, Copy)]
struct Latency {
    p50: f64,
    p99: f64,
}

fn latency(mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    let at = |p: usize| {
        let rank = (p * samples.len()).div_ceil(100).max(1);
        samples[rank - 1].as_secs_f64() * 1e3
    };
    Latency {
        p50: at(50),
        p99: at(99),
    }
}

/// Times `calls` calls of `call` (after a few untimed ones).
async fn time<F, Fut>(calls: usize, mut call: F) -> Latency
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for i in 0..calls.div_ceil(10).max(2) {
        call(i).await;
    }
    let mut samples = Vec::with_capacity(calls);
    for i in 0..calls {
        let started = Instant::now();
        call(i).await;
        samples.push(started.elapsed());
    }
    latency(samples)
}

/// One step of growth: leads `first..last`, added over the year of `step`.
#[derive(Clone, Copy)]
struct Step {
    first: u64,
    last: u64,
    step: usize,
}

impl Step {
    /// The index of a random existing lead.
    fn random_index(steps: &[Step], rng: &mut trail::Rng) -> u64 {
        rng.below(steps.last().map_or(0, |s| s.last))
    }

    fn random_lead(steps: &[Step], rng: &mut trail::Rng) -> String {
        let index = Self::random_index(steps, rng);
        let s = steps.iter().find(|s| index < s.last).unwrap();
        let created = trail::created_at(index, s.first, s.last - s.first, s.step);
        format!("leads/{}", trail::lead_id(index, created).as_uuid())
    }
}

/// One ListLeads page for `filter`, which must find `expected` leads (at least one when `None`).
async fn find(mut client: LeadServiceClient<Channel>, filter: String, expected: Option<usize>) {
    let page = client
        .list_leads(pb::ListLeadsRequest {
            page_size: 50,
            filter: filter.clone(),
            ..Default::default()
        })
        .await
        .expect("ListLeads")
        .into_inner();
    match expected {
        Some(n) => assert_eq!(page.leads.len(), n, "{filter}"),
        None => assert!(!page.leads.is_empty(), "{filter}"),
    }
}

/// The operations at one size, in the order of [`OPERATIONS`].
async fn measure(channel: Channel, steps: &[Step], args: &Args) -> [Latency; 7] {
    let leads = LeadServiceClient::new(channel.clone());
    let reports = ReportServiceClient::new(channel);
    let mut rng = trail::Rng::new(steps.len() as u64);
    let names: Vec<String> = (0..args.calls * 2)
        .map(|_| Step::random_lead(steps, &mut rng))
        .collect();
    let get = time(args.calls, |i| {
        let (mut client, name) = (leads.clone(), names[i].clone());
        async move {
            client
                .get_lead(pb::GetLeadRequest { name })
                .await
                .expect("GetLead");
        }
    })
    .await;
    // A page of MQLs created before a random time of the data: the page a user lands on after
    // picking a date.
    let (start, _) = trail::year(0);
    let (_, end) = trail::year(steps.last().unwrap().step);
    let span = (end - start).num_seconds() as u64;
    let befores: Vec<String> = (0..args.calls * 2)
        .map(|_| {
            let at = start + chrono::Duration::seconds(rng.below(span) as i64);
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .collect();
    let list = time(args.calls, |i| {
        let mut client = leads.clone();
        let filter = format!("state = MARKETING_QUALIFIED AND create_time < \"{}\"", befores[i]);
        async move {
            let page = client
                .list_leads(pb::ListLeadsRequest {
                    page_size: 50,
                    filter,
                    order_by: "create_time desc".into(),
                    ..Default::default()
                })
                .await
                .expect("ListLeads")
                .into_inner();
            assert!(!page.leads.is_empty() || page.next_page_token.is_empty());
        }
    })
    .await;
    let explain = time(args.calls, |i| {
        let (mut client, name) = (leads.clone(), names[args.calls + i].clone());
        async move {
            client
                .explain_lead(pb::ExplainLeadRequest { name })
                .await
                .expect("ExplainLead");
        }
    })
    .await;
    let (q_start, q_end) = trail::last_quarter(steps.last().unwrap().step);
    let stamp = |t: leadgate::domain::values::Timestamp| prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    };
    let report = time(args.report_calls, |_| {
        let mut client = reports.clone();
        async move {
            let report = client
                .get_funnel_report(pb::GetFunnelReportRequest {
                    start_time: Some(stamp(q_start)),
                    end_time: Some(stamp(q_end)),
                    source_channels: Vec::new(),
                })
                .await
                .expect("GetFunnelReport")
                .into_inner();
            assert!(
                report.total.is_some_and(|t| t.leads_created > 0),
                "an empty funnel"
            );
        }
    })
    .await;
    // Lookups of random existing leads by what an analyst knows of them.
    let picks: Vec<u64> = (0..args.calls * 2)
        .map(|_| Step::random_index(steps, &mut rng))
        .collect();
    let by_email = time(args.calls, |i| {
        let filter = format!("contact.email = \"{}\"", trail::email(picks[i]));
        find(leads.clone(), filter, Some(1))
    })
    .await;
    let by_domain = time(args.calls, |i| {
        let filter = format!("company.domain = \"{}\"", trail::company_domain(picks[i]));
        find(leads.clone(), filter, None)
    })
    .await;
    let with_reference: Vec<String> = picks
        .iter()
        .chain(&[0])
        .filter_map(|&i| trail::external_reference(i))
        .collect();
    let by_reference = time(args.calls, |i| {
        let reference = &with_reference[i % with_reference.len()];
        let filter = format!("external_reference = \"{reference}\"");
        find(leads.clone(), filter, Some(1))
    })
    .await;
    [get, list, explain, report, by_email, by_domain, by_reference]
}

/// One backend's figures: per size, the operations.
struct Figures {
    backend: &'static str,
    per_size: Vec<[Latency; 7]>,
}

async fn run_backend(backend: &'static str, url: &str, args: &Args, keys: &AuditKeys) -> Figures {
    let mut steps: Vec<Step> = Vec::new();
    let mut per_size = Vec::new();
    let mut have = 0;
    for (step, &size) in args.sizes.iter().enumerate() {
        eprintln!("{backend}: growing to {size} leads");
        let grown = seed::grow(url, have, size, step, keys).await;
        steps.push(Step {
            first: have,
            last: size,
            step,
        });
        have = size;
        eprintln!(
            "{backend}: {size} leads, {} audit entries ({:.0} s to grow)",
            grown.entries, grown.seconds
        );
        let server = Server::start(url);
        serving(server.port, Instant::now(), Duration::from_millis(20)).await;
        let channel = Channel::from_shared(format!("http://127.0.0.1:{}", server.port))
            .unwrap()
            .tcp_nodelay(true)
            .connect()
            .await
            .unwrap();
        per_size.push(measure(channel, &steps, args).await);
        drop(server);
    }
    Figures { backend, per_size }
}

fn label(size: u64) -> String {
    match size {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn report(args: &Args, figures: &[Figures]) {
    if figures.is_empty() {
        return;
    }
    let first = label(args.sizes[0]);
    let last = label(*args.sizes.last().unwrap());
    print!("{:<32} {:<11}", "operation", "backend");
    for size in &args.sizes {
        print!(" {:>19}", format!("{} p50/p99 ms", label(*size)));
    }
    println!("  {:>10}", format!("p50 {last}/{first}"));
    for (op, name) in OPERATIONS.iter().enumerate() {
        for f in figures {
            print!("{name:<32} {:<11}", f.backend);
            for l in &f.per_size {
                print!(" {:>19}", format!("{:.2} / {:.2}", l[op].p50, l[op].p99));
            }
            let ratio = f.per_size.last().unwrap()[op].p50 / f.per_size[0][op].p50;
            println!("  {ratio:>10.2}");
        }
    }
}

async fn growth(args: Args) -> ExitCode {
    if args.sizes.is_empty() || args.sizes.windows(2).any(|w| w[0] >= w[1]) {
        eprintln!("--sizes must be ascending");
        return ExitCode::from(2);
    }
    let keys = AuditKeys::parse(AUDIT_KEYS).expect("the benchmark's audit keys");
    let mut figures = Vec::new();
    if !args.skip_sqlite {
        let dir = std::env::temp_dir().join(format!("leadgate-growth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let url = format!("sqlite://{}?mode=rwc", dir.join("growth.db").display());
        figures.push(run_backend("SQLite", &url, &args, &keys).await);
        if args.keep {
            eprintln!("SQLite database kept: {url}");
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    if !args.skip_postgres {
        match sqlx::PgConnection::connect(&args.postgres).await {
            Ok(mut admin) => {
                let name = format!("leadgate_growth_{}", std::process::id());
                admin
                    .execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .unwrap();
                let options: sqlx::postgres::PgConnectOptions = args.postgres.parse().unwrap();
                let url = sqlx::ConnectOptions::to_url_lossy(&options.database(&name)).to_string();
                figures.push(run_backend("PostgreSQL", &url, &args, &keys).await);
                if args.keep {
                    eprintln!("PostgreSQL database kept: {url}");
                } else {
                    admin
                        .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
                        .await
                        .unwrap();
                }
            }
            Err(e) => eprintln!("PostgreSQL skipped: {e}"),
        }
    }
    report(&args, &figures);
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match args.role {
        Some(Role::Serve { args }) => leadgate_bench::serve_as_leadgate(&runtime, args),
        None => runtime.block_on(growth(args)),
    }
}
