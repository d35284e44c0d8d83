//! Running [`Fault`]s against the project's own services, through the project's own scripts
//! (`scripts/services.sh`, `scripts/origin-instance.sh`), so a fault stops and starts a
//! service exactly as a developer would. Each fault is one task: wait for its start, break the
//! service, wait for its end (or for the run to be stopped), restore it, and record when each
//! action started and ended. A service is restored whatever happened in between: a run that
//! is stopped early restores at once.
//!
//! Only services identified as the project's own are touched: a Redis whose pid file, port
//! file and `INFO server` (`process_id`, `tcp_port`) agree; a PostgreSQL whose
//! `postmaster.pid` names the port of its folder; a cluster master that is one of the nodes of
//! the cluster folder (`baseport`, `nPORT/redis.pid`); an origin instance whose pid file names
//! a live process group leader started by `origin-instance.sh` (its saved environment is
//! there). Anything else is refused before the run starts ([`LoadError::NotOurs`]).
//!
//! For a `cluster-master` fault the cluster is polled every 100 ms from the kill on, and the
//! failover window is the time until every surviving node says `cluster_state:ok` and maps
//! every slot to a live master (the killed one excluded, before the others notice it).

use crate::cluster;
use crate::error::LoadError;
use crate::fault::{Fault, FaultKind};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

/// The scripts faults are run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scripts {
    /// `scripts/services.sh`.
    pub services: PathBuf,
    /// `scripts/origin-instance.sh`.
    pub origin_instance: PathBuf,
}

impl Default for Scripts {
    /// The repository's own, found from this crate's folder.
    fn default() -> Self {
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let scripts = crate_dir.parent().unwrap_or(crate_dir).join("scripts");
        Scripts {
            services: scripts.join("services.sh"),
            origin_instance: scripts.join("origin-instance.sh"),
        }
    }
}

/// One script run by a fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    /// The command line.
    pub command: String,
    /// When it started, in seconds from the start of the measured window.
    pub started_s: f64,
    /// When it ended.
    pub ended_s: f64,
    /// Why it failed; `None` if it succeeded.
    pub error: Option<String>,
}

/// The failover window of a `cluster-master` fault.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Failover {
    /// The kill, in seconds from the start of the measured window.
    pub from_s: f64,
    /// When every slot was served by a live master again; `None`: not within the watch.
    pub to_s: Option<f64>,
}

impl Failover {
    /// Its length in seconds, if it closed.
    pub fn secs(&self) -> Option<f64> {
        self.to_s.map(|to| to - self.from_s)
    }
}

/// What happened to one fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultReport {
    /// The fault, as on the command line (`redis@8s+8s`).
    pub fault: String,
    /// Its label in the timeline.
    pub label: String,
    /// The service it broke, once identified (`cluster master 127.0.0.1:7102 (pid 123)`).
    pub target: String,
    /// Breaking it; `None` if the run stopped first.
    pub injected: Option<Action>,
    /// Restoring it.
    pub restored: Option<Action>,
    /// For `cluster-master`: the failover window.
    pub failover: Option<Failover>,
    /// Errors (5xx and no response) from its start until the next fault's start (or the end).
    pub errors: u64,
    /// The first second of that span with errors.
    pub first_error_second: Option<u32>,
    /// The last second of that span with errors.
    pub last_error_second: Option<u32>,
}

impl FaultReport {
    fn new(fault: &Fault) -> Self {
        FaultReport {
            fault: fault.to_string(),
            label: fault.label(),
            target: fault.kind.target(),
            injected: None,
            restored: None,
            failover: None,
            errors: 0,
            first_error_second: None,
            last_error_second: None,
        }
    }

    /// When the service was broken: from the start of the injection to the end of the
    /// restoration (`until` if it was not restored), in seconds from the window's start.
    pub fn active(&self, until: f64) -> Option<(f64, f64)> {
        let from = self.injected.as_ref()?.started_s;
        let to = self.restored.as_ref().map_or(until, |r| r.ended_s);
        Some((from, to))
    }

    /// Why an action failed, if one did.
    pub fn failure(&self) -> Option<String> {
        [&self.injected, &self.restored]
            .into_iter()
            .flatten()
            .find_map(|a| a.error.as_ref().map(|e| format!("{}: {e}", a.command)))
    }
}

