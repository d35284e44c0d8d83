//! Faults to inject during a run, as data: which of the project's services to break, named by
//! its folder and port (so an end-to-end test names its own private servers), when (from the
//! start of the measured window) and for how long. Pure: running them is [`crate::inject`].
//!
//! The command line's `--fault KIND@START+DURATION` parses into a [`FaultSpec`], which the
//! services script's layout ([`Layout`]: `SERVICES_DIR`, the ports, `RUN_DIR`) turns into a
//! [`Fault`]:
//!
//! ```
//! use loadgen::fault::{FaultKind, FaultSpec, Layout};
//! use std::time::Duration;
//!
//! let fault = "redis@8s+1500ms".parse::<FaultSpec>().unwrap().resolve(&Layout::default());
//! assert_eq!(fault.at, Duration::from_secs(8));
//! assert_eq!(fault.duration, Duration::from_millis(1500));
//! assert!(matches!(fault.kind, FaultKind::Redis { port: 6390, .. }));
//! ```

use crate::error::LoadError;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// What to break; every variant names its target explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// The single Redis of `scripts/services.sh redis-start DIR PORT` (files in `dir`):
    /// stopped, then started again (empty: it keeps no data).
    Redis {
        /// Its folder (pid file, port file, log).
        dir: PathBuf,
        /// Its port on 127.0.0.1.
        port: u16,
    },
    /// The PostgreSQL cluster of `services.sh pg-start DIR PORT`: stopped (fast shutdown),
    /// then started again with its data.
    Postgres {
        /// Its folder (`data/`, port file, log).
        dir: PathBuf,
        /// Its port on 127.0.0.1.
        port: u16,
    },
    /// One master of the Redis Cluster of `services.sh cluster-start DIR BASEPORT`: killed
    /// (SIGKILL), then started again with its `nodes.conf`, so it rejoins as a replica.
    ClusterMaster {
        /// The cluster's folder (`baseport`, one `nPORT/` per node).
        dir: PathBuf,
        /// Its first port; the six nodes are on `base_port..=base_port + 5`.
        base_port: u16,
    },
    /// One origin instance of `scripts/origin-instance.sh` (as `scripts/up.sh` starts them):
    /// its process group killed (SIGKILL), then started again as it was.
    Origin {
        /// Where its pid file, log and saved environment are (`RUN_DIR`).
        run_dir: PathBuf,
        /// The instance (1: `origin.pid`, N: `origin-N.pid`); `None`: the last one running.
        instance: Option<u32>,
    },
}

impl FaultKind {
    /// The kind's name in `--fault` and in reports.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Redis { .. } => "redis",
            FaultKind::Postgres { .. } => "postgres",
            FaultKind::ClusterMaster { .. } => "cluster-master",
            FaultKind::Origin { .. } => "origin",
        }
    }

    /// Which service it breaks, for messages: `Redis 127.0.0.1:6390 (/tmp/.../redis)`.
    pub fn target(&self) -> String {
        match self {
            FaultKind::Redis { dir, port } => {
                format!("Redis 127.0.0.1:{port} ({})", dir.display())
            }
            FaultKind::Postgres { dir, port } => {
                format!("PostgreSQL 127.0.0.1:{port} ({})", dir.display())
            }
            FaultKind::ClusterMaster { dir, base_port } => format!(
                "a master of the Redis Cluster 127.0.0.1:{base_port}..{} ({})",
                u32::from(*base_port) + 5,
                dir.display()
            ),
            FaultKind::Origin { run_dir, instance } => match instance {
                Some(n) => format!("origin instance {n} ({})", run_dir.display()),
                None => format!("the last origin instance ({})", run_dir.display()),
            },
        }
    }
}

/// One fault: `kind` is broken `at` after the measured window starts, for `duration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// What to break.
    pub kind: FaultKind,
    /// When, from the start of the measured window (after warm-up).
    pub at: Duration,
    /// How long it stays broken before it is restored.
    pub duration: Duration,
}

impl Fault {
    /// A fault of `kind` from `at` for `duration`.
    pub fn new(kind: FaultKind, at: Duration, duration: Duration) -> Self {
        Fault { kind, at, duration }
    }

    /// When it is restored, from the start of the measured window.
    pub fn ends(&self) -> Duration {
        self.at + self.duration
    }

