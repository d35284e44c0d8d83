//! Responsiveness on MovieLens 100K: models trained on all data; for 50 random users, rate the
//! six best-rated animated films (unseen by the user) 5 stars and count animated films in the
//! top 20 unseen before and after; then (from the original ratings) rate eight horror films
//! 1 star and check horror's share of the top 20 does not go up.
//! Run: `cargo run --release -p recommender --example responsiveness`.

mod common;

use ndarray::Array1;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use recommender::als::{self, AlsParams};
use recommender::blend::{self, BlendParams};
use recommender::data::Interactions;
use recommender::ease::Ease;
use recommender::model::ItemModel;

fn main() {
    let rows = common::rows(&common::ratings());
    let n = 1682;
    let items = std::fs::read_to_string("data/ml-100k/ml-100k.item").expect("items");
    let mut genres: Vec<Vec<String>> = vec![Vec::new(); n];
    for line in items.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let i: usize = f[0].parse().expect("item");
        genres[i - 1] = f
            .get(3)
            .unwrap_or(&"")
            .split(' ')
            .map(String::from)
            .collect();
    }
    let is = |i: u32, g: &str| genres[i as usize].iter().any(|x| x == g);
    // Mean rating and count per item.
    let mut sum = vec![0.0f64; n];
    let mut count = vec![0usize; n];
    for row in &rows {
        for &(i, r) in row {
            sum[i as usize] += r as f64;
            count[i as usize] += 1;
        }
    }
    let by = |g: &str, key: &dyn Fn(usize) -> f64| {
        let mut v: Vec<u32> = (0..n as u32)
            .filter(|i| is(*i, g) && count[*i as usize] >= 20)
            .collect();
        v.sort_by(|a, b| key(*b as usize).total_cmp(&key(*a as usize)));
        v
    };
    let best_animation = by("Animation", &|i| sum[i] / count[i] as f64);
    let popular_horror = by("Horror", &|i| count[i] as f64);

    let params = AlsParams::default();
    let data = Interactions::from_user_rows(n, rows.clone());
    let f = als::train(&data, &params, |_, _| {});
    let model = ItemModel::new(f.items, params.regularisation(), params.alpha);
    let bp = BlendParams::default();
    let ease = Ease::train(&rows, n, &bp.ease);

    let mut users: Vec<usize> = (0..943).collect();
    users.shuffle(&mut ChaCha8Rng::seed_from_u64(2024));
    users.truncate(50);

    type Scorer<'a> = Box<dyn Fn(&[(u32, f32)]) -> Array1<f32> + 'a>;
    let scorers: Vec<(&str, Scorer)> = vec![
        (
            "als",
            Box::new(|r: &[(u32, f32)]| model.scores(model.fold_in(r).view())),
        ),
        ("ease", Box::new(|r: &[(u32, f32)]| ease.scores(r))),
        (
            "als+ease",
            Box::new(|r: &[(u32, f32)]| {
                blend::scores(
                    &model,
                    Some(&ease),
                    model.fold_in(r).view(),
                    r,
                    bp.als_weight,
                )
            }),
        ),
    ];
    let count_in = |ratings: &[(u32, f32)], scores: &Array1<f32>, g: &str| {
        let seen: Vec<u32> = ratings.iter().map(|(i, _)| *i).collect();
        ItemModel::top_n(scores, &seen, 20)
            .iter()
            .filter(|(i, _)| is(*i, g))
            .count()
    };
    for same_candidates in [false, true] {
        println!("same candidate set before and after: {same_candidates}");
        for (name, score) in &scorers {
            let (mut moved, mut not_up) = (0, 0);
            let (mut before_a, mut after_a, mut before_h, mut after_h) = (0, 0, 0, 0);
            for &u in &users {
                let base = &rows[u];
                let seen: Vec<u32> = base.iter().map(|(i, _)| *i).collect();
                let mut liked = base.clone();
                liked.extend(
                    best_animation
                        .iter()
                        .filter(|i| !seen.contains(i))
                        .take(6)
                        .map(|i| (*i, 5.0)),
                );
                // Same candidates before and after: the six newly rated films are excluded from both.
                let before = if same_candidates {
                    count_in(&liked, &score(base), "Animation")
                } else {
                    count_in(base, &score(base), "Animation")
                };
                let after = count_in(&liked, &score(&liked), "Animation");
                moved += usize::from(after > before);
                before_a += before;
                after_a += after;
                let mut disliked = base.clone();
                disliked.extend(
                    popular_horror
                        .iter()
                        .filter(|i| !seen.contains(i))
                        .take(8)
                        .map(|i| (*i, 1.0)),
                );
                let hb = if same_candidates {
                    count_in(&disliked, &score(base), "Horror")
                } else {
                    count_in(base, &score(base), "Horror")
                };
                let ha = count_in(&disliked, &score(&disliked), "Horror");
                not_up += usize::from(ha <= hb);
                before_h += hb;
                after_h += ha;
            }
            println!(
                "{name:9} six 5-star animated: {moved}/50 users gained animated films in top 20 (total {before_a} -> {after_a}); eight 1-star horror: horror share not up for {not_up}/50 (total {before_h} -> {after_h})"
            );
        }
    }
}
