//! Shared machinery of the research examples `model_zoo` and `rerank`: the protocol's contexts
//! (five validation folds carved from a split's 75%, then the 75%/25% test itself, exactly as
//! `recommender::evaluation::run_seeds` builds them), a dense score matrix per model and
//! context, and the protocol's metrics on it (`recommender::metrics::evaluate` with
//! `ItemModel::top_n`, training movies excluded, top 10).

#![allow(dead_code)]

pub mod gbdt;

use ndarray::{Array1, Array2, Axis};
use rayon::prelude::*;
use recommender::als::{self, AlsParams};
use recommender::blend::standardise;
use recommender::data::{Interactions, Row};
use recommender::ease::{Ease, EaseParams};
use recommender::evaluation::{K, VALIDATION_FOLDS, validation_folds};
use recommender::metrics::{Metrics, evaluate, split_per_user};
use recommender::model::ItemModel;

/// One place a model is fitted and scored: `fit` trains, `held` is scored.
pub struct Ctx {
    pub fit: Vec<Row>,
    pub held: Vec<Row>,
    /// Users with something held out (the only ones scored).
    pub eval: Vec<bool>,
    pub seen: Vec<Vec<u32>>,
    /// "f0".."f4" or "test".
    pub name: String,
}

impl Ctx {
    fn new(fit: Vec<Row>, held: Vec<Row>, name: String) -> Ctx {
        let eval = held.iter().map(|h| !h.is_empty()).collect();
        let seen = fit
            .iter()
            .map(|r| r.iter().map(|(i, _)| *i).collect())
            .collect();
        Ctx {
            fit,
            held,
            eval,
            seen,
            name,
        }
    }
}

/// The five validation folds of split `seed`, then the test context (last).
pub fn contexts(rows: &[Row], seed: u64) -> Vec<Ctx> {
    let (train, test) = split_per_user(rows, 0.75, seed);
    let mut out: Vec<Ctx> = validation_folds(&train, VALIDATION_FOLDS, seed.wrapping_add(1))
        .into_iter()
        .enumerate()
        .map(|(g, (fit, held))| Ctx::new(fit, held, format!("f{g}")))
        .collect();
    out.push(Ctx::new(train, test, "test".into()));
    out
}

/// Metrics of a dense score matrix (rows of users not evaluated are ignored).
pub fn metrics(ctx: &Ctx, n_items: usize, scores: &Array2<f32>) -> Metrics {
    evaluate(&ctx.held, n_items, K, |u, k| {
        ItemModel::top_n(&scores.row(u).to_owned(), &ctx.seen[u], k)
            .into_iter()
            .map(|(i, _)| i)
            .collect()
    })
}

/// Mean of per-fold metrics (as `evaluation` averages its folds).
pub fn mean(ms: &[Metrics]) -> Metrics {
    let n = ms.len().max(1) as f64;
    Metrics {
        precision: ms.iter().map(|m| m.precision).sum::<f64>() / n,
        recall: ms.iter().map(|m| m.recall).sum::<f64>() / n,
        ndcg: ms.iter().map(|m| m.ndcg).sum::<f64>() / n,
        coverage: ms.iter().map(|m| m.coverage).sum::<f64>() / n,
        users: ms.iter().map(|m| m.users).sum(),
    }
}

/// Prints one table row: the mean ± sd of P@10 and NDCG@10 over the splits' `ms`.
pub fn print_row(name: &str, ms: &[Metrics]) {
    let (pm, ps) = mean_sd(&ms.iter().map(|m| m.precision).collect::<Vec<_>>());
    let (nm, ns) = mean_sd(&ms.iter().map(|m| m.ndcg).collect::<Vec<_>>());
    println!(
        "| {name} | {pm:.4} ± {ps:.4} | {nm:.4} ± {ns:.4} | {} seeds |",
        ms.len()
    );
}

pub fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = x.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, v.sqrt())
}

