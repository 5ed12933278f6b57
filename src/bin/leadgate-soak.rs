//! `leadgate-soak`: what WatchDecisions streams cost a leadgate server, measured from outside.
//!
//! It starts a `leadgate serve` process (the `leadgate` binary next to this one unless
//! `--server-bin` names another, e.g. one built from an earlier commit, to compare), drives one
//! scenario and reads the server's memory and CPU time from `/proc`:
//!
//! - `stalled`: watchers that open a stream from the start of a trail of ~30 KB entries and never
//!   read; the server's RSS before, while they stall, and after they leave.
//! - `idle`: watchers that follow the head of a trail where nothing happens; the server's CPU time
//!   over a period, next to the same server without watchers.
//!
//! Figures are in BENCHMARKS.md. Machines here are shared: the CPU figures move with the load.

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use leadgate::grpc::pb;
use pb::audit_service_client::AuditServiceClient;
use pb::lead_service_client::LeadServiceClient;
use sqlx::{Connection, Executor};
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

#[derive(Parser)]
#[command(
    about = "what WatchDecisions streams cost a leadgate server: memory with stalled watchers, CPU with idle ones"
)]
struct Args {
    /// The server binary (`leadgate`); by default the one next to this program.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The database the server runs on.
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendKind,
    /// A PostgreSQL server where a scratch database may be created (and dropped).
    #[arg(
        long,
        env = "LEADGATE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    Sqlite,
    Postgres,
}

#[derive(Subcommand)]
enum Scenario {
    /// Watchers that never read, from the start of a trail of ~30 KB entries: server RSS before,
    /// while they stall (sampled), and after they leave.
    Stalled {
        /// Streams opened, one connection each.
        #[arg(long, default_value_t = 200)]
        watchers: usize,
        /// Entries of ~30 KB written before the watchers come.
        #[arg(long, default_value_t = 600)]
        entries: usize,
        /// How long the watchers stall (past the server's slow-consumer timeout, 30 s by
        /// default, to see it end them).
        #[arg(long, default_value = "45s", value_parser = duration)]
        hold: Duration,
    },
    /// Watchers that follow the head where nothing happens: the server's CPU time over the
    /// period, with them and without them.
    Idle {
        /// Streams opened from the head.
        #[arg(long, default_value_t = 2000)]
        watchers: usize,
        /// HTTP/2 connections the watchers share.
        #[arg(long, default_value_t = 20)]
        connections: usize,
        /// How long the CPU time is measured, with the watchers and without them.
        #[arg(long, default_value = "60s", value_parser = duration)]
        duration: Duration,
    },
}

/// Streams opened concurrently (the server's default limit on calls in progress is 512).
const OPEN_AT_ONCE: usize = 64;

