//! The application cache: each instance's local tier, then Redis, in front of PostgreSQL.
//!
//! One entry point, [`Cache::get_or_compute`], gives every family the same behaviour:
//! - a fresh value is served (`origin; hit`) from this instance's memory when it holds one
//!   that it may serve (`local`, `invalidation`), else from Redis, and in the last tenth of its
//!   life it is recomputed in the background so hot keys never expire under load, once per
//!   entry across all instances (a short `SET NX` claim next to the key);
//! - a miss is computed once however many requests want it (single flight), stored in Redis
//!   and kept locally, empty results included;
//! - a value past its TTL is kept for a grace period and served, marked stale, only when
//!   PostgreSQL cannot be reached;
//! - when Redis cannot be reached the value is computed from PostgreSQL and served anyway;
//!   while Redis is known to be down (its circuit breaker is open, see `connection`) it is
//!   not asked at all, and a shared value computed here is kept in the local tier and served
//!   for a few seconds (`CACHE_OUTAGE_HOLD_SECS`) so that each instance computes a hot list
//!   once per hold, not once per request;
//! - every computation of a family takes a turn of that family's bulkhead (at most
//!   `COMPUTE_CONCURRENCY` at once): with Redis down, PostgreSQL sees a bounded load, not a
//!   stampede, and concurrent requests for one key still share one computation.
//!
//! The parts, one file each: the entry format and the served value with its renderings
//! (`entry`), the pure decision what a found entry is good for at `now` (`lookup`), the
//! local tier (`local`), how changes reach every copy (`invalidation`), the injected clock
//! (`clock`), the Redis connection (`connection`).
//!
//! Invalidation never scans: every value of one user is stored with the user's generation
//! token (`user:gen:{user:42}`, same hash slot), read with it in one `MGET` (or confirmed with
//! one `GET` of the token when the value is held locally), and valid only while the token
//! matches. A new rating replaces the token: all of that user's recommendations and their
//! profile, whatever `n` and strategy, in Redis and in every instance's tier, are invalid at
//! once. Shared values are deleted by key, and every instance hears of it from Redis
//! (`invalidation`).
//!
//! Computations are one-way: the user's generation is read first (with the value, in the same
//! `MGET`) and handed to the computation as a [`Pinned`] generation; the computation gathers
//! every other input after that (PostgreSQL rows, other cached values through [`Cache::peek`]
//! under the same pinned generation), computes with pure functions, and everything it stores
//! ([`Cache::store`] for by-products such as the embedding) is stored under that generation.
//! A rating commits before it replaces the token, so an input read after the pin is at least
//! as new as the pin: a value can only ever be stored under a generation no newer than its
//! inputs, and a value computed from data older than a write is never valid after it.
//!
//! Who asked is counted apart ([`Cause`]): client lookups make the hit rate; warming and
//! background refreshes are counted as their own computations, never as client misses.

mod background;
mod clock;
mod connection;
mod entry;
mod invalidation;
mod local;
mod lookup;
mod single_flight;
pub mod stats;

use crate::error::AppError;
use crate::hooks::{Hooks, Point};
use crate::trace::{self, Lookup, Step, Why};
use background::Background;
use bytes::Bytes;
pub use clock::Clock;
use connection::OnPush;
pub use connection::{Redis, RedisError};
use entry::Entry;
pub use entry::{Rendered, Value};
pub use invalidation::{InvalidationLog, RecordedAt};
use invalidation::{Mark, Pending, Tracking};
pub use local::LocalSnapshot;
use local::LocalTier;
use lookup::{Decision, Unusable, Wanted};
use shared::cache_key::{Family, KeySpace};
use shared::cache_status::{CacheStatus, Forward};
use shared::params::UserId;
use single_flight::SingleFlight;
pub use stats::Cause;
use stats::{CacheStats, Event};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// This cache's name in `Cache-Status`.
pub const CACHE_NAME: &str = "origin";

/// Generation tokens outlive every value stored under them (7 days + grace at most).
const GENERATION_TTL_SECS: u64 = 30 * 24 * 3600;

/// The "tracking session" of a shared value computed while Redis was down: no real session
/// has this number, so such a value is only ever served by the outage path (see
/// [`Cache::get_or_compute`]), never once Redis is back.
const OUTAGE_SESSION: u64 = u64::MAX;

/// Whose value this is: per-user values are checked against the user's generation token.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Shared by everyone (lists, metadata).
    Global,
    /// One user's (recommendations, profile, embedding).
    User(UserId),
    /// One user's, computed with a model: valid only for that model version too, so nothing
    /// an older model computed is served after a reload.
    UserModel(UserId, Arc<str>),
}

impl Scope {
    fn user(&self) -> Option<UserId> {
        match self {
            Scope::Global => None,
            Scope::User(user) | Scope::UserModel(user, _) => Some(*user),
        }
    }

    /// The tag a value is stored with: the user's generation, plus the model version.
    fn tag(&self, generation: &str) -> String {
        match self {
            Scope::UserModel(_, version) => format!("{generation}/{version}"),
            _ => generation.to_owned(),
        }
    }
}

/// The user generation a computation runs under, read before any of its inputs (see the
/// module documentation). `None` for shared values, and when Redis could not give one (then
/// nothing is stored).
#[derive(Debug, Clone, Default)]
pub struct Pinned {
    generation: Option<Arc<str>>,
    /// The data set's epoch the instance knew when the computation started.
    epoch: u64,
}

impl Pinned {
    /// No generation: for shared values and self-validating by-products.
    fn global(epoch: u64) -> Pinned {
        Pinned {
            generation: None,
            epoch,
        }
    }

