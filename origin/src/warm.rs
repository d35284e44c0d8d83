//! Cache warming and the periodic maintenance task.
//!
//! Warming fills the popular top 100, the genre lists and the power users' default
//! recommendations, with a bounded concurrency and an overall deadline. It runs in the
//! background at start-up (so `/health` answers at once) and on demand.
//!
//! Maintenance asked for over HTTP runs [`to_completion`]: a client that hangs up drops its
//! request's future, which must not stop a lock holder or a multi-step write halfway.

use crate::error::AppError;
use crate::reads;
use crate::state::AppState;
use futures::StreamExt;
use shared::cache_key::Family;
use shared::params::{Limit, Strategy};
use std::time::{Duration, Instant};

/// What a warming run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WarmReport {
    /// The popular list is cached.
    pub popular: bool,
    /// Genre lists cached.
    pub genres: usize,
    /// Power users found (top 20% by activity, at most `WARM_MAX_USERS`).
    pub power_users: usize,
    /// Power users whose recommendations are cached.
    pub users_warmed: usize,
    /// Computations that failed.
    pub failed: usize,
    /// The deadline stopped the run early.
    pub timed_out: bool,
    /// Duration of the run.
    pub elapsed_ms: u64,
}

/// Warms the caches within `WARM_TIMEOUT_SECS`.
pub async fn warm(state: &AppState) -> WarmReport {
    let start = Instant::now();
    let mut report = WarmReport::default();
    let deadline = Duration::from_secs(state.settings.warm_timeout_secs);
    // Counted as warming, not as clients' misses (the hit rate is the clients').
    let run = crate::cache::warming(warm_into(state, &mut report));
    if tokio::time::timeout(deadline, run).await.is_err() {
        report.timed_out = true;
    }
    report.elapsed_ms = start.elapsed().as_millis() as u64;
    tracing::info!(?report, "cache warming finished");
    report
}

async fn warm_into(state: &AppState, report: &mut WarmReport) {
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
    let threshold = match state.refresh_power_threshold().await {
        Ok(threshold) => threshold,
        Err(err) => {
            tracing::warn!(error = %err, "warming: power users unknown");
            report.failed += 1;
            return;
        }
    };
    let users = match state
        .db
        .power_users(threshold, state.settings.warm_max_users)
        .await
    {
        Ok(users) => users,
        Err(_) => {
            report.failed += 1;
            return;
        }
    };
    report.power_users = users.len();
    let mut results = futures::stream::iter(users)
        .map(|user| reads::recommendations(state, user, Limit::DEFAULT_N, Strategy::Hybrid))
        .buffer_unordered(state.settings.warm_concurrency.max(1));
    while let Some(result) = results.next().await {
        match result {
            Ok(_) => report.users_warmed += 1,
            Err(_) => report.failed += 1,
        }
    }
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
