//! The measured window second by second: requests, answers by class, the cache hit rate of
//! the reads, latency percentiles and the faults active, so a fault's effect and the recovery
//! after it can be read (or plotted) rather than averaged away in the run's totals. A request
//! counts in the second it was sent. A long run is read in longer periods (`--timeline-every
//! 60`: a row a minute), added up from the same seconds.
//!
//! Each worker keeps one open second (a worker's requests are sent in time order) and adds it
//! to the shared [`Timeline`] when it moves on: one short lock per worker per second, so
//! recording does not contend. Per-second histograms have 2 significant digits (20 KiB each),
//! so a 600 s soak holds about 12 MiB whatever the request rate.

use crate::report::Outcome;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

#[derive(Debug, Clone)]
struct Bucket {
    requests: u64,
    ok: u64,
    status_4xx: u64,
    status_5xx: u64,
    status_503: u64,
    transport_errors: u64,
    timeouts: u64,
    reads: u64,
    hits: u64,
    latency: Histogram<u64>,
}

impl Bucket {
    fn new() -> Self {
        Bucket {
            requests: 0,
            ok: 0,
            status_4xx: 0,
            status_5xx: 0,
            status_503: 0,
            transport_errors: 0,
            timeouts: 0,
            reads: 0,
            hits: 0,
            // 1 µs to 60 s; values above are clamped to the top.
            latency: Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid bounds"),
        }
    }

    fn record(&mut self, latency: Duration, outcome: Outcome, read: bool) {
        self.requests += 1;
        if read {
            self.reads += 1;
            self.hits += u64::from(matches!(outcome, Outcome::Ok { hit: true }));
        }
        self.latency
            .saturating_record((latency.as_micros() as u64).clamp(1, 60_000_000));
        match outcome {
            Outcome::Ok { .. } => self.ok += 1,
            Outcome::Refused => self.status_4xx += 1,
            Outcome::ServerError => self.status_5xx += 1,
            Outcome::Unavailable => self.status_503 += 1,
            Outcome::Transport => self.transport_errors += 1,
            Outcome::Timeout => self.timeouts += 1,
        }
    }

    fn add(&mut self, other: &Bucket) {
        self.requests += other.requests;
        self.ok += other.ok;
        self.status_4xx += other.status_4xx;
        self.status_5xx += other.status_5xx;
        self.status_503 += other.status_503;
        self.transport_errors += other.transport_errors;
        self.timeouts += other.timeouts;
        self.reads += other.reads;
        self.hits += other.hits;
        self.latency
            .add(&other.latency)
            .expect("histograms with the same bounds");
    }
}

/// Every worker's seconds, added up. A `std` mutex: held for one histogram addition, never
/// across an `.await`.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    seconds: Arc<Mutex<Vec<Option<Bucket>>>>,
}

impl Timeline {
    /// A recorder for one worker.
    pub fn recorder(&self) -> SecondRecorder {
        SecondRecorder {
            timeline: self.clone(),
            open: None,
        }
    }

    fn add(&self, second: usize, bucket: &Bucket) {
        let mut seconds = self.seconds.lock().unwrap_or_else(PoisonError::into_inner);
        if seconds.len() <= second {
            seconds.resize(second + 1, None);
        }
        match &mut seconds[second] {
            Some(total) => total.add(bucket),
            slot => *slot = Some(bucket.clone()),
        }
    }

    /// One row per second for `seconds` seconds (and any later second with requests); `faults`
    /// are `(label, from, to)` in seconds from the window's start, each shown in the seconds
    /// it overlaps.
    pub fn rows(&self, seconds: usize, faults: &[(String, f64, f64)]) -> Vec<Second> {
        self.rows_every(seconds, 1, faults)
    }

    /// [`Timeline::rows`] in periods of `every` seconds (at least 1), each row starting at its
    /// period's first second; the last period may be shorter.
    pub fn rows_every(
        &self,
        seconds: usize,
        every: usize,
        faults: &[(String, f64, f64)],
    ) -> Vec<Second> {
        let every = every.max(1);
        let buckets = self.seconds.lock().unwrap_or_else(PoisonError::into_inner);
        let total = seconds.max(buckets.len());
        (0..total.div_ceil(every))
            .map(|period| {
                let first = period * every;
                let span = every.min(total - first);
                let mut b = Bucket::new();
                for bucket in buckets.iter().skip(first).take(span).flatten() {
                    b.add(bucket);
                }
                let ms = |v: u64| (b.requests > 0).then(|| v as f64 / 1000.0);
                let (from, to) = (first as f64, (first + span) as f64);
                Second {
                    second: first as u32,
                    seconds: span as u32,
                    requests: b.requests,
                    ok: b.ok,
                    status_4xx: b.status_4xx,
                    status_5xx: b.status_5xx,
                    status_503: b.status_503,
                    transport_errors: b.transport_errors,
                    timeouts: b.timeouts,
                    reads: b.reads,
                    hits: b.hits,
                    p50_ms: ms(b.latency.value_at_quantile(0.50)),
                    p99_ms: ms(b.latency.value_at_quantile(0.99)),
                    max_ms: ms(b.latency.max()),
                    faults: faults
                        .iter()
                        .filter(|(_, start, end)| *start < to && *end > from)
                        .map(|(label, _, _)| label.clone())
                        .collect(),
                }
            })
            .collect()
    }
}

