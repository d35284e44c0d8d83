//! `loadgen`: the command line of the load generator. See the crate documentation and the
//! README's "Measuring" section.
//!
//! ```text
//! cargo build --release -p loadgen
//! target/release/loadgen --warmup 5 --duration 20                      # closed loop, full mix
//! target/release/loadgen --duration 20 --fault postgres@6s+8s --timeline-csv /tmp/pg.csv
//! target/release/loadgen --duration 600 --rate 5000 --sample-memory    # a soak
//! ```
//!
//! Exit status: 0; 1 when the run failed, a fault could not be injected or restored, or (in a
//! run without faults) requests failed; 3 when the ratings ledger does not balance; 130 when
//! interrupted.

use clap::Parser;
use loadgen::fault::{FaultSpec, Layout};
use loadgen::{Config, MemoryProbe, Mix, Options, OriginProcess, Scripts};
use secrecy::SecretString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use url::Url;

/// Replays the access pattern of SPEC section 1 (70% of per-user requests from 20% of the
/// users, 40% of movie reads on the top 100) and reports req/s, latency percentiles and the
/// cache hit rate per request kind, second by second and in total. Stops by itself after
/// warm-up + duration. Can break the project's own services meanwhile (--fault) and checks
/// that the ratings PostgreSQL gained are exactly the ones acknowledged.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Base URL of the origin (or of the edge).
    #[arg(long, env = "LOADGEN_TARGET", default_value = "http://127.0.0.1:8080")]
    target: Url,
    /// Concurrent connections (workers).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Warm-up seconds, not measured.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Pace the workers to this many requests per second in total (each on its own schedule;
    /// one that falls behind does not burst to catch up). Without it: closed loop.
    #[arg(long, value_name = "REQ_PER_SEC")]
    rate: Option<f64>,
    /// Seed of the power users and of the request sequences.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// User ids are 1..=users (MovieLens 100K: 943).
    #[arg(long, default_value_t = 943)]
    users: i32,
    /// Movie ids are 1..=movies (MovieLens 100K: 1682).
    #[arg(long, default_value_t = 1682)]
    movies: i32,
    /// Weights of the request kinds.
    #[arg(
        long,
        default_value = "recommendations=45,movie=25,popular=15,profile=8,genre_top=5,rating=2"
    )]
    mix: Mix,
    /// The service's JWT secret, to mint user tokens.
    #[arg(
        long,
        env = "JWT_SECRET",
        hide_env_values = true,
        default_value = origin::settings::DEV_JWT_SECRET
    )]
    jwt_secret: SecretString,
    /// Per-request timeout in milliseconds (a request without an answer by then is a client
    /// timeout).
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Ask the origin to warm its caches first (POST /admin/cache/warm).
    #[arg(long)]
    warm: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    allow_remote: bool,
    /// Write a `wrk` Lua script replaying the pattern to this file instead of running it
    /// (`wrk -s FILE`); the catalogue is read from the target.
    #[arg(long, value_name = "FILE")]
    wrk_script: Option<PathBuf>,
    /// Requests in the `wrk` script (replayed in a loop).
    #[arg(long, default_value_t = 50_000)]
    wrk_requests: usize,

    /// Break a service of the project's own during the measured window: KIND@START+DURATION,
    /// START from the end of warm-up (8s, 8 or 1500ms). KIND: redis, postgres (stopped, then
    /// started), cluster-master (one master SIGKILLed, then restarted to rejoin; the failover
    /// window is measured), origin or origin-N (an instance of scripts/up.sh SIGKILLed, then
    /// started again; default the last). Repeatable.
    #[arg(long, value_name = "KIND@START+DURATION")]
    fault: Vec<FaultSpec>,
    /// The services script faults use.
    #[arg(long, value_name = "FILE", default_value_os_t = Scripts::default().services)]
    services_script: PathBuf,
    /// The origin-instance script `origin` faults use.
    #[arg(long, value_name = "FILE", default_value_os_t = Scripts::default().origin_instance)]
    origin_script: PathBuf,
    /// Folder of the project's services (pg/, redis/, cluster/), as scripts/services.sh.
    #[arg(long, env = "SERVICES_DIR", default_value = "/tmp/movierec-services")]
    services_dir: PathBuf,
    /// Port of the project's PostgreSQL.
    #[arg(long, env = "PG_PORT", default_value_t = 54329)]
    pg_port: u16,
    /// Port of the project's single Redis.
    #[arg(long, env = "REDIS_PORT", default_value_t = 6390)]
    redis_port: u16,
    /// First port of the project's Redis Cluster (six nodes).
    #[arg(long, env = "CLUSTER_BASE_PORT", default_value_t = 7101)]
    cluster_base_port: u16,
    /// Folder of the origin instances' pid files (scripts/up.sh).
    #[arg(long, env = "RUN_DIR", default_value = "/tmp/movierec-run")]
    run_dir: PathBuf,
    /// Also write the per-second timeline to this CSV file.
    #[arg(long, value_name = "FILE")]
    timeline_csv: Option<PathBuf>,
    /// Print the timeline in periods of this many seconds (60: a row a minute, with req/s,
    /// P99 and the reads' hit rate) instead of second by second.
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    timeline_every: usize,

    /// PostgreSQL of the ratings ledger (rows in `ratings` before and after the run).
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://origin@127.0.0.1:54329/movies"
    )]
    database_url: SecretString,
    /// Do not check the ratings ledger (a target whose database is not reachable from here).
    #[arg(long)]
    no_ledger: bool,

    /// Sample the origin's resident memory and Redis's used memory during the run.
    #[arg(long)]
    sample_memory: bool,
    /// Seconds between memory samples.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    memory_every: f64,
    /// The origin's pid (default: read from RUN_DIR/origin.pid at every sample).
    #[arg(long)]
    origin_pid: Option<u32>,
    /// The Redis whose used memory is sampled (a cluster's list: its first node).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6390")]
    redis_url: String,
    /// Also write the memory samples to this CSV file.
    #[arg(long, value_name = "FILE")]
    memory_csv: Option<PathBuf>,
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("stopping: restoring every service, then reporting");
}

