//! Hessian- and Gauss–Newton-vector products of ℓ_S at θ (SPEC "Sharpness").
//!
//! burn has no double backward, so
//!
//! - **HVP**: Hv = [∇ℓ(θ + εv) − ∇ℓ(θ − εv)] / (2ε), central differences of
//!   gradients, with the gates (ReLU pattern, max-pool argmax) of θ held fixed
//!   in the ±ε passes: the generalised Hessian that double-backward frameworks
//!   compute. With fixed gates the network is a polynomial in θ, so the
//!   difference is symmetric and its error is O(ε²) (measured in the tests).
//! - **GVP**: Gv = (1/|S|) Σ_i J_iᵀ H_i J_i v with J_i = ∂f(x_i)/∂θ and
//!   H_i = ∇²_z c (eq. 3, first term): J_i v by central differences of forward
//!   passes (gates fixed), H_i exactly (diag(p) − ppᵀ for cross-entropy with
//!   Σ_k t_k = 1, the identity for the square loss), Jᵀu by one backward pass.
//!
//! ε = `eps_rel`·max(‖θ‖, 1) for a unit-norm v: large enough that rounding θ ± εv
//! to f32 perturbs the direction by only ~u/eps_rel (u = 6e-8), small enough that the
//! O(ε²) truncation stays below 1e-4 relative on the models tested.

use burn::tensor::{activation, Tensor};
use serde::{Deserialize, Serialize};

use crate::loss::{LossConfig, LossKind};
use crate::models::{forward_bn, read_vec, Architecture, Bn, BnMode, Gate, Gates, Model};
use crate::objective::{
    flatten_to_host, leaf_gradients, leaves, loss_and_gradient_tensors, record_gates,
    unflatten_from_host, Sample,
};
use crate::Result;

/// Finite-difference settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HvpConfig {
    /// ε relative to max(‖θ‖₂, 1).
    pub eps_rel: f64,
}

impl Default for HvpConfig {
    fn default() -> Self {
        HvpConfig { eps_rel: 1e-4 }
    }
}

/// The step ε used at θ.
pub async fn step_size(params: &[Tensor<1>], cfg: &HvpConfig) -> Result<f64> {
    let sq: Vec<Tensor<1>> = params.iter().map(|p| p.clone().square().sum()).collect();
    let norm2: f64 = read_vec(&Tensor::cat(sq, 0))
        .await?
        .iter()
        .map(|&x| x as f64)
        .sum();
    Ok(cfg.eps_rel * norm2.sqrt().max(1.0))
}

fn axpy_params(params: &[Tensor<1>], alpha: f64, v: &[Tensor<1>]) -> Vec<Tensor<1>> {
    params
        .iter()
        .zip(v)
        .map(|(p, vi)| p.clone() + vi.clone().mul_scalar(alpha))
        .collect()
}

/// v ↦ ∇²ℓ_S(θ)·v at a fixed θ.
///
/// With BatchNorm, ℓ_S is the train-mode loss (batch statistics over each
/// chunk of the sample) or the eval-mode loss (running statistics), as
/// [`BnMode`] says; the running statistics are read, never updated.
pub struct HessianOperator<'a> {
    arch: &'a Architecture,
    params: &'a [Tensor<1>],
    running: Option<&'a [Tensor<1>]>,
    sample: &'a Sample,
    loss: &'a LossConfig,
    gates: Vec<Vec<Gate>>,
    /// ε in use.
    pub eps: f64,
    /// Products computed so far.
    pub products: usize,
}

impl<'a> HessianOperator<'a> {
    /// Records the gates at θ (the model's parameters) once; every product reuses them.
    pub async fn new(
        model: &'a Model,
        mode: BnMode,
        sample: &'a Sample,
        loss: &'a LossConfig,
        cfg: &HvpConfig,
    ) -> Result<Self> {
        let (arch, params, running) = (&model.arch, &model.params[..], mode.running(model));
        let gates = record_gates(arch, params, running, sample);
        let eps = step_size(params, cfg).await?;
        Ok(HessianOperator {
            arch,
            params,
            running,
            sample,
            loss,
            gates,
            eps,
            products: 0,
        })
    }

    /// Hv for v given as device tensors shaped like θ.
    pub fn apply_tensors(&mut self, v: &[Tensor<1>]) -> Vec<Tensor<1>> {
        self.products += 1;
        let plus = axpy_params(self.params, self.eps, v);
        let minus = axpy_params(self.params, -self.eps, v);
        let (_, gp) = loss_and_gradient_tensors(
            self.arch,
            &plus,
            self.sample,
            self.loss,
            Some(&self.gates),
            &mut Bn::from_running(self.running),
        );
        let (_, gm) = loss_and_gradient_tensors(
            self.arch,
            &minus,
            self.sample,
            self.loss,
            Some(&self.gates),
            &mut Bn::from_running(self.running),
        );
        let inv = 1.0 / (2.0 * self.eps);
        gp.into_iter()
            .zip(gm)
            .map(|(a, b)| (a - b).mul_scalar(inv))
            .collect()
    }

