//! A deterministic generator of MovieLens-shaped data, for load and scale work.
//!
//! Why: MovieLens 100K is too small to exercise the system at the scale it is built for; the
//! real 25M set cannot be redistributed with the project. This generator produces data of any
//! size up to and beyond the MovieLens 25M shape (162,000 users, 62,000 movies, 25,000,000
//! ratings) with the properties that matter to caching and recommendation:
//!
//! - **Movie popularity is Zipf-like** (exponent [`ZIPF_EXPONENT`]): each rating picks a
//!   popularity rank from [`rand_distr::Zipf`]; ranks map to movie ids through a random
//!   permutation, so popular movies are scattered over the id space as in MovieLens.
//! - **User activity has a power-user skew**: per-user counts are a floor of
//!   `min(20, movies)` (MovieLens' own minimum) plus a share of the rest proportional to a
//!   heavy-tailed Lomax weight (Pareto shape [`PARETO_SHAPE`], minus 1, so that light users
//!   stay near the floor), capped at half the movies when the total allows; the top 20% of
//!   users give about 60–75% of the ratings (76% at the 25M shape, 62% at 1M).
//! - **Exactly `ratings` ratings**, no user rating a movie twice. A user cannot rate more movies
//!   than exist, so a spec asking for more than `users × movies` ratings gets exactly
//!   `users × movies` (everyone rates everything); [`Generator::total_ratings`] says how many.
//!   With fewer than `20 × users` ratings the floor drops to `ratings / users`.
//! - **Ratings 0.5–5.0 in half steps** from a global mean plus a per-movie quality (slightly
//!   higher for popular movies), a per-user bias and noise, so averages differ between movies
//!   and between users; some users use whole stars only, as in MovieLens.
//! - **Deterministic timestamps**: each user rates within a window of their own between
//!   1996 and 2019.
//! - Movies have 1–3 of the 19 MovieLens genres (weighted by their MovieLens 100K
//!   frequencies), titles `Synthetic Movie {id}` and years 1920–2025 (skewed to recent).
//!
//! Determinism: everything derives from [`ChaCha8Rng::seed_from_u64`]`(seed)` with one ChaCha
//! stream per concern (catalogue, activity, ratings), and the output does not depend on how it
//! is chunked. The same spec gives the same rows on the same platform (floating-point library
//! functions such as `exp` could in principle differ in the last bit between C libraries).
//! [`GENERATOR_VERSION`] is part of the import fingerprint and must be bumped whenever the
//! output for a given spec changes.
//!
//! Memory: ratings are produced one user at a time ([`Generator::next_user`]); only per-movie
//! and per-user arrays are held (a few MB at the 25M shape), never the ratings.

use std::sync::Arc;

use anyhow::{Result, ensure};
use rand::distr::weighted::WeightedIndex;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1, Normal, Pareto, Zipf};
use sha2::{Digest, Sha256};

use super::{GENRES, SyntheticSpec};

/// Bump whenever the rows generated for a given spec change: it is part of the fingerprint, so
/// that a database loaded by an older generator is not mistaken for the current output.
pub(super) const GENERATOR_VERSION: u32 = 1;

/// The Zipf exponent of movie popularity.
pub(super) const ZIPF_EXPONENT: f64 = 1.0;

/// The Pareto shape of user activity weights (smaller: heavier tail).
pub(super) const PARETO_SHAPE: f64 = 1.2;

/// The minimum number of ratings per user (MovieLens' own), when the total allows.
const MIN_PER_USER: u64 = 20;

/// 1996-01-01 and 2019-11-22 (Unix seconds): the span of MovieLens 25M.
const FIRST_TS: i64 = 820_454_400;
const LAST_TS: i64 = 1_574_380_800;

/// A user rating more than this fraction of all movies is sampled by ranking keys over all
/// movies instead of by rejection (which would mostly draw movies already taken).
const DENSE_FRACTION: f64 = 0.25;

/// Relative weights of [`GENRES`] (their counts in MovieLens 100K).
const GENRE_WEIGHTS: [u32; GENRES.len()] = [
    2, 251, 135, 42, 122, 505, 109, 50, 725, 22, 24, 92, 56, 61, 247, 101, 251, 71, 27,
];