/// Checks that every fault names a service of the project's own and resolves "the last
/// origin instance" to its number; run before any load is sent.
pub(crate) async fn prepare(faults: &[Fault], scripts: &Scripts) -> Result<Vec<Fault>, LoadError> {
    let mut prepared = Vec::with_capacity(faults.len());
    for fault in faults {
        let refuse = |reason: String| LoadError::NotOurs {
            target: fault.kind.target(),
            reason,
        };
        let script = match fault.kind {
            FaultKind::Origin { .. } => &scripts.origin_instance,
            _ => &scripts.services,
        };
        if !script.is_file() {
            return Err(refuse(format!("no script {}", script.display())));
        }
        let victim = identify(&fault.kind).await.map_err(refuse)?;
        let mut fault = fault.clone();
        if let (FaultKind::Origin { instance, .. }, Victim::Origin { n, .. }) =
            (&mut fault.kind, &victim)
        {
            *instance = Some(*n);
        }
        prepared.push(fault);
    }
    Ok(prepared)
}

/// The process a fault will stop, identified.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Victim {
    Redis { pid: u32 },
    Postgres { pid: u32 },
    ClusterNode { port: u16, id: String, pid: u32 },
    Origin { n: u32, pid: u32 },
}

async fn identify(kind: &FaultKind) -> Result<Victim, String> {
    match kind {
        FaultKind::Redis { dir, port } => Ok(Victim::Redis {
            pid: redis_process(dir, *port).await?,
        }),
        FaultKind::Postgres { dir, port } => Ok(Victim::Postgres {
            pid: postgres_process(dir, *port)?,
        }),
        FaultKind::ClusterMaster { dir, base_port } => cluster_master(dir, *base_port).await,
        FaultKind::Origin { run_dir, instance } => origin_process(run_dir, *instance),
    }
}

fn read_trimmed(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn read_pid(path: &Path) -> Result<u32, String> {
    let text = read_trimmed(path)?;
    let pid = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| format!("{} holds no pid", path.display()))?;
    if alive(pid) {
        Ok(pid)
    } else {
        Err(format!("pid {pid} of {} is not running", path.display()))
    }
}

/// `(state, process group)` from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

/// Running and not a zombie.
fn alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

fn check_port_file(dir: &Path, port: u16) -> Result<(), String> {
    let recorded = read_trimmed(&dir.join("port"))?;
    if recorded == port.to_string() {
        Ok(())
    } else {
        Err(format!(
            "{} says port {recorded}, not {port}",
            dir.join("port").display()
        ))
    }
}

async fn ask(port: u16, command: &[&str]) -> Result<String, String> {
    let query = async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let mut cmd = redis::cmd(command[0]);
        for arg in &command[1..] {
            cmd.arg(*arg);
        }
        cmd.query_async::<String>(&mut connection).await
    };
    match tokio::time::timeout(Duration::from_millis(500), query).await {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(format!("127.0.0.1:{port}: {e}")),
        Err(_) => Err(format!("127.0.0.1:{port} did not answer within 500 ms")),
    }
}

fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
}

/// The pid of the Redis of `dir` on `port`, if its files and its own answer agree.
async fn redis_process(dir: &Path, port: u16) -> Result<u32, String> {
    let pid = read_pid(&dir.join("redis.pid"))?;
    check_port_file(dir, port)?;
    let info = ask(port, &["INFO", "server"]).await?;
    let says = (
        info_field(&info, "process_id"),
        info_field(&info, "tcp_port"),
    );
    if says
        == (
            Some(pid.to_string().as_str()),
            Some(port.to_string().as_str()),
        )
    {
        Ok(pid)
    } else {
        Err(format!(
            "127.0.0.1:{port} is process {}, not pid {pid} of {}",
            says.0.unwrap_or("?"),
            dir.join("redis.pid").display()
        ))
    }
}

/// The postmaster of `dir`, if its `postmaster.pid` names `port`.
fn postgres_process(dir: &Path, port: u16) -> Result<u32, String> {
    let pidfile = dir.join("data/postmaster.pid");
    let pid = read_pid(&pidfile)?;
    let text = read_trimmed(&pidfile)?;
    // Line 4 of postmaster.pid is the port.
    if text.lines().nth(3).map(str::trim) != Some(port.to_string().as_str()) {
        return Err(format!("{} does not name port {port}", pidfile.display()));
    }
    check_port_file(dir, port)?;
    Ok(pid)
}