/// One worker's open second; added to the timeline when the worker moves to another second
/// and when it is dropped.
#[derive(Debug)]
pub struct SecondRecorder {
    timeline: Timeline,
    open: Option<(usize, Bucket)>,
}

impl SecondRecorder {
    /// Records a request sent `second` whole seconds into the measured window.
    /// `read`: a read, whose hit counts in the hit rate.
    pub fn record(&mut self, second: usize, latency: Duration, outcome: Outcome, read: bool) {
        match &mut self.open {
            Some((open, bucket)) if *open == second => bucket.record(latency, outcome, read),
            open => {
                if let Some((done, bucket)) = open.take() {
                    self.timeline.add(done, &bucket);
                }
                let mut bucket = Bucket::new();
                bucket.record(latency, outcome, read);
                *open = Some((second, bucket));
            }
        }
    }
}

impl Drop for SecondRecorder {
    fn drop(&mut self) {
        if let Some((second, bucket)) = self.open.take() {
            self.timeline.add(second, &bucket);
        }
    }
}

/// One second (or period, see [`Timeline::rows_every`]) of the measured window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Second {
    /// Whole seconds from the window's start.
    pub second: u32,
    /// How many seconds the row covers (1 but in a period's row).
    pub seconds: u32,
    /// Requests sent in it.
    pub requests: u64,
    /// 2xx and 3xx.
    pub ok: u64,
    /// 4xx.
    pub status_4xx: u64,
    /// 5xx other than 503.
    pub status_5xx: u64,
    /// 503 (refused for now: a dependency is down).
    pub status_503: u64,
    /// No response (connection refused or reset) before the client's timeout.
    pub transport_errors: u64,
    /// No response within the client's timeout (`--timeout-ms`).
    pub timeouts: u64,
    /// Reads (every request but ratings).
    pub reads: u64,
    /// Reads the nearest cache answered (the last `Cache-Status` member says hit).
    pub hits: u64,
    /// Median latency; `None` without requests.
    pub p50_ms: Option<f64>,
    /// P99.
    pub p99_ms: Option<f64>,
    /// Slowest.
    pub max_ms: Option<f64>,
    /// Labels of the faults active during the second.
    pub faults: Vec<String>,
}

impl Second {
    /// 5xx (503 included) and requests without a response.
    pub fn errors(&self) -> u64 {
        self.status_5xx + self.status_503 + self.transport_errors + self.timeouts
    }

    /// Requests per second over the row.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / f64::from(self.seconds.max(1))
    }

    /// Hits over reads; `None` without reads.
    pub fn hit_rate(&self) -> Option<f64> {
        (self.reads > 0).then(|| self.hits as f64 / self.reads as f64)
    }
}

const COLUMNS: [&str; 15] = [
    "second",
    "seconds",
    "requests",
    "req_per_sec",
    "ok",
    "status_4xx",
    "status_5xx",
    "status_503",
    "transport_errors",
    "timeouts",
    "hit_rate",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "faults",
];

fn cells(row: &Second) -> [String; 15] {
    let ms = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.2}"));
    [
        row.second.to_string(),
        row.seconds.to_string(),
        row.requests.to_string(),
        format!("{:.0}", row.rate()),
        row.ok.to_string(),
        row.status_4xx.to_string(),
        row.status_5xx.to_string(),
        row.status_503.to_string(),
        row.transport_errors.to_string(),
        row.timeouts.to_string(),
        row.hit_rate()
            .map_or_else(String::new, |h| format!("{:.1}", 100.0 * h)),
        ms(row.p50_ms),
        ms(row.p99_ms),
        ms(row.max_ms),
        row.faults.join(" "),
    ]
}

