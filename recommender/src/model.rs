//! The served model: item factors plus what fold-in needs. A user's vector is never stored
//! in the model: it is solved from the user's current ratings against the item factors (the
//! ALS user step), so a rating made after training counts at once, without retraining. The
//! step's normal equations can be kept per user ([`UserEquations`]) and updated rating by
//! rating ([`ItemModel::rate`], [`ItemModel::unrate`]) instead of rebuilt.

use crate::als::{Feedback, Regularisation, rating_sums, solve_equations, solve_row_with};
use crate::screen::QuantizedItems;
use crate::user_step::UserEquations;
use ndarray::{Array1, Array2, ArrayView1};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Item factors and the fold-in parameters.
#[derive(Debug, Clone)]
pub struct ItemModel {
    items: Array2<f32>,
    gram: Array2<f32>,
    /// `gram` in f64, row-major: what every solve starts from.
    gram64: Vec<f64>,
    reg: Regularisation,
    feedback: Feedback,
    /// The factors as 8-bit codes, to find the top N reading a quarter of the bytes
    /// ([`crate::screen`]); `None` if a factor is not finite.
    quantized: Option<QuantizedItems>,
    /// Each item's Euclidean norm, for cosine similarities.
    norms: Vec<f32>,
}

impl ItemModel {
    /// A model from trained item factors (`n_items × k`) and the training's regularisation
    /// and confidence scale (fold-in solves the same user step).
    /// Ratings map to preference and confidence by [`Feedback::new`]`(alpha)`, as in
    /// [`crate::als::train`].
    pub fn new(items: Array2<f32>, reg: Regularisation, alpha: f32) -> Self {
        Self::with_feedback(items, reg, Feedback::new(alpha))
    }

    /// [`ItemModel::new`] with an explicit rating mapping (the one the factors trained with).
    pub fn with_feedback(items: Array2<f32>, reg: Regularisation, feedback: Feedback) -> Self {
        let gram = items.t().dot(&items);
        let gram64 = gram.iter().map(|v| *v as f64).collect();
        let quantized = QuantizedItems::new(&items);
        let norms = items.rows().into_iter().map(|r| r.dot(&r).sqrt()).collect();
        ItemModel {
            items,
            gram,
            gram64,
            reg,
            feedback,
            quantized,
            norms,
        }
    }

