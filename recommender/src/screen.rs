//! The exact top N of every item's score, found through 8-bit factors.
//!
//! Scoring every movie reads every movie's factors once: at the MovieLens-25M shape 62,000 ×
//! 64 f32, 15.9 MB a recommendation, and the f32 product already runs at about 80% of the
//! bandwidth one core streams memory at. Only fewer bytes make it faster. So the factors are
//! also held as 8-bit integers with one scale per item ([`QuantizedItems`]: 64 bytes, one
//! cache line, a movie at 64 factors) and the user's vector as 16-bit integers; one integer
//! dot product per item gives an approximate score and a proven bound on its error
//! ([`Approximate`]). The top N is then found without approximating anything:
//!
//! - `T` is the N-th largest lower bound (approximate score minus its bound) among the items
//!   that may be picked. At least N items score at least `T`.
//! - An item whose upper bound is below `T` is beaten by those N and cannot be in the top N,
//!   not even on a tie; every other item (a few more than N) is scored again in f32 exactly as
//!   the full product scores it, and the top N is taken among them.
//!
//! So the result is the full product's top N, item for item and bit for bit
//! (`screened_top_n_is_the_full_top_n` checks it against [`ItemModel::top_n`] over random
//! models, near ties and exclusions).
//!
//! The error bound of item `i` with scale `s_i` (its largest factor magnitude over 127), for a
//! user vector `u` quantised with step `t` (its largest magnitude over the 16-bit range), is
//! `s_i · (‖u‖₁/2 + 127·k·t/2)` for the two roundings, plus the f32 rounding of the exact
//! product (at most `k` units in the last place of `Σ|v·u| ≤ 127·s_i·‖u‖₁`) and of the
//! additions; [`Approximate::bound`] adds a margin over all of it.

use crate::model::ItemModel;
use multiversion::multiversion;
use ndarray::{Array2, ArrayView1};

/// The largest 8-bit code of a factor: the codes are symmetric, -127 to 127.
const ITEM_LEVELS: f32 = 127.0;
/// f32's unit roundoff (half an ulp of 1).
const UNIT_ROUNDOFF: f32 = f32::EPSILON / 2.0;

/// The item factors as 8-bit codes with a scale per item: `factor ≈ scale · code`.
#[derive(Debug, Clone)]
pub struct QuantizedItems {
    /// `n_items × k`, row-major.
    codes: Vec<i8>,
    /// Per item: its largest factor magnitude over [`ITEM_LEVELS`].
    scales: Vec<f32>,
    k: usize,
}

impl QuantizedItems {
    /// The codes of `items`; `None` when a factor is not finite (then only the f32 product
    /// scores them) or there are no factors.
    pub fn new(items: &Array2<f32>) -> Option<Self> {
        let k = items.ncols();
        if k == 0 || items.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut codes = Vec::with_capacity(items.len());
        let mut scales = Vec::with_capacity(items.nrows());
        for row in items.rows() {
            let largest = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let scale = largest / ITEM_LEVELS;
            scales.push(scale);
            codes.extend(row.iter().map(|v| match scale > 0.0 {
                true => (v / scale).round().clamp(-ITEM_LEVELS, ITEM_LEVELS) as i8,
                false => 0,
            }));
        }
        Some(QuantizedItems { codes, scales, k })
    }

    /// Every item's approximate score for `user`, plus `extra[i]` when given (the same f32
    /// addition [`ItemModel::screened_top_n`] makes to the exact score). `None` when the
    /// vector is not finite or does not match the factors (nor `extra` the items): then score
    /// with the f32 product.
    pub fn approximate(&self, user: ArrayView1<f32>, extra: Option<&[f32]>) -> Option<Approximate> {
        if user.len() != self.k
            || user.iter().any(|v| !v.is_finite())
            || extra.is_some_and(|extra| extra.len() != self.scales.len())
        {
            return None;
        }
        let largest = user.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        // The 16-bit range, narrowed so that 127 · range · k fits an i32 sum.
        let range = (32_767.0f64)
            .min(f64::from(i32::MAX) / (127.0 * self.k as f64))
            .floor() as f32;
        let step = largest / range;
        let codes: Vec<i16> = user
            .iter()
            .map(|v| match step > 0.0 {
                true => (v / step).round().clamp(-range, range) as i16,
                false => 0,
            })
            .collect();
        let mut dots = vec![0i32; self.scales.len()];
        integer_dots(&self.codes, self.k, &codes, &mut dots);
        let scores: Vec<f32> = match extra {
            None => dots
                .iter()
                .zip(&self.scales)
                .map(|(&dot, &scale)| (scale * step) * dot as f32)
                .collect(),
            Some(extra) => dots
                .iter()
                .zip(&self.scales)
                .zip(extra)
                .map(|((&dot, &scale), &extra)| (scale * step) * dot as f32 + extra)
                .collect(),
        };
        let l1: f32 = user.iter().map(|v| v.abs()).sum();
        let k = self.k as f32;
        // Per unit of an item's scale: the two roundings (item codes, user codes), the exact
        // product's own f32 rounding (k ulps of 127·‖u‖₁), the approximate one's (a few ulps,
        // within the same term), then 1% more for the bound's own arithmetic.
        let spread = (l1 * (0.5 + 2.0 * UNIT_ROUNDOFF * ITEM_LEVELS * (k + 4.0))
            + ITEM_LEVELS * k * step / 2.0)
            * 1.01;
        Some(Approximate { scores, spread })
    }
}

