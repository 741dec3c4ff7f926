//! Lanczos with full reorthogonalisation: the top eigenvalues of a symmetric
//! operator known only through products `v ↦ Av`.
//!
//! Pure linear algebra; it knows nothing of models. The solver is a state
//! machine so that a synchronous CLI and an asynchronous browser worker can
//! both drive it: [`Lanczos::query`] → caller computes `A q` →
//! [`Lanczos::begin`] (the step's vector work, which yields α and β) →
//! caller reads α, β → [`Lanczos::resolve`]. `feed` is the whole step: on the
//! host for host vectors, awaiting the read for device vectors; and
//! [`top_eigenpairs`] is the synchronous driver.
//!
//! One recurrence ([`Lanczos`]: the tridiagonal T, breakdown, convergence,
//! Ritz pairs, all in f64 on the host) runs over a [`Basis`], which holds the
//! Krylov vectors where they live:
//!
//! - [`HostBasis`]: `Vec<f64>` vectors on the host (f64 throughout);
//! - [`DeviceBasis`]: flat f32 tensors on the compute device, the basis
//!   stacked as one `[m, P]` matrix, so that a step moves only α and β (two
//!   f32s) off the device and the O(m·P) reorthogonalisation runs there as
//!   four matrix–vector products. [`crate::sharpness`] uses it: the operator
//!   products never leave the device, and the Ritz vector is read once at the end.
//!
//! After m steps, `A Q_m = Q_m T_m + β_m q_{m+1} e_mᵀ` with `T_m` tridiagonal.
//! A Ritz pair (θ, y = Q_m s) has residual ‖A y − θ y‖ = β_m |s_m| (exact while
//! Q_m stays orthonormal, which full reorthogonalisation ensures), and some
//! eigenvalue of A lies within that residual of θ. Ritz values are ordered
//! algebraically, so the solver returns the largest *algebraic* eigenvalues,
//! also when a negative eigenvalue has the larger magnitude.

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::backend::read_vec;
use crate::config::settings;
use crate::linalg::{axpy, dot, norm, symmetric_eigen};

settings! {
    /// Settings of a Lanczos run.
    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    pub struct LanczosConfig {
        /// Number of top eigenvalues wanted (k ≥ 1).
        pub k: usize = 1,
        /// Stop when every one of the top-k residuals is ≤ `tol`·|λ₁| (relative
        /// accuracy of the eigenvalues).
        pub tol: f64 = 1e-3,
        /// At most this many operator products.
        pub max_steps: usize = 100,
        /// At least this many operator products (guards against a start vector
        /// that happens to be an eigenvector of a lower eigenvalue).
        pub min_steps: usize = 2,
    }
}

/// A Ritz approximation of an eigenpair.
#[derive(Clone, Debug)]
pub struct RitzPair<V = Vec<f64>> {
    /// Ritz value θ.
    pub value: f64,
    /// ‖A y − θ y‖ for the unit Ritz vector y.
    pub residual: f64,
    /// The unit Ritz vector y (when asked for).
    pub vector: Option<V>,
}