    /// The rating mapping of fold-in.
    pub fn feedback(&self) -> Feedback {
        self.feedback
    }

    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.items.nrows()
    }

    /// Latent factors.
    pub fn factors(&self) -> usize {
        self.items.ncols()
    }

    /// The item factors.
    pub fn items(&self) -> &Array2<f32> {
        &self.items
    }

    /// Each item's Euclidean norm (the square root of its factors' dot product with
    /// themselves), computed once when the model is made.
    pub fn norms(&self) -> &[f32] {
        &self.norms
    }

    /// The item factors as 8-bit codes, if every factor is finite.
    pub(crate) fn quantized(&self) -> Option<&QuantizedItems> {
        self.quantized.as_ref()
    }

    /// A user's vector from their ratings `(item index, rating)`.
    pub fn fold_in(&self, ratings: &[(u32, f32)]) -> Array1<f32> {
        Array1::from(solve_row_with(
            &self.gram.view(),
            &self.items.view(),
            ratings,
            self.reg,
            self.feedback,
        ))
    }

    /// The normal equations of a user with `ratings` `(item index, rating)`, built from
    /// scratch: the same sums, in the same arithmetic, as [`ItemModel::fold_in`].
    pub fn equations(&self, ratings: &[(u32, f32)]) -> UserEquations {
        let (m, b) = rating_sums(&self.items.view(), ratings, self.feedback);
        UserEquations::from_sums(self.factors(), ratings.len(), m, b)
    }

    /// Adds a rating of `item` to `equations` (a new rating; for a replaced one, [`unrate`]
    /// the old value first). O(k²).
    ///
    /// [`unrate`]: ItemModel::unrate
    pub fn rate(&self, equations: &mut UserEquations, item: u32, rating: f32) {
        self.update(equations, item, rating, 1.0);
    }

    /// Removes a rating of `item` that `equations` holds, with the value it was added with.
    pub fn unrate(&self, equations: &mut UserEquations, item: u32, rating: f32) {
        self.update(equations, item, rating, -1.0);
    }

    fn update(&self, equations: &mut UserEquations, item: u32, rating: f32, sign: f64) {
        let y = self.items.row(item as usize);
        let (p, c) = self.feedback.weigh(rating);
        match y.as_slice() {
            Some(y) => equations.update(y, p, c, sign),
            None => equations.update(&y.to_vec(), p, c, sign),
        }
    }

    /// The user's vector from their equations: what [`ItemModel::fold_in`] gives for the
    /// ratings they hold.
    pub fn solve(&self, equations: &UserEquations) -> Array1<f32> {
        assert_eq!(
            equations.factors(),
            self.factors(),
            "equations of another model"
        );
        Array1::from(solve_equations(
            &self.gram64,
            equations.m(),
            equations.b().to_vec(),
            equations.len(),
            self.reg,
        ))
    }

    /// Every item's score for `user`.
    pub fn scores(&self, user: ArrayView1<f32>) -> Array1<f32> {
        self.items.dot(&user)
    }

    /// Similarity of two items (dot product of their factors), for explanations.
    pub fn item_affinity(&self, a: usize, b: usize) -> f32 {
        self.items.row(a).dot(&self.items.row(b))
    }

    /// The `n` best `(item, score)` by score, best first, never an item in `exclude` nor a
    /// score that is not finite; of equal scores the lower item first.
    ///
    /// One pass keeping the best `n` so far in a heap, worst on top: an item is compared with
    /// that worst one and nearly all stop there. At 62,000 movies it took a tenth of an
    /// uncached recommendation when it copied the scores and selected among all of them.
    pub fn top_n(scores: &Array1<f32>, exclude: &[u32], n: usize) -> Vec<(u32, f32)> {
        let mut excluded = exclude.to_vec();
        excluded.sort_unstable();
        let mut excluded = excluded.into_iter().peekable();
        let allowed = scores.iter().enumerate().filter_map(|(item, &score)| {
            let item = item as u32;
            while excluded.next_if(|&e| e < item).is_some() {}
            (excluded.next_if_eq(&item).is_none() && score.is_finite()).then_some((item, score))
        });
        ItemModel::best_n(allowed, n)
    }

    /// The `n` best of `scored` `(item, score)`, best first; of equal scores the lower item
    /// first. Every score must be finite.
    pub(crate) fn best_n(scored: impl Iterator<Item = (u32, f32)>, n: usize) -> Vec<(u32, f32)> {
        if n == 0 {
            return Vec::new();
        }
        let mut best: BinaryHeap<Reverse<Ranked>> = BinaryHeap::with_capacity(n + 1);
        for (item, score) in scored {
            let ranked = Ranked { score, item };
            if best.len() < n {
                best.push(Reverse(ranked));
            } else if best.peek().is_some_and(|Reverse(worst)| ranked > *worst) {
                best.pop();
                best.push(Reverse(ranked));
            }
        }
        best.into_sorted_vec()
            .into_iter()
            .map(|Reverse(ranked)| (ranked.item, ranked.score))
            .collect()
    }
}

