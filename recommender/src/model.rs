//! The served model: item factors plus what fold-in needs. A user's vector is never stored
//! in the model: it is solved from the user's current ratings against the item factors (the
//! ALS user step), so a rating made after training counts at once, without retraining.

use crate::als::{Regularisation, solve_row};
use ndarray::{Array1, Array2, ArrayView1};

/// Item factors and the fold-in parameters.
#[derive(Debug, Clone)]
pub struct ItemModel {
    items: Array2<f32>,
    gram: Array2<f32>,
    reg: Regularisation,
    alpha: f32,
}

impl ItemModel {
    /// A model from trained item factors (`n_items × k`) and the training's regularisation
    /// and confidence scale (fold-in solves the same user step).
    pub fn new(items: Array2<f32>, reg: Regularisation, alpha: f32) -> Self {
        let gram = items.t().dot(&items);
        ItemModel {
            items,
            gram,
            reg,
            alpha,
        }
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

    /// A user's vector from their ratings `(item index, rating)`.
    pub fn fold_in(&self, ratings: &[(u32, f32)]) -> Array1<f32> {
        Array1::from(solve_row(
            &self.gram.view(),
            &self.items.view(),
            ratings,
            self.reg,
            self.alpha,
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

    /// The `n` best `(item, score)` by score, best first, never an item in `exclude`.
    pub fn top_n(scores: &Array1<f32>, exclude: &[u32], n: usize) -> Vec<(u32, f32)> {
        let mut scores = scores.to_vec();
        for &i in exclude {
            if let Some(s) = scores.get_mut(i as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
        let mut candidates: Vec<u32> = (0..scores.len() as u32)
            .filter(|i| scores[*i as usize].is_finite())
            .collect();
        let by_score = |a: &u32, b: &u32| {
            scores[*b as usize]
                .total_cmp(&scores[*a as usize])
                .then(a.cmp(b))
        };
        if candidates.len() > n {
            candidates.select_nth_unstable_by(n, by_score);
            candidates.truncate(n);
        }
        candidates.sort_unstable_by(by_score);
        candidates
            .into_iter()
            .map(|i| (i, scores[i as usize]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_skips_excluded_and_orders() {
        let scores = Array1::from(vec![0.1, 0.9, 0.5, 0.7, 0.3]);
        assert_eq!(ItemModel::top_n(&scores, &[1], 2), vec![(3, 0.7), (2, 0.5)]);
        assert_eq!(ItemModel::top_n(&scores, &[], 10).len(), 5);
        assert!(ItemModel::top_n(&scores, &[0, 1, 2, 3, 4], 3).is_empty());
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
