//! Running the pattern against a live service: workers over one keep-alive connection pool,
//! for a warm-up and then a measured window, then stop by themselves.
//!
//! By default each worker is a closed loop: it sends its next request when the previous one
//! answered. With a rate ([`Options::rate`]) each worker sends on its own schedule
//! (`connections / rate` apart, the workers' schedules staggered), and one that falls behind
//! sends its next request at once and keeps its period from there, never a burst to catch up;
//! the report says the rate achieved. Latency is measured from the actual send.
//!
//! Beside the load, [`run_with`] injects faults ([`crate::inject`]), samples memory
//! ([`crate::memory`]) and checks the ratings ledger ([`crate::ledger`]) once every fault is
//! restored. A shutdown signal (Ctrl-C) stops the workers (each after the answer it waits for)
//! and restores every service at once.
//!
//! The catalogue's shape comes from the service itself (the top 100 from
//! `/movies/popular?limit=100`, the genres from `/genres`); user tokens are minted locally
//! with the service's JWT secret. By default only loopback targets are accepted, so a
//! mistyped URL cannot load someone else's server.

pub use crate::error::LoadError;
use crate::fault::{Fault, check_plan};
use crate::inject::{self, Scripts};
use crate::ledger::{self, Ledger, RatingAnswers, RatingFate};
use crate::link::{self, Answered, Link, Target};
use crate::memory::{self, MemoryProbe};
use crate::pattern::{Catalogue, Kind, Mix, Pattern, Request};
use crate::report::{Outcome, Pace, Recorder, Report};
use crate::timeline::Timeline;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, StatusCode};
use origin::auth::{Caller, Tokens};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use secrecy::SecretString;
use shared::dto::{Genres, PopularMovies};
use shared::params::UserId;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use url::Url;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of the origin or the edge.
    pub target: Url,
    /// Concurrent workers.
    pub connections: usize,
    /// Requests made before measuring (caches fill, connections open).
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Seed of the power-user choice and of every worker's request sequence.
    pub seed: u64,
    /// User ids are `1..=users`.
    pub users: i32,
    /// Movie ids are `1..=movies`.
    pub movies: i32,
    /// Request kinds' weights.
    pub mix: Mix,
    /// The service's JWT secret, to mint user tokens.
    pub jwt_secret: SecretString,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Accept a target that is not a loopback address.
    pub allow_remote: bool,
}

/// What else a run does besides sending load. The default is a plain closed-loop run, what
/// [`run`] does.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Total requests per second to pace the workers to; `None`: closed loop.
    pub rate: Option<f64>,
    /// Faults to inject, each from its start in the measured window.
    pub faults: Vec<Fault>,
    /// The scripts the faults are run with.
    pub scripts: Scripts,
    /// PostgreSQL to check the ratings ledger against (when the mix has ratings); `None`:
    /// no ledger.
    pub ledger: Option<SecretString>,
    /// Memory to sample during the run.
    pub memory: Option<MemoryProbe>,
    /// The timeline's table in periods of this many seconds (`--timeline-every`); 1 (or 0):
    /// second by second.
    pub timeline_every: usize,
}

/// How long the ledger waits for PostgreSQL to answer after the run.
const LEDGER_PATIENCE: Duration = Duration::from_secs(60);

/// The host and port the workers connect to, and the `Host` field their requests carry.
fn address_of(target: &Url) -> Result<(Target, HeaderValue), LoadError> {
    let bad = || LoadError::BadTarget(target.to_string());
    if target.scheme() != "http" {
        return Err(LoadError::Invalid(format!(
            "{target}: the load generator speaks plain HTTP/1.1 (http://)"
        )));
    }
    let host = match target.host().ok_or_else(bad)? {
        url::Host::Domain(name) => name.to_owned(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    };
    let port = target.port_or_known_default().ok_or_else(bad)?;
    let authority = match target.port() {
        Some(port) => format!("{}:{port}", target.host_str().ok_or_else(bad)?),
        None => target.host_str().ok_or_else(bad)?.to_owned(),
    };
    let host_field = HeaderValue::from_str(&authority).map_err(|_| bad())?;
    Ok((Target { host, port }, host_field))
}

fn is_loopback(target: &Url) -> Result<bool, LoadError> {
    match target.host() {
        Some(url::Host::Domain(name)) => Ok(name.eq_ignore_ascii_case("localhost")),
        Some(url::Host::Ipv4(ip)) => Ok(IpAddr::V4(ip).is_loopback()),
        Some(url::Host::Ipv6(ip)) => Ok(IpAddr::V6(ip).is_loopback()),
        None => Err(LoadError::BadTarget(target.to_string())),
    }
}

async fn fetch<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: Url,
) -> Result<T, LoadError> {
    let failed = |reason: String| LoadError::Discovery {
        url: url.to_string(),
        reason,
    };
    let response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!("status {}", response.status())));
    }
    response.json().await.map_err(|e| failed(e.to_string()))
}

