//! Lanczos with full reorthogonalisation: the top eigenvalues of a symmetric
//! operator known only through products `v ↦ Av`.
//!
//! Pure linear algebra in f64 on the host; it knows nothing of models. The
//! solver is a state machine ([`Lanczos::query`] → caller computes `A q` →
//! [`Lanczos::feed`]) so that a synchronous CLI and an asynchronous browser
//! worker can both drive it; [`top_eigenpairs`] is the synchronous driver.
//!
//! After m steps, `A Q_m = Q_m T_m + β_m q_{m+1} e_mᵀ` with `T_m` tridiagonal.
//! A Ritz pair (θ, y = Q_m s) has residual ‖A y − θ y‖ = β_m |s_m| (exact while
//! Q_m stays orthonormal, which full reorthogonalisation ensures), and some
//! eigenvalue of A lies within that residual of θ. Ritz values are ordered
//! algebraically, so the solver returns the largest *algebraic* eigenvalues,
//! also when a negative eigenvalue has the larger magnitude.

use serde::{Deserialize, Serialize};

use crate::linalg::{axpy, dot, norm, symmetric_eigen};

/// Settings of a Lanczos run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LanczosConfig {
    /// Number of top eigenvalues wanted (k ≥ 1).
    pub k: usize,
    /// Stop when every one of the top-k residuals is ≤ `tol`·|λ₁| (relative
    /// accuracy of the eigenvalues).
    pub tol: f64,
    /// At most this many operator products.
    pub max_steps: usize,
    /// At least this many operator products (guards against a start vector
    /// that happens to be an eigenvector of a lower eigenvalue).
    pub min_steps: usize,
}

impl Default for LanczosConfig {
    fn default() -> Self {
        LanczosConfig {
            k: 1,
            tol: 1e-3,
            max_steps: 100,
            min_steps: 2,
        }
    }
}

/// A Ritz approximation of an eigenpair.
#[derive(Clone, Debug)]
pub struct RitzPair {
    /// Ritz value θ.
    pub value: f64,
    /// ‖A y − θ y‖ for the unit Ritz vector y.
    pub residual: f64,
    /// The unit Ritz vector y (when asked for).
    pub vector: Option<Vec<f64>>,
}

/// Lanczos state: an orthonormal Krylov basis and the tridiagonal T.
#[derive(Clone, Debug)]
pub struct Lanczos {
    basis: Vec<Vec<f64>>,
    alpha: Vec<f64>,
    beta: Vec<f64>,
    exhausted: bool,
}

impl Lanczos {
    /// Starts from `start` (normalised here; must be non-zero and finite).
    pub fn new(mut start: Vec<f64>) -> Self {
        let n = norm(&start);
        assert!(
            n > 0.0 && n.is_finite(),
            "Lanczos start vector must be non-zero and finite"
        );
        start.iter_mut().for_each(|x| *x /= n);
        Lanczos {
            basis: vec![start],
            alpha: Vec::new(),
            beta: Vec::new(),
            exhausted: false,
        }
    }

    /// The vector q the caller must multiply by A next.
    pub fn query(&self) -> &[f64] {
        self.basis.last().expect("basis is never empty")
    }

    /// Number of operator products fed so far.
    pub fn steps(&self) -> usize {
        self.alpha.len()
    }

    /// True when the Krylov space is invariant (β = 0) or spans the whole space:
    /// the Ritz values are then exact eigenvalues of A.
    pub fn is_exhausted(&self) -> bool {
        self.exhausted
    }

    /// Feeds `aq = A·query()`. Must not be called once [`Lanczos::is_exhausted`].
    pub fn feed(&mut self, aq: &[f64]) {
        assert!(
            !self.exhausted,
            "Lanczos::feed after the Krylov space was exhausted"
        );
        let j = self.alpha.len();
        let q = &self.basis[j];
        assert_eq!(
            aq.len(),
            q.len(),
            "operator returned a vector of the wrong length"
        );
        let mut w = aq.to_vec();
        let a = dot(q, &w);
        axpy(-a, q, &mut w);
        if j > 0 {
            axpy(-self.beta[j - 1], &self.basis[j - 1], &mut w);
        }
        // Full reorthogonalisation against the whole basis; a second pass only
        // when the first cancelled most of w (DGKS criterion, ‖w'‖ < ‖w‖/√2),
        // which is when one pass can leave a component behind ("twice is enough").
        for _ in 0..2 {
            let before = norm(&w);
            for b in &self.basis {
                let c = dot(b, &w);
                axpy(-c, b, &mut w);
            }
            if norm(&w) >= std::f64::consts::FRAC_1_SQRT_2 * before {
                break;
            }
        }
        self.alpha.push(a);
        let b = norm(&w);
        let scale = a
            .abs()
            .max(self.beta.last().copied().unwrap_or(0.0))
            .max(f64::MIN_POSITIVE);
        self.beta.push(b);
        if b <= 1e-12 * scale || self.basis.len() == q.len() || !b.is_finite() {
            self.exhausted = true;
            return;
        }
        w.iter_mut().for_each(|x| *x /= b);
        self.basis.push(w);
    }

