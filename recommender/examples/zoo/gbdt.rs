//! A small gradient-boosted tree learner for the re-ranking spike: quantile-binned features,
//! depth-wise trees with second-order (Newton) leaves and L2 regularisation, either pointwise
//! logistic loss or LambdaRank gradients (pairs of a positive and a negative of one query,
//! weighted by |ΔDCG|, Burges 2010).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

#[derive(Debug, Clone, Copy)]
pub enum Objective {
    Logistic,
    LambdaRank,
}

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub trees: usize,
    pub depth: usize,
    pub lr: f32,
    pub lambda: f64,
    pub min_hess: f64,
    pub subsample: f64,
    pub objective: Objective,
    pub seed: u64,
}

/// Column-major feature matrix: `x[f][row]`.
pub struct Data {
    pub x: Vec<Vec<f32>>,
    pub y: Vec<f32>,
    /// Query boundaries: rows `groups[q]..groups[q + 1]` are one query (user).
    pub groups: Vec<usize>,
    /// Base margin every prediction starts from (e.g. a scaled ALS score).
    pub base: Vec<f32>,
}

impl Data {
    pub fn rows(&self) -> usize {
        self.y.len()
    }
}

#[derive(Debug, Clone)]
enum Node {
    Split {
        feat: usize,
        thr: f32,
        left: usize,
        right: usize,
    },
    Leaf(f32),
}

#[derive(Debug, Clone)]
pub struct Model {
    trees: Vec<Vec<Node>>,
    lr: f32,
}

const BINS: usize = 64;

/// Per feature, sorted thresholds: bin(x) = first k with x <= t_k, else len.
fn thresholds(col: &[f32]) -> Vec<f32> {
    let mut v: Vec<f32> = col.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f32::total_cmp);
    let mut t = Vec::new();
    if v.is_empty() {
        return t;
    }
    for b in 1..BINS {
        let q = v[(b * (v.len() - 1)) / BINS];
        if t.last().is_none_or(|l| q > *l) {
            t.push(q);
        }
    }
    t
}

fn bin_of(t: &[f32], x: f32) -> u8 {
    t.partition_point(|v| *v < x) as u8
}

impl Model {
    pub fn predict_row(&self, x: &[f32], trees: usize) -> f32 {
        let mut s = 0.0;
        for tree in self.trees.iter().take(trees) {
            let mut n = 0;
            loop {
                match &tree[n] {
                    Node::Leaf(v) => {
                        s += self.lr * v;
                        break;
                    }
                    Node::Split {
                        feat,
                        thr,
                        left,
                        right,
                    } => n = if x[*feat] <= *thr { *left } else { *right },
                }
            }
        }
        s
    }

    pub fn predict(&self, data: &Data, trees: usize) -> Vec<f32> {
        let f = data.x.len();
        (0..data.rows())
            .into_par_iter()
            .map(|r| {
                let row: Vec<f32> = (0..f).map(|j| data.x[j][r]).collect();
                data.base[r] + self.predict_row(&row, trees)
            })
            .collect()
    }

    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }
}

fn gradients(obj: Objective, data: &Data, pred: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let n = data.rows();
    match obj {
        Objective::Logistic => {
            let mut g = vec![0.0; n];
            let mut h = vec![0.0; n];
            for r in 0..n {
                let p = 1.0 / (1.0 + (-(pred[r] as f64)).exp());
                g[r] = p - data.y[r] as f64;
                h[r] = (p * (1.0 - p)).max(1e-6);
            }
            (g, h)
        }
        Objective::LambdaRank => {
            let per_q: Vec<(usize, Vec<f64>, Vec<f64>)> = (0..data.groups.len() - 1)
                .into_par_iter()
                .map(|q| {
                    let (a, b) = (data.groups[q], data.groups[q + 1]);
                    let m = b - a;
                    let mut g = vec![0.0; m];
                    let mut h = vec![0.0; m];
                    let mut order: Vec<usize> = (0..m).collect();
                    order.sort_by(|x, y| pred[a + *y].total_cmp(&pred[a + *x]));
                    let mut rank = vec![0usize; m];
                    for (r, &i) in order.iter().enumerate() {
                        rank[i] = r;
                    }
                    let pos: Vec<usize> = (0..m).filter(|i| data.y[a + i] > 0.5).collect();
                    let neg: Vec<usize> = (0..m).filter(|i| data.y[a + i] <= 0.5).collect();
                    if pos.is_empty() || neg.is_empty() {
                        return (a, g, h);
                    }
                    let disc = |r: usize| 1.0 / ((r + 2) as f64).log2();
                    let idcg: f64 = (0..pos.len()).map(disc).sum();
                    for &i in &pos {
                        for &j in &neg {
                            let delta = (disc(rank[i]) - disc(rank[j])).abs() / idcg;
                            let diff = (pred[a + i] - pred[a + j]) as f64;
                            let rho = 1.0 / (1.0 + diff.exp());
                            g[i] -= rho * delta;
                            g[j] += rho * delta;
                            let hh = (rho * (1.0 - rho) * delta).max(1e-9);
                            h[i] += hh;
                            h[j] += hh;
                        }
                    }
                    (a, g, h)
                })
                .collect();
            let mut g = vec![0.0; n];
            let mut h = vec![1e-9; n];
            for (a, gq, hq) in per_q {
                for k in 0..gq.len() {
                    g[a + k] = gq[k];
                    h[a + k] = hq[k].max(1e-9);
                }
            }
            (g, h)
        }
    }
}