/// Where the Lanczos vectors live, and the vector half of a Lanczos step.
///
/// The basis holds the orthonormal vectors q_0..q_j; the last one is the
/// current query. For the product `aq = A q_j`, [`Basis::residual`] computes
///
/// α = ⟨q_j, aq⟩, w = aq − α q_j − β_{j−1} q_{j−1},
///
/// and one pass of Gram–Schmidt of w against the whole basis (full
/// reorthogonalisation), returning `[α, ‖w‖ before, ‖w‖ after]`;
/// [`Basis::reorthogonalise`] is another pass (`[‖w‖ before, ‖w‖ after]`),
/// which [`Lanczos::resolve`] asks for when the first pass cancelled most of
/// w. [`Basis::accept`] appends w/‖w‖ as q_{j+1}.
pub trait Basis {
    /// A vector of the space.
    type Vector;
    /// The scalars of a pass as the basis produces them (host numbers, or a
    /// device tensor the driver reads).
    type Scalars;
    /// β ≤ `BREAKDOWN`·max(|α|, β_{j−1}) means an invariant subspace: a few
    /// units of rounding of the basis' arithmetic.
    const BREAKDOWN: f64;
    /// Length of the vectors.
    fn dim(&self) -> usize;
    /// Number of basis vectors.
    fn count(&self) -> usize;
    /// The last basis vector (the query).
    fn last(&self) -> &Self::Vector;
    /// The step's residual w and its first reorthogonalisation pass (see the
    /// trait), given β_{j−1} (0 at the first step).
    fn residual(&mut self, aq: Self::Vector, beta_prev: f64) -> Self::Scalars;
    /// One more reorthogonalisation pass of w.
    fn reorthogonalise(&mut self) -> Self::Scalars;
    /// Appends w/‖w‖.
    fn accept(&mut self);
    /// The unit vector along Σ_i s_i q_i (`s` may be shorter than the basis).
    fn combine(&self, s: &[f64]) -> Self::Vector;
}

/// `start / ‖start‖`; the start vector must be non-zero and finite.
fn unit(mut start: Vec<f64>) -> Vec<f64> {
    let n = norm(&start);
    assert!(
        n > 0.0 && n.is_finite(),
        "Lanczos start vector must be non-zero and finite"
    );
    start.iter_mut().for_each(|x| *x /= n);
    start
}

/// Host basis: f64 vectors, modified Gram–Schmidt.
#[derive(Clone, Debug)]
pub struct HostBasis {
    vectors: Vec<Vec<f64>>,
    /// w of the current step.
    w: Vec<f64>,
}

impl HostBasis {
    /// Starts from `start` (normalised here; must be non-zero and finite).
    pub fn new(start: Vec<f64>) -> Self {
        HostBasis {
            vectors: vec![unit(start)],
            w: Vec::new(),
        }
    }

    fn pass(&mut self) -> Vec<f64> {
        let before = norm(&self.w);
        for b in &self.vectors {
            let c = dot(b, &self.w);
            axpy(-c, b, &mut self.w);
        }
        vec![before, norm(&self.w)]
    }
}

impl Basis for HostBasis {
    type Vector = Vec<f64>;
    /// The numbers themselves.
    type Scalars = Vec<f64>;
    const BREAKDOWN: f64 = 1e-12;

    fn dim(&self) -> usize {
        self.vectors[0].len()
    }

    fn count(&self) -> usize {
        self.vectors.len()
    }

    fn last(&self) -> &Vec<f64> {
        self.vectors.last().expect("basis is never empty")
    }

    fn residual(&mut self, mut w: Vec<f64>, beta_prev: f64) -> Vec<f64> {
        let j = self.vectors.len() - 1;
        let q = &self.vectors[j];
        assert_eq!(
            w.len(),
            q.len(),
            "operator returned a vector of the wrong length"
        );
        let a = dot(q, &w);
        axpy(-a, q, &mut w);
        if j > 0 {
            axpy(-beta_prev, &self.vectors[j - 1], &mut w);
        }
        self.w = w;
        let mut out = vec![a];
        out.extend(self.pass());
        out
    }

    fn reorthogonalise(&mut self) -> Vec<f64> {
        self.pass()
    }

    fn accept(&mut self) {
        let mut w = std::mem::take(&mut self.w);
        let b = norm(&w);
        w.iter_mut().for_each(|x| *x /= b);
        self.vectors.push(w);
    }

    fn combine(&self, s: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; self.dim()];
        for (c, q) in s.iter().zip(&self.vectors) {
            axpy(*c, q, &mut y);
        }
        let ny = norm(&y);
        y.iter_mut().for_each(|x| *x /= ny);
        y
    }
}

