//! MovieLens 100K for the examples: `data/ml-100k/ml-100k.inter` (RecBole's atomic file, as
//! `scripts/fetch-data.sh` leaves it: a header, then user, item, rating and timestamp separated
//! by tabs), read from the repository root; ids become 0-based indices.

// Each example compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use recommender::data::Row;

/// Users in MovieLens 100K.
pub const USERS: usize = 943;
/// Movies in MovieLens 100K.
pub const MOVIES: usize = 1682;

/// One rating.
pub struct Rating {
    /// User index (id − 1).
    pub user: usize,
    /// Movie index (id − 1).
    pub item: u32,
    /// Stars.
    pub rating: f32,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
}

/// Every rating, in the file's order.
pub fn ratings() -> Vec<Rating> {
    let text = std::fs::read_to_string("data/ml-100k/ml-100k.inter").expect(
        "data/ml-100k/ml-100k.inter: run from the repository root after scripts/fetch-data.sh",
    );
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            Rating {
                user: f[0].parse::<usize>().expect("user") - 1,
                item: f[1].parse::<u32>().expect("item") - 1,
                rating: f[2].parse().expect("rating"),
                timestamp: f[3].parse().expect("timestamp"),
            }
        })
        .collect()
}

/// Each user's (movie index, rating).
pub fn rows(ratings: &[Rating]) -> Vec<Row> {
    let mut rows: Vec<Row> = vec![Vec::new(); USERS];
    for r in ratings {
        rows[r.user].push((r.item, r.rating));
    }
    rows
}
