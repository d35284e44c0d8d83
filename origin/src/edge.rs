//! What the origin asks of the edge in front of it (`EDGE_PURGE_URL`, `PURGE_SECRET`):
//! - its counters, `GET /__edge/stats`, read for the dashboard's edge layer (a hit at the edge
//!   never reaches the origin, so only the edge can count it). One short request per reading,
//!   with a deadline: an edge that does not answer makes the reading fail, never the origin
//!   wait;
//! - purges by tag, `POST /__edge/purge {"tags": [...]}`, when the origin invalidates what
//!   the edge may hold (a rating milestone, a view refresh): sent in the background, retried
//!   with backoff ([`PURGE_ATTEMPTS`]), never delaying the write that caused it. The edge marks
//!   the tags in Workers KV, so every location drops its copies (`shared::purge_marks`).

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

/// How many times a purge is tried before it is given up (logged): 0.2, 0.4, 0.8, 1.6 s apart.
pub const PURGE_ATTEMPTS: u32 = 5;

/// Purges `tags` at the edge in the background, if this origin knows its edge (else nothing).
pub fn purge_in_background(settings: &crate::settings::Settings, tags: Vec<String>) {
    let (Some(base), Some(secret)) = (settings.edge_url.clone(), settings.purge_secret.clone())
    else {
        return;
    };
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=PURGE_ATTEMPTS {
            match purge(&base, &secret, &tags).await {
                Ok(()) => {
                    tracing::info!(?tags, attempt, "edge purged");
                    return;
                }
                Err(err) if attempt == PURGE_ATTEMPTS => {
                    tracing::warn!(?tags, error = %err, "edge purge given up: the edge serves those entries until they expire");
                }
                Err(err) => {
                    tracing::debug!(?tags, error = %err, attempt, "edge purge failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    });
}

/// One purge of `tags` at the edge at `base`.
pub async fn purge(
    base: &url::Url,
    secret: &SecretString,
    tags: &[String],
) -> Result<(), EdgeError> {
    let body = shared::purge::PurgeRequest {
        tags: tags.to_vec(),
        ..shared::purge::PurgeRequest::default()
    };
    call(base, "/__edge/purge", secret, Some(&body)).await?;
    Ok(())
}

/// `path` at the edge at `base`, with the secret: a GET, or a POST of `body`; the answer if it
/// is a success.
async fn call(
    base: &url::Url,
    path: &str,
    secret: &SecretString,
    body: Option<&shared::purge::PurgeRequest>,
) -> Result<(url::Url, reqwest::Response), EdgeError> {
    let url = base.join(path).map_err(|err| EdgeError {
        url: base.to_string(),
        cause: err.to_string(),
    })?;
    let request = match body {
        Some(body) => CLIENT.post(url.clone()).json(body),
        None => CLIENT.get(url.clone()),
    };
    let failed = |cause: String| EdgeError {
        url: url.to_string(),
        cause,
    };
    let response = request
        .bearer_auth(secret.expose_secret())
        .send()
        .await
        .map_err(|err| failed(err.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(failed(format!("{status}: {text}")));
    }
    Ok((url, response))
}

/// Why the edge did not do what was asked; the message names the URL and the cause.
#[derive(Debug, thiserror::Error)]
#[error("the edge at {url} did not answer as it should: {cause}")]
pub struct EdgeError {
    url: String,
    cause: String,
}

/// Reads the counters of the edge at `base` (its root URL).
pub async fn stats(base: &url::Url, secret: &SecretString) -> Result<EdgeStats, EdgeError> {
    let (url, response) = call(base, "/__edge/stats", secret, None).await?;
    response.json().await.map_err(|err| EdgeError {
        url: url.to_string(),
        cause: format!("not the stats' JSON: {err}"),
    })
}
