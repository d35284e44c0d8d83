//! The application cache (layer 1): Redis in front of PostgreSQL.
//!
//! One entry point, [`Cache::get_or_compute`], gives every family the same behaviour:
//! - a fresh value is served (`origin; hit`), and in the last tenth of its life it is
//!   recomputed in the background so hot keys never expire under load, once per entry across
//!   all instances (a short `SET NX` claim next to the key);
//! - a miss is computed once however many requests want it (single flight) and stored, empty
//!   results included;
//! - a value past its TTL is kept for a grace period and served, marked stale, only when
//!   PostgreSQL cannot be reached;
//! - when Redis cannot be reached the value is computed from PostgreSQL and served anyway.
//!
//! Invalidation never scans: every value of one user is stored with the user's generation
//! token (`user:gen:{user:42}`, same hash slot), read with it in one `MGET`, and valid only
//! while the token matches. A new rating replaces the token: all of that user's
//! recommendations and their profile, whatever `n` and strategy, are invalid at once. A value
//! computed from data read before the write carries the old token, so it can never be served
//! after the write. An invalidation that cannot reach Redis is kept and retried, and until it
//! succeeds this instance does not read that user's (or that list's) cached values. There is
//! no in-process cache of personal data, so no instance can hold a copy Redis does not.
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
mod connection;
mod single_flight;
pub mod stats;

use crate::error::AppError;
use crate::hooks::{Hooks, Point};
use background::Background;
pub use connection::{Redis, RedisError};
use shared::cache_key::{Family, KeySpace};
use shared::cache_status::{CacheStatus, Forward};
use shared::params::UserId;
use single_flight::SingleFlight;
pub use stats::Cause;
use stats::{CacheStats, Event};
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// This cache's name in `Cache-Status`.
pub const CACHE_NAME: &str = "origin";

/// Generation tokens outlive every value stored under them (7 days + grace at most).
const GENERATION_TTL_SECS: u64 = 30 * 24 * 3600;

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
    /// The value.
    pub body: Arc<[u8]>,
    /// How it was obtained, for `Cache-Status`.
    pub status: CacheStatus,
}

struct Entry {
    stored_at: i64,
    fresh_until: i64,
    /// The data set's epoch it was computed in: another epoch's value is never served.
    epoch: u64,
    generation: Option<String>,
    body: Arc<[u8]>,
}

