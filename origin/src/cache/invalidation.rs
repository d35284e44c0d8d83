//! Invalidation: how a change reaches every copy of a value, in Redis and in every instance's
//! local tier.
//!
//! **A user's values** (recommendations, profile) are never deleted: a rating replaces the
//! user's generation token, and a value is valid only while it carries the current token.
//! Redis copies are checked with the token in the same `MGET`; local copies are served only
//! after a `GET` of the token confirms them. The rating's instance replaces the token before
//! it answers, so any read that starts after the answer, on any instance, reads the new token:
//! there is no window in which another instance serves the older value, whatever the delay
//! of the notices below. (That `GET` is the one Redis round trip a local personal hit costs.)
//!
//! **Shared values** (lists, metadata) are deleted by key (a rating milestone, a view refresh)
//! or replaced (a refresh). Every instance asks Redis to tell it of every write to the keys of
//! those families: server-assisted client caching in broadcasting mode (`CLIENT TRACKING ON
//! BCAST NOLOOP PREFIX ...` on each master's connection, RESP3 pushes on the same
//! connection). Each notice removes the key from the local tier; a notice for no key (Redis
//! flushed its database) empties it. Broadcasting keeps no per-key table in Redis, so tracking
//! costs Redis no memory however many keys are read, and `NOLOOP` spares an instance the
//! notices of its own writes (it updates its own tier itself). Notices travel asynchronously:
//! a shared value leaves the other instances' tiers as soon as they read the notice, within
//! the connection's latency.
//!
//! **A tracking session** is the span during which notices are known to arrive: from the
//! moment `CLIENT TRACKING` succeeded on every master until a connection is lost (the library
//! pushes a disconnection notice; Redis forgets tracking with the connection). Every shared
//! value in the local tier is stamped with the session it was read in and is served only in
//! that session: after a reconnection, a failover or a restart of Redis, nothing read before
//! is served until read again. Outside a session shared values are not kept locally at all.
//!
//! **An invalidation Redis did not acknowledge** (Redis unreachable) is kept and retried, and
//! until it succeeds this instance does not read that user's (or that key's) cached values.
//! A user's is also recorded in PostgreSQL before the rating is answered
//! ([`InvalidationLog`]), for every instance: after it lost a connection to Redis (a restart,
//! a failover, a network fault), an instance reads no user's value from Redis until it has
//! delivered every recorded one ([`Cache::sweep_recorded`]), and it delivers them every half
//! second anyway. So a Redis that keeps its data across a restart (an append-only file)
//! cannot bring back a token from before a rating made while it was down and have it served.

use super::local::LocalTier;
use super::stats::Event;
use super::{Cache, Scope};
use crate::error::AppError;
use futures::future::BoxFuture;
use redis::{PushInfo, PushKind, Value as RedisValue};
use shared::cache_key::{Family, KeySpace};
use shared::params::UserId;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// When an invalidation was recorded (the row's own time: a delivery deletes only the row
/// it read).
pub type RecordedAt = chrono::DateTime<chrono::Utc>;

/// Where a user's invalidation Redis did not acknowledge is recorded for every instance
/// (PostgreSQL's `cache_invalidations`, see the module documentation).
pub trait InvalidationLog: Send + Sync {
    /// Records `user`'s.
    fn record(&self, user: UserId) -> BoxFuture<'_, Result<(), AppError>>;
    /// The oldest recorded ones, at most `limit`.
    fn recorded(&self, limit: i64) -> BoxFuture<'_, Result<Vec<(UserId, RecordedAt)>, AppError>>;
    /// Deletes the ones delivered, each only as it was read.
    fn delete<'a>(
        &'a self,
        delivered: &'a [(UserId, RecordedAt)],
    ) -> BoxFuture<'a, Result<(), AppError>>;
}

/// Recorded invalidations delivered per round.
const RECORDED_PER_ROUND: i64 = 1000;

/// Invalidations Redis has not acknowledged yet.
#[derive(Default)]
pub(super) struct Pending {
    users: HashSet<UserId>,
    keys: HashSet<String>,
}