/// A whitespace-aligned table (gnuplot and `column -t` read it): one header line, one line
/// per row (a second, or a period), `-` for no value.
pub fn table(rows: &[Second]) -> String {
    let mut out = String::new();
    let header = [
        "sec", "secs", "req", "req/s", "2xx/3xx", "4xx", "5xx", "503", "conn_err", "timeout",
        "hit%", "p50_ms", "p99_ms", "max_ms", "faults",
    ];
    let line = |out: &mut String, c: &[&str]| {
        let _ = writeln!(
            out,
            "{:>4} {:>4} {:>7} {:>6} {:>7} {:>5} {:>5} {:>5} {:>8} {:>7} {:>5} {:>8} {:>8} {:>8}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            c[6],
            c[7],
            c[8],
            c[9],
            c[10],
            c[11],
            c[12],
            c[13],
            c[14]
        );
    };
    line(&mut out, &header);
    for row in rows {
        let mut c = cells(row);
        for cell in &mut c[10..14] {
            if cell.is_empty() {
                *cell = "-".to_owned();
            }
        }
        line(&mut out, &c.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

/// CSV with a header line; empty cells for no value, fault labels separated by spaces.
pub fn csv(rows: &[Second]) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for row in rows {
        out.push_str(&cells(row).join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_land_in_their_second_and_workers_add_up() {
        let timeline = Timeline::default();
        let mut a = timeline.recorder();
        let mut b = timeline.recorder();
        a.record(0, Duration::from_millis(1), Outcome::Ok { hit: true }, true);
        a.record(0, Duration::from_millis(3), Outcome::Unavailable, true);
        a.record(2, Duration::from_millis(2000), Outcome::Timeout, true);
        b.record(0, Duration::from_millis(2), Outcome::Refused, false);
        b.record(2, Duration::from_millis(5), Outcome::ServerError, true);
        b.record(2, Duration::from_millis(5), Outcome::Transport, true);
        drop((a, b));
        let faults = [("redis".to_owned(), 1.5, 2.0)];
        let rows = timeline.rows(4, &faults);
        assert_eq!(rows.len(), 4);
        let s0 = &rows[0];
        assert_eq!(
            (
                s0.requests,
                s0.ok,
                s0.status_4xx,
                s0.status_503,
                s0.errors()
            ),
            (3, 1, 1, 1, 1)
        );
        assert!((s0.max_ms.unwrap() - 3.0).abs() < 0.05, "{s0:?}");
        assert!(s0.faults.is_empty());
        // A second without requests still has its row, and shows the fault it overlaps.
        assert_eq!((rows[1].requests, rows[1].p99_ms), (0, None));
        assert_eq!(rows[1].faults, vec!["redis"]);
        let s2 = &rows[2];
        assert_eq!(
            (s2.timeouts, s2.status_5xx, s2.transport_errors, s2.errors()),
            (1, 1, 1, 3)
        );
        assert!(s2.faults.is_empty(), "restored at 2.0 s");
        assert!(rows[3].faults.is_empty());
        assert!((s2.max_ms.unwrap() - 2000.0).abs() < 20.0, "{s2:?}");
    }

    #[test]
    fn table_and_csv_have_one_line_per_second() {
        let timeline = Timeline::default();
        timeline.recorder().record(
            1,
            Duration::from_millis(1),
            Outcome::Ok { hit: false },
            true,
        );
        let rows = timeline.rows(2, &[("postgres".to_owned(), 0.0, 5.0)]);
        let csv = csv(&rows);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], COLUMNS.join(","));
        assert_eq!(lines[1], "0,1,0,0,0,0,0,0,0,0,,,,,postgres");
        assert!(lines[2].starts_with("1,1,1,1,1,0,0,0,0,0,0.0,1.00,1.00,1.00,postgres"));
        assert_eq!(table(&rows).lines().count(), 3);
    }

    #[test]
    fn periods_add_up_their_seconds_with_the_reads_hit_rate() {
        let timeline = Timeline::default();
        let mut worker = timeline.recorder();
        for second in 0..5 {
            for hit in [true, true, true, false] {
                worker.record(second, Duration::from_millis(2), Outcome::Ok { hit }, true);
            }
            // A rating: counted as a request, not in the hit rate.
            worker.record(
                second,
                Duration::from_millis(40),
                Outcome::Ok { hit: false },
                false,
            );
        }
        drop(worker);
        let rows = timeline.rows_every(5, 2, &[("redis".to_owned(), 2.5, 3.0)]);
        assert_eq!(rows.len(), 3, "0-1, 2-3 and the last, shorter, 4");
        assert_eq!(
            (rows[0].second, rows[0].seconds, rows[0].requests),
            (0, 2, 10)
        );
        assert_eq!((rows[0].reads, rows[0].hits), (8, 6));
        assert_eq!(rows[0].hit_rate(), Some(0.75));
        assert_eq!(rows[0].rate(), 5.0);
        assert!(rows[0].faults.is_empty());
        assert_eq!(rows[1].faults, vec!["redis"]);
        assert_eq!(
            (rows[2].second, rows[2].seconds, rows[2].rate()),
            (4, 1, 5.0)
        );
        assert!(rows[2].p99_ms.unwrap() > 30.0, "{:?}", rows[2]);
        assert_eq!(
            timeline.rows_every(5, 1, &[]),
            timeline.rows(5, &[]),
            "periods of one second are the seconds"
        );
    }
}