impl Entry {
    /// `v2 STORED_AT FRESH_UNTIL EPOCH GENERATION\n` (the epoch in hex) then the body, as is.
    fn encode(&self) -> Vec<u8> {
        let generation = self.generation.as_deref().unwrap_or("-");
        let mut out = format!(
            "v2 {} {} {:x} {generation}\n",
            self.stored_at, self.fresh_until, self.epoch
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    /// An entry, or `None` for anything else (an older format included: it is a miss).
    fn decode(raw: &[u8]) -> Option<Entry> {
        let newline = raw.iter().position(|b| *b == b'\n')?;
        let header = std::str::from_utf8(&raw[..newline]).ok()?;
        let mut parts = header.split(' ');
        if parts.next()? != "v2" {
            return None;
        }
        let stored_at = parts.next()?.parse().ok()?;
        let fresh_until = parts.next()?.parse().ok()?;
        let epoch = u64::from_str_radix(parts.next()?, 16).ok()?;
        let generation = match parts.next()? {
            "-" => None,
            token => Some(token.to_owned()),
        };
        Some(Entry {
            stored_at,
            fresh_until,
            epoch,
            generation,
            body: Arc::from(&raw[newline + 1..]),
        })
    }
}

type FlightResult = Result<(Arc<[u8]>, bool), AppError>;

#[derive(Default)]
struct Pending {
    users: HashSet<UserId>,
    keys: HashSet<String>,
}

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
}

/// The cache handle; cloning shares it.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn new_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Cache {
    /// A cache over `redis`; starts the retry loop for unacknowledged invalidations.
    pub fn new(redis: Redis, keys: KeySpace, grace: Duration) -> Self {
        let cache = Cache {
            inner: Arc::new(Inner {
                redis,
                keys,
                stats: CacheStats::default(),
                flights: SingleFlight::default(),
                hooks: Hooks::default(),
                background: Background::default(),
                epoch: AtomicU64::new(0),
                grace_secs: grace.as_secs(),
                pending: Mutex::new(Pending::default()),
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
        cache
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

    /// The data set's epoch this instance serves values of.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::Acquire)
    }

    /// Serves only values computed in `epoch` from now on; whether it changed.
    pub fn set_epoch(&self, epoch: u64) -> bool {
        self.inner.epoch.swap(epoch, Ordering::AcqRel) != epoch
    }

    /// The test seams (nothing installed in production).
    pub fn hooks(&self) -> &Hooks {
        &self.inner.hooks
    }

    /// Serves `key` from Redis, or computes it with `compute` (once for all concurrent
    /// callers) and stores it. `compute` gets the generation it runs under and must read
    /// every input after it. See the module documentation for the rules.
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
        if !self.settle_pending(&scope, &key).await {
            // An invalidation of this value has not reached Redis yet: do not trust the cache.
            stats.record(family, Event::lookup(cause, false));
            let computed = compute(Pinned::default()).await?;
            stats.record(family, Event::Computed(cause));
            let status = CacheStatus {
                detail: Some("cache-unavailable"),
                ..CacheStatus::miss(CACHE_NAME, false)
            };
            return Ok(Served {
                body: computed.body.into(),
                status,
            });
        }

        let now = unix_now();
        // The epoch first: an input read after it is at least as new as it.
        let epoch = self.epoch();
        let (cache_ok, generation, entry) = match self.read(&scope, &key).await {
            Ok((generation, raw)) => (true, generation, raw.as_deref().and_then(Entry::decode)),
            Err(err) => {
                stats.record(family, Event::Error);
                tracing::debug!(error = %err, key, "cache read failed");
                (false, None, None)
            }
        };
        let pinned = Pinned {
            generation: generation.map(Arc::from),
            epoch,
        };
        // The tag this lookup accepts, built once (a hit's hot path).
        let tag = pinned.tag(&scope);
        let entry = entry.filter(|e| {
            e.epoch == epoch
                && match &scope {
                    Scope::Global => true,
                    _ => tag.is_some() && e.generation == tag,
                }
        });

        if let Some(entry) = entry.as_ref().filter(|e| now < e.fresh_until) {
            stats.record(family, Event::lookup(cause, true));
            if shared::ttl::should_refresh_early(entry.stored_at, entry.fresh_until, now) {
                let this = self.clone();
                let flight_key = pinned.flight_key(&key, &scope);
                let remaining = (entry.fresh_until - now).max(1) as u64;
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
                        cache_ok,
                        Cause::Refresh,
                        compute,
                    );
                    let _ = this.inner.flights.run(&flight_key, flight).await;
                };
                self.inner.background.spawn(task);
            }
            return Ok(Served {
                body: entry.body.clone(),
                status: CacheStatus::hit(CACHE_NAME, entry.fresh_until - now),
            });
        }
        stats.record(family, Event::lookup(cause, false));

        let flight_key = pinned.flight_key(&key, &scope);
        let hook_key = self.inner.hooks.installed().then(|| key.clone());
        let flight = self.compute_and_store(family, key, scope, pinned, cache_ok, cause, compute);
        let (flight, collapsed) = self.inner.flights.join(&flight_key, flight);
        self.inner
            .hooks
            .at(|| Point::FlightJoined {
                key: hook_key.unwrap_or_default(),
                collapsed,
            })
            .await;
        match flight.await {
            Ok((body, stored)) => {
                let mut status = CacheStatus::miss(CACHE_NAME, stored && !collapsed);
                status.collapsed = collapsed;
                if entry.is_some() {
                    status.fwd = Some(Forward::Stale);
                }
                if !cache_ok {
                    status.detail = Some("cache-unavailable");
                }
                Ok(Served { body, status })
            }
            Err(err) if err.is_unavailable() => match entry {
                Some(entry) if now < entry.fresh_until + self.inner.grace_secs as i64 => {
                    stats.record(family, Event::Stale);
                    Ok(Served {
                        body: entry.body,
                        status: CacheStatus::stale(CACHE_NAME, entry.fresh_until - now),
                    })
                }
                _ => Err(err),
            },
            Err(err) => Err(err),
        }
    }

