//! Exact per-example input–output Jacobian spectral norms (docs/measurements.md "Jacobian norms").
//!
//! For each example, the logit Jacobian J_i = ∂f(x_i)/∂x ∈ R^{C×d} and the
//! softmax Jacobian A_i·J_i with A_i = diag(p_i) − p_i p_iᵀ; ‖J‖₂ = sqrt(λ_max(J Jᵀ)),
//! a C×C symmetric eigenproblem solved exactly in f64.
//!
//! Rows of J come from vector–Jacobian products in eval mode (BatchNorm
//! running statistics), where examples are independent: each example is
//! repeated C times (copy k selects logit k), and one backward pass gives all
//! C rows of every example's Jacobian. How the work is arranged (none of it
//! changes what is computed):
//!
//! - copies are example-major (row i·C + k), so the rows of one example are
//!   contiguous and `[B, C, d]` is a plain reshape, not a strided view;
//! - the logits for p come from copy 0 of the tiled pass (no second forward);
//! - the softmax Gram matrix is A G Aᵀ (A symmetric) on C×C matrices, in f64
//!   on the host, instead of a second `[B, C, d]` product and Gram;
//! - for the MLP, the stem z₁ = W₀x + b₀ is linear in x, so it is computed
//!   once per example and only z₁ is repeated; the backward pass stops at
//!   δ = ∂f/∂z₁ (`[B·C, m]`) and J = δ W₀, so G = J Jᵀ = δ (W₀W₀ᵀ) δᵀ with the
//!   m×m matrix W₀W₀ᵀ formed once per call (used while m ≤ 2d, where it is the
//!   cheaper order; otherwise J = δ W₀ is formed). For the benchmark MLP
//!   (d = 3072, m = 512) this avoids the tiled first layer entirely.

use burn::tensor::{Tensor, TensorData};

use crate::backend::read_vec;
use crate::linalg::largest_eigenvalue;
use crate::models::{forward_bn, forward_from_stem, stem, Architecture, Bn, Gates, Input, Model};
use crate::objective::Sample;
use crate::Result;

/// Per-example spectral norms, in sample order.
#[derive(Clone, Debug, PartialEq)]
pub struct JacobianNorms {
    /// ‖∂softmax(f(x_i))/∂x‖₂
    pub softmax: Vec<f64>,
    /// ‖∂f(x_i)/∂x‖₂
    pub logit: Vec<f64>,
}

/// Largest number of values of a tiled input batch (C·B·d) held at once.
const TILE_BUDGET: usize = 1 << 24;

/// ‖J_i‖₂ of the logit and softmax Jacobians for every example of `sample`.
///
/// Examples go through in tiles of b examples, i.e. C·b rows in one forward
/// and backward pass. b is bounded twice: the tiled input holds at most
/// `TILE_BUDGET` values (C·b·d), and C·b is at most the sample's chunk size
/// (`measure.chunk`, the same knob that bounds the HVP's memory), b ≥ 1. The
/// second bound is what keeps deep models in memory: their activations per
/// row dwarf the input (ResNet18 at width 64 with C = 10 would otherwise run
/// a 5,460-image backward pass per tile).
pub async fn jacobian_spectral_norms(model: &Model, sample: &Sample) -> Result<JacobianNorms> {
    let (arch, params, running) = (&model.arch, &model.params[..], &model.buffers[..]);
    let c = arch.classes();
    let d = arch.input_len();
    let chunk_len = sample.chunks.first().map_or(1, |ch| ch.x.dims()[0]);
    let max_b = (TILE_BUDGET / (c * d)).max(1).min((chunk_len / c).max(1));
    let dense = DenseStem::new(arch, params);
    let mut out = JacobianNorms {
        softmax: Vec::with_capacity(sample.n),
        logit: Vec::with_capacity(sample.n),
    };
    let mut a = vec![0f64; c * c];
    let mut tmp = vec![0f64; c * c];
    let mut gs = vec![0f64; c * c];
    for ch in &sample.chunks {
        let b_all = ch.x.dims()[0];
        for start in (0..b_all).step_by(max_b) {
            let b = max_b.min(b_all - start);
            let x = ch.x.clone().slice([start..start + b, 0..d]);
            let (g, logits) = match &dense {
                Some(s) => s.gram(arch, params, running, x, c),
                None => input_gram(arch, params, running, x, c, d),
            };
            let g: Vec<f64> = read_vec(&g).await?.into_iter().map(f64::from).collect();
            let logits = read_vec(&logits).await?;
            for i in 0..b {
                let gi = &g[i * c * c..(i + 1) * c * c];
                out.logit.push(largest_eigenvalue(gi, c).max(0.0).sqrt());
                softmax_matrix(&logits[i * c..(i + 1) * c], &mut a);
                // A G A (A = Aᵀ)
                mat_mul(&a, gi, &mut tmp, c);
                mat_mul(&tmp, &a, &mut gs, c);
                out.softmax.push(largest_eigenvalue(&gs, c).max(0.0).sqrt());
            }
        }
    }
    Ok(out)
}

/// A = diag(p) − ppᵀ with p = softmax(z), in f64.
fn softmax_matrix(z: &[f32], a: &mut [f64]) {
    let c = z.len();
    let zmax = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let e: Vec<f64> = z.iter().map(|&v| (v as f64 - zmax).exp()).collect();
    let s: f64 = e.iter().sum();
    for k in 0..c {
        for l in 0..c {
            a[k * c + l] = if k == l { e[k] / s } else { 0.0 } - (e[k] / s) * (e[l] / s);
        }
    }
}

