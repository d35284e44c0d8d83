//! Training by alternating least squares on the implicit-feedback objective
//!
//! `Σ_{u,i} c_ui (p_ui − x_u·y_i)² + λ (Σ‖x_u‖² + Σ‖y_i‖²)`, with preference and confidence
//! from the rating ([`Feedback`]): a liked rating (above [`NEGATIVE_MAX`] stars) has
//! `p_ui = 1`, `c_ui = 1 + α·r_ui`; a disliked one (at most [`NEGATIVE_MAX`]) is negative
//! evidence, `p_ui = 0` with confidence `1 + α·β·(NEGATIVE_MAX + 1 − r_ui)` (Hu et al. allow
//! any confidence on a zero preference: a 1-star rating is a surer "no" than an unrated
//! movie); unrated pairs have `p = 0`, `c = 1`.
//!
//! Each half-step solves every user (then every item) exactly given the other side, using the
//! Gram-matrix trick: `YᵀC_uY = YᵀY + Y_uᵀ(C_u − I)Y_u`, so a row costs O(n_u·k² + k³) rather
//! than touching every item. Rows are solved in parallel (rayon); the result does not depend on
//! the thread count, so training is deterministic for a seed.

use crate::data::{Interactions, Row};
use crate::linalg::cholesky_solve;
use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Ratings at or below this many stars are negative evidence (see [`Feedback`]).
pub const NEGATIVE_MAX: f32 = 1.0;

/// Default β: the confidence of a dislike relative to a like of the same distance from
/// neutral (see [`Feedback`]).
pub const NEGATIVE_WEIGHT: f32 = 1.0;

/// How a rating becomes a preference `p` and a confidence `c` — the one mapping of training,
/// fold-in and the incremental [`crate::user_step::UserEquations`], so they agree.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// α: a liked rating `r` has `c = 1 + α·r`.
    pub alpha: f32,
    /// Ratings at or below this are dislikes: `p = 0`, `c = 1 + α·β·(negative_max + 1 − r)`.
    /// Below the lowest rating (e.g. 0) every rating is a like.
    pub negative_max: f32,
    /// β, the weight of a dislike.
    pub negative_weight: f32,
}

impl Feedback {
    /// The mapping used with confidence scale `alpha`: dislikes at or below
    /// [`NEGATIVE_MAX`] with weight [`NEGATIVE_WEIGHT`].
    pub fn new(alpha: f32) -> Self {
        Feedback {
            alpha,
            negative_max: NEGATIVE_MAX,
            negative_weight: NEGATIVE_WEIGHT,
        }
    }

    /// Every rating a like (`p = 1`, `c = 1 + α·r`): the classic mapping.
    pub fn all_positive(alpha: f32) -> Self {
        Feedback {
            alpha,
            negative_max: f32::NEG_INFINITY,
            negative_weight: 0.0,
        }
    }

    /// `(p, c)` of a rating.
    #[inline]
    pub fn weigh(&self, rating: f32) -> (f32, f32) {
        if rating <= self.negative_max {
            let distance = self.negative_max + 1.0 - rating;
            (0.0, 1.0 + self.alpha * self.negative_weight * distance)
        } else {
            (1.0, 1.0 + self.alpha * rating)
        }
    }
}

/// Hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlsParams {
    /// Latent factors per user and item.
    pub factors: usize,
    /// Alternations (user step + item step).
    pub epochs: usize,
    /// L2 regularisation λ.
    pub reg: f32,
    /// Frequency exponent ν of the regularisation: a row with `n` ratings gets `λ·(n+1)^ν`.
    pub reg_exponent: f32,
    /// Confidence scale α: `c = 1 + α·rating`.
    pub alpha: f32,
    /// Seed of the initial factors.
    pub seed: u64,
}

impl Default for AlsParams {
    /// The values chosen on MovieLens 100K's validation folds (see the README).
    fn default() -> Self {
        AlsParams {
            factors: 128,
            epochs: 15,
            reg: 3.0,
            reg_exponent: 0.5,
            alpha: 0.5,
            seed: 42,
        }
    }
}

