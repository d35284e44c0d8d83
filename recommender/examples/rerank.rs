//! Research spike: a learning-to-rank re-ranker over ALS's top candidates on MovieLens 100K,
//! under the protocol of `recommender::evaluation`.
//!
//! Per split: the five validation folds carved from the 75% (as `evaluation::run_seeds`)
//! give each validated user ALS's top `CANDIDATES` unseen movies, with features computed from
//! the fold's training ratings only (model scores, popularity, time, genres, demographics),
//! labelled by the fold's held-out ratings. The re-ranker's own settings are chosen by
//! cross-fitting over the folds (train on four, score the fifth, mean NDCG@10); it is then
//! trained on all five folds and applied to the test users' candidates (features from the
//! whole 75%). The 25% test is only scored.
//! Run: `cargo run --release -p recommender --example rerank -- 42,7,13,21,99`.

mod common;
mod zoo;

use ndarray::Array2;
use recommender::als::AlsParams;
use recommender::ease::EaseParams;
use recommender::metrics::Metrics;
use std::collections::{HashMap, HashSet};
use std::time::Instant;
use zoo::gbdt::{self, Data, Objective, Params};
use zoo::*;

const CANDIDATES: usize = 100;
const DAY: f64 = 86_400.0;

struct Meta {
    year: Vec<f32>,
    genres: Vec<Vec<usize>>,
    n_genres: usize,
    age: Vec<f32>,
    male: Vec<bool>,
    occupation: Vec<usize>,
    ts: HashMap<(u32, u32), f32>,
    t0: f64,
}

fn meta(ratings: &[common::Rating]) -> Meta {
    let items = std::fs::read_to_string("data/ml-100k/ml-100k.item").expect("items");
    let mut year = vec![f32::NAN; common::MOVIES];
    let mut genres = vec![Vec::new(); common::MOVIES];
    let mut names: HashMap<String, usize> = HashMap::new();
    for line in items.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let i = f[0].parse::<usize>().expect("id") - 1;
        year[i] = f[2].parse().unwrap_or(f32::NAN);
        for g in f[3].split(' ').filter(|g| !g.is_empty()) {
            let n = names.len();
            genres[i].push(*names.entry(g.to_string()).or_insert(n));
        }
    }
    let users = std::fs::read_to_string("data/ml-100k/ml-100k.user").expect("users");
    let mut age = vec![0.0; common::USERS];
    let mut male = vec![false; common::USERS];
    let mut occupation = vec![0; common::USERS];
    let mut occ: HashMap<String, usize> = HashMap::new();
    for line in users.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let u = f[0].parse::<usize>().expect("id") - 1;
        age[u] = f[1].parse().expect("age");
        male[u] = f[2] == "M";
        let n = occ.len();
        occupation[u] = *occ.entry(f[3].to_string()).or_insert(n);
    }
    let t0 = ratings.iter().map(|r| r.timestamp).fold(f64::MAX, f64::min);
    let ts = ratings
        .iter()
        .map(|r| ((r.user as u32, r.item), ((r.timestamp - t0) / DAY) as f32))
        .collect();
    Meta {
        year,
        genres,
        n_genres: names.len(),
        age,
        male,
        occupation,
        ts,
        t0,
    }
}

const FEATURES: [&str; 27] = [
    "als_z",
    "als_rank",
    "ease_z",
    "rp3_z",
    "uknn_z",
    "i_pop",
    "u_n",
    "i_mean_rating",
    "u_mean_rating",
    "i_first_minus_u_max",
    "i_first_minus_u_min",
    "i_med_minus_u_med",
    "i_share_in_u_window",
    "i_count_in_u_window",
    "u_span",
    "u_med",
    "i_year",
    "year_minus_u_mean_year",
    "genre_match",
    "same_gender_share",
    "age_diff",
    "same_occupation_share",
    "u_mean_pop",
    "i_first",
    "ease_rank",
    "i_count_near_u_days",
    "u_days",
];