fn cluster_ports(base: u16) -> impl Iterator<Item = u16> {
    (0..6).filter_map(move |i| base.checked_add(i))
}

/// A live master of the cluster in `dir` that is one of its own nodes (lowest port first).
async fn cluster_master(dir: &Path, base: u16) -> Result<Victim, String> {
    let recorded = read_trimmed(&dir.join("baseport"))?;
    if recorded != base.to_string() {
        return Err(format!(
            "{} says base port {recorded}, not {base}",
            dir.join("baseport").display()
        ));
    }
    let mut nodes = None;
    for port in cluster_ports(base) {
        if let Ok(text) = ask(port, &["CLUSTER", "NODES"]).await {
            nodes = Some(cluster::parse_nodes(&text));
            break;
        }
    }
    let nodes = nodes.ok_or_else(|| format!("no node on ports {base}..{} answers", base + 5))?;
    let mut why = Vec::new();
    for master in cluster::live_masters(&nodes) {
        if !cluster_ports(base).any(|p| p == master.port) {
            continue;
        }
        match redis_process(&dir.join(format!("n{}", master.port)), master.port).await {
            Ok(pid) => {
                return Ok(Victim::ClusterNode {
                    port: master.port,
                    id: master.id.clone(),
                    pid,
                });
            }
            Err(e) => why.push(e),
        }
    }
    Err(format!(
        "no live master of the cluster is one of its own nodes ({})",
        why.join("; ")
    ))
}

fn origin_name(n: u32) -> String {
    if n == 1 {
        "origin".to_owned()
    } else {
        format!("origin-{n}")
    }
}

/// Instance `instance` (or the highest-numbered one with a pid file) of `run_dir`.
fn origin_process(run_dir: &Path, instance: Option<u32>) -> Result<Victim, String> {
    let n = match instance {
        Some(n) => n,
        None => std::fs::read_dir(run_dir)
            .map_err(|e| format!("cannot read {}: {e}", run_dir.display()))?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                match name.as_str() {
                    "origin.pid" => Some(1),
                    _ => name
                        .strip_prefix("origin-")?
                        .strip_suffix(".pid")?
                        .parse()
                        .ok(),
                }
            })
            .max()
            .ok_or_else(|| format!("no origin pid file in {}", run_dir.display()))?,
    };
    let name = origin_name(n);
    let pid = read_pid(&run_dir.join(format!("{name}.pid")))?;
    if proc_stat(pid).map(|(_, pgrp)| pgrp) != Some(pid) {
        return Err(format!(
            "pid {pid} does not lead its own process group (not started by origin-instance.sh)"
        ));
    }
    let comm = read_trimmed(Path::new(&format!("/proc/{pid}/comm")))?;
    if !comm.starts_with("origin") {
        return Err(format!("pid {pid} is {comm:?}, not an origin"));
    }
    let env = run_dir.join(format!("{name}.env"));
    if !env.is_file() {
        return Err(format!(
            "{} is missing: it was not started by scripts/origin-instance.sh, so it cannot be started again the same way (restart it with scripts/up.sh)",
            env.display()
        ));
    }
    Ok(Victim::Origin { n, pid })
}

