//! Typed configuration, from flags or environment variables (`.env.example` documents each).
//! Defaults match `scripts/services.sh`, so a developer's machine needs no settings at all.

use clap::{Args, ValueEnum};
use secrecy::{ExposeSecret, SecretString};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The JWT secret used when none is configured: fine on a laptop (warned about at start-up),
/// refused on any address other machines can reach ([`Settings::check_secrets`]).
pub const DEV_JWT_SECRET: &str = "dev-only-secret-change-me";

/// One Redis, or a Redis Cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RedisMode {
    /// `REDIS_URL` is one `redis://` URL.
    Single,
    /// `REDIS_URL` is a comma-separated list of cluster nodes.
    Cluster,
}

/// Connection settings shared by every command that touches PostgreSQL.
#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// PostgreSQL URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://origin@127.0.0.1:54329/movies"
    )]
    pub database_url: SecretString,
    /// Largest number of PostgreSQL connections per origin instance.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 20)]
    pub database_max_connections: u32,
    /// How long a request waits for a PostgreSQL connection before answering 503, in ms.
    /// Short on purpose: while PostgreSQL is away, the requests that find out wait this long,
    /// then the circuit breaker answers the others at once. The bulkheads
    /// (`COMPUTE_CONCURRENCY`) keep the computations that need a connection near the pool's
    /// size, so under load alone a request seldom waits for one.
    #[arg(long, env = "DATABASE_TIMEOUT_MS", default_value_t = 100)]
    pub database_timeout_ms: u64,
}

impl DatabaseSettings {
    /// The acquire timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.database_timeout_ms)
    }
}

