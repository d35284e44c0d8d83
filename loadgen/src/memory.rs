//! Memory over a long run (`--sample-memory`): every few seconds the origin's resident memory
//! (`VmRSS` in `/proc/PID/status`) and Redis's `used_memory` (`INFO memory`), so a soak shows
//! whether either keeps growing under a steady load. A leak is growth after warm-up, so the
//! summary compares the first sample of the measured window with the last.
//!
//! The origin's pid is read again from its pid file at every sample: an `origin` fault
//! restarts it under a new pid.

use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Which origin process to sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginProcess {
    /// A fixed pid.
    Pid(u32),
    /// The pid in this file (`RUN_DIR/origin.pid`), read at every sample.
    PidFile(PathBuf),
}

/// What to sample, and how often.
#[derive(Debug, Clone)]
pub struct MemoryProbe {
    /// The origin's process; `None` samples Redis only.
    pub origin: Option<OriginProcess>,
    /// The Redis to ask for `used_memory`; `None` samples the origin only.
    pub redis_url: Option<String>,
    /// Time between samples.
    pub every: Duration,
}

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds from the start of the measured window (negative during warm-up).
    pub at_secs: f64,
    /// The origin's resident memory, KiB; `None` if it could not be read.
    pub origin_rss_kib: Option<u64>,
    /// Redis's `used_memory`, bytes; `None` if Redis did not answer.
    pub redis_used_bytes: Option<u64>,
}

/// One quantity's curve, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Curve {
    /// The first sample.
    pub first: u64,
    /// The first sample of the measured window (after warm-up).
    pub first_measured: u64,
    /// The last sample.
    pub last: u64,
    /// The largest.
    pub max: u64,
    /// `last - first_measured`.
    pub growth: i64,
}

/// The samples and their summaries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryReport {
    /// Every sample, in time order.
    pub samples: Vec<Sample>,
    /// The origin's resident memory (KiB).
    pub origin_rss_kib: Option<Curve>,
    /// Redis's used memory (bytes).
    pub redis_used_bytes: Option<Curve>,
}

impl MemoryReport {
    /// The report over `samples`.
    pub fn new(samples: Vec<Sample>) -> Self {
        MemoryReport {
            origin_rss_kib: curve(&samples, |s| s.origin_rss_kib),
            redis_used_bytes: curve(&samples, |s| s.redis_used_bytes),
            samples,
        }
    }

    /// The samples as a table (`-` where a value is missing).
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:>8} {:>15} {:>17}\n",
            "at_s", "origin_rss_kib", "redis_used_bytes"
        );
        for s in &self.samples {
            let v = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
            out.push_str(&format!(
                "{:>8.1} {:>15} {:>17}\n",
                s.at_secs,
                v(s.origin_rss_kib),
                v(s.redis_used_bytes)
            ));
        }
        out
    }

    /// The samples as CSV (empty where a value is missing).
    pub fn csv(&self) -> String {
        let mut out = String::from("at_s,origin_rss_kib,redis_used_bytes\n");
        for s in &self.samples {
            let v = |v: Option<u64>| v.map_or_else(String::new, |v| v.to_string());
            out.push_str(&format!(
                "{:.1},{},{}\n",
                s.at_secs,
                v(s.origin_rss_kib),
                v(s.redis_used_bytes)
            ));
        }
        out
    }

    /// One line per quantity: first, last, max and growth after warm-up.
    pub fn summary(&self) -> String {
        let line = |name: &str, unit: &str, c: Option<Curve>| match c {
            Some(c) => format!(
                "{name}: first {} {unit}, first after warm-up {}, last {}, max {}, growth after warm-up {:+} {unit} ({:+.1}%)",
                c.first,
                c.first_measured,
                c.last,
                c.max,
                c.growth,
                c.growth as f64 * 100.0 / c.first_measured.max(1) as f64
            ),
            None => format!("{name}: no sample"),
        };
        format!(
            "{}\n{}",
            line("origin resident memory", "KiB", self.origin_rss_kib),
            line("Redis used_memory", "bytes", self.redis_used_bytes)
        )
    }
}

