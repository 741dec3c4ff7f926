//! The data loss ℓ_S(θ) = (1/|S|) Σ_i c(f(x_i; θ), t_i) over a sample held on
//! the device in fixed chunks, its value and its gradient.
//!
//! Chunks bound memory: the gradient is accumulated chunk by chunk, each
//! chunk's loss scaled by 1/|S|, so the result is the full-sample gradient.

use burn::tensor::{Device, Gradients, Tensor, TensorData};

use crate::backend::read_vec;
use crate::data::Dataset;
use crate::loss::{LossConfig, LossKind};
use crate::models::{forward_bn, Architecture, Bn, Gate, Gates, Model};
use crate::{Error, Result};

/// A chunk of examples on the device.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// Inputs `[B, d]`.
    pub x: Tensor<2>,
    /// Targets `[B, C]`.
    pub t: Tensor<2>,
    /// Labels (host).
    pub y: Vec<u32>,
    /// Per-example KL-form offsets H(t_i) (0 for the square loss), host.
    pub offsets: Vec<f64>,
}

/// A sample S on the device: inputs, targets and labels, in chunks.
#[derive(Clone, Debug)]
pub struct Sample {
    pub chunks: Vec<Chunk>,
    /// |S|
    pub n: usize,
    /// C
    pub classes: usize,
    /// Σ_i H(t_i) / |S| (the KL-form offset).
    pub mean_entropy: f64,
}

impl Sample {
    /// Uploads `data` with targets from `loss`, in chunks of at most `chunk` examples.
    pub fn new(data: &Dataset, loss: &LossConfig, chunk: usize, device: &Device) -> Result<Sample> {
        if data.is_empty() {
            return Err(Error::Config(format!("{}: empty sample", data.name)));
        }
        let chunk = chunk.max(1);
        let d = data.input_len();
        let c = data.classes;
        let mut chunks = Vec::new();
        for start in (0..data.len()).step_by(chunk) {
            let end = (start + chunk).min(data.len());
            let b = end - start;
            let y = data.y[start..end].to_vec();
            let t = loss.targets(&y, c);
            let offsets = t.chunks(c).map(|row| loss.entropy_offset(row)).collect();
            chunks.push(Chunk {
                x: Tensor::from_data(
                    TensorData::new(data.x[start * d..end * d].to_vec(), [b, d]),
                    device,
                ),
                t: Tensor::from_data(TensorData::new(t, [b, c]), device),
                y,
                offsets,
            });
        }
        let entropy: f64 = chunks.iter().flat_map(|ch| &ch.offsets).sum();
        Ok(Sample {
            chunks,
            n: data.len(),
            classes: c,
            mean_entropy: entropy / data.len() as f64,
        })
    }
}

impl Sample {
    /// A sample from host arrays with given (e.g. mixed) targets: inputs `x`
    /// (`[N, d]`), targets `t` (`[N, C]`), labels `y`; the KL offsets are the
    /// targets' entropies.
    pub fn from_parts(
        x: &[f32],
        t: &[f32],
        y: &[u32],
        d: usize,
        c: usize,
        chunk: usize,
        device: &Device,
    ) -> Result<Sample> {
        let n = y.len();
        if n == 0 || x.len() != n * d || t.len() != n * c {
            return Err(Error::Shape(format!(
                "sample of {n} examples with {} input and {} target values (d = {d}, C = {c})",
                x.len(),
                t.len()
            )));
        }
        let chunk = chunk.max(1);
        let mut chunks = Vec::new();
        for start in (0..n).step_by(chunk) {
            let end = (start + chunk).min(n);
            let b = end - start;
            let tt = &t[start * c..end * c];
            chunks.push(Chunk {
                x: Tensor::from_data(
                    TensorData::new(x[start * d..end * d].to_vec(), [b, d]),
                    device,
                ),
                t: Tensor::from_data(TensorData::new(tt.to_vec(), [b, c]), device),
                y: y[start..end].to_vec(),
                offsets: tt
                    .chunks(c)
                    .map(|row| {
                        -row.iter()
                            .filter(|&&p| p > 0.0)
                            .map(|&p| p as f64 * (p as f64).ln())
                            .sum::<f64>()
                    })
                    .collect(),
            });
        }
        let entropy: f64 = chunks.iter().flat_map(|ch| &ch.offsets).sum();
        Ok(Sample {
            chunks,
            n,
            classes: c,
            mean_entropy: entropy / n as f64,
        })
    }
}

/// Loss, KL-form loss and accuracy over a sample.
#[derive(Clone, Debug, PartialEq)]
pub struct LossEval {
    /// ℓ_S (mean c).
    pub loss: f64,
    /// ℓ_S − mean H(t).
    pub loss_kl: f64,
    /// Fraction of examples whose argmax logit is the label.
    pub accuracy: f64,
    /// max_i (c_i − H(t_i)): the per-example KL-form loss used by the data bound.
    pub max_example_loss_kl: f64,
}