/// One user's candidates: (user, item) pairs, feature rows, labels.
type UserRows = (Vec<(usize, u32)>, Vec<Vec<f32>>, Vec<f32>);

/// Candidates and features of one context: per evaluated user, ALS's top candidates.
struct Block {
    /// (user, item) per row.
    pairs: Vec<(usize, u32)>,
    data: Data,
}

fn rank_of(z: ndarray::ArrayView1<f32>, seen: &[u32]) -> Vec<f32> {
    let mut s = z.to_owned();
    for &i in seen {
        s[i as usize] = f32::NEG_INFINITY;
    }
    let mut order: Vec<usize> = (0..s.len()).collect();
    order.sort_by(|a, b| s[*b].total_cmp(&s[*a]).then(a.cmp(b)));
    let mut rank = vec![0.0; s.len()];
    for (r, i) in order.into_iter().enumerate() {
        rank[i] = r as f32;
    }
    rank
}

#[allow(clippy::too_many_arguments)]
fn block(
    ctx: &Ctx,
    meta: &Meta,
    als: &Array2<f32>,
    ease: &Array2<f32>,
    rp3: &Array2<f32>,
    uknn: &Array2<f32>,
) -> Block {
    use rayon::prelude::*;
    let n_items = common::MOVIES;
    let (items_of, users_of) = incidence(&ctx.fit, n_items);
    let ratings_of: Vec<f32> = {
        let mut sum = vec![0.0f64; n_items];
        for row in &ctx.fit {
            for (i, r) in row {
                sum[*i as usize] += *r as f64;
            }
        }
        (0..n_items)
            .map(|i| ((sum[i] + 3.5 * 5.0) / (users_of[i].len() as f64 + 5.0)) as f32)
            .collect()
    };
    let ts = |u: usize, i: u32| meta.ts[&(u as u32, i)];
    // Item times sorted.
    let item_times: Vec<Vec<f32>> = (0..n_items)
        .map(|i| {
            let mut v: Vec<f32> = users_of[i]
                .iter()
                .map(|&u| ts(u as usize, i as u32))
                .collect();
            v.sort_by(f32::total_cmp);
            v
        })
        .collect();
    let count_in = |v: &[f32], lo: f32, hi: f32| {
        (v.partition_point(|t| *t <= hi) - v.partition_point(|t| *t < lo)) as f32
    };
    let pop: Vec<f32> = users_of.iter().map(|v| (v.len() as f32).ln_1p()).collect();
    // Item demographic shares (smoothed toward the global share).
    let n_users = ctx.fit.len();
    let n_occ = meta.occupation.iter().max().copied().unwrap_or(0) + 1;
    let global_male = meta.male.iter().filter(|m| **m).count() as f32 / n_users as f32;
    let mut male_share = vec![0.0f32; n_items];
    let mut mean_age = vec![0.0f32; n_items];
    let mut occ_count = vec![vec![0.0f32; n_occ]; n_items];
    for i in 0..n_items {
        let us = &users_of[i];
        let m = us.iter().filter(|u| meta.male[**u as usize]).count() as f32;
        male_share[i] = (m + 5.0 * global_male) / (us.len() as f32 + 5.0);
        let a: f32 = us.iter().map(|u| meta.age[*u as usize]).sum();
        mean_age[i] = (a + 5.0 * 32.0) / (us.len() as f32 + 5.0);
        for u in us {
            occ_count[i][meta.occupation[*u as usize]] += 1.0;
        }
    }
    let per_user: Vec<UserRows> = (0..n_users)
        .into_par_iter()
        .filter(|u| ctx.eval[*u])
        .map(|u| {
            let seen = &ctx.seen[u];
            let als_rank = rank_of(als.row(u), seen);
            let ease_rank = rank_of(ease.row(u), seen);
            let mut cands: Vec<u32> = (0..n_items as u32)
                .filter(|i| (als_rank[*i as usize] as usize) < CANDIDATES)
                .collect();
            cands.sort_by(|a, b| als_rank[*a as usize].total_cmp(&als_rank[*b as usize]));
            let held: HashSet<u32> = ctx.held[u].iter().map(|(i, _)| *i).collect();
            // User-level summaries from training ratings.
            let times: Vec<f32> = {
                let mut t: Vec<f32> = items_of[u].iter().map(|i| ts(u, *i)).collect();
                t.sort_by(f32::total_cmp);
                t
            };
            let (tmin, tmax, tmed) = (times[0], times[times.len() - 1], times[times.len() / 2]);
            let mut days: Vec<f32> = times.iter().map(|t| t.floor()).collect();
            days.dedup();
            let n_u = items_of[u].len() as f32;
            let u_mean_rating =
                ctx.fit[u].iter().map(|(_, r)| *r).sum::<f32>() / ctx.fit[u].len() as f32;
            let years: Vec<f32> = items_of[u]
                .iter()
                .map(|i| meta.year[*i as usize])
                .filter(|y| y.is_finite())
                .collect();
            let u_year = years.iter().sum::<f32>() / years.len().max(1) as f32;
            let mut g = vec![0.0f32; meta.n_genres];
            for i in &items_of[u] {
                for k in &meta.genres[*i as usize] {
                    g[*k] += 1.0 / meta.genres[*i as usize].len() as f32;
                }
            }
            let gs: f32 = g.iter().sum::<f32>().max(1.0);
            let u_mean_pop = items_of[u].iter().map(|i| pop[*i as usize]).sum::<f32>() / n_u;
            let mut feats = Vec::with_capacity(cands.len());
            let mut labels = Vec::with_capacity(cands.len());
            let mut pairs = Vec::with_capacity(cands.len());
            for &i in &cands {
                let iu = i as usize;
                let it = &item_times[iu];
                let (first, med) = if it.is_empty() {
                    (300.0, 300.0)
                } else {
                    (it[0], it[it.len() / 2])
                };
                let inwin = count_in(it, tmin - 1.0, tmax + 1.0);
                let near_days: f32 = days.iter().map(|d| count_in(it, d - 3.0, d + 4.0)).sum();
                let genre_match = meta.genres[iu].iter().map(|k| g[*k] / gs).sum::<f32>()
                    / meta.genres[iu].len().max(1) as f32;
                let same_gender = if meta.male[u] {
                    male_share[iu]
                } else {
                    1.0 - male_share[iu]
                };
                let occ = (occ_count[iu][meta.occupation[u]] + 1.0)
                    / (users_of[iu].len() as f32 + n_occ as f32);
                feats.push(vec![
                    als[[u, iu]],
                    als_rank[iu],
                    ease[[u, iu]],
                    rp3[[u, iu]],
                    uknn[[u, iu]],
                    pop[iu],
                    n_u.ln(),
                    ratings_of[iu],
                    u_mean_rating,
                    first - tmax,
                    first - tmin,
                    med - tmed,
                    inwin / (it.len() as f32).max(1.0),
                    inwin.ln_1p(),
                    tmax - tmin,
                    tmed,
                    meta.year[iu],
                    meta.year[iu] - u_year,
                    genre_match,
                    same_gender,
                    (meta.age[u] - mean_age[iu]).abs(),
                    occ,
                    u_mean_pop,
                    first,
                    ease_rank[iu],
                    (near_days / days.len() as f32).ln_1p(),
                    (days.len() as f32).ln(),
                ]);
                labels.push(if held.contains(&i) { 1.0 } else { 0.0 });
                pairs.push((u, i));
            }
            (pairs, feats, labels)
        })
        .collect();
    let nf = FEATURES.len();
    let mut x = vec![Vec::new(); nf];
    let mut y = Vec::new();
    let mut groups = vec![0];
    let mut pairs = Vec::new();
    for (p, f, l) in per_user {
        for row in f {
            for (k, v) in row.into_iter().enumerate() {
                x[k].push(v);
            }
        }
        y.extend(l);
        pairs.extend(p);
        groups.push(y.len());
    }
    let base = vec![0.0; y.len()];
    Block {
        pairs,
        data: Data { x, y, groups, base },
    }
}