/// ChaCha streams, one per concern.
const STREAM_CATALOGUE: u64 = 1;
const STREAM_ACTIVITY: u64 = 2;
const STREAM_RATINGS: u64 = 3;

/// The `imports.dataset` name of a spec.
pub(super) fn dataset_name(spec: &SyntheticSpec) -> String {
    format!(
        "synthetic-{}u-{}m-{}r-seed{}",
        spec.users, spec.movies, spec.ratings, spec.seed
    )
}

/// The fingerprint of a spec: sha256 (hex) of the spec and the generator version.
pub(super) fn fingerprint(spec: &SyntheticSpec) -> String {
    let text = format!(
        "synthetic v{GENERATOR_VERSION} users={} movies={} ratings={} seed={}",
        spec.users, spec.movies, spec.ratings, spec.seed
    );
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Checks that a spec can be generated and stored (ids are PostgreSQL INTEGERs).
pub(super) fn validate(spec: &SyntheticSpec) -> Result<()> {
    ensure!(
        spec.users >= 1,
        "a synthetic data set needs at least one user"
    );
    ensure!(
        spec.movies >= 1,
        "a synthetic data set needs at least one movie"
    );
    ensure!(
        spec.users <= i32::MAX as u32 && spec.movies <= i32::MAX as u32,
        "users and movies must fit a PostgreSQL INTEGER"
    );
    Ok(())
}

/// One generated movie.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Movie {
    /// 1..=movies.
    pub id: i32,
    pub year: i16,
    /// Indexes into [`GENRES`], distinct, 1 to 3 of them.
    pub genres: Vec<u8>,
}

impl Movie {
    /// The title, derived from the id.
    pub fn title(&self) -> String {
        format!("Synthetic Movie {}", self.id)
    }
}

/// One generated rating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Rating {
    pub user: i32,
    pub movie: i32,
    /// 1 = 0.5 stars ... 10 = 5 stars.
    pub half_stars: u8,
    /// Unix seconds.
    pub at: i64,
}

/// Streams the ratings of a spec, one user at a time, in user id order (movie id order within
/// a user).
pub(super) struct Generator {
    movies: Arc<Vec<Movie>>,
    /// Per movie index (id - 1): the quality offset of its ratings.
    quality: Vec<f32>,
    /// Popularity rank (0 = most popular) to movie index.
    rank_to_movie: Vec<u32>,
    /// Per popularity rank: `(rank + 1)^s`, the inverse Zipf weight (dense sampling).
    inv_weight: Vec<f64>,
    zipf: Zipf<f64>,
    /// Per user index (id - 1): how many ratings.
    counts: Vec<u32>,
    total: u64,
    next_user: u32,
    rng: ChaCha8Rng,
    /// Per popularity rank: the stamp (user index + 1) of the last user who drew it.
    seen: Vec<u32>,
    ranks: Vec<u32>,
    keys: Vec<(f64, u32)>,
    rows: Vec<Rating>,
}

