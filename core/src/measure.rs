//! One measurement of everything SPEC defines, on a model at θ: train/test loss
//! and accuracy (eval mode), sharpness (top-k Hessian eigenvalues with
//! residuals), the Gauss–Newton top eigenvalue, exact per-example Jacobian
//! norms, and the Theorem 5.1 data bound. The [`Measurer`] keeps what lasts
//! between measurements of one run: the measurement subset on the device, the
//! minimum inter-class distance, and the warm-start eigenvectors.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::bound::{data_bound, ell, min_interclass_distance, InterclassDistance};
use crate::data::Dataset;
use crate::jacobian::jacobian_spectral_norms;
use crate::loss::LossConfig;
use crate::models::Model;
use crate::objective::{evaluate, Sample};
use crate::record::{MetricsRow, NormStats};
use crate::sharpness::{
    top_gauss_newton_eigenvalues, top_hessian_eigenvalues, Sharpness, SharpnessConfig,
};
use crate::Result;

/// What to measure and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeasureConfig {
    /// Size of the measurement subset: the first min(N, this) training examples.
    pub samples: usize,
    /// Examples per device chunk (bounds memory; the results do not depend on it).
    pub chunk: usize,
    /// Hessian eigenvalues (Lanczos).
    pub sharpness: bool,
    /// Lanczos / finite-difference settings.
    pub solver: SharpnessConfig,
    /// Gauss–Newton top eigenvalue.
    pub gauss_newton: bool,
    /// Exact per-example Jacobian norms.
    pub jacobian: bool,
    /// Theorem 5.1 data bound.
    pub bound: bool,
    /// Warm-start Lanczos from the previous top eigenvector.
    pub warm_start: bool,
}

impl Default for MeasureConfig {
    fn default() -> Self {
        MeasureConfig {
            samples: 5000,
            chunk: 1000,
            sharpness: true,
            solver: SharpnessConfig::default(),
            gauss_newton: true,
            jacobian: true,
            bound: true,
            warm_start: true,
        }
    }
}

/// Measurement state for one run.
pub struct Measurer {
    pub cfg: MeasureConfig,
    pub loss: LossConfig,
    /// The measurement subset S on the device.
    pub train: Sample,
    /// The test set on the device.
    pub test: Option<Sample>,
    /// min_{y_i≠y_j} ‖x_i − x_j‖ over the measurement subset (when the bound is on).
    pub interclass: Option<InterclassDistance>,
    warm_hessian: Option<Vec<f64>>,
    warm_gn: Option<Vec<f64>>,
}

impl Measurer {
    /// Uploads the measurement subset (the first `cfg.samples` examples of
    /// `train`) and `test`, and computes the minimum inter-class distance once.
    pub async fn new(
        train: &Dataset,
        test: Option<&Dataset>,
        loss: &LossConfig,
        cfg: &MeasureConfig,
        device: &Device,
    ) -> Result<Measurer> {
        loss.validate()?;
        let subset = train.first(cfg.samples.max(1));
        let interclass = if cfg.bound {
            Some(min_interclass_distance(&subset, device).await?)
        } else {
            None
        };
        Ok(Measurer {
            cfg: cfg.clone(),
            loss: loss.clone(),
            train: Sample::new(&subset, loss, cfg.chunk, device)?,
            test: test
                .map(|t| Sample::new(t, loss, cfg.chunk, device))
                .transpose()?,
            interclass,
            warm_hessian: None,
            warm_gn: None,
        })
    }

    /// The warm-start vectors (Hessian, Gauss–Newton) kept between measurements.
    pub fn warm_vectors(&self) -> (Option<&[f64]>, Option<&[f64]>) {
        (self.warm_hessian.as_deref(), self.warm_gn.as_deref())
    }

    /// Restores warm-start vectors saved by a checkpoint.
    pub fn set_warm_vectors(&mut self, hessian: Option<Vec<f64>>, gn: Option<Vec<f64>>) {
        self.warm_hessian = hessian;
        self.warm_gn = gn;
    }

    /// Fills `row` with every enabled measurement of `model`.
    ///
    /// If the training loss is not finite, only the loss fields are filled
    /// and `row.diverged` is set.
    pub async fn measure(&mut self, model: &Model, row: &mut MetricsRow) -> Result<()> {
        row.n = self.train.n;
        row.bn_mode = self.cfg.solver.bn_mode.label(&model.arch).into();
        let tr = evaluate(model, &self.train, &self.loss).await?;
        row.train_loss = Some(tr.loss);
        row.train_loss_kl = Some(tr.loss_kl);
        row.train_acc = Some(tr.accuracy);
        if let Some(test) = &self.test {
            let te = evaluate(model, test, &self.loss).await?;
            row.test_loss = Some(te.loss);
            row.test_loss_kl = Some(te.loss_kl);
            row.test_acc = Some(te.accuracy);
            row.gen_gap = Some((tr.loss - te.loss).abs());
            row.acc_gap = Some((tr.accuracy - te.accuracy).abs());
        }
        if !tr.loss.is_finite() || !tr.max_example_loss_kl.is_finite() {
            row.diverged = true;
            return Ok(());
        }
        if self.cfg.sharpness {
            let warm = self
                .cfg
                .warm_start
                .then_some(self.warm_hessian.as_deref())
                .flatten();
            let s = top_hessian_eigenvalues(model, &self.train, &self.loss, &self.cfg.solver, warm)
                .await?;
            self.warm_hessian = s.vectors.first().cloned();
            fill_sharpness(row, &s);
        }
        if self.cfg.gauss_newton {
            let warm = self
                .cfg
                .warm_start
                .then_some(self.warm_gn.as_deref())
                .flatten();
            let mut solver = self.cfg.solver.clone();
            solver.lanczos.k = 1;
            let s =
                top_gauss_newton_eigenvalues(model, &self.train, &self.loss, &solver, warm).await?;
            self.warm_gn = s.vectors.first().cloned();
            row.gn_sharpness = Some(s.top());
            row.gn_residual = Some(s.residuals[0]);
            row.gn_gvps = Some(s.products);
        }
        if self.cfg.jacobian {
            let j = jacobian_spectral_norms(model, &self.train).await?;
            row.set_jac_softmax(&NormStats::from_norms(&j.softmax));
            row.set_jac_logit(&NormStats::from_norms(&j.logit));
        }
        if let Some(ic) = &self.interclass {
            let l = ell(tr.max_example_loss_kl);
            row.bound_ell = Some(l);
            row.bound_b = Some(data_bound(self.loss.target_gap(), l, ic.distance));
        }
        Ok(())
    }
}

fn fill_sharpness(row: &mut MetricsRow, s: &Sharpness) {
    row.sharpness = Some(s.top());
    row.sharpness_residual = Some(s.residuals[0]);
    row.eigenvalues = s.eigenvalues.clone();
    row.residuals = s.residuals.clone();
    row.hvps = Some(s.products);
    row.sharpness_wall_s = Some(s.wall_s);
}
