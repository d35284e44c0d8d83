//! Building and running the application: pool, cache, metrics, router, listener, background
//! tasks. `Application::build` binds (port 0 works, for tests); `run_until_stopped` serves
//! until Ctrl-C or SIGTERM, finishing requests in flight.

use crate::auth::Tokens;
use crate::cache::{Cache, CacheConfig};
use crate::db::Db;
use crate::settings::Settings;
use crate::state::AppState;
use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::ExposeSecret;
use shared::cache_key::KeySpace;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;

/// The running service, before it serves.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
}

/// How many metrics upkeep runs have finished in this process (see [`metrics_handle`]); tests
/// wait on it instead of sleeping.
pub fn metrics_upkeep_runs() -> u64 {
    UPKEEP_RUNS.load(Ordering::Acquire)
}

static UPKEEP_RUNS: AtomicU64 = AtomicU64::new(0);

/// The process-wide Prometheus recorder (the `metrics` facade allows one per process),
/// installed by the first caller, with its upkeep running every `upkeep_every`.
///
/// A histogram keeps every recorded sample until upkeep folds them into its buckets, and
/// `build_recorder` starts no upkeep: without the thread below, memory would grow with the
/// request count until someone scraped `/metrics`. A thread rather than a tokio task because
/// the recorder outlives any one runtime (tests build an origin per runtime).
fn metrics_handle(upkeep_every: Duration) -> anyhow::Result<PrometheusHandle> {
    // `get_or_init`: concurrent first callers (parallel tests) wait for one installation.
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| install_recorder(upkeep_every).map_err(|err| format!("{err:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn install_recorder(upkeep_every: Duration) -> anyhow::Result<PrometheusHandle> {
    let buckets = [
        0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ];
    // A user's fold-in (`reads::FOLD_IN_SECONDS`) takes microseconds to milliseconds.
    let fold_in_buckets = [
        0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1,
    ];
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), &buckets)?
        .set_buckets_for_metric(
            Matcher::Full(crate::reads::FOLD_IN_SECONDS.into()),
            &fold_in_buckets,
        )?
        .set_buckets_for_metric(
            Matcher::Full(crate::reads::PART_SECONDS.into()),
            &fold_in_buckets,
        )?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).context("another metrics recorder is installed")?;
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(upkeep_every);
                upkeep.run_upkeep();
                UPKEEP_RUNS.fetch_add(1, Ordering::Release);
            }
        })
        .context("starting the metrics upkeep thread")?;
    Ok(handle)
}

impl Application {
    /// Connects (lazily), migrates, binds and starts the background tasks.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        if settings.jwt_secret.expose_secret() == crate::settings::DEV_JWT_SECRET {
            tracing::warn!(
                "JWT_SECRET is the development default: set a real secret outside a laptop"
            );
        }
        let db = Db::connect_lazy_with(&settings.database, settings.breaker())?;
        if settings.migrate_on_start {
            if db.ping().await {
                db.migrate().await?;
            } else {
                tracing::warn!(
                    "PostgreSQL unreachable at start-up: migrations skipped, serving what the cache holds"
                );
            }
        }
        let urls = settings
            .redis_url
            .expose_secret()
            .split(',')
            .map(|u| u.trim().to_owned())
            .collect();
        // The recorder first: the cache registers its counters with it once.
        let metrics = metrics_handle(Duration::from_millis(settings.metrics_upkeep_ms.max(1)))?;
        let cache = Cache::new(CacheConfig {
            mode: settings.redis_mode,
            urls,
            timeout: settings.redis_timeout(),
            keys: KeySpace::new(&settings.cache_namespace)?,
            grace: Duration::from_secs(settings.cache_stale_grace_secs),
            local_bytes: settings.local_cache_bytes,
            instance: settings
                .instance_name
                .clone()
                .unwrap_or_else(|| format!("origin@{}", settings.listen)),
            breaker: settings.breaker(),
            compute_concurrency: settings.compute_concurrency as usize,
            outage_hold: Duration::from_secs(settings.cache_outage_hold_secs),
        });
        cache.set_invalidation_log(Arc::new(db.clone()));
        cache.set_user_versions({
            let db = db.clone();
            Arc::new(move |user| {
                let db = db.clone();
                Box::pin(async move { db.rating_version(user).await })
            })
        });
        let state = AppState {
            db,
            cache,
            tokens: Arc::new(Tokens::new(&settings.jwt_secret)?),
            metrics,
            power_threshold: Arc::new(AtomicI64::new(0)),
            activity: crate::activity::Activity::new(
                Duration::from_secs(settings.activity_window_secs),
                settings.activity_max_users,
            ),
            model: Arc::default(),
            settings: Arc::new(settings),
        };
        crate::dataset::adopt_at_start(&state).await;
        match state.reload_model().await {
            Ok((Some(version), _)) => tracing::info!(%version, "serving model"),
            Ok((None, _)) => tracing::warn!(
                "no trained model: collaborative recommendations unavailable until `origin train`"
            ),
            Err(err) => tracing::warn!(error = %err, "model not loaded at start-up"),
        }
        let listener = TcpListener::bind(state.settings.listen)
            .await
            .with_context(|| format!("binding {}", state.settings.listen))?;

        // Background: the first connection to Redis, the power-user threshold, warming.
        let background = state.clone();
        tokio::spawn(async move {
            background
                .cache
                .redis()
                .wait_connected(Duration::from_secs(2))
                .await;
            if let Err(err) = background.refresh_power_threshold().await {
                tracing::warn!(error = %err, "power-user threshold unknown at start-up");
            }
            if background.settings.warm_on_start {
                crate::warm::warm(&background).await;
            }
        });
        crate::warm::spawn_maintenance(state.clone());
        crate::warm::spawn_rewarm_on_reconnect(state.clone());
        crate::dataset::spawn_epoch_watch(state.clone());

        let router = crate::routes::router(state.clone());
        Ok(Application {
            listener,
            router,
            state,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The state (tests reach the cache and database through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown_signal())
            .await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}