/// Device basis: flat f32 tensors of length P on the compute device, stored
/// as the rows of one `[capacity, P]` matrix Q (capacity doubling as the
/// basis grows, up to a limit; a new row is written in place, where growing Q
/// by concatenation would copy all of it every step).
///
/// # Memory
/// m Lanczos steps keep m + 1 vectors (the basis and the next query). With
/// the limit m + 1 ([`DeviceBasis::with_limit`], which the drivers here set
/// from the step limit) Q never holds more than (m + 1)·P f32 values, plus
/// O(P) working vectors (the product, w, the previous vector); without it
/// the doubling can reach 2m·P.
///
/// A step costs, besides the operator product, O(m·P) device work and no
/// host transfer but three f32 scalars: α = ⟨q, Aq⟩, w = Aq − αq − βq_prev,
/// one pass of classical Gram–Schmidt against Q as two matrix–vector
/// products (c = Q·w, w −= Qᵀc), and the norms of w before and after it.
/// When the pass cancelled most of w (the DGKS test of [`Lanczos::resolve`])
/// a second pass runs, at the cost of one more 2-scalar read; q_next = w/‖w‖
/// is formed on the device.
///
/// Accuracy (measured by the unit tests here and tests/numeric.rs, deep.rs):
/// on a 60×60 random symmetric matrix the top-3 Ritz values agree with the
/// dense f64 eigenvalues of the same matrix to ~1e-8 relative, and the Ritz
/// vector's true residual agrees with the reported one; on the models of the
/// numeric tests the top eigenvalues stay within those tests' tolerances
/// (e.g. 1e-4 relative of the exact Rayleigh quotient), the f32 rounding and
/// O(ε²) error of the products dominating the basis' rounding.
#[derive(Clone, Debug)]
pub struct DeviceBasis {
    /// Q: rows `0..len` are the basis, the rest unwritten.
    store: Option<Tensor<2>>,
    last: Tensor<1>,
    prev: Option<Tensor<1>>,
    /// w of the current step and ‖w‖ (`[1]`).
    w: Option<(Tensor<1>, Tensor<1>)>,
    len: usize,
    dim: usize,
    /// Q never grows beyond this many rows.
    limit: usize,
}

impl DeviceBasis {
    /// Starts from the host vector `start` (normalised here in f64, then
    /// uploaded as f32; must be non-zero and finite).
    pub fn new(start: &[f64], device: &Device) -> Self {
        DeviceBasis::with_limit(start, device, usize::MAX)
    }

    /// [`DeviceBasis::new`] holding at most `rows` vectors (≥ 1): enough for
    /// `rows − 1` Lanczos steps, in at most `rows`·P f32 values.
    ///
    /// # Panics
    /// When the basis is asked to grow beyond `rows` (a driver that runs more
    /// steps than it sized the basis for).
    pub fn with_limit(start: &[f64], device: &Device, rows: usize) -> Self {
        let p = start.len();
        let limit = rows.max(1);
        let v: Vec<f32> = unit(start.to_vec()).iter().map(|&x| x as f32).collect();
        let q = Tensor::<1>::from_data(TensorData::new(v, [p]), device);
        let store = Tensor::<2>::empty([limit.min(8), p], device)
            .slice_assign([0..1, 0..p], q.clone().reshape([1, p]));
        DeviceBasis {
            store: Some(store),
            last: q,
            prev: None,
            w: None,
            len: 1,
            dim: p,
            limit,
        }
    }

    /// Rows of Q allocated on the device now (≤ the limit).
    pub fn capacity(&self) -> usize {
        self.store.as_ref().map_or(0, |s| s.dims()[0])
    }

    fn rows(&self) -> Tensor<2> {
        self.store
            .clone()
            .expect("store is always present")
            .slice([0..self.len, 0..self.dim])
    }

    /// One classical Gram–Schmidt pass of `w` against the basis.
    fn pass(&self, w: Tensor<1>) -> Tensor<1> {
        let (p, q) = (self.dim, self.rows());
        let c = q.clone().matmul(w.clone().reshape([p, 1]));
        let proj: Tensor<2> = c.reshape([1, self.len]).matmul(q);
        w - proj.reshape([p])
    }

    fn norm(w: &Tensor<1>) -> Tensor<1> {
        w.clone().square().sum().sqrt()
    }
}