impl AlsParams {
    /// The row regularisation these parameters describe.
    pub fn regularisation(&self) -> Regularisation {
        Regularisation {
            lambda: self.reg,
            exponent: self.reg_exponent,
        }
    }

    /// The rating mapping these parameters train with: [`Feedback::new`] at `alpha`.
    pub fn feedback(&self) -> Feedback {
        Feedback::new(self.alpha)
    }
}

/// Trained factors.
#[derive(Debug, Clone)]
pub struct Factors {
    /// `n_users × k`.
    pub users: Array2<f32>,
    /// `n_items × k`.
    pub items: Array2<f32>,
}

/// Regularisation of one row: `λ·(n + 1)^ν` for a row with `n` interactions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Regularisation {
    /// λ.
    pub lambda: f32,
    /// ν.
    pub exponent: f32,
}

/// Solves one row: `(G + Y_uᵀ(C_u − I)Y_u + λI) x = Y_uᵀ C_u p_u` where `G = YᵀY`, with the
/// mapping [`Feedback::new`]`(alpha)`.
pub fn solve_row(
    gram: &ArrayView2<f32>,
    fixed: &ArrayView2<f32>,
    row: &[(u32, f32)],
    reg: Regularisation,
    alpha: f32,
) -> Vec<f32> {
    solve_row_with(gram, fixed, row, reg, Feedback::new(alpha))
}

/// [`solve_row`] with an explicit rating mapping.
pub fn solve_row_with(
    gram: &ArrayView2<f32>,
    fixed: &ArrayView2<f32>,
    row: &[(u32, f32)],
    reg: Regularisation,
    feedback: Feedback,
) -> Vec<f32> {
    let k = gram.nrows();
    if row.is_empty() {
        return vec![0.0; k];
    }
    let (m, b) = rating_sums(fixed, row, feedback);
    let gram: Vec<f64> = gram.iter().map(|v| *v as f64).collect();
    solve_equations(&gram, &m, b, row.len(), reg)
}

/// The parts of a row's normal equations that depend on its interactions: `M = Y_uᵀ(C_u −
/// I)Y_u` (row-major `k × k`) and `b = Y_uᵀ C_u p_u` (a dislike, `p = 0`, adds to `M` only).
pub(crate) fn rating_sums(
    fixed: &ArrayView2<f32>,
    row: &[(u32, f32)],
    feedback: Feedback,
) -> (Vec<f64>, Vec<f64>) {
    let k = fixed.ncols();
    let mut b = vec![0.0f64; k];
    // Y_u scaled by sqrt(c − 1), so that Y_uᵀ(C_u − I)Y_u is one matrix product.
    let mut gathered = Array2::<f32>::zeros((row.len(), k));
    for (r, &(j, rating)) in row.iter().enumerate() {
        let (pref, c) = feedback.weigh(rating);
        let y = fixed.row(j as usize);
        let scale = (c - 1.0).sqrt();
        gathered.row_mut(r).assign(&(&y * scale));
        if pref != 0.0 {
            let cp = c * pref;
            for (p, v) in y.iter().enumerate() {
                b[p] += (cp * v) as f64;
            }
        }
    }
    let m = gathered
        .t()
        .dot(&gathered)
        .iter()
        .map(|v| *v as f64)
        .collect();
    (m, b)
}

/// Solves `(G + λ(n + 1)^ν I + M) x = b` for a row with `n` interactions, `G` and `M`
/// row-major `k × k`; zero when `n` is 0 or the system is not positive definite.
pub(crate) fn solve_equations(
    gram: &[f64],
    m: &[f64],
    mut b: Vec<f64>,
    n: usize,
    reg: Regularisation,
) -> Vec<f32> {
    let k = b.len();
    if n == 0 {
        return vec![0.0; k];
    }
    // Frequency-scaled regularisation: a row with n interactions gets λ·(n + 1)^ν, so heavy
    // users and popular items are not fitted more tightly than the rest.
    let scaled = reg.lambda as f64 * (n as f64 + 1.0).powf(reg.exponent as f64);
    let mut a = gram.to_vec();
    for p in 0..k {
        a[p * k + p] += scaled;
    }
    for (slot, v) in a.iter_mut().zip(m) {
        *slot += v;
    }
    if !cholesky_solve(&mut a, &mut b, k) {
        return vec![0.0; k];
    }
    b.into_iter().map(|v| v as f32).collect()
}

