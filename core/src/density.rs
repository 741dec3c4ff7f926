//! The Hessian's spectral density by stochastic Lanczos quadrature (SLQ;
//! Lin, Saad & Yang 2016; Ghorbani, Krishnan & Xiao 2019; the method of
//! PyHessian and pytorch-hessian-eigenthings), `docs/measurements.md`
//! "Spectral density".
//!
//! The density of A ∈ R^{P×P} is φ(t) = (1/P) Σ_i δ(t − λ_i). For a unit probe
//! v = z/‖z‖ (Rademacher or Gaussian z), m Lanczos steps from v give the
//! Gauss quadrature rule ([`Lanczos::quadrature`]) with nodes θ_k and weights
//! τ_k (Σ_k τ_k = 1) for which Σ_k τ_k f(θ_k) = vᵀ f(A) v for every
//! polynomial f of degree ≤ 2m − 1, and E_v[vᵀ f(A) v] = (1/P) tr f(A). The
//! estimate averages n_v probes and broadens each node by a Gaussian of
//! width σ:
//!
//! ρ(t) = (1/n_v) Σ_v Σ_k τ_{v,k} N(t; θ_{v,k}, σ²).
//!
//! So ∫ρ = 1, ∫t ρ(t) dt = (1/n_v) Σ_v vᵀAv (an unbiased estimate of tr A / P)
//! and ∫t² ρ(t) dt = (1/n_v) Σ_v ‖Av‖² + σ² (of ‖A‖_F²/P + σ²), exactly for
//! any m ≥ 2.
//!
//! # Grid
//! σ = `sigma`·(θ_max − θ_min) over all nodes of all probes (recorded), and
//! the grid is `points` equally spaced points from θ_min − 6σ to θ_max + 6σ.
//! [`DensityConfig::validate`] asks for a spacing h ≤ σ; then the trapezoid
//! rule on the grid integrates ρ, tρ and t²ρ to ~1e-8 relative (the Gaussian
//! tails beyond 6σ hold 1e-9, and the trapezoid rule's error on a Gaussian
//! sampled at h ≤ σ is ~2·exp(−2π²σ²/h²) ≤ 6e-9); ρ is not renormalised.
//!
//! # Memory
//! Each probe's Lanczos basis lives on the device ([`DeviceBasis`]) and holds
//! at most (m + 1)·P f32 values. m is capped so that this stays within
//! `max_basis_mib` ([`steps_within`]); the m used is recorded.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::config::settings;
use crate::hvp::HessianOperator;
use crate::lanczos::{DeviceBasis, Lanczos};
use crate::loss::LossConfig;
use crate::models::Model;
use crate::objective::Sample;
use crate::probe::Probe;
use crate::rng::Rng;
use crate::sharpness::SharpnessConfig;
use crate::{Error, Result};

settings! {
    /// Settings of a spectral density estimate.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct DensityConfig {
        /// Number of probe vectors n_v.
        pub probes: usize = 4,
        /// Lanczos steps m per probe (operator products per probe).
        pub steps: usize = 40,
        /// Distribution of the probes' entries.
        pub probe: Probe = Probe::Rademacher,
        /// Gaussian broadening σ relative to the spread of the nodes
        /// (θ_max − θ_min); the absolute σ is recorded.
        pub sigma: f64 = 0.01,
        /// Grid points (the spacing must be ≤ σ: points ≥ 1/sigma + 13).
        pub points: usize = 256,
        /// The device Lanczos basis of one probe, (m + 1)·P f32 values, is kept
        /// within this many MiB by lowering m.
        pub max_basis_mib: usize = 2048,
    }
}

