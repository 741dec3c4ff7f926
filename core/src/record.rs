//! The results schema (docs/measurements.md "Interfaces"): one [`MetricsRow`] per measurement,
//! written as one JSON line of `metrics.jsonl`. One definition serves the CLI
//! and the browser.
//!
//! Fields that were not measured at a row are `null`. A NaN or infinite value
//! (a diverged loss) is also written as `null`, with `diverged: true`.

use serde::{Deserialize, Serialize};

/// Summary of per-example Jacobian spectral norms over the measurement subset.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct NormStats {
    /// max_i ‖J_i‖₂
    pub max: f64,
    /// mean_i ‖J_i‖₂
    pub mean: f64,
    /// Quantile 0.5 (linear interpolation between order statistics).
    pub q50: f64,
    /// Quantile 0.9.
    pub q90: f64,
    /// Quantile 0.99.
    pub q99: f64,
    /// Index (in the measurement subset) of the maximising example.
    pub argmax: usize,
}

impl NormStats {
    /// Summarise a list of per-example norms (must be non-empty).
    pub fn from_norms(norms: &[f64]) -> NormStats {
        assert!(!norms.is_empty(), "NormStats of an empty list");
        let mut sorted = norms.to_vec();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let (argmax, max) =
            norms
                .iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| {
                    if v > bv {
                        (i, v)
                    } else {
                        (bi, bv)
                    }
                });
        NormStats {
            max,
            mean: norms.iter().sum::<f64>() / norms.len() as f64,
            q50: quantile(&sorted, 0.5),
            q90: quantile(&sorted, 0.9),
            q99: quantile(&sorted, 0.99),
            argmax,
        }
    }
}

/// Quantile `q` of sorted values, linear interpolation (NumPy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Values by name, in a fixed order (θ order for parameter blocks), written
/// as one JSON object `{"name": value, …}` in that order. A non-finite value
/// is written as `null` and read back as NaN.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ByName(pub Vec<(String, f64)>);