/// The tracking session and the notices, applied as they arrive: the connection's reader calls
/// [`Tracking::on_push`] before it hands over any later reply, so a lookup that read a value
/// knows whether a notice arrived while it was reading (see [`Tracking::mark`]).
pub(super) struct Tracking {
    local: LocalTier,
    /// The live session, or 0.
    session: AtomicU64,
    sessions_started: AtomicU64,
    /// Notices applied (of keys, of a flush, of a lost connection).
    notices: AtomicU64,
    /// Connections lost.
    losses: AtomicU64,
    /// Wakes the session keeper when a session ended.
    ended: Notify,
}

/// Where a lookup started: the session and the notices applied by then.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    session: u64,
    notices: u64,
}

impl Mark {
    /// The session a value read now belongs to (0: none, not kept locally).
    pub(super) fn session(&self) -> u64 {
        self.session
    }
}

impl Tracking {
    pub(super) fn new(local: LocalTier) -> Tracking {
        Tracking {
            local,
            session: AtomicU64::new(0),
            sessions_started: AtomicU64::new(0),
            notices: AtomicU64::new(0),
            losses: AtomicU64::new(0),
            ended: Notify::new(),
        }
    }

    /// The live session, or 0 when notices are not known to arrive.
    pub(super) fn session(&self) -> u64 {
        self.session.load(Ordering::Acquire)
    }

    /// Marks the start of a read from Redis.
    pub(super) fn mark(&self) -> Mark {
        Mark {
            notices: self.notices.load(Ordering::Acquire),
            session: self.session(),
        }
    }

    /// Whether a shared value read since `mark` may be kept locally: the session is the same
    /// live one and no notice arrived meanwhile (it may have been about this value, and have
    /// been applied before the value was put in the tier).
    pub(super) fn unchanged_since(&self, mark: Mark) -> bool {
        mark.session != 0
            && self.notices.load(Ordering::Acquire) == mark.notices
            && self.session() == mark.session
    }

    /// Whether no change was heard of since `mark`, live session or not: for a value kept
    /// through a Redis outage, when this instance's own changes are the only ones it can hear.
    pub(super) fn quiet_since(&self, mark: Mark) -> bool {
        self.notices.load(Ordering::Acquire) == mark.notices
    }

    fn end(&self) {
        self.session.store(0, Ordering::Release);
        self.ended.notify_one();
    }

    fn start(&self) -> u64 {
        let id = self.sessions_started.fetch_add(1, Ordering::AcqRel) + 1;
        self.session.store(id, Ordering::Release);
        id
    }

    /// Counts a change this instance made itself (its own writes bring no notice): a value
    /// read before it is not kept locally either.
    fn note_own_change(&self) {
        self.notices.fetch_add(1, Ordering::AcqRel);
    }

    /// Sessions started since this instance started (1 after the first connection).
    pub(super) fn sessions_started(&self) -> u64 {
        self.sessions_started.load(Ordering::Relaxed)
    }

    /// Connections lost so far.
    pub(super) fn losses(&self) -> u64 {
        self.losses.load(Ordering::Acquire)
    }

    /// Notices received.
    pub(super) fn notices(&self) -> u64 {
        self.notices.load(Ordering::Relaxed)
    }

    /// Applies one push from Redis (or the library's notice of a lost connection). Called by
    /// the connection's reader: quick, never blocks.
    pub(super) fn on_push(&self, push: PushInfo) {
        match push.kind {
            PushKind::Disconnection => {
                self.losses.fetch_add(1, Ordering::AcqRel);
                self.notices.fetch_add(1, Ordering::AcqRel);
                if self.session() != 0 {
                    tracing::info!("a redis connection was lost: tracking session ended");
                }
                self.end();
                self.local.flush();
            }
            PushKind::Invalidate => {
                self.notices.fetch_add(1, Ordering::AcqRel);
                match push.data.first() {
                    Some(RedisValue::Array(keys)) => {
                        for key in keys {
                            if let RedisValue::BulkString(key) = key
                                && let Ok(key) = std::str::from_utf8(key)
                            {
                                self.local.invalidate(key);
                            }
                        }
                    }
                    // No key: Redis flushed the database.
                    _ => self.local.flush(),
                }
            }
            _ => {}
        }
    }
}

