//! The evaluation protocol of `origin eval`, pure so that tests run it too:
//!
//! 1. split each user's ratings 75/25 (seeded): the 25% is the test set, never looked at
//!    until the end;
//! 2. carve validation folds out of the 75%: the users are dealt into [`VALIDATION_FOLDS`]
//!    groups; in fold `g`, group `g`'s users hold out a fifth of their training ratings and
//!    the model trains on everything else;
//! 3. train every candidate of the grid on each fold, score it on the held-out ratings, keep
//!    the best mean NDCG@10;
//! 4. retrain the best candidate on the whole 75% and report it on the 25%, beside the
//!    popularity baseline on the same split.
//!
//! [`run_seeds`] repeats this over several splits for every model (popularity, ALS, EASE, the
//! blend), either at the defaults ([`Mode::Quick`]) or with a smaller grid per split
//! ([`Mode::Search`]), and reports the mean and sample standard deviation over the splits: one
//! split's figure moves by about ±0.004 from seed to seed, as much as most changes measured.
//!
//! Why folds of users rather than one carve of every user: the best regularisation of ALS
//! depends on how much data it trains on. Carving a fifth out of every user trains the
//! candidates on 60% of the ratings, and there the validation preferred a stronger λ than
//! suits the final model on 75%. Each fold here trains on 95% of the 75%, so the choice is
//! made at (nearly) the data size it is then used at, and every user is validated once.

use crate::als::{self, AlsParams};
use crate::blend::{self, BlendParams, ModelKind};
use crate::data::{Interactions, Row};
use crate::ease::{Ease, EaseParams};
use crate::metrics::{Metrics, evaluate, popularity_ranking, split_per_user};
use crate::model::ItemModel;
use serde::{Deserialize, Serialize};

/// Cut-off of every metric.
pub const K: usize = 10;

/// Validation folds (groups of users) carved out of the training split.
pub const VALIDATION_FOLDS: usize = 5;

/// Share of a validated user's training ratings that their fold still trains on.
pub const VALIDATION_KEEP: f64 = 0.8;

/// One grid candidate's validation result.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Trial {
    /// The candidate.
    pub params: AlsParams,
    /// Its validation metrics, averaged over the folds.
    pub validation: Metrics,
}

/// The outcome of the protocol.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The chosen hyper-parameters.
    pub chosen: AlsParams,
    /// Every candidate tried, with its mean over the validation folds.
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

/// The ALS model trained on `train` (its own [`AlsParams::feedback`]).
fn train_als(train: &[Row], n_items: usize, params: &AlsParams) -> ItemModel {
    let data = Interactions::from_user_rows(n_items, train.to_vec());
    let factors = als::train(&data, params, |_, _| {});
    ItemModel::new(factors.items, params.regularisation(), params.alpha)
}

/// Metrics of `score(u)` (every item's score for user `u`), excluding training items.
fn ranked_metrics(
    train: &[Row],
    test: &[Row],
    n_items: usize,
    score: impl Fn(usize) -> ndarray::Array1<f32> + Sync,
) -> Metrics {
    evaluate(test, n_items, K, |u, k| {
        let seen: Vec<u32> = train[u].iter().map(|(i, _)| *i).collect();
        ItemModel::top_n(&score(u), &seen, k)
            .into_iter()
            .map(|(i, _)| i)
            .collect()
    })
}