    /// A fresh value of `key` stored under `pinned` (the generation the caller's computation
    /// runs under), or `None`. For by-products a computation reuses, such as the embedding a
    /// recommendation is scored with: a value stored under any other generation is never
    /// returned, so an input is never older than the computation's own generation.
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
        let raw = match self
            .inner
            .redis
            .query::<Option<Vec<u8>>>(redis::cmd("GET").arg(key))
            .await
        {
            Ok(raw) => raw,
            Err(err) => {
                self.inner.stats.record(family, Event::Error);
                tracing::debug!(error = %err, key, "cache read failed");
                return None;
            }
        };
        let now = unix_now();
        let found = raw
            .as_deref()
            .and_then(Entry::decode)
            .filter(|e| {
                now < e.fresh_until && e.epoch == pinned.epoch && e.generation == pinned.tag(scope)
            })
            .map(|e| e.body);
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
        let stored = self
            .write(
                key,
                pinned,
                pinned.tag(scope),
                computed.body.into(),
                computed.ttl_secs,
            )
            .await;
        if let Err(err) = stored {
            self.inner.stats.record(family, Event::Error);
            tracing::debug!(error = %err, key, "cache write failed");
        }
    }

    /// Waits until no background refresh started by this cache is running (tests: "nothing
    /// was recomputed" is then a fact, not a guess about timing).
    pub async fn settled(&self) {
        self.inner.background.idle().await;
    }

    async fn write(
        &self,
        key: &str,
        pinned: &Pinned,
        tag: Option<String>,
        body: Arc<[u8]>,
        ttl_secs: u64,
    ) -> Result<(), RedisError> {
        let now = unix_now();
        let entry = Entry {
            stored_at: now,
            fresh_until: now + ttl_secs as i64,
            epoch: pinned.epoch,
            generation: tag,
            body,
        };
        let expire = ttl_secs + self.inner.grace_secs;
        self.inner
            .redis
            .query::<()>(
                redis::cmd("SET")
                    .arg(key)
                    .arg(entry.encode())
                    .arg("EX")
                    .arg(expire),
            )
            .await
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
    /// the user has none, so the value is tied to it) before anything is read, compute, store.
    #[allow(clippy::too_many_arguments)]
    fn compute_and_store<F, Fut>(
        &self,
        family: Family,
        key: String,
        scope: Scope,
        pinned: Pinned,
        cache_ok: bool,
        cause: Cause,
        compute: F,
    ) -> impl Future<Output = FlightResult> + Send + 'static
    where
        F: FnOnce(Pinned) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Computed, AppError>> + Send + 'static,
    {
        let this = self.clone();
        async move {
            let stats = &this.inner.stats;
            let mut pinned = pinned;
            let mut cache_ok = cache_ok;
            if let (Some(user), None, true) = (scope.user(), &pinned.generation, cache_ok) {
                match this.establish_generation(user).await {
                    Ok(token) => pinned.generation = Some(Arc::from(token)),
                    Err(err) => {
                        stats.record(family, Event::Error);
                        tracing::debug!(error = %err, "cache generation failed");
                        cache_ok = false;
                    }
                }
            }
            if !cache_ok {
                pinned.generation = None;
            }
            this.inner
                .hooks
                .at(|| Point::ComputeStarted { key: key.clone() })
                .await;
            let tag = pinned.tag(&scope);
            let epoch_pinned = pinned.clone();
            let computed = CAUSE.scope(cause, compute(pinned)).await?;
            stats.record(family, Event::Computed(cause));
            let body: Arc<[u8]> = computed.body.into();
            if !cache_ok {
                return Ok((body, false));
            }
            let stored = this
                .write(&key, &epoch_pinned, tag, body.clone(), computed.ttl_secs)
                .await;
            if let Err(err) = &stored {
                stats.record(family, Event::Error);
                tracing::debug!(error = %err, key, "cache write failed");
            }
            Ok((body, stored.is_ok()))
        }
    }

    async fn read(
        &self,
        scope: &Scope,
        key: &str,
    ) -> Result<(Option<String>, Option<Vec<u8>>), RedisError> {
        match scope.user() {
            None => Ok((
                None,
                self.inner.redis.query(redis::cmd("GET").arg(key)).await?,
            )),
            Some(user) => {
                let gen_key = self.inner.keys.user_generation(user);
                self.inner
                    .redis
                    .query(redis::cmd("MGET").arg(gen_key).arg(key))
                    .await
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

    /// Invalidates everything cached for `user` (recommendations of every `n` and strategy,
    /// profile, embedding) with one command. Returns whether Redis acknowledged it; if not, it
    /// is retried and this instance bypasses the user's cached values until it succeeds.
    pub async fn invalidate_user(&self, user: UserId) -> bool {
        let ok = self.replace_generation(user).await;
        if ok {
            for family in [Family::Recommendations, Family::Profile, Family::Embedding] {
                self.inner.stats.record(family, Event::Invalidated);
            }
        } else {
            self.pending().users.insert(user);
        }
        ok
    }

    async fn replace_generation(&self, user: UserId) -> bool {
        let cmd = redis::cmd("SET")
            .arg(self.inner.keys.user_generation(user))
            .arg(new_token())
            .arg("EX")
            .arg(GENERATION_TTL_SECS)
            .clone();
        self.inner.redis.query::<()>(&cmd).await.is_ok()
    }

    /// Deletes shared values (lists, metadata) of `family`. Keys Redis does not acknowledge
    /// are retried, and bypassed by this instance until then.
    pub async fn invalidate_keys(&self, family: Family, keys: Vec<String>) {
        // One DEL per key: in a cluster the keys live in different slots.
        let results = futures::future::join_all(keys.iter().map(|key| async move {
            self.inner
                .redis
                .query::<i64>(redis::cmd("DEL").arg(key))
                .await
        }))
        .await;
        let mut pending = self.pending();
        for (key, result) in keys.into_iter().zip(results) {
            match result {
                Ok(_) => self.inner.stats.record(family, Event::Invalidated),
                Err(_) => {
                    pending.keys.insert(key);
                }
            }
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.inner.pending.lock().expect("pending lock poisoned")
    }

    /// Delivers a pending user invalidation; whether Redis acknowledged it.
    async fn deliver_user(&self, user: UserId) -> bool {
        let delivered = self.replace_generation(user).await;
        if delivered {
            self.pending().users.remove(&user);
        }
        delivered
    }

    /// Delivers a pending key deletion; whether Redis acknowledged it.
    async fn deliver_key(&self, key: &str) -> bool {
        let delivered = self
            .inner
            .redis
            .query::<i64>(redis::cmd("DEL").arg(key))
            .await
            .is_ok();
        if delivered {
            self.pending().keys.remove(key);
        }
        delivered
    }

    /// Whether the value may be read from Redis: true unless an invalidation of it is still
    /// pending and cannot be delivered now.
    async fn settle_pending(&self, scope: &Scope, key: &str) -> bool {
        let (user_pending, key_pending) = {
            let pending = self.pending();
            if pending.users.is_empty() && pending.keys.is_empty() {
                return true;
            }
            (
                scope.user().filter(|user| pending.users.contains(user)),
                pending.keys.contains(key),
            )
        };
        if let Some(user) = user_pending
            && !self.deliver_user(user).await
        {
            return false;
        }
        !key_pending || self.deliver_key(key).await
    }

    async fn retry_pending(&self) {
        let (users, keys): (Vec<UserId>, Vec<String>) = {
            let pending = self.pending();
            (
                pending.users.iter().copied().collect(),
                pending.keys.iter().cloned().collect(),
            )
        };
        for user in users {
            if !self.deliver_user(user).await {
                return;
            }
        }
        for key in keys {
            if !self.deliver_key(&key).await {
                return;
            }
        }
    }

    /// Number of invalidations not yet acknowledged by Redis.
    pub fn pending_invalidations(&self) -> usize {
        let pending = self.pending();
        pending.users.len() + pending.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let entry = Entry {
            stored_at: 10,
            fresh_until: 20,
            epoch: 0xfeed,
            generation: Some("ab12".into()),
            body: Arc::from(&b"{\"x\":\n1}"[..]),
        };
        let decoded = Entry::decode(&entry.encode()).unwrap();
        assert_eq!((decoded.stored_at, decoded.fresh_until), (10, 20));
        assert_eq!(decoded.epoch, 0xfeed);
        assert_eq!(decoded.generation.as_deref(), Some("ab12"));
        assert_eq!(&*decoded.body, b"{\"x\":\n1}");
        let global = Entry {
            generation: None,
            ..entry
        };
        assert_eq!(Entry::decode(&global.encode()).unwrap().generation, None);
        assert!(Entry::decode(b"garbage").is_none());
        assert!(
            Entry::decode(b"v1 10 20 ab12\n{}").is_none(),
            "an entry of the format before epochs is a miss"
        );
    }
}
