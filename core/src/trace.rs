//! The Hessian trace tr ∇²ℓ_S(θ) by Hutch++ (Meyer, Musco, Musco & Woodruff,
//! "Hutch++: optimal stochastic trace estimation", SOSA 2021), with a
//! standard error (`docs/measurements.md` "Trace").
//!
//! With m operator products: draw k = ⌊m/3⌋ Rademacher probes S, orthonormalise
//! the sketch A S into Q (`[r, P]`, r ≤ k: directions that A S does not span
//! are dropped), take the low-rank part tr(QᵀAQ) = Σ_i q_iᵀ A q_i exactly
//! (r products), and estimate the rest with Hutchinson on the deflated
//! operator (I − QQᵀ)A(I − QQᵀ) with the remaining n = m − k − r ≥ k
//! Rademacher probes g_j:
//!
//! x_j = g̃_jᵀ A g̃_j, g̃_j = (I − QQᵀ) g_j,  tr A ≈ tr(QᵀAQ) + (1/n) Σ_j x_j.
//!
//! For any Q independent of the g_j the estimate is unbiased; Q captures the
//! top of the spectrum (a few outliers carry most of a network Hessian's
//! trace), which leaves the Hutchinson part little variance. The standard
//! error is that part's sample standard deviation over √n:
//! se = sd(x_1..x_n)/√n (denominator n − 1), the error given Q (the low-rank
//! part has none beyond the products' own finite-difference error).
//!
//! The operator is only ever applied to unit vectors (the sketch probes
//! s/√P, the rows of Q, and g̃/‖g̃‖, scaled back by ‖g̃‖²): the
//! finite-difference products size their step ε for ‖v‖ = 1, and a
//! Rademacher probe of norm √P would move θ by ε√P.
//!
//! Everything runs on the device: Q is one `[k, P]` f32 matrix (k·P values,
//! plus O(P) working vectors), each product stays there, and the scalars are
//! read back once at the end; orthonormalising a sketch column reads three
//! f32 per Gram–Schmidt pass.
//!
//! # Shapes
//! The operator maps a flat `[P]` device vector to a flat `[P]` one.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::backend::read_vec;
use crate::config::settings;
use crate::hvp::HessianOperator;
use crate::loss::LossConfig;
use crate::models::Model;
use crate::objective::Sample;
use crate::probe::Probe;
use crate::rng::Rng;
use crate::sharpness::SharpnessConfig;
use crate::{Error, Result};

settings! {
    /// Settings of a Hutch++ trace estimate.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct TraceConfig {
        /// Operator products m in all (≥ 6): ⌊m/3⌋ for the sketch, at most as
        /// many for the low-rank part, the rest for the Hutchinson probes.
        pub products: usize = 30,
    }
}

impl TraceConfig {
    /// Checks that m leaves a sketch and at least two Hutchinson probes.
    pub fn validate(&self) -> Result<()> {
        if self.products < 6 {
            return Err(Error::Config(format!(
                "measure.hutchpp.products must be ≥ 6 (a sketch and two probes for the standard error), got {}",
                self.products
            )));
        }
        Ok(())
    }
}

/// A trace estimate.
#[derive(Clone, Debug)]
pub struct TraceEstimate {
    /// tr A estimated.
    pub trace: f64,
    /// Its standard error (see the module docs).
    pub se: f64,
    /// Operator products spent.
    pub products: usize,
    /// r, the rank of the deflation basis Q.
    pub rank: usize,
    /// tr(QᵀAQ), the low-rank part.
    pub low_rank: f64,
    /// The Hutchinson samples x_j on the deflated operator.
    pub samples: Vec<f64>,
    /// Seconds spent.
    pub wall_s: f64,
}

/// A sketch column whose component outside Q is at most this fraction of
/// its norm adds no direction (rounding of the f32 products and passes).
const DROP: f64 = 1e-4;

/// Orthonormal rows q_0..q_{len−1} of a `[capacity, P]` device matrix.
struct Rows {
    store: Tensor<2>,
    len: usize,
    dim: usize,
}

impl Rows {
    fn new(capacity: usize, dim: usize, device: &Device) -> Rows {
        Rows {
            store: Tensor::<2>::zeros([capacity.max(1), dim], device),
            len: 0,
            dim,
        }
    }

    fn rows(&self) -> Tensor<2> {
        self.store.clone().slice([0..self.len, 0..self.dim])
    }

    fn row(&self, i: usize) -> Tensor<1> {
        self.store
            .clone()
            .slice([i..i + 1, 0..self.dim])
            .reshape([self.dim])
    }

    /// (I − QQᵀ) w: one classical Gram–Schmidt pass.
    fn project_out(&self, w: Tensor<1>) -> Tensor<1> {
        if self.len == 0 {
            return w;
        }
        let (p, q) = (self.dim, self.rows());
        let c = q.clone().matmul(w.clone().reshape([p, 1]));
        let proj: Tensor<2> = c.reshape([1, self.len]).matmul(q);
        w - proj.reshape([p])
    }

