//! Global purge at the edge, by tag: what makes a stored entry purged everywhere.
//!
//! `cache.delete` on Cloudflare removes an entry only in the location that runs it. So a purge
//! does not delete: it records, per tag, when the tag was last purged ([`PurgeMarks`], kept in
//! Workers KV, which every location reads), and every location judges each stored entry
//! against the marks of its tags before serving it ([`verdict`]): an entry fetched before its
//! tag's hard purge is gone (a miss), one fetched before a soft purge is stale (revalidated
//! with `If-None-Match`: a 304 keeps the stored body). An entry's tags are the ones the origin
//! named in [`TAGS_HEADER`] (`movie:7 all`), plus its own path's ([`path_tag`]), so a purge by
//! path reaches every location too.
//!
//! An entry is stamped with the time its fetch *started*: an answer the origin gave after a
//! purge reflects the change only if it was asked after it, so a fetch that was under way when
//! the purge came is not trusted past it.

use serde::{Deserialize, Serialize};

/// The response header the origin names an entry's tags in (space-separated); the edge
/// stores them and removes the header before anything reaches a client.
pub const TAGS_HEADER: &str = "x-cache-tags";

/// The most tags one purge request names.
pub const MAX_TAGS: usize = 50;

/// The tags the origin names its public responses with, and purges.
pub mod tag {
    /// Every public response.
    pub const ALL: &str = "all";
    /// `GET /movies/popular`, every limit.
    pub const POPULAR: &str = "popular";
    /// `GET /genres`.
    pub const GENRES: &str = "genres";
    /// Every genre's top list (the materialized view they come from).
    pub const GENRE_TOP: &str = "genre-top";

    /// `GET /movies/{id}`.
    pub fn movie(id: i32) -> String {
        format!("movie:{id}")
    }

    /// `GET /genres/{genre}/top`, whichever spelling, every limit.
    pub fn genre(slug: &str) -> String {
        format!("genre:{}", slug.to_ascii_lowercase())
    }

    /// `GET /movies/{id}/similar`.
    pub fn similar(id: i32) -> String {
        format!("similar:{id}")
    }
}

/// When a tag was last purged, in milliseconds since the Unix epoch (0: never).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeMarks {
    /// The last purge that removed the tag's entries.
    pub hard: u64,
    /// The last soft purge, which only marked them stale.
    pub soft: u64,
}

impl PurgeMarks {
    /// Records a purge at `now_ms`.
    pub fn mark(&mut self, now_ms: u64, soft: bool) {
        let slot = if soft { &mut self.soft } else { &mut self.hard };
        *slot = (*slot).max(now_ms);
    }
}

/// What a stored entry is worth against its tags' marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not purged since it was fetched: serve it by its own freshness.
    Valid,
    /// Soft-purged since: revalidate it before serving (a 304 keeps the body).
    Stale,
    /// Purged since: as if it were not stored.
    Purged,
}

/// The verdict on an entry whose fetch started at `fetched_at_ms`, given its tags' marks.
pub fn verdict(fetched_at_ms: u64, marks: impl IntoIterator<Item = PurgeMarks>) -> Verdict {
    let mut verdict = Verdict::Valid;
    for marks in marks {
        if marks.hard >= fetched_at_ms && marks.hard > 0 {
            return Verdict::Purged;
        }
        if marks.soft >= fetched_at_ms && marks.soft > 0 {
            verdict = Verdict::Stale;
        }
    }
    verdict
}

/// The tag every entry has for its own normalised path (`path:/movies/popular?limit=5`).
pub fn path_tag(key: &str) -> String {
    format!("path:{key}")
}

/// Whether `tag` may be purged and stored: 1 to 200 bytes of lower-case letters, digits and
/// `:-_./?=&%`.
pub fn valid_tag(tag: &str) -> bool {
    (1..=200).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b":-_./?=&%".contains(&b))
}

/// The valid tags of a [`TAGS_HEADER`] value, in order, without duplicates (at most
/// [`MAX_TAGS`]; others are ignored).
pub fn parse_tags(header: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for tag in header.split([' ', ',']).filter(|t| valid_tag(t)) {
        if tags.len() < MAX_TAGS && !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_fetched_before_a_purge_is_purged_or_stale() {
        let never = PurgeMarks::default();
        let mut hard = PurgeMarks::default();
        hard.mark(1_000, false);
        let mut soft = PurgeMarks::default();
        soft.mark(1_000, true);
        assert_eq!(verdict(500, [never]), Verdict::Valid);
        assert_eq!(verdict(500, [never, hard]), Verdict::Purged);
        assert_eq!(verdict(500, [soft]), Verdict::Stale);
        assert_eq!(verdict(500, [soft, hard]), Verdict::Purged);
        // Fetched after the purge: the answer reflects it.
        assert_eq!(verdict(1_001, [hard, soft]), Verdict::Valid);
        // Fetched as the purge was recorded: not trusted.
        assert_eq!(verdict(1_000, [hard]), Verdict::Purged);
        assert_eq!(verdict(0, []), Verdict::Valid);
    }

    #[test]
    fn marks_only_move_forward() {
        let mut marks = PurgeMarks::default();
        marks.mark(2_000, false);
        marks.mark(1_000, false);
        marks.mark(3_000, true);
        assert_eq!(
            marks,
            PurgeMarks {
                hard: 2_000,
                soft: 3_000
            }
        );
    }

    #[test]
    fn tags_are_parsed_and_checked() {
        assert_eq!(
            parse_tags("movie:7 all,all  genre:sci-fi Bad! "),
            ["movie:7", "all", "genre:sci-fi"]
        );
        assert_eq!(
            path_tag("/movies/popular?limit=5"),
            "path:/movies/popular?limit=5"
        );
        assert!(valid_tag(&path_tag("/genres/children%27s/top?limit=20")));
        assert!(!valid_tag(""));
        assert!(!valid_tag("Movie:7"));
        assert!(!valid_tag(&"a".repeat(201)));
        let many: Vec<String> = (0..60).map(|i| format!("movie:{i}")).collect();
        assert_eq!(parse_tags(&many.join(" ")).len(), MAX_TAGS);
    }
}
