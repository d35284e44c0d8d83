//! What the cache holds: the entry format stored in Redis ([`Entry`]), and the value an
//! instance keeps and serves ([`Value`]) — the body once, its responses with their ETags
//! rendered once.
//!
//! A Redis entry is `v2 STORED_AT FRESH_UNTIL EPOCH TAG\n` then the body as is: a short text
//! header so that `redis-cli GET` shows what an entry is, and a body that is served without
//! re-encoding. The body is kept as [`Bytes`]: decoding slices the buffer Redis answered into,
//! and every response shares it without a copy.

use axum::http::HeaderValue;
use bytes::Bytes;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// One cached value as Redis stores it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// When it was computed (Unix seconds).
    pub stored_at: i64,
    /// Until when it is fresh (Unix seconds).
    pub fresh_until: i64,
    /// The data set's epoch it was computed in: another epoch's value is never served.
    pub epoch: u64,
    /// The user's generation (and model version) it was computed under; `None` when shared.
    pub tag: Option<Box<str>>,
    /// The value.
    pub body: Bytes,
}

impl Entry {
    /// `v2 STORED_AT FRESH_UNTIL EPOCH TAG\n` (the epoch in hex, `-` for no tag) then the body.
    pub fn encode(&self) -> Vec<u8> {
        let tag = self.tag.as_deref().unwrap_or("-");
        let mut out = format!(
            "v2 {} {} {:x} {tag}\n",
            self.stored_at, self.fresh_until, self.epoch
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    /// An entry, or `None` for anything else (an older format included: it is a miss).
    pub fn decode(raw: Vec<u8>) -> Option<Entry> {
        let newline = raw.iter().position(|b| *b == b'\n')?;
        let header = std::str::from_utf8(&raw[..newline]).ok()?;
        let mut parts = header.split(' ');
        if parts.next()? != "v2" {
            return None;
        }
        let stored_at = parts.next()?.parse().ok()?;
        let fresh_until = parts.next()?.parse().ok()?;
        let epoch = u64::from_str_radix(parts.next()?, 16).ok()?;
        let tag = match parts.next()? {
            "-" => None,
            token => Some(token.into()),
        };
        Some(Entry {
            stored_at,
            fresh_until,
            epoch,
            tag,
            body: Bytes::from(raw).slice(newline + 1..),
        })
    }
}

/// A response rendered from a value: the exact body and its strong ETag.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The response body.
    pub body: Bytes,
    /// Its strong ETag (see `shared::etag`), ready to be sent.
    pub etag: HeaderValue,
}

impl Rendered {
    /// Renders `body` and tags it.
    pub fn new(body: Bytes) -> Rendered {
        let etag = HeaderValue::from_str(&shared::etag::strong_etag(&body))
            .expect("an ETag is a quoted hex string");
        Rendered { body, etag }
    }
}

/// How many renderings of one value are kept (a list is served at several `limit`s; the first
/// ones asked are kept, any further one is rendered per request). The load generator asks
/// four (10, 20, 50, 100).
const RENDERINGS_KEPT: usize = 8;

/// A value as this instance holds it: the entry, plus what was derived from it once (its
/// renderings with their ETags) and whether an early refresh of it has been started here.
#[derive(Debug)]
pub struct Value {
    /// The entry.
    pub entry: Entry,
    /// The tracking session it was read in (see `invalidation`); shared values of an older
    /// session are never served from the local tier.
    pub session: u64,
    renderings: Mutex<Vec<(u32, Rendered)>>,
    refresh_started: AtomicBool,
}

impl Value {
    /// A value read or computed in tracking session `session`.
    pub fn new(entry: Entry, session: u64) -> Value {
        Value {
            entry,
            session,
            renderings: Mutex::new(Vec::new()),
            refresh_started: AtomicBool::new(false),
        }
    }

    /// A value that no cache holds (tests; answers computed without the cache).
    pub fn detached(body: Bytes) -> Value {
        Value::new(
            Entry {
                stored_at: 0,
                fresh_until: 0,
                epoch: 0,
                tag: None,
                body,
            },
            0,
        )
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.entry.body
    }

    /// The response `variant` of this value (e.g. a list's `limit`; 0 for the body as is),
    /// rendered by `render` the first time and kept with its ETag.
    pub fn rendered(&self, variant: u32, render: impl FnOnce(&Bytes) -> Bytes) -> Rendered {
        match self.try_rendered(variant, |body| {
            Ok::<_, std::convert::Infallible>(render(body))
        }) {
            Ok(rendered) => rendered,
        }
    }

