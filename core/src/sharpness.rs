//! Sharpness: λ_max(∇²_θ ℓ_S(θ)), the largest *algebraic* Hessian eigenvalue
//! (and the top-k on request), and the Gauss–Newton top eigenvalue — Lanczos
//! ([`crate::lanczos`]) on finite-difference products ([`crate::hvp`]).
//!
//! Each estimate records its eigenvalues, a residual ‖Hu − λu‖ per eigenvalue
//! (the error bar: some eigenvalue of the operator lies within it), the number
//! of products and the wall time. During training the solver is warm-started
//! from the previous estimate's top eigenvector.
//!
//! The Lanczos vectors stay on the device ([`DeviceBasis`]): each step
//! multiplies a flat f32 tensor by the operator, reorthogonalises there, and
//! reads back only α and β; the Ritz vectors are read once, at the end.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::backend::read_vec;
use crate::hvp::{GaussNewtonOperator, HessianOperator, HvpConfig};
use crate::lanczos::{DeviceBasis, Lanczos, LanczosConfig};
use crate::loss::LossConfig;
use crate::models::{BnMode, Model};
use crate::objective::Sample;
use crate::rng::Rng;
use crate::Result;

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
    /// BatchNorm statistics of the loss whose curvature is measured
    /// (train: batch statistics per chunk, the default; eval: running statistics).
    pub bn_mode: BnMode,
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

/// The operator a Lanczos run multiplies by.
enum Operator<'a> {
    Hessian(HessianOperator<'a>),
    GaussNewton(GaussNewtonOperator<'a>),
}

impl Operator<'_> {
    fn apply(&mut self, v: &Tensor<1>) -> Tensor<1> {
        match self {
            Operator::Hessian(op) => op.apply_flat(v),
            Operator::GaussNewton(op) => op.apply_flat(v),
        }
    }

    fn eps(&self) -> f64 {
        match self {
            Operator::Hessian(op) => op.eps,
            Operator::GaussNewton(op) => op.eps,
        }
    }
}

/// Lanczos on `op` from the warm or a random start, its vectors on `device`:
/// per step one product and one awaited read of three scalars (two when a
/// second reorthogonalisation pass runs).
async fn estimate(
    mut op: Operator<'_>,
    p: usize,
    cfg: &SharpnessConfig,
    warm: Option<&[f64]>,
    seed: u64,
    device: &Device,
    t0: Instant,
) -> Result<Sharpness> {
    let mut l = Lanczos::with_basis(DeviceBasis::new(&start_vector(p, warm, seed), device));
    let r = loop {
        l.feed(op.apply(l.query())).await?;
        if let Some(converged) = l.done(&cfg.lanczos) {
            break l.eigenpairs(cfg.lanczos.k, converged);
        }
    };
    let vectors = if r.vectors.is_empty() {
        Vec::new()
    } else {
        let flat = read_vec(&Tensor::cat(r.vectors, 0)).await?;
        flat.chunks(p)
            .map(|c| c.iter().map(|&x| f64::from(x)).collect())
            .collect()
    };
    Ok(Sharpness {
        eigenvalues: r.values,
        residuals: r.residuals,
        products: r.steps,
        wall_s: t0.elapsed().as_secs_f64(),
        converged: r.converged,
        vectors,
        eps: op.eps(),
    })
}

/// Top Hessian eigenvalues of ℓ_S at θ = `params`.
pub async fn top_hessian_eigenvalues(
    model: &Model,
    sample: &Sample,
    loss: &LossConfig,
    cfg: &SharpnessConfig,
    warm: Option<&[f64]>,
) -> Result<Sharpness> {
    let t0 = Instant::now();
    let op = HessianOperator::new(model, cfg.bn_mode, sample, loss, &cfg.hvp).await?;
    estimate(
        Operator::Hessian(op),
        model.arch.num_params(),
        cfg,
        warm,
        cfg.seed,
        &model.device(),
        t0,
    )
    .await
}

/// Top eigenvalue(s) of the Gauss–Newton matrix of ℓ_S at θ = `params`.
pub async fn top_gauss_newton_eigenvalues(
    model: &Model,
    sample: &Sample,
    loss: &LossConfig,
    cfg: &SharpnessConfig,
    warm: Option<&[f64]>,
) -> Result<Sharpness> {
    let t0 = Instant::now();
    let op = GaussNewtonOperator::new(model, cfg.bn_mode, sample, loss, &cfg.hvp).await?;
    estimate(
        Operator::GaussNewton(op),
        model.arch.num_params(),
        cfg,
        warm,
        cfg.seed ^ 0x9e37,
        &model.device(),
        t0,
    )
    .await
}
