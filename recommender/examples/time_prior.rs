//! Research spike: a time-local popularity prior blended with implicit ALS.
//!
//! For user u, t_u = median of the timestamps of u's TRAINING ratings (or the set of u's
//! training days). For item i, prior_i(u) = log1p(#training ratings of i, by anyone, with
//! timestamp within ±Δ days of t_u). Score = z(ALS) + w·z(prior), z over unseen items.
//! Δ = ∞ (global popularity) is the control that separates "time" from "popularity".
//! (Δ, w) is chosen on the validation folds of the 75% (mean NDCG@10), then reported on test.
//! Run: `cargo run --release -p recommender --example time_prior`.

// The grids are indexed by position across several parallel arrays.
#![allow(clippy::needless_range_loop)]

mod common;

use ndarray::Array1;
use rayon::prelude::*;
use recommender::als::{self, AlsParams};
use recommender::blend::standardise;
use recommender::data::{Interactions, Row};
use recommender::evaluation::{K, VALIDATION_FOLDS, validation_folds};
use recommender::metrics::{Metrics, evaluate, split_per_user};
use recommender::model::ItemModel;
use std::collections::HashMap;
use std::time::Instant;

const N_ITEMS: usize = 1682;
const DAY: f64 = 86_400.0;

/// How a user's activity time is summarised.
#[derive(Clone, Copy, Debug)]
enum Anchor {
    /// Median of the training timestamps: one window.
    Median,
    /// Every distinct training day: sum of window counts over the user's days (mean).
    Days,
    /// Co-activity: each other user v weighs f_v = share of v's training ratings within ±Δ
    /// of t_u (median); prior_i = log1p(Σ_v f_v·[v rated i in training]).
    CoActive,
}

#[derive(Clone, Copy, Debug)]
struct Prior {
    anchor: Anchor,
    delta_days: f64, // f64::INFINITY = global popularity
}

impl Prior {
    fn name(&self) -> String {
        let d = if self.delta_days.is_infinite() {
            "inf".to_string()
        } else {
            format!("{}", self.delta_days)
        };
        format!("{:?}/Δ={}", self.anchor, d)
    }
}

/// Per-item sorted training timestamps (in days).
fn item_times(train: &[Row], ts: &HashMap<(u32, u32), f64>) -> Vec<Vec<f64>> {
    let mut out = vec![Vec::new(); N_ITEMS];
    for (u, row) in train.iter().enumerate() {
        for (i, _) in row {
            out[*i as usize].push(ts[&(u as u32, *i)]);
        }
    }
    for v in &mut out {
        v.sort_by(f64::total_cmp);
    }
    out
}

fn count_in(v: &[f64], lo: f64, hi: f64) -> usize {
    v.partition_point(|t| *t <= hi) - v.partition_point(|t| *t < lo)
}

/// The prior's raw score of every item for user `u` (from the user's training times only).
fn prior_scores(
    p: &Prior,
    u: usize,
    all_times: &[Vec<f64>],
    train: &[Row],
    items: &[Vec<f64>],
) -> Array1<f32> {
    let user_times = &all_times[u];
    let d = p.delta_days;
    if d.is_infinite() || user_times.is_empty() {
        return Array1::from_iter(items.iter().map(|v| (v.len() as f32).ln_1p()));
    }
    match p.anchor {
        Anchor::Median => {
            let mut t = user_times.to_vec();
            t.sort_by(f64::total_cmp);
            let m = t[t.len() / 2];
            Array1::from_iter(
                items
                    .iter()
                    .map(|v| (count_in(v, m - d, m + d) as f32).ln_1p()),
            )
        }
        Anchor::Days => {
            let mut days: Vec<f64> = user_times.iter().map(|t| t.floor()).collect();
            days.sort_by(f64::total_cmp);
            days.dedup();
            let n = days.len() as f32;
            Array1::from_iter(items.iter().map(|v| {
                let s: usize = days.iter().map(|&t| count_in(v, t - d, t + 1.0 + d)).sum();
                (s as f32 / n).ln_1p()
            }))
        }
        Anchor::CoActive => {
            let mut t = user_times.to_vec();
            t.sort_by(f64::total_cmp);
            let m = t[t.len() / 2];
            let mut acc = vec![0.0f32; items.len()];
            for (v, tv) in all_times.iter().enumerate() {
                if v == u || tv.is_empty() {
                    continue;
                }
                let near = tv.iter().filter(|x| (**x - m).abs() <= d).count();
                if near == 0 {
                    continue;
                }
                let f = near as f32 / tv.len() as f32;
                for (i, _) in &train[v] {
                    acc[*i as usize] += f;
                }
            }
            Array1::from_iter(acc.into_iter().map(f32::ln_1p))
        }
    }
}

