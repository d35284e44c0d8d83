//! The served model's kind and the blend of ALS with EASE: what evaluation measures and what
//! serving computes, in one place so the two cannot drift.
//!
//! On a catalogue of at most [`DENSE_ITEM_LIMIT`] items the model is ALS plus EASE
//! ([`ModelKind::AlsEase`]); above it the dense EASE matrix is too large and the model is ALS
//! alone ([`ModelKind::Als`]). The two score vectors live on different scales (ALS predicts a
//! preference near 0–1, EASE a weighted sum of item weights), so each is standardised over the
//! items the user has not rated (mean 0, standard deviation 1) before the weighted sum
//! `w·ALS + (1 − w)·EASE`. Only the order of unrated items matters downstream; rated items keep
//! their standardised value, and are excluded by [`crate::model::ItemModel::top_n`].

use crate::ease::{Ease, EaseParams};
use crate::model::ItemModel;
use ndarray::{Array1, ArrayView1};
use serde::{Deserialize, Serialize};

/// The largest catalogue that gets the dense EASE matrix (4·n² bytes: 400 MB at the limit).
pub const DENSE_ITEM_LIMIT: usize = 10_000;

/// Which model serves a catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelKind {
    /// Matrix factorisation only.
    Als,
    /// ALS blended with EASE.
    AlsEase,
}

impl ModelKind {
    /// A short name, for `model_version` and reports.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Als => "als",
            ModelKind::AlsEase => "als+ease",
        }
    }
}

/// The kind of model for a catalogue of `n_items`: the blend up to [`DENSE_ITEM_LIMIT`].
pub fn kind_for(n_items: usize) -> ModelKind {
    if n_items <= DENSE_ITEM_LIMIT {
        ModelKind::AlsEase
    } else {
        ModelKind::Als
    }
}

/// Hyper-parameters of the blend (the ALS part has its own [`crate::als::AlsParams`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BlendParams {
    /// The EASE part.
    pub ease: EaseParams,
    /// `w`, the weight of the standardised ALS scores (EASE gets `1 − w`).
    pub als_weight: f32,
}

impl Default for BlendParams {
    /// The values chosen on MovieLens 100K's validation folds.
    fn default() -> Self {
        BlendParams {
            ease: EaseParams::default(),
            als_weight: 0.85,
        }
    }
}

/// The mean and standard deviation (1 when there is no spread) of `scores` over the items not
/// in `seen`.
fn spread(scores: ArrayView1<f32>, seen: &[u32]) -> (f64, f64) {
    let mut unseen = vec![true; scores.len()];
    for &i in seen {
        if let Some(slot) = unseen.get_mut(i as usize) {
            *slot = false;
        }
    }
    let (mut n, mut sum, mut sq) = (0usize, 0.0f64, 0.0f64);
    for (s, keep) in scores.iter().zip(&unseen) {
        if *keep {
            n += 1;
            sum += *s as f64;
            sq += (*s as f64) * (*s as f64);
        }
    }
    let n = n.max(1) as f64;
    let mean = sum / n;
    let sd = (sq / n - mean * mean).max(0.0).sqrt();
    (mean, if sd > 1e-12 { sd } else { 1.0 })
}

/// `scores` standardised over the items not in `seen`: `(s − mean) / sd` (sd 1 if constant).
pub fn standardise(scores: ArrayView1<f32>, seen: &[u32]) -> Array1<f32> {
    let (mean, sd) = spread(scores, seen);
    scores.mapv(|s| ((s as f64 - mean) / sd) as f32)
}

/// `w·standardise(als) + (1 − w)·standardise(ease)`, both over the items not in `seen`.
pub fn combine(
    als: ArrayView1<f32>,
    ease: ArrayView1<f32>,
    seen: &[u32],
    als_weight: f32,
) -> Array1<f32> {
    let a = standardise(als, seen);
    let e = standardise(ease, seen);
    a * als_weight + e * (1.0 - als_weight)
}

