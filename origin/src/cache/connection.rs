//! The Redis connection: one node or a Redis Cluster, chosen by configuration alone, behind
//! one type that the rest of the cache uses the same way.
//!
//! The connection is optional by design. The service starts without Redis and keeps answering
//! from PostgreSQL while Redis is away: every command has a deadline, a missing connection is
//! re-established in the background (at most one attempt a second), and callers treat any
//! failure as "no cache".
//!
//! Every command passes Redis's circuit breaker (`crate::breaker`): after failures in a row
//! (refused, lost, timed out) no command is sent until one background `PING` is answered, so
//! while Redis is down a request never waits for it, not even for the command deadline.
//!
//! Both kinds speak RESP3, so that Redis can push notices on the same connections: the
//! invalidations of server-assisted client caching (`CLIENT TRACKING`, see `invalidation`),
//! and the library's own notice that a connection was lost. Both go to the [`OnPush`] given
//! to [`Redis::new`].

use crate::breaker::{Breaker, BreakerConfig};
use crate::settings::RedisMode;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{
    Cmd, FromRedisValue, IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo, RedisFuture,
    Value,
};

/// What receives Redis's pushes and the library's notice of a lost connection. Called by a
/// connection's reader before it hands over any later reply: it must be quick.
pub type OnPush = Arc<dyn Fn(PushInfo) + Send + Sync>;

/// `on_push` as the library wants it.
fn push_sender(on_push: &OnPush) -> impl redis::aio::AsyncPushSender + use<> {
    let on_push = Arc::clone(on_push);
    move |push: PushInfo| -> Result<(), std::convert::Infallible> {
        on_push(push);
        Ok(())
    }
}
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A live connection of either kind. Both are multiplexed and cheap to clone.
#[derive(Clone)]
pub enum Conn {
    /// One Redis; reconnects by itself after a failure.
    Single(ConnectionManager),
    /// A Redis Cluster; follows slot moves and failovers.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Why a cache command did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// No connection yet (Redis down since start, or reconnecting).
    #[error("redis is not connected")]
    NotConnected,
    /// The command took longer than the configured deadline.
    #[error("redis command timed out")]
    Timeout,
    /// Redis is known to be down (its circuit breaker is open): not asked.
    #[error("redis is down (circuit breaker open)")]
    BreakerOpen,
    /// Redis answered with an error, or the connection broke.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl RedisError {
    /// Whether this says Redis could not be reached (what counts towards opening the
    /// breaker), rather than an answer Redis gave.
    fn is_unreachable(&self) -> bool {
        match self {
            // Not connected yet answers at once (no request waits), and at start-up it only
            // means the first attempt is under way.
            RedisError::NotConnected => false,
            RedisError::Timeout | RedisError::BreakerOpen => true,
            RedisError::Redis(err) => {
                err.is_io_error()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
                    || err.is_timeout()
                    || matches!(
                        err.kind(),
                        redis::ErrorKind::ClusterDown
                            | redis::ErrorKind::MasterDown
                            | redis::ErrorKind::TryAgain
                            | redis::ErrorKind::BusyLoadingError
                            | redis::ErrorKind::ClusterConnectionNotFound
                    )
            }
        }
    }
}

struct Inner {
    mode: RedisMode,
    urls: Vec<String>,
    timeout: Duration,
    conn: RwLock<Option<Conn>>,
    last_attempt: Mutex<Option<Instant>>,
    on_push: OnPush,
    breaker: Breaker,
}

/// A handle to Redis; cloning shares the connection.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

impl Redis {
    /// A handle that connects in the background; `urls` holds one URL, or the cluster's nodes.
    /// What Redis pushes (and the notice of a lost connection) is given to `on_push`.
    pub fn new(
        mode: RedisMode,
        urls: Vec<String>,
        timeout: Duration,
        breaker: BreakerConfig,
        on_push: OnPush,
    ) -> Self {
        let redis = Redis {
            inner: Arc::new(Inner {
                mode,
                urls,
                timeout,
                conn: RwLock::new(None),
                last_attempt: Mutex::new(None),
                on_push,
                breaker: Breaker::new("redis", breaker),
            }),
        };
        redis.reconnect_in_background();
        redis
    }

    /// The node URLs (for statistics).
    pub fn urls(&self) -> &[String] {
        &self.inner.urls
    }

    /// Whether this is a cluster.
    pub fn mode(&self) -> RedisMode {
        self.inner.mode
    }

    /// The circuit breaker in front of every command.
    pub fn breaker(&self) -> &Breaker {
        &self.inner.breaker
    }

    /// Whether Redis is known to be down: its breaker is open, or there is no connection.
    pub fn is_down(&self) -> bool {
        !self.inner.breaker.allows() || self.current().is_none()
    }

