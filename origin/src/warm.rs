//! Cache warming and the periodic maintenance task.
//!
//! Warming fills the popular top 100, the genre lists, the most rated movies' metadata and,
//! per user, the default recommendations and the profile, with a bounded concurrency and an
//! overall deadline. The users come in the order they are likely to ask: first those this
//! instance served in the last hour ([`crate::activity`]), most recent first, then the most
//! active by rating count (power users first) up to `WARM_MAX_USERS`. It runs in the
//! background at start-up (so `/health` answers at once), on demand, and when the connection
//! to Redis comes back after a loss without the recent users' values (a restart emptied it;
//! only the recent users then, see [`spawn_rewarm_on_reconnect`]). A value already cached
//! costs one lookup.
//!
//! Maintenance asked for over HTTP runs [`to_completion`]: a client that hangs up drops its
//! request's future, which must not stop a lock holder or a multi-step write halfway.

use crate::error::AppError;
use crate::reads;
use crate::state::AppState;
use futures::StreamExt;
use shared::cache_key::Family;
use shared::params::{Limit, Strategy, UserId};
use std::time::{Duration, Instant};

/// What a warming run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WarmReport {
    /// The popular list is cached.
    pub popular: bool,
    /// Genre lists cached.
    pub genres: usize,
    /// Movies whose metadata is cached (the most rated, at most `WARM_MOVIES`).
    pub movies: usize,
    /// Users this instance served in the last `ACTIVITY_WINDOW_SECS`, warmed first.
    pub recent_users: usize,
    /// Users to warm: the recent ones, then the most active (power users first), at most
    /// `WARM_MAX_USERS` of those.
    pub users: usize,
    /// Users whose recommendations and profile are cached.
    pub users_warmed: usize,
    /// Computations that failed.
    pub failed: usize,
    /// The deadline stopped the run early.
    pub timed_out: bool,
    /// Duration of the run.
    pub elapsed_ms: u64,
}

/// What a run warms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Everything: lists, movies, recent users, the most active users.
    All,
    /// The users served lately, and the lists (after Redis came back from a loss).
    Recent,
}

/// Warms the caches within `WARM_TIMEOUT_SECS`.
pub async fn warm(state: &AppState) -> WarmReport {
    warm_scope(state, Scope::All).await
}

async fn warm_scope(state: &AppState, scope: Scope) -> WarmReport {
    let start = Instant::now();
    let mut report = WarmReport::default();
    let deadline = Duration::from_secs(state.settings.warm_timeout_secs);
    // Counted as warming, not as clients' misses (the hit rate is the clients').
    let run = crate::cache::warming(warm_into(state, scope, &mut report));
    if tokio::time::timeout(deadline, run).await.is_err() {
        report.timed_out = true;
    }
    report.elapsed_ms = start.elapsed().as_millis() as u64;
    tracing::info!(?scope, ?report, "cache warming finished");
    report
}

async fn warm_into(state: &AppState, scope: Scope, report: &mut WarmReport) {
    let concurrency = state.settings.warm_concurrency.max(1);
    report.popular = reads::popular(state).await.is_ok();
    if let Ok(genres) = reads::genres(state)
        .await
        .and_then(|s| reads::parse::<shared::dto::Genres>(&s))
    {
        for genre in genres.genres {
            match reads::genre_top(state, genre).await {
                Ok(_) => report.genres += 1,
                Err(_) => report.failed += 1,
            }
        }
    }
    let recent = state.activity.recent(usize::MAX);
    report.recent_users = recent.len();
    let mut users = recent;
    if scope == Scope::All {
        match state.db.most_rated_movies(state.settings.warm_movies).await {
            Ok(movies) => {
                let (done, failed) =
                    each_bounded(movies, concurrency, |movie| reads::movie(state, movie)).await;
                report.movies += done;
                report.failed += failed;
            }
            Err(err) => {
                tracing::warn!(error = %err, "warming: movies unknown");
                report.failed += 1;
            }
        }
        match state.db.power_users(0, state.settings.warm_max_users).await {
            Ok(active) => {
                let recent: std::collections::HashSet<UserId> = users.iter().copied().collect();
                users.extend(active.into_iter().filter(|user| !recent.contains(user)));
            }
            Err(err) => {
                tracing::warn!(error = %err, "warming: active users unknown");
                report.failed += 1;
            }
        }
    }
    report.users = users.len();
    let (done, failed) = each_bounded(users, concurrency, |user| warm_user(state, user)).await;
    report.users_warmed += done;
    report.failed += failed;
}

/// Runs `job` on every item, at most `concurrency` at once: how many succeeded, how many
/// failed.
async fn each_bounded<I, F, T, E>(
    items: Vec<I>,
    concurrency: usize,
    job: impl Fn(I) -> F,
) -> (usize, usize)
where
    F: Future<Output = Result<T, E>>,
{
    let mut results = futures::stream::iter(items)
        .map(job)
        .buffer_unordered(concurrency);
    let (mut done, mut failed) = (0, 0);
    while let Some(result) = results.next().await {
        match result {
            Ok(_) => done += 1,
            Err(_) => failed += 1,
        }
    }
    (done, failed)
}