/// One half-step: every row of `rows` solved against `fixed`.
fn half_step(
    fixed: &Array2<f32>,
    rows: &[Row],
    reg: Regularisation,
    feedback: Feedback,
) -> Array2<f32> {
    let k = fixed.ncols();
    let gram = fixed.t().dot(fixed);
    let solved: Vec<Vec<f32>> = rows
        .par_iter()
        .map(|row| solve_row_with(&gram.view(), &fixed.view(), row, reg, feedback))
        .collect();
    let mut out = Array2::<f32>::zeros((rows.len(), k));
    for (mut dst, src) in out.axis_iter_mut(Axis(0)).zip(solved) {
        dst.assign(&ndarray::ArrayView1::from(&src));
    }
    out
}

/// The objective per interaction (lower is better), computed without touching every pair:
/// `Σ_all s² = Σ_u x_uᵀ(YᵀY)x_u`, then corrected on the observed pairs; the objective [`train`]
/// minimises (every rating an interaction).
pub fn loss(data: &Interactions, f: &Factors, params: &AlsParams) -> f64 {
    loss_with(data, f, params, Feedback::all_positive(params.alpha))
}

/// [`loss`] with an explicit rating mapping.
pub fn loss_with(data: &Interactions, f: &Factors, params: &AlsParams, feedback: Feedback) -> f64 {
    let gram = f.items.t().dot(&f.items);
    let mut total: f64 = (0..f.users.nrows())
        .into_par_iter()
        .map(|u| {
            let x = f.users.row(u);
            x.dot(&gram.dot(&x)) as f64
        })
        .sum();
    total += data
        .by_user
        .par_iter()
        .enumerate()
        .map(|(u, row)| {
            let x = f.users.row(u);
            row.iter()
                .map(|&(i, r)| {
                    let s = x.dot(&f.items.row(i as usize)) as f64;
                    let (p, c) = feedback.weigh(r);
                    let (p, c) = (p as f64, c as f64);
                    c * (p - s) * (p - s) - s * s
                })
                .sum::<f64>()
        })
        .sum::<f64>();
    let reg = params.regularisation();
    let penalty = |factors: &Array2<f32>, rows: &[Row]| -> f64 {
        factors
            .axis_iter(Axis(0))
            .zip(rows)
            .map(|(x, row)| {
                let weight = reg.lambda as f64 * (row.len() as f64 + 1.0).powf(reg.exponent as f64);
                weight * x.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>()
            })
            .sum()
    };
    let norms = penalty(&f.users, &data.by_user) + penalty(&f.items, &data.by_item);
    (total + norms) / data.len().max(1) as f64
}

/// Trains, calling `on_epoch(epoch, loss)` after each epoch (1-based). Training counts every
/// rating as an interaction ([`Feedback::all_positive`]): the movie factors describe what
/// people watched together, and a dislike acts where it is about one user, in that user's
/// fold-in ([`crate::model::ItemModel::new`] folds in with [`AlsParams::feedback`]). Measured
/// over the five split seeds of MovieLens 100K (`examples/dislike_variants.rs`), P@10 /
/// NDCG@10: dislikes nowhere 0.4293 / 0.4939, in fold-in only 0.4279 / 0.4926, in training
/// and fold-in 0.4269 / 0.4916.
pub fn train(data: &Interactions, params: &AlsParams, on_epoch: impl FnMut(usize, f64)) -> Factors {
    train_with(data, params, Feedback::all_positive(params.alpha), on_epoch)
}

