//! `loadgen`: the command line of the load generator. See the crate documentation and the
//! README's "Measuring" section.

use clap::Parser;
use loadgen::{Config, Mix};
use secrecy::SecretString;
use std::process::ExitCode;
use std::time::Duration;
use url::Url;

/// Replays the access pattern of SPEC section 1 (70% of per-user requests from 20% of the
/// users, 40% of movie reads on the top 100) and reports req/s, latency percentiles and the
/// cache hit rate per request kind. Stops by itself after warm-up + duration.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Base URL of the origin (or of the edge).
    #[arg(long, env = "LOADGEN_TARGET", default_value = "http://127.0.0.1:8080")]
    target: Url,
    /// Concurrent connections (closed-loop workers).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Warm-up seconds, not measured.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
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
    /// Per-request timeout in milliseconds.
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
    wrk_script: Option<std::path::PathBuf>,
    /// Requests in the `wrk` script (replayed in a loop).
    #[arg(long, default_value_t = 50_000)]
    wrk_requests: usize,
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
    if args.warm
        && let Err(err) = loadgen::warm(&config).await
    {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "loading {} with {} connections: {} s warm-up, {} s measured",
        config.target,
        config.connections,
        config.warmup.as_secs(),
        config.duration.as_secs()
    );
    match loadgen::run(&config).await {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("serialisable")
                );
            } else {
                println!("{report}");
            }
            if report.failures() > 0 {
                eprintln!(
                    "error: {} requests failed (5xx or no response)",
                    report.failures()
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