fn write(path: &PathBuf, text: &str) -> bool {
    match std::fs::write(path, text) {
        Ok(()) => true,
        Err(err) => {
            eprintln!("error: writing {}: {err}", path.display());
            false
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = Config {
        target: args.target,
        connections: args.connections,
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration.max(1)),
        seed: args.seed,
        users: args.users,
        movies: args.movies,
        mix: args.mix,
        jwt_secret: args.jwt_secret,
        timeout: Duration::from_millis(args.timeout_ms),
        allow_remote: args.allow_remote,
    };
    if let Some(path) = &args.wrk_script {
        let written = match loadgen::wrk::script(&config, args.wrk_requests).await {
            Ok(lua) => std::fs::write(path, lua).map_err(|e| e.to_string()),
            Err(err) => Err(err.to_string()),
        };
        return match written {
            Ok(()) => {
                eprintln!("wrote {} requests to {}", args.wrk_requests, path.display());
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let layout = Layout {
        services_dir: args.services_dir,
        pg_port: args.pg_port,
        redis_port: args.redis_port,
        cluster_base_port: args.cluster_base_port,
        run_dir: args.run_dir.clone(),
    };
    let options = Options {
        rate: args.rate,
        faults: args.fault.iter().map(|f| f.resolve(&layout)).collect(),
        scripts: Scripts {
            services: args.services_script,
            origin_instance: args.origin_script,
        },
        ledger: (!args.no_ledger).then_some(args.database_url),
        memory: args.sample_memory.then(|| MemoryProbe {
            origin: Some(match args.origin_pid {
                Some(pid) => OriginProcess::Pid(pid),
                None => OriginProcess::PidFile(args.run_dir.join("origin.pid")),
            }),
            redis_url: Some(args.redis_url),
            every: Duration::from_secs_f64(args.memory_every.max(0.1)),
        }),
        timeline_every: args.timeline_every,
    };
    if args.warm
        && let Err(err) = loadgen::warm(&config).await
    {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "loading {} with {} connections{}: {} s warm-up, {} s measured{}",
        config.target,
        config.connections,
        options
            .rate
            .map_or_else(String::new, |r| format!(" paced to {r} req/s")),
        config.warmup.as_secs(),
        config.duration.as_secs(),
        if options.faults.is_empty() {
            String::new()
        } else {
            let faults: Vec<String> = options.faults.iter().map(|f| f.to_string()).collect();
            format!("; faults {}", faults.join(", "))
        }
    );
    let report = match loadgen::run_with(&config, &options, interrupted()).await {
        Ok(report) => report,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut ok = true;
    if let Some(path) = &args.timeline_csv {
        ok &= write(path, &report.timeline_csv());
    }
    if let (Some(path), Some(memory)) = (&args.memory_csv, &report.memory) {
        ok &= write(path, &memory.csv());
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serialisable")
        );
    } else {
        println!("{}", report.timeline_table());
        if let Some(memory) = &report.memory {
            println!("{}", memory.table());
        }
        println!("{report}");
    }
    if report.interrupted {
        return ExitCode::from(130);
    }
    for failure in report.fault_failures() {
        eprintln!("error: fault: {failure}");
        ok = false;
    }
    // Errors under a fault are what is being measured; without one they fail the run.
    if options.faults.is_empty() && report.failures() > 0 {
        eprintln!(
            "error: {} requests failed (5xx or no response)",
            report.failures()
        );
        ok = false;
    }
    if report.ledger_balanced() == Some(false) {
        eprintln!("error: the ratings ledger does not balance");
        return ExitCode::from(3);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
