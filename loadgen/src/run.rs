//! Running the pattern against a live service: closed-loop workers (each sends its next
//! request when the previous answered) over one keep-alive connection pool, for a warm-up
//! and then a measured window, then stop by themselves.
//!
//! The catalogue's shape comes from the service itself (the top 100 from
//! `/movies/popular?limit=100`, the genres from `/genres`); user tokens are minted locally
//! with the service's JWT secret. By default only loopback targets are accepted, so a
//! mistyped URL cannot load someone else's server.

use crate::pattern::{Catalogue, Kind, Mix, Pattern, Request};
use crate::report::{Outcome, Recorder, Report};
use origin::auth::{Caller, Tokens};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::SecretString;
use shared::dto::{Genres, PopularMovies};
use shared::params::UserId;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of the origin or the edge.
    pub target: Url,
    /// Concurrent closed-loop workers.
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

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The target is not on loopback and remote targets were not allowed.
    #[error("refusing to load {0}: not a loopback address (pass --allow-remote to load it anyway)")]
    Remote(String),
    /// The target has no usable host.
    #[error("invalid target {0}: expected a base URL such as http://127.0.0.1:8080")]
    BadTarget(String),
    /// The service did not answer the catalogue requests.
    #[error("could not read {url} from the target: {reason}")]
    Discovery {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A token could not be minted.
    #[error("could not mint a token: {0}")]
    Token(String),
    /// The target refused a minted user token: the secrets differ.
    #[error(
        "the target refused a user token ({status}): set JWT_SECRET (or --jwt-secret) to the service's secret"
    )]
    Rejected {
        /// The answer's status.
        status: reqwest::StatusCode,
    },
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
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
        .mint(Caller::Admin, Duration::from_secs(600))
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
    pattern: Pattern,
    tokens: Vec<HeaderValue>,
}

impl Shared {
    /// One authenticated read before the run: a token the target refuses would turn every
    /// per-user request into a 401, which is a configuration error, not a measurement.
    async fn check_token(&self) -> Result<(), LoadError> {
        let Some(builder) = self.build(&Request::Profile { user: 1 }) else {
            return Ok(());
        };
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

    /// The HTTP request for `request`, with its user's token; `None` if its URL is invalid.
    fn build(&self, request: &Request) -> Option<reqwest::RequestBuilder> {
        let url = self.target.join(&request.path()).ok()?;
        let mut builder = match request {
            Request::Rating { movie, rating, .. } => self
                .client
                .post(url)
                .json(&serde_json::json!({ "movie_id": movie, "rating": rating })),
            _ => self.client.get(url),
        };
        if let Some(token) = request
            .user()
            .and_then(|u| self.tokens.get(usize::try_from(u - 1).ok()?))
        {
            builder = builder.header(AUTHORIZATION, token.clone());
        }
        Some(builder)
    }

    async fn send(&self, request: &Request) -> Outcome {
        let Some(builder) = self.build(request) else {
            return Outcome::Refused;
        };
        let response = match builder.send().await {
            Ok(response) => response,
            Err(_) => return Outcome::Transport,
        };
        let status = response.status();
        // The cache closest to this client appended the last member (RFC 9211 2); with
        // several field lines, it is in the last one.
        let hit = response
            .headers()
            .get_all("cache-status")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .next_back()
            .is_some_and(shared::cache_status::client_side_hit);
        // The whole body, as a client would read it.
        if response.bytes().await.is_err() {
            return Outcome::Transport;
        }
        if status.is_success() || status == reqwest::StatusCode::NOT_MODIFIED {
            Outcome::Ok { hit }
        } else if status.is_client_error() {
            Outcome::Refused
        } else {
            Outcome::ServerError
        }
    }
}

/// Runs the pattern: warm-up, then the measured window; returns the measured figures.
pub async fn run(config: &Config) -> Result<Report, LoadError> {
    if !config.allow_remote && !is_loopback(&config.target)? {
        return Err(LoadError::Remote(config.target.to_string()));
    }
    let connections = config.connections.max(1);
    let client = reqwest::Client::builder()
        .timeout(config.timeout)
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .build()?;
    let catalogue = discover(&client, config).await?;
    let minter = Tokens::new(&config.jwt_secret);
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
    let shared = Arc::new(Shared {
        client,
        target: config.target.clone(),
        pattern: Pattern::new(catalogue, config.mix.clone(), config.seed),
        tokens,
    });
    if Kind::ALL
        .iter()
        .any(|kind| kind.per_user() && config.mix.weight(*kind) > 0)
    {
        shared.check_token().await?;
    }

    let start = Instant::now();
    let measure_from = start + config.warmup;
    let end = measure_from + config.duration;
    let workers: Vec<_> = (0..connections as u64)
        .map(|worker| {
            let shared = shared.clone();
            let seed = config.seed.wrapping_mul(1_000_003).wrapping_add(worker);
            tokio::spawn(async move {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut recorder = Recorder::default();
                let mut warmup = 0u64;
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let request = shared.pattern.next(&mut rng);
                    let outcome = shared.send(&request).await;
                    if sent >= measure_from {
                        recorder.record(request.kind(), sent.elapsed(), outcome);
                    } else {
                        warmup += 1;
                    }
                }
                (recorder, warmup)
            })
        })
        .collect();
    let mut total = Recorder::default();
    let mut warmup = 0;
    for worker in workers {
        if let Ok((recorder, count)) = worker.await {
            total.merge(recorder);
            warmup += count;
        }
    }
    let measured = Instant::now().saturating_duration_since(measure_from);
    Ok(total.report(measured, warmup))
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
}
