//! The processes the benchmark starts: leadgate servers and bare tonic servers, each this
//! program again in another role, and what is read from them (readiness, channels, memory).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leadgate_bench::{free_port, peak_rss_mib, serving};
use tonic::transport::Channel;

/// A scratch directory, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(what: &str) -> Scratch {
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

/// A child process, killed when dropped.
pub struct Server {
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

    pub fn leadgate(database_url: &str) -> Server {
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

    pub fn bare(lead_file: Option<&std::path::Path>) -> Server {
        let mut args = vec!["bare".to_string(), "--listen".into(), "127.0.0.1:{port}".into()];
        if let Some(path) = lead_file {
            args.extend(["--lead-file".into(), path.display().to_string()]);
        }
        Server::spawn(&args)
    }

    /// Waits until the health check answers SERVING; returns how long since `started`.
    pub async fn serving(&self, started: Instant) -> Duration {
        serving(self.port, started, Duration::from_millis(5)).await
    }

    pub async fn channels(&self, n: usize) -> Vec<Channel> {
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
    pub fn peak_rss_mib(&self) -> f64 {
        peak_rss_mib(self.child.id())
    }
}

/// A fresh PostgreSQL database for one run of scenarios, on the server `admin_url` names.
pub struct ScratchDatabase {
    admin: sqlx::PgConnection,
    name: String,
    /// The new database's URL.
    pub url: String,
}

impl ScratchDatabase {
    /// Creates `{prefix}_{pid}`; an error when the server cannot be reached.
    pub async fn create(admin_url: &str, prefix: &str) -> Result<Self, sqlx::Error> {
        use sqlx::{Connection, Executor};
        let mut admin = sqlx::PgConnection::connect(admin_url).await?;
        let name = format!("{prefix}_{}", std::process::id());
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await?;
        let options: sqlx::postgres::PgConnectOptions = admin_url.parse()?;
        let url = sqlx::ConnectOptions::to_url_lossy(&options.database(&name)).to_string();
        Ok(Self { admin, name, url })
    }

    pub async fn drop(mut self) {
        use sqlx::Executor;
        self.admin
            .execute(format!("DROP DATABASE {} WITH (FORCE)", self.name).as_str())
            .await
            .unwrap();
    }
}