impl Generator {
    /// Prepares the catalogue and the per-user activity of `spec` (milliseconds even at the
    /// 25M shape). The spec must pass [`validate`].
    pub fn new(spec: &SyntheticSpec) -> Self {
        let base = ChaCha8Rng::seed_from_u64(spec.seed);
        let stream = |n| {
            let mut rng = base.clone();
            rng.set_stream(n);
            rng
        };
        let m = spec.movies as usize;

        // Catalogue: years, genres, quality, popularity order.
        let mut rng = stream(STREAM_CATALOGUE);
        let genre_dist = WeightedIndex::new(GENRE_WEIGHTS).expect("constant weights are valid");
        let quality_dist = Normal::new(0.0_f64, 0.45).expect("valid normal");
        let mut movies = Vec::with_capacity(m);
        let mut quality = Vec::with_capacity(m);
        for id in 1..=spec.movies {
            let year = 1920 + (106.0 * rng.random::<f64>().sqrt()).floor().min(105.0) as i16;
            let n_genres = match rng.random::<f64>() {
                p if p < 0.5 => 1,
                p if p < 0.85 => 2,
                _ => 3,
            };
            let mut genres: Vec<u8> = Vec::with_capacity(n_genres);
            while genres.len() < n_genres {
                let g = genre_dist.sample(&mut rng) as u8;
                if !genres.contains(&g) {
                    genres.push(g);
                }
            }
            genres.sort_unstable();
            movies.push(Movie {
                id: id as i32,
                year,
                genres,
            });
            quality.push(quality_dist.sample(&mut rng));
        }
        let mut rank_to_movie: Vec<u32> = (0..spec.movies).collect();
        rank_to_movie.shuffle(&mut rng);
        for (rank, &movie) in rank_to_movie.iter().enumerate() {
            // Popular movies are rated a little higher, as in MovieLens.
            quality[movie as usize] += 0.35 * (0.5 - rank as f64 / m as f64);
        }
        let quality = quality.into_iter().map(|q| q as f32).collect();
        let inv_weight = (1..=m).map(|r| (r as f64).powf(ZIPF_EXPONENT)).collect();

        let counts = allocate(spec, &mut stream(STREAM_ACTIVITY));
        let total = counts.iter().map(|&c| u64::from(c)).sum();

        Generator {
            movies: Arc::new(movies),
            quality,
            rank_to_movie,
            inv_weight,
            zipf: Zipf::new(m as f64, ZIPF_EXPONENT).expect("movies >= 1 and s >= 0"),
            counts,
            total,
            next_user: 0,
            rng: stream(STREAM_RATINGS),
            seen: vec![0; m],
            ranks: Vec::new(),
            keys: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// The movies, in id order.
    pub fn movies(&self) -> Arc<Vec<Movie>> {
        Arc::clone(&self.movies)
    }

    /// The number of users (ids `1..=users`).
    pub fn users(&self) -> u32 {
        self.counts.len() as u32
    }

    /// The number of ratings the generator produces: the spec's, or `users × movies` if the
    /// spec asks for more.
    pub fn total_ratings(&self) -> u64 {
        self.total
    }

    /// The ratings of the next user (possibly none), or `None` after the last user.
    pub fn next_user(&mut self) -> Option<&[Rating]> {
        let index = self.next_user;
        if index as usize >= self.counts.len() {
            return None;
        }
        self.next_user += 1;
        let user = index as i32 + 1;
        let n = self.counts[index as usize] as usize;

        // Per-user traits, drawn for every user so that the stream does not depend on counts.
        let rng = &mut self.rng;
        let bias = 0.35 * sample_normal(rng);
        let whole_stars_only = rng.random_bool(0.4);
        // A window of at least an hour, ending by LAST_TS.
        let start = rng.random_range(FIRST_TS..=LAST_TS - 3_600);
        let mean_span = 200.0 * 86_400.0;
        let e: f64 = Exp1.sample(rng);
        let span = ((e * mean_span) as i64).clamp(3_600, LAST_TS - start);

        self.sample_ranks(n, index + 1);

        self.rows.clear();
        let rng = &mut self.rng;
        for &rank in &self.ranks {
            let movie = self.rank_to_movie[rank as usize];
            let x =
                3.53 + f64::from(self.quality[movie as usize]) + bias + 0.9 * sample_normal(rng);
            let half = if whole_stars_only {
                x.round() * 2.0
            } else {
                (x * 2.0).round()
            };
            self.rows.push(Rating {
                user,
                movie: movie as i32 + 1,
                half_stars: half.clamp(1.0, 10.0) as u8,
                at: start + rng.random_range(0..=span),
            });
        }
        self.rows.sort_unstable_by_key(|r| r.movie);
        Some(&self.rows)
    }

    /// Draws `n` distinct popularity ranks into `self.ranks`, Zipf-weighted without replacement.
    fn sample_ranks(&mut self, n: usize, stamp: u32) {
        let m = self.seen.len();
        self.ranks.clear();
        if n == 0 {
            return;
        }
        if n >= m {
            self.ranks.extend(0..m as u32);
            return;
        }
        if n as f64 <= DENSE_FRACTION * m as f64 {
            // Rejection: redraw movies already taken. Falls back to the dense method when the
            // user is so active that most draws hit taken movies.
            let budget = 16 * n + 64;
            for _ in 0..budget {
                let rank = (self.zipf.sample(&mut self.rng) as usize).clamp(1, m) - 1;
                if self.seen[rank] != stamp {
                    self.seen[rank] = stamp;
                    self.ranks.push(rank as u32);
                    if self.ranks.len() == n {
                        return;
                    }
                }
            }
            self.ranks.clear();
        }
        // Efraimidis–Spirakis: the n smallest keys Exp(1) / weight are a weighted sample
        // without replacement (the same distribution as the rejection above).
        self.keys.clear();
        for (rank, &inv_w) in self.inv_weight.iter().enumerate() {
            let e: f64 = Exp1.sample(&mut self.rng);
            self.keys.push((e * inv_w, rank as u32));
        }
        let by_key = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
        self.keys.select_nth_unstable_by(n - 1, by_key);
        self.ranks
            .extend(self.keys[..n].iter().map(|&(_, rank)| rank));
    }
}

fn sample_normal(rng: &mut ChaCha8Rng) -> f64 {
    rand_distr::StandardNormal.sample(rng)
}

/// How many ratings each user gives: a floor of `min(20, movies, total / users)`, plus the
/// rest in proportion to a Lomax (Pareto type II) weight, capped at half the movies (all of
/// them if the total needs it); the heaviest users are capped first and their excess goes to
/// the others. Sums to exactly `min(ratings, users × movies)`.
fn allocate(spec: &SyntheticSpec, rng: &mut ChaCha8Rng) -> Vec<u32> {
    let users = u64::from(spec.users);
    let movies = u64::from(spec.movies);
    let total = spec.ratings.min(users * movies);
    let floor = MIN_PER_USER.min(movies).min(total / users);
    // Nobody rates more than half the catalogue unless the total needs it (someone who has
    // rated everything could not be recommended anything).
    let half = (movies / 2).max(floor);
    let most = if total <= half * users { half } else { movies };
    let cap = (most - floor) as u32; // extra ratings a user can still take
    let mut rest = total - floor * users;

    let pareto = Pareto::new(1.0_f64, PARETO_SHAPE).expect("valid Pareto");
    // Lomax (Pareto minus its scale): light users keep (close to) the floor, as in MovieLens.
    let weights: Vec<f64> = (0..users).map(|_| pareto.sample(rng) - 1.0).collect();
    let mut order: Vec<u32> = (0..spec.users).collect();
    order.sort_unstable_by(|&a, &b| {
        weights[b as usize]
            .total_cmp(&weights[a as usize])
            .then(a.cmp(&b))
    });

    let mut extra = vec![0_u32; users as usize];
    // The heaviest users whose share would exceed the cap get the cap.
    let mut w_left: f64 = order.iter().map(|&u| weights[u as usize]).sum();
    let mut first_uncapped = 0;
    for &u in &order {
        let w = weights[u as usize];
        if rest < u64::from(cap).max(1) || (rest as f64) * w / w_left < f64::from(cap) {
            break;
        }
        extra[u as usize] = cap;
        rest -= u64::from(cap);
        w_left -= w;
        first_uncapped += 1;
    }
    // The others share the rest in proportion, rounded down...
    let uncapped = &order[first_uncapped..];
    let w_left: f64 = uncapped.iter().map(|&u| weights[u as usize]).sum();
    let mut given = 0_u64;
    if rest > 0 && w_left > 0.0 {
        for &u in uncapped {
            let share = ((rest as f64) * weights[u as usize] / w_left).floor() as u64;
            let share = share.min(u64::from(cap)) as u32;
            extra[u as usize] = share;
            given += u64::from(share);
        }
    }
    // ... and the remainder goes one by one, heaviest first (taken back lightest first in the
    // unlikely case rounding gave too much).
    let mut missing = rest as i64 - given as i64;
    assert!(
        missing == 0 || !uncapped.is_empty(),
        "allocation: nobody left to take {missing}"
    );
    while missing > 0 {
        for &u in uncapped {
            if extra[u as usize] < cap {
                extra[u as usize] += 1;
                missing -= 1;
                if missing == 0 {
                    break;
                }
            }
        }
    }
    while missing < 0 {
        for &u in uncapped.iter().rev() {
            if extra[u as usize] > 0 {
                extra[u as usize] -= 1;
                missing += 1;
                if missing == 0 {
                    break;
                }
            }
        }
    }
    extra.into_iter().map(|e| floor as u32 + e).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn spec(users: u32, movies: u32, ratings: u64, seed: u64) -> SyntheticSpec {
        SyntheticSpec {
            users,
            movies,
            ratings,
            seed,
        }
    }

    /// All ratings of a spec (fine for test sizes).
    fn all(spec: &SyntheticSpec) -> Vec<Rating> {
        let mut g = Generator::new(spec);
        let mut out = Vec::new();
        while let Some(rows) = g.next_user() {
            out.extend_from_slice(rows);
        }
        out
    }

    /// sha256 over the catalogue and the first `n` ratings.
    fn digest(spec: &SyntheticSpec, n: usize) -> String {
        let mut g = Generator::new(spec);
        let mut h = Sha256::new();
        for m in g.movies().iter() {
            h.update(format!(
                "{}|{}|{}|{:?}\n",
                m.id,
                m.title(),
                m.year,
                m.genres
            ));
        }
        let mut left = n;
        while let Some(rows) = g.next_user() {
            for r in rows.iter().take(left) {
                h.update(format!(
                    "{}|{}|{}|{}\n",
                    r.user, r.movie, r.half_stars, r.at
                ));
            }
            left = left.saturating_sub(rows.len());
            if left == 0 {
                break;
            }
        }
        hex::encode(h.finalize())
    }

    #[test]
    fn same_seed_same_rows() {
        let s = spec(1_000, 500, 20_000, 7);
        assert_eq!(digest(&s, 5_000), digest(&s, 5_000));
        assert_eq!(all(&s), all(&s));
    }

    /// The generator's output is pinned per [`GENERATOR_VERSION`]: a change to what it
    /// generates fails here until the version is bumped (so databases holding the old output
    /// are re-imported, not silently mistaken for the new) and the digest updated.
    #[test]
    fn output_is_pinned_to_the_generator_version() {
        let pinned = [(
            1,
            "ea1f207227c97e3224ec9679d607540eee682d39941b2f1e301fd328b6f0dc23",
        )];
        let digest = digest(&spec(300, 120, 6_000, 11), 6_000);
        let expected = pinned
            .iter()
            .find(|(version, _)| *version == GENERATOR_VERSION)
            .map(|(_, digest)| *digest);
        assert_eq!(
            Some(digest.as_str()),
            expected,
            "the synthetic output changed: bump GENERATOR_VERSION and pin the new digest"
        );
    }

    #[test]
    fn different_seed_different_rows() {
        let a = digest(&spec(1_000, 500, 20_000, 7), 5_000);
        let b = digest(&spec(1_000, 500, 20_000, 8), 5_000);
        assert_ne!(a, b);
        assert_ne!(
            fingerprint(&spec(1, 1, 1, 7)),
            fingerprint(&spec(1, 1, 1, 8))
        );
    }

    #[test]
    fn exact_totals_without_duplicates() {
        for (s, expected) in [
            (spec(1_000, 500, 20_000, 1), 20_000),
            (spec(2_000, 3_000, 150_000, 2), 150_000),
            (spec(100, 40, 3_000, 3), 3_000), // dense: 75% of all pairs
            (spec(30, 50, 1_500, 4), 1_500),  // complete
            (spec(30, 50, 9_999, 5), 1_500),  // impossible: clamped to users × movies
            (spec(500, 1_000, 1_234, 6), 1_234), // fewer than 20 per user
            (spec(1, 1, 0, 7), 0),
        ] {
            let g = Generator::new(&s);
            assert_eq!(g.total_ratings(), expected, "{s:?}");
            let rows = all(&s);
            assert_eq!(rows.len() as u64, expected, "{s:?}");
            let pairs: HashSet<(i32, i32)> = rows.iter().map(|r| (r.user, r.movie)).collect();
            assert_eq!(pairs.len(), rows.len(), "duplicate pairs in {s:?}");
            assert!(rows.iter().all(|r| (1..=10).contains(&r.half_stars)));
            assert!(rows.iter().all(|r| r.user >= 1 && r.user <= s.users as i32));
            assert!(
                rows.iter()
                    .all(|r| r.movie >= 1 && r.movie <= s.movies as i32)
            );
            assert!(rows.iter().all(|r| (FIRST_TS..=LAST_TS).contains(&r.at)));
            // Every user has at least min(20, movies) ratings when the total allows.
            let floor = 20
                .min(u64::from(s.movies))
                .min(expected / u64::from(s.users));
            let mut per_user = vec![0_u64; s.users as usize];
            for r in &rows {
                per_user[r.user as usize - 1] += 1;
            }
            assert!(per_user.iter().all(|&c| c >= floor), "{s:?}");
        }
    }

    #[test]
    fn catalogue_shape() {
        let g = Generator::new(&spec(100, 2_000, 0, 9));
        let movies = g.movies();
        assert_eq!(movies.len(), 2_000);
        for m in movies.iter() {
            assert!((1..=3).contains(&m.genres.len()));
            assert!(m.genres.iter().all(|&i| (i as usize) < GENRES.len()));
            assert!((1920..=2025).contains(&m.year), "{}", m.year);
        }
        assert_eq!(movies[122].title(), "Synthetic Movie 123");
        let used: HashSet<u8> = movies.iter().flat_map(|m| m.genres.clone()).collect();
        assert!(used.len() >= 17);
    }

    /// The share of `counts` held by its top `fraction`.
    fn top_share(mut counts: Vec<u64>, fraction: f64) -> f64 {
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top = ((counts.len() as f64) * fraction).ceil() as usize;
        counts[..top].iter().sum::<u64>() as f64 / counts.iter().sum::<u64>() as f64
    }

    #[test]
    fn power_users_give_most_ratings() {
        let s = spec(2_000, 3_000, 200_000, 11);
        let mut per_user = vec![0_u64; 2_000];
        for r in all(&s) {
            per_user[r.user as usize - 1] += 1;
        }
        let share = top_share(per_user, 0.2);
        assert!(share > 0.5, "top 20% of users give {share:.3}");

        // The MovieLens 25M shape (activity only: cheap).
        let s = spec(162_000, 62_000, 25_000_000, 1);
        let counts = allocate(&s, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(
            counts.iter().map(|&c| u64::from(c)).sum::<u64>(),
            25_000_000
        );
        assert!(counts.iter().all(|&c| (20..=31_000).contains(&c)));
        let share = top_share(counts.iter().map(|&c| u64::from(c)).collect(), 0.2);
        assert!(share > 0.5, "25M shape: top 20% of users give {share:.3}");
    }

    #[test]
    fn popularity_is_skewed() {
        let s = spec(2_000, 3_000, 200_000, 12);
        let mut per_movie = vec![0_u64; 3_000];
        for r in all(&s) {
            per_movie[r.movie as usize - 1] += 1;
        }
        let top = top_share(per_movie.clone(), 0.01);
        assert!(top > 0.10, "top 1% of movies get {top:.3}");
        let top = top_share(per_movie.clone(), 0.1);
        assert!(top > 0.4, "top 10% of movies get {top:.3}");
        // Ranked counts fall steadily (Zipf-like), not a few hits and a flat tail.
        per_movie.sort_unstable_by(|a, b| b.cmp(a));
        assert!(
            per_movie[9] > 2 * per_movie[299],
            "{} vs {}",
            per_movie[9],
            per_movie[299]
        );
        assert!(per_movie[299] > 2 * per_movie[2_999]);
    }

    #[test]
    fn averages_differ() {
        let s = spec(1_000, 200, 40_000, 13);
        let (mut sum, mut n) = (vec![0.0_f64; 200], vec![0_u32; 200]);
        for r in all(&s) {
            sum[r.movie as usize - 1] += f64::from(r.half_stars) / 2.0;
            n[r.movie as usize - 1] += 1;
        }
        let avgs: Vec<f64> = sum
            .iter()
            .zip(&n)
            .filter(|(_, n)| **n >= 50)
            .map(|(s, n)| s / f64::from(*n))
            .collect();
        let lo = avgs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = avgs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert!(hi - lo > 1.0, "movie averages span {lo:.2}..{hi:.2}");
        let mean = sum.iter().sum::<f64>() / f64::from(n.iter().sum::<u32>());
        assert!((3.0..4.0).contains(&mean), "mean {mean:.2}");
    }
}