fn concat(blocks: &[&Block], mask: Option<&[usize]>, base_scale: f32) -> Data {
    let nf = FEATURES.len();
    let mut x = vec![Vec::new(); nf];
    let mut y = Vec::new();
    let mut groups = vec![0];
    for b in blocks {
        let feats: Vec<usize> = mask.map_or((0..nf).collect(), |m| m.to_vec());
        for (k, f) in feats.iter().enumerate() {
            x[k].extend_from_slice(&b.data.x[*f]);
        }
        let off = y.len();
        y.extend_from_slice(&b.data.y);
        groups.extend(b.data.groups[1..].iter().map(|g| g + off));
    }
    x.truncate(mask.map_or(nf, |m| m.len()));
    let base = blocks
        .iter()
        .flat_map(|b| b.data.x[0].iter().map(|z| base_scale * z))
        .collect();
    Data { x, y, groups, base }
}

/// Scores of a context where candidates get `1000 + model score` (others their ALS z-score,
/// below every candidate), and its metrics.
fn rerank_metrics(ctx: &Ctx, als: &Array2<f32>, b: &Block, pred: &[f32]) -> Metrics {
    let mut s = als.clone();
    for ((u, i), p) in b.pairs.iter().zip(pred) {
        s[[*u, *i as usize]] = 1000.0 + p;
    }
    metrics(ctx, common::MOVIES, &s)
}

