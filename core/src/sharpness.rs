//! Sharpness: λ_max(∇²_θ ℓ_S(θ)), the largest *algebraic* Hessian eigenvalue
//! (and the top-k on request), and the Gauss–Newton top eigenvalue — Lanczos
//! ([`crate::lanczos`]) on finite-difference products ([`crate::hvp`]).
//!
//! Each estimate records its eigenvalues, a residual ‖Hu − λu‖ per eigenvalue
//! (the error bar: some eigenvalue of the operator lies within it), the number
//! of products and the wall time. During training the solver is warm-started
//! from the previous estimate's top eigenvector.

use std::time::Instant;

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::hvp::{GaussNewtonOperator, HessianOperator, HvpConfig};
use crate::lanczos::{top_eigenpairs, LanczosConfig};
use crate::loss::LossConfig;
use crate::models::Architecture;
use crate::objective::Sample;
use crate::rng::Rng;

/// Settings of a sharpness estimate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SharpnessConfig {
    /// Lanczos settings (k, tolerance, step limits).
    pub lanczos: LanczosConfig,
    /// Finite-difference settings.
    pub hvp: HvpConfig,
    /// Seed of the random start vector (cold start).
    pub seed: u64,
}

/// One eigenvalue estimate.
#[derive(Clone, Debug)]
pub struct Sharpness {
    /// Top-k eigenvalues, descending (algebraic).
    pub eigenvalues: Vec<f64>,
    /// ‖Au − λu‖ per eigenvalue.
    pub residuals: Vec<f64>,
    /// Operator products spent.
    pub products: usize,
    /// Seconds spent.
    pub wall_s: f64,
    /// Whether the tolerance was met.
    pub converged: bool,
    /// Unit eigenvector estimates (flat, PyTorch parameter order), for warm starts.
    pub vectors: Vec<Vec<f64>>,
    /// ε used by the finite differences.
    pub eps: f64,
}

impl Sharpness {
    /// λ_max
    pub fn top(&self) -> f64 {
        self.eigenvalues[0]
    }
}

fn start_vector(p: usize, warm: Option<&[f64]>, seed: u64) -> Vec<f64> {
    match warm {
        Some(w)
            if w.len() == p && w.iter().all(|x| x.is_finite()) && w.iter().any(|&x| x != 0.0) =>
        {
            w.to_vec()
        }
        _ => Rng::derived(seed, "lanczos").unit_vector(p),
    }
}

/// Lanczos on `apply` from the warm or a random start; `eps` is the
/// operator's finite-difference step, recorded with the result.
fn estimate(
    mut apply: impl FnMut(&[f64]) -> Vec<f64>,
    eps: f64,
    p: usize,
    cfg: &SharpnessConfig,
    warm: Option<&[f64]>,
    seed: u64,
    t0: Instant,
) -> Sharpness {
    let start = start_vector(p, warm, seed);
    let r = top_eigenpairs(
        |v| Ok::<_, std::convert::Infallible>(apply(v)),
        start,
        &cfg.lanczos,
    )
    .unwrap_or_else(|e| match e {});
    Sharpness {
        eigenvalues: r.values,
        residuals: r.residuals,
        products: r.steps,
        wall_s: t0.elapsed().as_secs_f64(),
        converged: r.converged,
        vectors: r.vectors,
        eps,
    }
}

/// Top Hessian eigenvalues of ℓ_S at θ = `params`.
pub fn top_hessian_eigenvalues(
    arch: &Architecture,
    params: &[Tensor<1>],
    sample: &Sample,
    loss: &LossConfig,
    cfg: &SharpnessConfig,
    warm: Option<&[f64]>,
) -> Sharpness {
    let t0 = Instant::now();
    let mut op = HessianOperator::new(arch, params, sample, loss, &cfg.hvp);
    let eps = op.eps;
    estimate(
        |v| op.apply(v),
        eps,
        arch.num_params(),
        cfg,
        warm,
        cfg.seed,
        t0,
    )
}

/// Top eigenvalue(s) of the Gauss–Newton matrix of ℓ_S at θ = `params`.
pub fn top_gauss_newton_eigenvalues(
    arch: &Architecture,
    params: &[Tensor<1>],
    sample: &Sample,
    loss: &LossConfig,
    cfg: &SharpnessConfig,
    warm: Option<&[f64]>,
) -> Sharpness {
    let t0 = Instant::now();
    let mut op = GaussNewtonOperator::new(arch, params, sample, loss, &cfg.hvp);
    let eps = op.eps;
    estimate(
        |v| op.apply(v),
        eps,
        arch.num_params(),
        cfg,
        warm,
        cfg.seed ^ 0x9e37,
        t0,
    )
}