struct Prepared {
    /// z(ALS) per user (empty rows for users without training ratings).
    als_z: Vec<Array1<f32>>,
    /// z(prior) per prior, per user.
    prior_z: Vec<Vec<Array1<f32>>>,
}

fn prepare(
    train: &[Row],
    ts: &HashMap<(u32, u32), f64>,
    priors: &[Prior],
    params: &AlsParams,
    eval_users: &[bool],
) -> Prepared {
    let data = Interactions::from_user_rows(N_ITEMS, train.to_vec());
    let f = als::train(&data, params, |_, _| {});
    let model = ItemModel::new(f.items, params.regularisation(), params.alpha);
    let seen: Vec<Vec<u32>> = train
        .iter()
        .map(|r| r.iter().map(|(i, _)| *i).collect())
        .collect();
    let als_z: Vec<Array1<f32>> = (0..train.len())
        .into_par_iter()
        .map(|u| {
            if !eval_users[u] {
                return Array1::zeros(0);
            }
            let s = model.scores(model.fold_in(&train[u]).view());
            standardise(s.view(), &seen[u])
        })
        .collect();
    let items = item_times(train, ts);
    let user_times: Vec<Vec<f64>> = train
        .iter()
        .enumerate()
        .map(|(u, r)| r.iter().map(|(i, _)| ts[&(u as u32, *i)]).collect())
        .collect();
    let prior_z = priors
        .iter()
        .map(|p| {
            (0..train.len())
                .into_par_iter()
                .map(|u| {
                    if !eval_users[u] {
                        return Array1::zeros(0);
                    }
                    let s = prior_scores(p, u, &user_times, train, &items);
                    standardise(s.view(), &seen[u])
                })
                .collect()
        })
        .collect();
    Prepared { als_z, prior_z }
}

fn metrics_for(
    train: &[Row],
    test: &[Row],
    prep: &Prepared,
    prior: Option<usize>,
    w: f32,
) -> Metrics {
    evaluate(test, N_ITEMS, K, |u, k| {
        let seen: Vec<u32> = train[u].iter().map(|(i, _)| *i).collect();
        let s = match prior {
            None => prep.als_z[u].clone(),
            Some(p) => &prep.als_z[u] + &(&prep.prior_z[p][u] * w),
        };
        ItemModel::top_n(&s, &seen, k)
            .into_iter()
            .map(|(i, _)| i)
            .collect()
    })
}

fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = x.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, v.sqrt())
}