/// [`train`] with an explicit rating mapping (`params.alpha` is then unused).
pub fn train_with(
    data: &Interactions,
    params: &AlsParams,
    feedback: Feedback,
    mut on_epoch: impl FnMut(usize, f64),
) -> Factors {
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let normal = Normal::new(0.0f32, 0.01).expect("valid normal");
    let k = params.factors;
    let users = Array2::from_shape_simple_fn((data.n_users, k), || normal.sample(&mut rng));
    let items = Array2::from_shape_simple_fn((data.n_items, k), || normal.sample(&mut rng));
    let mut f = Factors { users, items };
    for epoch in 1..=params.epochs {
        f.users = half_step(&f.items, &data.by_user, params.regularisation(), feedback);
        f.items = half_step(&f.users, &data.by_item, params.regularisation(), feedback);
        on_epoch(epoch, loss_with(data, &f, params, feedback));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Interactions {
        // Two taste groups: users 0–9 like items 0–4, users 10–19 like items 5–9.
        let mut triples = Vec::new();
        for u in 0..20u32 {
            let base = if u < 10 { 0 } else { 5 };
            for i in 0..4u32 {
                triples.push((u, base + (u + i) % 5, 4.0));
            }
        }
        Interactions::from_triples(20, 10, &triples)
    }

    #[test]
    fn feedback_maps_likes_and_dislikes() {
        let f = Feedback {
            alpha: 0.5,
            negative_max: 2.0,
            negative_weight: 2.0,
        };
        assert_eq!(f.weigh(4.0), (1.0, 3.0));
        assert_eq!(f.weigh(2.5), (1.0, 2.25));
        assert_eq!(f.weigh(2.0), (0.0, 2.0));
        assert_eq!(f.weigh(1.0), (0.0, 3.0));
        assert_eq!(Feedback::all_positive(0.5).weigh(1.0), (1.0, 1.5));
        assert_eq!(Feedback::new(0.5).negative_max, NEGATIVE_MAX);
    }

    #[test]
    fn a_dislike_pushes_its_group_down_where_a_like_pushes_it_up() {
        let params = AlsParams {
            factors: 4,
            epochs: 8,
            reg: 0.1,
            reg_exponent: 0.0,
            alpha: 5.0,
            seed: 1,
        };
        let f = train(&toy(), &params, |_, _| {});
        let gram = f.items.t().dot(&f.items);
        let score = |row: &[(u32, f32)], item: usize| {
            let x = solve_row(
                &gram.view(),
                &f.items.view(),
                row,
                params.regularisation(),
                5.0,
            );
            ndarray::ArrayView1::from(&x).dot(&f.items.row(item))
        };
        // A user who likes both groups (items 0 and 7), then rates item 5 of group two: a like
        // raises item 6 of that group, a dislike (p = 0 with confidence) lowers it.
        let liked = score(&[(0, 5.0), (7, 5.0), (5, 5.0)], 6);
        let disliked = score(&[(0, 5.0), (7, 5.0), (5, 1.0)], 6);
        let neither = score(&[(0, 5.0), (7, 5.0)], 6);
        assert!(
            liked > neither && disliked < neither,
            "{liked} {neither} {disliked}"
        );
    }

    #[test]
    fn deterministic_for_a_seed() {
        let params = AlsParams {
            factors: 8,
            epochs: 3,
            reg: 0.1,
            reg_exponent: 0.5,
            alpha: 2.0,
            seed: 7,
        };
        let a = train(&toy(), &params, |_, _| {});
        let b = train(&toy(), &params, |_, _| {});
        assert_eq!(a.items, b.items);
        assert_eq!(a.users, b.users);
        let c = train(&toy(), &AlsParams { seed: 8, ..params }, |_, _| {});
        assert_ne!(a.items, c.items);
    }

    #[test]
    fn loss_decreases_and_groups_separate() {
        let params = AlsParams {
            factors: 4,
            epochs: 8,
            reg: 0.1,
            reg_exponent: 0.0,
            alpha: 5.0,
            seed: 1,
        };
        let mut losses = Vec::new();
        let f = train(&toy(), &params, |_, l| losses.push(l));
        assert!(losses.windows(2).all(|w| w[1] <= w[0] + 1e-6), "{losses:?}");
        // User 0 scores its group's unseen item above the other group's items.
        let x = f.users.row(0);
        let own: f32 = x.dot(&f.items.row(4));
        let other = (5..10)
            .map(|i| x.dot(&f.items.row(i)))
            .fold(f32::MIN, f32::max);
        assert!(own > other, "{own} vs {other}");
    }
}
