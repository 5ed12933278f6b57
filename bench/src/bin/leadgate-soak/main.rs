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
//!
//! - `server`: the server process and what is read from it, and the scratch database.
//! - `scenarios`: the watchers, the entries they are given, and what each scenario prints.

mod scenarios;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use leadgate_bench::duration;
use scenarios::{idle, stalled};

#[derive(Parser)]
#[command(
    about = "what WatchDecisions streams cost a leadgate server: memory with stalled watchers, CPU with idle ones"
)]
pub struct Args {
    /// The server binary (`leadgate`); by default the one next to this program.
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// The database the server runs on.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub backend: BackendKind,
    /// A PostgreSQL server where a scratch database may be created (and dropped).
    #[arg(
        long,
        env = "LEADGATE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
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