/// Builds a score matrix row by row for evaluated users (others stay zero).
pub fn per_user(ctx: &Ctx, n_items: usize, f: impl Fn(usize) -> Array1<f32> + Sync) -> Array2<f32> {
    let rows: Vec<Option<Array1<f32>>> = (0..ctx.fit.len())
        .into_par_iter()
        .map(|u| if ctx.eval[u] { Some(f(u)) } else { None })
        .collect();
    let mut out = Array2::<f32>::zeros((ctx.fit.len(), n_items));
    for (mut dst, src) in out.axis_iter_mut(Axis(0)).zip(rows) {
        if let Some(s) = src {
            dst.assign(&s);
        }
    }
    out
}

/// Each evaluated row standardised over the user's unseen items (`blend::standardise`).
pub fn zscore(ctx: &Ctx, s: &Array2<f32>) -> Array2<f32> {
    let n_items = s.ncols();
    per_user(ctx, n_items, |u| standardise(s.row(u), &ctx.seen[u]))
}

/// The served ALS (fold-in with `Feedback::new`), as `evaluation::train_als`.
pub fn als_scores(ctx: &Ctx, n_items: usize, params: &AlsParams) -> Array2<f32> {
    let data = Interactions::from_user_rows(n_items, ctx.fit.clone());
    let f = als::train(&data, params, |_, _| {});
    let model = ItemModel::new(f.items, params.regularisation(), params.alpha);
    per_user(ctx, n_items, |u| {
        model.scores(model.fold_in(&ctx.fit[u]).view())
    })
}

pub fn ease_scores(ctx: &Ctx, n_items: usize, params: &EaseParams) -> Array2<f32> {
    let ease = Ease::train(&ctx.fit, n_items, params);
    per_user(ctx, n_items, |u| ease.scores(&ctx.fit[u]))
}

