//! The results schema (SPEC "Interfaces"): one [`MetricsRow`] per measurement,
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

/// One measurement during a run: one line of `metrics.jsonl`.
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