/// Reads the catalogue's shape from the target.
pub(crate) async fn catalogue(
    client: &reqwest::Client,
    config: &Config,
) -> Result<Catalogue, LoadError> {
    discover(client, config).await
}

async fn discover(client: &reqwest::Client, config: &Config) -> Result<Catalogue, LoadError> {
    let join = |path: &str| {
        config
            .target
            .join(path)
            .map_err(|_| LoadError::BadTarget(config.target.to_string()))
    };
    let popular: PopularMovies = fetch(client, join("/movies/popular?limit=100")?).await?;
    let genres: Genres = fetch(client, join("/genres")?).await?;
    Ok(Catalogue {
        users: config.users,
        movies: config.movies,
        top: popular.movies.iter().map(|m| m.id).collect(),
        genres: genres.genres.into_iter().map(|g| g.slug).collect(),
    })
}

/// Asks the origin to warm its caches (admin token), as an operator would after a deploy.
pub async fn warm(config: &Config) -> Result<(), LoadError> {
    let token = Tokens::new(&config.jwt_secret)
        .and_then(|tokens| tokens.mint(Caller::Admin, Duration::from_secs(600)))
        .map_err(|e| LoadError::Token(e.to_string()))?;
    let url = config
        .target
        .join("/admin/cache/warm")
        .map_err(|_| LoadError::BadTarget(config.target.to_string()))?;
    let response = reqwest::Client::new()
        .post(url.clone())
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| LoadError::Discovery {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    if !response.status().is_success() {
        return Err(LoadError::Discovery {
            url: url.to_string(),
            reason: format!("status {}", response.status()),
        });
    }
    Ok(())
}

struct Shared {
    client: reqwest::Client,
    target: Url,
    /// Where the workers' connections go, and the `Host` they name.
    address: Target,
    host: HeaderValue,
    timeout: Duration,
    pattern: Pattern,
    tokens: Vec<HeaderValue>,
}

impl Shared {
    /// One authenticated read before the run: a token the target refuses would turn every
    /// per-user request into a 401, which is a configuration error, not a measurement.
    async fn check_token(&self) -> Result<(), LoadError> {
        let probe = Request::Profile { user: 1 };
        let (Ok(url), Some(token)) = (self.target.join(&probe.path()), self.token(&probe)) else {
            return Ok(());
        };
        let builder = self.client.get(url).header(AUTHORIZATION, token.clone());
        let status = match builder.send().await {
            Ok(response) => response.status(),
            // Unreachable targets show up in the run's transport errors.
            Err(_) => return Ok(()),
        };
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(LoadError::Rejected { status });
        }
        Ok(())
    }

    /// The token of `request`'s user, if it needs one.
    fn token(&self, request: &Request) -> Option<&HeaderValue> {
        request
            .user()
            .and_then(|u| self.tokens.get(usize::try_from(u - 1).ok()?))
    }

    /// The HTTP request for `request`, with its user's token; `None` if it cannot be built.
    fn build(&self, request: &Request) -> Option<hyper::Request<link::Body>> {
        let (method, body) = match request {
            Request::Rating { movie, rating, .. } => (
                Method::POST,
                serde_json::to_vec(&serde_json::json!({ "movie_id": movie, "rating": rating }))
                    .ok()?,
            ),
            _ => (Method::GET, Vec::new()),
        };
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(request.path())
            .header(HOST, self.host.clone());
        if !body.is_empty() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        if let Some(token) = self.token(request) {
            builder = builder.header(AUTHORIZATION, token.clone());
        }
        builder.body(link::Body::from(body)).ok()
    }

    async fn send(&self, link: &mut Link, request: &Request) -> Answer {
        let Some(built) = self.build(request) else {
            return Answer {
                outcome: Outcome::Refused,
                fate: RatingFate::NotSent,
            };
        };
        let Answered { status, hit } = match link.exchange(&self.address, built, self.timeout).await
        {
            Ok(answered) => answered,
            Err(failure) => {
                return Answer {
                    outcome: if failure.timeout {
                        Outcome::Timeout
                    } else {
                        Outcome::Transport
                    },
                    // Never written: the request never left. Otherwise it may have been
                    // processed; if the status came, the ledger knows what was promised.
                    fate: match (failure.sent, failure.status) {
                        (false, _) => RatingFate::NotSent,
                        (true, Some(status)) => RatingFate::Answered(status.as_u16()),
                        (true, None) => RatingFate::Unknown,
                    },
                };
            }
        };
        let outcome = if status.is_success() || status.is_redirection() {
            Outcome::Ok { hit }
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            Outcome::Unavailable
        } else if status.is_client_error() {
            Outcome::Refused
        } else {
            Outcome::ServerError
        };
        Answer {
            outcome,
            fate: RatingFate::Answered(status.as_u16()),
        }
    }
}

