//! What `leadgate-bench`, `leadgate-growth` and `leadgate-soak` share: the leadgate server they
//! start (themselves again, in a serving role), ports, readiness, and the figures read from a
//! server process's `/proc` entry.

use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

/// A duration as the command lines take it (`10s`, `200ms`), parsed the way policies are.
pub fn duration(text: &str) -> Result<Duration, String> {
    leadgate::domain::duration::parse_duration(text)
}

/// Serves leadgate as the `leadgate` binary would with `serve` and these arguments: the role a
/// benchmark binary takes when it starts itself as the server it measures.
pub fn serve_as_leadgate(runtime: &tokio::runtime::Runtime, args: Vec<String>) -> std::process::ExitCode {
    use clap::Parser;
    let cli = leadgate::cli::args::Cli::parse_from(std::iter::once("leadgate".to_string()).chain(args));
    if let leadgate::cli::args::Command::Serve(serve) = cli.command {
        runtime.block_on(leadgate::cli::serve(*serve))
    } else {
        std::process::ExitCode::from(2)
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits, polling every `poll`, until the server on `port` answers its health check with
/// SERVING; returns how long since `started`. Panics after a minute.
pub async fn serving(port: u16, started: Instant, poll: Duration) -> Duration {
    let endpoint = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
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
        tokio::time::sleep(poll).await;
    }
}

/// A field of `/proc/{pid}/status` in kB (`VmRSS:`, `VmHWM:`), 0 if it cannot be read.
pub fn status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// A process's resident memory now, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    status_kib(pid, "VmRSS:") / 1024.0
}

/// A process's peak resident memory since it started (VmHWM), in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    status_kib(pid, "VmHWM:") / 1024.0
}
