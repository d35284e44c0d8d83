//! What a run measured: per request kind, the outcomes, the cache hit rate read from
//! `Cache-Status`, and latency percentiles from an HDR histogram (microsecond resolution,
//! 3 significant digits). Each worker records into its own [`Recorder`]; they are merged at
//! the end, so recording never contends.

use crate::pattern::Kind;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// How one response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx or 304; `hit` says whether the nearest cache answered by itself.
    Ok {
        /// The last `Cache-Status` member (the cache closest to the client) says `hit`.
        hit: bool,
    },
    /// 4xx: the request was refused (bad data or configuration).
    Refused,
    /// 5xx.
    ServerError,
    /// No response: connection refused, reset, timed out.
    Transport,
}

#[derive(Debug, Clone)]
struct Series {
    latency: Histogram<u64>,
    ok: u64,
    hits: u64,
    refused: u64,
    server_errors: u64,
    transport_errors: u64,
}

impl Series {
    fn new() -> Self {
        Series {
            // 1 µs to 60 s; values above are clamped to the top.
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            ok: 0,
            hits: 0,
            refused: 0,
            server_errors: 0,
            transport_errors: 0,
        }
    }

    fn add(&mut self, other: &Series) {
        self.latency
            .add(&other.latency)
            .expect("histograms with the same bounds");
        self.ok += other.ok;
        self.hits += other.hits;
        self.refused += other.refused;
        self.server_errors += other.server_errors;
        self.transport_errors += other.transport_errors;
    }
}

/// One worker's measurements.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    series: BTreeMap<Kind, Series>,
}

impl Recorder {
    /// Records one request.
    pub fn record(&mut self, kind: Kind, latency: Duration, outcome: Outcome) {
        let series = self.series.entry(kind).or_insert_with(Series::new);
        let micros = (latency.as_micros() as u64).clamp(1, 60_000_000);
        series.latency.saturating_record(micros);
        match outcome {
            Outcome::Ok { hit } => {
                series.ok += 1;
                series.hits += u64::from(hit);
            }
            Outcome::Refused => series.refused += 1,
            Outcome::ServerError => series.server_errors += 1,
            Outcome::Transport => series.transport_errors += 1,
        }
    }

    /// Adds another worker's measurements.
    pub fn merge(&mut self, other: Recorder) {
        for (kind, theirs) in other.series {
            self.series
                .entry(kind)
                .or_insert_with(Series::new)
                .add(&theirs);
        }
    }

    /// The report over a measured window of `elapsed`.
    pub fn report(&self, elapsed: Duration, warmup_requests: u64) -> Report {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let line = |kind: Option<Kind>, s: &Series| {
            let requests = s.latency.len();
            let quantile = |q: f64| s.latency.value_at_quantile(q) as f64 / 1000.0;
            KindReport {
                kind,
                requests,
                throughput: requests as f64 / secs,
                ok: s.ok,
                hits: s.hits,
                refused: s.refused,
                server_errors: s.server_errors,
                transport_errors: s.transport_errors,
                hit_rate: match kind {
                    Some(k) if !k.cacheable() => None,
                    _ if s.ok == 0 => None,
                    _ => Some(s.hits as f64 / s.ok as f64),
                },
                p50_ms: quantile(0.50),
                p95_ms: quantile(0.95),
                p99_ms: quantile(0.99),
                max_ms: s.latency.max() as f64 / 1000.0,
            }
        };
        let kinds: Vec<KindReport> = self
            .series
            .iter()
            .map(|(kind, s)| line(Some(*kind), s))
            .collect();
        let mut all = Series::new();
        let mut reads = Series::new();
        for (kind, s) in &self.series {
            all.add(s);
            if kind.cacheable() {
                reads.add(s);
            }
        }
        let reads_line = line(None, &reads);
        let mut total = line(None, &all);
        total.hit_rate = reads_line.hit_rate;
        Report {
            elapsed_secs: elapsed.as_secs_f64(),
            warmup_requests,
            kinds,
            total,
        }
    }
}

/// One kind's (or all requests') figures in the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    /// The kind; `None` for the total.
    pub kind: Option<Kind>,
    /// Requests completed (any outcome).
    pub requests: u64,
    /// Requests per second.
    pub throughput: f64,
    /// 2xx and 304 responses.
    pub ok: u64,
    /// Of those, answered by the nearest cache.
    pub hits: u64,
    /// 4xx responses.
    pub refused: u64,
    /// 5xx responses.
    pub server_errors: u64,
    /// Requests without a response.
    pub transport_errors: u64,
    /// Share of successful reads the nearest cache answered (`None` for writes); for the
    /// total, over every read.
    pub hit_rate: Option<f64>,
    /// Latency percentiles in milliseconds.
    pub p50_ms: f64,
    /// P95.
    pub p95_ms: f64,
    /// P99.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// A run's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Length of the measured window.
    pub elapsed_secs: f64,
    /// Requests made during warm-up (not in the figures).
    pub warmup_requests: u64,
    /// Per kind, in [`Kind::ALL`] order.
    pub kinds: Vec<KindReport>,
    /// Every request together; its hit rate is over the reads.
    pub total: KindReport,
}

impl Report {
    /// The figures of one kind, if any request of it was made.
    pub fn kind(&self, kind: Kind) -> Option<&KindReport> {
        self.kinds.iter().find(|k| k.kind == Some(kind))
    }

    /// Requests that failed on the server's or the network's side.
    pub fn failures(&self) -> u64 {
        self.total.server_errors + self.total.transport_errors
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<16} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}",
            "request",
            "count",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "hit rate",
            "errors"
        )?;
        for line in self.kinds.iter().chain(std::iter::once(&self.total)) {
            let name = line.kind.map_or("all", Kind::name);
            let hit = line
                .hit_rate
                .map_or_else(|| "-".to_owned(), |h| format!("{:.1}%", h * 100.0));
            writeln!(
                f,
                "{:<16} {:>9} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.1} {:>9} {:>7}",
                name,
                line.requests,
                line.throughput,
                line.p50_ms,
                line.p95_ms,
                line.p99_ms,
                line.max_ms,
                hit,
                line.refused + line.server_errors + line.transport_errors
            )?;
        }
        write!(
            f,
            "measured {:.1} s after {} warm-up requests; hit rate = reads answered by the nearest cache (last Cache-Status member says hit); errors = 4xx + 5xx + no response",
            self.elapsed_secs, self.warmup_requests
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_reports_hit_rates_over_reads_only() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        for i in 0..10 {
            a.record(
                Kind::Movie,
                Duration::from_millis(1),
                Outcome::Ok { hit: i < 9 },
            );
        }
        b.record(
            Kind::Rating,
            Duration::from_millis(4),
            Outcome::Ok { hit: false },
        );
        b.record(Kind::Movie, Duration::from_millis(2), Outcome::ServerError);
        a.merge(b);
        let report = a.report(Duration::from_secs(2), 5);
        let movie = report.kind(Kind::Movie).unwrap();
        assert_eq!(
            (movie.requests, movie.ok, movie.hits, movie.server_errors),
            (11, 10, 9, 1)
        );
        assert_eq!(movie.hit_rate, Some(0.9));
        assert_eq!(report.kind(Kind::Rating).unwrap().hit_rate, None);
        assert_eq!(report.total.requests, 12);
        assert_eq!(report.total.hit_rate, Some(0.9), "writes do not count");
        assert_eq!(report.total.throughput, 6.0);
        assert_eq!(report.failures(), 1);
        assert!((report.total.max_ms - 4.0).abs() < 0.01);
        assert!(report.to_string().contains("90.0%"));
    }
}
