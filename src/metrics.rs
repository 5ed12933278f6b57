//! Prometheus metrics, served on their own HTTP port (`/metrics`). Every metric name is here.
//!
//! - `grpc_server_started_total`, `grpc_server_handled_total` (by `grpc_service`, `grpc_method`,
//!   `grpc_code`) and `grpc_server_handling_seconds` (histogram): the familiar gRPC names.
//! - `leadgate_db_pool_connections` (by `state`: `in_use`, `idle`) and `leadgate_db_pool_max`.
//! - `leadgate_leads` (by `state`): leads in each lifecycle state.
//! - `leadgate_sla_breaches_total`: breaches this replica recorded.
//! - `leadgate_audit_entries_written_total` (by `kind`) and `leadgate_audit_entries_chained_total`.
//! - `leadgate_audit_sequencer_lag_entries` and `leadgate_audit_sequencer_lag_seconds`: entries
//!   committed but not yet chained, and the age of the oldest.
//! - `leadgate_writes_paced_total`: writes that waited for the sequencer, behind.
//! - `leadgate_db_group_commit_writes` (histogram): lead writes sharing one SQLite transaction.
//! - `leadgate_ready`: 1 while the server reports SERVING.

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::PrometheusBuilder;

/// Latency buckets of `grpc_server_handling_seconds`, from 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Starts the exporter's HTTP listener and describes the metrics.
pub fn install(addr: SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("grpc_server_handling_seconds".into()),
            LATENCY_BUCKETS,
        )
        .map_err(|e| e.to_string())?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("leadgate_db_group_commit_writes".into()),
            &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
        )
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    describe_counter!("grpc_server_started_total", "RPCs started on the server.");
    describe_counter!(
        "grpc_server_handled_total",
        "RPCs completed on the server, by gRPC status code."
    );
    describe_histogram!(
        "grpc_server_handling_seconds",
        metrics::Unit::Seconds,
        "RPC latency until the last response byte."
    );
    describe_gauge!(
        "leadgate_db_pool_connections",
        "Database connections held, by state."
    );
    describe_gauge!(
        "leadgate_db_pool_max",
        "The most database connections the pool may hold."
    );
    describe_gauge!("leadgate_leads", "Leads in each lifecycle state.");
    describe_counter!(
        "leadgate_sla_breaches_total",
        "SLA breaches recorded by this replica."
    );
    describe_counter!(
        "leadgate_audit_entries_written_total",
        "Audit entries written by this replica, by kind."
    );
    describe_counter!(
        "leadgate_audit_entries_chained_total",
        "Audit entries chained by this replica's sequencer."
    );
    describe_gauge!(
        "leadgate_audit_sequencer_lag_entries",
        "Audit entries committed but not yet chained."
    );
    describe_gauge!(
        "leadgate_audit_sequencer_lag_seconds",
        "Age of the oldest audit entry not yet chained."
    );
    describe_gauge!("leadgate_ready", "1 while the server reports SERVING.");
    describe_gauge!("leadgate_watch_streams", "WatchDecisions streams open.");
    describe_counter!(
        "leadgate_watch_streams_refused_total",
        "WatchDecisions streams refused: --max-open-streams were open."
    );
    describe_counter!(
        "leadgate_watch_streams_ended_total",
        "WatchDecisions streams the server ended, by reason (SLOW_CONSUMER, SHUTTING_DOWN, FAILED)."
    );
    describe_counter!(
        "leadgate_writes_paced_total",
        "Writes that waited for the audit sequencer, which had fallen behind."
    );
    describe_histogram!(
        "leadgate_db_group_commit_writes",
        "Lead writes committed together in one SQLite transaction (the group commit)."
    );
    Ok(())
}

/// `/leadgate.v1.LeadService/GetLead` → (`leadgate.v1.LeadService`, `GetLead`).
fn split(path: &str) -> (String, String) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    )
}

/// The status code as gRPC's other servers label it (`OK`, `InvalidArgument`, `Canceled`...), so
/// that dashboards and alerts written for them work unchanged.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "Canceled",
        C::Unknown => "Unknown",
        C::InvalidArgument => "InvalidArgument",
        C::DeadlineExceeded => "DeadlineExceeded",
        C::NotFound => "NotFound",
        C::AlreadyExists => "AlreadyExists",
        C::PermissionDenied => "PermissionDenied",
        C::ResourceExhausted => "ResourceExhausted",
        C::FailedPrecondition => "FailedPrecondition",
        C::Aborted => "Aborted",
        C::OutOfRange => "OutOfRange",
        C::Unimplemented => "Unimplemented",
        C::Internal => "Internal",
        C::Unavailable => "Unavailable",
        C::DataLoss => "DataLoss",
        C::Unauthenticated => "Unauthenticated",
    }
}

pub fn rpc_started(path: &str) {
    let (service, method) = split(path);
    counter!("grpc_server_started_total", "grpc_service" => service, "grpc_method" => method).increment(1);
}

pub fn rpc_handled(path: &str, code: tonic::Code, latency: Duration) {
    let (service, method) = split(path);
    let code = code_name(code);
    histogram!("grpc_server_handling_seconds", "grpc_service" => service.clone(), "grpc_method" => method.clone())
        .record(latency.as_secs_f64());
    counter!("grpc_server_handled_total", "grpc_service" => service, "grpc_method" => method, "grpc_code" => code).increment(1);
}

pub fn entries_written(kinds: impl Iterator<Item = &'static str>) {
    for kind in kinds {
        counter!("leadgate_audit_entries_written_total", "kind" => kind).increment(1);
        if kind == "SLA_BREACHED" {
            counter!("leadgate_sla_breaches_total").increment(1);
        }
    }
}

/// A write waited for the sequencer.
pub fn write_paced() {
    counter!("leadgate_writes_paced_total").increment(1);
}

/// Lead writes that shared one transaction.
pub fn group_committed(writes: usize) {
    histogram!("leadgate_db_group_commit_writes").record(writes as f64);
}

pub fn entries_chained(n: usize) {
    counter!("leadgate_audit_entries_chained_total").increment(n as u64);
}

/// Rows of the audit inbox the sequencer set aside, by reason (UNSEALED, UNAUTHENTIC...).
pub fn entries_quarantined(reason: &'static str) {
    counter!("leadgate_audit_entries_quarantined_total", "reason" => reason).increment(1);
}

pub fn pool(in_use: u32, idle: u32, max: u32) {
    gauge!("leadgate_db_pool_connections", "state" => "in_use").set(f64::from(in_use));
    gauge!("leadgate_db_pool_connections", "state" => "idle").set(f64::from(idle));
    gauge!("leadgate_db_pool_max").set(f64::from(max));
}

pub fn leads(state: &'static str, count: i64) {
    gauge!("leadgate_leads", "state" => state).set(count as f64);
}

pub fn sequencer_lag(entries: i64, oldest_seconds: f64) {
    gauge!("leadgate_audit_sequencer_lag_entries").set(entries as f64);
    gauge!("leadgate_audit_sequencer_lag_seconds").set(oldest_seconds);
}

pub fn ready(serving: bool) {
    gauge!("leadgate_ready").set(if serving { 1.0 } else { 0.0 });
}

/// A watch stream opened (+1) or ended (-1).
pub fn watch_streams(change: f64) {
    gauge!("leadgate_watch_streams").increment(change);
}

pub fn watch_stream_refused() {
    counter!("leadgate_watch_streams_refused_total").increment(1);
}

/// The server ended a watch stream, for `reason`.
pub fn watch_stream_ended(reason: &'static str) {
    counter!("leadgate_watch_streams_ended_total", "reason" => reason).increment(1);
}
