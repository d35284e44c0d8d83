//! The evaluation protocol of `origin eval`, pure so that tests run it too:
//!
//! 1. split each user's ratings 75/25 (seeded): the 25% is the test set, never looked at
//!    until the end;
//! 2. carve a validation split out of the 75% (each user's training ratings split again);
//! 3. train every candidate of the grid on the rest of the 75%, score it on the validation
//!    split, keep the best NDCG@10;
//! 4. retrain the best candidate on the whole 75% and report it on the 25%, beside the
//!    popularity baseline on the same split.

use crate::als::{self, AlsParams};
use crate::data::{Interactions, Row};
use crate::metrics::{Metrics, evaluate, popularity_ranking, split_per_user};
use crate::model::ItemModel;
use serde::Serialize;

/// Cut-off of every metric.
pub const K: usize = 10;

/// One grid candidate's validation result.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Trial {
    /// The candidate.
    pub params: AlsParams,
    /// Its validation metrics.
    pub validation: Metrics,
}

/// The outcome of the protocol.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The chosen hyper-parameters.
    pub chosen: AlsParams,
    /// Every candidate tried, on the validation split.
    pub trials: Vec<Trial>,
    /// The chosen model on the test split.
    pub model: Metrics,
    /// The popularity baseline on the test split.
    pub popularity: Metrics,
}

/// Top-k of a model for each user of `train`, excluding their training items.
pub fn model_metrics(train: &[Row], test: &[Row], n_items: usize, params: &AlsParams) -> Metrics {
    let data = Interactions::from_user_rows(n_items, train.to_vec());
    let factors = als::train(&data, params, |_, _| {});
    let model = ItemModel::new(factors.items, params.regularisation(), params.alpha);
    evaluate(test, n_items, K, |u, k| {
        let user = model.fold_in(&train[u]);
        let scores = model.scores(user.view());
        let seen: Vec<u32> = train[u].iter().map(|(i, _)| *i).collect();
        ItemModel::top_n(&scores, &seen, k)
            .into_iter()
            .map(|(i, _)| i)
            .collect()
    })
}

/// The popularity baseline's metrics.
pub fn popularity_metrics(train: &[Row], test: &[Row], n_items: usize) -> Metrics {
    let ranking = popularity_ranking(train, n_items);
    evaluate(test, n_items, K, |u, k| {
        let seen: std::collections::HashSet<u32> = train[u].iter().map(|(i, _)| *i).collect();
        ranking
            .iter()
            .copied()
            .filter(|i| !seen.contains(i))
            .take(k)
            .collect()
    })
}

/// Runs the protocol over `grid` on per-user rows; `on_trial` sees each validation result.
pub fn run(
    rows: &[Row],
    n_items: usize,
    grid: &[AlsParams],
    seed: u64,
    mut on_trial: impl FnMut(&Trial),
) -> Report {
    let (train, test) = split_per_user(rows, 0.75, seed);
    let (fit, validation) = split_per_user(&train, 0.8, seed.wrapping_add(1));
    let mut trials = Vec::with_capacity(grid.len());
    for params in grid {
        let trial = Trial {
            params: *params,
            validation: model_metrics(&fit, &validation, n_items, params),
        };
        on_trial(&trial);
        trials.push(trial);
    }
    let chosen = trials
        .iter()
        .max_by(|a, b| a.validation.ndcg.total_cmp(&b.validation.ndcg))
        .map(|t| t.params)
        .unwrap_or_default();
    Report {
        chosen,
        trials,
        model: model_metrics(&train, &test, n_items, &chosen),
        popularity: popularity_metrics(&train, &test, n_items),
    }
}

/// The default grid: factors × regularisation × confidence scale, at `epochs` and `seed`
/// (ν = 0.5: the frequency scaling that won on MovieLens 100K's validation split).
pub fn default_grid(epochs: usize, seed: u64) -> Vec<AlsParams> {
    let mut grid = Vec::new();
    for factors in [32, 64, 128] {
        for reg in [2.0, 4.0, 8.0] {
            for alpha in [0.3, 1.0, 3.0] {
                grid.push(AlsParams {
                    factors,
                    epochs,
                    reg,
                    reg_exponent: 0.5,
                    alpha,
                    seed,
                });
            }
        }
    }
    grid
}
