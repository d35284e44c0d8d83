//! Research spike: temporal adjacency. Many MovieLens 100K users rated dozens of movies in one
//! sitting, in the order the site showed them; movies rated next to each other (by time,
//! within a user's training ratings) may be shown together. `T_ij` counts, over the training
//! users, how often `j` was rated within `window` positions of `i` in the user's sequence
//! (weight 1/distance), normalised by `d_j^beta`; a user scores `Σ_{i ∈ train} T_i·`. Alone and
//! blended with ALS (z-scores, weight on validation), under the protocol of
//! `recommender::evaluation` (choices on the five validation folds of the 75%, report on 25%).
//! Run: `cargo run --release -p recommender --example adjacency -- 42,7,13,21,99`.

mod common;
mod zoo;

use ndarray::Array2;
use recommender::als::AlsParams;
use std::collections::HashMap;
use std::time::Instant;
use zoo::*;

fn adjacency_scores(
    ctx: &Ctx,
    n: usize,
    ts: &HashMap<(u32, u32), f64>,
    window: usize,
    beta: f64,
) -> Array2<f32> {
    let mut t = vec![0.0f32; n * n];
    let mut deg = vec![0.0f64; n];
    for (u, row) in ctx.fit.iter().enumerate() {
        let mut seq: Vec<(f64, u32)> = row.iter().map(|(i, _)| (ts[&(u as u32, *i)], *i)).collect();
        seq.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (p, &(_, i)) in seq.iter().enumerate() {
            deg[i as usize] += 1.0;
            for d in 1..=window {
                if p + d >= seq.len() {
                    break;
                }
                let j = seq[p + d].1;
                let w = 1.0 / d as f32;
                t[i as usize * n + j as usize] += w;
                t[j as usize * n + i as usize] += w;
            }
        }
    }
    for i in 0..n {
        for j in 0..n {
            t[i * n + j] = (t[i * n + j] as f64 / deg[j].max(1.0).powf(beta)) as f32;
        }
    }
    item_item_scores(ctx, n, &t)
}

/// Validation NDCG, (window, β), the folds' z-scored matrices.
type Best = (f64, (usize, f64), Vec<Array2<f32>>);

fn main() {
    let start = Instant::now();
    let seeds: Vec<u64> = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "42".into())
        .split(',')
        .map(|s| s.parse().expect("seed"))
        .collect();
    let ratings = common::ratings();
    let ts: HashMap<(u32, u32), f64> = ratings
        .iter()
        .map(|r| ((r.user as u32, r.item), r.timestamp))
        .collect();
    let rows = common::rows(&ratings);
    let n = common::MOVIES;
    let grid: Vec<(usize, f64)> = [1usize, 3, 10]
        .iter()
        .flat_map(|w| [0.0, 0.5, 1.0].map(|b| (*w, b)))
        .collect();
    let weights = [0.0f32, 0.05, 0.1, 0.2, 0.3, 0.5];
    let (mut r_als, mut r_adj, mut r_blend) = (Vec::new(), Vec::new(), Vec::new());
    for &seed in &seeds {
        let ctxs = contexts(&rows, seed);
        let als_params = AlsParams {
            seed,
            ..AlsParams::default()
        };
        let als: Vec<Array2<f32>> = ctxs
            .iter()
            .map(|c| {
                zscore(
                    c,
                    &cached(&format!("als_default_s{seed}_{}", c.name), || {
                        als_scores(c, n, &als_params)
                    }),
                )
            })
            .collect();
        let val = |s: &[Array2<f32>]| {
            mean(
                &(0..5)
                    .map(|g| metrics(&ctxs[g], n, &s[g]))
                    .collect::<Vec<_>>(),
            )
        };
        let mut best: Option<Best> = None;
        for &(w, b) in &grid {
            let s: Vec<Array2<f32>> = ctxs[..5]
                .iter()
                .map(|c| zscore(c, &adjacency_scores(c, n, &ts, w, b)))
                .collect();
            let v = val(&s);
            eprintln!(
                "seed {seed} window {w} beta {b}: val P {:.4} N {:.4} ({:.0?})",
                v.precision,
                v.ndcg,
                start.elapsed()
            );
            if best.as_ref().is_none_or(|x| v.ndcg > x.0) {
                best = Some((v.ndcg, (w, b), s));
            }
        }
        let (_, (w, b), mut s) = best.expect("grid");
        s.push(zscore(&ctxs[5], &adjacency_scores(&ctxs[5], n, &ts, w, b)));
        let mut bw = (f64::MIN, 0.0f32);
        for x in weights {
            let blend: Vec<Array2<f32>> = (0..5).map(|g| &als[g] + &(&s[g] * x)).collect();
            let v = val(&blend).ndcg;
            eprintln!("  blend w {x}: val N {v:.4}");
            if v > bw.0 {
                bw = (v, x);
            }
        }
        let a = metrics(&ctxs[5], n, &als[5]);
        let t_adj = metrics(&ctxs[5], n, &s[5]);
        let t = metrics(&ctxs[5], n, &(&als[5] + &(&s[5] * bw.1)));
        println!(
            "seed {seed}: ALS P {:.4} N {:.4} | adjacency (w {w} β {b}) P {:.4} N {:.4} | ALS + {} adjacency P {:.4} N {:.4}",
            a.precision, a.ndcg, t_adj.precision, t_adj.ndcg, bw.1, t.precision, t.ndcg
        );
        r_als.push(a);
        r_adj.push(t_adj);
        r_blend.push(t);
    }
    print_row("als", &r_als);
    print_row("temporal adjacency", &r_adj);
    print_row("als + adjacency (w on validation)", &r_blend);
    println!("wall time {:.1?}", start.elapsed());
}