    /// The data set's epoch pinned.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The tag a value of `scope` carries under this generation.
    fn tag(&self, scope: &Scope) -> Option<String> {
        self.generation.as_deref().map(|g| scope.tag(g))
    }

    /// The single-flight key of a computation of `key`: requests share one computation only
    /// when they pinned the same epoch and generation, so none is handed a value computed
    /// under older ones.
    fn flight_key(&self, key: &str, scope: &Scope) -> String {
        format!(
            "{key}#{:x}#{}",
            self.epoch,
            self.tag(scope).unwrap_or_default()
        )
    }

    /// Whether a value of `scope` may be stored (or read) under this generation.
    fn usable_for(&self, scope: &Scope) -> bool {
        matches!(scope, Scope::Global) || self.generation.is_some()
    }
}

tokio::task_local! {
    /// Why the current task reads the cache; clients when unset.
    static CAUSE: Cause;
}

/// Runs `work` as warming: its lookups and computations are counted as warming, not as
/// client hits and misses.
pub async fn warming<F: Future>(work: F) -> F::Output {
    CAUSE.scope(Cause::Warm, work).await
}

/// Whether the current task is warming (see [`warming`]).
pub fn is_warming() -> bool {
    current_cause() == Cause::Warm
}

fn current_cause() -> Cause {
    CAUSE.try_with(|cause| *cause).unwrap_or(Cause::Client)
}

/// A freshly computed value and how long it stays fresh.
pub struct Computed {
    /// The bytes to store and serve.
    pub body: Vec<u8>,
    /// Freshness in seconds.
    pub ttl_secs: u64,
}

/// What a lookup served.
#[derive(Debug, Clone)]
pub struct Served {
    /// The value, with its renderings.
    pub value: Arc<Value>,
    /// How it was obtained, for `Cache-Status`.
    pub status: CacheStatus,
}

impl Served {
    /// The value's bytes.
    pub fn body(&self) -> &Bytes {
        self.value.body()
    }

    /// The response body as stored, with its ETag (computed once per value).
    pub fn whole(&self) -> Rendered {
        self.value.rendered(0, Bytes::clone)
    }

    /// Response `variant` (e.g. a list's limit, never 0) rendered by `render`, with its ETag;
    /// kept with the value, so a value held locally renders each variant once.
    pub fn rendered(&self, variant: u32, render: impl FnOnce(&Bytes) -> Bytes) -> Rendered {
        self.value.rendered(variant, render)
    }

    /// [`Served::rendered`] with a rendering that can fail (see [`Value::try_rendered`]).
    pub fn try_rendered<E>(
        &self,
        variant: u32,
        render: impl FnOnce(&Bytes) -> Result<Bytes, E>,
    ) -> Result<Rendered, E> {
        self.value.try_rendered(variant, render)
    }
}

type FlightResult = Result<(Arc<Value>, bool), AppError>;

struct Inner {
    redis: Redis,
    keys: KeySpace,
    stats: CacheStats,
    flights: SingleFlight<FlightResult>,
    hooks: Hooks,
    background: Background,
    // The data set's epoch (see `crate::dataset`): one number, replaced when an import
    // replaces the data, read by every lookup. An atomic, not a lock.
    epoch: AtomicU64,
    grace_secs: u64,
    // Invalidations Redis has not acknowledged yet. A std mutex: never held across an await.
    pending: Mutex<Pending>,
    local: LocalTier,
    tracking: Arc<Tracking>,
    clock: Clock,
    instance: Arc<str>,
    // One semaphore per family (`Family::ALL` order): the bulkheads.
    bulkheads: Vec<Semaphore>,
    outage_hold_secs: i64,
    user_versions: std::sync::OnceLock<UserVersions>,
    // Where invalidations Redis did not acknowledge are recorded for every instance, the
    // count of lost connections the last delivery of them covered, and one delivery at a time
    // (see `invalidation`).
    log: std::sync::OnceLock<Arc<dyn InvalidationLog>>,
    swept_losses: AtomicU64,
    sweeping: tokio::sync::Mutex<()>,
    // When (clock seconds) a delivery a request started last failed.
    sweep_failed_at: std::sync::atomic::AtomicI64,
}

/// Where the cache reads a user's rating version while Redis is down (PostgreSQL's
/// `users.rating_version`, bumped by every rating): see [`Cache::without_redis`].
pub type UserVersions = Arc<
    dyn Fn(UserId) -> std::pin::Pin<Box<dyn Future<Output = Result<i64, AppError>> + Send>>
        + Send
        + Sync,
>;

/// The cache handle; cloning shares it.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

fn new_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// How the cache is set up.
pub struct CacheConfig {
    /// One Redis or a cluster.
    pub mode: crate::settings::RedisMode,
    /// The URL of the one Redis, or of the cluster's nodes.
    pub urls: Vec<String>,
    /// Every Redis command's deadline.
    pub timeout: Duration,
    /// The key builder.
    pub keys: KeySpace,
    /// How long past its freshness a value may be served when it cannot be computed.
    pub grace: Duration,
    /// The local tier's bound in bytes (0: no local tier).
    pub local_bytes: u64,
    /// This instance's name in statistics.
    pub instance: String,
    /// When Redis counts as down, and how it is probed.
    pub breaker: crate::breaker::BreakerConfig,
    /// Computations of one family that may run at once.
    pub compute_concurrency: usize,
    /// While Redis is down, how long a shared value computed here is served from memory.
    pub outage_hold: Duration,
}