/// Binary item lists per user and user lists per item.
pub fn incidence(fit: &[Row], n_items: usize) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let items: Vec<Vec<u32>> = fit
        .iter()
        .map(|r| {
            let mut v: Vec<u32> = r.iter().map(|(i, _)| *i).collect();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect();
    let mut users = vec![Vec::new(); n_items];
    for (u, v) in items.iter().enumerate() {
        for &i in v {
            users[i as usize].push(u as u32);
        }
    }
    (items, users)
}

/// Item-item co-occurrence weighted per user: `C_ij = Σ_{u ∋ i,j} d_u^(−gamma)`, dense.
pub fn cooccurrence(
    items: &[Vec<u32>],
    users: &[Vec<u32>],
    n_items: usize,
    gamma: f64,
) -> Vec<f32> {
    let wu: Vec<f32> = items
        .iter()
        .map(|v| (v.len().max(1) as f64).powf(-gamma) as f32)
        .collect();
    let mut c = vec![0.0f32; n_items * n_items];
    c.par_chunks_exact_mut(n_items)
        .enumerate()
        .for_each(|(i, out)| {
            for &u in &users[i] {
                let w = wu[u as usize];
                for &j in &items[u as usize] {
                    out[j as usize] += w;
                }
            }
        });
    c
}

/// Keeps the `k` largest entries of each row of a dense square matrix (0 elsewhere).
pub fn top_k_rows(w: &mut [f32], n: usize, k: usize) {
    if k >= n {
        return;
    }
    w.par_chunks_exact_mut(n).for_each(|row| {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.select_nth_unstable_by(k, |a, b| row[*b].total_cmp(&row[*a]));
        let keep: Vec<(usize, f32)> = idx[..k].iter().map(|&j| (j, row[j])).collect();
        row.iter_mut().for_each(|v| *v = 0.0);
        for (j, v) in keep {
            row[j] = v;
        }
    });
}

/// `s_u = Σ_{i ∈ I_u} W_i·` for a dense item-item `W` (row = source item).
pub fn item_item_scores(ctx: &Ctx, n_items: usize, w: &[f32]) -> Array2<f32> {
    per_user(ctx, n_items, |u| {
        let mut s = vec![0.0f32; n_items];
        for &i in &ctx.seen[u] {
            let row = &w[i as usize * n_items..(i as usize + 1) * n_items];
            for (a, b) in s.iter_mut().zip(row) {
                *a += b;
            }
        }
        Array1::from(s)
    })
}

/// RP3beta (Paudel et al. 2017; Dacrema et al.'s form): `W_ij = Σ_u P_iu^α P_uj^α / d_j^β`
/// with `P_iu = 1/d_i`, `P_uj = 1/d_u`, diagonal 0, the `topk` largest per row.
pub fn rp3_scores(ctx: &Ctx, n_items: usize, alpha: f64, beta: f64, topk: usize) -> Array2<f32> {
    let (items, users) = incidence(&ctx.fit, n_items);
    let mut w = cooccurrence(&items, &users, n_items, alpha);
    let deg: Vec<f64> = users.iter().map(|v| v.len().max(1) as f64).collect();
    w.par_chunks_exact_mut(n_items)
        .enumerate()
        .for_each(|(i, row)| {
            let a = deg[i].powf(-alpha);
            for (j, v) in row.iter_mut().enumerate() {
                *v = if i == j {
                    0.0
                } else {
                    (*v as f64 * a * deg[j].powf(-beta)) as f32
                };
            }
        });
    top_k_rows(&mut w, n_items, topk);
    item_item_scores(ctx, n_items, &w)
}

/// Item kNN, cosine with shrink: `W_ij = C_ij / (sqrt(d_i d_j) + shrink)`, top `topk` per row.
pub fn iknn_scores(ctx: &Ctx, n_items: usize, shrink: f64, topk: usize) -> Array2<f32> {
    let (items, users) = incidence(&ctx.fit, n_items);
    let mut w = cooccurrence(&items, &users, n_items, 0.0);
    let deg: Vec<f64> = users.iter().map(|v| v.len() as f64).collect();
    w.par_chunks_exact_mut(n_items)
        .enumerate()
        .for_each(|(i, row)| {
            for (j, v) in row.iter_mut().enumerate() {
                *v = if i == j {
                    0.0
                } else {
                    let d = (deg[i] * deg[j]).sqrt() + shrink;
                    if d > 0.0 { (*v as f64 / d) as f32 } else { 0.0 }
                };
            }
        });
    top_k_rows(&mut w, n_items, topk);
    item_item_scores(ctx, n_items, &w)
}

/// User kNN: cosine of binary rows with shrink, the `topk` nearest users, similarity^`power`.
pub fn uknn_scores(ctx: &Ctx, n_items: usize, shrink: f64, topk: usize, power: f64) -> Array2<f32> {
    let (items, users) = incidence(&ctx.fit, n_items);
    let n_users = items.len();
    per_user(ctx, n_items, |u| {
        let mut overlap = vec![0.0f32; n_users];
        for &i in &items[u] {
            for &v in &users[i as usize] {
                overlap[v as usize] += 1.0;
            }
        }
        overlap[u] = 0.0;
        let du = items[u].len() as f64;
        let mut sims: Vec<(usize, f64)> = overlap
            .iter()
            .enumerate()
            .filter(|(_, o)| **o > 0.0)
            .map(|(v, o)| {
                let dv = items[v].len() as f64;
                (v, *o as f64 / ((du * dv).sqrt() + shrink))
            })
            .collect();
        if sims.len() > topk {
            sims.select_nth_unstable_by(topk, |a, b| b.1.total_cmp(&a.1));
            sims.truncate(topk);
        }
        let mut s = vec![0.0f32; n_items];
        for (v, sim) in sims {
            let w = sim.powf(power) as f32;
            for &j in &items[v] {
                s[j as usize] += w;
            }
        }
        Array1::from(s)
    })
}

/// Item popularity in `fit` (log1p count), the same row for every user.
pub fn pop_scores(ctx: &Ctx, n_items: usize) -> Array2<f32> {
    let (_, users) = incidence(&ctx.fit, n_items);
    let p: Array1<f32> = users.iter().map(|v| (v.len() as f32).ln_1p()).collect();
    per_user(ctx, n_items, |_| p.clone())
}

/// A cache of score matrices in /tmp, keyed by name (the matrices are deterministic).
pub fn cached(key: &str, f: impl FnOnce() -> Array2<f32>) -> Array2<f32> {
    let dir = std::path::Path::new("/tmp/zoo_cache");
    std::fs::create_dir_all(dir).expect("cache dir");
    let path = dir.join(format!("{key}.bin"));
    if let Ok(bytes) = std::fs::read(&path) {
        let r = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
        let c = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
        let v: Vec<f32> = bytes[8..]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        return Array2::from_shape_vec((r, c), v).expect("shape");
    }
    let m = f();
    let mut bytes = Vec::with_capacity(8 + 4 * m.len());
    bytes.extend_from_slice(&(m.nrows() as u32).to_le_bytes());
    bytes.extend_from_slice(&(m.ncols() as u32).to_le_bytes());
    for v in m.iter() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(&path, bytes).expect("write cache");
    m
}

/// iALS with a general regularisation and confidence (Hu et al.'s objective, Rendle et al.
/// 2021's frequency-scaled regularisation): unobserved pairs weigh 1, an observed rating `r`
/// weighs `c = 1 + alpha·(r^power)` with preference 1; a row with `n` ratings gets
/// `lambda·(n + 1 + offset·N)^nu` (N: rows of the other side, Rendle's α0·|I|). Initial factors N(0, init/sqrt(k)). Scores by fold-in (one more
/// user step on the final item factors), as served.
#[derive(Debug, Clone, Copy)]
pub struct Ials {
    pub factors: usize,
    pub epochs: usize,
    pub lambda: f64,
    pub nu: f64,
    pub offset: f64,
    pub alpha: f64,
    pub power: f64,
    pub init: f64,
    pub seed: u64,
}

fn ials_half(fixed: &Array2<f32>, rows: &[Row], p: &Ials) -> Array2<f32> {
    let k = fixed.ncols();
    let gram: Vec<f64> = fixed.t().dot(fixed).iter().map(|v| *v as f64).collect();
    let solved: Vec<Vec<f32>> = rows
        .par_iter()
        .map(|row| {
            if row.is_empty() {
                return vec![0.0; k];
            }
            let mut a = gram.clone();
            let mut b = vec![0.0f64; k];
            let mut gathered = Array2::<f32>::zeros((row.len(), k));
            for (r, &(j, rating)) in row.iter().enumerate() {
                let c = 1.0 + p.alpha * (rating as f64).powf(p.power);
                let y = fixed.row(j as usize);
                gathered
                    .row_mut(r)
                    .assign(&(&y * ((c - 1.0).sqrt() as f32)));
                for (q, v) in y.iter().enumerate() {
                    b[q] += c * *v as f64;
                }
            }
            let m = gathered.t().dot(&gathered);
            for (slot, v) in a.iter_mut().zip(m.iter()) {
                *slot += *v as f64;
            }
            let other = fixed.nrows() as f64;
            let reg = p.lambda * (row.len() as f64 + 1.0 + p.offset * other).powf(p.nu);
            for q in 0..k {
                a[q * k + q] += reg;
            }
            if !recommender::linalg::cholesky_solve(&mut a, &mut b, k) {
                return vec![0.0; k];
            }
            b.into_iter().map(|v| v as f32).collect()
        })
        .collect();
    let mut out = Array2::<f32>::zeros((rows.len(), k));
    for (mut dst, src) in out.axis_iter_mut(Axis(0)).zip(solved) {
        dst.assign(&Array1::from(src));
    }
    out
}

pub fn ials_scores(ctx: &Ctx, n_items: usize, p: &Ials) -> Array2<f32> {
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};
    let data = Interactions::from_user_rows(n_items, ctx.fit.clone());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed);
    let normal = Normal::new(0.0f32, (p.init / (p.factors as f64).sqrt()) as f32).expect("normal");
    let mut items = Array2::from_shape_simple_fn((n_items, p.factors), || normal.sample(&mut rng));
    for _ in 0..p.epochs {
        let users = ials_half(&items, &data.by_user, p);
        items = ials_half(&users, &data.by_item, p);
    }
    let users = ials_half(&items, &data.by_user, p);
    per_user(ctx, n_items, |u| items.dot(&users.row(u)))
}
