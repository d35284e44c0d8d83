//! An uncached recommendation's computation: fold a user in from their ratings, score every
//! movie, take the top 10 without seen movies. At the MovieLens-25M shape (62,000 movies, 64
//! factors, a user with 200 ratings), at that shape with 128 factors (the default of
//! `origin train`), and at MovieLens 100K (1,682 movies).
//!
//! Run: `cargo bench -p recommender`. Prints Criterion's estimate and P50/P95/P99 over 2,000
//! timed runs of each case; then, for scoring alone (every movie's dot product with the user's
//! vector), the time per movie scored beside this machine's memory-bandwidth bound: the item
//! factors (62,000 × 64 f32 = 15.9 MB) are streamed once per recommendation, so no scoring
//! can be faster than their size divided by the bandwidth one core reads memory at, measured
//! here by summing a buffer far larger than the caches. Last, the top 10 found through 8-bit
//! factors (`recommender::screen`: 64 bytes a movie at 64 factors, then the few candidates
//! scored again in f32), the way serving finds it with ALS alone, beside the bound for its
//! bytes.

#![allow(missing_docs)] // criterion_group! generates an undocumented function.

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recommender::model::ItemModel;
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Instant;

fn case(n_items: usize, factors: usize, rated: usize) -> (ItemModel, Vec<(u32, f32)>) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let items = Array2::from_shape_simple_fn((n_items, factors), || rng.random_range(-0.1f32..0.1));
    let ratings = (0..rated)
        .map(|_| {
            (
                rng.random_range(0..n_items as u32),
                (rng.random_range(1..=10) as f32) / 2.0,
            )
        })
        .collect();
    (
        ItemModel::new(
            items,
            recommender::als::Regularisation {
                lambda: 4.0,
                exponent: 0.5,
            },
            1.0,
        ),
        ratings,
    )
}

fn recommend(model: &ItemModel, ratings: &[(u32, f32)]) -> Vec<(u32, f32)> {
    let user = model.fold_in(ratings);
    let scores = model.scores(user.view());
    let seen: Vec<u32> = ratings.iter().map(|(i, _)| *i).collect();
    ItemModel::top_n(&scores, &seen, 10)
}

fn percentiles(name: &str, model: &ItemModel, ratings: &[(u32, f32)]) {
    let mut times: Vec<f64> = (0..2000)
        .map(|_| {
            let start = Instant::now();
            black_box(recommend(model, ratings));
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{name}: p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms",
        at(0.50),
        at(0.95),
        at(0.99)
    );
}

fn bench(c: &mut Criterion) {
    for (name, items, factors, rated) in [
        ("ml-25m shape (62k movies, 64 factors)", 62_000, 64, 200),
        ("ml-25m shape (62k movies, 128 factors)", 62_000, 128, 200),
        ("ml-100k (1,682 movies, 128 factors)", 1_682, 128, 100),
    ] {
        let (model, ratings) = case(items, factors, rated);
        c.bench_function(name, |b| {
            b.iter(|| recommend(black_box(&model), black_box(&ratings)))
        });
        percentiles(name, &model, &ratings);
    }
}

/// Bytes per second one core streams from memory: the best of a few sums over 512 MiB,
/// measured once per run so that every bound printed divides by the same figure.
fn memory_bandwidth() -> f64 {
    static MEASURED: OnceLock<f64> = OnceLock::new();
    *MEASURED.get_or_init(|| {
        let buffer = vec![1.0f32; 128 << 20];
        (0..5)
            .map(|_| {
                let start = Instant::now();
                // Eight independent sums, so the adds keep up with the loads and it vectorises.
                let mut sums = [0.0f32; 8];
                for chunk in buffer.chunks_exact(8) {
                    for (sum, v) in sums.iter_mut().zip(chunk) {
                        *sum += v;
                    }
                }
                black_box(sums);
                (buffer.len() * 4) as f64 / start.elapsed().as_secs_f64()
            })
            .fold(0.0, f64::max)
    })
}

/// Scoring alone, in ns per movie, beside the bandwidth bound of reading its factors.
fn scoring(c: &mut Criterion) {
    let bandwidth = memory_bandwidth();
    println!(
        "memory bandwidth (one core, streaming sum of 512 MiB): {:.1} GB/s",
        bandwidth / 1e9
    );
    for (items, factors) in [(62_000, 64), (62_000, 128)] {
        let (model, ratings) = case(items, factors, 200);
        let user = model.fold_in(&ratings);
        let name = format!("score {items} movies × {factors} factors");
        c.bench_function(&name, |b| b.iter(|| model.scores(black_box(user.view()))));
        let runs = 500;
        let start = Instant::now();
        for _ in 0..runs {
            black_box(model.scores(black_box(user.view())));
        }
        let per_movie = start.elapsed().as_secs_f64() * 1e9 / (runs * items) as f64;
        let bound = (factors * 4) as f64 / bandwidth * 1e9;
        println!(
            "{name}: {per_movie:.2} ns per movie scored; memory-bandwidth bound {bound:.2} ns \
             ({factors} f32 = {} bytes per movie at {:.1} GB/s)",
            factors * 4,
            bandwidth / 1e9
        );
    }
}

/// The exact top 10 through 8-bit factors, in ns per movie, beside the bound of reading them.
fn screened(c: &mut Criterion) {
    let bandwidth = memory_bandwidth();
    for (items, factors) in [(62_000, 64), (62_000, 128)] {
        let (model, ratings) = case(items, factors, 200);
        let user = model.fold_in(&ratings);
        let seen: Vec<u32> = ratings.iter().map(|(i, _)| *i).collect();
        let top = |model: &ItemModel| {
            let approximate = model.approximate(user.view(), None).expect("finite");
            model.screened_top_n(&approximate, user.view(), None, &seen, 10)
        };
        assert_eq!(
            top(&model),
            ItemModel::top_n(&model.scores(user.view()), &seen, 10)
        );
        let name = format!("screened top 10 of {items} movies × {factors} factors");
        c.bench_function(&name, |b| b.iter(|| top(black_box(&model))));
        let runs = 500;
        let start = Instant::now();
        for _ in 0..runs {
            black_box(top(black_box(&model)));
        }
        let per_movie = start.elapsed().as_secs_f64() * 1e9 / (runs * items) as f64;
        let bound = factors as f64 / bandwidth * 1e9;
        println!(
            "{name}: {per_movie:.2} ns per movie; memory-bandwidth bound {bound:.2} ns ({factors} \
             bytes per movie at {:.1} GB/s; f32 scoring reads {} bytes)",
            bandwidth / 1e9,
            factors * 4
        );
    }
}

criterion_group!(benches, bench, scoring, screened);
criterion_main!(benches);
