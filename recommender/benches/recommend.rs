//! An uncached recommendation's computation: fold a user in from their ratings, score every
//! movie, take the top 10 without seen movies. At the MovieLens-25M shape (62,000 movies, 64
//! factors, a user with 200 ratings), at that shape with 128 factors (the default of
//! `origin train`), and at MovieLens 100K (1,682 movies).
//!
//! Run: `cargo bench -p recommender`. Prints Criterion's estimate and P50/P95/P99 over 2,000
//! timed runs of each case.

#![allow(missing_docs)] // criterion_group! generates an undocumented function.

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recommender::model::ItemModel;
use std::hint::black_box;
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

criterion_group!(benches, bench);
criterion_main!(benches);
