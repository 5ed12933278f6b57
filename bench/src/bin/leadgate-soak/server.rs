//! The server under test, a `leadgate serve` process measured through `/proc/{pid}`, and the
//! scratch database it runs on.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leadgate_bench::{free_port, peak_rss_mib, rss_mib, serving};
use sqlx::{Connection, Executor};
use tonic::transport::Channel;

use crate::{Args, BackendKind};

/// The server process, killed when dropped.
pub struct Server {
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
    pub async fn start(bin: &PathBuf, database_url: &str, max_open_streams: usize) -> Server {
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
        serving(port, Instant::now(), Duration::from_millis(20)).await;
        server
    }

    pub async fn channel(&self) -> Result<Channel, tonic::transport::Error> {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
            .unwrap()
            .connect()
            .await
    }

    /// Resident memory now, in MiB.
    pub fn rss_mib(&self) -> f64 {
        rss_mib(self.child.id())
    }

    /// The most resident memory since the start, in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        peak_rss_mib(self.child.id())
    }

    /// CPU time used since the start (user + system), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
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
pub struct ScratchDatabase {
    /// What the server is given.
    pub url: String,
    /// The administration URL and the database to drop (PostgreSQL).
    postgres: Option<(String, String)>,
    /// The scratch directory (the SQLite file), removed at the end.
    dir: PathBuf,
}

impl ScratchDatabase {
    pub async fn create(args: &Args) -> ScratchDatabase {
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

    pub async fn drop_now(self) {
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
