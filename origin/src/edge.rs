//! What the origin asks of the edge in front of it (`EDGE_PURGE_URL`, `PURGE_SECRET`): its
//! counters, `GET /__edge/stats`, read for the dashboard's edge layer (a hit at the edge never
//! reaches the origin, so only the edge can count it). One short request per reading, with a
//! deadline: an edge that does not answer makes the reading fail, never the origin wait.

use secrecy::{ExposeSecret, SecretString};
use shared::edge_stats::EdgeStats;
use std::sync::LazyLock;
use std::time::Duration;

/// How long a reading waits for the edge.
const TIMEOUT: Duration = Duration::from_secs(2);

/// One client for every reading (its connection pool is reused).
static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("an HTTP client with a timeout")
});

/// Why the edge's counters could not be read; the message names the URL and the cause.
#[derive(Debug, thiserror::Error)]
#[error("the edge at {url} did not give its stats: {cause}")]
pub struct EdgeError {
    url: String,
    cause: String,
}

/// Reads the counters of the edge at `base` (its root URL).
pub async fn stats(base: &url::Url, secret: &SecretString) -> Result<EdgeStats, EdgeError> {
    let url = base.join("/__edge/stats").map_err(|err| EdgeError {
        url: base.to_string(),
        cause: err.to_string(),
    })?;
    let failed = |cause: String| EdgeError {
        url: url.to_string(),
        cause,
    };
    let response = CLIENT
        .get(url.clone())
        .bearer_auth(secret.expose_secret())
        .send()
        .await
        .map_err(|err| failed(err.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(failed(format!("{status}: {body}")));
    }
    response
        .json()
        .await
        .map_err(|err| failed(format!("not the stats' JSON: {err}")))
}
