//! Research spike: other model families beside ALS and EASE on MovieLens 100K, alone and
//! blended with ALS, under the protocol of `recommender::evaluation` (per split: five
//! validation folds carved from the 75%, every choice by mean validation NDCG@10, then the
//! 25% test).
//!
//! Families: RP3beta (graph walk with a popularity penalty), item kNN (cosine with shrink),
//! user kNN. Each family's grid is scored on the folds; the validation-best member is then
//! blended with ALS (z-scores over unseen items, weight on validation).
//! Run: `cargo run --release -p recommender --example model_zoo -- 42,7,13,21,99`.

mod common;
mod zoo;

use ndarray::Array2;
use recommender::als::AlsParams;
use recommender::ease::EaseParams;
use recommender::metrics::Metrics;
use std::time::Instant;
use zoo::*;

type Scorer = Box<dyn Fn(&Ctx) -> Array2<f32> + Sync>;

fn families() -> Vec<(&'static str, Vec<(String, Scorer)>)> {
    let n = common::MOVIES;
    let mut rp3: Vec<(String, Scorer)> = Vec::new();
    for alpha in [0.6, 0.8, 1.0] {
        for beta in [0.2, 0.35, 0.5] {
            for topk in [100usize, 300, 2000] {
                rp3.push((
                    format!("rp3 a{alpha} b{beta} k{topk}"),
                    Box::new(move |c: &Ctx| rp3_scores(c, n, alpha, beta, topk)),
                ));
            }
        }
    }
    let mut iknn: Vec<(String, Scorer)> = Vec::new();
    for shrink in [0.0, 20.0, 100.0] {
        for topk in [50usize, 200, 2000] {
            iknn.push((
                format!("iknn s{shrink} k{topk}"),
                Box::new(move |c: &Ctx| iknn_scores(c, n, shrink, topk)),
            ));
        }
    }
    let mut uknn: Vec<(String, Scorer)> = Vec::new();
    for topk in [30usize, 60, 120, 250] {
        for power in [1.0, 2.0] {
            uknn.push((
                format!("uknn k{topk} p{power}"),
                Box::new(move |c: &Ctx| uknn_scores(c, n, 10.0, topk, power)),
            ));
        }
    }
    vec![("rp3beta", rp3), ("iknn", iknn), ("uknn", uknn)]
}

const WEIGHTS: [f32; 8] = [0.0, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0];