/// One request's end: its class, and what the ledger can tell of it.
#[derive(Debug, Clone, Copy)]
struct Answer {
    outcome: Outcome,
    fate: RatingFate,
}

/// Resolves once `stop` says `true`; never if its sender is gone without saying so.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stopped| *stopped).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs the pattern: warm-up, then the measured window; returns the measured figures.
pub async fn run(config: &Config) -> Result<Report, LoadError> {
    run_with(config, &Options::default(), std::future::pending()).await
}

/// [`run`] with pacing, faults, the ratings ledger and memory samples as `options` ask. When
/// `shutdown` resolves (e.g. `tokio::signal::ctrl_c()`), the workers stop, every broken
/// service is restored, and the report so far comes back marked `interrupted`.
pub async fn run_with(
    config: &Config,
    options: &Options,
    shutdown: impl Future<Output = ()>,
) -> Result<Report, LoadError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let body = execute(config, options, stop_rx);
    tokio::pin!(body, shutdown);
    let mut signalled = false;
    loop {
        tokio::select! {
            result = &mut body => return result,
            _ = &mut shutdown, if !signalled => {
                signalled = true;
                let _ = stop_tx.send(true);
            }
        }
    }
}

async fn execute(
    config: &Config,
    options: &Options,
    stop: watch::Receiver<bool>,
) -> Result<Report, LoadError> {
    if !config.allow_remote && !is_loopback(&config.target)? {
        return Err(LoadError::Remote(config.target.to_string()));
    }
    if let Some(rate) = options.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(LoadError::Invalid(format!(
            "invalid rate {rate}: expected requests per second above 0"
        )));
    }
    check_plan(&options.faults, config.duration)?;
    let faults = inject::prepare(&options.faults, &options.scripts).await?;

    let connections = config.connections.max(1);
    let client = reqwest::Client::builder()
        .timeout(config.timeout)
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .build()?;
    let catalogue = discover(&client, config).await?;
    let minter = Tokens::new(&config.jwt_secret).map_err(|e| LoadError::Token(e.to_string()))?;
    let lifetime = config.warmup + config.duration + Duration::from_secs(3600);
    let tokens = (1..=config.users.max(0))
        .map(|user| {
            let token = minter
                .mint(Caller::User(UserId(user)), lifetime)
                .map_err(|e| LoadError::Token(e.to_string()))?;
            HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| LoadError::Token(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (address, host) = address_of(&config.target)?;
    let shared = Arc::new(Shared {
        client,
        target: config.target.clone(),
        address,
        host,
        timeout: config.timeout,
        pattern: Pattern::new(catalogue, config.mix.clone(), config.seed),
        tokens,
    });
    if Kind::ALL
        .iter()
        .any(|kind| kind.per_user() && config.mix.weight(*kind) > 0)
    {
        shared.check_token().await?;
    }
    let ledger_url = options
        .ledger
        .as_ref()
        .filter(|_| config.mix.weight(Kind::Rating) > 0);
    let rows_before = match ledger_url {
        Some(url) => Some(ledger::count_ratings(url).await?),
        None => None,
    };

    let start = Instant::now();
    let measure_from = start + config.warmup;
    let end = measure_from + config.duration;
    let memory = options
        .memory
        .clone()
        .map(|probe| tokio::spawn(memory::sample_until(probe, measure_from, end, stop.clone())));
    let fault_tasks: Vec<_> = faults
        .into_iter()
        .map(|fault| {
            tokio::spawn(inject::drive(
                fault,
                options.scripts.clone(),
                measure_from,
                stop.clone(),
            ))
        })
        .collect();
    let timeline = Timeline::default();
    let period = options
        .rate
        .map(|rate| Duration::from_secs_f64(connections as f64 / rate));
    let workers: Vec<_> = (0..connections)
        .map(|worker| {
            let shared = shared.clone();
            let seed = config
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add(worker as u64);
            let mut seconds = timeline.recorder();
            let mut stop = stop.clone();
            // Staggered schedules: worker w starts w/connections of a period late.
            let mut pace = period.map(|period| {
                let first = start + period.mul_f64(worker as f64 / connections as f64);
                let mut ticks = tokio::time::interval_at(first.into(), period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks
            });
            tokio::spawn(async move {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut recorder = Recorder::default();
                let mut ratings = RatingAnswers::default();
                let mut warmup = 0u64;
                let mut link = Link::default();
                loop {
                    if let Some(ticks) = &mut pace {
                        tokio::select! {
                            _ = ticks.tick() => {}
                            _ = tokio::time::sleep_until(end.into()) => break,
                            _ = stopped(&mut stop) => break,
                        }
                    }
                    let sent = Instant::now();
                    if sent >= end || *stop.borrow() {
                        break;
                    }
                    let request = shared.pattern.next(&mut rng);
                    let rating = request.kind() == Kind::Rating;
                    // Not abandoned on a stop: its answer keeps the ledger exact.
                    let answer = shared.send(&mut link, &request).await;
                    let latency = sent.elapsed();
                    if rating {
                        ratings.record(answer.fate);
                    }
                    if sent >= measure_from {
                        recorder.record(request.kind(), latency, answer.outcome);
                        let second = sent.duration_since(measure_from).as_secs() as usize;
                        seconds.record(second, latency, answer.outcome, !rating);
                    } else {
                        warmup += 1;
                    }
                }
                (recorder, warmup, ratings)
            })
        })
        .collect();
    let mut total = Recorder::default();
    let mut warmup = 0;
    let mut ratings = RatingAnswers::default();
    for worker in workers {
        if let Ok((recorder, count, answers)) = worker.await {
            total.merge(recorder);
            warmup += count;
            ratings.merge(answers);
        }
    }
    let measured = Instant::now().saturating_duration_since(measure_from);
    // Every fault ends within the window, so this waits for the last restoration only.
    let mut fault_reports = Vec::with_capacity(fault_tasks.len());
    for task in fault_tasks {
        if let Ok(report) = task.await {
            fault_reports.push(report);
        }
    }
    let memory = match memory {
        Some(task) => task.await.ok(),
        None => None,
    };
    let interrupted = *stop.borrow();

    let mut report = total.report(measured, warmup);
    report.timeout_ms = config.timeout.as_millis() as u64;
    let window = if interrupted {
        measured.min(config.duration)
    } else {
        config.duration
    };
    let seconds = window.as_secs_f64().ceil() as usize;
    let active: Vec<(String, f64, f64)> = fault_reports
        .iter()
        .filter_map(|f| {
            let (from, to) = f.active(window.as_secs_f64())?;
            Some((f.label.clone(), from, to))
        })
        .collect();
    report.timeline = timeline.rows(seconds, &active);
    if options.timeline_every > 1 {
        report.periods = Some(timeline.rows_every(seconds, options.timeline_every, &active));
    }
    // Every measured request was sent within the window: rate over the window itself.
    report.pace = options.rate.map(|target| Pace {
        target,
        achieved: report.total.requests as f64 / window.as_secs_f64().max(1e-9),
    });
    report.faults = fault_reports;
    report.attribute_fault_errors();
    report.memory = memory;
    report.interrupted = interrupted;
    if let (Some(url), Some(before)) = (ledger_url, rows_before) {
        report.ledger = Some(Ledger {
            before,
            after: ledger::count_when_ready(url, LEDGER_PATIENCE).await?,
            answers: ratings,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_by_default() {
        for (url, local) in [
            ("http://127.0.0.1:8080", true),
            ("http://[::1]:8787", true),
            ("http://localhost:8080", true),
            ("http://10.0.0.1", false),
            ("https://example.org", false),
        ] {
            assert_eq!(
                is_loopback(&Url::parse(url).unwrap()).unwrap(),
                local,
                "{url}"
            );
        }
    }

    /// Where the workers connect and the `Host` they send: the URL's authority as written
    /// (the default port left out), an IPv6 address unbracketed for `connect`.
    #[test]
    fn address_and_host_field_of_a_target() {
        for (url, host, port, field) in [
            ("http://127.0.0.1:8080", "127.0.0.1", 8080, "127.0.0.1:8080"),
            ("http://[::1]:8787/", "::1", 8787, "[::1]:8787"),
            ("http://localhost", "localhost", 80, "localhost"),
        ] {
            let (target, host_field) = address_of(&Url::parse(url).unwrap()).unwrap();
            assert_eq!((target.host.as_str(), target.port), (host, port), "{url}");
            assert_eq!(host_field, field, "{url}");
        }
        let https = address_of(&Url::parse("https://127.0.0.1:8443").unwrap());
        assert!(matches!(https, Err(LoadError::Invalid(_))), "{https:?}");
    }
}