impl ByName {
    /// The value for `name`, if present.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

impl Serialize for ByName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, &v.is_finite().then_some(*v))?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for ByName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ByName, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ByName;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of numbers by name")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<ByName, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Option<f64>>()? {
                    out.push((k, v.unwrap_or(f64::NAN)));
                }
                Ok(ByName(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// One measurement during a run: one line of `metrics.jsonl`.
///
/// The spectrum extras (`trace` … `spectrum_wall_s`, `docs/measurements.md`)
/// are measured only when switched on, at every `measure.spectrum_every`-th
/// measurement; otherwise they are absent from the line (not `null`), so
/// rows without them read and write exactly as before.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MetricsRow {
    /// Optimiser steps taken before this measurement.
    pub step: u64,
    /// Epochs (passes over the training set) taken, fractional for SGD.
    pub epoch: f64,
    /// Learning rate η in force.
    pub lr: f64,
    /// 2/η, the edge-of-stability reference for GD.
    pub two_over_lr: f64,

    /// Training loss ℓ_S: mean c(f(x_i), t_i) over the measurement subset (eval mode).
    pub train_loss: Option<f64>,
    /// Training loss with the target entropy subtracted (KL form; equals train_loss for square loss).
    pub train_loss_kl: Option<f64>,
    /// Training accuracy on the measurement subset.
    pub train_acc: Option<f64>,
    /// Test loss over the whole test set.
    pub test_loss: Option<f64>,
    /// Test loss, KL form.
    pub test_loss_kl: Option<f64>,
    /// Test accuracy.
    pub test_acc: Option<f64>,
    /// |train_loss − test_loss|.
    pub gen_gap: Option<f64>,
    /// |train_acc − test_acc|.
    pub acc_gap: Option<f64>,

    /// λ_max of the Hessian of ℓ_S (largest algebraic eigenvalue).
    pub sharpness: Option<f64>,
    /// ‖Hu − λu‖ for the top eigenpair.
    pub sharpness_residual: Option<f64>,
    /// Top-k Hessian eigenvalues, descending.
    pub eigenvalues: Vec<f64>,
    /// Residual of each of the top-k eigenpairs.
    pub residuals: Vec<f64>,
    /// Hessian-vector products spent on this estimate.
    pub hvps: Option<usize>,
    /// Wall time of the sharpness estimate in seconds.
    pub sharpness_wall_s: Option<f64>,

    /// λ_max of the Gauss–Newton matrix.
    pub gn_sharpness: Option<f64>,
    /// Residual of the Gauss–Newton top eigenpair.
    pub gn_residual: Option<f64>,
    /// Gauss–Newton-vector products spent.
    pub gn_gvps: Option<usize>,

    /// max_i ‖∂softmax(f(x_i))/∂x‖₂
    pub jac_softmax_max: Option<f64>,
    /// mean_i of the same.
    pub jac_softmax_mean: Option<f64>,
    pub jac_softmax_q50: Option<f64>,
    pub jac_softmax_q90: Option<f64>,
    pub jac_softmax_q99: Option<f64>,
    pub jac_softmax_argmax: Option<usize>,
    /// max_i ‖∂f(x_i)/∂x‖₂ (logits)
    pub jac_logit_max: Option<f64>,
    pub jac_logit_mean: Option<f64>,
    pub jac_logit_q50: Option<f64>,
    pub jac_logit_q90: Option<f64>,
    pub jac_logit_q99: Option<f64>,
    pub jac_logit_argmax: Option<usize>,

    /// Theorem 5.1 data bound B (computable part, without V): a lower bound on
    /// max_i ‖J_i‖₂ of the Jacobian the loss is applied to.
    pub bound_b: Option<f64>,
    /// ℓ = sqrt(max_i c_i / a) used in B.
    pub bound_ell: Option<f64>,

    /// tr ∇²ℓ_S by Hutch++.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<f64>,
    /// Standard error of `trace` (the deflated Hutchinson part's sd / √n).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_se: Option<f64>,
    /// Hessian-vector products spent on `trace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_products: Option<usize>,

    /// Grid of the spectral density (ascending eigenvalue axis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub density_grid: Option<Vec<f64>>,
    /// Spectral density ρ on `density_grid` (integrates to 1 on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub density: Option<Vec<f64>>,
    /// Absolute Gaussian broadening σ of `density`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub density_sigma: Option<f64>,
    /// Lanczos steps m per probe used for `density` (after the memory cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub density_steps: Option<usize>,
    /// Hessian-vector products spent on `density`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub density_products: Option<usize>,

    /// λ_max of each diagonal Hessian block H_ll, by layer name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_sharpness: Option<ByName>,
    /// λ_max of each diagonal Gauss–Newton block G_ll (eq. 4 term by term).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gn_layer_sharpness: Option<ByName>,
    /// Hessian-vector products spent on `layer_sharpness`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_hvps: Option<usize>,
    /// Gauss–Newton-vector products spent on `gn_layer_sharpness`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_gvps: Option<usize>,

    /// max_i λ_max(∇²_z c(z_i, t_i)) over the measurement subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_curvature_max: Option<f64>,
    /// mean_i of the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_curvature_mean: Option<f64>,
    /// uᵀGu / uᵀHu along the top Hessian eigenvector u.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gn_share: Option<f64>,
    /// uᵀ(H − G)u, eq. 3's second term along u.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residual_curvature: Option<f64>,
    /// ‖u_l‖² of the top Hessian eigenvector in each parameter block (sums to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_eigvec_layer_mass: Option<ByName>,

    /// λ_max of the Hessian of each fold of the measurement subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharpness_folds: Option<Vec<f64>>,
    /// Mean of `sharpness_folds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharpness_fold_mean: Option<f64>,
    /// Sample standard deviation of `sharpness_folds` (denominator K − 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharpness_fold_sd: Option<f64>,
    /// Hessian-vector products spent on the folds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold_hvps: Option<usize>,

    /// Wall time of the spectrum extras in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spectrum_wall_s: Option<f64>,

    /// Size of the measurement subset.
    pub n: usize,
    /// BatchNorm mode of the Hessian ("train", "eval", or "none" for BN-free models).
    pub bn_mode: String,
    /// True on the row that records a divergence (NaN/inf loss); the run ends there.
    pub diverged: bool,
    /// Seconds since the start of the run.
    pub wall_s: f64,
}

impl MetricsRow {
    /// Fill the softmax-Jacobian fields.
    pub fn set_jac_softmax(&mut self, s: &NormStats) {
        self.jac_softmax_max = Some(s.max);
        self.jac_softmax_mean = Some(s.mean);
        self.jac_softmax_q50 = Some(s.q50);
        self.jac_softmax_q90 = Some(s.q90);
        self.jac_softmax_q99 = Some(s.q99);
        self.jac_softmax_argmax = Some(s.argmax);
    }

    /// Fill the logit-Jacobian fields.
    pub fn set_jac_logit(&mut self, s: &NormStats) {
        self.jac_logit_max = Some(s.max);
        self.jac_logit_mean = Some(s.mean);
        self.jac_logit_q50 = Some(s.q50);
        self.jac_logit_q90 = Some(s.q90);
        self.jac_logit_q99 = Some(s.q99);
        self.jac_logit_argmax = Some(s.argmax);
    }

    /// This row as one JSON line (no trailing newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("MetricsRow serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy() {
        // numpy.quantile([3,1,2,5,4], [0.5,0.9,0.99]) = [3.0, 4.6, 4.96]
        let s = NormStats::from_norms(&[3.0, 1.0, 2.0, 5.0, 4.0]);
        assert_eq!(s.q50, 3.0);
        assert!((s.q90 - 4.6).abs() < 1e-12);
        assert!((s.q99 - 4.96).abs() < 1e-12);
        assert_eq!(s.argmax, 3);
        assert_eq!(s.max, 5.0);
        assert_eq!(s.mean, 3.0);
    }

    /// Rows written before the spectrum extras read unchanged, rows without
    /// them write no new keys, and rows with them round-trip (per-layer
    /// objects keep θ order).
    #[test]
    fn spectrum_fields_are_optional_and_round_trip() {
        let plain = MetricsRow {
            step: 3,
            sharpness: Some(2.0),
            ..Default::default()
        };
        let line = plain.to_json_line();
        for key in [
            "trace",
            "density",
            "layer_sharpness",
            "gn_share",
            "sharpness_folds",
        ] {
            assert!(!line.contains(&format!("\"{key}")), "{key} in {line}");
        }
        let back: MetricsRow = serde_json::from_str(&line).unwrap();
        assert_eq!(back, plain);
        let full = MetricsRow {
            trace: Some(12.5),
            trace_se: Some(0.25),
            density_grid: Some(vec![0.0, 1.0]),
            density: Some(vec![0.5, 0.5]),
            layer_sharpness: Some(ByName(vec![
                ("layers.10".into(), 1.0),
                ("layers.2".into(), 2.0),
            ])),
            top_eigvec_layer_mass: Some(ByName(vec![("a".into(), f64::NAN)])),
            sharpness_folds: Some(vec![1.0, 2.0]),
            ..plain
        };
        let line = full.to_json_line();
        assert!(
            line.contains(r#""layer_sharpness":{"layers.10":1.0,"layers.2":2.0}"#),
            "{line}"
        );
        assert!(
            line.contains(r#""top_eigvec_layer_mass":{"a":null}"#),
            "{line}"
        );
        let back: MetricsRow = serde_json::from_str(&line).unwrap();
        assert_eq!(back.layer_sharpness, full.layer_sharpness);
        assert_eq!(back.layer_sharpness.unwrap().get("layers.2"), Some(2.0));
        assert!(back.top_eigvec_layer_mass.unwrap().0[0].1.is_nan());
        assert_eq!(back.density, full.density);
        assert_eq!(back.trace_se, Some(0.25));
    }

    #[test]
    fn nan_serialises_as_null() {
        let row = MetricsRow {
            train_loss: Some(f64::NAN),
            diverged: true,
            ..Default::default()
        };
        let line = row.to_json_line();
        assert!(line.contains("\"train_loss\":null"), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["diverged"], true);
    }
}