/// Everything `origin serve` needs.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "ORIGIN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// PostgreSQL.
    #[command(flatten)]
    pub database: DatabaseSettings,

    /// `single` or `cluster`.
    #[arg(long, env = "REDIS_MODE", value_enum, default_value = "single")]
    pub redis_mode: RedisMode,
    /// Redis URL; in cluster mode a comma-separated list of node URLs.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6390",
        hide_env_values = true
    )]
    pub redis_url: SecretString,
    /// Per-command Redis timeout in ms: past it the cache is skipped, never waited for.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 250)]
    pub redis_timeout_ms: u64,
    /// Prefix for every cache key, so deployments (or tests) can share one Redis.
    #[arg(long, env = "CACHE_NAMESPACE", default_value = "")]
    pub cache_namespace: String,
    /// How long past its TTL a cached value is kept to be served, marked stale, while
    /// PostgreSQL is unreachable, in seconds.
    #[arg(long, env = "CACHE_STALE_GRACE_SECS", default_value_t = 86_400)]
    pub cache_stale_grace_secs: u64,

    /// Secret for HS256 JWTs (users and admins).
    #[arg(
        long,
        env = "JWT_SECRET",
        default_value = DEV_JWT_SECRET,
        hide_default_value = true,
        hide_env_values = true
    )]
    pub jwt_secret: SecretString,

    /// Every how many ratings of a movie the popular and genre lists are invalidated.
    #[arg(long, env = "RATING_MILESTONE", default_value_t = 100)]
    pub rating_milestone: i64,
    /// Seconds between refreshes of the top-by-genre view (one instance refreshes at a time).
    #[arg(long, env = "VIEW_REFRESH_SECS", default_value_t = 3600)]
    pub view_refresh_secs: u64,

    /// Warm the caches at start-up (in the background; `/health` answers meanwhile).
    #[arg(long, env = "WARM_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub warm_on_start: bool,
    /// Longest a warming run may take, in seconds.
    #[arg(long, env = "WARM_TIMEOUT_SECS", default_value_t = 60)]
    pub warm_timeout_secs: u64,
    /// Recommendations computed at once while warming.
    #[arg(long, env = "WARM_CONCURRENCY", default_value_t = 4)]
    pub warm_concurrency: usize,
    /// Most users warmed per run by rating count (power users first), after the users this
    /// instance served in the last `ACTIVITY_WINDOW_SECS`: each user's default
    /// recommendations and profile. At the MovieLens-25M shape they take about 1 KB of Redis
    /// a user, the user's generation key and Redis's own overhead included: every user
    /// (162,000) and every movie's metadata took 175 MB of the design's 256 MB (see the
    /// README's measurements).
    #[arg(long, env = "WARM_MAX_USERS", default_value_t = 2000)]
    pub warm_max_users: i64,
    /// Most movies whose metadata is warmed per run, the most rated first.
    #[arg(long, env = "WARM_MOVIES", default_value_t = 2000)]
    pub warm_movies: i64,
    /// Warm the users served in the last `ACTIVITY_WINDOW_SECS` again when the connection to
    /// Redis comes back after a loss and Redis no longer holds their values (it restarted
    /// empty); nothing is warmed when it kept them.
    #[arg(long, env = "WARM_ON_RECONNECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub warm_on_reconnect: bool,
    /// How long a user's recommender state (every rating and the fold-in, family `embedding`)
    /// is kept in Redis after they rated: long enough for the reads and ratings of one sitting,
    /// each then applying the new ratings instead of reading every one. Kept longer, the states
    /// take the memory of the values that answer reads: at the MovieLens-25M shape a state is
    /// about 3.3 KB against 650 bytes for a user's recommendations and profile, and the mix's
    /// 90 ratings a second kept for 7 days (the family's nominal TTL) filled the design's 256 MB
    /// of Redis within minutes (see the README's measurements). The states live at any time
    /// are about the rating rate times this: at 200 ratings a second (1% of 20,000 req/s), 80
    /// MB for two minutes, 26 MB for 40 s, beside the 179 MB of every user's warmed values. A
    /// reader's state lives [`crate::reads::READER_STATE_SECS`].
    #[arg(long, env = "RATER_STATE_SECS", default_value_t = 40)]
    pub rater_state_secs: u64,
    /// How long a user counts as recently active after their last request, in seconds.
    #[arg(long, env = "ACTIVITY_WINDOW_SECS", default_value_t = 3600)]
    pub activity_window_secs: u64,
    /// Most recently active users remembered per instance (about 50 bytes each).
    #[arg(long, env = "ACTIVITY_MAX_USERS", default_value_t = 500_000)]
    pub activity_max_users: u64,

    /// Run pending migrations at start-up.
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,

    /// How often the metrics recorder folds recorded histogram samples into its buckets, in
    /// ms. Without it samples pile up until `/metrics` is scraped; the first origin of a
    /// process sets it (the recorder is process-wide).
    #[arg(long, env = "METRICS_UPKEEP_MS", default_value_t = 5000)]
    pub metrics_upkeep_ms: u64,

    /// Origins whose pages may call the API from a browser (CORS): `*`, or a comma-separated
    /// list of origins such as `https://movies.example.com`, where the port may be `*`.
    #[arg(
        long = "cors-allowed-origins",
        env = "CORS_ALLOWED_ORIGINS",
        default_value = shared::cors::LOCAL_DEFAULT,
        value_parser = shared::cors::CorsPolicy::parse
    )]
    pub cors_policy: shared::cors::CorsPolicy,

    /// Bytes the in-process tier in front of Redis may hold (0 turns it off). The default
    /// fits a small instance; values are counted with their renderings.
    #[arg(long, env = "LOCAL_CACHE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub local_cache_bytes: u64,

    /// This instance's name in `/admin/cache/stats` and in `/metrics`; `origin@LISTEN` when
    /// unset.
    #[arg(long, env = "INSTANCE_NAME")]
    pub instance_name: Option<String>,

    /// Failures in a row (connection refused or lost, timeouts) that open a dependency's
    /// circuit breaker; then no request waits for it until a probe gets an answer.
    #[arg(long, env = "BREAKER_FAILURES", default_value_t = 5)]
    pub breaker_failures: u32,

    /// How often an open breaker's probe asks its dependency, in ms.
    #[arg(long, env = "BREAKER_PROBE_MS", default_value_t = 250)]
    pub breaker_probe_ms: u64,

    /// The bulkhead: computations of one cache family that may run at once (others wait for
    /// a turn; concurrent requests for one key share one computation anyway). Bounds the
    /// load on PostgreSQL when Redis is down and every value has to be recomputed.
    #[arg(long, env = "COMPUTE_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub compute_concurrency: u32,

    /// While Redis is down, how long a shared value (lists, metadata) computed here is served
    /// from this instance's memory before it is computed again, in seconds (0: never). Also
    /// the bound on how late such a value shows another instance's change during the outage.
    #[arg(long, env = "CACHE_OUTAGE_HOLD_SECS", default_value_t = 5)]
    pub cache_outage_hold_secs: u64,

    /// How many of this instance's most recent requests keep a trace (each cache layer's
    /// decision and timing) for `GET /admin/trace/{request_id}`; 0 turns tracing off. A trace
    /// takes under 800 bytes: 10,000 take about 8 MB.
    #[arg(long, env = "TRACE_RECENT_REQUESTS", default_value_t = 10_000)]
    pub trace_recent_requests: usize,

    /// The edge in front of this origin (e.g. http://127.0.0.1:8787), with `PURGE_SECRET`:
    /// purged by tag when this origin invalidates lists (`crate::edge`), and read by
    /// `GET /admin/edge/stats` for the dashboard's edge layer. Unset: neither (the dashboard
    /// says the edge is not configured). The same variable names the edge `origin import
    /// --purge-edge` purges.
    #[arg(long, env = "EDGE_PURGE_URL", requires = "purge_secret")]
    pub edge_url: Option<url::Url>,

    /// The edge's operator secret (its `PURGE_SECRET`), for its stats endpoint.
    #[arg(long, env = "PURGE_SECRET", hide_env_values = true)]
    pub purge_secret: Option<SecretString>,
}

