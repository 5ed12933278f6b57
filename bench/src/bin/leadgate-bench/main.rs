//! `leadgate-bench`: leadgate under load, next to baselines measured in the same run.
//!
//! `cargo run --release -p leadgate-bench --bin leadgate-bench` starts what it needs (a leadgate server per
//! database, a bare tonic server, pgbench), drives each scenario with the same load generator for
//! a fixed time, and prints one table: throughput, p50/p99 latency and server RSS, with the ratios
//! to the baselines — a bare tonic unary server (gRPC health) under the same load, and each
//! database writing what one SubmitLead writes (lead, audit inbox row, idempotency record) with
//! the store's own statements, one and 32 per transaction, on a scratch database: pgbench at the
//! pool's size for PostgreSQL, one writer for SQLite. Machines here are shared and noisy: read the ratios, not the absolute figures.
//!
//! - `servers`: the processes it starts (leadgate servers, bare tonic servers: this program
//!   again, in another role) and what is read from them.
//! - `measure`: the load generator and the figures it gives; `lag`: the audit sequencer's lag
//!   during write scenarios, and the drain after them; `reader`: leadgate's database read as
//!   another client.
//! - `scenarios`: the calls each scenario makes, on one backend.
//! - `baselines`: the bare tonic server, pgbench, and the SQLite writer.
//! - `report`: the table, the targets and the exit status.

mod baselines;
mod import;
mod lag;
mod measure;
mod reader;
mod report;
mod scenarios;
mod servers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use leadgate_bench::duration;

#[derive(Parser)]
#[command(about = "leadgate under load, with baselines measured in the same run")]
pub struct Args {
    /// Measured time per scenario.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub duration: Duration,
    /// Load before measuring, per scenario.
    #[arg(long, default_value = "2s", value_parser = duration)]
    pub warmup: Duration,
    /// Concurrent callers.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// A PostgreSQL server where a benchmark database may be created (and dropped).
    #[arg(
        long,
        env = "LEADGATE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres: String,
    /// Only SQLite.
    #[arg(long)]
    pub skip_postgres: bool,
    /// Only these scenarios (health, submit, resubmit, replay, engage, get, mixed, import);
    /// leads are seeded for the others. `import` runs on databases of its own, after the rest,
    /// with a table of its own.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "health,submit,resubmit,replay,engage,get,mixed,import"
    )]
    pub only: Vec<String>,
    /// Leads the import scenario writes each way (ImportLeads, and SubmitLead one per call).
    #[arg(long, default_value_t = 100_000)]
    pub import_rows: usize,
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

async fn bench(args: Args) -> ExitCode {
    let with_import = args.only.iter().any(|s| s == "import");
    // A goal not met is a verdict in the table, as for the other targets, not a failed run.
    if with_import && args.only.iter().all(|s| s == "import") {
        import::report(&import::run(&args).await);
        return ExitCode::SUCCESS;
    }
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    eprintln!("bare tonic server: health checks");
    let bare = baselines::bare::bare_tonic(&args).await;

    let dir = servers::Scratch::new("sqlite");
    let sqlite = scenarios::run_backend(
        "SQLite",
        &format!("sqlite://{}", dir.0.join("bench.db").display()),
        &args,
        run,
    )
    .await;

    let mut postgres = None;
    if !args.skip_postgres {
        match servers::ScratchDatabase::create(&args.postgres, "leadgate_bench").await {
            Ok(db) => {
                postgres = Some(scenarios::run_backend("PostgreSQL", &db.url, &args, run).await);
                db.drop().await;
            }
            Err(e) => eprintln!("PostgreSQL skipped: {e}"),
        }
    }
    let status = report::report(&args, &bare, &sqlite, postgres.as_ref());
    if with_import {
        import::report(&import::run(&args).await);
    }
    status
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match args.role {
        Some(Role::Serve { args }) => leadgate_bench::serve_as_leadgate(&runtime, args),
        Some(Role::Bare { listen, lead_file }) => runtime.block_on(baselines::bare::serve(listen, lead_file)),
        None => runtime.block_on(bench(args)),
    }
}