    /// Appends y's direction outside Q, normalised, unless it has none
    /// (‖w‖ ≤ [`DROP`]·‖y‖); returns whether it did. Gram–Schmidt passes are
    /// repeated while one cancels most of w (DGKS, at most three), so the
    /// rows stay orthonormal to f32 rounding.
    async fn push(&mut self, y: Tensor<1>) -> Result<bool> {
        let ny = norm(&y);
        let mut before = ny.clone();
        let mut w = y;
        for pass in 1..=3 {
            let next = self.project_out(w);
            let after = norm(&next);
            let s = read_vec(&Tensor::cat(vec![ny.clone(), before, after.clone()], 0)).await?;
            let (n_y, n_before, n_after) = (f64::from(s[0]), f64::from(s[1]), f64::from(s[2]));
            w = next;
            before = after;
            let independent = n_after.is_finite() && n_after > DROP * n_y;
            if !independent {
                return Ok(false);
            }
            if n_after >= std::f64::consts::FRAC_1_SQRT_2 * n_before || pass == 3 {
                let q = w.mul_scalar(1.0 / n_after);
                let (len, p) = (self.len, self.dim);
                self.store = self
                    .store
                    .clone()
                    .slice_assign([len..len + 1, 0..p], q.reshape([1, p]));
                self.len += 1;
                return Ok(true);
            }
        }
        unreachable!("the third pass returns")
    }
}

fn norm(v: &Tensor<1>) -> Tensor<1> {
    v.clone().square().sum().sqrt()
}

fn dot(a: &Tensor<1>, b: Tensor<1>) -> Tensor<1> {
    (a.clone() * b).sum()
}

/// Hutch++ on an operator of flat device vectors of length `p` (symmetric,
/// e.g. [`HessianOperator::apply_flat`]); the probes are drawn from `rng`.
pub async fn hutchpp(
    mut op: impl FnMut(&Tensor<1>) -> Tensor<1>,
    p: usize,
    cfg: &TraceConfig,
    rng: &mut Rng,
    device: &Device,
) -> Result<TraceEstimate> {
    cfg.validate()?;
    let t0 = Instant::now();
    let k = cfg.products / 3;
    let mut q = Rows::new(k, p, device);
    for _ in 0..k {
        // ‖s‖ = √P; only the span of the sketch matters
        let s = Probe::Rademacher
            .draw_on(p, rng, device)
            .mul_scalar(1.0 / (p as f64).sqrt());
        q.push(op(&s)).await?;
    }
    let rank = q.len;
    let mut scalars = Vec::with_capacity(cfg.products);
    for i in 0..rank {
        let qi = q.row(i);
        scalars.push(dot(&qi, op(&qi)));
    }
    let n = cfg.products - k - rank;
    for _ in 0..n {
        // x = ‖g̃‖²·ĝᵀAĝ with the unit ĝ = g̃/‖g̃‖
        let g = q.project_out(Probe::Rademacher.draw_on(p, rng, device));
        let ng = norm(&g);
        let unit = g / ng.clone();
        scalars.push(dot(&unit, op(&unit)) * ng.square());
    }
    let values: Vec<f64> = read_vec(&Tensor::cat(scalars, 0))
        .await?
        .into_iter()
        .map(f64::from)
        .collect();
    let (low, samples) = values.split_at(rank);
    let low_rank: f64 = low.iter().sum();
    let (mean, sd) = mean_sd(samples);
    Ok(TraceEstimate {
        trace: low_rank + mean,
        se: sd / (samples.len() as f64).sqrt(),
        products: k + rank + n,
        rank,
        low_rank,
        samples: samples.to_vec(),
        wall_s: t0.elapsed().as_secs_f64(),
    })
}

/// Mean and sample standard deviation (denominator n − 1; 0 for n < 2).
pub fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = if x.len() < 2 {
        0.0
    } else {
        x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    };
    (mean, var.sqrt())
}

