//! Sharpness: λ_max(∇²_θ ℓ_S(θ)), the largest *algebraic* Hessian eigenvalue
//! (and the top-k on request), and the Gauss–Newton top eigenvalue — Lanczos
//! ([`crate::lanczos`]) on finite-difference products ([`crate::hvp`]).
//!
//! Each estimate records its eigenvalues, a residual ‖Hu − λu‖ per eigenvalue
//! (the error bar: some eigenvalue of the operator lies within it), the number
//! of products and the wall time. During training the solver is warm-started
//! from the previous estimate's top eigenvector.
//!
//! The Lanczos vectors stay on the device ([`crate::lanczos::DeviceBasis`]): each step
//! multiplies a flat f32 tensor by the operator, reorthogonalises there, and
//! reads back only α and β; the Ritz vectors are read once, at the end.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::config::{self, settings};
use crate::hvp::{GaussNewtonOperator, HessianOperator, HvpConfig};
use crate::lanczos::{top_eigenpairs_on_device, LanczosConfig};
use crate::loss::LossConfig;
use crate::models::{BnMode, Model};
use crate::objective::Sample;
use crate::rng::Rng;
use crate::{Error, Result};

settings! {
    /// Settings of a sharpness estimate.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct SharpnessConfig {
        /// Lanczos settings (k, tolerance, step limits).
        pub lanczos: LanczosConfig = LanczosConfig::default(),
        /// Finite-difference settings.
        pub hvp: HvpConfig = HvpConfig::default(),
        /// Seed of the random start vector (cold start).
        pub seed: u64 = 0,
        /// BatchNorm statistics of the loss whose curvature is measured
        /// (train: batch statistics per chunk, the default; eval: running statistics).
        pub bn_mode: BnMode = BnMode::Train,
    }
}

impl SharpnessConfig {
    /// Checks the solver settings: k ≥ 1, the tolerance in (0, 1), 1 ≤
    /// min_steps ≤ max_steps, the finite-difference step in (0, 1).
    pub fn validate(&self) -> Result<()> {
        let l = &self.lanczos;
        config::at_least("measure.solver.lanczos.k", l.k, 1)?;
        config::fraction("measure.solver.lanczos.tol", l.tol)?;
        config::at_least("measure.solver.lanczos.max_steps", l.max_steps, 1)?;
        if l.min_steps > l.max_steps {
            return Err(Error::Config(format!(
                "measure.solver.lanczos.min_steps must be ≤ max_steps ({}), got {}",
                l.max_steps, l.min_steps
            )));
        }
        config::fraction("measure.solver.hvp.eps_rel", self.hvp.eps_rel)
    }
}

/// How many top Hessian eigenvalues to estimate: a count, or one per class.
///
/// The Hessian of a C-class classifier typically has C (or C − 1) outlier
/// eigenvalues above its bulk (Papyan 2019, Sagun et al. 2017), so
/// `"classes"` is the natural k; it is resolved against the data's C
/// ([`TopK::resolve`]). In JSON / TOML: a positive integer or `"classes"`;
/// on a command line the same words ([`std::str::FromStr`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopK {
    /// k eigenvalues (k ≥ 1).
    Count(usize),
    /// k = C, the number of classes of the data.
    Classes,
}

impl TopK {
    /// k for data with `classes` classes (at least 1).
    pub fn resolve(self, classes: usize) -> usize {
        match self {
            TopK::Count(k) => k.max(1),
            TopK::Classes => classes.max(1),
        }
    }

    /// Checks that a count is ≥ 1.
    pub fn validate(self) -> Result<()> {
        match self {
            TopK::Count(0) => Err(Error::Config(
                "top_k must be a positive integer or \"classes\", got 0".into(),
            )),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for TopK {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopK::Count(k) => write!(f, "{k}"),
            TopK::Classes => f.write_str("classes"),
        }
    }
}

impl std::str::FromStr for TopK {
    type Err = Error;
    fn from_str(s: &str) -> Result<TopK> {
        let s = s.trim();
        if s == "classes" {
            return Ok(TopK::Classes);
        }
        match s.parse::<usize>() {
            Ok(k) if k >= 1 => Ok(TopK::Count(k)),
            _ => Err(Error::Config(format!(
                "top_k must be a positive integer or \"classes\", got '{s}'"
            ))),
        }
    }
}

impl Serialize for TopK {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            TopK::Count(k) => s.serialize_u64(*k as u64),
            TopK::Classes => s.serialize_str("classes"),
        }
    }
}