/// Metrics of ALS, EASE alone and the blend at each of `weights` (trained once each).
fn model_family_metrics(
    train: &[Row],
    test: &[Row],
    n_items: usize,
    als_params: &AlsParams,
    ease_params: &EaseParams,
    weights: &[f32],
) -> (Metrics, Metrics, Vec<Metrics>) {
    let model = train_als(train, n_items, als_params);
    let ease = Ease::train(train, n_items, ease_params);
    let als_scores = |u: usize| model.scores(model.fold_in(&train[u]).view());
    let als_m = ranked_metrics(train, test, n_items, als_scores);
    let ease_m = ranked_metrics(train, test, n_items, |u| ease.scores(&train[u]));
    let blends = weights
        .iter()
        .map(|w| {
            ranked_metrics(train, test, n_items, |u| {
                let user = model.fold_in(&train[u]);
                blend::scores(&model, Some(&ease), user.view(), &train[u], *w)
            })
        })
        .collect();
    (als_m, ease_m, blends)
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

/// The validation folds of a training split, as `(fit, held out)` pairs: user `u` belongs to
/// group `u % folds`; in fold `g` the users of group `g` keep [`VALIDATION_KEEP`] of their
/// ratings (a seeded per-user split) and hold out the rest, every other user keeps all of
/// theirs. A held-out row is empty for a user who is not validated in that fold.
pub fn validation_folds(train: &[Row], folds: usize, seed: u64) -> Vec<(Vec<Row>, Vec<Row>)> {
    let folds = folds.max(1);
    let (kept, held) = split_per_user(train, VALIDATION_KEEP, seed);
    (0..folds)
        .map(|group| {
            (0..train.len())
                .map(|u| {
                    if u % folds == group {
                        (kept[u].clone(), held[u].clone())
                    } else {
                        (train[u].clone(), Vec::new())
                    }
                })
                .unzip()
        })
        .collect()
}

/// The mean of per-fold metrics (folds hold about the same number of users).
fn mean(metrics: &[Metrics]) -> Metrics {
    let n = metrics.len().max(1) as f64;
    Metrics {
        precision: metrics.iter().map(|m| m.precision).sum::<f64>() / n,
        recall: metrics.iter().map(|m| m.recall).sum::<f64>() / n,
        ndcg: metrics.iter().map(|m| m.ndcg).sum::<f64>() / n,
        coverage: metrics.iter().map(|m| m.coverage).sum::<f64>() / n,
        users: metrics.iter().map(|m| m.users).sum(),
    }
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
    let folds = validation_folds(&train, VALIDATION_FOLDS, seed.wrapping_add(1));
    let mut trials = Vec::with_capacity(grid.len());
    for params in grid {
        let per_fold: Vec<Metrics> = folds
            .iter()
            .map(|(fit, held)| model_metrics(fit, held, n_items, params))
            .collect();
        let trial = Trial {
            params: *params,
            validation: mean(&per_fold),
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
/// (ν = 0.5: the frequency scaling that won on MovieLens 100K's validation folds). 36
/// candidates, each trained once per validation fold.
pub fn default_grid(epochs: usize, seed: u64) -> Vec<AlsParams> {
    let mut grid = Vec::new();
    for factors in [32, 64, 128] {
        for reg in [2.0, 3.0, 4.0, 5.0] {
            for alpha in [0.25, 0.5, 1.0] {
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

/// How [`run_seeds`] picks hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// The defaults ([`AlsParams::default`], [`BlendParams::default`]), no search.
    Quick,
    /// A grid on each split's validation folds ([`search_grid`], [`EASE_LAMBDAS`],
    /// [`BLEND_WEIGHTS`]).
    Search,
}

/// EASE's λ grid of [`Mode::Search`].
pub const EASE_LAMBDAS: [f32; 3] = [200.0, 400.0, 800.0];

/// The blend weights of [`Mode::Search`] (1 is ALS alone).
pub const BLEND_WEIGHTS: [f32; 5] = [0.5, 0.7, 0.85, 0.95, 1.0];

/// The ALS grid of [`Mode::Search`]: regularisation × confidence scale at the default
/// factors (6 candidates: the full [`default_grid`] is 36 and too slow for five splits).
pub fn search_grid(epochs: usize, seed: u64) -> Vec<AlsParams> {
    let mut grid = Vec::new();
    for reg in [2.0, 3.0, 4.0] {
        for alpha in [0.5, 1.0] {
            grid.push(AlsParams {
                epochs,
                reg,
                alpha,
                seed,
                ..AlsParams::default()
            });
        }
    }
    grid
}

/// One split's test metrics of every model, and what was chosen for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedResult {
    /// The split's seed.
    pub seed: u64,
    /// ALS parameters used.
    pub als_params: AlsParams,
    /// Blend parameters used (EASE alone uses its `ease` part).
    pub blend_params: BlendParams,
    /// Popularity baseline.
    pub popularity: Metrics,
    /// ALS alone.
    pub als: Metrics,
    /// EASE alone.
    pub ease: Metrics,
    /// The blend.
    pub blend: Metrics,
}

/// Mean and sample standard deviation of one metric over the splits.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one split).
    pub sd: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Spread {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let sd = if values.len() > 1 {
            (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Spread { mean, sd }
    }
}

/// One model's metrics over the splits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSummary {
    /// `popularity`, `als`, `ease` or `als+ease`.
    pub model: String,
    /// Precision@10.
    pub precision: Spread,
    /// Recall@10.
    pub recall: Spread,
    /// NDCG@10.
    pub ndcg: Spread,
    /// Coverage.
    pub coverage: Spread,
}

/// The outcome of [`run_seeds`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MultiReport {
    /// How hyper-parameters were picked.
    pub mode: Mode,
    /// The kind that would serve this catalogue ([`blend::kind_for`]).
    pub kind: ModelKind,
    /// Per split.
    pub per_seed: Vec<SeedResult>,
    /// Per model, over the splits: popularity, als, ease, als+ease.
    pub summary: Vec<ModelSummary>,
}

impl MultiReport {
    /// The summary of the model that serves ([`MultiReport::kind`]).
    pub fn served(&self) -> Option<&ModelSummary> {
        self.summary.iter().find(|m| m.model == self.kind.name())
    }
}

/// Progress of [`run_seeds`]: `done` of `total` steps, and what just finished.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Steps finished.
    pub done: usize,
    /// All steps.
    pub total: usize,
    /// What the last step was.
    pub message: String,
}

/// The protocol of [`run`] over several 75/25 splits, for every model: per split, pick the
/// hyper-parameters (defaults in [`Mode::Quick`]; in [`Mode::Search`] the best mean
/// validation NDCG@10 over the split's validation folds, ALS first, then EASE's λ, then the
/// blend weight with both fixed), retrain on the 75% and report on the 25%. On a catalogue
/// above [`blend::DENSE_ITEM_LIMIT`] only popularity and ALS are evaluated.
pub fn run_seeds(
    rows: &[Row],
    n_items: usize,
    seeds: &[u64],
    mode: Mode,
    mut on_progress: impl FnMut(&Progress),
) -> MultiReport {
    let kind = blend::kind_for(n_items);
    let dense = kind == ModelKind::AlsEase;
    let per_split = match mode {
        Mode::Quick => 1,
        Mode::Search => {
            let grid = search_grid(AlsParams::default().epochs, 42).len();
            // A step per ALS candidate and fold, per EASE λ, for the blend weights, and the test.
            VALIDATION_FOLDS * grid + if dense { EASE_LAMBDAS.len() + 1 } else { 0 } + 1
        }
    };
    let total = per_split * seeds.len();
    let mut done = 0;
    let mut step = |message: String, on_progress: &mut dyn FnMut(&Progress)| {
        done += 1;
        on_progress(&Progress {
            done,
            total,
            message,
        });
    };
    let mut per_seed = Vec::with_capacity(seeds.len());
    for &seed in seeds {
        let (train, test) = split_per_user(rows, 0.75, seed);
        let (als_params, blend_params) = match mode {
            Mode::Quick => (
                AlsParams {
                    seed,
                    ..AlsParams::default()
                },
                BlendParams::default(),
            ),
            Mode::Search => {
                let folds = validation_folds(&train, VALIDATION_FOLDS, seed.wrapping_add(1));
                let mut best = (f64::MIN, AlsParams::default());
                for params in search_grid(AlsParams::default().epochs, seed) {
                    let ndcg = mean(
                        &folds
                            .iter()
                            .map(|(fit, held)| {
                                let m = model_metrics(fit, held, n_items, &params);
                                step(
                                    format!(
                                        "seed {seed}: als reg {} alpha {}",
                                        params.reg, params.alpha
                                    ),
                                    &mut on_progress,
                                );
                                m
                            })
                            .collect::<Vec<_>>(),
                    )
                    .ndcg;
                    if ndcg > best.0 {
                        best = (ndcg, params);
                    }
                }
                let als_params = best.1;
                let mut blend_params = BlendParams::default();
                if dense {
                    let mut best = (f64::MIN, blend_params.ease);
                    for lambda in EASE_LAMBDAS {
                        let params = EaseParams {
                            lambda,
                            ..EaseParams::default()
                        };
                        let per_fold: Vec<Metrics> = folds
                            .iter()
                            .map(|(fit, held)| {
                                let ease = Ease::train(fit, n_items, &params);
                                ranked_metrics(fit, held, n_items, |u| ease.scores(&fit[u]))
                            })
                            .collect();
                        step(
                            format!("seed {seed}: ease lambda {lambda}"),
                            &mut on_progress,
                        );
                        let ndcg = mean(&per_fold).ndcg;
                        if ndcg > best.0 {
                            best = (ndcg, params);
                        }
                    }
                    blend_params.ease = best.1;
                    let per_fold: Vec<Vec<Metrics>> = folds
                        .iter()
                        .map(|(fit, held)| {
                            model_family_metrics(
                                fit,
                                held,
                                n_items,
                                &als_params,
                                &blend_params.ease,
                                &BLEND_WEIGHTS,
                            )
                            .2
                        })
                        .collect();
                    step(format!("seed {seed}: blend weights"), &mut on_progress);
                    let mut best = (f64::MIN, blend_params.als_weight);
                    for (w, weight) in BLEND_WEIGHTS.iter().enumerate() {
                        let ndcg = mean(&per_fold.iter().map(|f| f[w]).collect::<Vec<_>>()).ndcg;
                        if ndcg > best.0 {
                            best = (ndcg, *weight);
                        }
                    }
                    blend_params.als_weight = best.1;
                }
                (als_params, blend_params)
            }
        };
        let popularity = popularity_metrics(&train, &test, n_items);
        let (als, ease, blend) = if dense {
            let (a, e, b) = model_family_metrics(
                &train,
                &test,
                n_items,
                &als_params,
                &blend_params.ease,
                &[blend_params.als_weight],
            );
            (a, e, b[0])
        } else {
            let a = model_metrics(&train, &test, n_items, &als_params);
            (a, Metrics::default(), a)
        };
        step(format!("seed {seed}: test"), &mut on_progress);
        per_seed.push(SeedResult {
            seed,
            als_params,
            blend_params,
            popularity,
            als,
            ease,
            blend,
        });
    }
    let summarise = |name: &str, get: &dyn Fn(&SeedResult) -> Metrics| {
        let metrics: Vec<Metrics> = per_seed.iter().map(get).collect();
        let of =
            |f: &dyn Fn(&Metrics) -> f64| Spread::of(&metrics.iter().map(f).collect::<Vec<_>>());
        ModelSummary {
            model: name.to_string(),
            precision: of(&|m| m.precision),
            recall: of(&|m| m.recall),
            ndcg: of(&|m| m.ndcg),
            coverage: of(&|m| m.coverage),
        }
    };
    let mut summary = vec![
        summarise("popularity", &|r| r.popularity),
        summarise(ModelKind::Als.name(), &|r| r.als),
    ];
    if dense {
        summary.push(summarise("ease", &|r| r.ease));
        summary.push(summarise(ModelKind::AlsEase.name(), &|r| r.blend));
    }
    MultiReport {
        mode,
        kind,
        per_seed,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn rows() -> Vec<Row> {
        (0..23u32)
            .map(|u| (0..(5 + u % 7)).map(|i| (i * 3 + u % 2, 4.0)).collect())
            .collect()
    }

    #[test]
    fn each_user_is_validated_in_exactly_one_fold() {
        let train = rows();
        let folds = validation_folds(&train, 5, 9);
        assert_eq!(folds.len(), 5);
        let mut validated = vec![0; train.len()];
        for (fit, held) in &folds {
            for u in 0..train.len() {
                let fitted: HashSet<u32> = fit[u].iter().map(|(i, _)| *i).collect();
                let out: HashSet<u32> = held[u].iter().map(|(i, _)| *i).collect();
                // Nothing held out is trained on, and nothing is lost.
                assert!(fitted.is_disjoint(&out), "user {u}");
                assert_eq!(fitted.len() + out.len(), train[u].len(), "user {u}");
                if !out.is_empty() {
                    validated[u] += 1;
                    assert_eq!(out.len(), (train[u].len() as f64 * 0.2).round() as usize);
                }
            }
        }
        assert!(validated.iter().all(|n| *n == 1), "{validated:?}");
    }

    #[test]
    fn spread_is_mean_and_sample_sd() {
        let s = Spread::of(&[1.0, 2.0, 3.0]);
        assert_eq!((s.mean, s.sd), (2.0, 1.0));
        assert_eq!(Spread::of(&[5.0]).sd, 0.0);
    }

    #[test]
    fn run_seeds_reports_every_model_for_every_seed() {
        // Two taste groups of 30 users over 40 items.
        let rows: Vec<Row> = (0..60u32)
            .map(|u| {
                let base = if u < 30 { 0 } else { 20 };
                (0..12u32).map(|i| (base + (u + 3 * i) % 20, 4.0)).collect()
            })
            .collect();
        let mut steps = Vec::new();
        let report = run_seeds(&rows, 40, &[1, 2], Mode::Quick, |p| {
            steps.push((p.done, p.total))
        });
        assert_eq!(steps, vec![(1, 2), (2, 2)]);
        assert_eq!(report.per_seed.len(), 2);
        assert_eq!(report.kind, ModelKind::AlsEase);
        let names: Vec<&str> = report.summary.iter().map(|m| m.model.as_str()).collect();
        assert_eq!(names, ["popularity", "als", "ease", "als+ease"]);
        let served = report.served().expect("the served kind is summarised");
        assert!(served.precision.mean > report.summary[0].precision.mean);
    }

    #[test]
    fn folds_train_on_most_of_the_training_split() {
        let train = rows();
        let total: usize = train.iter().map(Vec::len).sum();
        for (fit, _) in validation_folds(&train, 5, 9) {
            let fitted: usize = fit.iter().map(Vec::len).sum();
            assert!(fitted as f64 >= 0.95 * total as f64, "{fitted} of {total}");
        }
    }
}