fn curve(samples: &[Sample], pick: impl Fn(&Sample) -> Option<u64>) -> Option<Curve> {
    let values: Vec<(f64, u64)> = samples
        .iter()
        .filter_map(|s| pick(s).map(|v| (s.at_secs, v)))
        .collect();
    let first = values.first()?.1;
    let last = values.last()?.1;
    let first_measured = values
        .iter()
        .find(|(at, _)| *at >= 0.0)
        .map_or(first, |(_, v)| *v);
    Some(Curve {
        first,
        first_measured,
        last,
        max: values.iter().map(|(_, v)| *v).max()?,
        growth: last as i64 - first_measured as i64,
    })
}

/// `VmRSS` in KiB from the text of `/proc/PID/status`.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `used_memory` in bytes from the text of `INFO memory`.
pub fn parse_used_memory(info: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix("used_memory:"))?
        .parse()
        .ok()
}

async fn origin_rss(origin: &OriginProcess) -> Option<u64> {
    let pid = match origin {
        OriginProcess::Pid(pid) => *pid,
        OriginProcess::PidFile(path) => tokio::fs::read_to_string(path)
            .await
            .ok()?
            .trim()
            .parse()
            .ok()?,
    };
    let status = tokio::fs::read_to_string(format!("/proc/{pid}/status"))
        .await
        .ok()?;
    parse_vm_rss(&status)
}

async fn redis_used(client: &redis::Client) -> Option<u64> {
    let ask = async {
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut connection)
            .await
            .ok()?;
        parse_used_memory(&info)
    };
    tokio::time::timeout(Duration::from_secs(1), ask)
        .await
        .ok()
        .flatten()
}

/// Samples every `probe.every` from now until `end` (and once more at the end), or until
/// `stop` says so; times are given from `measured_from`.
pub(crate) async fn sample_until(
    probe: MemoryProbe,
    measured_from: Instant,
    end: Instant,
    mut stop: watch::Receiver<bool>,
) -> MemoryReport {
    // The first URL of a cluster's list: any node answers for its own memory.
    let redis = probe
        .redis_url
        .as_deref()
        .and_then(|url| redis::Client::open(url.split(',').next()?.trim()).ok());
    let every = probe.every.max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut samples = Vec::new();
    loop {
        let last = tokio::select! {
            _ = ticks.tick() => Instant::now() >= end,
            _ = tokio::time::sleep_until(end.into()) => true,
            _ = crate::run::stopped(&mut stop) => true,
        };
        let now = Instant::now();
        let at_secs = if now >= measured_from {
            now.duration_since(measured_from).as_secs_f64()
        } else {
            -measured_from.duration_since(now).as_secs_f64()
        };
        let (origin_rss_kib, redis_used_bytes) = tokio::join!(
            async {
                match &probe.origin {
                    Some(origin) => origin_rss(origin).await,
                    None => None,
                }
            },
            async {
                match &redis {
                    Some(client) => redis_used(client).await,
                    None => None,
                }
            }
        );
        samples.push(Sample {
            at_secs,
            origin_rss_kib,
            redis_used_bytes,
        });
        if last {
            return MemoryReport::new(samples);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_used_memory() {
        let status = "Name:\torigin\nVmPeak:\t  900 kB\nVmRSS:\t   123456 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(123_456));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n";
        assert_eq!(parse_used_memory(info), Some(1_048_576));
    }

    #[test]
    fn growth_is_measured_from_the_first_sample_after_warm_up() {
        let s = |at_secs: f64, rss: Option<u64>, redis: Option<u64>| Sample {
            at_secs,
            origin_rss_kib: rss,
            redis_used_bytes: redis,
        };
        let report = MemoryReport::new(vec![
            s(-10.0, Some(50), Some(1000)),
            s(0.0, Some(80), None),
            s(10.0, Some(95), Some(3000)),
            s(20.0, Some(90), Some(2500)),
        ]);
        assert_eq!(
            report.origin_rss_kib,
            Some(Curve {
                first: 50,
                first_measured: 80,
                last: 90,
                max: 95,
                growth: 10
            })
        );
        let redis = report.redis_used_bytes.unwrap();
        assert_eq!((redis.first_measured, redis.growth), (3000, -500));
        assert_eq!(report.csv().lines().nth(2), Some("0.0,80,"));
        assert!(report.summary().contains("growth after warm-up +10 KiB"));
        assert_eq!(MemoryReport::new(Vec::new()).origin_rss_kib, None);
    }
}