    /// [`Value::rendered`] with a rendering that can fail (a value that must be decoded): a
    /// failure is returned, and nothing is kept.
    pub fn try_rendered<E>(
        &self,
        variant: u32,
        render: impl FnOnce(&Bytes) -> Result<Bytes, E>,
    ) -> Result<Rendered, E> {
        if let Some((_, found)) = self
            .lock_renderings()
            .iter()
            .find(|(kept, _)| *kept == variant)
        {
            return Ok(found.clone());
        }
        let rendered = Rendered::new(render(&self.entry.body)?);
        let mut kept = self.lock_renderings();
        if kept.len() < RENDERINGS_KEPT && !kept.iter().any(|(v, _)| *v == variant) {
            kept.push((variant, rendered.clone()));
        }
        Ok(rendered)
    }

    /// Claims the early refresh of this value for this instance, once it is in the last
    /// tenth of its life at `now`: true once.
    pub fn claim_refresh_if_due(&self, now: i64) -> bool {
        shared::ttl::should_refresh_early(self.entry.stored_at, self.entry.fresh_until, now)
            && !self.refresh_started.swap(true, Ordering::AcqRel)
    }

    /// What the value weighs in the local tier: its body, one rendering, and the bookkeeping
    /// (an estimate: the bound is on bytes, not on entries). A JSON body renders about as
    /// large as itself; a user's picks (`crate::picks`, about 10 bytes an item) render to
    /// about 190 bytes of JSON an item, so their rendering is counted twenty times the body.
    pub fn weight(&self, key: &str) -> u32 {
        let body = self.entry.body.len();
        let rendering = match crate::picks::Picks::is_encoded(&self.entry.body) {
            true => 20 * body,
            false => body,
        };
        let bytes = key.len() + body + rendering + 256;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }

    fn lock_renderings(&self) -> std::sync::MutexGuard<'_, Vec<(u32, Rendered)>> {
        self.renderings.lock().expect("renderings lock poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let entry = Entry {
            stored_at: 10,
            fresh_until: 20,
            epoch: 0xfeed,
            tag: Some("ab12".into()),
            body: Bytes::from_static(b"{\"x\":\n1}"),
        };
        let decoded = Entry::decode(entry.encode()).unwrap();
        assert_eq!((decoded.stored_at, decoded.fresh_until), (10, 20));
        assert_eq!(decoded.epoch, 0xfeed);
        assert_eq!(decoded.tag.as_deref(), Some("ab12"));
        assert_eq!(&decoded.body[..], b"{\"x\":\n1}");
        let global = Entry { tag: None, ..entry };
        assert_eq!(Entry::decode(global.encode()).unwrap().tag, None);
        assert!(Entry::decode(b"garbage".to_vec()).is_none());
        assert!(
            Entry::decode(b"v1 10 20 ab12\n{}".to_vec()).is_none(),
            "an entry of the format before epochs is a miss"
        );
    }

    #[test]
    fn picks_weigh_what_their_rendering_will() {
        let picks = crate::picks::Picks {
            user_id: 1,
            strategy: shared::params::Strategy::Hybrid,
            model_version: "als-x".into(),
            items: (1..=10)
                .map(|id| crate::picks::Pick::new(id, 0.5, Some(id + 100)))
                .collect(),
        };
        let body = Bytes::from(picks.encode());
        let weight = Value::detached(body.clone()).weight("k") as usize;
        assert!(
            weight >= 10 * 150,
            "ten items render to about 1.9 KB of JSON: {weight} for {} bytes",
            body.len()
        );
        let json = Bytes::from_static(b"{\"a\":1}");
        assert_eq!(Value::detached(json).weight("k"), 1 + 7 + 7 + 256);
    }

    #[test]
    fn renderings_are_made_once_and_tagged() {
        let value = Value::new(
            Entry {
                stored_at: 0,
                fresh_until: 100,
                epoch: 0,
                tag: None,
                body: Bytes::from_static(b"abcdef"),
            },
            0,
        );
        let mut calls = 0;
        for _ in 0..3 {
            let r = value.rendered(3, |body| {
                calls += 1;
                body.slice(..3)
            });
            assert_eq!(&r.body[..], b"abc");
            assert_eq!(
                r.etag.to_str().unwrap(),
                shared::etag::strong_etag(b"abc"),
                "the ETag is the body's"
            );
        }
        assert_eq!(calls, 1, "rendered once, then kept");
        let whole = value.rendered(0, Bytes::clone);
        assert_eq!(&whole.body[..], b"abcdef");
        assert!(!value.claim_refresh_if_due(50), "not due at half its life");
        assert!(value.claim_refresh_if_due(95), "due in its last tenth");
        assert!(!value.claim_refresh_if_due(96), "claimed once");
    }
}