impl DensityConfig {
    /// Checks the settings (see the field docs).
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Config(format!("measure.slq.{msg}")));
        if self.probes == 0 {
            return bad("probes must be ≥ 1".into());
        }
        if self.steps < 2 {
            return bad(format!("steps must be ≥ 2, got {}", self.steps));
        }
        if !(self.sigma > 0.0 && self.sigma <= 0.5) {
            return bad(format!("sigma must be in (0, 0.5], got {}", self.sigma));
        }
        // In f64: a tiny σ must not overflow the count.
        let need = (1.0 / self.sigma).ceil() + 13.0;
        if (self.points as f64) < need {
            return bad(format!(
                "points must be ≥ 1/sigma + 13 = {need} (a grid spacing ≤ σ), got {}",
                self.points
            ));
        }
        if self.max_basis_mib == 0 {
            return bad("max_basis_mib must be ≥ 1".into());
        }
        Ok(())
    }
}

/// The Lanczos steps m ≤ `steps` whose device basis, (m + 1)·P f32 values,
/// fits in `max_basis_mib`; an error when not even two steps fit.
pub fn steps_within(p: usize, steps: usize, max_basis_mib: usize) -> Result<usize> {
    let bytes = max_basis_mib as f64 * 1024.0 * 1024.0;
    let rows = (bytes / (4.0 * p.max(1) as f64)).floor();
    let fit = if rows >= 1.0 { rows as usize - 1 } else { 0 };
    if fit < 2 {
        return Err(Error::Config(format!(
            "measure.slq.max_basis_mib = {max_basis_mib} holds fewer than 3 vectors of P = {p} \
             parameters ({:.1} MiB each); raise it",
            4.0 * p as f64 / (1024.0 * 1024.0)
        )));
    }
    Ok(steps.min(fit))
}

/// A spectral density estimate.
#[derive(Clone, Debug, PartialEq)]
pub struct Density {
    /// Grid points t (ascending).
    pub grid: Vec<f64>,
    /// ρ(t) on the grid.
    pub density: Vec<f64>,
    /// Absolute Gaussian broadening σ.
    pub sigma: f64,
    /// Quadrature nodes θ_{v,k} of each probe.
    pub nodes: Vec<Vec<f64>>,
    /// Quadrature weights τ_{v,k} of each probe (each sums to 1).
    pub weights: Vec<Vec<f64>>,
    /// Lanczos steps per probe used (m, after the memory cap).
    pub steps: usize,
    /// Operator products spent.
    pub products: usize,
    /// Seconds spent.
    pub wall_s: f64,
}

impl Density {
    /// The quadrature's k-th moment (1/n_v) Σ_v Σ_k τ_{v,k} θ_{v,k}^j, without
    /// broadening: j = 1 estimates tr A / P, j = 2 estimates ‖A‖_F² / P.
    pub fn moment(&self, j: i32) -> f64 {
        let n = self.nodes.len() as f64;
        self.nodes
            .iter()
            .zip(&self.weights)
            .map(|(th, w)| th.iter().zip(w).map(|(t, w)| w * t.powi(j)).sum::<f64>())
            .sum::<f64>()
            / n
    }
}

/// ρ on the grid from per-probe quadrature rules (see the module docs):
/// returns `(grid, density, σ)`.
pub fn broaden(
    nodes: &[Vec<f64>],
    weights: &[Vec<f64>],
    sigma_rel: f64,
    points: usize,
) -> (Vec<f64>, Vec<f64>, f64) {
    let all = || nodes.iter().flatten().copied();
    let lo = all().fold(f64::INFINITY, f64::min);
    let hi = all().fold(f64::NEG_INFINITY, f64::max);
    // a single node (a multiple of the identity): broaden relative to its size
    let spread = if hi > lo {
        hi - lo
    } else {
        hi.abs().max(f64::MIN_POSITIVE)
    };
    let sigma = sigma_rel * spread;
    let (a, b) = (lo - 6.0 * sigma, hi + 6.0 * sigma);
    let h = (b - a) / (points - 1) as f64;
    let grid: Vec<f64> = (0..points).map(|i| a + h * i as f64).collect();
    let norm = 1.0 / (nodes.len() as f64 * sigma * (2.0 * std::f64::consts::PI).sqrt());
    let density = grid
        .iter()
        .map(|&t| {
            nodes
                .iter()
                .zip(weights)
                .flat_map(|(th, w)| th.iter().zip(w))
                .map(|(th, w)| w * (-0.5 * ((t - th) / sigma).powi(2)).exp())
                .sum::<f64>()
                * norm
        })
        .collect();
    (grid, density, sigma)
}

