//! The state every handler reads through axum's `State`.

use crate::auth::Tokens;
use crate::cache::Cache;
use crate::db::Db;
use crate::settings::Settings;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Shared, cheaply cloned handles.
#[derive(Clone)]
pub struct AppState {
    /// PostgreSQL.
    pub db: Db,
    /// Redis.
    pub cache: Cache,
    /// JWT keys, shared: the state is cloned for every request, and the keys with their
    /// validation rules (sets of claims) would be copied with it.
    pub tokens: Arc<Tokens>,
    /// Configuration.
    pub settings: Arc<Settings>,
    /// The recommender model being served.
    pub model: Arc<crate::model::ModelSlot>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// The smallest rating count of a power user. An atomic, not a lock: it is one number,
    /// read on every recommendation and replaced hourly.
    pub power_threshold: Arc<AtomicI64>,
    /// The users this instance served lately, for warming.
    pub activity: crate::activity::Activity,
}

impl AppState {
    /// Whether a user with `rating_count` ratings is a power user now.
    pub fn is_power_user(&self, rating_count: i64) -> bool {
        shared::ttl::is_power_user(rating_count, self.power_threshold.load(Ordering::Relaxed))
    }

    /// Serves the newest stored model if it differs from the one served, and none if none is
    /// stored; returns the version served afterwards and whether it changed.
    pub async fn reload_model(&self) -> anyhow::Result<(Option<String>, bool)> {
        let current = self.model.get().map(|m| m.version.clone());
        match crate::model::load_newest(&self.db).await? {
            // Nothing stored (an import replaced the data and dropped its models): a model of
            // other data would score the wrong movies, so none is served.
            None => {
                let dropped = self.model.clear().is_some();
                if dropped {
                    tracing::warn!(previous = ?current, "no model is stored: none served until `origin train`");
                }
                Ok((None, dropped))
            }
            Some(newest) if Some(&newest.version) == current.as_ref() => Ok((current, false)),
            Some(newest) => {
                let version = newest.version.clone();
                self.model.set(newest);
                tracing::info!(%version, previous = ?current, "model loaded");
                Ok((Some(version), true))
            }
        }
    }

    /// Recomputes the power-user threshold from PostgreSQL.
    pub async fn refresh_power_threshold(&self) -> Result<i64, crate::error::AppError> {
        let threshold = self.db.power_user_threshold().await?;
        self.power_threshold.store(threshold, Ordering::Relaxed);
        Ok(threshold)
    }
}
