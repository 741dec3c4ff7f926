//! Exact per-example input–output Jacobian spectral norms (SPEC "Jacobian norm").
//!
//! For each example, the logit Jacobian J_i = ∂f(x_i)/∂x ∈ R^{C×d} and the
//! softmax Jacobian (diag(p) − ppᵀ)·J_i; ‖J‖₂ = sqrt(λ_max(J Jᵀ)), a C×C
//! symmetric eigenproblem solved exactly in f64.
//!
//! Rows of J come from vector–Jacobian products in eval mode (BatchNorm
//! running statistics), where examples are independent: the batch is tiled C times, copy k selects logit k, and
//! one backward pass gives all C rows of every example's Jacobian.

use burn::tensor::{activation, Tensor, TensorData};

use crate::linalg::largest_eigenvalue;
use crate::models::{forward_bn, read_vec, Architecture, Bn, Gates, Model};
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
pub async fn jacobian_spectral_norms(model: &Model, sample: &Sample) -> Result<JacobianNorms> {
    let (arch, params, running) = (&model.arch, &model.params[..], &model.buffers[..]);
    let c = arch.classes();
    let d = arch.input_len();
    let max_b = (TILE_BUDGET / (c * d)).max(1);
    let mut out = JacobianNorms {
        softmax: Vec::with_capacity(sample.n),
        logit: Vec::with_capacity(sample.n),
    };
    for ch in &sample.chunks {
        let b_all = ch.x.dims()[0];
        for start in (0..b_all).step_by(max_b) {
            let b = max_b.min(b_all - start);
            let x = ch.x.clone().slice([start..start + b, 0..d]);
            let (g, gs) = gram_matrices(arch, params, running, x, c, d);
            let (g, gs) = (read_f64(&g).await?, read_f64(&gs).await?);
            for i in 0..b {
                out.logit.push(
                    largest_eigenvalue(&g[i * c * c..(i + 1) * c * c], c)
                        .max(0.0)
                        .sqrt(),
                );
                out.softmax.push(
                    largest_eigenvalue(&gs[i * c * c..(i + 1) * c * c], c)
                        .max(0.0)
                        .sqrt(),
                );
            }
        }
    }
    Ok(out)
}

async fn read_f64(t: &Tensor<3>) -> Result<Vec<f64>> {
    Ok(read_vec(t).await?.into_iter().map(f64::from).collect())
}

/// Per-example Gram matrices J Jᵀ of the logit and softmax Jacobians, `[B, C, C]` each.
fn gram_matrices(
    arch: &Architecture,
    params: &[Tensor<1>],
    running: &[Tensor<1>],
    x: Tensor<2>,
    c: usize,
    d: usize,
) -> (Tensor<3>, Tensor<3>) {
    let b = x.dims()[0];
    let device = x.device();
    // Copy k of the batch (rows k·B .. (k+1)·B) selects logit k.
    let mut sel = vec![0f32; c * b * c];
    for k in 0..c {
        for i in 0..b {
            sel[(k * b + i) * c + k] = 1.0;
        }
    }
    let sel = Tensor::<2>::from_data(TensorData::new(sel, [c * b, c]), &device);
    let tiled = x.clone().repeat(&[c, 1]).autodiff().require_grad();
    let z = forward_bn(
        arch,
        params,
        tiled.clone(),
        Gates::Free,
        &mut Bn::Running(running),
    );
    let grads = (z * sel).sum().backward();
    let rows = tiled.grad(&grads).expect("input gradient"); // [C·B, d]
    let j: Tensor<3> = rows.reshape([c, b, d]).swap_dims(0, 1); // [B, C, d]
    let g = j.clone().matmul(j.clone().swap_dims(1, 2)); // [B, C, C]
                                                         // softmax Jacobian A·J with A = diag(p) − ppᵀ
    let z0 = forward_bn(arch, params, x, Gates::Free, &mut Bn::Running(running));
    let p = activation::softmax(z0, 1); // [B, C]
    let eye = Tensor::<2>::eye(c, &device).unsqueeze::<3>(); // [1, C, C]
    let pcol: Tensor<3> = p.clone().unsqueeze_dim(2); // [B, C, 1]
    let a = pcol.clone() * eye - pcol.clone().matmul(pcol.swap_dims(1, 2));
    let js = a.matmul(j); // [B, C, d]
    let gs = js.clone().matmul(js.swap_dims(1, 2));
    (g, gs)
}
