//! What the browser explainer's mechanism panel shows about a run at its
//! latest measurement, all computed from the run's current θ and measurement
//! subset (nothing here changes the run: no RNG draw, no warm-start vector,
//! no parameter is touched, so the run's rows stay those of the CLI):
//!
//! - the loss along the top Hessian eigenvector with the GD step on it ([`crate::slice`]);
//! - for 2-D inputs, the decision regions over the plane ([`crate::regions`]);
//! - the examples of largest input–output Jacobian norm (of the Jacobian the
//!   Theorem 5.1 bound is about: softmax for cross-entropy, logits for the square loss).

use serde::{Deserialize, Serialize};

use crate::experiment::Run;
use crate::jacobian::jacobian_spectral_norms;
use crate::loss::LossKind;
use crate::regions::{decision_regions, Bounds, Regions};
use crate::slice::{loss_slice, LossSlice, SliceConfig};
use crate::Result;

/// What to compute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MechanismConfig {
    /// The loss slice's grid.
    pub slice: SliceConfig,
    /// Cells per side of the decision-region grid (2-D inputs only; 0 = none).
    pub region_cells: usize,
    /// How many of the largest-Jacobian examples to report (0 = none).
    pub top_jacobian: usize,
}

impl Default for MechanismConfig {
    fn default() -> Self {
        MechanismConfig {
            slice: SliceConfig::default(),
            region_cells: 48,
            top_jacobian: 5,
        }
    }
}

/// One measurement subset example and its Jacobian norm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JacobianExample {
    /// Index in the measurement subset (= in the training set: the subset is its first n).
    pub index: usize,
    pub label: u32,
    /// ‖J_i‖₂ of the bound's Jacobian.
    pub norm: f64,
}

/// The mechanism panel's content at one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mechanism {
    pub step: u64,
    /// `None` before the first sharpness estimate (or with sharpness off).
    pub slice: Option<LossSlice>,
    /// 2-D inputs only.
    pub regions: Option<Regions>,
    /// Largest Jacobian norms first.
    pub top_jacobian: Vec<JacobianExample>,
}

impl Run {
    /// The mechanism panel's content at the current θ. `sharpness`: the
    /// latest row's λ_max, whose eigenvector (kept for the warm start) is the
    /// slice's direction; `bounds`: the plane of the decision regions (2-D
    /// inputs; `None` skips them).
    pub async fn mechanism(
        &self,
        sharpness: Option<f64>,
        bounds: Option<Bounds>,
        cfg: &MechanismConfig,
    ) -> Result<Mechanism> {
        let model = self.model();
        let sample = &self.measurer.train;
        let slice = match (sharpness, self.measurer.warm_vectors().0) {
            (Some(lambda), Some(u)) if lambda.is_finite() => {
                let slice_cfg = SliceConfig {
                    bn_mode: self.cfg.measure.solver.bn_mode,
                    ..cfg.slice.clone()
                };
                Some(
                    loss_slice(
                        model,
                        sample,
                        &self.cfg.loss,
                        u,
                        lambda,
                        self.trainer.lr(),
                        &slice_cfg,
                    )
                    .await?,
                )
            }
            _ => None,
        };
        let regions = match bounds {
            Some(b) if cfg.region_cells > 0 && model.arch.input_len() == 2 => {
                Some(decision_regions(model, b, cfg.region_cells, cfg.region_cells).await?)
            }
            _ => None,
        };
        let top_jacobian = if cfg.top_jacobian > 0 {
            let norms = jacobian_spectral_norms(model, sample).await?;
            let norms = match self.cfg.loss.kind {
                LossKind::CrossEntropy => norms.softmax,
                LossKind::Square => norms.logit,
            };
            let labels: Vec<u32> = sample.chunks.iter().flat_map(|c| c.y.clone()).collect();
            top_examples(&norms, &labels, cfg.top_jacobian)
        } else {
            Vec::new()
        };
        Ok(Mechanism {
            step: self.step(),
            slice,
            regions,
            top_jacobian,
        })
    }
}

