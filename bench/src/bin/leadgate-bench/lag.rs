//! The audit sequencer's lag during a write scenario: a write counts once its audit entry is
//! chained, so each write scenario also reports how far the chain fell behind and how long it
//! took to catch up afterwards.
//!
//! Lag is sampled every [`EVERY`] from leadgate's database, as another reader: the age of the
//! oldest entry committed but not yet chained (0 when the inbox is empty), the figure the
//! `leadgate_audit_sequencer_lag_seconds` gauge exports. With `LEADGATE_BENCH_LAG_TRACE=FILE`,
//! every sample is also appended to FILE as `<unix time µs> <lag µs>`, to line spikes up with
//! the database's own log (checkpoints, vacuums).

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::measure::percentile_milli;
use crate::reader::Reader;

/// How often the lag is read.
const EVERY: Duration = Duration::from_millis(10);

/// The longest the benchmark waits for the inbox to empty after a scenario.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// The sequencer's lag over a scenario, and the drain after it.
#[derive(Clone, Debug, Default)]
pub struct Lag {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// From the scenario's last call until every entry was chained (`Err`: not within a minute,
    /// or the database could not be read).
    pub drain: Option<Result<Duration, String>>,
}

impl Lag {
    /// The drain time, 0 if it did not finish.
    pub fn drain_or_zero(&self) -> Duration {
        match &self.drain {
            Some(Ok(d)) => *d,
            Some(Err(_)) | None => Duration::ZERO,
        }
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_micros() as i64
}

/// Runs `scenario` while sampling the lag of leadgate's database at `url` once its `warmup` is
/// over (as its other figures are), then waits for the inbox to empty (the warm-up's entries
/// included).
pub async fn with_lag<T>(url: &str, warmup: Duration, scenario: impl Future<Output = T>) -> (T, Lag) {
    let (stop, mut stopped) = oneshot::channel::<()>();
    let url_owned = url.to_owned();
    let measure_from = Instant::now() + warmup;
    let sampler = tokio::spawn(async move {
        let mut reader = Reader::open(&url_owned).await.ok()?;
        let mut samples = Vec::new();
        let mut trace = std::env::var_os("LEADGATE_BENCH_LAG_TRACE").and_then(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
        });
        loop {
            let at = now_micros();
            if Instant::now() >= measure_from
                && let Ok(oldest) = reader.oldest().await
            {
                let lag = oldest.map_or(0, |t| (at - t).max(0));
                samples.push(u32::try_from(lag).unwrap_or(u32::MAX));
                if let Some(file) = trace.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(file, "{at} {lag}");
                }
            }
            tokio::select! {
                _ = &mut stopped => break,
                () = tokio::time::sleep(EVERY) => {}
            }
        }
        Some(samples)
    });
    let out = scenario.await;
    let _ = stop.send(());
    let mut samples = sampler.await.ok().flatten().unwrap_or_default();
    samples.sort_unstable();
    let lag = Lag {
        p50_ms: percentile_milli(&samples, 0.50),
        p99_ms: percentile_milli(&samples, 0.99),
        max_ms: percentile_milli(&samples, 1.0),
        drain: Some(drain(url).await),
    };
    (out, lag)
}

/// Polls the inbox until it is empty; returns how long that took.
pub async fn drain(url: &str) -> Result<Duration, String> {
    let started = Instant::now();
    let mut reader = Reader::open(url).await?;
    loop {
        if reader.oldest().await?.is_none() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > DRAIN_LIMIT {
            return Err("entries still in the inbox after a minute".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