/// out = x·y for row-major c×c matrices.
fn mat_mul(x: &[f64], y: &[f64], out: &mut [f64], c: usize) {
    for i in 0..c {
        for j in 0..c {
            out[i * c + j] = (0..c).map(|k| x[i * c + k] * y[k * c + j]).sum();
        }
    }
}

/// Row i·C + k of the `[B·C, C]` selector: one-hot at k.
fn selector(b: usize, c: usize, device: &burn::tensor::Device) -> Tensor<2> {
    let mut sel = vec![0f32; b * c * c];
    for i in 0..b {
        for k in 0..c {
            sel[(i * c + k) * c + k] = 1.0;
        }
    }
    Tensor::<2>::from_data(TensorData::new(sel, [b * c, c]), device)
}

/// `[B, n]` → `[B·C, n]`, row i·C + k = row i.
fn repeat_rows(t: Tensor<2>, c: usize) -> Tensor<2> {
    let [b, n] = t.dims();
    t.unsqueeze_dim::<3>(1).repeat_dim(1, c).reshape([b * c, n])
}

/// Logits of copy 0 of every example from the tiled `[B·C, C]` output.
fn first_copies(z: Tensor<2>, b: usize, c: usize) -> Tensor<2> {
    z.inner()
        .reshape([b, c, c])
        .slice([0..b, 0..1, 0..c])
        .reshape([b, c])
}

/// Per-example logit Gram matrices J Jᵀ (`[B, C, C]`) and logits (`[B, C]`)
/// by backpropagating to the tiled input.
fn input_gram(
    arch: &Architecture,
    params: &[Tensor<1>],
    running: &[Tensor<1>],
    x: Tensor<2>,
    c: usize,
    d: usize,
) -> (Tensor<3>, Tensor<2>) {
    let b = x.dims()[0];
    let (rows, logits) = tiled_rows(x, c, |t| {
        forward_bn(arch, params, t, Gates::Free, &mut Bn::Running(running))
    }); // [B·C, d]
    (row_gram(rows, b, c, d), logits)
}

/// Per-example Gram matrices `[B, C, C]` of Jacobian rows `[B·C, n]`
/// (row i·C + k is row k of example i's Jacobian).
fn row_gram(rows: Tensor<2>, b: usize, c: usize, n: usize) -> Tensor<3> {
    let j: Tensor<3> = rows.reshape([b, c, n]);
    j.clone().matmul(j.swap_dims(1, 2))
}

/// Tiles `h` (`[B, n]`) C times, maps it to logits with `f`, and backpropagates
/// logit k of copy k: row i·C + k of the result is ∂f_k(h_i)/∂h_i (`[B·C, n]`);
/// also returns the logits of copy 0 (`[B, C]`).
fn tiled_rows(
    h: Tensor<2>,
    c: usize,
    f: impl FnOnce(Tensor<2>) -> Tensor<2>,
) -> (Tensor<2>, Tensor<2>) {
    let b = h.dims()[0];
    let sel = selector(b, c, &h.device());
    let tiled = repeat_rows(h, c).autodiff().require_grad();
    let z = f(tiled.clone());
    let grads = (z.clone() * sel).sum().backward();
    let rows = tiled.grad(&grads).expect("gradient of the tiled rows");
    (rows, first_copies(z, b, c))
}

/// The dense first layer of an MLP, for Jacobians through its output.
struct DenseStem {
    /// W₀, `[m, d]`.
    w0: Tensor<2>,
    /// W₀W₀ᵀ (`[m, m]`) when m ≤ 2d.
    gram: Option<Tensor<2>>,
}

impl DenseStem {
    fn new(arch: &Architecture, params: &[Tensor<1>]) -> Option<DenseStem> {
        let layout = arch.layout();
        let Input::Vector(d) = layout.input else {
            return None;
        };
        let m = layout.params[0].shape[0];
        let w0: Tensor<2> = params[0].clone().reshape([m, d]);
        let gram = (m <= 2 * d).then(|| w0.clone().matmul(w0.clone().transpose()));
        Some(DenseStem { w0, gram })
    }

    /// As [`input_gram`], backpropagating to the tiled stem output only.
    fn gram(
        &self,
        arch: &Architecture,
        params: &[Tensor<1>],
        running: &[Tensor<1>],
        x: Tensor<2>,
        c: usize,
    ) -> (Tensor<3>, Tensor<2>) {
        let b = x.dims()[0];
        let z1 = stem(arch, params, x);
        let m = z1.dims()[1];
        let (delta, logits) = tiled_rows(z1, c, |t| {
            forward_from_stem(arch, params, t, Gates::Free, &mut Bn::Running(running))
        }); // [B·C, m]
        let g = match &self.gram {
            Some(ww) => {
                let left: Tensor<3> = delta.clone().matmul(ww.clone()).reshape([b, c, m]);
                let right: Tensor<3> = delta.reshape([b, c, m]);
                left.matmul(right.swap_dims(1, 2))
            }
            None => row_gram(delta.matmul(self.w0.clone()), b, c, self.w0.dims()[1]),
        };
        (g, logits)
    }
}