/// The inject and restore command lines of a fault on `victim`.
fn commands(kind: &FaultKind, victim: &Victim, scripts: &Scripts) -> (Command, Command, String) {
    let services = |args: Vec<String>| Command {
        program: scripts.services.clone(),
        args,
        env: Vec::new(),
    };
    let dir = |d: &Path| d.display().to_string();
    match (kind, victim) {
        (FaultKind::Redis { dir: d, port }, Victim::Redis { pid }) => (
            services(vec!["redis-stop".into(), dir(d)]),
            services(vec!["redis-start".into(), dir(d), port.to_string()]),
            format!("Redis 127.0.0.1:{port} (pid {pid})"),
        ),
        (FaultKind::Postgres { dir: d, port }, Victim::Postgres { pid }) => (
            services(vec!["pg-stop".into(), dir(d)]),
            services(vec!["pg-start".into(), dir(d), port.to_string()]),
            format!("PostgreSQL 127.0.0.1:{port} (pid {pid})"),
        ),
        (FaultKind::ClusterMaster { dir: d, .. }, Victim::ClusterNode { port, pid, .. }) => (
            services(vec!["cluster-node-kill".into(), dir(d), port.to_string()]),
            services(vec!["cluster-node-start".into(), dir(d), port.to_string()]),
            format!("cluster master 127.0.0.1:{port} (pid {pid})"),
        ),
        (FaultKind::Origin { run_dir, .. }, Victim::Origin { n, pid }) => {
            let origin = |verb: &str| Command {
                program: scripts.origin_instance.clone(),
                args: vec![verb.to_owned(), n.to_string()],
                env: vec![("RUN_DIR".to_owned(), dir(run_dir))],
            };
            (
                origin("kill"),
                origin("respawn"),
                format!("origin instance {n} (pid {pid})"),
            )
        }
        _ => unreachable!("a victim is identified from its own kind"),
    }
}

struct Command {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Command {
    fn line(&self) -> String {
        let mut line = self.program.display().to_string();
        for arg in &self.args {
            line.push(' ');
            line.push_str(arg);
        }
        line
    }

    /// Runs it to completion (2 minutes at most) in its own process group, so a Ctrl-C meant
    /// for loadgen does not interrupt a service half-started.
    async fn run(&self) -> Result<(), String> {
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        let status = match tokio::time::timeout(Duration::from_secs(120), child.wait()).await {
            Ok(status) => status.map_err(|e| e.to_string())?,
            Err(_) => {
                let _ = child.kill().await;
                return Err("did not finish within 120 s".to_owned());
            }
        };
        if status.success() {
            return Ok(());
        }
        // A daemon it started may hold the pipe open: read what is there, briefly.
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let mut buf = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_millis(200), pipe.read_to_end(&mut buf)).await;
            stderr = String::from_utf8_lossy(&buf).trim().to_owned();
        }
        Err(format!("{status}: {stderr}"))
    }

    async fn timed(&self, t0: Instant) -> Action {
        let started_s = seconds_from(t0, Instant::now());
        let result = self.run().await;
        Action {
            command: self.line(),
            started_s,
            ended_s: seconds_from(t0, Instant::now()),
            error: result.err(),
        }
    }
}

/// Signed seconds from `t0` to `t`.
fn seconds_from(t0: Instant, t: Instant) -> f64 {
    if t >= t0 {
        t.duration_since(t0).as_secs_f64()
    } else {
        -t0.duration_since(t).as_secs_f64()
    }
}

/// Runs one fault: `t0` is the start of the measured window; a `true` on `stop` ends the
/// wait early (the service is restored at once).
pub(crate) async fn drive(
    fault: Fault,
    scripts: Scripts,
    t0: Instant,
    mut stop: watch::Receiver<bool>,
) -> FaultReport {
    let mut report = FaultReport::new(&fault);
    tokio::select! {
        _ = tokio::time::sleep_until((t0 + fault.at).into()) => {}
        _ = crate::run::stopped(&mut stop) => return report,
    }
    let started_s = seconds_from(t0, Instant::now());
    let victim = match identify(&fault.kind).await {
        Ok(victim) => victim,
        Err(reason) => {
            report.injected = Some(Action {
                command: format!("identify {}", fault.kind.target()),
                started_s,
                ended_s: seconds_from(t0, Instant::now()),
                error: Some(format!("not touched: {reason}")),
            });
            return report;
        }
    };
    let (inject, restore, target) = commands(&fault.kind, &victim, &scripts);
    report.target = target;
    let injected = inject.timed(t0).await;
    let killed_at = t0 + Duration::from_secs_f64(injected.ended_s.max(0.0));
    report.injected = Some(injected);

    let restored = Arc::new(AtomicBool::new(false));
    let watch_failover = async {
        match (&fault.kind, &victim) {
            (FaultKind::ClusterMaster { base_port, .. }, Victim::ClusterNode { port, id, .. }) => {
                let until = t0 + fault.ends() + Duration::from_secs(30);
                let to = failover_closed(*base_port, *port, id, &restored, until, stop.clone())
                    .await
                    .map(|at| seconds_from(t0, at));
                Some(Failover {
                    from_s: seconds_from(t0, killed_at),
                    to_s: to,
                })
            }
            _ => None,
        }
    };
    let mut stop_wait = stop.clone();
    let restore = async {
        tokio::select! {
            _ = tokio::time::sleep_until((t0 + fault.ends()).into()) => {}
            _ = crate::run::stopped(&mut stop_wait) => {}
        }
        let action = restore.timed(t0).await;
        restored.store(true, Ordering::Release);
        action
    };
    let (failover, restored_action) = tokio::join!(watch_failover, restore);
    report.restored = Some(restored_action);
    report.failover = failover;
    report
}

