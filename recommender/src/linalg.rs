//! A Cholesky solve for the small (factors × factors) symmetric positive-definite systems of
//! ALS and fold-in. Written out rather than pulling in LAPACK: the systems are tiny (≤ 256),
//! and a system library would complicate every build.

/// Solves `a · x = b` in place for symmetric positive-definite `a` (row-major `k × k`,
/// overwritten by its Cholesky factor); `b` becomes `x`. Returns `false` if `a` is not
/// positive definite (never the case with a positive regularisation).
///
/// Every inner loop is a dot product of two contiguous row prefixes ([`dot`]), so the k³/6
/// multiply-adds of the factorisation run as independent vector lanes rather than one
/// dependent chain: at 128 factors this is most of a fold-in's time.
pub fn cholesky_solve(a: &mut [f64], b: &mut [f64], k: usize) -> bool {
    debug_assert_eq!(a.len(), k * k);
    debug_assert_eq!(b.len(), k);
    // a = L Lᵀ, L stored in the lower triangle.
    for j in 0..k {
        let row_j = &mut a[j * k..(j + 1) * k];
        let d = row_j[j] - dot(&row_j[..j], &row_j[..j]);
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        row_j[j] = d;
        let (upto_j, below) = a.split_at_mut((j + 1) * k);
        let row_j = &upto_j[j * k..j * k + j];
        for row_i in below.chunks_exact_mut(k) {
            row_i[j] = (row_i[j] - dot(&row_i[..j], row_j)) / d;
        }
    }
    // L y = b
    for i in 0..k {
        let row = &a[i * k..i * k + i];
        b[i] = (b[i] - dot(row, &b[..i])) / a[i * k + i];
    }
    // Lᵀ x = y, a row of L at a time: once x[i] is known, its terms leave the rows above.
    for i in (0..k).rev() {
        b[i] /= a[i * k + i];
        let xi = b[i];
        for (bp, l) in b[..i].iter_mut().zip(&a[i * k..i * k + i]) {
            *bp -= l * xi;
        }
    }
    true
}

/// `Σ xᵢyᵢ` over equal-length slices, in eight independent partial sums.
fn dot(x: &[f64], y: &[f64]) -> f64 {
    debug_assert_eq!(x.len(), y.len());
    let mut lanes = [0.0f64; 8];
    let (xs, ys) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f64 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (xc, yc) in xs.zip(ys) {
        for l in 0..8 {
            lanes[l] += xc[l] * yc[l];
        }
    }
    let pairs = [
        lanes[0] + lanes[4],
        lanes[1] + lanes[5],
        lanes[2] + lanes[6],
        lanes[3] + lanes[7],
    ];
    (pairs[0] + pairs[2]) + (pairs[1] + pairs[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_known_system() {
        // [[4, 2], [2, 3]] x = [2, 1]  →  x = [0.5, 0]
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let mut b = vec![2.0, 1.0];
        assert!(cholesky_solve(&mut a, &mut b, 2));
        assert!((b[0] - 0.5).abs() < 1e-12 && b[1].abs() < 1e-12);
    }

    #[test]
    fn solves_a_larger_system_to_its_residual() {
        // A = MᵀM + I (positive definite), k = 37: every loop has a vector part and a tail.
        let k = 37;
        let m: Vec<f64> = (0..k * k)
            .map(|i| ((i * 7919) % 101) as f64 / 101.0 - 0.5)
            .collect();
        let mut a = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..k {
                a[i * k + j] = (0..k).map(|p| m[p * k + i] * m[p * k + j]).sum::<f64>();
            }
            a[i * k + i] += 1.0;
        }
        let x: Vec<f64> = (0..k).map(|i| i as f64 / k as f64 - 0.3).collect();
        let mut b: Vec<f64> = (0..k)
            .map(|i| (0..k).map(|j| a[i * k + j] * x[j]).sum())
            .collect();
        assert!(cholesky_solve(&mut a.clone(), &mut b, k));
        for (got, want) in b.iter().zip(&x) {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
    }

    #[test]
    fn refuses_indefinite() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        let mut b = vec![1.0, 1.0];
        assert!(!cholesky_solve(&mut a, &mut b, 2));
    }
}