pub fn train(data: &Data, p: &Params) -> Model {
    let nf = data.x.len();
    let n = data.rows();
    let thr: Vec<Vec<f32>> = data.x.par_iter().map(|c| thresholds(c)).collect();
    let bins: Vec<Vec<u8>> = data
        .x
        .par_iter()
        .zip(&thr)
        .map(|(c, t)| c.iter().map(|x| bin_of(t, *x)).collect())
        .collect();
    let mut pred = data.base.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut trees = Vec::with_capacity(p.trees);
    let all: Vec<u32> = (0..n as u32).collect();
    for _ in 0..p.trees {
        let (g, h) = gradients(p.objective, data, &pred);
        let mut rows = all.clone();
        if p.subsample < 1.0 {
            rows.shuffle(&mut rng);
            rows.truncate((n as f64 * p.subsample) as usize);
        }
        let mut nodes = Vec::new();
        grow(&mut nodes, rows, 0, p, &bins, &thr, &g, &h, nf);
        // Update predictions of every row.
        let tree = Model {
            trees: vec![nodes],
            lr: p.lr,
        };
        let delta = tree.predict(data, 1);
        for ((a, d), b) in pred.iter_mut().zip(delta).zip(&data.base) {
            *a += d - b;
        }
        trees.push(tree.trees.into_iter().next().expect("tree"));
    }
    Model { trees, lr: p.lr }
}

#[allow(clippy::too_many_arguments)]
fn grow(
    nodes: &mut Vec<Node>,
    rows: Vec<u32>,
    depth: usize,
    p: &Params,
    bins: &[Vec<u8>],
    thr: &[Vec<f32>],
    g: &[f64],
    h: &[f64],
    nf: usize,
) -> usize {
    let gs: f64 = rows.iter().map(|r| g[*r as usize]).sum();
    let hs: f64 = rows.iter().map(|r| h[*r as usize]).sum();
    let me = nodes.len();
    nodes.push(Node::Leaf((-gs / (hs + p.lambda)) as f32));
    if depth >= p.depth || rows.len() < 20 {
        return me;
    }
    let parent = gs * gs / (hs + p.lambda);
    let best = (0..nf)
        .into_par_iter()
        .map(|f| {
            let mut hg = [0.0f64; BINS + 1];
            let mut hh = [0.0f64; BINS + 1];
            let col = &bins[f];
            for &r in &rows {
                let b = col[r as usize] as usize;
                hg[b] += g[r as usize];
                hh[b] += h[r as usize];
            }
            let mut best = (0.0f64, usize::MAX);
            let (mut gl, mut hl) = (0.0, 0.0);
            for b in 0..thr[f].len() {
                gl += hg[b];
                hl += hh[b];
                let (gr, hr) = (gs - gl, hs - hl);
                if hl < p.min_hess || hr < p.min_hess {
                    continue;
                }
                let gain = gl * gl / (hl + p.lambda) + gr * gr / (hr + p.lambda) - parent;
                if gain > best.0 {
                    best = (gain, b);
                }
            }
            (best.0, f, best.1)
        })
        .reduce(
            || (0.0, usize::MAX, usize::MAX),
            |a, b| if b.0 > a.0 { b } else { a },
        );
    let (gain, f, b) = best;
    if f == usize::MAX || gain <= 1e-9 {
        return me;
    }
    let (l, r): (Vec<u32>, Vec<u32>) = rows
        .iter()
        .partition(|r| bins[f][**r as usize] as usize <= b);
    let left = grow(nodes, l, depth + 1, p, bins, thr, g, h, nf);
    let right = grow(nodes, r, depth + 1, p, bins, thr, g, h, nf);
    nodes[me] = Node::Split {
        feat: f,
        thr: thr[f][b],
        left,
        right,
    };
    me
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn learns_a_monotone_function() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 20000;
        let x: Vec<f32> = (0..n).map(|_| rng.random_range(-3.0f32..3.0)).collect();
        let y: Vec<f32> = x
            .iter()
            .map(|v| {
                let p = 1.0 / (1.0 + (-2.0 * v).exp());
                if rng.random::<f32>() < p { 1.0 } else { 0.0 }
            })
            .collect();
        let data = Data {
            x: vec![x.clone()],
            y,
            groups: vec![0, n],
            base: x.iter().map(|v| v * 1.0).collect(),
        };
        let p = Params {
            trees: 50,
            depth: 3,
            lr: 0.05,
            lambda: 1.0,
            min_hess: 5.0,
            subsample: 0.8,
            objective: Objective::Logistic,
            seed: 1,
        };
        let m = train(&data, &p);
        let grid: Vec<f32> = (-30..30).map(|i| i as f32 / 10.0).collect();
        let probe = Data {
            x: vec![grid.clone()],
            y: vec![0.0; grid.len()],
            groups: vec![0, grid.len()],
            base: grid.clone(),
        };
        let pred = m.predict(&probe, 50);
        eprintln!("{:?}", pred);
        for w in pred.windows(2) {
            assert!(w[1] >= w[0] - 0.05, "{pred:?}");
        }
    }
}
