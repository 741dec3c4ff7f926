//! Random probe vectors for the stochastic estimators (Hutch++ trace,
//! stochastic Lanczos quadrature), drawn on the host from curvlab's seeded
//! [`Rng`] so that a seed gives the same probes on every backend and on wasm,
//! then uploaded as one flat f32 device vector.
//!
//! For a symmetric A and a probe z with independent entries of mean 0 and
//! variance 1, E[zᵀAz] = tr A (Hutchinson). The variance is
//! 2(‖A‖_F² − Σ_i A_ii²) for Rademacher entries (±1) and 2‖A‖_F² for
//! Gaussian ones, so Rademacher probes are never worse.

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// The distribution of a probe's entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// ±1 with probability ½ each.
    #[default]
    Rademacher,
    /// Standard normal N(0, 1).
    Gaussian,
}

impl Probe {
    /// `p` independent entries drawn from `rng`.
    ///
    /// Rademacher signs take one bit each of successive 64-bit draws.
    pub fn draw(self, p: usize, rng: &mut Rng) -> Vec<f32> {
        match self {
            Probe::Rademacher => {
                let mut v = Vec::with_capacity(p);
                while v.len() < p {
                    let bits = rng.next_u64();
                    let take = (p - v.len()).min(64);
                    v.extend((0..take).map(|b| if bits >> b & 1 == 1 { 1.0 } else { -1.0 }));
                }
                v
            }
            Probe::Gaussian => (0..p).map(|_| rng.normal() as f32).collect(),
        }
    }

    /// [`Probe::draw`] uploaded to `device` as a flat `[p]` tensor.
    pub fn draw_on(self, p: usize, rng: &mut Rng, device: &Device) -> Tensor<1> {
        Tensor::from_data(TensorData::new(self.draw(p, rng), [p]), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_have_unit_variance_and_are_seeded() {
        let n = 100_003;
        let r = Probe::Rademacher.draw(n, &mut Rng::new(4));
        assert!(r.iter().all(|&x| x == 1.0 || x == -1.0));
        let mean = r.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "Rademacher mean {mean}");
        assert_eq!(r, Probe::Rademacher.draw(n, &mut Rng::new(4)));
        assert_ne!(r, Probe::Rademacher.draw(n, &mut Rng::new(5)));
        let g = Probe::Gaussian.draw(n, &mut Rng::new(4));
        let m2 = g.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / n as f64;
        assert!((m2 - 1.0).abs() < 0.02, "Gaussian second moment {m2}");
        assert_eq!(
            serde_json::to_string(&Probe::Gaussian).unwrap(),
            "\"gaussian\""
        );
    }
}