/// The approximate scores of every item for one user, each within [`Approximate::bound`] of
/// the exact one.
#[derive(Debug, Clone)]
pub struct Approximate {
    scores: Vec<f32>,
    /// An item's bound per unit of its scale.
    spread: f32,
}

impl Approximate {
    /// The approximate scores, by item.
    pub fn scores(&self) -> &[f32] {
        &self.scores
    }

    /// How far the exact score (with the same `extra`) of an item with scale `scale` and
    /// approximate score `score` can be from `score` at most: the quantisation's bound, and a
    /// few ulps of the score for the additions.
    fn bound(&self, scale: f32, score: f32) -> f32 {
        scale * self.spread + 4.0 * UNIT_ROUNDOFF * score.abs()
    }
}

impl ItemModel {
    /// The approximate scores of every item for `user` (plus `extra[i]`), for
    /// [`ItemModel::screened_top_n`]; `None` when the model scores only in f32 (a non-finite
    /// factor or vector).
    pub fn approximate(&self, user: ArrayView1<f32>, extra: Option<&[f32]>) -> Option<Approximate> {
        self.quantized()?.approximate(user, extra)
    }

    /// The same as [`ItemModel::top_n`] of `scores(user)` (each plus `extra[i]` when given),
    /// found from `approximate` (made by [`ItemModel::approximate`] for the same `user` and
    /// `extra`): only the items that can be in the top are scored in f32.
    pub fn screened_top_n(
        &self,
        approximate: &Approximate,
        user: ArrayView1<f32>,
        extra: Option<&[f32]>,
        exclude: &[u32],
        n: usize,
    ) -> Vec<(u32, f32)> {
        let Some(quantized) = self.quantized() else {
            let mut scores = self.scores(user);
            if let Some(extra) = extra {
                scores += &ArrayView1::from(extra);
            }
            return ItemModel::top_n(&scores, exclude, n);
        };
        if n == 0 {
            return Vec::new();
        }
        let mut excluded = exclude.to_vec();
        excluded.sort_unstable();
        let bounds: Vec<f32> = approximate
            .scores
            .iter()
            .zip(&quantized.scales)
            .map(|(&score, &scale)| approximate.bound(scale, score))
            .collect();
        // T: the n-th largest lower bound among the items that may be picked (-inf if fewer).
        let mut skip = Exclusions::new(&excluded);
        let lower = approximate
            .scores
            .iter()
            .zip(&bounds)
            .enumerate()
            .filter(|&(item, _)| !skip.excludes(item as u32))
            .map(|(item, (&score, &bound))| (item as u32, score - bound))
            .filter(|(_, low)| low.is_finite());
        let threshold = match ItemModel::best_n(lower, n) {
            best if best.len() == n => best[n - 1].1,
            _ => f32::NEG_INFINITY,
        };
        let items = self.items();
        let mut skip = Exclusions::new(&excluded);
        let candidates = approximate
            .scores
            .iter()
            .zip(&bounds)
            .enumerate()
            // Every item that may reach the threshold; one whose approximate score is not
            // finite (no upper bound) is decided by its exact score.
            .filter(|&(_, (&score, &bound))| {
                let upper = score + bound;
                upper >= threshold || !upper.is_finite()
            })
            .filter(|&(item, _)| !skip.excludes(item as u32))
            .map(|(item, _)| {
                let dot = items.row(item).dot(&user);
                let score = match extra {
                    Some(extra) => dot + extra[item],
                    None => dot,
                };
                (item as u32, score)
            })
            .filter(|(_, score)| score.is_finite());
        ItemModel::best_n(candidates, n)
    }
}

/// Sorted excluded items, asked about in increasing item order.
struct Exclusions<'a> {
    sorted: std::iter::Peekable<std::slice::Iter<'a, u32>>,
}

impl<'a> Exclusions<'a> {
    fn new(sorted: &'a [u32]) -> Self {
        Exclusions {
            sorted: sorted.iter().peekable(),
        }
    }

    /// Whether `item` is excluded; items must come in increasing order.
    fn excludes(&mut self, item: u32) -> bool {
        while self.sorted.next_if(|&&e| e < item).is_some() {}
        self.sorted.peek().is_some_and(|&&e| e == item)
    }
}

