//! BatchNorm: which statistics a pass normalises with ([`Bn`], [`BnMode`])
//! and the layer itself.
//!
//! y = γ·(x − μ)/√(σ² + ε) + β per channel, with (μ, σ²) the batch's biased
//! statistics over (B, H, W) in train mode, or the running statistics in eval
//! mode; train mode may also update the running statistics with PyTorch's
//! momentum rule (unbiased batch variance).
//!
//! # Shapes
//! `[B, C, H, W]` in and out; γ, β, μ, σ² `[C]`.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::gates::GateCursor;
use super::{Activation, Architecture, Model};
use crate::kernels::{Fused, Relu};

/// BatchNorm momentum (PyTorch's default): running ← (1 − m)·running + m·batch.
pub const BN_MOMENTUM: f64 = 0.1;
/// BatchNorm ε (PyTorch's default).
pub const BN_EPS: f64 = 1e-5;

/// Which BatchNorm statistics a measurement uses (docs/measurements.md "Sharpness", BatchNorm).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BnMode {
    /// Batch statistics over each chunk of the sample (train-mode loss); running statistics untouched.
    #[default]
    Train,
    /// Running statistics (eval-mode loss).
    Eval,
}

impl BnMode {
    /// The label written into results: "train", "eval", or "none" for a model without BatchNorm.
    pub fn label(self, arch: &Architecture) -> &'static str {
        match (arch.has_batch_norm(), self) {
            (false, _) => "none",
            (true, BnMode::Train) => "train",
            (true, BnMode::Eval) => "eval",
        }
    }

    /// The running statistics a pass in this mode uses (`None` = batch statistics).
    pub fn running(self, model: &Model) -> Option<&[Tensor<1>]> {
        match self {
            BnMode::Train => None,
            BnMode::Eval => Some(&model.buffers),
        }
    }
}

/// How BatchNorm layers normalise in a forward pass.
pub enum Bn<'a> {
    /// Train mode: statistics of the pass's own batch; running statistics untouched.
    Batch,
    /// Eval mode: the given running statistics (`[mean₀, var₀, …]`).
    Running(&'a [Tensor<1>]),
    /// Train mode that also updates the running statistics in place with
    /// momentum `momentum` (unbiased batch variance, as PyTorch).
    Update {
        buffers: &'a mut Vec<Tensor<1>>,
        momentum: f64,
    },
}

impl<'a> Bn<'a> {
    /// `Running(buffers)` when given, else `Batch`.
    pub fn from_running(running: Option<&'a [Tensor<1>]>) -> Bn<'a> {
        match running {
            Some(b) => Bn::Running(b),
            None => Bn::Batch,
        }
    }
}

/// BatchNorm over `[B, C, H, W]` with affine `gamma`, `beta`; `slot` is the
/// layer's index among the model's BatchNorm layers (its running statistics
/// are `buffers[2·slot]`, `buffers[2·slot + 1]`).
pub(crate) fn batch_norm(
    h: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    bn: &mut Bn,
    slot: usize,
) -> Tensor<4> {
    match fused(&h, &gamma, &beta, bn, slot, Relu::Off) {
        Some(f) => f.y,
        None => composed(h, gamma, beta, bn, slot),
    }
}

/// [`batch_norm`] followed by a ReLU through `gates` (the next gate), as one
/// kernel where the kernels run (see [`crate::kernels`]).
pub(crate) fn batch_norm_relu(
    h: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    bn: &mut Bn,
    slot: usize,
    gates: &mut GateCursor,
) -> Tensor<4> {
    match fused(&h, &gamma, &beta, bn, slot, gates.fused_relu()) {
        Some(f) => {
            gates.advance(f.off);
            f.y
        }
        None => gates.act(composed(h, gamma, beta, bn, slot), Activation::Relu),
    }
}

/// BatchNorm (and `relu`) by the fused kernel, updating the running
/// statistics as `bn` says; `None` where the kernels do not run.
fn fused(
    h: &Tensor<4>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    bn: &mut Bn,
    slot: usize,
    relu: Relu,
) -> Option<Fused> {
    let running = match bn {
        Bn::Running(buf) => Some((&buf[2 * slot], &buf[2 * slot + 1])),
        Bn::Batch | Bn::Update { .. } => None,
    };
    let mut f = crate::kernels::batch_norm(h, gamma, beta, running, BN_EPS, relu)?;
    if let (Bn::Update { buffers, momentum }, Some((mean, var))) = (bn, f.stats.take()) {
        let [b, _, hh, ww] = h.dims();
        update_running(buffers, slot, *momentum, mean, var, b * hh * ww);
    }
    Some(f)
}

/// BatchNorm composed from burn's ops (any backend).
fn composed(
    h: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    bn: &mut Bn,
    slot: usize,
) -> Tensor<4> {
    let [b, c, hh, ww] = h.dims();
    let (mean, var): (Tensor<1>, Tensor<1>) = match bn {
        Bn::Running(buf) => (buf[2 * slot].clone(), buf[2 * slot + 1].clone()),
        Bn::Batch | Bn::Update { .. } => {
            let n = b * hh * ww;
            let flat: Tensor<2> = h.clone().swap_dims(0, 1).reshape([c, n]);
            let mean: Tensor<1> = flat.clone().mean_dim(1).reshape([c]);
            let var: Tensor<1> = (flat - mean.clone().unsqueeze_dim(1))
                .square()
                .mean_dim(1)
                .reshape([c]);
            if let Bn::Update { buffers, momentum } = bn {
                let (m, v) = (mean.clone().inner(), var.clone().inner());
                update_running(buffers, slot, *momentum, m, v, n);
            }
            (mean, var)
        }
    };
    let scale = gamma / var.add_scalar(BN_EPS).sqrt();
    let shift = beta - mean * scale.clone();
    h * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1])
}