    /// The top-`k` Ritz pairs (largest algebraic first).
    pub fn ritz(&self, k: usize, with_vectors: bool) -> Vec<RitzPair> {
        let m = self.alpha.len();
        if m == 0 {
            return Vec::new();
        }
        let mut t = vec![0.0; m * m];
        for i in 0..m {
            t[i * m + i] = self.alpha[i];
            if i + 1 < m {
                t[i * m + i + 1] = self.beta[i];
                t[(i + 1) * m + i] = self.beta[i];
            }
        }
        let (values, vectors) = symmetric_eigen(&t, m);
        let beta_m = if self.exhausted {
            0.0
        } else {
            self.beta[m - 1]
        };
        values
            .iter()
            .zip(&vectors)
            .take(k)
            .map(|(&value, s)| RitzPair {
                value,
                residual: (beta_m * s[m - 1]).abs(),
                vector: with_vectors.then(|| {
                    let mut y = vec![0.0; self.basis[0].len()];
                    for (c, q) in s.iter().zip(&self.basis) {
                        axpy(*c, q, &mut y);
                    }
                    let ny = norm(&y);
                    y.iter_mut().for_each(|x| *x /= ny);
                    y
                }),
            })
            .collect()
    }

    /// The top-`k` Ritz pairs with vectors, as a result (`converged` as the caller found it).
    pub fn eigenpairs(&self, k: usize, converged: bool) -> Eigenpairs {
        let pairs = self.ritz(k, true);
        Eigenpairs {
            values: pairs.iter().map(|p| p.value).collect(),
            residuals: pairs.iter().map(|p| p.residual).collect(),
            vectors: pairs
                .into_iter()
                .map(|p| p.vector.expect("asked for vectors"))
                .collect(),
            steps: self.steps(),
            converged,
        }
    }

    /// True when the top-`k` Ritz pairs meet `cfg`'s tolerance.
    pub fn converged(&self, cfg: &LanczosConfig) -> bool {
        if self.exhausted {
            return true;
        }
        if self.steps() < cfg.min_steps.max(cfg.k) {
            return false;
        }
        let pairs = self.ritz(cfg.k, false);
        let scale = pairs[0].value.abs().max(f64::MIN_POSITIVE);
        pairs.len() == cfg.k && pairs.iter().all(|p| p.residual <= cfg.tol * scale)
    }
}

/// Result of [`top_eigenpairs`].
#[derive(Clone, Debug)]
pub struct Eigenpairs {
    /// Top-k eigenvalue estimates, descending.
    pub values: Vec<f64>,
    /// ‖A y − θ y‖ of each.
    pub residuals: Vec<f64>,
    /// Unit eigenvector estimates.
    pub vectors: Vec<Vec<f64>>,
    /// Operator products spent.
    pub steps: usize,
    /// Whether the tolerance was met within `max_steps`.
    pub converged: bool,
}

