//! What a run measured: per request kind, the outcomes, the cache hit rate read from
//! `Cache-Status`, and latency percentiles from an HDR histogram (microsecond resolution,
//! 3 significant digits). Each worker records into its own [`Recorder`]; they are merged at
//! the end, so recording never contends.
//!
//! The [`Report`] also carries what the other modules measured beside it: the timeline
//! ([`crate::timeline`]), the faults ([`crate::inject`]), the ratings ledger
//! ([`crate::ledger`]) and the memory samples ([`crate::memory`]).

use crate::inject::FaultReport;
use crate::ledger::Ledger;
use crate::memory::MemoryReport;
use crate::pattern::Kind;
use crate::timeline::Second;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// How one response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx or 3xx; `hit` says whether the nearest cache answered by itself.
    Ok {
        /// The last `Cache-Status` member (the cache closest to the client) says `hit`.
        hit: bool,
    },
    /// 4xx: the request was refused (bad data or configuration).
    Refused,
    /// 503: refused for now (a dependency is down, or the service sheds load).
    Unavailable,
    /// Any other 5xx.
    ServerError,
    /// No response: connection refused or reset.
    Transport,
    /// No response within the client's per-request timeout.
    Timeout,
}

#[derive(Debug, Clone)]
struct Series {
    latency: Histogram<u64>,
    ok: u64,
    hits: u64,
    refused: u64,
    server_errors: u64,
    unavailable: u64,
    transport_errors: u64,
    timeouts: u64,
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
            unavailable: 0,
            transport_errors: 0,
            timeouts: 0,
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
        self.unavailable += other.unavailable;
        self.transport_errors += other.transport_errors;
        self.timeouts += other.timeouts;
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
            Outcome::Unavailable => {
                series.server_errors += 1;
                series.unavailable += 1;
            }
            Outcome::Transport => series.transport_errors += 1,
            Outcome::Timeout => {
                series.transport_errors += 1;
                series.timeouts += 1;
            }
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
                unavailable: s.unavailable,
                transport_errors: s.transport_errors,
                timeouts: s.timeouts,
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
            timeout_ms: 0,
            timeline: Vec::new(),
            periods: None,
            pace: None,
            faults: Vec::new(),
            ledger: None,
            memory: None,
            interrupted: false,
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
    /// 5xx responses (503 included).
    pub server_errors: u64,
    /// Of those, 503.
    pub unavailable: u64,
    /// Requests without a response.
    pub transport_errors: u64,
    /// Of those, the client's timeouts.
    pub timeouts: u64,
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
    /// The client's per-request timeout (ms): a request without an answer by then is a
    /// client timeout.
    pub timeout_ms: u64,
    /// The measured window second by second.
    pub timeline: Vec<Second>,
    /// The same in longer periods (`--timeline-every`), when asked.
    pub periods: Option<Vec<Second>>,
    /// The asked and achieved request rate, when the workers were paced (`--rate`).
    pub pace: Option<Pace>,
    /// The faults injected, in the order given.
    pub faults: Vec<FaultReport>,
    /// The ratings ledger, when it was checked.
    pub ledger: Option<Ledger>,
    /// The memory samples, when asked for.
    pub memory: Option<MemoryReport>,
    /// The run was stopped early (Ctrl-C).
    pub interrupted: bool,
}