/// tr ∇²ℓ_S(θ) by [`hutchpp`] on Hessian-vector products (finite
/// differences and BatchNorm mode as `solver` says).
pub async fn hessian_trace(
    model: &Model,
    sample: &Sample,
    loss: &LossConfig,
    solver: &SharpnessConfig,
    cfg: &TraceConfig,
    rng: &mut Rng,
) -> Result<TraceEstimate> {
    let mut op = HessianOperator::new(model, solver.bn_mode, sample, loss, &solver.hvp).await?;
    let p = model.arch.num_params();
    hutchpp(|v| op.apply_flat(v), p, cfg, rng, &model.device()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Block;
    use burn::tensor::TensorData;

    /// A = V diag(λ) Vᵀ with a random orthogonal V, on the host and the device.
    fn matrix(eigs: &[f64], seed: u64) -> (Vec<f64>, Tensor<2>) {
        let n = eigs.len();
        let mut rng = Rng::new(seed);
        let mut v: Vec<Vec<f64>> = Vec::new();
        while v.len() < n {
            let mut x: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
            for b in &v {
                let c = crate::linalg::dot(b, &x);
                crate::linalg::axpy(-c, b, &mut x);
            }
            let nx = crate::linalg::norm(&x);
            x.iter_mut().for_each(|a| *a /= nx);
            v.push(x);
        }
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| v[k][i] * eigs[k] * v[k][j]).sum();
            }
        }
        let t = Tensor::<2>::from_data(
            TensorData::new(a.iter().map(|&x| x as f32).collect::<Vec<_>>(), [n, n]),
            &Device::flex(),
        );
        (a, t)
    }

    fn run(a: &Tensor<2>, products: usize, seed: u64) -> TraceEstimate {
        let n = a.dims()[0];
        hutchpp(
            |v| a.clone().matmul(v.clone().reshape([n, 1])).reshape([n]),
            n,
            &TraceConfig { products },
            &mut Rng::new(seed),
            &Device::flex(),
        )
        .block()
        .unwrap()
    }

    /// A matrix of rank 4 < k: Q spans its range, so the low-rank part is the
    /// whole trace and the deflated residual (and its standard error) vanish.
    #[test]
    fn low_rank_matrix_is_exact() {
        let mut eigs = vec![0.0; 40];
        eigs[..4].copy_from_slice(&[9.0, -3.0, 2.5, 1.0]);
        let (_, a) = matrix(&eigs, 3);
        let t = run(&a, 30, 1);
        assert_eq!(t.rank, 4, "the sketch spans the range");
        assert_eq!(t.products, 10 + 4 + 16);
        assert!((t.trace - 9.5).abs() < 1e-4, "trace {}", t.trace);
        assert!(t.se < 1e-4, "se {}", t.se);
    }

    /// A few outliers over a bulk (a network Hessian's shape): over 40 seeds
    /// the errors scaled by the reported standard error have an RMS near 1
    /// (the estimate is unbiased and its error bar calibrated), and Hutch++'s
    /// error is far below plain Hutchinson's with the same products.
    #[test]
    fn outliers_over_a_bulk_are_estimated_within_the_error_bar() {
        let n = 120;
        let mut eigs: Vec<f64> = (0..n).map(|i| 0.5 * ((i as f64) * 0.37).sin()).collect();
        eigs[..5].copy_from_slice(&[40.0, 25.0, 18.0, 12.0, 9.0]);
        let exact: f64 = eigs.iter().sum();
        let (a, at) = matrix(&eigs, 5);
        let fro2: f64 = a.iter().map(|x| x * x).sum();
        let diag2: f64 = (0..n).map(|i| a[i * n + i].powi(2)).sum();
        // plain Hutchinson with m = 30 Rademacher probes
        let hutchinson_sd = (2.0 * (fro2 - diag2) / 30.0).sqrt();
        let (mut z2, mut e2) = (0.0, 0.0);
        let seeds = 40;
        for seed in 0..seeds {
            let t = run(&at, 30, seed);
            let err = t.trace - exact;
            assert!(
                err.abs() <= 5.0 * t.se,
                "seed {seed}: err {err:.3e} se {:.3e}",
                t.se
            );
            z2 += (err / t.se).powi(2);
            e2 += err * err;
        }
        let rms = (z2 / seeds as f64).sqrt();
        let rms_err = (e2 / seeds as f64).sqrt();
        println!("Hutch++: RMS err/se {rms:.2}, RMS err {rms_err:.3e}, Hutchinson sd {hutchinson_sd:.3e}");
        assert!((0.5..1.6).contains(&rms), "err/se RMS {rms}");
        assert!(
            rms_err < 0.25 * hutchinson_sd,
            "RMS err {rms_err} vs Hutchinson sd {hutchinson_sd}"
        );
    }

    /// The finite-difference products size ε for unit vectors: every vector
    /// Hutch++ hands the operator has norm 1, and the estimate is unchanged.
    #[test]
    fn products_are_of_unit_vectors() {
        use crate::backend::tensor_to_vec;
        let eigs: Vec<f64> = (0..50).map(|i| 1.0 + (i as f64 * 0.7).cos()).collect();
        let (_, a) = matrix(&eigs, 8);
        let n = 50;
        let mut norms = Vec::new();
        let t = hutchpp(
            |v| {
                let x = tensor_to_vec(v);
                norms.push(x.iter().map(|&y| f64::from(y).powi(2)).sum::<f64>().sqrt());
                a.clone().matmul(v.clone().reshape([n, 1])).reshape([n])
            },
            n,
            &TraceConfig { products: 30 },
            &mut Rng::new(3),
            &Device::flex(),
        )
        .block()
        .unwrap();
        assert_eq!(norms.len(), 30);
        assert!(norms.iter().all(|x| (x - 1.0).abs() < 1e-5), "{norms:?}");
        let exact: f64 = eigs.iter().sum();
        assert!(
            (t.trace - exact).abs() <= 4.0 * t.se + 1e-4 * exact,
            "{} vs {exact}",
            t.trace
        );
    }

    #[test]
    fn too_few_products_is_a_config_error() {
        let e = TraceConfig { products: 5 }
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("measure.hutchpp.products must be ≥ 6"), "{e}");
        let (m, s) = mean_sd(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((s - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
    }
}