/// ALS z-score plus a weighted sum of globally standardised features over the candidates:
/// each feature's weight alone on validation, then a greedy combination on validation; the
/// test metrics of the combination.
fn linear(ctxs: &[Ctx], blocks: &[(Array2<f32>, Block)], val_als: f64) -> Metrics {
    let nf = FEATURES.len();
    // Standardisation from the validation rows.
    let stats: Vec<(f32, f32)> = (0..nf)
        .map(|f| {
            let v: Vec<f32> = blocks[..5]
                .iter()
                .flat_map(|(_, b)| b.data.x[f].iter().copied())
                .filter(|x| x.is_finite())
                .collect();
            let m = v.iter().sum::<f32>() / v.len() as f32;
            let sd = (v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / v.len() as f32).sqrt();
            (m, sd.max(1e-6))
        })
        .collect();
    let score = |b: &Block, ws: &[f32]| -> Vec<f32> {
        (0..b.data.rows())
            .map(|r| {
                let mut s = b.data.x[0][r];
                for (f, w) in ws.iter().enumerate() {
                    if *w != 0.0 {
                        let x = b.data.x[f][r];
                        let z = if x.is_finite() {
                            (x - stats[f].0) / stats[f].1
                        } else {
                            0.0
                        };
                        s += w * z;
                    }
                }
                s
            })
            .collect()
    };
    let val = |ws: &[f32]| {
        mean(
            &(0..5)
                .map(|g| {
                    rerank_metrics(
                        &ctxs[g],
                        &blocks[g].0,
                        &blocks[g].1,
                        &score(&blocks[g].1, ws),
                    )
                })
                .collect::<Vec<_>>(),
        )
        .ndcg
    };
    let steps = [-0.4f32, -0.2, -0.1, -0.05, 0.05, 0.1, 0.2, 0.4];
    for f in 1..nf {
        let mut line = Vec::new();
        for w in steps {
            let mut ws = vec![0.0; nf];
            ws[f] = w;
            line.push(val(&ws) - val_als);
        }
        eprintln!(
            "  {:24} Δval N by w {:?}",
            FEATURES[f],
            line.iter().map(|d| format!("{d:+.4}")).collect::<Vec<_>>()
        );
    }
    let mut ws = vec![0.0f32; nf];
    let mut cur = val(&ws);
    for _ in 0..2 {
        for f in 1..nf {
            for w in steps {
                let mut t = ws.clone();
                t[f] += w;
                let v = val(&t);
                if v > cur + 1e-4 {
                    cur = v;
                    ws = t;
                }
            }
        }
    }
    eprintln!(
        "  greedy: val N {cur:.4} (ALS {val_als:.4}) with {:?}",
        FEATURES
            .iter()
            .zip(&ws)
            .filter(|(_, w)| **w != 0.0)
            .collect::<Vec<_>>()
    );
    rerank_metrics(
        &ctxs[5],
        &blocks[5].0,
        &blocks[5].1,
        &score(&blocks[5].1, &ws),
    )
}

