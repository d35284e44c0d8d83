//! Where a 1-star rating is negative evidence, in training or only in fold-in: ALS alone over
//! the five split seeds on MovieLens 100K, each variant's mean P@10 and NDCG@10.
//! Run: `cargo run --release -p recommender --example dislike_variants`.

mod common;

use recommender::als::{self, AlsParams, Feedback};
use recommender::data::Interactions;
use recommender::metrics::{evaluate, split_per_user};
use recommender::model::ItemModel;

fn main() {
    let rows = common::rows(&common::ratings());
    let params = AlsParams::default();
    let variants = [
        ("train +, fold-in +", false, false),
        ("train +, fold-in −", false, true),
        ("train −, fold-in −", true, true),
    ];
    for (name, train_negative, fold_negative) in variants {
        let mapping = |negative| {
            if negative {
                Feedback::new(params.alpha)
            } else {
                Feedback::all_positive(params.alpha)
            }
        };
        let (mut p, mut n) = (Vec::new(), Vec::new());
        for seed in [42u64, 7, 13, 21, 99] {
            let (train, test) = split_per_user(&rows, 0.75, seed);
            let data = Interactions::from_user_rows(common::MOVIES, train.clone());
            let params = AlsParams { seed, ..params };
            let factors = als::train_with(&data, &params, mapping(train_negative), |_, _| {});
            let model = ItemModel::with_feedback(
                factors.items,
                params.regularisation(),
                mapping(fold_negative),
            );
            let m = evaluate(&test, common::MOVIES, 10, |u, k| {
                let user = model.fold_in(&train[u]);
                let seen: Vec<u32> = train[u].iter().map(|(i, _)| *i).collect();
                ItemModel::top_n(&model.scores(user.view()), &seen, k)
                    .into_iter()
                    .map(|(i, _)| i)
                    .collect()
            });
            p.push(m.precision);
            n.push(m.ndcg);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        println!("{name}: P@10 {:.4}, NDCG@10 {:.4}", mean(&p), mean(&n));
    }
}