/// The outcome of a lookup in the local tier.
enum Local {
    /// Serve this (read under this generation, for a user's value).
    Hit(Served, Option<Arc<str>>),
    /// Go on to Redis; for a user's value, with the generation already read. Why the value
    /// held was not served.
    Miss(Option<Arc<str>>, Why),
}

impl Cache {
    /// A cache over Redis, connecting in the background; starts the retry loop of
    /// unacknowledged invalidations and the tracking session keeper.
    pub fn new(config: CacheConfig) -> Self {
        let local = LocalTier::new(config.local_bytes);
        let tracking = Arc::new(Tracking::new(local.clone()));
        let on_push: OnPush = {
            let tracking = Arc::clone(&tracking);
            Arc::new(move |push| tracking.on_push(push))
        };
        let redis = Redis::new(
            config.mode,
            config.urls,
            config.timeout,
            config.breaker,
            on_push,
        );
        let cache = Cache {
            inner: Arc::new(Inner {
                redis,
                keys: config.keys,
                stats: CacheStats::default(),
                flights: SingleFlight::default(),
                hooks: Hooks::default(),
                background: Background::default(),
                epoch: AtomicU64::new(0),
                grace_secs: config.grace.as_secs(),
                pending: Mutex::new(Pending::default()),
                local,
                tracking,
                clock: Clock::default(),
                instance: Arc::from(config.instance),
                bulkheads: Family::ALL
                    .iter()
                    .map(|_| Semaphore::new(config.compute_concurrency.max(1)))
                    .collect(),
                outage_hold_secs: config.outage_hold.as_secs() as i64,
                user_versions: std::sync::OnceLock::new(),
                log: std::sync::OnceLock::new(),
                swept_losses: AtomicU64::new(0),
                sweeping: tokio::sync::Mutex::new(()),
                sweep_failed_at: std::sync::atomic::AtomicI64::new(i64::MIN / 2),
            }),
        };
        let weak = Arc::downgrade(&cache.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let Some(inner) = weak.upgrade() else { break };
                Cache { inner }.retry_pending().await;
            }
        });
        cache.keep_tracking();
        cache
    }

    /// Sets where a user's rating version is read while Redis is down (once, at start-up).
    pub fn set_user_versions(&self, versions: UserVersions) {
        let _ = self.inner.user_versions.set(versions);
    }

    /// Sets where invalidations Redis did not acknowledge are recorded for every instance
    /// (once, at start-up; see `invalidation`). Until the first delivery of them, no user's
    /// value is read from Redis: a Redis that kept its data may hold tokens from before them.
    pub fn set_invalidation_log(&self, log: Arc<dyn InvalidationLog>) {
        if self.inner.log.set(log).is_ok() {
            self.inner.swept_losses.store(u64::MAX, Ordering::Release);
        }
    }

    /// Connections to Redis lost so far (each ends the tracking session and empties the
    /// local tier).
    pub fn connection_losses(&self) -> u64 {
        self.inner.tracking.losses()
    }

    /// The key builder.
    pub fn keys(&self) -> &KeySpace {
        &self.inner.keys
    }

    /// The Redis handle (statistics, readiness).
    pub fn redis(&self) -> &Redis {
        &self.inner.redis
    }

    /// The counters.
    pub fn stats(&self) -> &CacheStats {
        &self.inner.stats
    }

    /// The local tier's figures, with the tracking session's.
    pub fn local_snapshot(&self) -> LocalTierStats {
        LocalTierStats {
            instance: self.inner.instance.to_string(),
            tier: self.inner.local.snapshot(),
            tracking_session: self.inner.tracking.session(),
            tracking_sessions_started: self.inner.tracking.sessions_started(),
            tracking_notices: self.inner.tracking.notices(),
        }
    }

    /// The clock lookups read (tests move it instead of waiting).
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The data set's epoch this instance serves values of.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::Acquire)
    }

    /// Serves only values computed in `epoch` from now on; whether it changed.
    pub fn set_epoch(&self, epoch: u64) -> bool {
        let changed = self.inner.epoch.swap(epoch, Ordering::AcqRel) != epoch;
        if changed {
            // Nothing held is servable any more: free the memory at once.
            self.inner.local.flush();
        }
        changed
    }

    /// The test seams (nothing installed in production).
    pub fn hooks(&self) -> &Hooks {
        &self.inner.hooks
    }

    /// Serves `key` from the local tier or Redis, or computes it with `compute` (once for all
    /// concurrent callers) and stores it. `compute` gets the generation it runs under and
    /// must read every input after it. See the module documentation for the rules.
    pub async fn get_or_compute<F, Fut>(
        &self,
        family: Family,
        key: String,
        scope: Scope,
        compute: F,
    ) -> Result<Served, AppError>
    where
        F: FnOnce(Pinned) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Computed, AppError>> + Send + 'static,
    {
        let stats = &self.inner.stats;
        let cause = current_cause();
        // This lookup's steps in the request's trace, if one is recorded (see `trace`).
        let traced = trace::lookup(family);
        // The epoch first: an input read after it is at least as new as it.
        let epoch = self.epoch();
        let redis_down = self.inner.redis.is_down();
        // A user's values are read from Redis only over connections made before the last
        // delivery of the recorded invalidations, checked again after each read.
        let losses = self.inner.tracking.losses();
        let per_user = scope.user().is_some();
        if redis_down
            || !self.settle_pending(&scope, &key).await
            || (per_user && !self.swept(losses).await)
        {
            // Redis is down, or an invalidation of this value has not reached it yet: neither
            // Redis nor anything read from it is trusted.
            traced.mark(Step::RedisSkipped(match redis_down {
                true if !self.inner.redis.breaker().allows() => Why::BreakerOpen,
                true => Why::NotConnected,
                false => Why::InvalidationPending,
            }));
            return self
                .without_redis(family, key, scope, epoch, cause, traced, compute)
                .await;
        }

        let now = self.inner.clock.now();
        let mut generation = None;
        let local_started = traced.start();
        if let Some(value) = self.inner.local.get(&key) {
            match self
                .lookup_local(family, &key, &scope, value, epoch, now, traced)
                .await
            {
                Local::Hit(..) if per_user && self.inner.tracking.losses() != losses => {
                    // The generation was read over a connection made since: not trusted.
                    traced.record(Step::LocalNotServable(Why::GenerationUnread), local_started);
                }
                Local::Hit(served, generation) => {
                    traced.record(Step::LocalHit, local_started);
                    self.inner.local.count(true);
                    stats.record(family, Event::LocalHit(cause));
                    if served.value.claim_refresh_if_due(now) {
                        traced.mark(Step::RefreshStarted);
                        let pinned = Pinned { generation, epoch };
                        self.refresh_in_background(family, key, scope, &served, pinned, compute);
                    }
                    return Ok(served);
                }
                Local::Miss(read, why) => {
                    traced.record(Step::LocalNotServable(why), local_started);
                    generation = read;
                }
            }
        } else if self.inner.local.enabled() {
            traced.record(Step::LocalMiss, local_started);
        } else {
            traced.record(Step::LocalOff, local_started);
        }
        self.inner.local.count(false);

        let mark = self.inner.tracking.mark();
        // A user's generation is read with the value unless the local tier just read it.
        let reads_generation = scope.user().is_some() && generation.is_none();
        let read_started = traced.start();
        let (cache_ok, generation, entry) = match self.read(&scope, &key, generation).await {
            // Read over a connection made after the last delivery of the recorded
            // invalidations: as if Redis had not answered (nothing is stored under it either).
            Ok(_) if per_user && self.inner.tracking.losses() != losses => {
                stats.record(family, Event::Error);
                (false, None, None)
            }
            Ok((generation, raw)) => (true, generation, raw.and_then(Entry::decode)),
            Err(err) => {
                stats.record(family, Event::Error);
                tracing::debug!(error = %err, key, "cache read failed");
                (false, None, None)
            }
        };
        let pinned = Pinned { generation, epoch };
        let tag = pinned.tag(&scope);
        let wanted = Wanted {
            epoch,
            tag: tag.as_deref(),
        };
        let grace = self.inner.grace_secs as i64;
        let decision = entry
            .as_ref()
            .map(|e| lookup::decide(e, wanted, now, grace));
        let usable = matches!(
            decision,
            Some(Decision::Fresh { .. } | Decision::Stale { .. })
        );
        if traced.is_recorded() {
            if !cache_ok {
                traced.record(Step::RedisError, read_started);
            } else {
                if reads_generation {
                    let step = match pinned.generation {
                        Some(_) => Step::GenerationFound,
                        None => Step::GenerationMissing,
                    };
                    traced.record(step, read_started);
                }
                traced.record(redis_step(decision), read_started);
            }
        }

        if let (Some(Decision::Fresh { ttl, refresh }), Some(entry)) = (decision, entry.clone()) {
            stats.record(family, Event::lookup(cause, true));
            let value = Arc::new(Value::new(entry, mark.session()));
            let kept = self.keep_locally(&key, &scope, &value, mark);
            traced.mark(kept);
            let served = Served {
                value,
                status: CacheStatus::hit(CACHE_NAME, ttl),
            };
            if refresh && served.value.claim_refresh_if_due(now) {
                traced.mark(Step::RefreshStarted);
                self.refresh_in_background(family, key, scope, &served, pinned, compute);
            }
            return Ok(served);
        }
        stats.record(family, Event::lookup(cause, false));

        let flight_key = pinned.flight_key(&key, &scope);
        let hook_key = self.inner.hooks.installed().then(|| key.clone());
        let flight_started = traced.start();
        let flight =
            self.compute_and_store(family, key, scope, pinned, cache_ok, cause, traced, compute);
        let (flight, collapsed) = self.inner.flights.join(&flight_key, flight);
        self.inner
            .hooks
            .at(|| Point::FlightJoined {
                key: hook_key.unwrap_or_default(),
                collapsed,
            })
            .await;
        let flown = flight.await;
        traced.record(flight_step(collapsed), flight_started);
        match flown {
            Ok((value, stored)) => {
                let mut status = CacheStatus::miss(CACHE_NAME, stored && !collapsed);
                status.collapsed = collapsed;
                if usable {
                    status.fwd = Some(Forward::Stale);
                }
                if !cache_ok {
                    status.detail = Some("cache-unavailable");
                }
                Ok(Served { value, status })
            }
            Err(err) if err.is_unavailable() => match (decision, entry) {
                (Some(Decision::Stale { ttl }), Some(entry)) => {
                    traced.mark(Step::StaleServed);
                    stats.record(family, Event::Stale);
                    Ok(Served {
                        value: Arc::new(Value::new(entry, 0)),
                        status: CacheStatus::stale(CACHE_NAME, ttl),
                    })
                }
                _ => Err(err),
            },
            Err(err) => Err(err),
        }
    }

    /// Whether the local tier's `value` may be served: a shared value while the tracking
    /// session it was read in lives; a user's value once a `GET` of the user's generation
    /// confirms it (see `invalidation`). Only fresh values are served from here.
    #[allow(clippy::too_many_arguments)]
    async fn lookup_local(
        &self,
        family: Family,
        key: &str,
        scope: &Scope,
        value: Arc<Value>,
        epoch: u64,
        now: i64,
        traced: Lookup,
    ) -> Local {
        let generation = match scope.user() {
            None => {
                if value.session == OUTAGE_SESSION {
                    return Local::Miss(None, Why::OutageValue);
                }
                if value.session == 0 || value.session != self.inner.tracking.session() {
                    return Local::Miss(None, Why::OtherSession);
                }
                None
            }
            Some(user) => {
                let gen_key = self.inner.keys.user_generation(user);
                let started = traced.start();
                let read = self
                    .inner
                    .redis
                    .query::<Option<String>>(redis::cmd("GET").arg(gen_key))
                    .await;
                match read {
                    Ok(Some(generation)) => {
                        traced.record(Step::GenerationFound, started);
                        Some(Arc::<str>::from(generation))
                    }
                    Ok(None) => {
                        traced.record(Step::GenerationMissing, started);
                        return Local::Miss(None, Why::NoGeneration);
                    }
                    Err(err) => {
                        traced.record(Step::GenerationFailed, started);
                        self.inner.stats.record(family, Event::Error);
                        tracing::debug!(error = %err, key, "cache read failed");
                        return Local::Miss(None, Why::GenerationUnread);
                    }
                }
            }
        };
        let tag = generation.as_deref().map(|g| scope.tag(g));
        let wanted = Wanted {
            epoch,
            tag: tag.as_deref(),
        };
        match lookup::decide(&value.entry, wanted, now, self.inner.grace_secs as i64) {
            Decision::Fresh { ttl, .. } => Local::Hit(
                Served {
                    value,
                    status: CacheStatus::hit(CACHE_NAME, ttl),
                },
                generation,
            ),
            Decision::Stale { .. } => Local::Miss(generation, Why::Stale),
            Decision::Unusable(unusable) => Local::Miss(generation, why_unusable(unusable)),
        }
    }

    /// Keeps a value read from Redis or computed here in the local tier, when that is safe: a
    /// user's value always (it is confirmed against the generation before it is served), a
    /// shared value only if no notice arrived since `mark` (one may have been about it).
    /// Returns what was done, as a trace step.
    fn keep_locally(&self, key: &str, scope: &Scope, value: &Arc<Value>, mark: Mark) -> Step {
        let keep = match scope {
            Scope::Global => self.inner.tracking.unchanged_since(mark),
            _ => value.entry.tag.is_some(),
        };
        if !self.inner.local.enabled() {
            return Step::LocalOff;
        }
        if !keep {
            return Step::LocalNotKept(match scope {
                Scope::Global if mark.session() == 0 => Why::NoSession,
                Scope::Global => Why::ChangedMeanwhile,
                _ => Why::NoGeneration,
            });
        }
        self.inner.local.insert(key, Arc::clone(value));
        Step::LocalKept
    }

    /// Starts the early refresh of a value in the last tenth of its life: once per value in
    /// this instance, and once across instances (a claim in Redis).
    fn refresh_in_background<F, Fut>(
        &self,
        family: Family,
        key: String,
        scope: Scope,
        served: &Served,
        pinned: Pinned,
        compute: F,
    ) where
        F: FnOnce(Pinned) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Computed, AppError>> + Send + 'static,
    {
        let this = self.clone();
        let entry = &served.value.entry;
        let flight_key = pinned.flight_key(&key, &scope);
        let remaining = (entry.fresh_until - self.inner.clock.now()).max(1) as u64;
        let task = async move {
            if !this.claim_refresh(&key, remaining).await {
                this.inner.stats.record(family, Event::RefreshSkipped);
                return;
            }
            let flight = this.compute_and_store(
                family,
                key,
                scope,
                pinned,
                true,
                Cause::Refresh,
                Lookup::NONE,
                compute,
            );
            let _ = this.inner.flights.run(&flight_key, flight).await;
        };
        self.inner.background.spawn(task);
    }

    /// A value computed without the cache (served once, never kept).
    fn uncached(&self, body: Vec<u8>) -> Arc<Value> {
        Arc::new(Value::detached(Bytes::from(body)))
    }

    /// A fresh value of `key` stored under `pinned` (the generation the caller's computation
    /// runs under), or `None`. For by-products a computation reuses, such as the embedding a
    /// recommendation is scored with: a value stored under any other generation is never
    /// returned, so an input is never older than the computation's own generation. Read from
    /// Redis only (by-products are not kept in the local tier).
    pub async fn peek(
        &self,
        family: Family,
        key: &str,
        scope: &Scope,
        pinned: &Pinned,
    ) -> Option<Arc<[u8]>> {
        if !pinned.usable_for(scope) {
            return None;
        }
        let cause = current_cause();
        let traced = trace::lookup(family);
        let started = traced.start();
        let raw = match self
            .inner
            .redis
            .query::<Option<Vec<u8>>>(redis::cmd("GET").arg(key))
            .await
        {
            Ok(raw) => raw,
            Err(err) => {
                traced.record(Step::RedisError, started);
                self.inner.stats.record(family, Event::Error);
                tracing::debug!(error = %err, key, "cache read failed");
                return None;
            }
        };
        let tag = pinned.tag(scope);
        let wanted = Wanted {
            epoch: pinned.epoch,
            tag: tag.as_deref(),
        };
        let now = self.inner.clock.now();
        let entry = raw.and_then(Entry::decode);
        let decision = entry.as_ref().map(|e| lookup::decide(e, wanted, now, 0));
        traced.record(redis_step(decision), started);
        let found = entry
            .filter(|_| matches!(decision, Some(Decision::Fresh { .. })))
            .map(|e| Arc::from(&e.body[..]));
        self.inner
            .stats
            .record(family, Event::lookup(cause, found.is_some()));
        found
    }

    /// Stores a by-product of a computation (see [`Cache::peek`]) under `pinned`. Failures
    /// are counted and otherwise ignored: the value is only an optimisation.
    pub async fn store(
        &self,
        family: Family,
        key: &str,
        scope: &Scope,
        pinned: &Pinned,
        computed: Computed,
    ) {
        if !pinned.usable_for(scope) {
            return;
        }
        self.inner
            .stats
            .record(family, Event::Computed(current_cause()));
        let entry = self.entry(pinned, pinned.tag(scope), computed);
        let traced = trace::lookup(family);
        let started = traced.start();
        if let Err(err) = self.write(family, key, &entry).await {
            traced.record(Step::StoreFailed, started);
            self.inner.stats.record(family, Event::Error);
            tracing::debug!(error = %err, key, "cache write failed");
        } else {
            traced.record(Step::Stored, started);
        }
    }

    /// A fresh by-product of `key` valid for the current data set's epoch whatever the user's
    /// generation (the value says itself what it is valid for, e.g. a user's ratings as of a
    /// PostgreSQL version, and the caller brings it up to date), or `None`.
    pub async fn peek_unscoped(&self, family: Family, key: &str) -> Option<Arc<[u8]>> {
        self.peek(family, key, &Scope::Global, &Pinned::global(self.epoch()))
            .await
    }

    /// Stores a by-product read back with [`Cache::peek_unscoped`].
    pub async fn store_unscoped(&self, family: Family, key: &str, epoch: u64, computed: Computed) {
        self.store(
            family,
            key,
            &Scope::Global,
            &Pinned::global(epoch),
            computed,
        )
        .await
    }

    /// Waits until no background refresh started by this cache is running (tests: "nothing
    /// was recomputed" is then a fact, not a guess about timing).
    pub async fn settled(&self) {
        self.inner.background.idle().await;
    }

    fn entry(&self, pinned: &Pinned, tag: Option<String>, computed: Computed) -> Entry {
        let now = self.inner.clock.now();
        Entry {
            stored_at: now,
            fresh_until: now + computed.ttl_secs as i64,
            epoch: pinned.epoch,
            tag: tag.map(String::into_boxed_str),
            body: Bytes::from(computed.body),
        }
    }

    /// Writes `entry` under `key` and counts it as `family`'s (its bytes too).
    async fn write(&self, family: Family, key: &str, entry: &Entry) -> Result<(), RedisError> {
        let ttl = (entry.fresh_until - entry.stored_at).max(0) as u64;
        // Kept past its TTL to be served stale while PostgreSQL is down; never a user's
        // recommender state, which is only a starting point checked against PostgreSQL.
        let grace = match family {
            Family::Embedding => 0,
            _ => self.inner.grace_secs,
        };
        let expire = ttl + grace;
        let encoded = entry.encode();
        let bytes = (key.len() + encoded.len()) as u64;
        self.inner
            .redis
            .query::<()>(
                redis::cmd("SET")
                    .arg(key)
                    .arg(encoded)
                    .arg("EX")
                    .arg(expire.max(1)),
            )
            .await?;
        self.inner.stats.record(family, Event::Stored(bytes));
        Ok(())
    }

    /// Claims the early refresh of `key` for this instance: `SET {key}:refresh NX` with the
    /// entry's remaining life (at most a minute) as expiry. Requests that read the old entry
    /// just after a refresh finished, here or on another instance, find the claim and leave
    /// the new entry alone; a refresh that failed is retried once the claim expires. Without
    /// Redis there is nothing to refresh.
    async fn claim_refresh(&self, key: &str, remaining_secs: u64) -> bool {
        let claimed = self
            .inner
            .redis
            .query::<Option<String>>(
                redis::cmd("SET")
                    .arg(shared::cache_key::refresh_claim(key))
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(remaining_secs.clamp(1, 60)),
            )
            .await;
        matches!(claimed, Ok(Some(_)))
    }

    /// The computation a single flight runs: pin the user's generation (creating the token if
    /// the user has none, so the value is tied to it) before anything is read, compute, store
    /// in Redis and keep locally. It runs in a task of its own: `traced`, the leader's lookup,
    /// carries the leader's trace there.
    #[allow(clippy::too_many_arguments)]
    fn compute_and_store<F, Fut>(
        &self,
        family: Family,
        key: String,
        scope: Scope,
        pinned: Pinned,
        cache_ok: bool,
        cause: Cause,
        traced: Lookup,
        compute: F,
    ) -> impl Future<Output = FlightResult> + Send + 'static
    where
        F: FnOnce(Pinned) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Computed, AppError>> + Send + 'static,
    {
        let this = self.clone();
        traced.handle().within(async move {
            let stats = &this.inner.stats;
            let mark = this.inner.tracking.mark();
            let mut pinned = pinned;
            let mut cache_ok = cache_ok;
            if let (Some(user), None, true) = (scope.user(), &pinned.generation, cache_ok) {
                let started = traced.start();
                match this.establish_generation(user).await {
                    Ok(token) => {
                        traced.record(Step::GenerationEstablished, started);
                        pinned.generation = Some(Arc::from(token));
                    }
                    Err(err) => {
                        traced.record(Step::GenerationFailed, started);
                        stats.record(family, Event::Error);
                        tracing::debug!(error = %err, "cache generation failed");
                        cache_ok = false;
                    }
                }
            }
            if !cache_ok {
                pinned.generation = None;
            }
            let tag = pinned.tag(&scope);
            let epoch_pinned = pinned.clone();
            let computed = this
                .compute_in_turn(family, &key, cause, traced, pinned, compute)
                .await?;
            stats.record(family, Event::Computed(cause));
            if !cache_ok {
                traced.mark(Step::StoreSkipped(Why::CacheUnavailable));
                return Ok((this.uncached(computed.body), false));
            }
            let entry = this.entry(&epoch_pinned, tag, computed);
            let started = traced.start();
            let stored = this.write(family, &key, &entry).await;
            if let Err(err) = &stored {
                traced.record(Step::StoreFailed, started);
                stats.record(family, Event::Error);
                tracing::debug!(error = %err, key, "cache write failed");
            } else {
                traced.record(Step::Stored, started);
            }
            let value = Arc::new(Value::new(entry, mark.session()));
            if stored.is_ok() {
                traced.mark(this.keep_locally(&key, &scope, &value, mark));
            }
            Ok((value, stored.is_ok()))
        })
    }

    /// Runs `compute` under `pinned` within a turn of `family`'s bulkhead (the test seam
    /// `ComputeStarted` once it holds the turn), counted as `cause`, with the wait and the
    /// computation in the request's trace.
    async fn compute_in_turn<F, Fut>(
        &self,
        family: Family,
        key: &str,
        cause: Cause,
        traced: trace::Lookup,
        pinned: Pinned,
        compute: F,
    ) -> Result<Computed, AppError>
    where
        F: FnOnce(Pinned) -> Fut,
        Fut: Future<Output = Result<Computed, AppError>>,
    {
        let waited = traced.start();
        let _turn = self.turn(family).await;
        traced.record(Step::BulkheadWait, waited);
        self.inner
            .hooks
            .at(|| Point::ComputeStarted {
                key: key.to_owned(),
            })
            .await;
        let started = traced.start();
        let computed = CAUSE.scope(cause, compute(pinned)).await;
        traced.record(compute_step(&computed), started);
        computed
    }

    /// A turn of `family`'s bulkhead, held while one computation runs.
    async fn turn(&self, family: Family) -> tokio::sync::SemaphorePermit<'_> {
        let index = Family::ALL
            .iter()
            .position(|f| *f == family)
            .expect("every family is in Family::ALL");
        self.inner.bulkheads[index]
            .acquire()
            .await
            .expect("the bulkheads are never closed")
    }

    /// Serves `key` without Redis: while Redis is down (or this value's invalidation has not
    /// reached it yet). A value computed in such a time is kept in the local tier for at most
    /// `outage_hold_secs` and served from there meanwhile; one computation per key runs at
    /// once, within the family's bulkhead; nothing is stored in Redis.
    ///
    /// Without Redis there is no generation token, so a user's value is pinned to the user's
    /// rating version in PostgreSQL instead (read first, one indexed row, see
    /// [`Cache::set_user_versions`]), and to the model's version: requests share a computation,
    /// and a held value, only under the same pin. Every rating bumps the version before it is
    /// acknowledged, so a request that starts after a rating was acknowledged, on any
    /// instance, reads the new version and never gets what was computed before it.
    #[allow(clippy::too_many_arguments)]
    async fn without_redis<F, Fut>(
        &self,
        family: Family,
        key: String,
        scope: Scope,
        epoch: u64,
        cause: Cause,
        traced: Lookup,
        compute: F,
    ) -> Result<Served, AppError>
    where
        F: FnOnce(Pinned) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Computed, AppError>> + Send + 'static,
    {
        let stats = &self.inner.stats;
        let now = self.inner.clock.now();
        let unavailable = |status: CacheStatus| CacheStatus {
            detail: Some("cache-unavailable"),
            ..status
        };
        // A user's value is pinned to the user's rating version (and the model's), read
        // first: it is shared, and held, only under that pin.
        let pin = match (&scope, scope.user()) {
            (_, None) => Some(String::new()),
            (scope, Some(user)) => match self.inner.user_versions.get() {
                Some(versions) => {
                    let version = versions(user).await?;
                    Some(match scope {
                        Scope::UserModel(_, model) => format!("{version}/{model}"),
                        _ => version.to_string(),
                    })
                }
                // No source of versions (tests of the cache alone): never shared nor held.
                None => None,
            },
        };
        let held_key = match (&pin, scope.user()) {
            (Some(_), None) => Some(key.clone()),
            (Some(pin), Some(_)) => Some(format!("{key}#outage#{pin}")),
            (None, _) => None,
        };
        let held_started = traced.start();
        if let Some(held_key) = &held_key
            && let Some(value) = self.inner.local.get(held_key)
            && value.session == OUTAGE_SESSION
        {
            let wanted = Wanted { epoch, tag: None };
            if let Decision::Fresh { ttl, .. } = lookup::decide(&value.entry, wanted, now, 0) {
                traced.record(Step::HoldHit, held_started);
                self.inner.local.count(true);
                stats.record(family, Event::LocalHit(cause));
                return Ok(Served {
                    value,
                    status: unavailable(CacheStatus::hit(CACHE_NAME, ttl)),
                });
            }
        }
        if held_key.is_some() {
            traced.record(Step::HoldMiss, held_started);
        }
        stats.record(family, Event::lookup(cause, false));
        let flight_key = format!(
            "{}#without-redis#{}",
            Pinned::global(epoch).flight_key(&key, &scope),
            pin.clone()
                .unwrap_or_else(|| format!("unshared-{}", new_token()))
        );
        let this = self.clone();
        let held_key = held_key.filter(|_| self.inner.outage_hold_secs > 0);
        let shared = matches!(scope, Scope::Global);
        let flight = traced.handle().within(async move {
            let mark = this.inner.tracking.mark();
            let computed = this
                .compute_in_turn(family, &key, cause, traced, Pinned::global(epoch), compute)
                .await?;
            this.inner.stats.record(family, Event::Computed(cause));
            let Some(held_key) = held_key else {
                traced.mark(Step::HoldNotKept(Why::NotHeld));
                return Ok((this.uncached(computed.body), false));
            };
            // Kept for the hold only (or less, if the value's own freshness is shorter); a
            // shared value only if no change was heard of while it was computed (a user's is
            // kept under its pin, which a rating changes).
            let hold_secs = (computed.ttl_secs as i64).min(this.inner.outage_hold_secs);
            let entry = this.entry(
                &Pinned::global(epoch),
                None,
                Computed {
                    body: computed.body,
                    ttl_secs: hold_secs.max(0) as u64,
                },
            );
            let value = Arc::new(Value::new(entry, OUTAGE_SESSION));
            if !shared || this.inner.tracking.quiet_since(mark) {
                traced.mark(Step::HoldKept);
                this.inner.local.insert(&held_key, Arc::clone(&value));
            } else {
                traced.mark(Step::HoldNotKept(Why::ChangedMeanwhile));
            }
            Ok((value, false))
        });
        let flight_started = traced.start();
        let (flight, collapsed) = self.inner.flights.join(&flight_key, flight);
        let flown = flight.await;
        traced.record(flight_step(collapsed), flight_started);
        let (value, _) = flown?;
        let mut status = unavailable(CacheStatus::miss(CACHE_NAME, false));
        status.collapsed = collapsed;
        Ok(Served { value, status })
    }

    /// Reads `key` from Redis, with the user's generation for a user's value (in one `MGET`:
    /// the token and the value share a hash slot) unless it was just read (`generation`).
    async fn read(
        &self,
        scope: &Scope,
        key: &str,
        generation: Option<Arc<str>>,
    ) -> Result<(Option<Arc<str>>, Option<Vec<u8>>), RedisError> {
        match (scope.user(), generation) {
            (None, _) => Ok((
                None,
                self.inner.redis.query(redis::cmd("GET").arg(key)).await?,
            )),
            (Some(_), Some(generation)) => Ok((
                Some(generation),
                self.inner.redis.query(redis::cmd("GET").arg(key)).await?,
            )),
            (Some(user), None) => {
                let gen_key = self.inner.keys.user_generation(user);
                let (generation, raw): (Option<String>, Option<Vec<u8>>) = self
                    .inner
                    .redis
                    .query(redis::cmd("MGET").arg(gen_key).arg(key))
                    .await?;
                Ok((generation.map(Arc::from), raw))
            }
        }
    }

    /// The user's generation token, created if missing (`SET NX GET` answers the existing one).
    async fn establish_generation(&self, user: UserId) -> Result<String, RedisError> {
        let token = new_token();
        let existing: Option<String> = self
            .inner
            .redis
            .query(
                redis::cmd("SET")
                    .arg(self.inner.keys.user_generation(user))
                    .arg(&token)
                    .arg("NX")
                    .arg("GET")
                    .arg("EX")
                    .arg(GENERATION_TTL_SECS),
            )
            .await?;
        Ok(existing.unwrap_or(token))
    }
}