/// The `CLIENT TRACKING` command of this key space: broadcast notices of the shared families'
/// keys, never of this connection's own writes.
fn tracking_command(keys: &KeySpace) -> redis::Cmd {
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("TRACKING").arg("ON").arg("BCAST").arg("NOLOOP");
    for prefix in keys.shared_prefixes() {
        cmd.arg("PREFIX").arg(prefix);
    }
    cmd
}

impl Cache {
    /// Keeps a tracking session for the life of the cache: starts one whenever there is none
    /// (and Redis answers), at once after one ended, else every quarter second.
    pub(super) fn keep_tracking(&self) {
        if !self.inner.local.enabled() {
            return;
        }
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { break };
                let cache = Cache { inner };
                if cache.inner.tracking.session() == 0 {
                    cache.start_session().await;
                }
                // Only the tracking state is held while waiting: the cache itself may be dropped
                // meanwhile, which ends this loop.
                let tracking = std::sync::Arc::clone(&cache.inner.tracking);
                drop(cache);
                tokio::select! {
                    _ = tracking.ended.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        });
    }

    async fn start_session(&self) {
        let tracking = &self.inner.tracking;
        let losses = tracking.losses.load(Ordering::Acquire);
        // `OFF` first: a connection that kept its tracking (an attempt that reached Redis but
        // timed out here) refuses overlapping prefixes.
        let _ = self
            .inner
            .redis
            .on_every_master(redis::cmd("CLIENT").arg("TRACKING").arg("OFF"))
            .await;
        let on = self
            .inner
            .redis
            .on_every_master(&tracking_command(&self.inner.keys))
            .await;
        match on {
            // A connection lost meanwhile may have been one just set up: try again.
            Ok(()) if tracking.losses.load(Ordering::Acquire) == losses => {
                let id = tracking.start();
                tracing::info!(
                    session = id,
                    "redis tracking on: the local tier serves shared values"
                );
            }
            Ok(()) => {}
            Err(err) => tracing::debug!(error = %err, "redis tracking not started"),
        }
    }

    pub(super) fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.inner.pending.lock().expect("pending lock poisoned")
    }

    /// Invalidates the values cached for `user` (recommendations of every `n` and strategy,
    /// profile) with one command; the recommender state is brought up to date instead (see
    /// `reads::recommendations`). Returns whether Redis acknowledged it; if not, it
    /// is retried and this instance bypasses the user's cached values until it succeeds.
    ///
    /// Not acknowledged, it is also recorded in PostgreSQL before this returns (see
    /// [`InvalidationLog`]), so that every instance delivers it before it reads users' values
    /// from a Redis it reconnected to.
    pub async fn invalidate_user(&self, user: UserId) -> bool {
        let ok = self.replace_generation(user).await;
        if ok {
            for family in [Family::Recommendations, Family::Profile] {
                self.inner.stats.record(family, Event::Invalidated);
            }
        } else {
            self.pending().users.insert(user);
            if let Some(log) = self.inner.log.get()
                && let Err(err) = log.record(user).await
            {
                tracing::error!(
                    error = %err,
                    user = user.0,
                    "an invalidation Redis did not acknowledge could not be recorded either: \
                     only this instance knows of it"
                );
            }
        }
        ok
    }

    /// Whether this instance may read users' values from Redis: once it has delivered every
    /// recorded invalidation since it last lost a connection to Redis (a restart may have
    /// brought back tokens from before them). Delivers them when due, one caller at a time;
    /// `losses` is the count of lost connections the caller read before asking.
    pub(super) async fn swept(&self, losses: u64) -> bool {
        if self.inner.log.get().is_none()
            || self.inner.swept_losses.load(Ordering::Acquire) == losses
        {
            return true;
        }
        // After a failed delivery (PostgreSQL or Redis not answering), requests do not try
        // again for a second: they bypass Redis at once, and the half-second retry goes on.
        let now = self.inner.clock.now();
        if now - self.inner.sweep_failed_at.load(Ordering::Acquire) < 1 {
            return false;
        }
        let _turn = self.inner.sweeping.lock().await;
        if self.inner.swept_losses.load(Ordering::Acquire) == losses {
            return true;
        }
        // On a task of its own: instance upkeep, not part of the request's trace, and not
        // cancelled halfway by a client that hangs up.
        let cache = self.clone();
        let swept = tokio::spawn(async move { cache.sweep_recorded().await })
            .await
            .unwrap_or(false);
        if !swept {
            self.inner.sweep_failed_at.store(now, Ordering::Release);
        }
        swept
    }

    /// Delivers every recorded invalidation (see [`InvalidationLog`]); whether all were. Once
    /// all were, users' values may be read again from the connections this instance has now.
    pub async fn sweep_recorded(&self) -> bool {
        let Some(log) = self.inner.log.get() else {
            return true;
        };
        let losses = self.inner.tracking.losses();
        // Redis answers first, on every master: the rows read after it include every rating
        // whose invalidation failed, and was recorded, before this connection was made (one
        // recorded in the instant after is delivered by the next round, half a second on).
        if self
            .inner
            .redis
            .on_every_master(&redis::cmd("PING"))
            .await
            .is_err()
        {
            return false;
        }
        loop {
            let recorded = match log.recorded(RECORDED_PER_ROUND).await {
                Ok(recorded) => recorded,
                Err(err) => {
                    tracing::debug!(
                        error = %err,
                        "recorded invalidations unread: users' values bypass Redis until they are"
                    );
                    return false;
                }
            };
            let mut delivered = Vec::with_capacity(recorded.len());
            for (user, at) in &recorded {
                if !self.replace_generation(*user).await {
                    break;
                }
                self.pending().users.remove(user);
                for family in [Family::Recommendations, Family::Profile] {
                    self.inner.stats.record(family, Event::Invalidated);
                }
                delivered.push((*user, *at));
            }
            if !delivered.is_empty()
                && let Err(err) = log.delete(&delivered).await
            {
                // Delivered again next time (replacing a token twice costs a recomputation);
                // not now, or the same rows would be read again.
                tracing::debug!(error = %err, "delivered invalidations not deleted");
                return false;
            }
            if delivered.len() < recorded.len() {
                return false;
            }
            if (recorded.len() as i64) < RECORDED_PER_ROUND {
                break;
            }
        }
        // A connection lost meanwhile is swept again by the next reader.
        self.inner.swept_losses.store(losses, Ordering::Release);
        true
    }

    async fn replace_generation(&self, user: UserId) -> bool {
        let cmd = redis::cmd("SET")
            .arg(self.inner.keys.user_generation(user))
            .arg(super::new_token())
            .arg("EX")
            .arg(super::GENERATION_TTL_SECS)
            .clone();
        self.inner.redis.query::<()>(&cmd).await.is_ok()
    }

    /// Deletes shared values (lists, metadata) of `family`, here and in Redis (which tells the
    /// other instances). Keys Redis does not acknowledge are retried, and bypassed by this
    /// instance until then.
    pub async fn invalidate_keys(&self, family: Family, keys: Vec<String>) {
        self.inner.tracking.note_own_change();
        for key in &keys {
            self.inner.local.invalidate(key);
        }
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

    /// Whether the value may be read from the caches: true unless an invalidation of it is
    /// still pending and cannot be delivered now.
    pub(super) async fn settle_pending(&self, scope: &Scope, key: &str) -> bool {
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

    pub(super) async fn retry_pending(&self) {
        if self.inner.log.get().is_some() {
            let _turn = self.inner.sweeping.lock().await;
            self.sweep_recorded().await;
        }
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
