//! Offline evaluation: a per-user random split, ranking metrics at k, catalogue coverage, and
//! the popularity baseline every figure is reported beside.
//!
//! Protocol: each user's ratings are shuffled with a fixed seed and split (e.g. 75/25); every
//! held-out rating is a relevant item; a user's training items are excluded from their
//! ranking; precision@k = hits/k, recall@k = hits/|test|, NDCG@k with binary gains and the
//! ideal ranking of min(k, |test|) hits, averaged over users with at least one held-out item.

use crate::data::Row;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Splits each user's row: the first `train_share` (rounded) of a seeded shuffle train, the
/// rest test. A user with one rating keeps it in training.
pub fn split_per_user(rows: &[Row], train_share: f64, seed: u64) -> (Vec<Row>, Vec<Row>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut train = Vec::with_capacity(rows.len());
    let mut test = Vec::with_capacity(rows.len());
    for row in rows {
        let mut shuffled = row.clone();
        shuffled.sort_unstable_by_key(|(i, _)| *i);
        shuffled.shuffle(&mut rng);
        let keep = ((shuffled.len() as f64 * train_share).round() as usize)
            .clamp(1.min(shuffled.len()), shuffled.len());
        let held = shuffled.split_off(keep);
        train.push(shuffled);
        test.push(held);
    }
    (train, test)
}

/// Ranking quality of one recommender on one split.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean precision@k.
    pub precision: f64,
    /// Mean recall@k.
    pub recall: f64,
    /// Mean NDCG@k.
    pub ndcg: f64,
    /// Distinct items recommended to anyone / all items.
    pub coverage: f64,
    /// Users evaluated.
    pub users: usize,
}

/// Evaluates `recommend(user, k)` (which must exclude the user's training items) against
/// `test` at cut-off `k`.
pub fn evaluate<F>(test: &[Row], n_items: usize, k: usize, recommend: F) -> Metrics
where
    F: Fn(usize, usize) -> Vec<u32> + Sync,
{
    use rayon::prelude::*;
    let per_user: Vec<(f64, f64, f64, Vec<u32>)> = test
        .par_iter()
        .enumerate()
        .filter(|(_, held)| !held.is_empty())
        .map(|(u, held)| {
            let relevant: HashSet<u32> = held.iter().map(|(i, _)| *i).collect();
            let list = recommend(u, k);
            let mut hits = 0usize;
            let mut dcg = 0.0;
            for (rank, item) in list.iter().take(k).enumerate() {
                if relevant.contains(item) {
                    hits += 1;
                    dcg += 1.0 / ((rank + 2) as f64).log2();
                }
            }
            let ideal: f64 = (0..relevant.len().min(k))
                .map(|r| 1.0 / ((r + 2) as f64).log2())
                .sum();
            (
                hits as f64 / k as f64,
                hits as f64 / relevant.len() as f64,
                dcg / ideal,
                list,
            )
        })
        .collect();
    let users = per_user.len();
    if users == 0 {
        return Metrics::default();
    }
    let mut covered = HashSet::new();
    let (mut p, mut r, mut n) = (0.0, 0.0, 0.0);
    for (pu, ru, nu, list) in per_user {
        p += pu;
        r += ru;
        n += nu;
        covered.extend(list);
    }
    let m = users as f64;
    Metrics {
        precision: p / m,
        recall: r / m,
        ndcg: n / m,
        coverage: covered.len() as f64 / n_items as f64,
        users,
    }
}

/// The popularity baseline: items by training count, best first.
pub fn popularity_ranking(train: &[Row], n_items: usize) -> Vec<u32> {
    let mut counts = vec![0u32; n_items];
    for row in train {
        for (i, _) in row {
            counts[*i as usize] += 1;
        }
    }
    let mut items: Vec<u32> = (0..n_items as u32).collect();
    items.sort_by(|a, b| counts[*b as usize].cmp(&counts[*a as usize]).then(a.cmp(b)));
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_seeded_and_proportional() {
        let rows: Vec<Row> = (0..5)
            .map(|u| (0..20).map(|i| (i + u, 4.0)).collect())
            .collect();
        let (train, test) = split_per_user(&rows, 0.75, 3);
        assert!(train.iter().all(|r| r.len() == 15) && test.iter().all(|r| r.len() == 5));
        assert_eq!(split_per_user(&rows, 0.75, 3).1, test);
        assert_ne!(split_per_user(&rows, 0.75, 4).1, test);
        for (tr, te) in train.iter().zip(&test) {
            assert!(tr.iter().all(|x| !te.contains(x)));
        }
    }

    #[test]
    fn perfect_and_useless_recommenders() {
        let test: Vec<Row> = vec![vec![(1, 5.0), (2, 4.0)], vec![(3, 3.0)]];
        let perfect = evaluate(
            &test,
            10,
            2,
            |u, _| if u == 0 { vec![1, 2] } else { vec![3, 9] },
        );
        assert_eq!(
            (perfect.precision, perfect.recall, perfect.ndcg),
            (0.75, 1.0, 1.0)
        );
        assert_eq!(perfect.users, 2);
        let useless = evaluate(&test, 10, 2, |_, _| vec![7, 8]);
        assert_eq!(
            (useless.precision, useless.ndcg, useless.coverage),
            (0.0, 0.0, 0.2)
        );
    }
}
