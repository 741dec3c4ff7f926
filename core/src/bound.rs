//! The paper's data-dependent bound quantities.
//!
//! - **Theorem 5.1 data bound** (the computable part of eq. (9); the local
//!   variation term V cannot be computed and is left out, so this is labelled
//!   "without V"): with ℓ = sqrt(max_i c_i / a), a = ½,
//!   B = max_{i≠j} (‖t_i − t_j‖ − 2ℓ)/‖x_i − x_j‖, floored at 0. For one-hot or
//!   smoothed targets ‖t_i − t_j‖ is a constant Δ when y_i ≠ y_j and 0
//!   otherwise, so B = (Δ − 2ℓ)/min_{y_i≠y_j} ‖x_i − x_j‖. It lower-bounds
//!   max_i ‖J_i‖₂ (up to V) of the softmax Jacobian for cross-entropy and of
//!   the logit Jacobian for the square loss.
//! - **Covering radius** δ(N, ε) of N samples: eq. (6) on the cube [0,1]^d,
//!   eq. (7) on the sphere S^d; a Lipschitz push-forward multiplies δ by ‖g‖_Lip.
//! - **Theorem 6.1** right-hand side without V: δ·(‖f*‖_Lip + max_i ‖Jf(x_i)‖₂).

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::backend::read_vec;
use crate::data::Dataset;
use crate::{Error, Result};

/// The closest pair of examples with different labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InterclassDistance {
    /// min_{y_i ≠ y_j} ‖x_i − x_j‖₂
    pub distance: f64,
    /// Index of one example of the pair.
    pub i: usize,
    /// Index of the other.
    pub j: usize,
}

/// Rows per tile of the pairwise-distance computation.
const TILE: usize = 1024;

/// min over pairs with different labels of ‖x_i − x_j‖₂.
///
/// Tiled on `device` via ‖a‖² + ‖b‖² − 2a·b in f32; every pair within a
/// relative margin of the f32 minimum is then recomputed exactly in f64 on the
/// host, so the result is exact to f64 rounding.
pub async fn min_interclass_distance(
    data: &Dataset,
    device: &Device,
) -> Result<InterclassDistance> {
    let n = data.len();
    let d = data.input_len();
    if data.class_counts().iter().filter(|&&c| c > 0).count() < 2 {
        return Err(Error::Config(format!(
            "{}: the data bound needs examples of at least two classes",
            data.name
        )));
    }
    let sq: Vec<f64> = (0..n)
        .map(|i| data.input(i).iter().map(|&v| (v as f64).powi(2)).sum())
        .collect();
    let max_sq = sq.iter().cloned().fold(0.0, f64::max);
    // candidates: (approx squared distance, i, j)
    let mut candidates: Vec<(f64, usize, usize)> = Vec::new();
    let mut best = f64::INFINITY;
    // f32 error of ‖a‖²+‖b‖²−2a·b is ≲ d·u·(‖a‖²+‖b‖²); keep everything within that of the minimum.
    let slack = 4.0 * (d as f64).sqrt() * 6e-8 * 4.0 * max_sq + 1e-30;
    // Each tile is uploaded once and reused for every row-tile × column-tile product.
    let tiles: Vec<Tensor<2>> = (0..n)
        .step_by(TILE)
        .map(|r0| {
            let r1 = (r0 + TILE).min(n);
            Tensor::<2>::from_data(
                TensorData::new(data.x[r0 * d..r1 * d].to_vec(), [r1 - r0, d]),
                device,
            )
        })
        .collect();
    for (ti, a) in tiles.iter().enumerate() {
        let (r0, r1) = (ti * TILE, ((ti + 1) * TILE).min(n));
        for (tj, b) in tiles.iter().enumerate().skip(ti) {
            let (c0, c1) = (tj * TILE, ((tj + 1) * TILE).min(n));
            let dots = read_vec(&a.clone().matmul(b.clone().transpose())).await?;
            let w = c1 - c0;
            for i in r0..r1 {
                for j in c0.max(i + 1)..c1 {
                    if data.y[i] == data.y[j] {
                        continue;
                    }
                    let d2 = sq[i] + sq[j] - 2.0 * dots[(i - r0) * w + (j - c0)] as f64;
                    if d2 <= best + slack {
                        best = best.min(d2);
                        candidates.push((d2, i, j));
                    }
                }
            }
            candidates.retain(|c| c.0 <= best + slack);
        }
    }
    let exact = candidates
        .iter()
        .map(|&(_, i, j)| {
            let dist: f64 = data
                .input(i)
                .iter()
                .zip(data.input(j))
                .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            InterclassDistance {
                distance: dist,
                i,
                j,
            }
        })
        .min_by(|a, b| a.distance.total_cmp(&b.distance))
        .ok_or_else(|| Error::Config("no pair of examples with different labels".into()))?;
    Ok(exact)
}

/// ℓ = sqrt(max_i c_i / a) with a = ½ (Pinsker for the KL form of
/// cross-entropy; exact for the square loss on logits).
pub fn ell(max_example_loss: f64) -> f64 {
    (max_example_loss.max(0.0) / 0.5).sqrt()
}

/// B = max(0, (Δ − 2ℓ)/min_dist).
pub fn data_bound(target_gap: f64, ell: f64, min_distance: f64) -> f64 {
    ((target_gap - 2.0 * ell) / min_distance).max(0.0)
}

