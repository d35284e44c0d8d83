//! The purge marks of `shared::purge_marks`, kept in Workers KV (binding `PURGE_MARKS`) so that
//! every location reads them: one KV key per tag, `{"hard": ms, "soft": ms}`.
//!
//! Reads are cached in the isolate for [`CACHE_MS`]: a lookup costs at most one KV read per tag
//! per isolate per few seconds. A purge writes the marks and updates this isolate's cache at
//! once, so the location that purged stops serving the entries immediately; another location
//! sees the purge once KV has propagated it (Cloudflare documents up to 60 s) and its isolate's
//! cached read has expired (5 s). Without the binding, nothing is ever purged by tag (and the
//! purge endpoint answers 503).

use shared::purge_marks::PurgeMarks;
use std::cell::RefCell;
use std::collections::HashMap;
use worker::{Env, kv::KvStore};

/// The KV binding in `wrangler.toml`.
pub const BINDING: &str = "PURGE_MARKS";

/// How long an isolate trusts a mark it read, in ms.
pub const CACHE_MS: u64 = 5_000;

thread_local! {
    /// Marks read, by tag, with when they were read.
    static READ: RefCell<HashMap<String, (u64, PurgeMarks)>> = RefCell::new(HashMap::new());
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

fn store(env: &Env) -> Option<KvStore> {
    env.kv(BINDING).ok()
}

/// The marks of `tags`, in order (never purged: zero). A tag whose marks cannot be read counts
/// as never purged: a KV failure must not take the cache down.
pub async fn of(env: &Env, tags: &[String]) -> Vec<PurgeMarks> {
    let now = now_ms();
    let kv = store(env);
    let mut marks = Vec::with_capacity(tags.len());
    for tag in tags {
        let cached = READ.with(|read| {
            read.borrow()
                .get(tag)
                .filter(|(at, _)| now.saturating_sub(*at) < CACHE_MS)
                .map(|(_, marks)| *marks)
        });
        let found = match (cached, &kv) {
            (Some(found), _) => found,
            (None, None) => PurgeMarks::default(),
            (None, Some(kv)) => {
                let found = kv
                    .get(tag)
                    .json::<PurgeMarks>()
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                READ.with(|read| read.borrow_mut().insert(tag.clone(), (now, found)));
                found
            }
        };
        marks.push(found);
    }
    marks
}

/// Marks `tags` purged now (soft or hard), in KV and in this isolate's cache.
pub async fn mark(env: &Env, tags: &[String], soft: bool) -> worker::Result<()> {
    let kv = store(env).ok_or_else(|| {
        worker::Error::RustError(format!("the KV binding {BINDING} is not configured"))
    })?;
    let now = now_ms();
    for tag in tags {
        let mut marks = kv
            .get(tag)
            .json::<PurgeMarks>()
            .await
            .map_err(|err| worker::Error::RustError(err.to_string()))?
            .unwrap_or_default();
        marks.mark(now, soft);
        let json = serde_json::to_string(&marks)?;
        kv.put(tag, json.as_str())
            .map_err(|err| worker::Error::RustError(err.to_string()))?
            .execute()
            .await
            .map_err(|err| worker::Error::RustError(err.to_string()))?;
        READ.with(|read| read.borrow_mut().insert(tag.clone(), (now, marks)));
    }
    Ok(())
}

/// Whether the KV binding is there.
pub fn configured(env: &Env) -> bool {
    store(env).is_some()
}