/// The `k` largest `norms` (ties: lower index first), with their labels.
pub fn top_examples(norms: &[f64], labels: &[u32], k: usize) -> Vec<JacobianExample> {
    let mut order: Vec<usize> = (0..norms.len()).collect();
    order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|i| JacobianExample {
            index: i,
            label: labels[i],
            norm: norms[i],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::toy::{self, ToyConfig};
    use crate::experiment::{DataConfig, Event, ModelConfig, RunConfig};
    use crate::loss::LossConfig;
    use crate::measure::MeasureConfig;
    use crate::models::Activation;
    use crate::record::MetricsRow;
    use crate::Block;
    use burn::tensor::Device;

    #[test]
    fn top_examples_are_the_largest_norms() {
        let t = top_examples(&[0.5, 2.0, 1.0, 2.0], &[0, 1, 2, 3], 3);
        let idx: Vec<usize> = t.iter().map(|e| e.index).collect();
        assert_eq!(idx, vec![1, 3, 2]);
        assert_eq!(t[1].label, 3);
        assert_eq!(top_examples(&[1.0], &[0], 5).len(), 1);
    }

    /// On a toy run: the slice's θ is the run's θ (its loss is the row's
    /// training loss), the regions cover the plane, the top example is the
    /// row's argmax, and computing all this leaves the run's next rows alone.
    #[test]
    fn mechanism_of_a_toy_run_agrees_with_its_rows_and_changes_nothing() {
        let dev = Device::flex();
        let toy_cfg = ToyConfig {
            n_train: 40,
            n_test: 20,
            classes: 3,
            ..ToyConfig::default()
        };
        let cfg = RunConfig {
            data: DataConfig::Toy(toy_cfg.clone()),
            model: ModelConfig {
                hidden: vec![8],
                activation: Activation::Tanh,
                ..ModelConfig::default()
            },
            loss: LossConfig::default(),
            steps: 6,
            measure_every: 3,
            measure: MeasureConfig {
                samples: 40,
                gauss_newton: false,
                ..MeasureConfig::default()
            },
            ..RunConfig::default()
        };
        let (train, _) = toy::generate(&toy_cfg).unwrap();
        let bounds = Bounds::around(&train, 0.1).unwrap();
        let rows = |with_mechanism: bool| -> Vec<MetricsRow> {
            let mut run = Run::new(&cfg, &dev).block().unwrap();
            let mut rows = Vec::new();
            while let Some(e) = run.next().block().unwrap() {
                if let Event::Row(r) = e {
                    if with_mechanism {
                        let m = run
                            .mechanism(r.sharpness, Some(bounds), &MechanismConfig::default())
                            .block()
                            .unwrap();
                        let s = m.slice.as_ref().unwrap();
                        assert_eq!(m.step, r.step);
                        let l = r.train_loss.unwrap();
                        assert!((s.loss0 - l).abs() < 1e-5 * l, "{} vs {l}", s.loss0);
                        let mid = s.loss[s.t.len() / 2];
                        assert!((mid - s.loss0).abs() < 1e-6 * l, "{mid} vs {}", s.loss0);
                        assert_eq!(s.curvature, r.sharpness.unwrap());
                        let g = m.regions.as_ref().unwrap();
                        assert_eq!(g.class.len(), 48 * 48);
                        assert!(g.class.iter().all(|&k| k < 3));
                        assert_eq!(m.top_jacobian.len(), 5);
                        assert_eq!(Some(m.top_jacobian[0].index), r.jac_softmax_argmax);
                        let jmax = r.jac_softmax_max.unwrap();
                        assert!((m.top_jacobian[0].norm - jmax).abs() < 1e-6 * jmax);
                    }
                    rows.push(r);
                }
            }
            rows
        };
        let plain = rows(false);
        let with = rows(true);
        assert_eq!(plain.len(), 3);
        for (a, b) in plain.iter().zip(&with) {
            assert_eq!(
                (a.train_loss, a.sharpness, a.jac_softmax_max),
                (b.train_loss, b.sharpness, b.jac_softmax_max)
            );
        }
    }
}
