//! Small dense linear algebra in f64 on the host: symmetric eigen-decomposition
//! (cyclic Jacobi), vector helpers. Used for Lanczos' tridiagonal matrices and
//! the C×C Gram matrices of per-sample Jacobians. Knows nothing of models.

/// Eigen-decomposition of a symmetric `n × n` matrix `a` (row-major).
///
/// Returns `(values, vectors)`, values in descending algebraic order and
/// `vectors[j]` the unit eigenvector of `values[j]`. Cyclic Jacobi: accurate to
/// a few ulps of ‖a‖ for every eigenvalue; cost O(n³) per sweep, for the small
/// matrices (n ≤ a few hundred) curvlab needs.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let (values, v) = jacobi(a, n, true);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| values[j].total_cmp(&values[i]));
    let vectors = order
        .iter()
        .map(|&j| (0..n).map(|i| v[i * n + j]).collect())
        .collect();
    (order.iter().map(|&j| values[j]).collect(), vectors)
}

/// Eigenvalues of a symmetric matrix, descending.
pub fn symmetric_eigenvalues(a: &[f64], n: usize) -> Vec<f64> {
    let (mut values, _) = jacobi(a, n, false);
    values.sort_by(|x, y| y.total_cmp(x));
    values
}

/// Largest eigenvalue of a symmetric matrix.
pub fn largest_eigenvalue(a: &[f64], n: usize) -> f64 {
    symmetric_eigenvalues(a, n)[0]
}

fn jacobi(a: &[f64], n: usize, want_vectors: bool) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(
        a.len(),
        n * n,
        "symmetric_eigen: {} values for a {n}×{n} matrix",
        a.len()
    );
    let mut m = a.to_vec();
    // symmetrise against rounding in the caller
    for i in 0..n {
        for j in 0..i {
            let s = 0.5 * (m[i * n + j] + m[j * n + i]);
            m[i * n + j] = s;
            m[j * n + i] = s;
        }
    }
    let mut v = if want_vectors {
        let mut v = vec![0.0; n * n];
        (0..n).for_each(|i| v[i * n + i] = 1.0);
        v
    } else {
        Vec::new()
    };
    let scale: f64 = m.iter().map(|x| x * x).sum::<f64>().sqrt();
    if scale == 0.0 || n == 1 {
        return ((0..n).map(|i| m[i * n + i]).collect(), v);
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j].powi(2))
            .sum();
        if off.sqrt() <= 1e-15 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let app = m[p * n + p];
                let aqq = m[q * n + q];
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let mkp = m[k * n + p];
                    let mkq = m[k * n + q];
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let mpk = m[p * n + k];
                    let mqk = m[q * n + k];
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                if want_vectors {
                    for k in 0..n {
                        let vkp = v[k * n + p];
                        let vkq = v[k * n + q];
                        v[k * n + p] = c * vkp - s * vkq;
                        v[k * n + q] = s * vkp + c * vkq;
                    }
                }
            }
        }
    }
    ((0..n).map(|i| m[i * n + i]).collect(), v)
}

/// Dot product. Eight independent partial sums let the compiler vectorise
/// (a single running sum forces one add at a time); they are added pairwise.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "dot of vectors of different lengths");
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Euclidean norm.
pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// y ← y + alpha·x
pub fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(yi, xi)| *yi += alpha * xi);
}

/// Dense matrix–vector product, `a` row-major `rows × cols`.
pub fn matvec(a: &[f64], rows: usize, cols: usize, x: &[f64]) -> Vec<f64> {
    (0..rows)
        .map(|i| dot(&a[i * cols..(i + 1) * cols], x))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn eigen_of_random_symmetric_matrices() {
        let mut rng = Rng::new(3);
        for n in [1usize, 2, 3, 7, 20] {
            let mut a = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..=i {
                    let x = rng.normal();
                    a[i * n + j] = x;
                    a[j * n + i] = x;
                }
            }
            let (vals, vecs) = symmetric_eigen(&a, n);
            for (l, v) in vals.iter().zip(&vecs) {
                let av = matvec(&a, n, n, v);
                let r: f64 = av
                    .iter()
                    .zip(v)
                    .map(|(x, y)| (x - l * y).powi(2))
                    .sum::<f64>()
                    .sqrt();
                assert!(r < 1e-12, "n={n} residual {r}");
                assert!((norm(v) - 1.0).abs() < 1e-12);
            }
            assert!(vals.windows(2).all(|w| w[0] >= w[1]));
            let trace: f64 = (0..n).map(|i| a[i * n + i]).sum();
            assert!((vals.iter().sum::<f64>() - trace).abs() < 1e-10);
        }
    }

    #[test]
    fn dot_matches_naive_sum() {
        let mut rng = Rng::new(1);
        for n in [0usize, 1, 7, 8, 9, 100, 1001] {
            let a: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
            let b: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!(
                (dot(&a, &b) - naive).abs() <= 1e-12 * (1.0 + naive.abs()),
                "n={n}"
            );
        }
    }

    #[test]
    fn closed_form_2x2() {
        // [[2,1],[1,2]] has eigenvalues 3 and 1.
        let v = symmetric_eigenvalues(&[2.0, 1.0, 1.0, 2.0], 2);
        assert!((v[0] - 3.0).abs() < 1e-14 && (v[1] - 1.0).abs() < 1e-14);
        // largest algebraic, not largest magnitude: diag(1, -5)
        assert_eq!(largest_eigenvalue(&[1.0, 0.0, 0.0, -5.0], 2), 1.0);
    }
}