fn duration(text: &str) -> Result<Duration, String> {
    leadgate::domain::duration::parse_duration(text)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server process, killed when dropped.
struct Server {
    /// The `leadgate serve` process, measured through `/proc/{pid}`.
    child: Child,
    /// Where it listens, on 127.0.0.1.
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `bin serve` on a free port; `max_open_streams` goes through the environment, which
    /// servers without that setting ignore.
    async fn start(bin: &PathBuf, database_url: &str, max_open_streams: usize) -> Server {
        let port = free_port();
        let child = Command::new(bin)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                database_url,
                "--log-format",
                "json",
            ])
            .env("LEADGATE_MAX_OPEN_STREAMS", max_open_streams.to_string())
            .env("LEADGATE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let server = Server { child, port };
        let started = Instant::now();
        loop {
            if let Ok(channel) = server.channel().await {
                let answer = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                if answer.is_ok_and(|a| a.into_inner().status == ServingStatus::Serving as i32) {
                    return server;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server did not become SERVING"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn channel(&self) -> Result<Channel, tonic::transport::Error> {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
            .unwrap()
            .connect()
            .await
    }

    fn status_kib(&self, field: &str) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    }

    /// Resident memory now, in MiB.
    fn rss_mib(&self) -> f64 {
        self.status_kib("VmRSS:") / 1024.0
    }

    /// The most resident memory since the start, in MiB.
    fn peak_rss_mib(&self) -> f64 {
        self.status_kib("VmHWM:") / 1024.0
    }

    /// CPU time used since the start (user + system), in seconds.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at `state`: utime and
        // stime are the 12th and 13th of them.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
            .sum();
        ticks / clock_ticks_per_second()
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A database for one run: a file in a scratch directory, or a scratch PostgreSQL database.
struct ScratchDatabase {
    /// What the server is given.
    url: String,
    /// The administration URL and the database to drop (PostgreSQL).
    postgres: Option<(String, String)>,
    /// The scratch directory (the SQLite file), removed at the end.
    dir: PathBuf,
}

impl ScratchDatabase {
    async fn create(args: &Args) -> ScratchDatabase {
        let dir = std::env::temp_dir().join(format!("leadgate-soak-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        match args.backend {
            BackendKind::Sqlite => ScratchDatabase {
                url: format!("sqlite://{}", dir.join("soak.db").display()),
                postgres: None,
                dir,
            },
            BackendKind::Postgres => {
                let name = format!("leadgate_soak_{}", std::process::id());
                let mut admin = sqlx::PgConnection::connect(&args.postgres).await.unwrap();
                admin
                    .execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .unwrap();
                let options: sqlx::postgres::PgConnectOptions = args.postgres.parse().unwrap();
                ScratchDatabase {
                    url: sqlx::ConnectOptions::to_url_lossy(&options.database(&name)).to_string(),
                    postgres: Some((args.postgres.clone(), name)),
                    dir,
                }
            }
        }
    }

    async fn drop_now(self) {
        if let Some((admin_url, name)) = &self.postgres
            && let Ok(mut admin) = sqlx::PgConnection::connect(admin_url).await
        {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A submission whose audit entry weighs about 30 KB: a hundred signals with long subjects.
fn heavy_submission(i: usize) -> pb::SubmitLeadRequest {
    pb::SubmitLeadRequest {
        contact: Some(pb::Contact {
            email: format!("soak-{i}@example.com"),
            ..Default::default()
        }),
        source: Some(pb::Source {
            channel: pb::SourceChannel::Content as i32,
            campaign: "soak".into(),
        }),
        events: (0..100)
            .map(|e| pb::EngagementEvent {
                kind: pb::EngagementKind::ContentDownload as i32,
                occur_time: None,
                subject: format!("{e:03}{}", "s".repeat(197)),
            })
            .collect(),
        ..Default::default()
    }
}

/// Writes `entries` heavy leads from 8 callers and waits until they are chained.
async fn seed(server: &Server, entries: usize) {
    let channel = server.channel().await.unwrap();
    let callers: Vec<_> = (0..8)
        .map(|caller| {
            let mut client = LeadServiceClient::new(channel.clone());
            tokio::spawn(async move {
                for i in (caller..entries).step_by(8) {
                    client
                        .submit_lead(heavy_submission(i))
                        .await
                        .expect("a seeded lead");
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    let mut audit = AuditServiceClient::new(channel);
    let started = Instant::now();
    loop {
        let head = audit
            .get_audit_digest(pb::GetAuditDigestRequest::default())
            .await
            .unwrap()
            .into_inner();
        if head.position > entries as i64 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the entries are chained"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens `watchers` streams over `connections` connections; returns them unread.
async fn open_watchers(
    server: &Server,
    watchers: usize,
    connections: usize,
    request: pb::WatchDecisionsRequest,
) -> (Vec<Channel>, Vec<tonic::Streaming<pb::WatchDecisionsResponse>>) {
    let mut channels = Vec::new();
    for _ in 0..connections {
        channels.push(server.channel().await.unwrap());
    }
    let mut streams = Vec::new();
    // A few at a time, so that opening them stays under the server's limit on calls.
    for batch in (0..watchers).collect::<Vec<_>>().chunks(OPEN_AT_ONCE) {
        let opening: Vec<_> = batch
            .iter()
            .map(|w| {
                let mut client = AuditServiceClient::new(channels[w % connections].clone());
                let request = request.clone();
                tokio::spawn(async move { client.watch_decisions(request).await })
            })
            .collect();
        for open in opening {
            streams.push(open.await.unwrap().expect("a watch stream").into_inner());
        }
    }
    (channels, streams)
}

async fn stalled(args: &Args, bin: &PathBuf, watchers: usize, entries: usize, hold: Duration) {
    let db = ScratchDatabase::create(args).await;
    let server = Server::start(bin, &db.url, watchers.max(512)).await;
    eprintln!("writing {entries} entries of ~30 KB");
    seed(&server, entries).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = server.rss_mib();
    println!("server RSS before the watchers: {before:.1} MiB");

    eprintln!("opening {watchers} watchers that never read (one connection each)");
    let (channels, streams) =
        open_watchers(&server, watchers, watchers, pb::WatchDecisionsRequest::default()).await;
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < hold {
        tokio::time::sleep(Duration::from_secs(5).min(hold)).await;
        samples.push((started.elapsed().as_secs(), server.rss_mib()));
    }
    let series: Vec<String> = samples.iter().map(|(s, rss)| format!("{s}s {rss:.1}")).collect();
    println!(
        "server RSS while {watchers} watchers stall (MiB): {}",
        series.join(", ")
    );
    println!("server peak RSS: {:.1} MiB", server.peak_rss_mib());
    drop(streams);
    drop(channels);
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!(
        "server RSS 5 s after the watchers left: {:.1} MiB",
        server.rss_mib()
    );
    drop(server);
    db.drop_now().await;
}

async fn idle(args: &Args, bin: &PathBuf, watchers: usize, connections: usize, period: Duration) {
    let db = ScratchDatabase::create(args).await;
    let server = Server::start(bin, &db.url, watchers.max(512)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("the server alone for {period:?}");
    let (cpu, rss) = cpu_over(&server, period).await;
    println!(
        "server without watchers: {cpu:.2} s of CPU in {:.0} s ({:.1}% of a core), RSS {rss:.1} MiB",
        period.as_secs_f64(),
        100.0 * cpu / period.as_secs_f64()
    );

    eprintln!("opening {watchers} watchers at the head over {connections} connections");
    let request = pb::WatchDecisionsRequest {
        from_head: true,
        ..Default::default()
    };
    let (channels, streams) = open_watchers(&server, watchers, connections, request).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("{watchers} idle watchers for {period:?}");
    let (cpu, rss) = cpu_over(&server, period).await;
    println!(
        "server with {watchers} idle watchers: {cpu:.2} s of CPU in {:.0} s ({:.1}% of a core), RSS {rss:.1} MiB",
        period.as_secs_f64(),
        100.0 * cpu / period.as_secs_f64()
    );
    drop(streams);
    drop(channels);
    drop(server);
    db.drop_now().await;
}

/// The server's CPU time over `period`, and its RSS at the end.
async fn cpu_over(server: &Server, period: Duration) -> (f64, f64) {
    let before = server.cpu_seconds();
    tokio::time::sleep(period).await;
    (server.cpu_seconds() - before, server.rss_mib())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let bin = args.server_bin.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .expect("this program's path")
            .with_file_name("leadgate")
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        println!("leadgate-soak: server {}", bin.display());
        match args.scenario {
            Scenario::Stalled {
                watchers,
                entries,
                hold,
            } => stalled(&args, &bin, watchers, entries, hold).await,
            Scenario::Idle {
                watchers,
                connections,
                duration,
            } => idle(&args, &bin, watchers, connections, duration).await,
        }
    });
    ExitCode::SUCCESS
}