/// Polls the surviving nodes every 100 ms until each says `cluster_state:ok` and maps every
/// slot to a live master; the killed node `dead` counts as down until it is restored.
async fn failover_closed(
    base: u16,
    killed_port: u16,
    dead: &str,
    restored: &AtomicBool,
    until: Instant,
    mut stop: watch::Receiver<bool>,
) -> Option<Instant> {
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < until {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = crate::run::stopped(&mut stop) => return None,
        }
        let dead = (!restored.load(Ordering::Acquire)).then_some(dead);
        let mut ok = true;
        for port in cluster_ports(base).filter(|p| *p != killed_port) {
            let (info, nodes) = tokio::join!(
                ask(port, &["CLUSTER", "INFO"]),
                ask(port, &["CLUSTER", "NODES"])
            );
            let served = match (info, nodes) {
                (Ok(info), Ok(nodes)) => {
                    cluster::state_ok(&info)
                        && cluster::all_slots_served(&cluster::parse_nodes(&nodes), dead)
                }
                _ => false,
            };
            if !served {
                ok = false;
                break;
            }
        }
        if ok {
            return Some(Instant::now());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_is_active_from_its_injection_to_the_end_of_its_restoration() {
        let fault: Fault = "redis@2s+3s"
            .parse::<crate::fault::FaultSpec>()
            .unwrap()
            .resolve(&crate::fault::Layout::default());
        let mut report = FaultReport::new(&fault);
        assert_eq!(report.active(10.0), None, "never injected");
        let action = |started_s: f64, ended_s: f64, error: Option<&str>| Action {
            command: "x".into(),
            started_s,
            ended_s,
            error: error.map(str::to_owned),
        };
        report.injected = Some(action(2.0, 2.1, None));
        assert_eq!(report.active(10.0), Some((2.0, 10.0)), "not restored");
        report.restored = Some(action(5.0, 5.4, Some("exit 1")));
        assert_eq!(report.active(10.0), Some((2.0, 5.4)));
        assert_eq!(report.failure().as_deref(), Some("x: exit 1"));
        assert_eq!(report.label, "redis");
    }

    #[test]
    fn only_live_processes_count() {
        assert!(alive(std::process::id()));
        let (_, pgrp) = proc_stat(std::process::id()).unwrap();
        assert!(pgrp > 0);
        assert!(!alive(u32::MAX));
    }

    #[test]
    fn a_foreign_or_missing_service_is_refused() {
        let dir = std::env::temp_dir().join(format!("loadgen-inject-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        // No pid file at all.
        assert!(postgres_process(&dir, 54329).is_err());
        // A live pid (this test) but for another port.
        std::fs::write(
            dir.join("data/postmaster.pid"),
            format!("{}\n/x\n0\n5432\n", std::process::id()),
        )
        .unwrap();
        std::fs::write(dir.join("port"), "54329\n").unwrap();
        let err = postgres_process(&dir, 54329).unwrap_err();
        assert!(err.contains("does not name port 54329"), "{err}");
        std::fs::write(
            dir.join("data/postmaster.pid"),
            format!("{}\n/x\n0\n54329\n", std::process::id()),
        )
        .unwrap();
        assert_eq!(postgres_process(&dir, 54329), Ok(std::process::id()));
        // An origin pid file naming a process that leads no group of its own.
        std::fs::write(
            dir.join("origin-3.pid"),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        let err = origin_process(&dir, None);
        if proc_stat(std::process::id()).map(|(_, g)| g) != Some(std::process::id()) {
            assert!(err.unwrap_err().contains("process group"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
