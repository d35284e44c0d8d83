//! Research spike: iALS with Rendle et al. (2021)'s frequency-scaled regularisation
//! `λ·(n + offset)^ν`, constant or rating-weighted confidence, more factors and epochs, on
//! MovieLens 100K under the protocol of `recommender::evaluation`: every candidate scored on
//! the five validation folds of each split's 75% (mean NDCG@10), the validation-best one
//! retrained on the 75% and scored on the 25%.
//! Run: `cargo run --release -p recommender --example ials_grid -- 42,7,13,21,99 GRID` where
//! GRID is `factors:epochs:lambda:nu:offset:alpha:power[;...]`.

mod common;
mod zoo;

use recommender::metrics::Metrics;
use std::time::Instant;
use zoo::*;

fn main() {
    let start = Instant::now();
    let args: Vec<String> = std::env::args().collect();
    let seeds: Vec<u64> = args[1]
        .split(',')
        .map(|s| s.parse().expect("seed"))
        .collect();
    let grid: Vec<(String, Ials)> = args[2]
        .split(';')
        .map(|c| {
            let f: Vec<f64> = c.split(':').map(|v| v.parse().expect("number")).collect();
            (
                c.to_string(),
                Ials {
                    factors: f[0] as usize,
                    epochs: f[1] as usize,
                    lambda: f[2],
                    nu: f[3],
                    offset: f[4],
                    alpha: f[5],
                    power: f[6],
                    init: f.get(7).copied().unwrap_or(0.1),
                    seed: 0,
                },
            )
        })
        .collect();
    let n = common::MOVIES;
    let rows = common::rows(&common::ratings());
    let mut chosen: Vec<Metrics> = Vec::new();
    let mut per_cfg_test: Vec<Vec<Metrics>> = vec![Vec::new(); grid.len()];
    let test_all = std::env::var("IALS_TEST_ALL").is_ok();
    for &seed in &seeds {
        let ctxs = contexts(&rows, seed);
        let mut best = (f64::MIN, 0usize);
        for (gi, (name, p)) in grid.iter().enumerate() {
            let p = Ials { seed, ..*p };
            let v = mean(
                &ctxs[..5]
                    .iter()
                    .map(|c| metrics(c, n, &ials_scores(c, n, &p)))
                    .collect::<Vec<_>>(),
            );
            eprintln!(
                "seed {seed} {name}: val P {:.4} N {:.4} ({:.0?})",
                v.precision,
                v.ndcg,
                start.elapsed()
            );
            if v.ndcg > best.0 {
                best = (v.ndcg, gi);
            }
            if test_all {
                let t = metrics(&ctxs[5], n, &ials_scores(&ctxs[5], n, &p));
                per_cfg_test[gi].push(t);
            }
        }
        let p = Ials {
            seed,
            ..grid[best.1].1
        };
        let t = metrics(&ctxs[5], n, &ials_scores(&ctxs[5], n, &p));
        println!(
            "seed {seed}: val-best {} (val N {:.4}): test P {:.4} N {:.4}",
            grid[best.1].0, best.0, t.precision, t.ndcg
        );
        chosen.push(t);
    }
    print_row("iALS, validation-chosen", &chosen);
    if test_all {
        for (gi, ms) in per_cfg_test.iter().enumerate() {
            print_row(&format!("(test, not chosen) {}", grid[gi].0), ms);
        }
    }
    println!("wall time {:.1?}", start.elapsed());
}
