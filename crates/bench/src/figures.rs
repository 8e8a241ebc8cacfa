//! Throughput and latency of one load.

use std::time::Duration;

use hdrhistogram::Histogram;

/// What one load measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    /// Completed requests per second.
    pub per_sec: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Slowest, milliseconds.
    pub max_ms: f64,
    /// Requests that failed or answered an unexpected status.
    pub errors: u64,
}

/// Latencies in microseconds, recorded by one task and merged after.
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        // 1 µs to 60 s, three significant digits.
        Self(Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid"))
    }
}

impl Latencies {
    /// Records one request's latency.
    pub fn record(&mut self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        self.0.saturating_record(micros);
    }

    /// Adds another task's latencies.
    pub fn merge(&mut self, other: &Latencies) {
        let _ = self.0.add(&other.0);
    }

    /// The figures of `self` over `elapsed`.
    pub fn figures(&self, elapsed: Duration, errors: u64) -> Figures {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Figures {
            per_sec: self.0.len() as f64 / elapsed.as_secs_f64(),
            p50_ms: ms(self.0.value_at_quantile(0.50)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            max_ms: ms(self.0.max()),
            errors,
        }
    }
}

/// Waits for every load task and merges what they measured: latencies and
/// the count of failed requests.
pub async fn gather(
    tasks: Vec<tokio::task::JoinHandle<Result<(Latencies, u64), String>>>,
) -> Result<(Latencies, u64), String> {
    let mut all = Latencies::default();
    let mut errors = 0;
    for task in tasks {
        let (latencies, failed) = task.await.map_err(|e| e.to_string())??;
        all.merge(&latencies);
        errors += failed;
    }
    Ok((all, errors))
}