/// ∫ f(t) ρ(t) dt on the grid by the trapezoid rule.
pub fn integrate(grid: &[f64], density: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    grid.windows(2)
        .zip(density.windows(2))
        .map(|(t, r)| 0.5 * (t[1] - t[0]) * (f(t[0]) * r[0] + f(t[1]) * r[1]))
        .sum()
}

/// SLQ on an operator of flat device vectors of length `p` (symmetric, e.g.
/// [`HessianOperator::apply_flat`]); the probes are drawn from `rng`.
pub async fn slq(
    mut op: impl FnMut(&Tensor<1>) -> Tensor<1>,
    p: usize,
    cfg: &DensityConfig,
    rng: &mut Rng,
    device: &Device,
) -> Result<Density> {
    cfg.validate()?;
    let t0 = Instant::now();
    let m = steps_within(p, cfg.steps, cfg.max_basis_mib)?;
    let (mut nodes, mut weights, mut products) = (Vec::new(), Vec::new(), 0);
    for _ in 0..cfg.probes {
        let z: Vec<f64> = cfg.probe.draw(p, rng).into_iter().map(f64::from).collect();
        let mut l = Lanczos::with_basis(DeviceBasis::with_limit(&z, device, m + 1));
        while l.steps() < m && !l.is_exhausted() {
            l.feed(op(l.query())).await?;
        }
        products += l.steps();
        let (th, w) = l.quadrature();
        nodes.push(th);
        weights.push(w);
    }
    let (grid, density, sigma) = broaden(&nodes, &weights, cfg.sigma, cfg.points);
    Ok(Density {
        grid,
        density,
        sigma,
        nodes,
        weights,
        steps: m,
        products,
        wall_s: t0.elapsed().as_secs_f64(),
    })
}