/// A user's default recommendations, then their profile.
async fn warm_user(state: &AppState, user: UserId) -> Result<(), AppError> {
    reads::recommendations(state, user, Limit::DEFAULT_N, Strategy::Hybrid).await?;
    reads::profile(state, user).await?;
    Ok(())
}

/// Watches the connection to Redis: when it comes back after a loss and Redis no longer holds
/// the values of the users this instance served lately ([`kept_its_values`]), warms those
/// users (and the lists) again, in the background, so that their next requests find their
/// values cached. When it kept them (an append-only file, a replica promoted, only the
/// connection lost) nothing is warmed: the clients' first reads refill the local tier.
pub fn spawn_rewarm_on_reconnect(state: AppState) {
    if !state.settings.warm_on_reconnect {
        return;
    }
    tokio::spawn(async move {
        let mut seen = state.cache.connection_losses();
        let mut ticks = tokio::time::interval(Duration::from_millis(500));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let losses = state.cache.connection_losses();
            if losses == seen || state.cache.redis().ping().await.is_none() {
                continue;
            }
            seen = losses;
            if kept_its_values(&state).await {
                tracing::info!("connection to Redis back after a loss: its values are there");
                metrics::counter!(REWARMS_TOTAL, "outcome" => "kept").increment(1);
                continue;
            }
            tracing::info!("connection to Redis back after a loss: warming the recent users");
            metrics::counter!(REWARMS_TOTAL, "outcome" => "warmed").increment(1);
            warm_scope(&state, Scope::Recent).await;
        }
    });
}

/// Reconnections to Redis after a loss, by what followed: `warmed` (Redis came back without
/// the recent users' values) or `kept` (it kept them: persistence, or only the connection was
/// lost).
pub const REWARMS_TOTAL: &str = "cache_rewarms_total";

/// Recent users sampled to tell whether Redis kept its values.
const KEPT_SAMPLE: usize = 32;

/// Whether Redis still holds the values of the users this instance served lately: of up to
/// [`KEPT_SAMPLE`] of them, spread over the whole window (the most recent few may have been
/// stored again since the reconnection), at least three in four still have their default
/// recommendations or their profile. Then re-warming would be a lookup per value, for the
/// local tier's sake only, competing with the clients for the CPU for minutes at the 25M
/// shape, where a client's own first read costs the same lookup. A Redis that lost a part of
/// its keys (a Cluster master failed over to an empty replica) falls short, and is warmed.
async fn kept_its_values(state: &AppState) -> bool {
    let recent = state.activity.recent(usize::MAX);
    if recent.is_empty() {
        return false;
    }
    let step = recent.len().div_ceil(KEPT_SAMPLE);
    let sample: Vec<UserId> = recent.into_iter().step_by(step).collect();
    let keys = state.cache.keys();
    let checks = sample.iter().map(|&user| {
        let mut cmd = redis::cmd("EXISTS");
        // One user's keys share a hash tag: one slot, one command on a Cluster.
        cmd.arg(keys.recommendations(user, Limit::DEFAULT_N.get(), Strategy::Hybrid))
            .arg(keys.profile(user));
        async move { state.cache.redis().query::<i64>(&cmd).await }
    });
    let present = futures::future::join_all(checks)
        .await
        .into_iter()
        .filter(|found| matches!(found, Ok(n) if *n > 0))
        .count();
    present * 4 >= sample.len() * 3
}

/// Runs `job` on a task of its own and waits for it. Dropping the caller (a request whose
/// client hung up) no longer cancels the job: it finishes, and only its result is lost.
pub async fn to_completion<T: Send + 'static>(
    job: impl Future<Output = T> + Send + 'static,
) -> Result<T, AppError> {
    tokio::spawn(job)
        .await
        .map_err(|err| anyhow::anyhow!("maintenance task failed: {err}").into())
}

/// Refreshes the top-by-genre view (unless another instance is at it) and invalidates the
/// cached genre lists built from it, to completion even if the caller is dropped: cut short,
/// it would keep the advisory lock on a pooled connection (no instance could refresh again)
/// or leave the genre lists built from the old view cached.
pub async fn refresh_views(state: &AppState) -> Result<bool, AppError> {
    let state = state.clone();
    to_completion(async move { refresh_views_now(&state).await }).await?
}

async fn refresh_views_now(state: &AppState) -> Result<bool, AppError> {
    let refreshed = state.db.refresh_top_by_genre().await?;
    if refreshed {
        let keys = state
            .db
            .genres()
            .await?
            .iter()
            .map(|g| state.cache.keys().genre_top(&g.slug))
            .collect();
        state.cache.invalidate_keys(Family::Genres, keys).await;
        crate::edge::purge_in_background(
            &state.settings,
            vec![shared::purge_marks::tag::GENRE_TOP.to_owned()],
        );
    }
    Ok(refreshed)
}

/// Hourly (by default): refresh the view, recompute the power-user threshold.
pub fn spawn_maintenance(state: AppState) {
    let every = Duration::from_secs(state.settings.view_refresh_secs.max(1));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match refresh_views(&state).await {
                Ok(refreshed) => tracing::info!(refreshed, "scheduled view refresh"),
                Err(err) => tracing::warn!(error = %err, "scheduled view refresh failed"),
            }
            if let Err(err) = state.refresh_power_threshold().await {
                tracing::warn!(error = %err, "power-user threshold refresh failed");
            }
        }
    });
}