impl Basis for DeviceBasis {
    type Vector = Tensor<1>;
    /// `[α, ‖w‖ before, ‖w‖ after]` or `[‖w‖ before, ‖w‖ after]`.
    type Scalars = Tensor<1>;
    /// f32: u ≈ 6e-8, and β at an invariant subspace is rounding of O(u·‖A‖).
    const BREAKDOWN: f64 = 1e-6;

    fn dim(&self) -> usize {
        self.dim
    }

    fn count(&self) -> usize {
        self.len
    }

    fn last(&self) -> &Tensor<1> {
        &self.last
    }

    fn residual(&mut self, aq: Tensor<1>, beta_prev: f64) -> Tensor<1> {
        assert_eq!(
            aq.dims()[0],
            self.dim,
            "operator returned a vector of the wrong length"
        );
        let q = self.last.clone();
        let alpha = (q.clone() * aq.clone()).sum();
        let mut w = aq - q * alpha.clone();
        if let Some(prev) = &self.prev {
            w = w - prev.clone().mul_scalar(beta_prev);
        }
        let before = Self::norm(&w);
        let w = self.pass(w);
        let after = Self::norm(&w);
        self.w = Some((w, after.clone()));
        Tensor::cat(vec![alpha, before, after], 0)
    }

    fn reorthogonalise(&mut self) -> Tensor<1> {
        let (w, before) = self.w.take().expect("reorthogonalise after residual");
        let w = self.pass(w);
        let after = Self::norm(&w);
        self.w = Some((w, after.clone()));
        Tensor::cat(vec![before, after], 0)
    }

    fn accept(&mut self) {
        let (w, nw) = self.w.take().expect("accept after residual");
        let q = w / nw;
        let (p, len) = (self.dim, self.len);
        let mut store = self.store.take().expect("store is always present");
        let cap = store.dims()[0];
        if len == cap {
            assert!(
                cap < self.limit,
                "DeviceBasis: more than its limit of {} vectors",
                self.limit
            );
            let grown = (2 * cap).min(self.limit);
            store = Tensor::<2>::empty([grown, p], &q.device()).slice_assign([0..cap, 0..p], store);
        }
        self.store = Some(store.slice_assign([len..len + 1, 0..p], q.clone().reshape([1, p])));
        self.prev = Some(std::mem::replace(&mut self.last, q));
        self.len += 1;
    }

    fn combine(&self, s: &[f64]) -> Tensor<1> {
        let mut c: Vec<f32> = s.iter().take(self.len).map(|&x| x as f32).collect();
        c.resize(self.len, 0.0);
        let c = Tensor::<2>::from_data(TensorData::new(c, [1, self.len]), &self.last.device());
        let y = c.matmul(self.rows()).reshape([self.dim]);
        let ny = Self::norm(&y);
        y / ny
    }
}

/// Lanczos state: an orthonormal Krylov basis and the tridiagonal T.
#[derive(Clone, Debug)]
pub struct Lanczos<B: Basis = HostBasis> {
    basis: B,
    alpha: Vec<f64>,
    beta: Vec<f64>,
    exhausted: bool,
    pending: bool,
}

impl Lanczos<HostBasis> {
    /// Starts from `start` on the host (normalised here; must be non-zero and finite).
    pub fn new(start: Vec<f64>) -> Self {
        Lanczos::with_basis(HostBasis::new(start))
    }

    /// Feeds `aq = A·query()`. Must not be called once [`Lanczos::is_exhausted`].
    pub fn feed(&mut self, aq: &[f64]) {
        let mut s = self.begin(aq.to_vec());
        while let Some(next) = self.resolve(&s) {
            s = next;
        }
    }
}

impl Lanczos<DeviceBasis> {
    /// Feeds `aq = A·query()` (a device vector): the step's vector work runs on
    /// the device and each of its scalar results is awaited (one read of three
    /// f32s, plus one of two when a second reorthogonalisation pass runs).
    /// Must not be called once [`Lanczos::is_exhausted`].
    pub async fn feed(&mut self, aq: Tensor<1>) -> crate::Result<()> {
        let mut s = self.begin(aq);
        loop {
            let v: Vec<f64> = read_vec(&s).await?.into_iter().map(f64::from).collect();
            match self.resolve(&v) {
                Some(next) => s = next,
                None => return Ok(()),
            }
        }
    }
}