/// A trace's step for what Redis held: nothing, or an entry and what it is good for.
fn redis_step(decision: Option<Decision>) -> Step {
    match decision {
        None => Step::RedisMiss,
        Some(Decision::Fresh { .. }) => Step::RedisHit,
        Some(Decision::Stale { .. }) => Step::RedisStale,
        Some(Decision::Unusable(unusable)) => Step::RedisNotServable(why_unusable(unusable)),
    }
}

/// A trace's reason for an entry that is not servable at all.
fn why_unusable(unusable: Unusable) -> Why {
    match unusable {
        Unusable::OtherEpoch => Why::EpochMismatch,
        Unusable::OtherGeneration => Why::GenerationMismatch,
        Unusable::Expired => Why::Expired,
    }
}

/// A trace's step for a computation's result.
fn compute_step<T>(computed: &Result<T, AppError>) -> Step {
    match computed {
        Ok(_) => Step::Computed,
        Err(_) => Step::ComputeFailed,
    }
}

/// A trace's step for joining a single flight.
fn flight_step(collapsed: bool) -> Step {
    match collapsed {
        true => Step::FlightCollapsed,
        false => Step::FlightLeader,
    }
}

/// The local tier of one instance, for `/admin/cache/stats`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LocalTierStats {
    /// The instance (`INSTANCE_NAME`).
    pub instance: String,
    /// The tier's figures.
    #[serde(flatten)]
    pub tier: LocalSnapshot,
    /// The live tracking session (0: none; shared values are then not served locally).
    pub tracking_session: u64,
    /// Tracking sessions started (more than 1: connections to Redis were lost and remade).
    pub tracking_sessions_started: u64,
    /// Changes of shared keys this instance heard of: Redis's notices, and its own deletions.
    pub tracking_notices: u64,
}