    /// Its short name in the timeline: `redis`, `origin-2`, ...
    pub fn label(&self) -> String {
        match &self.kind {
            FaultKind::Origin {
                instance: Some(n), ..
            } => format!("origin-{n}"),
            kind => kind.name().to_owned(),
        }
    }
}

impl fmt::Display for Fault {
    /// `redis@8s+8s`, as on the command line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}+{}",
            self.label(),
            show(self.at),
            show(self.duration)
        )
    }
}

fn show(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A parsed `--fault` value, before the services' layout names its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpec {
    /// Which service.
    pub kind: SpecKind,
    /// When, from the start of the measured window.
    pub at: Duration,
    /// For how long.
    pub duration: Duration,
}

/// The kinds of `--fault`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecKind {
    /// `redis`.
    Redis,
    /// `postgres`.
    Postgres,
    /// `cluster-master`.
    ClusterMaster,
    /// `origin` (the last instance) or `origin-N`.
    Origin(Option<u32>),
}

impl FromStr for FaultSpec {
    type Err = LoadError;

    /// `KIND@START+DURATION`, e.g. `redis@8s+8s`, `origin-2@3+1500ms`.
    fn from_str(raw: &str) -> Result<Self, LoadError> {
        let bad = || LoadError::BadFault(raw.to_owned());
        let (kind, times) = raw.trim().split_once('@').ok_or_else(bad)?;
        let (at, duration) = times.split_once('+').ok_or_else(bad)?;
        let kind = match kind {
            "redis" => SpecKind::Redis,
            "postgres" => SpecKind::Postgres,
            "cluster-master" => SpecKind::ClusterMaster,
            "origin" => SpecKind::Origin(None),
            other => {
                let n = other
                    .strip_prefix("origin-")
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(bad)?;
                SpecKind::Origin(Some(n))
            }
        };
        let at = parse_time(at).ok_or_else(bad)?;
        let duration = parse_time(duration)
            .filter(|d| !d.is_zero())
            .ok_or_else(bad)?;
        Ok(FaultSpec { kind, at, duration })
    }
}

/// `8s`, `8` (seconds), `1.5s` or `1500ms`.
pub fn parse_time(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    if let Some(ms) = raw.strip_suffix("ms") {
        return ms.parse::<u64>().ok().map(Duration::from_millis);
    }
    let secs = raw.strip_suffix('s').unwrap_or(raw);
    if !secs.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let secs: f64 = secs.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

/// Where the project's services live, as `scripts/services.sh` and `scripts/up.sh` lay them
/// out; the defaults are theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `SERVICES_DIR`: `pg/`, `redis/`, `cluster/` under it.
    pub services_dir: PathBuf,
    /// `PG_PORT`.
    pub pg_port: u16,
    /// `REDIS_PORT`.
    pub redis_port: u16,
    /// `CLUSTER_BASE_PORT`.
    pub cluster_base_port: u16,
    /// `RUN_DIR`: the origin instances' pid files.
    pub run_dir: PathBuf,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            services_dir: PathBuf::from("/tmp/movierec-services"),
            pg_port: 54329,
            redis_port: 6390,
            cluster_base_port: 7101,
            run_dir: PathBuf::from("/tmp/movierec-run"),
        }
    }
}

impl FaultSpec {
    /// The fault on the service `layout` places.
    pub fn resolve(&self, layout: &Layout) -> Fault {
        let kind = match self.kind {
            SpecKind::Redis => FaultKind::Redis {
                dir: layout.services_dir.join("redis"),
                port: layout.redis_port,
            },
            SpecKind::Postgres => FaultKind::Postgres {
                dir: layout.services_dir.join("pg"),
                port: layout.pg_port,
            },
            SpecKind::ClusterMaster => FaultKind::ClusterMaster {
                dir: layout.services_dir.join("cluster"),
                base_port: layout.cluster_base_port,
            },
            SpecKind::Origin(instance) => FaultKind::Origin {
                run_dir: layout.run_dir.clone(),
                instance,
            },
        };
        Fault::new(kind, self.at, self.duration)
    }
}