fn main() {
    let start = Instant::now();
    let ratings = common::ratings();
    let rows = common::rows(&ratings);
    let mut ts: HashMap<(u32, u32), f64> = HashMap::new();
    for r in &ratings {
        assert!(
            ts.insert((r.user as u32, r.item), r.timestamp / DAY)
                .is_none(),
            "duplicate pair"
        );
    }
    let params = AlsParams::default();
    {
        // Burstiness diagnostic over all ratings (not used by any model).
        let mut spans: Vec<f64> = rows
            .iter()
            .enumerate()
            .map(|(u, r)| {
                let t: Vec<f64> = r.iter().map(|(i, _)| ts[&(u as u32, *i)]).collect();
                t.iter().cloned().fold(f64::MIN, f64::max)
                    - t.iter().cloned().fold(f64::MAX, f64::min)
            })
            .collect();
        spans.sort_by(f64::total_cmp);
        let one_day = spans.iter().filter(|s| **s < 1.0).count() as f64 / spans.len() as f64;
        let all: Vec<f64> = ts.values().cloned().collect();
        let lo = all.iter().cloned().fold(f64::MAX, f64::min);
        let hi = all.iter().cloned().fold(f64::MIN, f64::max);
        println!(
            "data span {:.0} days; per-user activity span: median {:.1} d, p75 {:.1} d; users within 1 day: {:.1}%",
            hi - lo,
            spans[spans.len() / 2],
            spans[spans.len() * 3 / 4],
            100.0 * one_day
        );
    }
    let mut priors = Vec::new();
    for &d in &[1.0, 7.0, 30.0, 90.0, f64::INFINITY] {
        priors.push(Prior {
            anchor: Anchor::Median,
            delta_days: d,
        });
    }
    for &d in &[1.0, 7.0, 30.0] {
        priors.push(Prior {
            anchor: Anchor::Days,
            delta_days: d,
        });
    }
    for &d in &[7.0, 30.0, 90.0] {
        priors.push(Prior {
            anchor: Anchor::CoActive,
            delta_days: d,
        });
    }
    let weights = [0.05f32, 0.1, 0.2, 0.3, 0.5, 0.8, 100.0];
    let seeds = [42u64, 7, 13, 21, 99];

    let mut als_p = Vec::new();
    let mut als_n = Vec::new();
    let mut chosen_p = Vec::new();
    let mut chosen_n = Vec::new();
    // test grid: [prior][w] -> per-seed (P, N)
    let mut grid: Vec<Vec<Vec<(f64, f64)>>> = vec![vec![Vec::new(); weights.len()]; priors.len()];
    let mut chosen_cfg = Vec::new();
    for &seed in &seeds {
        let (train, test) = split_per_user(&rows, 0.75, seed);
        // validation: pick (prior, w) by mean NDCG@10 over the folds of the 75%
        let folds = validation_folds(&train, VALIDATION_FOLDS, seed.wrapping_add(1));
        let mut val = vec![vec![0.0f64; weights.len()]; priors.len()];
        let mut val_als = 0.0;
        for (fit, held) in &folds {
            let eval_users: Vec<bool> = held.iter().map(|h| !h.is_empty()).collect();
            let prep = prepare(fit, &ts, &priors, &params, &eval_users);
            val_als += metrics_for(fit, held, &prep, None, 0.0).ndcg / folds.len() as f64;
            for p in 0..priors.len() {
                for (wi, &w) in weights.iter().enumerate() {
                    val[p][wi] +=
                        metrics_for(fit, held, &prep, Some(p), w).ndcg / folds.len() as f64;
                }
            }
        }
        let (mut bp, mut bw, mut best) = (0, 0, f64::NEG_INFINITY);
        for p in 0..priors.len() {
            for wi in 0..weights.len() {
                if val[p][wi] > best {
                    (bp, bw, best) = (p, wi, val[p][wi]);
                }
            }
        }
        eprintln!(
            "seed {seed}: validation ALS N {:.4}; best {} w {} N {:.4}  ({:.1?})",
            val_als,
            priors[bp].name(),
            weights[bw],
            best,
            start.elapsed()
        );
        for p in 0..priors.len() {
            eprintln!(
                "   val {:>14}: {}",
                priors[p].name(),
                val[p]
                    .iter()
                    .map(|x| format!("{x:.4}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        // test
        let eval_users: Vec<bool> = test.iter().map(|h| !h.is_empty()).collect();
        let prep = prepare(&train, &ts, &priors, &params, &eval_users);
        let a = metrics_for(&train, &test, &prep, None, 0.0);
        als_p.push(a.precision);
        als_n.push(a.ndcg);
        for p in 0..priors.len() {
            for (wi, &w) in weights.iter().enumerate() {
                let m = metrics_for(&train, &test, &prep, Some(p), w);
                grid[p][wi].push((m.precision, m.ndcg));
            }
        }
        let c = grid[bp][bw].last().copied().expect("run");
        chosen_p.push(c.0);
        chosen_n.push(c.1);
        chosen_cfg.push(format!("{} w={}", priors[bp].name(), weights[bw]));
        println!(
            "seed {seed:3}: ALS P {:.4} N {:.4} | val-chosen {} P {:.4} N {:.4}",
            a.precision,
            a.ndcg,
            chosen_cfg.last().expect("cfg"),
            c.0,
            c.1
        );
    }
    let (pm, ps) = mean_sd(&als_p);
    let (nm, ns) = mean_sd(&als_n);
    println!("\n| model | P@10 | NDCG@10 |");
    println!("| ALS (default) | {pm:.4} ± {ps:.4} | {nm:.4} ± {ns:.4} |");
    let (pm, ps) = mean_sd(&chosen_p);
    let (nm, ns) = mean_sd(&chosen_n);
    println!(
        "| ALS + time prior, (Δ,w) chosen on validation per seed | {pm:.4} ± {ps:.4} | {nm:.4} ± {ns:.4} |"
    );
    println!("chosen per seed: {:?}", chosen_cfg);
    println!(
        "\nTEST numbers over a fixed grid (NOT selected on validation): P@10 / NDCG@10 mean over seeds"
    );
    print!("{:>16}", "prior \\ w");
    for w in &weights {
        print!(" | {:>13}", w);
    }
    println!();
    for p in 0..priors.len() {
        print!("{:>16}", priors[p].name());
        for wi in 0..weights.len() {
            let (pm, _) = mean_sd(&grid[p][wi].iter().map(|x| x.0).collect::<Vec<_>>());
            let (nm, _) = mean_sd(&grid[p][wi].iter().map(|x| x.1).collect::<Vec<_>>());
            print!(" | {pm:.4}/{nm:.4}");
        }
        println!();
    }
    println!("wall time {:.1?}", start.elapsed());
}
