//! The cache statistics report of `GET /admin/cache/stats`: hit rate per family (this
//! instance), Redis memory, evictions, clients and ops/s (summed over a cluster's masters),
//! Redis latency, and the alert states of SPEC section 4.

use crate::cache::stats::FamilySnapshot;
use crate::state::AppState;
use secrecy::ExposeSecret;
use serde::Serialize;
use shared::cache_key::Family;
use std::collections::BTreeMap;
use std::time::Duration;

/// Hit rate below this fires `hit_rate_low`.
pub const HIT_RATE_ALERT: f64 = 0.60;
/// Used memory above this share of `maxmemory` fires `memory_high`.
pub const MEMORY_ALERT: f64 = 0.90;
/// A `PING` slower than this fires `latency_high` (ms).
pub const LATENCY_ALERT_MS: f64 = 10.0;
/// Fewer lookups than this leave the hit-rate alert `unknown` (too little data to judge).
const MIN_LOOKUPS: u64 = 20;

/// Redis-side figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RedisReport {
    /// `single` or `cluster`.
    pub mode: &'static str,
    /// Whether Redis answered.
    pub reachable: bool,
    /// Round trip of a `PING`, ms.
    pub latency_ms: Option<f64>,
    /// Masters that answered `INFO`.
    pub masters: usize,
    /// `used_memory`, bytes, summed over masters.
    pub used_memory_bytes: u64,
    /// `maxmemory`, bytes, summed over masters (0 = unlimited).
    pub maxmemory_bytes: u64,
    /// `evicted_keys`.
    pub evicted_keys: u64,
    /// `connected_clients`.
    pub connected_clients: u64,
    /// `instantaneous_ops_per_sec`.
    pub ops_per_sec: u64,
}

/// One alert.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// `ok`, `firing` or `unknown`.
    pub state: &'static str,
    /// The measured value.
    pub value: Option<f64>,
    /// The threshold it is compared with.
    pub threshold: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct CacheReport {
    /// Per family.
    pub families: BTreeMap<&'static str, FamilySnapshot>,
    /// Over all families.
    pub hit_rate: Option<f64>,
    /// Invalidations waiting for Redis.
    pub pending_invalidations: usize,
    /// This instance's local tier (each instance reports its own: ask each one).
    pub local: crate::cache::LocalTierStats,
    /// Redis.
    pub redis: RedisReport,
    /// `hit_rate_low`, `memory_high`, `latency_high`.
    pub alerts: BTreeMap<&'static str, Alert>,
}

fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(':')
            .map(|v| v.trim().to_owned())
    })
}

async fn node_info(url: &str) -> Option<String> {
    let client = redis::Client::open(url).ok()?;
    let query = async {
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("INFO")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    tokio::time::timeout(Duration::from_secs(1), query)
        .await
        .ok()
        .flatten()
}

/// Redis's figures, from a `PING` and each master's `INFO`; nothing is asked while Redis's
/// circuit breaker is open (the report then says unreachable at once).
pub async fn redis_report(state: &AppState) -> RedisReport {
    let redis = state.cache.redis();
    let mut report = RedisReport {
        mode: match redis.mode() {
            crate::settings::RedisMode::Single => "single",
            crate::settings::RedisMode::Cluster => "cluster",
        },
        ..RedisReport::default()
    };
    if !redis.breaker().allows() {
        return report;
    }
    let latency = redis.ping().await;
    report.reachable = latency.is_some();
    report.latency_ms = latency.map(|d| d.as_secs_f64() * 1000.0);
    let urls: Vec<String> = state
        .settings
        .redis_url
        .expose_secret()
        .split(',')
        .map(|u| u.trim().to_owned())
        .collect();
    let infos = futures::future::join_all(urls.iter().map(|u| node_info(u))).await;
    for info in infos.into_iter().flatten() {
        if info_field(&info, "role").as_deref() != Some("master") {
            continue;
        }
        let num = |name| {
            info_field(&info, name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        report.masters += 1;
        report.used_memory_bytes += num("used_memory");
        report.maxmemory_bytes += num("maxmemory");
        report.evicted_keys += num("evicted_keys");
        report.connected_clients += num("connected_clients");
        report.ops_per_sec += num("instantaneous_ops_per_sec");
    }
    report
}

/// Builds the report.
pub async fn report(state: &AppState) -> CacheReport {
    let stats = state.cache.stats();
    let families: BTreeMap<_, _> = Family::ALL
        .iter()
        .map(|f| (f.as_str(), stats.snapshot(*f)))
        .collect();
    let (hits, lookups) = families.values().fold((0, 0), |(h, l), s| {
        (h + s.hits + s.stale, l + s.hits + s.stale + s.misses)
    });
    let hit_rate = (lookups > 0).then(|| hits as f64 / lookups as f64);
    let redis = redis_report(state).await;

    let mut alerts = BTreeMap::new();
    let judged = |firing: bool| if firing { "firing" } else { "ok" };
    alerts.insert(
        "hit_rate_low",
        Alert {
            state: match hit_rate {
                Some(rate) if lookups >= MIN_LOOKUPS => judged(rate < HIT_RATE_ALERT),
                _ => "unknown",
            },
            value: hit_rate,
            threshold: HIT_RATE_ALERT,
        },
    );
    let memory = (redis.maxmemory_bytes > 0)
        .then(|| redis.used_memory_bytes as f64 / redis.maxmemory_bytes as f64);
    alerts.insert(
        "memory_high",
        Alert {
            state: memory.map_or("unknown", |m| judged(m > MEMORY_ALERT)),
            value: memory,
            threshold: MEMORY_ALERT,
        },
    );
    alerts.insert(
        "latency_high",
        Alert {
            // Unreachable is as bad as slow.
            state: redis
                .latency_ms
                .map_or("firing", |ms| judged(ms > LATENCY_ALERT_MS)),
            value: redis.latency_ms,
            threshold: LATENCY_ALERT_MS,
        },
    );
    CacheReport {
        families,
        hit_rate,
        pending_invalidations: state.cache.pending_invalidations(),
        local: state.cache.local_snapshot(),
        redis,
        alerts,
    }
}