/// PyTorch's running-statistics update of layer `slot` from a batch of `n`
/// values per channel with mean `mean` and biased variance `var`:
/// running ← (1 − m)·running + m·batch, the variance unbiased (n/(n − 1)).
fn update_running(
    buffers: &mut [Tensor<1>],
    slot: usize,
    m: f64,
    mean: Tensor<1>,
    var: Tensor<1>,
    n: usize,
) {
    let unbiased = var.mul_scalar(n as f64 / (n as f64 - 1.0).max(1.0));
    buffers[2 * slot] = buffers[2 * slot].clone().mul_scalar(1.0 - m) + mean.mul_scalar(m);
    buffers[2 * slot + 1] =
        buffers[2 * slot + 1].clone().mul_scalar(1.0 - m) + unbiased.mul_scalar(m);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::tensor_to_vec;
    use burn::tensor::{Device, TensorData};

    fn vec1(v: Vec<f32>) -> Tensor<1> {
        let n = v.len();
        Tensor::from_data(TensorData::new(v, [n]), &Device::flex())
    }

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        tensor_to_vec(&t)
    }

    /// One channel, values 1..4: batch mean 2.5, biased variance 1.25
    /// (unbiased 5/3); eval mode uses the given statistics instead.
    #[test]
    fn batch_running_and_update_modes() {
        let dev = Device::flex();
        let h = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [4, 1, 1, 1]),
            &dev,
        );
        let (g, b) = (vec1(vec![2.0]), vec1(vec![1.0]));
        let y = host(batch_norm(
            h.clone(),
            g.clone(),
            b.clone(),
            &mut Bn::Batch,
            0,
        ));
        let s = 2.0 / (1.25f64 + BN_EPS).sqrt();
        for (yi, xi) in y.iter().zip([1.0, 2.0, 3.0, 4.0]) {
            assert!((*yi as f64 - (s * (xi - 2.5) + 1.0)).abs() < 1e-5, "{y:?}");
        }
        let running = [vec1(vec![0.0]), vec1(vec![1.0])];
        let y = host(batch_norm(
            h.clone(),
            g.clone(),
            b.clone(),
            &mut Bn::Running(&running),
            0,
        ));
        let s = 2.0 / (1.0f64 + BN_EPS).sqrt();
        assert!((y[3] as f64 - (s * 4.0 + 1.0)).abs() < 1e-5, "{y:?}");
        let mut buffers = running.to_vec();
        let mut bn = Bn::Update {
            buffers: &mut buffers,
            momentum: BN_MOMENTUM,
        };
        let _ = batch_norm(h, g, b, &mut bn, 0);
        let (m, v) = (host(buffers[0].clone())[0], host(buffers[1].clone())[0]);
        assert!((m - 0.25).abs() < 1e-6, "{m}");
        assert!((v as f64 - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-6, "{v}");
    }
}