/// Why `origin serve` refuses to start with its settings. Each message is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The JWT secret is public (the built-in development value, or empty) and the listen
    /// address is not loopback: anyone who can reach the service could mint an admin token.
    #[error(
        "refusing to listen on {listen}: JWT_SECRET is {which}, so anyone could mint tokens; \
         set JWT_SECRET to a secret of your own, or listen on loopback (127.0.0.1 or ::1)"
    )]
    PublicJwtSecret {
        /// The configured listen address.
        listen: SocketAddr,
        /// `the built-in development value` or `empty`.
        which: &'static str,
    },
}

impl Settings {
    /// Refuses a secret everyone knows on an address other machines can reach; called before
    /// `serve` connects to anything.
    ///
    /// Only `JWT_SECRET` has a built-in default that is a secret. The defaults of
    /// `DATABASE_URL` and `REDIS_URL` carry no password and name loopback servers (those of
    /// `scripts/services.sh`), so they give nobody anything and are left alone; a deployment
    /// that needs credentials puts them in its own URLs.
    pub fn check_secrets(&self) -> Result<(), SettingsError> {
        if is_loopback(self.listen.ip()) {
            return Ok(());
        }
        let secret = self.jwt_secret.expose_secret();
        let which = if secret == DEV_JWT_SECRET {
            "the built-in development value"
        } else if secret.trim().is_empty() {
            "empty"
        } else {
            return Ok(());
        };
        Err(SettingsError::PublicJwtSecret {
            listen: self.listen,
            which,
        })
    }

    /// The Redis per-command timeout.
    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    /// Every dependency's circuit breaker settings.
    pub fn breaker(&self) -> crate::breaker::BreakerConfig {
        crate::breaker::BreakerConfig {
            threshold: self.breaker_failures,
            probe_every: Duration::from_millis(self.breaker_probe_ms.max(1)),
        }
    }
}

/// IPv4 127/8 or IPv6 `::1` (an IPv4-mapped `::ffff:127.x.y.z` counts as its IPv4 address).
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    /// Settings as `origin serve --listen LISTEN --jwt-secret SECRET` parses them (both given
    /// as flags, so the test's environment cannot change them).
    fn settings(listen: &str, secret: &str) -> Settings {
        Cli::try_parse_from(["origin", "--listen", listen, "--jwt-secret", secret])
            .unwrap()
            .settings
    }

    #[test]
    fn the_development_secret_is_refused_off_loopback() {
        for listen in [
            "0.0.0.0:8080",
            "192.168.1.10:80",
            "[::]:8080",
            "[2001:db8::1]:8080",
        ] {
            let err = settings(listen, DEV_JWT_SECRET)
                .check_secrets()
                .expect_err(listen);
            assert_eq!(
                err,
                SettingsError::PublicJwtSecret {
                    listen: listen.parse().unwrap(),
                    which: "the built-in development value",
                }
            );
            let message = err.to_string();
            assert!(!message.contains('\n'), "{message}");
            assert!(
                message.contains("JWT_SECRET") && message.contains(listen),
                "{message}"
            );
            assert!(
                !message.contains(DEV_JWT_SECRET),
                "never print the secret: {message}"
            );
        }
        assert_eq!(
            settings("0.0.0.0:80", " ").check_secrets(),
            Err(SettingsError::PublicJwtSecret {
                listen: "0.0.0.0:80".parse().unwrap(),
                which: "empty",
            })
        );
    }

    #[test]
    fn the_development_secret_is_allowed_on_loopback() {
        for listen in [
            "127.0.0.1:8080",
            "127.1.2.3:0",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert_eq!(
                settings(listen, DEV_JWT_SECRET).check_secrets(),
                Ok(()),
                "{listen}"
            );
        }
    }

    #[test]
    fn an_own_secret_may_listen_anywhere() {
        for listen in ["0.0.0.0:8080", "[::]:80", "127.0.0.1:8080"] {
            assert_eq!(
                settings(listen, "s3cr3t-of-my-own").check_secrets(),
                Ok(()),
                "{listen}"
            );
        }
    }
}