/// ln Γ(x) for x > 0 (Lanczos approximation, g = 7, n = 9; ~1e-15 relative).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // reflection
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

fn check_delta_args(dim: usize, n: usize, eps: f64) -> Result<()> {
    if dim == 0 || n == 0 || !(eps > 0.0 && eps < 1.0) {
        return Err(Error::Config(format!(
            "δ(N, ε) needs dim ≥ 1, N ≥ 1 and 0 < ε < 1 (got dim={dim}, N={n}, ε={eps})"
        )));
    }
    if (n as f64 / eps).ln() <= 0.0 {
        return Err(Error::Config(format!(
            "δ(N, ε) needs N/ε > 1 (got N={n}, ε={eps})"
        )));
    }
    Ok(())
}

/// Eq. (6): δ = 4·Γ(d/2 + 1)^{1/d}/√π · (log(N/ε)/N)^{1/d} on [0,1]^d.
pub fn delta_cube(dim: usize, n: usize, eps: f64) -> Result<f64> {
    check_delta_args(dim, n, eps)?;
    let d = dim as f64;
    let n = n as f64;
    Ok(
        4.0 * (ln_gamma(d / 2.0 + 1.0) / d).exp() / std::f64::consts::PI.sqrt()
            * ((n / eps).ln() / n).powf(1.0 / d),
    )
}

/// Eq. (7): δ = 2^{1+1/d}·(1 − γ)^{−1/2}·(log(N/ε)/N)^{1/d} on S^d, 0 < γ < 1.
pub fn delta_sphere(dim: usize, n: usize, eps: f64, gamma: f64) -> Result<f64> {
    check_delta_args(dim, n, eps)?;
    if !(gamma > 0.0 && gamma < 1.0) {
        return Err(Error::Config(format!("γ must be in (0, 1), got {gamma}")));
    }
    let d = dim as f64;
    let n = n as f64;
    Ok(2f64.powf(1.0 + 1.0 / d) / (1.0 - gamma).sqrt() * ((n / eps).ln() / n).powf(1.0 / d))
}

/// Theorem 6.1 right-hand side without V: δ·(‖f*‖_Lip + max_i ‖Jf(x_i)‖₂).
pub fn theorem61_rhs(delta: f64, target_lipschitz: f64, max_jacobian_norm: f64) -> f64 {
    delta * (target_lipschitz + max_jacobian_norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_values() {
        // Γ(1)=1, Γ(5)=24, Γ(1/2)=√π, Γ(3.5)=15√π/8
        assert!(ln_gamma(1.0).abs() < 1e-14);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-13);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-13);
        assert!((ln_gamma(3.5) - (15.0 * std::f64::consts::PI.sqrt() / 8.0).ln()).abs() < 1e-13);
        assert!((ln_gamma(101.0) - 363.739_375_555_563_5).abs() < 1e-9);
    }

    #[test]
    fn delta_closed_forms() {
        // d = 2: Γ(2)^{1/2} = 1 → δ = 4/√π · sqrt(ln(N/ε)/N)
        let v = delta_cube(2, 1000, 0.01).unwrap();
        let e = 4.0 / std::f64::consts::PI.sqrt() * ((1000f64 / 0.01).ln() / 1000.0).sqrt();
        assert!((v - e).abs() < 1e-12);
        // d = 1 sphere, γ = 0.75: 2^2 · 2 · ln(N/ε)/N
        let v = delta_sphere(1, 500, 0.1, 0.75).unwrap();
        assert!((v - 8.0 * (5000f64).ln() / 500.0).abs() < 1e-12);
        // δ shrinks with N
        assert!(delta_cube(5, 10_000, 0.1).unwrap() < delta_cube(5, 1000, 0.1).unwrap());
        assert!(
            delta_cube(0, 10, 0.1).is_err()
                && delta_cube(3, 10, 1.5).is_err()
                && delta_sphere(3, 10, 0.1, 1.0).is_err()
        );
    }

    #[test]
    fn min_distance_matches_brute_force() {
        let mut rng = crate::rng::Rng::new(4);
        let (n, d) = (300, 7);
        let x: Vec<f32> = (0..n * d)
            .map(|_| (rng.normal() * 3.0 + 10.0) as f32)
            .collect();
        let y: Vec<u32> = (0..n).map(|_| rng.below(3) as u32).collect();
        let data = Dataset {
            x,
            y,
            input_shape: vec![d],
            classes: 3,
            name: "t".into(),
        };
        let got = crate::block_on(min_interclass_distance(&data, &Device::flex())).unwrap();
        let mut best = f64::INFINITY;
        for i in 0..n {
            for j in i + 1..n {
                if data.y[i] != data.y[j] {
                    let dd: f64 = data
                        .input(i)
                        .iter()
                        .zip(data.input(j))
                        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    best = best.min(dd);
                }
            }
        }
        assert!(
            (got.distance - best).abs() < 1e-12 * best,
            "{} vs {best}",
            got.distance
        );
        assert_ne!(data.y[got.i], data.y[got.j]);
        // B closed form
        assert_eq!(data_bound(2f64.sqrt(), 0.0, 2.0), 2f64.sqrt() / 2.0);
        assert_eq!(data_bound(1.0, 1.0, 2.0), 0.0);
        assert!((ell(0.125) - 0.5).abs() < 1e-15);
    }
}
