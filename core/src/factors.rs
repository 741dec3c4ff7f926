//! The factors through which, by the paper's Ansatz 3.1, input–output
//! Jacobians mediate sharpness (`docs/measurements.md` "Ansatz factors"):
//!
//! - the cost's output curvature λ_max(∇²_z c(z_i, t_i)) per example: for
//!   cross-entropy with Σ_k t_k = 1 it is λ_max(A_i), A_i = diag p_i − p_i p_iᵀ
//!   ([`softmax_curvature`]); for the square loss ∇²_z c = I, so it is 1;
//! - along the top Hessian eigenvector u, the Gauss–Newton share
//!   uᵀGu / uᵀHu and the residual uᵀ(H − G)u, the second term of eq. 3
//!   (Σ_k ∂c/∂z_k ∇²_θ f_k) along u ([`along`]);
//! - the share ‖u_l‖² of u in each parameter block
//!   ([`crate::layers::block_mass`]).

use burn::tensor::{activation, Tensor, TensorData};

use crate::backend::read_vec;
use crate::loss::{LossConfig, LossKind};
use crate::models::{forward_bn, Bn, BnMode, Gates, Model};
use crate::objective::Sample;
use crate::Result;

/// λ_max(diag p − ppᵀ) for a probability vector p (p ≥ 0, normalised here to
/// Σ p = 1, which removes the rounding of a softmax computed in f32).
///
/// With p sorted, p₁ ≥ p₂ ≥ …, the eigenvalues of the rank-one downdate
/// diag p − ppᵀ interlace the p_k, so λ_max ∈ [p₂, p₁], and there it is the
/// root of the secular equation 1 = Σ_k p_k²/(p_k − λ). With Σ_k p_k = 1 this
/// is λ·Σ_k p_k/(p_k − λ) = 0, free of the cancellation near λ ≈ 0 (a
/// confidently fitted example): h(λ) = Σ_k p_k/(p_k − λ) increases on
/// (p₂, p₁) from −∞ to +∞, and its root is found by bisection to f64
/// resolution. A tie p₁ = p₂ gives λ_max = p₁ (eigenvector e₁ − e₂); fewer
/// than two nonzero entries give 0. Closed forms (tested): 2p(1 − p) for
/// C = 2, to full relative accuracy also for p → 1; 1/C for the uniform p.
pub fn softmax_curvature(p: &[f64]) -> f64 {
    let total: f64 = p.iter().filter(|&&x| x > 0.0).sum();
    let mut q: Vec<f64> = p.iter().filter(|&&x| x > 0.0).map(|&x| x / total).collect();
    if q.len() < 2 {
        return 0.0;
    }
    q.sort_by(|a, b| b.total_cmp(a));
    let (p1, p2) = (q[0], q[1]);
    if p1 == p2 {
        return p1;
    }
    let h = |l: f64| q.iter().map(|&pk| pk / (pk - l)).sum::<f64>();
    let (mut lo, mut hi) = (p2, p1);
    loop {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            return mid;
        }
        if h(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
}

/// Max and mean over the sample of the cost's output curvature
/// λ_max(∇²_z c(f(x_i), t_i)) (see the module docs), with the outputs of the
/// loss whose curvature is measured (BatchNorm as `mode` says, batch
/// statistics per chunk in train mode). Returns `(max, mean)`.
pub async fn cost_curvature(
    model: &Model,
    sample: &Sample,
    loss: &LossConfig,
    mode: BnMode,
) -> Result<(f64, f64)> {
    if loss.kind == LossKind::Square {
        return Ok((1.0, 1.0));
    }
    let c = sample.classes;
    let (mut max, mut sum) = (f64::NEG_INFINITY, 0.0);
    for ch in &sample.chunks {
        let z = forward_bn(
            &model.arch,
            &model.params,
            ch.x.clone(),
            Gates::Free,
            &mut Bn::from_running(mode.running(model)),
        );
        let p = read_vec(&activation::softmax(z, 1)).await?;
        for row in p.chunks(c) {
            let row: Vec<f64> = row.iter().map(|&x| f64::from(x)).collect();
            let l = softmax_curvature(&row);
            max = max.max(l);
            sum += l;
        }
    }
    Ok((max, sum / sample.n as f64))
}

/// uᵀHu / uᵀu and uᵀGu / uᵀu for the host vector `u`, one product with each
/// operator (flat device vectors), read back together.
pub async fn along(
    h: &mut dyn FnMut(&Tensor<1>) -> Tensor<1>,
    g: &mut dyn FnMut(&Tensor<1>) -> Tensor<1>,
    u: &[f64],
    device: &burn::tensor::Device,
) -> Result<(f64, f64)> {
    let p = u.len();
    let ut = Tensor::<1>::from_data(
        TensorData::new(u.iter().map(|&x| x as f32).collect::<Vec<_>>(), [p]),
        device,
    );
    let uu = ut.clone().square().sum();
    let uhu = (ut.clone() * h(&ut)).sum();
    let ugu = (ut.clone() * g(&ut)).sum();
    let s = read_vec(&Tensor::cat(vec![uu, uhu, ugu], 0)).await?;
    let uu = f64::from(s[0]);
    Ok((f64::from(s[1]) / uu, f64::from(s[2]) / uu))
}

/// The Gauss–Newton share uᵀGu / uᵀHu and the residual curvature
/// uᵀ(H − G)u (per uᵀu) from [`along`]'s Rayleigh quotients.
pub fn share_and_residual(uhu: f64, ugu: f64) -> (f64, f64) {
    (ugu / uhu, uhu - ugu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::symmetric_eigenvalues;
    use crate::rng::Rng;

    fn dense(p: &[f64]) -> f64 {
        let c = p.len();
        let a: Vec<f64> = (0..c * c)
            .map(|q| {
                let (i, j) = (q / c, q % c);
                (if i == j { p[i] } else { 0.0 }) - p[i] * p[j]
            })
            .collect();
        symmetric_eigenvalues(&a, c)[0]
    }

    #[test]
    fn closed_forms() {
        for a in [0.5, 0.7, 0.9, 0.999, 1e-6] {
            let l = softmax_curvature(&[a, 1.0 - a]);
            assert!((l - 2.0 * a * (1.0 - a)).abs() < 1e-15, "{a}: {l}");
        }
        for c in [2usize, 3, 10, 100] {
            let l = softmax_curvature(&vec![1.0 / c as f64; c]);
            assert!((l - 1.0 / c as f64).abs() < 1e-15, "C = {c}: {l}");
        }
        assert_eq!(softmax_curvature(&[1.0, 0.0, 0.0]), 0.0);
        // a tie at the top: λ = p₁
        assert!((softmax_curvature(&[0.4, 0.4, 0.2]) - 0.4).abs() < 1e-15);
    }

    #[test]
    fn matches_dense_eigenvalues_of_random_softmaxes() {
        let mut rng = Rng::new(5);
        for c in [3usize, 4, 10, 33] {
            for scale in [0.1, 1.0, 5.0, 20.0] {
                let z: Vec<f64> = (0..c).map(|_| scale * rng.normal()).collect();
                let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
                let s: f64 = e.iter().sum();
                let p: Vec<f64> = e.iter().map(|v| v / s).collect();
                let (l, d) = (softmax_curvature(&p), dense(&p));
                assert!((l - d).abs() < 1e-13, "C = {c}, scale {scale}: {l} vs {d}");
            }
        }
    }

    #[test]
    fn share_and_residual_of_rayleigh_quotients() {
        assert_eq!(share_and_residual(4.0, 3.0), (0.75, 1.0));
    }
}