/// A paced run's rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pace {
    /// Requests per second asked for (`--rate`).
    pub target: f64,
    /// Requests per second sent in the measured window.
    pub achieved: f64,
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

    /// Why each fault that could not be injected or restored failed.
    pub fn fault_failures(&self) -> Vec<String> {
        self.faults
            .iter()
            .filter_map(FaultReport::failure)
            .collect()
    }

    /// Whether the ratings ledger balanced exactly; `None` when it was not checked.
    pub fn ledger_balanced(&self) -> Option<bool> {
        self.ledger.as_ref().map(Ledger::balanced)
    }

    /// Counts each fault's errors: those of the seconds from the second it started in until
    /// the second in which a later fault starts after it was restored (or the window's end),
    /// so the recovery after a restore counts with its fault. Faults that overlap share the
    /// seconds they overlap in: their effects cannot be told apart.
    pub fn attribute_fault_errors(&mut self) {
        let end = self.timeline.len() as u32;
        let second_of = |t: f64| (t.max(0.0) as u32).min(end);
        let spans: Vec<Option<(u32, f64)>> = self
            .faults
            .iter()
            .map(|f| {
                let (from, to) = f.active(f64::from(end))?;
                Some((second_of(from), to))
            })
            .collect();
        for (fault, span) in self.faults.iter_mut().zip(&spans) {
            fault.errors = 0;
            fault.first_error_second = None;
            fault.last_error_second = None;
            let Some((from, restored)) = *span else {
                continue;
            };
            let until = spans
                .iter()
                .flatten()
                .map(|(start, _)| *start)
                .filter(|start| f64::from(*start) >= restored.ceil() && *start > from)
                .min()
                .unwrap_or(end);
            for second in &self.timeline[from as usize..until as usize] {
                if second.errors() > 0 {
                    fault.errors += second.errors();
                    fault.first_error_second.get_or_insert(second.second);
                    fault.last_error_second = Some(second.second);
                }
            }
        }
    }

    /// The timeline as a table (`timeline::table`): in its periods when they were asked.
    pub fn timeline_table(&self) -> String {
        crate::timeline::table(self.periods.as_deref().unwrap_or(&self.timeline))
    }

    /// The timeline as CSV (`timeline::csv`).
    pub fn timeline_csv(&self) -> String {
        crate::timeline::csv(&self.timeline)
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
        )?;
        let t = &self.total;
        write!(
            f,
            "\nwhole run: P99 {:.2} ms, max {:.1} ms; {} x 4xx, {} x 5xx ({} of them 503), {} without a response ({} client timeouts at {} ms)",
            t.p99_ms,
            t.max_ms,
            t.refused,
            t.server_errors,
            t.unavailable,
            t.transport_errors,
            t.timeouts,
            self.timeout_ms
        )?;
        if let Some(pace) = self.pace {
            write!(
                f,
                "\npaced to {:.0} req/s: achieved {:.1} req/s",
                pace.target, pace.achieved
            )?;
        }
        for fault in &self.faults {
            write!(f, "\n{}", FaultLine(fault))?;
        }
        if let Some(ledger) = &self.ledger {
            write!(f, "\n{ledger}")?;
        }
        if let Some(memory) = &self.memory {
            write!(f, "\n{}", memory.summary())?;
        }
        if self.interrupted {
            write!(f, "\ninterrupted: the run was stopped early")?;
        }
        Ok(())
    }
}

/// One fault's line in the summary.
struct FaultLine<'a>(&'a FaultReport);

impl fmt::Display for FaultLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(f, "fault {} on {}: ", r.fault, r.target)?;
        let Some(injected) = &r.injected else {
            return write!(f, "not injected (the run stopped first)");
        };
        write!(
            f,
            "injected {:.2}-{:.2} s",
            injected.started_s, injected.ended_s
        )?;
        if let Some(restored) = &r.restored {
            write!(
                f,
                ", restored {:.2}-{:.2} s",
                restored.started_s, restored.ended_s
            )?;
        }
        if let Some(failover) = r.failover {
            match failover.secs() {
                Some(secs) => write!(
                    f,
                    "; failover window {secs:.2} s ({:.2}-{:.2} s)",
                    failover.from_s,
                    failover.to_s.unwrap_or_default()
                )?,
                None => write!(f, "; failover window did not close")?,
            }
        }
        match (r.first_error_second, r.last_error_second) {
            (Some(first), Some(last)) => {
                write!(f, "; {} errors, in seconds {first}..={last}", r.errors)?
            }
            _ => write!(f, "; no errors")?,
        }
        if let Some(failure) = r.failure() {
            write!(f, "; FAILED: {failure}")?;
        }
        Ok(())
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

    #[test]
    fn each_fault_counts_the_errors_from_its_start_to_the_next_faults() {
        use crate::inject::{Action, FaultReport};
        let mut report = Recorder::default().report(Duration::from_secs(10), 0);
        report.timeline = (0..10)
            .map(|second| Second {
                second,
                seconds: 1,
                requests: 10,
                ok: 10,
                status_4xx: 0,
                status_5xx: 0,
                status_503: u64::from(matches!(second, 2 | 3 | 5 | 7 | 8)),
                transport_errors: 0,
                timeouts: 0,
                reads: 10,
                hits: 10,
                p50_ms: None,
                p99_ms: None,
                max_ms: None,
                faults: Vec::new(),
            })
            .collect();
        let action = |started_s: f64, ended_s: f64| Action {
            command: "x".into(),
            started_s,
            ended_s,
            error: None,
        };
        let fault = |label: &str, from: f64, to: f64| FaultReport {
            fault: label.into(),
            label: label.into(),
            target: label.into(),
            injected: Some(action(from, from + 0.1)),
            restored: Some(action(to - 0.1, to)),
            failover: None,
            errors: 0,
            first_error_second: None,
            last_error_second: None,
        };
        report.faults = vec![
            fault("redis", 2.0, 4.5),
            fault("postgres", 7.0, 8.5),
            // Overlaps postgres: shares its seconds.
            fault("origin", 8.0, 9.0),
        ];
        report.attribute_fault_errors();
        let spans: Vec<_> = report
            .faults
            .iter()
            .map(|f| (f.errors, f.first_error_second, f.last_error_second))
            .collect();
        assert_eq!(
            spans,
            vec![
                (3, Some(2), Some(5)),
                (2, Some(7), Some(8)),
                (1, Some(8), Some(8))
            ]
        );
        assert!(report.to_string().contains("3 errors, in seconds 2..=5"));
    }
}