/// The spectral density of ∇²ℓ_S(θ) by [`slq`] on Hessian-vector products
/// (finite differences and BatchNorm mode as `solver` says).
pub async fn hessian_density(
    model: &Model,
    sample: &Sample,
    loss: &LossConfig,
    solver: &SharpnessConfig,
    cfg: &DensityConfig,
    rng: &mut Rng,
) -> Result<Density> {
    let mut op = HessianOperator::new(model, solver.bn_mode, sample, loss, &solver.hvp).await?;
    let p = model.arch.num_params();
    slq(|v| op.apply_flat(v), p, cfg, rng, &model.device()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Block;
    use burn::tensor::TensorData;

    fn diagonal_op(d: &[f64]) -> impl FnMut(&Tensor<1>) -> Tensor<1> {
        let n = d.len();
        let dt = Tensor::<1>::from_data(
            TensorData::new(d.iter().map(|&x| x as f32).collect::<Vec<_>>(), [n]),
            &Device::flex(),
        );
        move |v: &Tensor<1>| v.clone() * dt.clone()
    }

    /// Broadening alone: the grid integrates ρ to 1 and gives the nodes'
    /// mean and (mean square + σ²) without renormalising.
    #[test]
    fn broadened_rule_integrates_to_one_with_exact_moments() {
        let nodes = vec![vec![5.0, 1.0, -0.5], vec![4.0, 0.0]];
        let weights = vec![vec![0.2, 0.5, 0.3], vec![0.6, 0.4]];
        for (sigma, points) in [(0.01, 113), (0.01, 256), (0.05, 40), (0.2, 18)] {
            let (g, r, s) = broaden(&nodes, &weights, sigma, points);
            assert_eq!((g.len(), r.len()), (points, points));
            assert!((s - sigma * 5.5).abs() < 1e-12);
            let m0 = integrate(&g, &r, |_| 1.0);
            let m1 = integrate(&g, &r, |t| t);
            let m2 = integrate(&g, &r, |t| t * t);
            let e1 = 0.5 * (0.2 * 5.0 + 0.5 - 0.15) + 0.5 * (0.6 * 4.0);
            let e2 = 0.5 * (0.2 * 25.0 + 0.5 + 0.3 * 0.25) + 0.5 * (0.6 * 16.0) + s * s;
            println!("σ_rel {sigma} points {points}: ∫ρ−1 = {:.1e}", m0 - 1.0);
            assert!((m0 - 1.0).abs() < 1e-7, "∫ρ = {m0}");
            assert!((m1 - e1).abs() < 1e-7, "∫tρ = {m1} vs {e1}");
            assert!((m2 - e2).abs() < 1e-6, "∫t²ρ = {m2} vs {e2}");
        }
    }

    /// With m = n steps on an n×n matrix the quadrature of one probe is the
    /// probe's exact spectral measure: nodes are the eigenvalues and the
    /// weights (vᵀe_i)², so every moment is exact.
    #[test]
    fn full_krylov_space_gives_exact_spectral_measure() {
        let d: Vec<f64> = (0..12).map(|i| (i as f64 - 3.0) * 0.75).collect();
        let cfg = DensityConfig {
            probes: 3,
            steps: 12,
            ..Default::default()
        };
        let r = slq(diagonal_op(&d), 12, &cfg, &mut Rng::new(1), &Device::flex())
            .block()
            .unwrap();
        let trace_over_p = d.iter().sum::<f64>() / 12.0;
        let fro_over_p = d.iter().map(|x| x * x).sum::<f64>() / 12.0;
        // Rademacher probes on a diagonal matrix: vᵀAv = tr A / P exactly, and ‖Av‖² = ‖A‖_F²/P
        assert!((r.moment(1) - trace_over_p).abs() < 1e-5, "{}", r.moment(1));
        assert!((r.moment(2) - fro_over_p).abs() < 1e-4, "{}", r.moment(2));
        for (th, w) in r.nodes.iter().zip(&r.weights) {
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-6);
            for (t, wk) in th.iter().zip(w) {
                let near = d
                    .iter()
                    .map(|x| (x - t).abs())
                    .fold(f64::INFINITY, f64::min);
                assert!(near < 1e-4, "node {t}");
                assert!((wk - 1.0 / 12.0).abs() < 1e-4, "weight {wk}");
            }
        }
        assert!(r.products <= 3 * 12);
    }

    #[test]
    fn basis_memory_caps_the_steps() {
        // 1 MiB holds 262144 f32: for P = 65536, 4 rows → at most 3 steps
        assert_eq!(steps_within(65536, 40, 1).unwrap(), 3);
        assert_eq!(steps_within(100, 40, 1).unwrap(), 40);
        let e = steps_within(200_000, 40, 1).unwrap_err().to_string();
        assert!(
            e.contains("measure.slq.max_basis_mib = 1 holds fewer than 3 vectors"),
            "{e}"
        );
        let cfg = DensityConfig {
            steps: 10,
            max_basis_mib: 1,
            ..Default::default()
        };
        let d: Vec<f64> = (0..65536).map(|i| (i % 7) as f64).collect();
        let r = slq(
            diagonal_op(&d),
            d.len(),
            &cfg,
            &mut Rng::new(2),
            &Device::flex(),
        )
        .block()
        .unwrap();
        assert_eq!(r.steps, 3);
        assert_eq!(r.products, 4 * 3);
    }

    #[test]
    fn settings_are_checked() {
        assert!(DensityConfig::default().validate().is_ok());
        for (cfg, want) in [
            (
                DensityConfig {
                    probes: 0,
                    ..Default::default()
                },
                "probes must be ≥ 1",
            ),
            (
                DensityConfig {
                    steps: 1,
                    ..Default::default()
                },
                "steps must be ≥ 2",
            ),
            (
                DensityConfig {
                    sigma: 0.0,
                    ..Default::default()
                },
                "sigma must be in (0, 0.5]",
            ),
            (
                DensityConfig {
                    points: 100,
                    ..Default::default()
                },
                "points must be ≥ 1/sigma + 13 = 113",
            ),
        ] {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
