//! The data set's epoch: how an instance learns that `origin import` replaced the data.
//!
//! Each import that changes the data commits a new random epoch with it (table
//! `dataset_epoch`). Every cached value carries the epoch it was computed in, and an instance
//! serves only values of the epoch it last read, so after an `import --replace` nothing of the
//! old data is served from Redis, by any instance, once it has read the new epoch: at start-up,
//! and then every [`POLL`] (one indexed single-row read). A computation pins the epoch before
//! it reads anything, so a value computed from the old data is stored, if at all, under the
//! old epoch. When the epoch changes the model is reloaded (the import dropped the models
//! trained on the old data: without a new one, none is served) and the power-user threshold is
//! recomputed.
//!
//! The edge is not told by this: its entries live until their `s-maxage` unless purged
//! (`origin import --purge-edge`).

use crate::state::AppState;
use std::time::Duration;

/// How often each instance reads the epoch.
pub const POLL: Duration = Duration::from_secs(1);

/// Reads the epoch and, if it changed, adopts it: the cache stops serving other epochs'
/// values at once, the model is reloaded (or dropped), the power-user threshold recomputed.
/// Returns whether it changed.
pub async fn adopt_epoch(state: &AppState) -> Result<bool, crate::error::AppError> {
    let epoch = state.db.dataset_epoch().await?;
    if !state.cache.set_epoch(epoch) {
        return Ok(false);
    }
    tracing::info!(epoch = format!("{epoch:x}"), "data set epoch adopted");
    if let Err(err) = state.reload_model().await {
        tracing::warn!(error = %err, "model not reloaded after the data changed");
    }
    if let Err(err) = state.refresh_power_threshold().await {
        tracing::warn!(error = %err, "power-user threshold not refreshed");
    }
    Ok(true)
}

/// The epoch at start-up: PostgreSQL's, recorded in Redis too; or, while PostgreSQL cannot
/// be reached, the one Redis recorded, so the cache keeps serving the current data.
pub async fn adopt_at_start(state: &AppState) {
    let key = state.cache.keys().dataset_epoch();
    if let Err(err) = adopt_epoch(state).await {
        state
            .cache
            .redis()
            .wait_connected(Duration::from_secs(2))
            .await;
        let recorded: Result<Option<String>, _> =
            state.cache.redis().query(redis::cmd("GET").arg(&key)).await;
        match recorded
            .ok()
            .flatten()
            .and_then(|e| u64::from_str_radix(&e, 16).ok())
        {
            Some(epoch) => {
                state.cache.set_epoch(epoch);
                tracing::warn!(error = %err, "data set epoch read from Redis: PostgreSQL unreachable");
            }
            None => tracing::warn!(error = %err, "data set epoch unknown at start-up"),
        }
    }
}

/// Reads the epoch every [`POLL`] for the life of the process.
pub fn spawn_epoch_watch(state: AppState) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recorded = None;
        loop {
            ticks.tick().await;
            if let Err(err) = adopt_epoch(&state).await {
                tracing::debug!(error = %err, "data set epoch not read");
                continue;
            }
            let epoch = state.cache.epoch();
            if recorded != Some(epoch) && record_in_redis(&state, epoch).await {
                recorded = Some(epoch);
            }
        }
    });
}

/// Records `epoch` in Redis for instances that start while PostgreSQL is down.
async fn record_in_redis(state: &AppState, epoch: u64) -> bool {
    let set = redis::cmd("SET")
        .arg(state.cache.keys().dataset_epoch())
        .arg(format!("{epoch:x}"))
        .clone();
    match state.cache.redis().query::<()>(&set).await {
        Ok(()) => true,
        Err(err) => {
            tracing::debug!(error = %err, "data set epoch not recorded in Redis");
            false
        }
    }
}
