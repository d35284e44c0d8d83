//! The ALS user step of one user kept as its normal equations, so that a new or replaced
//! rating moves the user's vector without going back over all their ratings.
//!
//! Fold-in solves `(YᵀY + Σᵢ (cᵢ − 1) yᵢyᵢᵀ + λ(n + 1)^ν I) x = Σᵢ cᵢ pᵢ yᵢ` over the user's
//! `n` ratings, `(pᵢ, cᵢ)` from [`crate::als::Feedback`] (a dislike has `pᵢ = 0`). The two
//! parts that depend on the ratings are sums of one term per rating: the matrix
//! `M = Σᵢ (cᵢ − 1) yᵢyᵢᵀ` and the vector `b = Σᵢ cᵢ pᵢ yᵢ`. A new rating
//! adds a rank-one term to `M` and a vector to `b`; a replaced rating subtracts its old terms
//! and adds the new ones. The rest (the item Gram matrix, and the regularisation, which
//! depends only on `n`) is added when solving. An update costs O(k²) instead of the O(n·k²)
//! of rebuilding the sums, and the solve stays one k×k Cholesky.
//!
//! The sums are kept in `f64`, so a long run of updates does not drift: the vector solved from
//! updated equations equals the one folded in from scratch to float precision (the seeded
//! property tests in [`crate::model`] check it for runs of new and replaced ratings).

/// `M` and `b` of one user (see the module documentation), with the number of ratings they
/// hold. Build them with [`crate::model::ItemModel::equations`], update them with
/// [`crate::model::ItemModel::rate`] / [`crate::model::ItemModel::unrate`] and solve them with
/// [`crate::model::ItemModel::solve`].
#[derive(Debug, Clone, PartialEq)]
pub struct UserEquations {
    k: usize,
    n: usize,
    /// Row-major `k × k`, symmetric.
    m: Vec<f64>,
    b: Vec<f64>,
}

impl UserEquations {
    /// The equations of a user without ratings, for `k` factors.
    pub fn new(k: usize) -> Self {
        UserEquations {
            k,
            n: 0,
            m: vec![0.0; k * k],
            b: vec![0.0; k],
        }
    }

    /// Equations from sums computed elsewhere (`m` row-major `k × k`).
    pub(crate) fn from_sums(k: usize, n: usize, m: Vec<f64>, b: Vec<f64>) -> Self {
        debug_assert_eq!(m.len(), k * k);
        debug_assert_eq!(b.len(), k);
        UserEquations { k, n, m, b }
    }

    /// Latent factors.
    pub fn factors(&self) -> usize {
        self.k
    }

    /// Number of ratings held.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether no rating is held.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// `M`, row-major.
    pub(crate) fn m(&self) -> &[f64] {
        &self.m
    }

    /// `b`.
    pub(crate) fn b(&self) -> &[f64] {
        &self.b
    }

    /// Appends the equations in a compact binary form, little-endian: `k` (u16), `n` (u32),
    /// `b` (k f64), then the upper triangle of the symmetric `M`, row by row (k(k+1)/2 f32).
    /// `M` is kept to f32 precision, which halves it twice over against a full f64 matrix
    /// (33 KB at 128 factors instead of 131 KB); the k numbers of `b` are kept whole.
    pub fn write_compact(&self, out: &mut Vec<u8>) {
        let k = self.k;
        out.reserve(6 + 8 * k + 4 * k * (k + 1) / 2);
        out.extend_from_slice(&(k as u16).to_le_bytes());
        out.extend_from_slice(&(self.n as u32).to_le_bytes());
        for v in &self.b {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for p in 0..k {
            for v in &self.m[p * k + p..(p + 1) * k] {
                out.extend_from_slice(&(*v as f32).to_le_bytes());
            }
        }
    }

    /// Reads equations written by [`UserEquations::write_compact`] from the start of `bytes`;
    /// returns them and the bytes after them, or `None` if `bytes` is too short.
    pub fn read_compact(bytes: &[u8]) -> Option<(Self, &[u8])> {
        let (k, rest) = bytes.split_first_chunk::<2>()?;
        let k = u16::from_le_bytes(*k) as usize;
        let (n, rest) = rest.split_first_chunk::<4>()?;
        let n = u32::from_le_bytes(*n) as usize;
        let (b, rest) = rest.split_at_checked(8 * k)?;
        let b = b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let (upper, rest) = rest.split_at_checked(4 * k * (k + 1) / 2)?;
        let mut upper = upper
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64);
        let mut m = vec![0.0; k * k];
        for p in 0..k {
            for q in p..k {
                let v = upper.next()?;
                m[p * k + q] = v;
                m[q * k + p] = v;
            }
        }
        Some((UserEquations { k, n, m, b }, rest))
    }

    /// Adds (`sign` 1) or removes (`sign` −1) the terms of one rating of an item with factors
    /// `y`, preference `pref` and confidence `c`.
    pub(crate) fn update(&mut self, y: &[f32], pref: f32, c: f32, sign: f64) {
        debug_assert_eq!(y.len(), self.k);
        let k = self.k;
        let weight = sign * (c - 1.0) as f64;
        let scaled: Vec<f64> = y.iter().map(|v| weight * *v as f64).collect();
        let cp = c * pref;
        for (p, yp) in y.iter().enumerate() {
            let yp = *yp as f64;
            for (slot, s) in self.m[p * k..(p + 1) * k].iter_mut().zip(&scaled) {
                *slot += s * yp;
            }
            // The same product (in f32) as a from-scratch fold-in.
            if pref != 0.0 {
                self.b[p] += sign * (cp * y[p]) as f64;
            }
        }
        if sign > 0.0 {
            self.n += 1;
        } else {
            self.n = self.n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compact_form_round_trips_to_f32_precision() {
        let k = 5;
        let mut equations = UserEquations::new(k);
        equations.update(&[0.1, -0.2, 0.3, 0.05, 1.0], 1.0, 3.0, 1.0);
        equations.update(&[0.7, 0.2, -0.3, 0.0, 0.5], 0.0, 2.0, 1.0);
        let mut bytes = Vec::new();
        equations.write_compact(&mut bytes);
        assert_eq!(bytes.len(), 2 + 4 + 8 * k + 4 * k * (k + 1) / 2);
        bytes.extend_from_slice(b"after");
        let (read, rest) = UserEquations::read_compact(&bytes).unwrap();
        assert_eq!(rest, b"after");
        assert_eq!((read.factors(), read.len()), (k, 2));
        assert_eq!(read.b, equations.b, "b is kept whole");
        for (got, want) in read.m.iter().zip(&equations.m) {
            assert_eq!(*got, *want as f32 as f64);
        }
        assert!(UserEquations::read_compact(&bytes[..20]).is_none());
    }

    #[test]
    fn removing_what_was_added_leaves_nothing() {
        let mut equations = UserEquations::new(3);
        equations.update(&[0.5, -1.0, 2.0], 1.0, 2.5, 1.0);
        equations.update(&[0.5, -1.0, 2.0], 1.0, 2.5, -1.0);
        assert!(equations.is_empty());
        assert!(
            equations
                .m
                .iter()
                .chain(&equations.b)
                .all(|v| v.abs() < 1e-12)
        );
    }
}