fn main() {
    let start = Instant::now();
    let args: Vec<String> = std::env::args().collect();
    let seeds: Vec<u64> = args
        .get(1)
        .map_or("42", |s| s.as_str())
        .split(',')
        .map(|s| s.parse().expect("seed"))
        .collect();
    // Optional feature subset: names separated by commas ("all" = every feature).
    let mask: Option<Vec<usize>> = args.get(2).filter(|s| *s != "all").map(|s| {
        s.split(',')
            .map(|n| FEATURES.iter().position(|f| f == &n).expect("feature name"))
            .collect()
    });
    let ratings = common::ratings();
    let rows = common::rows(&ratings);
    let meta = meta(&ratings);
    let _ = meta.t0;
    let n = common::MOVIES;
    // Grid: objective:depth:base-scale[,...] (base margin = scale × ALS z-score).
    let grid = std::env::var("RR_GRID").unwrap_or_else(|_| "lambda:3:2,logistic:3:1".into());
    let lr: f32 = std::env::var("RR_LR")
        .ok()
        .map_or(0.05, |v| v.parse().expect("lr"));
    let configs: Vec<(Params, f32)> = grid
        .split(',')
        .map(|c| {
            let f: Vec<&str> = c.split(':').collect();
            let objective = if f[0] == "lambda" {
                Objective::LambdaRank
            } else {
                Objective::Logistic
            };
            (
                Params {
                    trees: 400,
                    depth: f[1].parse().expect("depth"),
                    lr,
                    lambda: 1.0,
                    min_hess: if matches!(objective, Objective::Logistic) {
                        5.0
                    } else {
                        1.0
                    },
                    subsample: 0.8,
                    objective,
                    seed: 1,
                },
                f[2].parse().expect("scale"),
            )
        })
        .collect();
    let checkpoints = [0usize, 50, 100, 200, 300, 400];
    let mut res_als = Vec::new();
    let mut res_rr = Vec::new();
    for &seed in &seeds {
        let ctxs = contexts(&rows, seed);
        let als_params = AlsParams {
            seed,
            ..AlsParams::default()
        };
        let blocks: Vec<(Array2<f32>, Block)> = ctxs
            .iter()
            .map(|c| {
                let als = zscore(
                    c,
                    &cached(&format!("als_default_s{seed}_{}", c.name), || {
                        als_scores(c, n, &als_params)
                    }),
                );
                let ease = zscore(
                    c,
                    &cached(&format!("ease400_s{seed}_{}", c.name), || {
                        ease_scores(c, n, &EaseParams::default())
                    }),
                );
                let rp3 = zscore(c, &rp3_scores(c, n, 0.8, 0.5, 2000));
                let uknn = zscore(c, &uknn_scores(c, n, 10.0, 120, 2.0));
                let b = block(c, &meta, &als, &ease, &rp3, &uknn);
                (als, b)
            })
            .collect();
        let recall_cands: f64 = {
            let b = &blocks[5].1;
            let pos: f32 = b.data.y.iter().sum();
            let all: usize = ctxs[5].held.iter().map(Vec::len).sum();
            pos as f64 / all as f64
        };
        eprintln!(
            "seed {seed}: features built ({:.0?}); test candidates hold {:.1}% of held-out",
            start.elapsed(),
            100.0 * recall_cands
        );
        let folds: Vec<&Block> = blocks[..5].iter().map(|(_, b)| b).collect();
        let val_als = mean(
            &(0..5)
                .map(|g| metrics(&ctxs[g], n, &blocks[g].0))
                .collect::<Vec<_>>(),
        );
        if std::env::var("RR_LINEAR").is_ok() {
            let t = linear(&ctxs, &blocks, val_als.ndcg);
            let a = metrics(&ctxs[5], n, &blocks[5].0);
            println!(
                "seed {seed}: ALS test P {:.4} N {:.4} | ALS + linear features P {:.4} N {:.4}",
                a.precision, a.ndcg, t.precision, t.ndcg
            );
            res_als.push(a);
            res_rr.push(t);
            continue;
        }
        // Cross-fitting: per config, per checkpoint, the mean over held-out folds.
        let mut best = (f64::MIN, 0usize, 0usize);
        for (ci, (cfg, cfg_scale)) in configs.iter().enumerate() {
            let cfg_scale = *cfg_scale;
            let mut per_ck = vec![Vec::new(); checkpoints.len()];
            for g in 0..5 {
                let train_blocks: Vec<&Block> =
                    (0..5).filter(|h| *h != g).map(|h| folds[h]).collect();
                let model = gbdt::train(&concat(&train_blocks, mask.as_deref(), cfg_scale), cfg);
                let held = concat(&[folds[g]], mask.as_deref(), cfg_scale);
                for (k, &t) in checkpoints.iter().enumerate() {
                    let pred = model.predict(&held, t);
                    per_ck[k].push(rerank_metrics(&ctxs[g], &blocks[g].0, folds[g], &pred));
                }
            }
            for (k, ms) in per_ck.iter().enumerate() {
                let m = mean(ms);
                if m.ndcg > best.0 {
                    best = (m.ndcg, ci, checkpoints[k]);
                }
            }
            eprintln!(
                "  {:?} depth {} scale {cfg_scale}: val N by trees {:?} (ALS val N {:.4}) ({:.0?})",
                cfg.objective,
                cfg.depth,
                per_ck
                    .iter()
                    .map(|ms| format!("{:.4}", mean(ms).ndcg))
                    .collect::<Vec<_>>(),
                val_als.ndcg,
                start.elapsed()
            );
        }
        let (_, ci, trees) = best;
        let cfg_scale = configs[ci].1;
        let cfg = Params {
            trees,
            ..configs[ci].0
        };
        let model = gbdt::train(&concat(&folds, mask.as_deref(), cfg_scale), &cfg);
        let test_block = &blocks[5].1;
        let pred = model.predict(&concat(&[test_block], mask.as_deref(), cfg_scale), trees);
        let t = rerank_metrics(&ctxs[5], &blocks[5].0, test_block, &pred);
        let a = metrics(&ctxs[5], n, &blocks[5].0);
        println!(
            "seed {seed}: ALS test P {:.4} N {:.4} | rerank ({:?} depth {} trees {}) P {:.4} N {:.4} ({:.0?})",
            a.precision,
            a.ndcg,
            cfg.objective,
            cfg.depth,
            trees,
            t.precision,
            t.ndcg,
            start.elapsed()
        );
        res_als.push(a);
        res_rr.push(t);
    }
    for (name, ms) in [
        ("als", &res_als),
        (
            if std::env::var("RR_LINEAR").is_ok() {
                "als + linear features (top-100)"
            } else {
                "als top-100 + GBDT rerank"
            },
            &res_rr,
        ),
    ] {
        print_row(name, ms);
    }
    println!("wall time {:.1?}", start.elapsed());
}
