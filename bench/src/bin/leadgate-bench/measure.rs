//! The load generator: workers calling for a warm-up then a measured time, and the figures
//! (throughput, latency percentiles, server memory) of what they measured.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use crate::lag::{Lag, with_lag};
use crate::servers::Server;

/// What a scenario measured.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub rss_mib: Option<f64>,
    /// Write scenarios: the audit sequencer's lag while they ran, and the drain after.
    pub lag: Option<Lag>,
}

impl Figures {
    /// Calls per second counting a write once its audit entry is chained: the calls of the
    /// measured time over that time plus the drain after it.
    pub fn chained_per_second(&self, measured: Duration) -> f64 {
        let drain = self.lag.as_ref().map_or(Duration::ZERO, Lag::drain_or_zero);
        self.per_second * measured.as_secs_f64() / (measured + drain).as_secs_f64()
    }
}

/// The value at `p` (0..1) of sorted samples, in thousandths of their unit (µs → ms).
pub fn percentile_milli(sorted: &[u32], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .map_or(0.0, |v| f64::from(*v) / 1000.0)
}

/// Runs `call` from `concurrency` workers for warmup + duration; measures the duration only.
pub async fn drive<F, Fut>(
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
pub struct Samples {
    pub latencies: Vec<u32>,
    pub errors: u64,
}

impl Samples {
    pub fn add(&mut self, more: Samples) {
        self.latencies.extend(more.latencies);
        self.errors += more.errors;
    }
}

/// `drive`, without the summary.
pub async fn sample<F, Fut>(
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
pub fn summarize(mut latencies: Vec<u32>, errors: u64, measured: Duration) -> Figures {
    latencies.sort_unstable();
    Figures {
        per_second: latencies.len() as f64 / measured.as_secs_f64(),
        p50_ms: percentile_milli(&latencies, 0.50),
        p99_ms: percentile_milli(&latencies, 0.99),
        errors,
        rss_mib: None,
        lag: None,
    }
}

/// Samples the server's peak RSS while `figures` are being measured.
pub async fn measured<F: Future<Output = Figures>>(server: &Server, run: F) -> Figures {
    let mut figures = run.await;
    figures.rss_mib = Some(server.peak_rss_mib());
    figures
}

/// [`measured`], for a scenario that writes: with the sequencer's lag on the database at `url`.
pub async fn measured_writes<F: Future<Output = Figures>>(
    server: &Server,
    url: &str,
    warmup: Duration,
    run: F,
) -> Figures {
    let (mut figures, lag) = with_lag(url, warmup, measured(server, run)).await;
    figures.lag = Some(lag);
    figures
}