    /// Counts `result` on the breaker; the command that opens it starts the probe.
    fn observe<T>(&self, result: Result<T, RedisError>) -> Result<T, RedisError> {
        match &result {
            Err(err) if err.is_unreachable() => {
                if self.inner.breaker.failed() {
                    let this = self.clone();
                    tokio::spawn(async move {
                        let breaker = this.inner.breaker.clone();
                        breaker
                            .probe_until_closed(|| async {
                                this.send::<String>(&redis::cmd("PING")).await.is_ok()
                            })
                            .await;
                    });
                }
            }
            _ => self.inner.breaker.succeeded(),
        }
        result
    }

    /// Waits up to `within` for a connection (start-up, tests); never fails.
    pub async fn wait_connected(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.current().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.reconnect_in_background();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn current(&self) -> Option<Conn> {
        self.inner
            .conn
            .read()
            .expect("redis connection lock poisoned")
            .clone()
    }

    /// Starts a connection attempt unless one ran in the last second. The lock is a plain
    /// mutex: it is held for a comparison, never across an await.
    fn reconnect_in_background(&self) {
        {
            let mut last = self
                .inner
                .last_attempt
                .lock()
                .expect("redis attempt lock poisoned");
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return;
            }
            *last = Some(Instant::now());
        }
        let this = self.clone();
        tokio::spawn(async move {
            match this.connect().await {
                Ok(conn) => {
                    tracing::info!(mode = ?this.inner.mode, "redis connected");
                    *this
                        .inner
                        .conn
                        .write()
                        .expect("redis connection lock poisoned") = Some(conn);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "redis unavailable; serving without cache")
                }
            }
        });
    }

    async fn connect(&self) -> redis::RedisResult<Conn> {
        let timeout = self.inner.timeout.max(Duration::from_millis(500));
        match self.inner.mode {
            RedisMode::Single => {
                let mut info = self.inner.urls[0].as_str().into_connection_info()?;
                info.redis.protocol = ProtocolVersion::RESP3;
                let client = redis::Client::open(info)?;
                let config = ConnectionManagerConfig::new()
                    .set_push_sender(push_sender(&self.inner.on_push))
                    .set_connection_timeout(timeout)
                    .set_response_timeout(self.inner.timeout)
                    .set_number_of_retries(1)
                    .set_max_delay(200);
                Ok(Conn::Single(
                    ConnectionManager::new_with_config(client, config).await?,
                ))
            }
            RedisMode::Cluster => {
                let client = redis::cluster::ClusterClientBuilder::new(self.inner.urls.clone())
                    .connection_timeout(timeout)
                    .response_timeout(self.inner.timeout)
                    .retries(2)
                    .use_protocol(ProtocolVersion::RESP3)
                    .push_sender(push_sender(&self.inner.on_push))
                    .build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// Runs one command within the deadline, unless the breaker is open.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        if !self.inner.breaker.allows() {
            return Err(RedisError::BreakerOpen);
        }
        self.observe(self.send(cmd).await)
    }

    /// Runs one command within the deadline, whatever the breaker says (its probe).
    async fn send<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        let Some(mut conn) = self.current() else {
            self.reconnect_in_background();
            return Err(RedisError::NotConnected);
        };
        match tokio::time::timeout(self.inner.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(RedisError::Redis(err)),
            Err(_) => Err(RedisError::Timeout),
        }
    }

    /// Runs one command on every master (the one node, or each master of the cluster), within
    /// the deadline: for per-connection state such as `CLIENT TRACKING`.
    pub async fn on_every_master(&self, cmd: &Cmd) -> Result<(), RedisError> {
        if !self.inner.breaker.allows() {
            return Err(RedisError::BreakerOpen);
        }
        let Some(conn) = self.current() else {
            self.reconnect_in_background();
            return Err(RedisError::NotConnected);
        };
        let run = async {
            match conn {
                Conn::Single(mut c) => cmd.query_async::<Value>(&mut c).await.map(drop),
                Conn::Cluster(mut c) => c
                    .route_command(
                        cmd,
                        RoutingInfo::MultiNode((
                            MultipleNodeRoutingInfo::AllMasters,
                            Some(ResponsePolicy::AllSucceeded),
                        )),
                    )
                    .await
                    .map(drop),
            }
        };
        let result =
            match tokio::time::timeout(self.inner.timeout.max(Duration::from_millis(500)), run)
                .await
            {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(RedisError::Redis(err)),
                Err(_) => Err(RedisError::Timeout),
            };
        self.observe(result)
    }

    /// Round-trip time of a `PING`, or `None` when Redis does not answer.
    pub async fn ping(&self) -> Option<Duration> {
        let start = Instant::now();
        let pong: Result<String, _> = self.query(&redis::cmd("PING")).await;
        pong.ok().map(|_| start.elapsed())
    }
}