impl<'de> Deserialize<'de> for TopK {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<TopK, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = TopK;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a positive integer or \"classes\"")
            }
            fn visit_u64<E: serde::de::Error>(self, k: u64) -> std::result::Result<TopK, E> {
                match usize::try_from(k) {
                    Ok(k) if k >= 1 => Ok(TopK::Count(k)),
                    _ => Err(E::custom(format!(
                        "top_k must be a positive integer or \"classes\", got {k}"
                    ))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, k: i64) -> std::result::Result<TopK, E> {
                match u64::try_from(k) {
                    Ok(k) => self.visit_u64(k),
                    Err(_) => Err(E::custom(format!(
                        "top_k must be a positive integer or \"classes\", got {k}"
                    ))),
                }
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<TopK, E> {
                s.parse().map_err(|e: Error| E::custom(e.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One eigenvalue estimate.
#[derive(Clone, Debug)]
pub struct Sharpness {
    /// Top-k eigenvalues, descending (algebraic).
    pub eigenvalues: Vec<f64>,
    /// ‖Au − λu‖ per eigenvalue.
    pub residuals: Vec<f64>,
    /// Operator products spent.
    pub products: usize,
    /// Seconds spent.
    pub wall_s: f64,
    /// Whether the tolerance was met.
    pub converged: bool,
    /// Unit eigenvector estimates (flat, PyTorch parameter order), for warm starts.
    pub vectors: Vec<Vec<f64>>,
    /// ε used by the finite differences.
    pub eps: f64,
}

impl Sharpness {
    /// λ_max
    pub fn top(&self) -> f64 {
        self.eigenvalues[0]
    }
}

/// Mixed into the seed of the Gauss–Newton start vector.
pub(crate) const GN_SEED: u64 = 0x9e37;

/// The start vector of a Lanczos run: `warm` when it is usable (length `p`,
/// finite, non-zero), otherwise a random unit vector drawn from `seed`.
fn start_vector(p: usize, warm: Option<&[f64]>, seed: u64) -> Vec<f64> {
    match warm {
        Some(w)
            if w.len() == p && w.iter().all(|x| x.is_finite()) && w.iter().any(|&x| x != 0.0) =>
        {
            w.to_vec()
        }
        _ => Rng::derived(seed, "lanczos").unit_vector(p),
    }
}

/// Lanczos on `op` from the warm or a random start, its vectors on `device`
/// ([`top_eigenpairs_on_device`]): per step one product and one awaited read
/// of three scalars (two when a second reorthogonalisation pass runs).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn estimate(
    op: impl FnMut(&Tensor<1>) -> Tensor<1>,
    eps: f64,
    p: usize,
    cfg: &LanczosConfig,
    warm: Option<&[f64]>,
    seed: u64,
    device: &Device,
    t0: Instant,
) -> Result<Sharpness> {
    let r = top_eigenpairs_on_device(op, &start_vector(p, warm, seed), cfg, device).await?;
    Ok(Sharpness {
        eigenvalues: r.values,
        residuals: r.residuals,
        products: r.steps,
        wall_s: t0.elapsed().as_secs_f64(),
        converged: r.converged,
        vectors: r.vectors,
        eps,
    })
}

/// Top Hessian eigenvalues of ℓ_S at θ = `params`.
pub async fn top_hessian_eigenvalues(
    model: &Model,
    sample: &Sample,
    loss: &LossConfig,
    cfg: &SharpnessConfig,
    warm: Option<&[f64]>,
) -> Result<Sharpness> {
    let t0 = Instant::now();
    let mut op = HessianOperator::new(model, cfg.bn_mode, sample, loss, &cfg.hvp).await?;
    let eps = op.eps;
    estimate(
        |v| op.apply_flat(v),
        eps,
        model.arch.num_params(),
        &cfg.lanczos,
        warm,
        cfg.seed,
        &model.device(),
        t0,
    )
    .await
}

/// Top eigenvalue(s) of the Gauss–Newton matrix of ℓ_S at θ = `params`.
pub async fn top_gauss_newton_eigenvalues(
    model: &Model,
    sample: &Sample,
    loss: &LossConfig,
    cfg: &SharpnessConfig,
    warm: Option<&[f64]>,
) -> Result<Sharpness> {
    let t0 = Instant::now();
    let mut op = GaussNewtonOperator::new(model, cfg.bn_mode, sample, loss, &cfg.hvp).await?;
    let eps = op.eps;
    estimate(
        |v| op.apply_flat(v),
        eps,
        model.arch.num_params(),
        &cfg.lanczos,
        warm,
        cfg.seed ^ GN_SEED,
        &model.device(),
        t0,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_reads_counts_and_classes() {
        assert_eq!("classes".parse::<TopK>().unwrap(), TopK::Classes);
        assert_eq!(" 3 ".parse::<TopK>().unwrap(), TopK::Count(3));
        for bad in ["0", "-1", "class", ""] {
            let e = bad.parse::<TopK>().unwrap_err().to_string();
            assert!(e.contains("positive integer or \"classes\""), "{bad}: {e}");
        }
        assert_eq!(TopK::Classes.resolve(10), 10);
        assert_eq!(TopK::Count(4).resolve(10), 4);
        assert_eq!(
            serde_json::to_string(&TopK::Classes).unwrap(),
            "\"classes\""
        );
        assert_eq!(serde_json::to_string(&TopK::Count(5)).unwrap(), "5");
        let k: TopK = serde_json::from_str("\"classes\"").unwrap();
        assert_eq!(k, TopK::Classes);
        let k: TopK = serde_json::from_str("7").unwrap();
        assert_eq!(k, TopK::Count(7));
        for bad in ["0", "-2", "\"many\"", "1.5"] {
            let e = serde_json::from_str::<TopK>(bad).unwrap_err().to_string();
            assert!(e.contains("positive integer or \"classes\""), "{bad}: {e}");
        }
        assert!(TopK::Count(0).validate().is_err() && TopK::Classes.validate().is_ok());
    }
}