    /// Hv for a flat host vector (PyTorch parameter order).
    pub async fn apply(&mut self, v: &[f64]) -> Result<Vec<f64>> {
        let vt = unflatten_from_host(v, self.params);
        flatten_to_host(&self.apply_tensors(&vt)).await
    }
}

/// v ↦ G(θ)·v, the Gauss–Newton matrix of ℓ_S at a fixed θ.
pub struct GaussNewtonOperator<'a> {
    arch: &'a Architecture,
    params: &'a [Tensor<1>],
    running: Option<&'a [Tensor<1>]>,
    sample: &'a Sample,
    loss: &'a LossConfig,
    gates: Vec<Vec<Gate>>,
    /// softmax(f(x_i; θ)) per chunk (cross-entropy only).
    probs: Vec<Tensor<2>>,
    /// ε in use.
    pub eps: f64,
    /// Products computed so far.
    pub products: usize,
}

impl<'a> GaussNewtonOperator<'a> {
    /// Records gates and output probabilities at θ.
    pub async fn new(
        model: &'a Model,
        mode: BnMode,
        sample: &'a Sample,
        loss: &'a LossConfig,
        cfg: &HvpConfig,
    ) -> Result<Self> {
        let (arch, params, running) = (&model.arch, &model.params[..], mode.running(model));
        let gates = record_gates(arch, params, running, sample);
        let probs = sample
            .chunks
            .iter()
            .map(|ch| {
                let z = forward_bn(
                    arch,
                    params,
                    ch.x.clone(),
                    Gates::Free,
                    &mut Bn::from_running(running),
                );
                activation::softmax(z, 1)
            })
            .collect();
        let eps = step_size(params, cfg).await?;
        Ok(GaussNewtonOperator {
            arch,
            params,
            running,
            sample,
            loss,
            gates,
            probs,
            eps,
            products: 0,
        })
    }

    /// Gv for v given as device tensors shaped like θ.
    pub fn apply_tensors(&mut self, v: &[Tensor<1>]) -> Vec<Tensor<1>> {
        self.products += 1;
        let plus = axpy_params(self.params, self.eps, v);
        let minus = axpy_params(self.params, -self.eps, v);
        let leaves = leaves(self.params);
        let inv_n = 1.0 / self.sample.n as f64;
        let mut acc: Option<Vec<Tensor<1>>> = None;
        for (ci, ch) in self.sample.chunks.iter().enumerate() {
            let fixed = self.arch.has_gates();
            let g = &self.gates[ci];
            let zp = forward_bn(
                self.arch,
                &plus,
                ch.x.clone(),
                if fixed { Gates::Fixed(g) } else { Gates::Free },
                &mut Bn::from_running(self.running),
            );
            let zm = forward_bn(
                self.arch,
                &minus,
                ch.x.clone(),
                if fixed { Gates::Fixed(g) } else { Gates::Free },
                &mut Bn::from_running(self.running),
            );
            let u = (zp - zm).mul_scalar(1.0 / (2.0 * self.eps)); // J v, [B, C]
            let w = match self.loss.kind {
                // ∇²_z c = (Σ_k t_k)(diag(p) − ppᵀ); Σ_k t_k = 1 for one-hot or smoothed targets.
                LossKind::CrossEntropy => {
                    let p = self.probs[ci].clone();
                    let pu = (p.clone() * u.clone()).sum_dim(1);
                    p.clone() * u - p * pu
                }
                LossKind::Square => u,
            };
            let z = forward_bn(
                self.arch,
                &leaves,
                ch.x.clone(),
                Gates::Free,
                &mut Bn::from_running(self.running),
            );
            let s = (z * w).sum().mul_scalar(inv_n);
            let grads = s.backward();
            let gi = leaf_gradients(&leaves, &grads);
            acc = Some(match acc {
                None => gi,
                Some(a) => a.into_iter().zip(gi).map(|(x, y)| x + y).collect(),
            });
        }
        acc.expect("sample has at least one chunk")
    }

    /// Gv for a flat host vector.
    pub async fn apply(&mut self, v: &[f64]) -> Result<Vec<f64>> {
        let vt = unflatten_from_host(v, self.params);
        flatten_to_host(&self.apply_tensors(&vt)).await
    }
}