/// Every item's score for a user, as served: `user` is their ALS vector (from
/// [`ItemModel::fold_in`] or [`ItemModel::solve`]) and `ratings` `(item index, rating)` what
/// they rated. Without `ease` (a catalogue above [`DENSE_ITEM_LIMIT`]) the ALS scores as they
/// are; with it, the blend at `als_weight` ([`combine`]) mapped back onto ALS's scale (its mean
/// and standard deviation over the unrated items), so that a score reads the same whichever
/// model served and a term added to it (the origin's genre term) keeps its weight; the order
/// is the blend's. Take the top with [`ItemModel::top_n`] excluding the rated items.
pub fn scores(
    model: &ItemModel,
    ease: Option<&Ease>,
    user: ArrayView1<f32>,
    ratings: &[(u32, f32)],
    als_weight: f32,
) -> Array1<f32> {
    let als = model.scores(user);
    let Some(ease) = ease else {
        return als;
    };
    let seen: Vec<u32> = ratings.iter().map(|(i, _)| *i).collect();
    let ease_scores = ease.scores(ratings);
    let (mean, sd) = spread(als.view(), &seen);
    let (ease_mean, ease_sd) = spread(ease_scores.view(), &seen);
    let w = als_weight as f64;
    let mut blended = als;
    for (score, ease) in blended.iter_mut().zip(&ease_scores) {
        let z =
            w * ((*score as f64 - mean) / sd) + (1.0 - w) * ((*ease as f64 - ease_mean) / ease_sd);
        *score = (mean + sd * z) as f32;
    }
    blended
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::als::Regularisation;
    use ndarray::Array2;

    #[test]
    fn kind_by_catalogue_size() {
        assert_eq!(kind_for(1_682), ModelKind::AlsEase);
        assert_eq!(kind_for(DENSE_ITEM_LIMIT), ModelKind::AlsEase);
        assert_eq!(kind_for(DENSE_ITEM_LIMIT + 1), ModelKind::Als);
        assert_eq!(ModelKind::AlsEase.name(), "als+ease");
        assert_eq!(ModelKind::Als.name(), "als");
    }

    #[test]
    fn standardises_over_unseen_items() {
        let s = Array1::from(vec![100.0, 1.0, 2.0, 3.0]);
        let z = standardise(s.view(), &[0]);
        let unseen: Vec<f32> = z.iter().skip(1).copied().collect();
        assert!(unseen.iter().sum::<f32>().abs() < 1e-6);
        assert!((unseen.iter().map(|v| v * v).sum::<f32>() / 3.0 - 1.0).abs() < 1e-5);
        // A constant vector does not divide by zero.
        let flat = standardise(Array1::from(vec![2.0, 2.0]).view(), &[]);
        assert!(flat.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn the_weight_moves_from_one_model_to_the_other() {
        let als = Array1::from(vec![0.0, 3.0, 2.0, 1.0]);
        let ease = Array1::from(vec![0.0, 1.0, 2.0, 3.0]);
        let top = |w| ItemModel::top_n(&combine(als.view(), ease.view(), &[0], w), &[0], 1)[0].0;
        assert_eq!(top(1.0), 1);
        assert_eq!(top(0.0), 3);
        // Scale does not matter: EASE ×1000 and ALS ×1 meet halfway.
        let big = &ease * 1000.0;
        let mid = combine(als.view(), big.view(), &[0], 0.5);
        assert!((mid[1] - mid[3]).abs() < 1e-5);
    }

    #[test]
    fn serving_scores_are_als_without_ease_and_the_blend_on_als_scale_with_it() {
        let items = Array2::from_shape_fn((4, 2), |(i, k)| (i + k) as f32 / 4.0);
        let reg = Regularisation {
            lambda: 0.1,
            exponent: 0.5,
        };
        let model = ItemModel::new(items, reg, 1.0);
        let ratings = [(0u32, 5.0f32)];
        let user = model.fold_in(&ratings);
        let plain = scores(&model, None, user.view(), &ratings, 0.3);
        assert_eq!(plain, model.scores(user.view()));
        let rows: Vec<crate::data::Row> = vec![vec![(0, 5.0), (1, 4.0)], vec![(2, 5.0), (3, 4.0)]];
        let ease = Ease::train(&rows, 4, &EaseParams::default());
        let blended = scores(&model, Some(&ease), user.view(), &ratings, 0.3);
        let seen = [0u32];
        let want = combine(
            model.scores(user.view()).view(),
            ease.scores(&ratings).view(),
            &seen,
            0.3,
        );
        // The blend, on ALS's scale: its mean and standard deviation over the unrated items.
        let (mean, sd) = spread(model.scores(user.view()).view(), &seen);
        for (got, z) in blended.iter().zip(&want) {
            let expected = (mean + sd * *z as f64) as f32;
            assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
        }
    }
}
