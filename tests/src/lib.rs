//! Helpers for the end-to-end tests: spawn the origin against real services, make typed
//! requests, start private PostgreSQL and Redis servers that a test may stop, run the edge
//! (`edge`) and drive headless Chromium (`browser`).
//!
//! The shared services come from `scripts/services.sh up` (the test script starts them). Each
//! test gets its own database, copied from a MovieLens 100K template (`CREATE DATABASE ...
//! TEMPLATE`), and its own cache namespace, so tests run in parallel without seeing each
//! other. `TEST_REDIS_MODE=cluster` runs the same tests against the Redis Cluster.

pub mod browser;
pub mod edge;

use origin::settings::{DatabaseSettings, RedisMode, Settings};
use origin::startup::Application;
use origin::state::AppState;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A PostgreSQL URL to the shared test server's maintenance database.
pub fn admin_database_url() -> String {
    std::env::var("TEST_ADMIN_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://origin@127.0.0.1:54329/postgres".into())
}

/// The database holding MovieLens 100K that each test copies.
pub fn template_database() -> String {
    std::env::var("TEST_TEMPLATE_DATABASE").unwrap_or_else(|_| "movies_test_template".into())
}

/// Which Redis the tests use.
pub fn redis_mode() -> RedisMode {
    match std::env::var("TEST_REDIS_MODE").as_deref() {
        Ok("cluster") => RedisMode::Cluster,
        _ => RedisMode::Single,
    }
}

/// The Redis URL(s) for `mode`.
pub fn redis_url(mode: RedisMode) -> String {
    match mode {
        RedisMode::Single => {
            std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6390".into())
        }
        RedisMode::Cluster => std::env::var("TEST_REDIS_CLUSTER_URL").unwrap_or_else(|_| {
            (7101..=7106)
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        }),
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())[..prefix.len() + 12].to_owned()
}

/// A fresh database copied from the template; returns its URL.
pub async fn fresh_database() -> String {
    use sqlx::Executor;
    let name = unique("t_");
    let admin = sqlx::PgPool::connect(&admin_database_url())
        .await
        .expect("connect to the test PostgreSQL (scripts/services.sh up)");
    // A template cannot be copied while someone is connected to it: retry briefly.
    let mut attempts = 0;
    loop {
        let created = admin
            .execute(format!("CREATE DATABASE {name} TEMPLATE {}", template_database()).as_str())
            .await;
        match created {
            Ok(_) => break,
            Err(err) if attempts < 50 => {
                attempts += 1;
                let _ = err;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("creating test database {name}: {err}"),
        }
    }
    admin.close().await;
    let base = admin_database_url();
    let (server, _) = base.rsplit_once('/').expect("database URL has a path");
    format!("{server}/{name}")
}

/// Settings for a test instance: port 0, no warming, a random namespace and secret.
pub fn test_settings(database_url: &str, mode: RedisMode, redis_url: &str) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().expect("valid address"),
        database: DatabaseSettings {
            database_url: SecretString::from(database_url.to_owned()),
            database_max_connections: 10,
            database_timeout_ms: 1000,
        },
        redis_mode: mode,
        redis_url: SecretString::from(redis_url.to_owned()),
        redis_timeout_ms: 250,
        cache_namespace: unique("t"),
        cache_stale_grace_secs: 3600,
        jwt_secret: SecretString::from(unique("secret-")),
        rating_milestone: 100,
        view_refresh_secs: 3600,
        warm_on_start: false,
        warm_timeout_secs: 30,
        warm_concurrency: 4,
        warm_max_users: 50,
        warm_movies: 50,
        warm_on_reconnect: false,
        activity_window_secs: 3600,
        activity_max_users: 10_000,
        rater_state_secs: 120,
        migrate_on_start: true,
        metrics_upkeep_ms: 5000,
        cors_policy: shared::cors::CorsPolicy::default(),
        local_cache_bytes: 16 * 1024 * 1024,
        instance_name: None,
        breaker_failures: 5,
        breaker_probe_ms: 50,
        compute_concurrency: 4,
        cache_outage_hold_secs: 5,
        // Fewer than in production: a test reads the traces of its last few requests, and
        // the heap tests (`metrics_memory.rs`) measure after the ring is full.
        trace_recent_requests: 1_000,
        edge_url: None,
        purge_secret: None,
    }
}

