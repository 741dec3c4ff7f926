//! Hessian- and Gauss–Newton-vector products of ℓ_S at θ (docs/measurements.md "Sharpness").
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
//!
//! Both operators start every ±ε pass from the first layer's cached output
//! (see [`HessianOperator`], "The cached stem").

use burn::tensor::{activation, Tensor};
use serde::{Deserialize, Serialize};

use crate::backend::read_vec;
use crate::kernels::{add_scaled, scaled_difference};
use crate::loss::{LossConfig, LossKind};
use crate::models::{
    forward_from_stem, stem, stem_gradients, stem_param_count, Architecture, Bn, BnMode, Gate,
    Gates, Model,
};
use crate::objective::{
    flatten, flatten_to_host, leaf_gradients, unflatten, unflatten_from_host, Sample,
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

/// Stem outputs z₁(θ) (see [`stem`]) of every chunk and the gates of the
/// forward pass at θ continued from them (empty lists for gate-free models,
/// whose passes never read them, so `Gates::Fixed` serves every model).
fn stems_and_gates(
    arch: &Architecture,
    params: &[Tensor<1>],
    running: Option<&[Tensor<1>]>,
    sample: &Sample,
) -> (Vec<Tensor<2>>, Vec<Vec<Gate>>) {
    sample
        .chunks
        .iter()
        .map(|ch| {
            let z1 = stem(arch, params, ch.x.clone());
            let mut g = Vec::new();
            if arch.has_gates() {
                let _ = forward_from_stem(
                    arch,
                    params,
                    z1.clone(),
                    Gates::Record(&mut g),
                    &mut Bn::from_running(running),
                );
            }
            (z1, g)
        })
        .unzip()
}

/// θ's tensors with every one after the stem replaced by `f(i, θᵢ)`; the
/// stem's entries stay θ's own, which [`forward_from_stem`] never reads.
fn map_after_stem(
    params: &[Tensor<1>],
    n_stem: usize,
    f: impl Fn(usize, &Tensor<1>) -> Tensor<1>,
) -> Vec<Tensor<1>> {
    params
        .iter()
        .enumerate()
        .map(|(i, p)| if i < n_stem { p.clone() } else { f(i, p) })
        .collect()
}

fn add_into(acc: &mut Option<Vec<Tensor<1>>>, g: Vec<Tensor<1>>) {
    *acc = Some(match acc.take() {
        None => g,
        Some(a) => a.into_iter().zip(g).map(|(x, y)| x + y).collect(),
    });
}

/// v ↦ ∇²ℓ_S(θ)·v at a fixed θ.
///
/// With BatchNorm, ℓ_S is the train-mode loss (batch statistics over each
/// chunk of the sample) or the eval-mode loss (running statistics), as
/// [`BnMode`] says; the running statistics are read, never updated.
///
/// # The cached stem
/// The first layer z₁ = W₀x (+ b₀) is linear in its own parameters and its
/// input x is fixed, so z₁(θ ± εv) = z₁(θ) ± ε·z₁(v) exactly, and its
/// parameter gradient is a linear function of δ₁ = ∂ℓ/∂z₁
/// ([`stem_gradients`]). Each product therefore computes u = z₁(v) once per
/// chunk, runs the ±ε passes from the leaves z₁(θ) ± εu (z₁(θ) cached by
/// [`HessianOperator::new`]) with θ ± εv in the later layers, and gets the
/// stem's components of Hv from one stem gradient of (δ₁⁺ − δ₁⁻)/(2ε). In
/// exact arithmetic this is the same central difference as two full
/// gradients at θ ± εv, so its O(ε²) error is unchanged; it replaces two
/// stem forwards and two stem weight gradients by one each (the first layer
/// of the benchmark MLP holds 85% of its FLOPs); and rounding is no worse:
/// (W ± εV)x in f32, which rounds εV against W, becomes Wx ± ε·Vx. The cache
/// holds one f32 stem output per example, less than the recorded gates.
pub struct HessianOperator<'a> {
    arch: &'a Architecture,
    params: &'a [Tensor<1>],
    running: Option<&'a [Tensor<1>]>,
    sample: &'a Sample,
    loss: &'a LossConfig,
    gates: Vec<Vec<Gate>>,
    /// z₁(θ) per chunk, `[B, m]`.
    stems: Vec<Tensor<2>>,
    /// ε in use.
    pub eps: f64,
    /// Products computed so far.
    pub products: usize,
}