fn main() {
    let start = Instant::now();
    let seeds: Vec<u64> = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "42".into())
        .split(',')
        .map(|s| s.parse().expect("seed"))
        .collect();
    let rows = common::rows(&common::ratings());
    let n = common::MOVIES;
    let fams = families();
    // result name -> per-seed test metrics
    let mut results: Vec<(String, Vec<Metrics>)> = Vec::new();
    let mut push = |name: String, m: Metrics| {
        if let Some(r) = results.iter_mut().find(|r| r.0 == name) {
            r.1.push(m);
        } else {
            results.push((name, vec![m]));
        }
    };
    for &seed in &seeds {
        let ctxs = contexts(&rows, seed);
        let als_params = AlsParams {
            seed,
            ..AlsParams::default()
        };
        let als: Vec<Array2<f32>> = ctxs
            .iter()
            .map(|c| {
                let s = cached(&format!("als_default_s{seed}_{}", c.name), || {
                    als_scores(c, n, &als_params)
                });
                zscore(c, &s)
            })
            .collect();
        let ease: Vec<Array2<f32>> = ctxs
            .iter()
            .map(|c| {
                let s = cached(&format!("ease400_s{seed}_{}", c.name), || {
                    ease_scores(c, n, &EaseParams::default())
                });
                zscore(c, &s)
            })
            .collect();
        let (folds, test) = ctxs.split_at(5);
        let test = &test[0];
        let val = |scores: &[Array2<f32>]| {
            mean(
                &folds
                    .iter()
                    .zip(scores)
                    .map(|(c, s)| metrics(c, n, s))
                    .collect::<Vec<_>>(),
            )
        };
        let v_als = val(&als[..5]);
        let t_als = metrics(test, n, &als[5]);
        println!(
            "seed {seed}: ALS val N {:.4} | test P {:.4} N {:.4}",
            v_als.ndcg, t_als.precision, t_als.ndcg
        );
        push("als".into(), t_als);
        let mut bests: Vec<(&str, Vec<Array2<f32>>)> = vec![("ease", ease)];
        for (family, members) in &fams {
            let mut best: Option<(f64, String, Vec<Array2<f32>>)> = None;
            for (name, scorer) in members {
                let s: Vec<Array2<f32>> = folds.iter().map(|c| zscore(c, &scorer(c))).collect();
                let v = val(&s);
                println!(
                    "  {name:28} val P {:.4} N {:.4}  ({:.0?})",
                    v.precision,
                    v.ndcg,
                    start.elapsed()
                );
                if best.as_ref().is_none_or(|b| v.ndcg > b.0) {
                    best = Some((v.ndcg, name.clone(), s));
                }
            }
            let (_, name, mut s) = best.expect("grid");
            let scorer = &members.iter().find(|m| m.0 == name).expect("member").1;
            s.push(zscore(test, &scorer(test)));
            let t = metrics(test, n, &s[5]);
            println!(
                "  {family}: val-best {name}: test P {:.4} N {:.4}",
                t.precision, t.ndcg
            );
            push(family.to_string(), t);
            bests.push((family, s));
        }
        // ALS + each family, weight on validation.
        for (family, s) in &bests {
            let blend = |w: f32, i: usize| &als[i] * (1.0 - w) + &s[i] * w;
            let mut best = (f64::MIN, 0.0f32);
            for w in WEIGHTS {
                let v = mean(
                    &(0..5)
                        .map(|i| metrics(&folds[i], n, &blend(w, i)))
                        .collect::<Vec<_>>(),
                );
                if v.ndcg > best.0 {
                    best = (v.ndcg, w);
                }
            }
            let t = metrics(test, n, &blend(best.1, 5));
            println!(
                "  als+{family}: val-best w {} (val N {:.4}): test P {:.4} N {:.4}",
                best.1, best.0, t.precision, t.ndcg
            );
            push(format!("als+{family}"), t);
        }
        // All together: greedy coordinate search on validation over the z-scored families.
        let all: Vec<&Vec<Array2<f32>>> = bests.iter().map(|(_, s)| s).collect();
        let combo = |ws: &[f32], i: usize| {
            let mut out = als[i].clone();
            for (w, s) in ws.iter().zip(&all) {
                if *w != 0.0 {
                    out = out + &s[i] * *w;
                }
            }
            out
        };
        let val_of = |ws: &[f32]| {
            mean(
                &(0..5)
                    .map(|i| metrics(&folds[i], n, &combo(ws, i)))
                    .collect::<Vec<_>>(),
            )
            .ndcg
        };
        let mut ws = vec![0.0f32; all.len()];
        let mut cur = val_of(&ws);
        for _round in 0..2 {
            for m in 0..all.len() {
                for cand in [0.0f32, 0.1, 0.2, 0.35, 0.5, 0.75] {
                    let mut t = ws.clone();
                    t[m] = cand;
                    let v = val_of(&t);
                    if v > cur + 1e-5 {
                        cur = v;
                        ws = t;
                    }
                }
            }
        }
        let t = metrics(test, n, &combo(&ws, 5));
        println!(
            "  als+all weights {ws:?} (val N {cur:.4}): test P {:.4} N {:.4}  ({:.0?})",
            t.precision,
            t.ndcg,
            start.elapsed()
        );
        push("als+all (greedy)".into(), t);
    }
    println!("\n| model | P@10 | NDCG@10 | seeds |");
    for (name, ms) in &results {
        print_row(name, ms);
    }
    println!("wall time {:.1?}", start.elapsed());
}