/// A running origin.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state: cache, database, tokens.
    pub state: AppState,
    /// An HTTP client.
    pub client: reqwest::Client,
}

impl TestApp {
    /// An origin on a fresh copy of MovieLens 100K and the Redis chosen by `TEST_REDIS_MODE`.
    pub async fn spawn() -> TestApp {
        let mode = redis_mode();
        let db = fresh_database().await;
        TestApp::spawn_with(test_settings(&db, mode, &redis_url(mode))).await
    }

    /// An origin with the given settings.
    pub async fn spawn_with(settings: Settings) -> TestApp {
        let app = Application::build(settings).await.expect("origin builds");
        let addr = SocketAddr::from(([127, 0, 0, 1], app.port()));
        let state = app.state().clone();
        tokio::spawn(app.run_until_stopped());
        state
            .cache
            .redis()
            .wait_connected(Duration::from_secs(5))
            .await;
        TestApp {
            addr,
            state,
            client: reqwest::Client::new(),
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A user's bearer token.
    pub fn user_token(&self, user: i32) -> String {
        self.state
            .tokens
            .mint(
                origin::auth::Caller::User(shared::params::UserId(user)),
                Duration::from_secs(3600),
            )
            .expect("token")
    }

    /// The secret this origin signs tokens with: the `JWT_SECRET` of an edge that verifies
    /// them itself (`edge/src/personal.rs`).
    pub fn jwt_secret(&self) -> String {
        use secrecy::ExposeSecret;
        self.state.settings.jwt_secret.expose_secret().to_owned()
    }

    /// An admin's bearer token.
    pub fn admin_token(&self) -> String {
        self.state
            .tokens
            .mint(origin::auth::Caller::Admin, Duration::from_secs(3600))
            .expect("token")
    }

    /// GET without a token.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// GET with a bearer token.
    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// `GET /users/{user}/recommendations{query}` with the user's token: its `Cache-Status`
    /// and body (asserting a 200 with the private `Cache-Control`).
    pub async fn recommendations(
        &self,
        user: i32,
        query: &str,
    ) -> (String, shared::dto::Recommendations) {
        let response = self
            .get_as(
                &format!("/users/{user}/recommendations{query}"),
                &self.user_token(user),
            )
            .await;
        assert_eq!(
            response.status(),
            200,
            "recommendations of user {user}{query}"
        );
        assert_eq!(response.headers()["cache-control"], "private, no-cache");
        (
            cache_status(&response),
            response.json().await.expect("recommendations JSON"),
        )
    }

    /// POST a rating as `user` (with their own token).
    pub async fn rate(&self, user: i32, movie: i64, rating: f64) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/users/{user}/ratings")))
            .bearer_auth(self.user_token(user))
            .json(&serde_json::json!({ "movie_id": movie, "rating": rating }))
            .send()
            .await
            .expect("request")
    }

    /// `GET /admin/cache/stats` with an admin's token.
    pub async fn cache_stats(&self) -> serde_json::Value {
        self.get_as("/admin/cache/stats", &self.admin_token())
            .await
            .json()
            .await
            .expect("the cache stats are JSON")
    }

    /// `POST /admin/cache/warm`: the warming's report.
    pub async fn warm(&self) -> serde_json::Value {
        self.admin_post("/admin/cache/warm")
            .await
            .json()
            .await
            .expect("the warming report is JSON")
    }

    /// POST with an admin's token.
    pub async fn admin_post(&self, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(self.admin_token())
            .send()
            .await
            .expect("request")
    }

    /// POST to an admin endpoint without a token.
    pub async fn admin_post_without_token(&self, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Rewrites a cached entry's times, as if it had been stored `stored_ago` seconds ago and
    /// stayed fresh for `fresh_for` more seconds (negative: expired that long ago). Reaches
    /// into the entry's header line (`v1 STORED_AT FRESH_UNTIL TAG`), which tests may know.
    pub async fn set_freshness(&self, key: &str, stored_ago: i64, fresh_for: i64) {
        let redis = self.state.cache.redis();
        let raw: Vec<u8> = redis
            .query(redis::cmd("GET").arg(key))
            .await
            .expect("cached entry");
        let newline = raw.iter().position(|b| *b == b'\n').expect("entry header");
        let header = String::from_utf8(raw[..newline].to_vec()).expect("utf-8 header");
        let mut parts: Vec<String> = header.split(' ').map(str::to_owned).collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        parts[1] = (now - stored_ago).to_string();
        parts[2] = (now + fresh_for).to_string();
        let mut rewritten = parts.join(" ").into_bytes();
        rewritten.extend_from_slice(&raw[newline..]);
        let _: () = redis
            .query(redis::cmd("SET").arg(key).arg(rewritten).arg("KEEPTTL"))
            .await
            .expect("rewrite entry");
    }

    /// Everything a user could check about the ratings: row count, sum and a digest of every
    /// row, plus the per-movie and per-user counters kept beside them. Equal before and after
    /// means nothing was written.
    pub async fn ratings_snapshot(&self) -> (i64, f64, String, i64, i64) {
        sqlx::query_as(
            "SELECT count(*),
                    coalesce(sum(rating), 0)::float8,
                    md5(coalesce(string_agg(user_id || ':' || movie_id || ':' || rating || ':' || rated_at,
                                            ',' ORDER BY user_id, movie_id), '')),
                    (SELECT coalesce(sum(rating_count), 0)::int8 FROM movies),
                    (SELECT coalesce(sum(rating_count), 0)::int8 FROM users)
             FROM ratings",
        )
        .fetch_one(self.db())
        .await
        .expect("ratings snapshot")
    }

    /// A pool on this instance's database (to read what PostgreSQL holds).
    pub fn db(&self) -> &sqlx::PgPool {
        self.state.db.pool()
    }
}

/// What a test reads of a JSON response: its status, `Cache-Status`, ETag (empty without one)
/// and body (`null` when it is not JSON).
pub async fn read_json(response: reqwest::Response) -> (u16, String, String, serde_json::Value) {
    let status = response.status().as_u16();
    let cache = cache_status(&response);
    let etag = header(&response, "etag").unwrap_or_default().to_owned();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, cache, etag, body)
}

/// The `Cache-Status` header of a response.
pub fn cache_status(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The built `origin` binary (`cargo build -p origin`; `scripts/test.sh` builds it first).
pub fn origin_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let binary = target.join("debug/origin");
    assert!(
        binary.exists(),
        "{} is not built: run `cargo build -p origin`",
        binary.display()
    );
    binary
}

/// A response header's value, if present and text.
pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Asserts a preflight's answer lets `site` send the API's request headers: the origin
/// echoed, `Authorization`, `Content-Type`, `If-None-Match` and `x-request-id` allowed by name,
/// `POST` among the methods, and a `Max-Age` of two hours.
pub fn assert_preflight_allows(preflight: &reqwest::Response, site: &str) {
    assert_eq!(preflight.status(), 204);
    assert_eq!(header(preflight, "access-control-allow-origin"), Some(site));
    let allowed = header(preflight, "access-control-allow-headers").unwrap_or_default();
    for name in [
        "authorization",
        "content-type",
        "if-none-match",
        "x-request-id",
    ] {
        assert!(allowed.contains(name), "{name} allowed by name: {allowed}");
    }
    assert!(header(preflight, "access-control-allow-methods").is_some_and(|m| m.contains("POST")));
    assert_eq!(header(preflight, "access-control-max-age"), Some("7200"));
}

/// Asserts an actual response lets a page on `site` read it and its headers: the origin
/// echoed, `ETag`, `Age`, `Cache-Status`, `x-request-id` and `Retry-After` exposed, and
/// `Vary: origin`.
pub fn assert_readable_by(response: &reqwest::Response, site: &str) {
    assert_eq!(header(response, "access-control-allow-origin"), Some(site));
    let exposed = header(response, "access-control-expose-headers").unwrap_or_default();
    for name in ["etag", "age", "cache-status", "x-request-id", "retry-after"] {
        assert!(exposed.contains(name), "{name} exposed: {exposed}");
    }
    assert!(header(response, "vary").is_some_and(|v| v.contains("origin")));
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Runs `scripts/services.sh` with `args`, panicking with its output on failure.
pub fn services(args: &[&str]) {
    services_with(args, &[]);
}

/// [`services`] with more environment (e.g. `REDIS_PERSIST`).
pub fn services_with(args: &[&str], env: &[(&str, &str)]) {
    let script = repo_root().join("scripts/services.sh");
    let out = Command::new(&script)
        .args(args)
        .env("PG_FAST", "1")
        .envs(env.iter().copied())
        .output()
        .expect("run scripts/services.sh");
    assert!(
        out.status.success(),
        "services.sh {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private server a test may stop and restart; removed when dropped.
pub struct PrivateServer {
    /// Its folder.
    pub dir: PathBuf,
    /// Its port.
    pub port: u16,
    kind: &'static str,
    env: &'static [(&'static str, &'static str)],
}

impl PrivateServer {
    /// A private single Redis.
    pub fn redis() -> PrivateServer {
        let server = PrivateServer {
            dir: private_dir("redis"),
            port: free_port(),
            kind: "redis",
            env: &[],
        };
        server.start();
        server
    }

    /// A private single Redis that keeps its data across a restart (an append-only file).
    pub fn redis_persistent() -> PrivateServer {
        let server = PrivateServer {
            dir: private_dir("redis"),
            port: free_port(),
            kind: "redis",
            env: &[("REDIS_PERSIST", "aof")],
        };
        server.start();
        server
    }

    /// A private PostgreSQL (an empty `movies` database is created by the caller).
    pub fn postgres() -> PrivateServer {
        let server = PrivateServer {
            dir: private_dir("pg"),
            port: free_port(),
            kind: "pg",
            env: &[],
        };
        server.start();
        server
    }

    /// A private Redis Cluster (3 masters, 3 replicas) on six consecutive ports from
    /// [`PrivateServer::port`], with their cluster bus ports (+10000) free too.
    pub fn cluster() -> PrivateServer {
        let bindable = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        let base = (0..1000)
            .map(|_| rand::random_range(20_000u16..40_000))
            .find(|base| (0..6).all(|i| bindable(base + i) && bindable(base + i + 10_000)))
            .expect("six free ports for a private cluster");
        let server = PrivateServer {
            dir: private_dir("cluster"),
            port: base,
            kind: "cluster",
            env: &[],
        };
        server.start();
        server
    }

    /// The cluster's node URLs (comma-separated, as `REDIS_URL` takes them).
    pub fn cluster_urls(&self) -> String {
        (0..6)
            .map(|i| format!("redis://127.0.0.1:{}", self.port + i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts (or restarts) it.
    pub fn start(&self) {
        services_with(
            &[
                &format!("{}-start", self.kind),
                self.dir.to_str().expect("utf-8 path"),
                &self.port.to_string(),
            ],
            self.env,
        );
    }

    /// Stops it.
    pub fn stop(&self) {
        services(&[
            &format!("{}-stop", self.kind),
            self.dir.to_str().expect("utf-8 path"),
        ]);
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/services.sh"))
            .args([
                &format!("{}-stop", self.kind),
                self.dir.to_str().unwrap_or_default(),
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn private_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(&format!("movierec-test-{kind}-")));
    std::fs::create_dir_all(&dir).expect("create private server folder");
    dir
}

/// Imports MovieLens 100K into the database at `url` (migrating it first).
pub async fn import_movielens(url: &str) {
    let settings = DatabaseSettings {
        database_url: SecretString::from(url.to_owned()),
        database_max_connections: 4,
        database_timeout_ms: 5000,
    };
    let db = origin::db::Db::connect_lazy(&settings).expect("pool");
    db.migrate().await.expect("migrate");
    let dir = repo_root().join("data/ml-100k");
    origin::import::import(
        db.pool(),
        &origin::import::Source::MovieLens { dir },
        false,
        false,
    )
    .await
    .expect("import MovieLens (scripts/fetch-data.sh)");
    db.pool().close().await;
}

/// A TCP front for one origin instance, as the edge sees an instance: it relays connections
/// to `target`, notes each HTTP request that passes (`"GET /users/1/profile"`), and can be
/// stopped, which closes its port and every open connection as if the instance had died.
/// The instance behind it needs no change for a test to count what reached it.
pub struct InstanceFront {
    /// `http://127.0.0.1:PORT`, the URL to give the edge.
    pub url: String,
    addr: SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    accept: tokio::task::JoinHandle<()>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl InstanceFront {
    /// Starts relaying a fresh loopback port to `target`.
    pub async fn start(target: SocketAddr) -> InstanceFront {
        InstanceFront::start_with_delay(target, Duration::ZERO).await
    }

    /// Like [`InstanceFront::start`], with every byte held `one_way` before it is passed on,
    /// in each direction: the distance between an edge and an origin far from it (an 80 ms
    /// one-way delay is a 160 ms round trip per request; the TCP handshake is not delayed).
    pub async fn start_with_delay(target: SocketAddr, one_way: Duration) -> InstanceFront {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = std::sync::Arc::<std::sync::Mutex<Vec<String>>>::default();
        let connections = std::sync::Arc::<std::sync::Mutex<Vec<_>>>::default();
        let accept = tokio::spawn({
            let (seen, connections) = (seen.clone(), connections.clone());
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    let relay = tokio::spawn(relay(client, target, seen.clone(), one_way));
                    connections.lock().unwrap().push(relay.abort_handle());
                }
            }
        });
        InstanceFront {
            url: format!("http://{addr}"),
            addr,
            seen,
            accept,
            connections,
        }
    }

    /// The requests relayed so far, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Closes the port and every connection; returns once a new connection is refused.
    pub async fn stop(&self) {
        self.accept.abort();
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} still accepts connections", self.url);
    }
}

impl Drop for InstanceFront {
    fn drop(&mut self) {
        self.accept.abort();
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

/// Relays one connection both ways, each byte `one_way` late, noting the request line of each
/// request sent to `target` (request heads are parsed, bodies skipped by their
/// `Content-Length`).
async fn relay(
    client: tokio::net::TcpStream,
    target: SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    one_way: Duration,
) {
    let Ok(upstream) = tokio::net::TcpStream::connect(target).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    tokio::join!(
        forward(client_read, upstream_write, one_way, Some(seen)),
        forward(upstream_read, client_write, one_way, None),
    );
}

/// Copies `from` to `to`, each chunk `delay` after it was read (in order: a latency, not a
/// bandwidth limit), noting the requests that pass when `seen` is given; shuts `to` down at
/// the end.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    seen: Option<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (chunks, mut due) =
        tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let read = async move {
        let mut pending = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = from.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            if let Some(seen) = &seen {
                pending.extend_from_slice(&chunk[..n]);
                note_requests(&mut pending, seen);
            }
            if chunks
                .send((tokio::time::Instant::now() + delay, chunk[..n].to_vec()))
                .is_err()
            {
                return;
            }
        }
    };
    let write = async move {
        while let Some((at, bytes)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

/// Takes every complete request (head and `Content-Length` body) off the front of `pending`,
/// noting its method and target.
fn note_requests(pending: &mut Vec<u8>, seen: &std::sync::Mutex<Vec<String>>) {
    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&pending[..end]).into_owned();
        let length: usize = head
            .lines()
            .skip(1)
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding"),
            "the front reads Content-Length bodies only: {head}"
        );
        if pending.len() < end + 4 + length {
            return;
        }
        let mut words = head.lines().next().unwrap_or_default().split(' ');
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        seen.lock().unwrap().push(format!("{method} {target}"));
        pending.drain(..end + 4 + length);
    }
}

/// Polls `check` every 100 ms until it holds, for up to `within`; whether it did. For
/// recovery that happens by itself (a breaker's probe, a reconnection), not for ordering two
/// events (a test seam or a barrier does that).
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