impl<'a> HessianOperator<'a> {
    /// Records the gates and the stem outputs at θ (the model's parameters)
    /// once; every product reuses them.
    pub async fn new(
        model: &'a Model,
        mode: BnMode,
        sample: &'a Sample,
        loss: &'a LossConfig,
        cfg: &HvpConfig,
    ) -> Result<Self> {
        let (arch, params, running) = (&model.arch, &model.params[..], mode.running(model));
        let (stems, gates) = stems_and_gates(arch, params, running, sample);
        let eps = step_size(params, cfg).await?;
        Ok(HessianOperator {
            arch,
            params,
            running,
            sample,
            loss,
            gates,
            stems,
            eps,
            products: 0,
        })
    }

    /// Hv for v given as device tensors shaped like θ.
    pub fn apply_tensors(&mut self, v: &[Tensor<1>]) -> Vec<Tensor<1>> {
        self.products += 1;
        let arch = self.arch;
        let n_stem = stem_param_count(arch);
        let eps = self.eps;
        let shifted = |alpha: f64| {
            map_after_stem(self.params, n_stem, |i, p| {
                add_scaled(p.clone(), v[i].clone(), alpha)
                    .autodiff()
                    .require_grad()
            })
        };
        let (plus, minus) = (shifted(eps), shifted(-eps));
        let scale = 1.0 / self.sample.n as f64;
        let inv = 1.0 / (2.0 * eps);
        let mut acc: Option<Vec<Tensor<1>>> = None;
        for (ci, ch) in self.sample.chunks.iter().enumerate() {
            let u = stem(arch, v, ch.x.clone());
            // one ±ε pass from the stem: δ₁ and the gradients of the later layers
            let pass = |leaves: &[Tensor<1>], sign: f64| {
                let z1 = add_scaled(self.stems[ci].clone(), u.clone(), sign * eps)
                    .autodiff()
                    .require_grad();
                let z = forward_from_stem(
                    arch,
                    leaves,
                    z1.clone(),
                    Gates::Fixed(&self.gates[ci]),
                    &mut Bn::from_running(self.running),
                );
                let l = self
                    .loss
                    .per_example(z, ch.t.clone())
                    .sum()
                    .mul_scalar(scale);
                let grads = l.backward();
                let delta = z1.grad(&grads).expect("stem output gradient");
                (delta, leaf_gradients(&leaves[n_stem..], &grads))
            };
            let (dp, gp) = pass(&plus, 1.0);
            let (dm, gm) = pass(&minus, -1.0);
            let delta = scaled_difference(dp, dm, inv);
            let mut hv = stem_gradients(arch, self.params, ch.x.clone(), delta);
            hv.extend(
                gp.into_iter()
                    .zip(gm)
                    .map(|(a, b)| scaled_difference(a, b, inv)),
            );
            add_into(&mut acc, hv);
        }
        acc.expect("sample has at least one chunk")
    }

    /// Hv for a flat device vector (PyTorch parameter order), on the device.
    pub fn apply_flat(&mut self, v: &Tensor<1>) -> Tensor<1> {
        let vt = unflatten(v, self.params);
        flatten(&self.apply_tensors(&vt))
    }

    /// Hv for a flat host vector (PyTorch parameter order).
    pub async fn apply(&mut self, v: &[f64]) -> Result<Vec<f64>> {
        let vt = unflatten_from_host(v, self.params);
        flatten_to_host(&self.apply_tensors(&vt)).await
    }
}

/// v ↦ G(θ)·v, the Gauss–Newton matrix of ℓ_S at a fixed θ.
///
/// Uses the cached stem as [`HessianOperator`] does: the ±ε forwards of Jv
/// start from z₁(θ) ± ε·z₁(v), and the Jᵀw pass starts from a z₁(θ) leaf,
/// the stem's components coming from [`stem_gradients`].
pub struct GaussNewtonOperator<'a> {
    arch: &'a Architecture,
    params: &'a [Tensor<1>],
    running: Option<&'a [Tensor<1>]>,
    sample: &'a Sample,
    loss: &'a LossConfig,
    gates: Vec<Vec<Gate>>,
    /// z₁(θ) per chunk, `[B, m]`.
    stems: Vec<Tensor<2>>,
    /// softmax(f(x_i; θ)) per chunk (cross-entropy only).
    probs: Vec<Tensor<2>>,
    /// ε in use.
    pub eps: f64,
    /// Products computed so far.
    pub products: usize,
}