/// An item and its score, ordered from worse to better: by score, then the lower item better.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ranked {
    score: f32,
    item: u32,
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.item.cmp(&self.item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_is_a_full_sort_cut_to_n() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for round in 0..200 {
            let len = rng.random_range(0..300);
            // Few distinct values: many ties.
            let scores: Array1<f32> = (0..len)
                .map(|_| match rng.random_range(0..20) {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    _ => rng.random_range(0..8) as f32 / 4.0,
                })
                .collect();
            let exclude: Vec<u32> = (0..rng.random_range(0..40))
                .map(|_| rng.random_range(0..len.max(1) as u32 + 5))
                .collect();
            let n = rng.random_range(0..40);
            let mut expected: Vec<(u32, f32)> = scores
                .iter()
                .enumerate()
                .map(|(i, s)| (i as u32, *s))
                .filter(|(i, s)| s.is_finite() && !exclude.contains(i))
                .collect();
            expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            expected.truncate(n);
            assert_eq!(
                ItemModel::top_n(&scores, &exclude, n),
                expected,
                "round {round}"
            );
        }
    }

    #[test]
    fn top_n_skips_excluded_and_orders() {
        let scores = Array1::from(vec![0.1, 0.9, 0.5, 0.7, 0.3]);
        assert_eq!(ItemModel::top_n(&scores, &[1], 2), vec![(3, 0.7), (2, 0.5)]);
        assert_eq!(ItemModel::top_n(&scores, &[], 10).len(), 5);
        assert!(ItemModel::top_n(&scores, &[0, 1, 2, 3, 4], 3).is_empty());
    }

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_model(rng: &mut ChaCha8Rng, n_items: usize, k: usize) -> ItemModel {
        let items = Array2::from_shape_simple_fn((n_items, k), || rng.random_range(-0.3f32..0.3));
        ItemModel::new(
            items,
            Regularisation {
                lambda: rng.random_range(0.5..5.0),
                exponent: rng.random_range(0.0..1.0),
            },
            rng.random_range(0.25..2.0),
        )
    }

    fn random_rating(rng: &mut ChaCha8Rng) -> f32 {
        rng.random_range(1..=10u8) as f32 / 2.0
    }

    /// The largest difference between two vectors, relative to the larger norm (at least 1).
    fn relative_gap(a: &Array1<f32>, b: &Array1<f32>) -> f32 {
        let norm = a.dot(a).sqrt().max(b.dot(b).sqrt()).max(1.0);
        let gap = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        gap / norm
    }

    /// Float tolerance between an updated and a from-scratch solve: the from-scratch sums are
    /// accumulated in f32, the updated ones in f64.
    const TOLERANCE: f32 = 1e-4;

    #[test]
    fn equations_from_scratch_solve_to_fold_in_exactly() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let model = random_model(&mut rng, 40, 12);
        let ratings: Vec<(u32, f32)> = (0..15).map(|i| (i * 2, random_rating(&mut rng))).collect();
        assert_eq!(
            model.solve(&model.equations(&ratings)),
            model.fold_in(&ratings)
        );
        assert!(model.solve(&model.equations(&[])).iter().all(|v| *v == 0.0));
    }

    #[test]
    fn adding_a_rating_equals_folding_in_from_scratch() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let model = random_model(&mut rng, 30, 16);
        let mut ratings = vec![(3, 4.0), (7, 2.5), (11, 5.0)];
        let mut equations = model.equations(&ratings);
        model.rate(&mut equations, 20, 3.5);
        ratings.push((20, 3.5));
        assert_eq!(equations.len(), 4);
        let gap = relative_gap(&model.solve(&equations), &model.fold_in(&ratings));
        assert!(gap < TOLERANCE, "{gap}");
    }

    #[test]
    fn replacing_a_rating_equals_folding_in_from_scratch() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let model = random_model(&mut rng, 30, 16);
        let mut ratings = vec![(3, 4.0), (7, 2.5), (11, 5.0)];
        let mut equations = model.equations(&ratings);
        model.unrate(&mut equations, 7, 2.5);
        model.rate(&mut equations, 7, 0.5);
        ratings[1] = (7, 0.5);
        assert_eq!(equations.len(), 3, "a replaced rating is not one more");
        let gap = relative_gap(&model.solve(&equations), &model.fold_in(&ratings));
        assert!(gap < TOLERANCE, "{gap}");
    }

    /// Property: for random models (8 to 64 factors) and random runs of new and replaced
    /// ratings, starting from none or from a history, the updated equations solve to the
    /// from-scratch fold-in of the ratings held, after every step.
    #[test]
    fn any_run_of_updates_equals_folding_in_from_scratch() {
        for seed in 0..40u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(100 + seed);
            let k = [8, 16, 32, 64][seed as usize % 4];
            let n_items = rng.random_range(k..4 * k + 40);
            let model = random_model(&mut rng, n_items, k);
            let history = rng.random_range(0..n_items / 2);
            let mut ratings: Vec<(u32, f32)> = Vec::new();
            for item in 0..n_items as u32 {
                if ratings.len() < history && rng.random_bool(0.5) {
                    ratings.push((item, random_rating(&mut rng)));
                }
            }
            let mut equations = model.equations(&ratings);
            for step in 0..rng.random_range(1..60) {
                let item = rng.random_range(0..n_items as u32);
                let rating = random_rating(&mut rng);
                match ratings.iter_mut().find(|(i, _)| *i == item) {
                    Some(held) => {
                        model.unrate(&mut equations, item, held.1);
                        held.1 = rating;
                    }
                    None => ratings.push((item, rating)),
                }
                model.rate(&mut equations, item, rating);
                assert_eq!(equations.len(), ratings.len());
                let gap = relative_gap(&model.solve(&equations), &model.fold_in(&ratings));
                assert!(
                    gap < TOLERANCE,
                    "seed {seed}, k {k}, step {step}: {gap} apart"
                );
            }
        }
    }

    #[test]
    fn fold_in_of_no_ratings_is_zero() {
        let model = ItemModel::new(
            Array2::from_elem((3, 2), 0.5),
            Regularisation {
                lambda: 0.1,
                exponent: 0.5,
            },
            1.0,
        );
        assert!(model.fold_in(&[]).iter().all(|v| *v == 0.0));
    }
}
