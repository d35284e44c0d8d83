//! `run_seeds` over the five split seeds of the issue on MovieLens 100K.
//! Run: `cargo run --release -p recommender --example eval_seeds -- quick|search`.

mod common;

use recommender::evaluation::{Mode, run_seeds};
use std::time::Instant;

fn main() {
    let mode = match std::env::args().nth(1).as_deref() {
        Some("search") => Mode::Search,
        _ => Mode::Quick,
    };
    let rows = common::rows(&common::ratings());
    let start = Instant::now();
    let report = run_seeds(&rows, common::MOVIES, &[42, 7, 13, 21, 99], mode, |p| {
        eprintln!(
            "[{}/{}] {:?} {}",
            p.done,
            p.total,
            start.elapsed(),
            p.message
        );
    });
    for r in &report.per_seed {
        println!(
            "seed {:3}: als P {:.4} N {:.4} | ease P {:.4} N {:.4} | blend P {:.4} N {:.4} | pop P {:.4} | als reg {} alpha {} ease λ {} w {}",
            r.seed,
            r.als.precision,
            r.als.ndcg,
            r.ease.precision,
            r.ease.ndcg,
            r.blend.precision,
            r.blend.ndcg,
            r.popularity.precision,
            r.als_params.reg,
            r.als_params.alpha,
            r.blend_params.ease.lambda,
            r.blend_params.als_weight
        );
    }
    println!("mode {:?}, served kind {}", report.mode, report.kind.name());
    println!("| model | P@10 | R@10 | NDCG@10 | coverage |");
    for m in &report.summary {
        println!(
            "| {} | {:.4} ± {:.4} | {:.4} ± {:.4} | {:.4} ± {:.4} | {:.3} ± {:.3} |",
            m.model,
            m.precision.mean,
            m.precision.sd,
            m.recall.mean,
            m.recall.sd,
            m.ndcg.mean,
            m.ndcg.sd,
            m.coverage.mean,
            m.coverage.sd
        );
    }
    println!("wall time {:.1?}", start.elapsed());
}