impl<'a> GaussNewtonOperator<'a> {
    /// Records gates, stem outputs and output probabilities at θ.
    pub async fn new(
        model: &'a Model,
        mode: BnMode,
        sample: &'a Sample,
        loss: &'a LossConfig,
        cfg: &HvpConfig,
    ) -> Result<Self> {
        let (arch, params, running) = (&model.arch, &model.params[..], mode.running(model));
        let (stems, gates) = stems_and_gates(arch, params, running, sample);
        let probs = stems
            .iter()
            .map(|z1| {
                let z = forward_from_stem(
                    arch,
                    params,
                    z1.clone(),
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
            stems,
            probs,
            eps,
            products: 0,
        })
    }

    /// Gv for v given as device tensors shaped like θ.
    pub fn apply_tensors(&mut self, v: &[Tensor<1>]) -> Vec<Tensor<1>> {
        self.products += 1;
        let arch = self.arch;
        let n_stem = stem_param_count(arch);
        let eps = self.eps;
        let shifted = |alpha: f64| {
            map_after_stem(self.params, n_stem, |i, p| {
                p.clone() + v[i].clone().mul_scalar(alpha)
            })
        };
        let (plus, minus) = (shifted(eps), shifted(-eps));
        let leaves = map_after_stem(self.params, n_stem, |_, p| {
            p.clone().autodiff().require_grad()
        });
        let inv_n = 1.0 / self.sample.n as f64;
        let mut acc: Option<Vec<Tensor<1>>> = None;
        for (ci, ch) in self.sample.chunks.iter().enumerate() {
            let z1 = self.stems[ci].clone();
            let u = stem(arch, v, ch.x.clone()).mul_scalar(eps);
            let zp = forward_from_stem(
                arch,
                &plus,
                z1.clone() + u.clone(),
                Gates::Fixed(&self.gates[ci]),
                &mut Bn::from_running(self.running),
            );
            let zm = forward_from_stem(
                arch,
                &minus,
                z1.clone() - u,
                Gates::Fixed(&self.gates[ci]),
                &mut Bn::from_running(self.running),
            );
            let u = (zp - zm).mul_scalar(1.0 / (2.0 * eps)); // J v, [B, C]
            let w = match self.loss.kind {
                // ∇²_z c = (Σ_k t_k)(diag(p) − ppᵀ); Σ_k t_k = 1 for one-hot or smoothed targets.
                LossKind::CrossEntropy => {
                    let p = self.probs[ci].clone();
                    let pu = (p.clone() * u.clone()).sum_dim(1);
                    p.clone() * u - p * pu
                }
                LossKind::Square => u,
            };
            let z1 = z1.autodiff().require_grad();
            let z = forward_from_stem(
                arch,
                &leaves,
                z1.clone(),
                Gates::Free,
                &mut Bn::from_running(self.running),
            );
            let s = (z * w).sum().mul_scalar(inv_n);
            let grads = s.backward();
            let delta = z1.grad(&grads).expect("stem output gradient");
            let mut gi = stem_gradients(arch, self.params, ch.x.clone(), delta);
            gi.extend(leaf_gradients(&leaves[n_stem..], &grads));
            add_into(&mut acc, gi);
        }
        acc.expect("sample has at least one chunk")
    }

    /// Gv for a flat device vector (PyTorch parameter order), on the device.
    pub fn apply_flat(&mut self, v: &Tensor<1>) -> Tensor<1> {
        let vt = unflatten(v, self.params);
        flatten(&self.apply_tensors(&vt))
    }

    /// Gv for a flat host vector.
    pub async fn apply(&mut self, v: &[f64]) -> Result<Vec<f64>> {
        let vt = unflatten_from_host(v, self.params);
        flatten_to_host(&self.apply_tensors(&vt)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Activation, Cnn, Mlp, Resnet18, Vgg11};
    use crate::objective::loss_and_gradient_tensors;
    use crate::rng::Rng;
    use crate::Block;
    use burn::tensor::Device;

    /// The two-gradient formula the cached stem replaces:
    /// [∇ℓ(θ + εv) − ∇ℓ(θ − εv)] / (2ε) with θ's gates fixed.
    fn two_gradient_hvp(op: &HessianOperator, v: &[Tensor<1>]) -> Vec<Tensor<1>> {
        let grad = |alpha: f64| {
            let shifted: Vec<Tensor<1>> = op
                .params
                .iter()
                .zip(v)
                .map(|(p, vi)| p.clone() + vi.clone().mul_scalar(alpha))
                .collect();
            loss_and_gradient_tensors(
                op.arch,
                &shifted,
                op.sample,
                op.loss,
                Some(&op.gates),
                &mut Bn::from_running(op.running),
            )
            .1
        };
        let (gp, gm) = (grad(op.eps), grad(-op.eps));
        gp.into_iter()
            .zip(gm)
            .map(|(a, b)| (a - b).mul_scalar(1.0 / (2.0 * op.eps)))
            .collect()
    }

    /// The cached-stem product equals the two-gradient formula (same ε, same
    /// gates) for every architecture, BatchNorm in both modes, over several chunks.
    /// ε is large (1e-2 relative) so that f32 rounding of either side stays far
    /// below the tolerance: in exact arithmetic the two are identical for any ε.
    #[test]
    fn cached_stem_product_equals_two_gradient_formula() {
        let dev = Device::flex();
        let archs = [
            Architecture::Mlp(Mlp {
                input_dim: 12,
                hidden: vec![9, 7],
                classes: 4,
                activation: Activation::Relu,
            }),
            Architecture::Mlp(Mlp {
                input_dim: 5,
                hidden: vec![],
                classes: 3,
                activation: Activation::Tanh,
            }),
            Architecture::Cnn(Cnn {
                in_channels: 2,
                height: 8,
                width: 8,
                channels: vec![3, 4],
                classes: 3,
                activation: Activation::Relu,
            }),
            Architecture::Vgg11(Vgg11 {
                in_channels: 3,
                height: 32,
                width: 32,
                classes: 5,
                base: 4,
                batch_norm: true,
            }),
            Architecture::Resnet18(Resnet18 {
                in_channels: 3,
                height: 8,
                width: 8,
                classes: 4,
                base: 4,
            }),
        ];
        for arch in archs {
            let (d, c, n) = (arch.input_len(), arch.classes(), 11);
            let mut rng = Rng::new(7);
            let x: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
            let y: Vec<u32> = (0..n).map(|i| (i % c) as u32).collect();
            let loss = LossConfig::default();
            let t = loss.targets(&y, c);
            let sample = Sample::from_parts(&x, &t, &y, d, c, 6, &dev).unwrap();
            let model = Model::init(&arch, 3, &dev).unwrap();
            let v = unflatten_from_host(&Rng::new(9).unit_vector(arch.num_params()), &model.params);
            let modes: &[BnMode] = if arch.has_batch_norm() {
                &[BnMode::Train, BnMode::Eval]
            } else {
                &[BnMode::Train]
            };
            for &mode in modes {
                let cfg = HvpConfig { eps_rel: 1e-2 };
                let mut op = HessianOperator::new(&model, mode, &sample, &loss, &cfg)
                    .block()
                    .unwrap();
                let old = flatten_to_host(&two_gradient_hvp(&op, &v)).block().unwrap();
                let new = flatten_to_host(&op.apply_tensors(&v)).block().unwrap();
                let norm = old.iter().map(|a| a * a).sum::<f64>().sqrt();
                let err = old
                    .iter()
                    .zip(&new)
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
                    .sqrt()
                    / norm;
                println!("{arch:?} {mode:?}: ‖new − old‖/‖old‖ = {err:.2e} (‖Hv‖ = {norm:.3e})");
                assert!(norm > 0.0 && err < 1e-4, "{arch:?} {mode:?}: {err:.2e}");
            }
        }
    }
}
