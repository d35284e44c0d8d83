//! After an import replaced the data, the edge is told that nothing it holds is current:
//! `origin import --purge-edge URL` (with `PURGE_SECRET`) sends one `POST /__edge/purge
//! {"tags": ["all"]}`. Every entry the edge stores carries the tag `all` (the edge adds it to
//! whatever the origin named, `shared::purge_marks`), and a purge by tag reaches every
//! location through Workers KV, so one request replaces the enumeration of every path of both
//! data sets (a few thousand for MovieLens 100K, millions at the 25M shape). The origin's own
//! cache needs no purge (the data set's epoch retires it, see `crate::dataset`).

use anyhow::Result;
use secrecy::SecretString;
use shared::purge_marks::tag;

/// Purges everything the edge at `edge_url` (its root, e.g. `http://127.0.0.1:8787`) holds.
pub async fn purge_all(edge_url: &str, secret: &SecretString) -> Result<()> {
    let base: url::Url = edge_url
        .parse()
        .map_err(|err| anyhow::anyhow!("--purge-edge {edge_url}: {err}"))?;
    crate::edge::purge(&base, secret, &[tag::ALL.to_owned()]).await?;
    Ok(())
}