/// Checks that every fault is restored within a measured window of `window`, and that no two
/// faults break the same service at the same time (the second would find it already down).
pub fn check_plan(faults: &[Fault], window: Duration) -> Result<(), LoadError> {
    for fault in faults {
        if fault.duration.is_zero() {
            return Err(LoadError::Invalid(format!("fault {fault} lasts no time")));
        }
        if fault.ends() > window {
            return Err(LoadError::Invalid(format!(
                "fault {fault} ends at {:.1} s, after the measured window ({} s): lengthen --duration",
                fault.ends().as_secs_f64(),
                window.as_secs_f64()
            )));
        }
    }
    for (i, a) in faults.iter().enumerate() {
        for b in &faults[i + 1..] {
            let same = match (&a.kind, &b.kind) {
                (
                    FaultKind::Origin {
                        run_dir: ra,
                        instance: ia,
                    },
                    FaultKind::Origin {
                        run_dir: rb,
                        instance: ib,
                    },
                ) => ra == rb && (ia.is_none() || ib.is_none() || ia == ib),
                (ka, kb) => ka == kb,
            };
            if same && a.at < b.ends() && b.at < a.ends() {
                return Err(LoadError::Invalid(format!(
                    "faults {a} and {b} break the same service at the same time"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(raw: &str) -> FaultSpec {
        raw.parse().unwrap()
    }

    #[test]
    fn faults_parse_with_seconds_or_milliseconds() {
        assert_eq!(
            spec("redis@8s+8s"),
            FaultSpec {
                kind: SpecKind::Redis,
                at: Duration::from_secs(8),
                duration: Duration::from_secs(8)
            }
        );
        let pg = spec("postgres@20+1500ms");
        assert_eq!(
            (pg.kind, pg.at, pg.duration),
            (
                SpecKind::Postgres,
                Duration::from_secs(20),
                Duration::from_millis(1500)
            )
        );
        assert_eq!(spec("cluster-master@0s+2.5s").at, Duration::ZERO);
        assert_eq!(
            spec("cluster-master@0s+2.5s").duration,
            Duration::from_millis(2500)
        );
        assert_eq!(spec("origin@1+1").kind, SpecKind::Origin(None));
        assert_eq!(spec("origin-2@1+1").kind, SpecKind::Origin(Some(2)));
        for bad in [
            "",
            "redis",
            "redis@8s",
            "redis+8s",
            "mysql@1s+1s",
            "redis@x+1s",
            "redis@1s+0s",
            "redis@-1s+1s",
            "redis@1s+1m",
            "origin-0@1+1",
            "origin-x@1+1",
        ] {
            assert!(bad.parse::<FaultSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_layout_names_each_target() {
        let layout = Layout {
            services_dir: "/s".into(),
            pg_port: 1,
            redis_port: 2,
            cluster_base_port: 3,
            run_dir: "/r".into(),
        };
        assert_eq!(
            spec("postgres@1+1").resolve(&layout).kind,
            FaultKind::Postgres {
                dir: "/s/pg".into(),
                port: 1
            }
        );
        assert_eq!(
            spec("cluster-master@1+1").resolve(&layout).kind,
            FaultKind::ClusterMaster {
                dir: "/s/cluster".into(),
                base_port: 3
            }
        );
        let origin = spec("origin-3@1+2").resolve(&layout);
        assert_eq!(
            origin.kind,
            FaultKind::Origin {
                run_dir: "/r".into(),
                instance: Some(3)
            }
        );
        assert_eq!(origin.to_string(), "origin-3@1s+2s");
        assert_eq!(origin.ends(), Duration::from_secs(3));
    }

    #[test]
    fn plans_must_end_in_the_window_and_not_overlap_on_one_service() {
        let layout = Layout::default();
        let faults = |specs: &[&str]| -> Vec<Fault> {
            specs.iter().map(|s| spec(s).resolve(&layout)).collect()
        };
        let window = Duration::from_secs(30);
        assert!(check_plan(&faults(&["redis@8s+8s", "postgres@20s+6s"]), window).is_ok());
        assert!(check_plan(&faults(&["redis@8s+8s", "redis@16s+8s"]), window).is_ok());
        assert!(check_plan(&faults(&["redis@8s+8s", "postgres@10s+6s"]), window).is_ok());
        assert!(check_plan(&faults(&["redis@25s+6s"]), window).is_err());
        assert!(check_plan(&faults(&["redis@8s+8s", "redis@15s+8s"]), window).is_err());
        assert!(check_plan(&faults(&["origin@8s+8s", "origin-2@9s+1s"]), window).is_err());
        assert!(check_plan(&faults(&["origin-1@8s+8s", "origin-2@9s+1s"]), window).is_ok());
    }
}