/// Evaluates ℓ_S, its KL form, accuracy and the largest per-example loss, in
/// eval mode (BatchNorm running statistics), as docs/measurements.md defines the losses and gap.
pub async fn evaluate(model: &Model, sample: &Sample, loss: &LossConfig) -> Result<LossEval> {
    let (arch, params) = (&model.arch, &model.params[..]);
    let mut sum = 0.0;
    let mut correct = 0usize;
    let mut max_kl = f64::NEG_INFINITY;
    for ch in &sample.chunks {
        let z = forward_bn(
            arch,
            params,
            ch.x.clone(),
            Gates::Free,
            &mut Bn::Running(&model.buffers),
        );
        let per = read_vec(&loss.per_example(z.clone(), ch.t.clone())).await?;
        let logits = read_vec(&z).await?;
        for (i, &ci) in per.iter().enumerate() {
            let row = &logits[i * sample.classes..(i + 1) * sample.classes];
            let pred = row
                .iter()
                .enumerate()
                .fold(0, |b, (k, v)| if *v > row[b] { k } else { b });
            correct += usize::from(pred == ch.y[i] as usize);
            sum += ci as f64;
            let kl = ci as f64 - ch.offsets[i];
            max_kl = if kl.is_nan() || max_kl.is_nan() {
                f64::NAN
            } else {
                max_kl.max(kl)
            };
        }
    }
    let l = sum / sample.n as f64;
    Ok(LossEval {
        loss: l,
        loss_kl: match loss.kind {
            LossKind::CrossEntropy => l - sample.mean_entropy,
            LossKind::Square => l,
        },
        accuracy: correct as f64 / sample.n as f64,
        max_example_loss_kl: max_kl,
    })
}

/// ℓ_S(θ) and ∇_θ ℓ_S(θ) (one flat tensor per parameter), with the gates of
/// each chunk fixed to `gates` when given (for finite-difference curvature).
/// BatchNorm as `bn` says: batch statistics per chunk (train mode), running
/// statistics (eval mode), or train mode updating the running statistics
/// chunk by chunk (a training step).
pub async fn loss_and_gradient(
    arch: &Architecture,
    params: &[Tensor<1>],
    sample: &Sample,
    loss: &LossConfig,
    gates: Option<&[Vec<Gate>]>,
    bn: &mut Bn<'_>,
) -> Result<(f64, Vec<Tensor<1>>)> {
    let (l, g) = loss_and_gradient_tensors(arch, params, sample, loss, gates, bn);
    Ok((read_vec(&l).await?[0] as f64, g))
}

/// [`loss_and_gradient`] left on the device: nothing is read back, so the
/// device can run ahead (the finite-difference products never need the value).
pub fn loss_and_gradient_tensors(
    arch: &Architecture,
    params: &[Tensor<1>],
    sample: &Sample,
    loss: &LossConfig,
    gates: Option<&[Vec<Gate>]>,
    bn: &mut Bn<'_>,
) -> (Tensor<1>, Vec<Tensor<1>>) {
    let leaves = leaves(params);
    let scale = 1.0 / sample.n as f64;
    let mut grad: Option<Vec<Tensor<1>>> = None;
    let mut total: Option<Tensor<1>> = None;
    for (ci, ch) in sample.chunks.iter().enumerate() {
        let g = match gates {
            Some(gs) if arch.has_gates() => Gates::Fixed(&gs[ci]),
            _ => Gates::Free,
        };
        let z = forward_bn(arch, &leaves, ch.x.clone(), g, bn);
        let l = loss.per_example(z, ch.t.clone()).sum().mul_scalar(scale);
        let grads = l.backward();
        let lv = l.inner();
        total = Some(match total {
            None => lv,
            Some(t) => t + lv,
        });
        let gi = leaf_gradients(&leaves, &grads);
        grad = Some(match grad {
            None => gi,
            Some(acc) => acc.into_iter().zip(gi).map(|(a, b)| a + b).collect(),
        });
    }
    (
        total.expect("sample has at least one chunk"),
        grad.expect("sample has at least one chunk"),
    )
}

/// Autodiff leaves for `params` (gradients retained).
pub fn leaves(params: &[Tensor<1>]) -> Vec<Tensor<1>> {
    params
        .iter()
        .map(|p| p.clone().autodiff().require_grad())
        .collect()
}

/// The gradient of every leaf in `grads` (zeros for a leaf the loss did not use).
pub fn leaf_gradients(leaves: &[Tensor<1>], grads: &Gradients) -> Vec<Tensor<1>> {
    leaves
        .iter()
        .map(|l| {
            l.grad(grads)
                .unwrap_or_else(|| l.clone().inner().zeros_like())
        })
        .collect()
}

/// Flattens parameter-shaped tensors into one host vector (f64).
pub async fn flatten_to_host(ts: &[Tensor<1>]) -> Result<Vec<f64>> {
    Ok(read_vec(&flatten(ts))
        .await?
        .into_iter()
        .map(f64::from)
        .collect())
}

/// Concatenates parameter-shaped tensors into one flat device tensor
/// (PyTorch parameter order), on the device.
pub fn flatten(ts: &[Tensor<1>]) -> Tensor<1> {
    Tensor::cat(ts.to_vec(), 0)
}

/// Splits a flat device tensor into tensors shaped like `like`, on the device.
pub fn unflatten(v: &Tensor<1>, like: &[Tensor<1>]) -> Vec<Tensor<1>> {
    let mut off = 0;
    like.iter()
        .map(|p| {
            let n = p.dims()[0];
            let part = v.clone().slice(off..off + n);
            off += n;
            part
        })
        .collect()
}

/// Splits a flat host vector into device tensors shaped like `like`.
pub fn unflatten_from_host(v: &[f64], like: &[Tensor<1>]) -> Vec<Tensor<1>> {
    let Some(first) = like.first() else {
        return Vec::new();
    };
    let vals: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    let flat = Tensor::from_data(TensorData::new(vals, [v.len()]), &first.device());
    unflatten(&flat, like)
}
