//! Losses c(z, t) (docs/measurements.md "Losses").
//!
//! - cross-entropy c(z, t) = −Σ_k t_k log softmax(z)_k; the "KL form"
//!   c − H(t) = KL(t ‖ softmax(z)) is reported beside it (zero at a perfect fit);
//! - square loss c(z, t) = ½‖z − s_out·t‖² (its KL form is itself).
//!
//! Targets t are one-hot or label-smoothed: t = (1 − α)·onehot(y) + α/C.

use burn::tensor::{activation, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Softmax cross-entropy.
    #[default]
    CrossEntropy,
    /// Half squared error on the logits.
    Square,
}

impl std::str::FromStr for LossKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ce" | "cross-entropy" | "crossentropy" | "cross_entropy" => Ok(LossKind::CrossEntropy),
            "mse" | "square" => Ok(LossKind::Square),
            o => Err(Error::Config(format!(
                "unknown loss '{o}' (expected ce or square)"
            ))),
        }
    }
}

/// The loss and its targets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LossConfig {
    /// Cross-entropy or square loss.
    pub kind: LossKind,
    /// Label smoothing α ∈ [0, 1).
    pub label_smoothing: f64,
    /// Output/target scale s_out of the square loss (App. C.2); unused by cross-entropy.
    pub target_scale: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            kind: LossKind::CrossEntropy,
            label_smoothing: 0.0,
            target_scale: 1.0,
        }
    }
}

impl LossConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(Error::Config(format!(
                "label smoothing must be in [0, 1), got {}",
                self.label_smoothing
            )));
        }
        if !self.target_scale.is_finite() || self.target_scale <= 0.0 {
            return Err(Error::Config(format!(
                "target scale must be positive, got {}",
                self.target_scale
            )));
        }
        Ok(())
    }

    /// Target row t for label `y` of `classes`.
    pub fn target(&self, y: u32, classes: usize) -> Vec<f32> {
        let a = self.label_smoothing;
        (0..classes)
            .map(|k| ((1.0 - a) * f64::from(u8::from(k == y as usize)) + a / classes as f64) as f32)
            .collect()
    }

    /// Targets for labels, `[n, C]` row-major.
    pub fn targets(&self, labels: &[u32], classes: usize) -> Vec<f32> {
        labels
            .iter()
            .flat_map(|&y| self.target(y, classes))
            .collect()
    }

    /// The constant subtracted to get the KL form: H(t) for cross-entropy, 0 for square loss.
    pub fn entropy_offset(&self, target: &[f32]) -> f64 {
        match self.kind {
            LossKind::Square => 0.0,
            LossKind::CrossEntropy => target
                .iter()
                .filter(|&&t| t > 0.0)
                .map(|&t| -(t as f64) * (t as f64).ln())
                .sum(),
        }
    }

    /// ‖t_i − t_j‖₂ for y_i ≠ y_j, in the space the loss compares to (s_out·t for the square loss).
    pub fn target_gap(&self) -> f64 {
        let scale = match self.kind {
            LossKind::CrossEntropy => 1.0,
            LossKind::Square => self.target_scale,
        };
        scale * (1.0 - self.label_smoothing) * std::f64::consts::SQRT_2
    }

    /// Per-example loss c(z_i, t_i), `[B]`, for logits `[B, C]` and targets `[B, C]`.
    pub fn per_example(&self, logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
        match self.kind {
            LossKind::CrossEntropy => {
                let logp = activation::log_softmax(logits, 1);
                (logp * targets).sum_dim(1).neg().squeeze_dim(1)
            }
            LossKind::Square => {
                let diff = logits - targets.mul_scalar(self.target_scale);
                diff.square().sum_dim(1).mul_scalar(0.5).squeeze_dim(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn cross_entropy_by_hand() {
        let dev = Device::flex();
        let cfg = LossConfig {
            label_smoothing: 0.1,
            ..Default::default()
        };
        let t = cfg.targets(&[0], 2);
        assert!((t[0] - 0.95).abs() < 1e-7 && (t[1] - 0.05).abs() < 1e-7);
        let z = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, -1.0], [1, 2]), &dev);
        let tt = Tensor::<2>::from_data(TensorData::new(t.clone(), [1, 2]), &dev);
        let c = crate::backend::tensor_to_vec(&cfg.per_example(z, tt))[0] as f64;
        // log softmax = [-ln(1+e^-2), -2 - ln(1+e^-2)]
        let l0 = -(1.0 + (-2.0f64).exp()).ln();
        let expect = -(0.95 * l0 + 0.05 * (l0 - 2.0));
        assert!((c - expect).abs() < 1e-6, "{c} vs {expect}");
        let h = cfg.entropy_offset(&t);
        assert!((h - (-(0.95f64 * 0.95f64.ln()) - 0.05 * 0.05f64.ln())).abs() < 1e-6);
        assert!((cfg.target_gap() - 0.9 * 2f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn square_loss_by_hand() {
        let dev = Device::flex();
        let cfg = LossConfig {
            kind: LossKind::Square,
            label_smoothing: 0.0,
            target_scale: 2.0,
        };
        let z = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 1.0], [1, 2]), &dev);
        let t = Tensor::<2>::from_data(TensorData::new(cfg.targets(&[1], 2), [1, 2]), &dev);
        // ½((1-0)² + (1-2)²) = 1
        assert_eq!(
            crate::backend::tensor_to_vec(&cfg.per_example(z, t)),
            vec![1.0]
        );
        assert!(LossConfig {
            label_smoothing: 1.0,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