impl<B: Basis> Lanczos<B> {
    /// Starts from a basis holding the (unit) start vector.
    pub fn with_basis(basis: B) -> Self {
        Lanczos {
            basis,
            alpha: Vec::new(),
            beta: Vec::new(),
            exhausted: false,
            pending: false,
        }
    }

    /// The vector q the caller must multiply by A next.
    pub fn query(&self) -> &B::Vector {
        self.basis.last()
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

    /// First half of a step: the residual of `aq = A·query()` and its first
    /// reorthogonalisation pass (see [`Basis`]). The caller reads the returned
    /// scalars and hands them to [`Lanczos::resolve`]. Must not be called once
    /// [`Lanczos::is_exhausted`], nor before the last step was resolved.
    pub fn begin(&mut self, aq: B::Vector) -> B::Scalars {
        assert!(
            !self.exhausted,
            "Lanczos::feed after the Krylov space was exhausted"
        );
        assert!(
            !self.pending,
            "Lanczos::begin before the last step was resolved"
        );
        self.pending = true;
        let beta_prev = self.beta.last().copied().unwrap_or(0.0);
        self.basis.residual(aq, beta_prev)
    }

    /// Second half of a step, given the numbers of the scalars last returned
    /// (`[α, ‖w‖ before, ‖w‖ after]` from [`Lanczos::begin`], then `[before,
    /// after]`). When the pass cancelled most of w (DGKS: ‖w'‖ < ‖w‖/√2, when
    /// one pass can leave a component behind) and only one pass ran, it
    /// starts a second and returns its scalars to read and resolve in turn
    /// ("twice is enough"). Otherwise β = ‖w‖, the basis is extended unless
    /// the Krylov space is exhausted, and it returns `None`.
    pub fn resolve(&mut self, s: &[f64]) -> Option<B::Scalars> {
        assert!(self.pending, "Lanczos::resolve without begin");
        let b = match *s {
            [a, before, after] => {
                self.alpha.push(a);
                if after < std::f64::consts::FRAC_1_SQRT_2 * before {
                    return Some(self.basis.reorthogonalise());
                }
                after
            }
            [_, after] => after,
            _ => panic!("Lanczos::resolve: {} scalars", s.len()),
        };
        self.pending = false;
        let a = *self.alpha.last().expect("alpha was pushed");
        let scale = a
            .abs()
            .max(self.beta.last().copied().unwrap_or(0.0))
            .max(f64::MIN_POSITIVE);
        self.beta.push(b);
        if b <= B::BREAKDOWN * scale || self.basis.count() == self.basis.dim() || !b.is_finite() {
            self.exhausted = true;
            return None;
        }
        self.basis.accept();
        None
    }

    /// The eigen-decomposition of the tridiagonal T_m (values descending).
    fn tridiagonal_eigen(&self) -> (Vec<f64>, Vec<Vec<f64>>) {
        let m = self.alpha.len();
        let mut t = vec![0.0; m * m];
        for i in 0..m {
            t[i * m + i] = self.alpha[i];
            if i + 1 < m {
                t[i * m + i + 1] = self.beta[i];
                t[(i + 1) * m + i] = self.beta[i];
            }
        }
        symmetric_eigen(&t, m)
    }

    /// Gauss quadrature of the spectral measure of A seen from the unit start
    /// vector q₀ (the Golub–Welsch rule): nodes θ_k, the eigenvalues of T_m,
    /// and weights τ_k = s_k[0]², the squared first components of T_m's unit
    /// eigenvectors. Σ_k τ_k f(θ_k) = e₁ᵀ f(T_m) e₁ = q₀ᵀ f(A) q₀ for every
    /// polynomial f of degree ≤ 2m − 1 (exactly, while the basis is
    /// orthonormal), and Σ_k τ_k = 1. Returns `(nodes, weights)`, nodes
    /// descending; empty before the first step.
    pub fn quadrature(&self) -> (Vec<f64>, Vec<f64>) {
        if self.alpha.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let (nodes, vectors) = self.tridiagonal_eigen();
        let weights = vectors.iter().map(|s| s[0] * s[0]).collect();
        (nodes, weights)
    }

    /// The top-`k` Ritz pairs (largest algebraic first).
    pub fn ritz(&self, k: usize, with_vectors: bool) -> Vec<RitzPair<B::Vector>> {
        let m = self.alpha.len();
        if m == 0 {
            return Vec::new();
        }
        let (values, vectors) = self.tridiagonal_eigen();
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
                vector: with_vectors.then(|| self.basis.combine(s)),
            })
            .collect()
    }

    /// The top-`k` Ritz pairs with vectors, as a result (`converged` as the caller found it).
    pub fn eigenpairs(&self, k: usize, converged: bool) -> Eigenpairs<B::Vector> {
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

    /// `Some(converged)` when the run should stop (converged, or
    /// `cfg.max_steps` spent), `None` while it should go on.
    pub fn done(&self, cfg: &LanczosConfig) -> Option<bool> {
        let converged = self.converged(cfg);
        (converged || self.steps() >= cfg.max_steps).then_some(converged)
    }
}