/// `out[i]` = the dot product of code row `i` (of `k`) with `user`, in i32 (exact: the
/// caller's ranges keep every sum within it). Compiled for the CPU's vector extensions where
/// it has them, picked at run time.
#[multiversion(targets("x86_64+avx2", "x86_64+sse4.1", "aarch64+neon"))]
fn integer_dots(codes: &[i8], k: usize, user: &[i16], out: &mut [i32]) {
    for (row, out) in codes.chunks_exact(k).zip(out.iter_mut()) {
        *out = row
            .iter()
            .zip(user)
            .map(|(&c, &u)| i32::from(c) * i32::from(u))
            .sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::als::Regularisation;
    use ndarray::Array1;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn model(items: Array2<f32>) -> ItemModel {
        ItemModel::new(
            items,
            Regularisation {
                lambda: 1.0,
                exponent: 0.5,
            },
            1.0,
        )
    }

    /// The full product's top n, as serving scored before screening.
    fn full_top_n(
        model: &ItemModel,
        user: &Array1<f32>,
        extra: Option<&[f32]>,
        exclude: &[u32],
        n: usize,
    ) -> Vec<(u32, f32)> {
        let mut scores = model.scores(user.view());
        if let Some(extra) = extra {
            for (score, extra) in scores.iter_mut().zip(extra) {
                *score += extra;
            }
        }
        ItemModel::top_n(&scores, exclude, n)
    }

    #[test]
    fn a_row_product_is_the_full_products_entry_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for k in [1, 7, 16, 64, 100, 128] {
            let items = Array2::from_shape_simple_fn((300, k), || rng.random_range(-1.0f32..1.0));
            let user: Array1<f32> = (0..k).map(|_| rng.random_range(-2.0f32..2.0)).collect();
            let full = items.dot(&user);
            for (i, row) in items.rows().into_iter().enumerate() {
                assert_eq!(row.dot(&user).to_bits(), full[i].to_bits(), "k {k} row {i}");
            }
        }
    }

    #[test]
    fn screened_top_n_is_the_full_top_n() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for round in 0..300 {
            let n_items = rng.random_range(1..2_000);
            let k = [4, 16, 64, 65, 128][rng.random_range(0..5)];
            let scale = [1e-3f32, 0.3, 50.0][rng.random_range(0..3)];
            let mut items =
                Array2::from_shape_simple_fn((n_items, k), || rng.random_range(-scale..scale));
            // Near ties: copies of a few rows, some nudged by an ulp or a little more, and
            // rows of zeros.
            for _ in 0..rng.random_range(0..n_items / 2 + 1) {
                let (from, to) = (rng.random_range(0..n_items), rng.random_range(0..n_items));
                let row = items.row(from).to_owned();
                let mut target = items.row_mut(to);
                target.assign(&row);
                match rng.random_range(0..4) {
                    0 => target[0] = f32::from_bits(target[0].to_bits() + 1),
                    1 => target[k - 1] *= 1.0 + 1e-4,
                    2 => target.fill(0.0),
                    _ => {}
                }
            }
            let model = model(items);
            let user: Array1<f32> = (0..k)
                .map(|_| match rng.random_range(0..10) {
                    0 => 0.0,
                    _ => rng.random_range(-2.0f32..2.0),
                })
                .collect();
            let extra: Option<Vec<f32>> = rng.random_bool(0.5).then(|| {
                // Few distinct values, as the genre term by genre set.
                let terms: Vec<f32> = (0..5).map(|_| rng.random_range(0.0f32..0.3)).collect();
                (0..n_items)
                    .map(|_| terms[rng.random_range(0..5)])
                    .collect()
            });
            let exclude: Vec<u32> = (0..rng.random_range(0..n_items.min(300) + 1))
                .map(|_| rng.random_range(0..n_items as u32 + 3))
                .collect();
            let n = [0, 1, 10, 100, n_items, n_items + 5][rng.random_range(0..6)];
            let approximate = model
                .approximate(user.view(), extra.as_deref())
                .expect("finite");
            assert_eq!(
                model.screened_top_n(&approximate, user.view(), extra.as_deref(), &exclude, n),
                full_top_n(&model, &user, extra.as_deref(), &exclude, n),
                "round {round}: {n_items} items, k {k}, n {n}"
            );
        }
    }

    #[test]
    fn the_bound_holds_for_every_item() {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        for _ in 0..50 {
            let k = rng.random_range(1..200);
            let items = Array2::from_shape_simple_fn((500, k), || rng.random_range(-0.5f32..0.5));
            let user: Array1<f32> = (0..k).map(|_| rng.random_range(-3.0f32..3.0)).collect();
            let quantized = QuantizedItems::new(&items).unwrap();
            let approximate = quantized.approximate(user.view(), None).unwrap();
            let exact = items.dot(&user);
            for item in 0..500 {
                let gap = (exact[item] - approximate.scores()[item]).abs();
                let bound = approximate.bound(quantized.scales[item], approximate.scores()[item]);
                assert!(gap <= bound, "item {item}");
            }
        }
    }

    #[test]
    fn not_finite_factors_or_vectors_score_in_f32() {
        let mut items = Array2::from_elem((3, 2), 0.5f32);
        assert!(QuantizedItems::new(&items).is_some());
        let model = model(items.clone());
        let user = Array1::from(vec![f32::NAN, 1.0]);
        assert!(model.approximate(user.view(), None).is_none());
        items[[1, 1]] = f32::INFINITY;
        assert!(QuantizedItems::new(&items).is_none());
    }
}