/// Runs Lanczos on `op` from `start` until `cfg` is met (or `max_steps`).
/// `op` may fail (e.g. a backend error); the error is passed through.
pub fn top_eigenpairs<E>(
    mut op: impl FnMut(&[f64]) -> Result<Vec<f64>, E>,
    start: Vec<f64>,
    cfg: &LanczosConfig,
) -> Result<Eigenpairs, E> {
    let mut l = Lanczos::new(start);
    loop {
        let aq = op(l.query())?;
        l.feed(&aq);
        let done = l.converged(cfg);
        if done || l.steps() >= cfg.max_steps {
            return Ok(l.eigenpairs(cfg.k, done));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::{matvec, symmetric_eigenvalues};
    use crate::rng::Rng;

    fn random_symmetric(n: usize, rng: &mut Rng) -> Vec<f64> {
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let x = rng.normal();
                a[i * n + j] = x;
                a[j * n + i] = x;
            }
        }
        a
    }

    #[test]
    fn matches_dense_eigenvalues() {
        let mut rng = Rng::new(11);
        let n = 60;
        let a = random_symmetric(n, &mut rng);
        let exact = symmetric_eigenvalues(&a, n);
        let cfg = LanczosConfig {
            k: 3,
            tol: 1e-10,
            max_steps: n,
            min_steps: 2,
        };
        let r = top_eigenpairs(
            |v| Ok::<_, ()>(matvec(&a, n, n, v)),
            rng.unit_vector(n),
            &cfg,
        )
        .unwrap();
        #[allow(clippy::needless_range_loop)]
        for i in 0..3 {
            assert!(
                (r.values[i] - exact[i]).abs() < 1e-8,
                "{i}: {} vs {}",
                r.values[i],
                exact[i]
            );
            // the reported residual is the true residual
            let av = matvec(&a, n, n, &r.vectors[i]);
            let true_res = av
                .iter()
                .zip(&r.vectors[i])
                .map(|(x, y)| (x - r.values[i] * y).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                (true_res - r.residuals[i]).abs() < 1e-8,
                "residual {} vs {}",
                true_res,
                r.residuals[i]
            );
        }
    }

    #[test]
    fn largest_algebraic_not_largest_magnitude() {
        // spectrum {-10, 3, 2, 1, 0.5, ...}: the answer is 3, not -10.
        let n = 30;
        let mut rng = Rng::new(5);
        let mut diag: Vec<f64> = (0..n).map(|i| 2.0 - 2.0 * i as f64 / n as f64).collect();
        diag[0] = 3.0;
        diag[7] = -10.0;
        // rotate by a random orthogonal matrix (Gram–Schmidt of Gaussians)
        let mut q: Vec<Vec<f64>> = Vec::new();
        while q.len() < n {
            let mut v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
            for b in &q {
                let c = dot(b, &v);
                axpy(-c, b, &mut v);
            }
            let nv = norm(&v);
            v.iter_mut().for_each(|x| *x /= nv);
            q.push(v);
        }
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| q[k][i] * diag[k] * q[k][j]).sum();
            }
        }
        let cfg = LanczosConfig {
            k: 1,
            tol: 1e-9,
            max_steps: n,
            min_steps: 2,
        };
        let r = top_eigenpairs(
            |v| Ok::<_, ()>(matvec(&a, n, n, v)),
            rng.unit_vector(n),
            &cfg,
        )
        .unwrap();
        assert!((r.values[0] - 3.0).abs() < 1e-7, "got {}", r.values[0]);
        assert!(r.converged);
    }

    #[test]
    fn warm_start_converges_fast() {
        let mut rng = Rng::new(9);
        let n = 200;
        let a = random_symmetric(n, &mut rng);
        let cfg = LanczosConfig {
            k: 1,
            tol: 1e-6,
            max_steps: n,
            min_steps: 2,
        };
        let cold = top_eigenpairs(
            |v| Ok::<_, ()>(matvec(&a, n, n, v)),
            rng.unit_vector(n),
            &cfg,
        )
        .unwrap();
        // perturb the matrix slightly and warm start from the old top vector
        let mut b = a.clone();
        for i in 0..n {
            b[i * n + i] += 1e-3 * rng.normal();
        }
        let warm = top_eigenpairs(
            |v| Ok::<_, ()>(matvec(&b, n, n, v)),
            cold.vectors[0].clone(),
            &cfg,
        )
        .unwrap();
        let exact = symmetric_eigenvalues(&b, n)[0];
        assert!((warm.values[0] - exact).abs() < 1e-5);
        assert!(
            warm.steps < cold.steps,
            "warm {} cold {}",
            warm.steps,
            cold.steps
        );
    }

    #[test]
    fn invariant_subspace_is_exact() {
        // A = I·2 on R^5: one step spans an invariant space.
        let r = top_eigenpairs(
            |v: &[f64]| Ok::<_, ()>(v.iter().map(|x| 2.0 * x).collect()),
            vec![1.0, 2.0, 0.0, 0.0, 1.0],
            &LanczosConfig::default(),
        )
        .unwrap();
        assert_eq!(r.steps, 1);
        assert!((r.values[0] - 2.0).abs() < 1e-14);
        assert_eq!(r.residuals[0], 0.0);
    }
}
