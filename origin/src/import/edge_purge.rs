//! After an import replaced the data, the edge is told what it may still hold of the old data:
//! `origin import --purge-edge URL` (with `PURGE_SECRET`) sends `POST /__edge/purge` for every
//! path the edge can have cached from either data set. The origin's own cache needs no purge
//! (the data set's epoch retires it, see `crate::dataset`).
//!
//! The edge's keys are normalised paths, one per id, limit and genre spelling, so the paths are
//! enumerated: every movie id up to the larger catalogue's highest and each one's similar
//! movies (the edge stores them at the default length only), the popular list at every
//! limit, the genre list, and each genre's top list by name and by slug at every limit. That
//! is a few thousand paths for MovieLens 100K, sent 50 per request
//! ([`PurgeRequest::MAX_PATHS`]) a few requests at a time. The purge is local to the edge
//! location that runs it, like every Cache API delete.

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use shared::params::Limit;
use shared::purge::{PurgeReceipt, PurgeRequest};
use sqlx::PgPool;
use std::collections::BTreeSet;

/// Purge requests in flight at once.
const CONCURRENCY: usize = 4;

/// What the edge could have cached of one data set: its highest movie id and its genres'
/// names and slugs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeFootprint {
    /// The highest movie id (0 without movies).
    pub max_movie_id: i32,
    /// Every genre's name and slug, as the edge keys them (ASCII lower case).
    pub genres: BTreeSet<String>,
}

impl EdgeFootprint {
    /// The footprint of the data the database holds now.
    pub async fn read(pool: &PgPool) -> Result<Self> {
        let max_movie_id: Option<i32> = sqlx::query_scalar("SELECT max(id) FROM movies")
            .fetch_one(pool)
            .await
            .context("reading the highest movie id")?;
        let genres: Vec<(String, String)> = sqlx::query_as("SELECT name, slug FROM genres")
            .fetch_all(pool)
            .await
            .context("reading the genres")?;
        Ok(EdgeFootprint {
            max_movie_id: max_movie_id.unwrap_or(0),
            genres: genres
                .into_iter()
                .flat_map(|(name, slug)| [name.to_ascii_lowercase(), slug.to_ascii_lowercase()])
                .collect(),
        })
    }

    /// Both footprints together.
    pub fn union(mut self, other: EdgeFootprint) -> Self {
        self.max_movie_id = self.max_movie_id.max(other.max_movie_id);
        self.genres.extend(other.genres);
        self
    }

    /// Every path the edge may hold for this footprint, each a valid purge path.
    pub fn paths(&self) -> Vec<String> {
        let limits = 1..=Limit::MAX;
        let mut paths: Vec<String> = (1..=self.max_movie_id)
            .map(|id| format!("/movies/{id}"))
            .collect();
        paths.extend((1..=self.max_movie_id).map(|id| {
            format!(
                "/movies/{id}/similar?limit={}",
                Limit::DEFAULT_SIMILAR.get()
            )
        }));
        paths.extend(limits.clone().map(|l| format!("/movies/popular?limit={l}")));
        paths.push("/genres".to_owned());
        for genre in &self.genres {
            let segment = url::form_urlencoded::byte_serialize(genre.as_bytes())
                .collect::<String>()
                .replace('+', "%20");
            paths.extend(
                limits
                    .clone()
                    .map(|l| format!("/genres/{segment}/top?limit={l}")),
            );
        }
        paths
    }
}

/// What a purge did.
#[derive(Debug, Clone, Default)]
pub struct PurgeSummary {
    /// Paths sent.
    pub paths: usize,
    /// Entries the edge had and removed.
    pub purged: usize,
}

/// Sends every path of `footprint` to the edge at `edge_url` (its origin, e.g.
/// `http://127.0.0.1:8787`), 50 per request. Fails on the first refusal.
pub async fn purge(
    edge_url: &str,
    secret: &SecretString,
    footprint: &EdgeFootprint,
) -> Result<PurgeSummary> {
    let endpoint = format!("{}/__edge/purge", edge_url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let paths = footprint.paths();
    let batches: Vec<Vec<String>> = paths
        .chunks(PurgeRequest::MAX_PATHS)
        .map(<[String]>::to_vec)
        .collect();
    let mut results = futures::stream::iter(batches)
        .map(|paths| {
            let request = client
                .post(&endpoint)
                .bearer_auth(secret.expose_secret())
                .json(&PurgeRequest {
                    paths,
                    ..PurgeRequest::default()
                })
                .send();
            async move {
                let response = request.await.context("sending a purge to the edge")?;
                let status = response.status();
                if !status.is_success() {
                    let body = response.text().await.unwrap_or_default();
                    bail!("the edge refused a purge: {status} {body}");
                }
                let receipt: PurgeReceipt = response
                    .json()
                    .await
                    .context("reading the edge's receipt")?;
                Ok(receipt.purged.len())
            }
        })
        .buffer_unordered(CONCURRENCY);
    let mut summary = PurgeSummary {
        paths: paths.len(),
        purged: 0,
    };
    while let Some(result) = results.next().await {
        summary.purged += result?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_one_the_edge_accepts() {
        let footprint = EdgeFootprint {
            max_movie_id: 3,
            genres: ["children's", "childrens", "film-noir", "sci fi"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
        };
        let paths = footprint.paths();
        assert_eq!(paths.len(), 3 + 3 + 100 + 1 + 4 * 100);
        for batch in paths.chunks(PurgeRequest::MAX_PATHS) {
            let request = PurgeRequest {
                paths: batch.to_vec(),
                ..PurgeRequest::default()
            };
            request.keys().expect("a valid purge request");
        }
        assert!(paths.contains(&"/movies/3".to_owned()));
        assert!(paths.contains(&"/movies/popular?limit=20".to_owned()));
        assert!(paths.contains(&"/movies/3/similar?limit=10".to_owned()));
        assert!(paths.contains(&"/genres/children%27s/top?limit=20".to_owned()));
        assert!(paths.contains(&"/genres/sci%20fi/top?limit=100".to_owned()));
        // The keys are the ones requests for these genres are stored under.
        let key = |path: &str| {
            let (path, query) = path.split_once('?').unwrap_or((path, ""));
            shared::edge_key::EdgeRoute::parse(path, Some(query))
                .unwrap()
                .key
        };
        assert_eq!(
            key("/genres/Sci%20Fi/top"),
            key("/genres/sci%20fi/top?limit=20")
        );
    }

    #[test]
    fn the_union_covers_both_data_sets() {
        let old = EdgeFootprint {
            max_movie_id: 1682,
            genres: ["drama".to_owned()].into(),
        };
        let new = EdgeFootprint {
            max_movie_id: 40,
            genres: ["western".to_owned()].into(),
        };
        let both = old.union(new);
        assert_eq!(both.max_movie_id, 1682);
        assert_eq!(both.genres.len(), 2);
    }
}