/// Result of [`top_eigenpairs`].
#[derive(Clone, Debug)]
pub struct Eigenpairs<V = Vec<f64>> {
    /// Top-k eigenvalue estimates, descending.
    pub values: Vec<f64>,
    /// ‖A y − θ y‖ of each.
    pub residuals: Vec<f64>,
    /// Unit eigenvector estimates.
    pub vectors: Vec<V>,
    /// Operator products spent.
    pub steps: usize,
    /// Whether the tolerance was met within `max_steps`.
    pub converged: bool,
}

/// Runs Lanczos on `op` from `start` until `cfg` is met (or `max_steps`),
/// with host vectors in f64.
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
        if let Some(converged) = l.done(cfg) {
            return Ok(l.eigenpairs(cfg.k, converged));
        }
    }
}

/// Runs Lanczos on an operator of device vectors from the host vector
/// `start` until `cfg` is met (or `cfg.max_steps`): the basis lives on
/// `device` ([`DeviceBasis`], at most (max_steps + 1)·P f32 values), each
/// step awaits one read of three scalars, and the Ritz vectors are read back
/// once at the end, in f64.
pub async fn top_eigenpairs_on_device(
    mut op: impl FnMut(&Tensor<1>) -> Tensor<1>,
    start: &[f64],
    cfg: &LanczosConfig,
    device: &Device,
) -> crate::Result<Eigenpairs> {
    let rows = cfg.max_steps.saturating_add(1);
    let mut l = Lanczos::with_basis(DeviceBasis::with_limit(start, device, rows));
    let r = loop {
        l.feed(op(l.query())).await?;
        if let Some(converged) = l.done(cfg) {
            break l.eigenpairs(cfg.k, converged);
        }
    };
    let p = start.len();
    let vectors = if r.vectors.is_empty() {
        Vec::new()
    } else {
        let flat = read_vec(&Tensor::cat(r.vectors, 0)).await?;
        flat.chunks(p)
            .map(|c| c.iter().map(|&x| f64::from(x)).collect())
            .collect()
    };
    Ok(Eigenpairs {
        values: r.values,
        residuals: r.residuals,
        vectors,
        steps: r.steps,
        converged: r.converged,
    })
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

    /// The device basis (flat f32 tensors, Gram–Schmidt twice on the device)
    /// on a random symmetric matrix applied on the device: top-3 Ritz values
    /// against the dense f64 eigenvalues of the same (f32-rounded) matrix, and
    /// the reported residual against the true one of the read-back Ritz vector.
    #[test]
    fn device_basis_matches_dense_eigenvalues() {
        use crate::backend::tensor_to_vec;
        use crate::Block;
        let mut rng = Rng::new(11);
        let n = 60;
        let a: Vec<f64> = random_symmetric(n, &mut rng)
            .into_iter()
            .map(|x| f64::from(x as f32))
            .collect();
        let exact = symmetric_eigenvalues(&a, n);
        let device = Device::flex();
        let at = Tensor::<2>::from_data(
            TensorData::new(a.iter().map(|&x| x as f32).collect::<Vec<_>>(), [n, n]),
            &device,
        );
        let cfg = LanczosConfig {
            k: 3,
            tol: 1e-6,
            max_steps: n,
            min_steps: 2,
        };
        let mut l = Lanczos::with_basis(DeviceBasis::new(&rng.unit_vector(n), &device));
        let r = loop {
            let aq = at
                .clone()
                .matmul(l.query().clone().reshape([n, 1]))
                .reshape([n]);
            l.feed(aq).block().unwrap();
            if let Some(converged) = l.done(&cfg) {
                break l.eigenpairs(cfg.k, converged);
            }
        };
        let mut worst = 0.0f64;
        for i in 0..3 {
            let rel = (r.values[i] - exact[i]).abs() / exact[i].abs();
            worst = worst.max(rel);
            assert!(
                rel < 1e-5,
                "{i}: {} vs {} (rel {rel:.2e})",
                r.values[i],
                exact[i]
            );
            let y: Vec<f64> = tensor_to_vec(&r.vectors[i])
                .into_iter()
                .map(f64::from)
                .collect();
            let ay = matvec(&a, n, n, &y);
            let true_res = ay
                .iter()
                .zip(&y)
                .map(|(x, v)| (x - r.values[i] * v).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                (true_res - r.residuals[i]).abs() < 1e-4 * exact[0].abs(),
                "residual {} vs {}",
                true_res,
                r.residuals[i]
            );
        }
        println!(
            "device Lanczos: {} steps, worst relative error {worst:.2e}",
            r.steps
        );
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

    /// The Gauss quadrature of m steps reproduces q₀ᵀAʲq₀ for j ≤ 2m − 1, and
    /// its weights sum to 1.
    #[test]
    fn quadrature_reproduces_moments() {
        let mut rng = Rng::new(21);
        let n = 40;
        let a = random_symmetric(n, &mut rng);
        let q0 = rng.unit_vector(n);
        let m = 6;
        let mut l = Lanczos::new(q0.clone());
        for _ in 0..m {
            let aq = matvec(&a, n, n, l.query());
            l.feed(&aq);
        }
        let (nodes, weights) = l.quadrature();
        assert_eq!(nodes.len(), m);
        assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let mut v = q0.clone();
        for j in 0..2 * m {
            // v = Aʲ q₀
            let exact = dot(&q0, &v);
            let quad: f64 = nodes
                .iter()
                .zip(&weights)
                .map(|(t, w)| w * t.powi(j as i32))
                .sum();
            assert!(
                (quad - exact).abs() <= 1e-9 * (1.0 + exact.abs()),
                "moment {j}: {quad} vs {exact}"
            );
            v = matvec(&a, n, n, &v);
        }
    }

    /// The device basis never allocates more rows than its limit.
    #[test]
    fn device_basis_stays_within_its_limit() {
        use crate::Block;
        let n = 50;
        let device = Device::flex();
        let d = Tensor::<1>::from_data(
            TensorData::new((0..n).map(|i| i as f32).collect::<Vec<_>>(), [n]),
            &device,
        );
        for steps in [3usize, 8, 11] {
            let mut l = Lanczos::with_basis(DeviceBasis::with_limit(
                &Rng::new(2).unit_vector(n),
                &device,
                steps + 1,
            ));
            while l.steps() < steps {
                l.feed(l.query().clone() * d.clone()).block().unwrap();
            }
            assert!(
                l.basis.capacity() <= steps + 1,
                "{steps}: {}",
                l.basis.capacity()
            );
            assert_eq!(l.basis.count(), steps + 1);
        }
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
