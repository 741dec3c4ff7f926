//! One measurement of everything docs/measurements.md defines, on a model at θ: train/test loss
//! and accuracy (eval mode), sharpness (top-k Hessian eigenvalues with
//! residuals), the Gauss–Newton top eigenvalue, exact per-example Jacobian
//! norms, and the Theorem 5.1 data bound; and, when switched on, the
//! spectrum extras (`docs/measurements.md`): the Hessian trace
//! ([`crate::trace`]), its spectral density ([`crate::density`]), per-layer
//! curvature ([`crate::layers`]), the Ansatz factors ([`crate::factors`]) and
//! fold sharpness ([`crate::folds`]). The [`Measurer`] keeps what lasts
//! between measurements of one run: the measurement subset (and its folds) on
//! the device, the minimum inter-class distance, and the warm-start
//! eigenvectors.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::bound::{data_bound, ell, min_interclass_distance, InterclassDistance};
use crate::data::Dataset;
use crate::density::{slq, DensityConfig};
use crate::factors::{along, cost_curvature, share_and_residual};
use crate::folds::{fold_sharpness, Folds};
use crate::hvp::{GaussNewtonOperator, HessianOperator};
use crate::jacobian::jacobian_spectral_norms;
use crate::layers::{block_mass, block_top_eigenvalues, blocks};
use crate::loss::LossConfig;
use crate::models::Model;
use crate::objective::{evaluate, Sample};
use crate::record::{ByName, MetricsRow, NormStats};
use crate::rng::Rng;
use crate::sharpness::{
    top_gauss_newton_eigenvalues, top_hessian_eigenvalues, Sharpness, SharpnessConfig, TopK,
    GN_SEED,
};
use crate::trace::{hutchpp, TraceConfig};
use crate::{Error, Result};

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
    /// Number of top Hessian eigenvalues: a count, or `"classes"` for k = C
    /// of the data. When set it replaces `solver.lanczos.k`.
    pub top_k: Option<TopK>,
    /// Measure the spectrum extras below at every N-th measurement of a run
    /// (the first included); everything else is measured every time.
    pub spectrum_every: u64,
    /// Hessian trace by Hutch++ (`trace`, `trace_se`).
    pub trace: bool,
    /// Hessian spectral density by stochastic Lanczos quadrature.
    pub density: bool,
    /// Top eigenvalue of each layer's diagonal Hessian and Gauss–Newton block.
    pub per_layer: bool,
    /// The Ansatz's mediating factors (needs `sharpness`).
    pub factors: bool,
    /// λ_max on `fold_count` disjoint folds of the measurement subset.
    pub folds: bool,
    /// Hutch++ settings.
    pub hutchpp: TraceConfig,
    /// Stochastic Lanczos quadrature settings.
    pub slq: DensityConfig,
    /// Number of folds K.
    pub fold_count: usize,
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
            top_k: None,
            spectrum_every: 1,
            trace: false,
            density: false,
            per_layer: false,
            factors: false,
            folds: false,
            hutchpp: TraceConfig::default(),
            slq: DensityConfig::default(),
            fold_count: 4,
        }
    }
}

impl MeasureConfig {
    /// Checks the spectrum settings (top_k and the extras).
    pub fn validate(&self) -> Result<()> {
        if let Some(k) = self.top_k {
            k.validate()?;
        }
        if self.spectrum_every == 0 {
            return Err(Error::Config("measure.spectrum_every must be ≥ 1".into()));
        }
        if self.trace {
            self.hutchpp.validate()?;
        }
        if self.density {
            self.slq.validate()?;
        }
        if self.folds && self.fold_count < 2 {
            return Err(Error::Config(format!(
                "measure.fold_count must be ≥ 2, got {}",
                self.fold_count
            )));
        }
        if self.factors && !self.sharpness {
            return Err(Error::Config(
                "measure.factors needs measure.sharpness (the top Hessian eigenvector)".into(),
            ));
        }
        Ok(())
    }

    /// True when any spectrum extra is switched on.
    pub fn any_extra(&self) -> bool {
        self.trace || self.density || self.per_layer || self.factors || self.folds
    }
}

/// The random stream of a stochastic estimator at the measurement of `step`:
/// fresh probes at every measurement, the same ones on every backend and
/// after a resume.
fn probe_rng(seed: u64, step: u64, stream: &str) -> Rng {
    Rng::derived(seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15), stream)
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
    /// The folds of the measurement subset (when `folds` is on).
    pub folds: Option<Folds>,
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
        cfg.validate()?;
        let mut cfg = cfg.clone();
        if let Some(k) = cfg.top_k {
            cfg.solver.lanczos.k = k.resolve(train.classes);
        }
        let subset = train.first(cfg.samples.max(1));
        let interclass = if cfg.bound {
            Some(min_interclass_distance(&subset, device).await?)
        } else {
            None
        };
        let folds = if cfg.folds {
            Some(Folds::new(
                &subset,
                loss,
                cfg.fold_count,
                cfg.chunk,
                device,
            )?)
        } else {
            None
        };
        Ok(Measurer {
            train: Sample::new(&subset, loss, cfg.chunk, device)?,
            test: test
                .map(|t| Sample::new(t, loss, cfg.chunk, device))
                .transpose()?,
            cfg,
            loss: loss.clone(),
            interclass,
            folds,
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

    /// Fills `row` with every enabled measurement of `model`, the spectrum
    /// extras included (a single measurement: [`Measurer::measure_at`] 0).
    ///
    /// If the training loss is not finite, only the loss fields are filled
    /// and `row.diverged` is set.
    pub async fn measure(&mut self, model: &Model, row: &mut MetricsRow) -> Result<()> {
        self.measure_at(model, row, 0).await
    }

    /// [`Measurer::measure`] as the `index`-th measurement of a run (0 the
    /// first): the spectrum extras only when `index` is a multiple of
    /// `spectrum_every`.
    pub async fn measure_at(
        &mut self,
        model: &Model,
        row: &mut MetricsRow,
        index: u64,
    ) -> Result<()> {
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
        let (mut top, mut gn_top) = (None, None);
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
            top = s.vectors.into_iter().next();
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
            gn_top = s.vectors.into_iter().next();
        }
        if self.cfg.any_extra() && index.is_multiple_of(self.cfg.spectrum_every) {
            self.spectrum(model, row, top.as_deref(), gn_top.as_deref())
                .await?;
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

impl Measurer {
    /// The spectrum extras that are switched on (see [`MeasureConfig`]),
    /// given this measurement's top Hessian and Gauss–Newton eigenvectors.
    /// One Hessian operator (and one Gauss–Newton operator) serves them all.
    async fn spectrum(
        &self,
        model: &Model,
        row: &mut MetricsRow,
        top: Option<&[f64]>,
        gn_top: Option<&[f64]>,
    ) -> Result<()> {
        let t0 = Instant::now();
        let cfg = &self.cfg;
        let solver = &cfg.solver;
        let (p, device) = (model.arch.num_params(), model.device());
        let (sample, loss) = (&self.train, &self.loss);
        let parts = blocks(&model.arch);
        if cfg.trace || cfg.density || cfg.per_layer || cfg.factors {
            let mut hop =
                HessianOperator::new(model, solver.bn_mode, sample, loss, &solver.hvp).await?;
            let eps = hop.eps;
            let mut h = |v: &Tensor<1>| hop.apply_flat(v);
            if cfg.trace {
                let mut rng = probe_rng(solver.seed, row.step, "trace");
                let t = hutchpp(&mut h, p, &cfg.hutchpp, &mut rng, &device).await?;
                row.trace = Some(t.trace);
                row.trace_se = Some(t.se);
                row.trace_products = Some(t.products);
            }
            if cfg.density {
                let mut rng = probe_rng(solver.seed, row.step, "density");
                let d = slq(&mut h, p, &cfg.slq, &mut rng, &device).await?;
                row.density_grid = Some(d.grid);
                row.density = Some(d.density);
                row.density_sigma = Some(d.sigma);
                row.density_steps = Some(d.steps);
                row.density_products = Some(d.products);
            }
            if cfg.per_layer {
                let r = block_top_eigenvalues(
                    &mut h,
                    eps,
                    &parts,
                    &solver.lanczos,
                    top,
                    solver.seed,
                    &device,
                )
                .await?;
                row.layer_hvps = Some(r.iter().map(|s| s.products).sum());
                row.layer_sharpness = Some(by_block(&parts, &r));
            }
            if cfg.per_layer || cfg.factors {
                let mut gop =
                    GaussNewtonOperator::new(model, solver.bn_mode, sample, loss, &solver.hvp)
                        .await?;
                let gn_eps = gop.eps;
                let mut g = |v: &Tensor<1>| gop.apply_flat(v);
                if cfg.per_layer {
                    let r = block_top_eigenvalues(
                        &mut g,
                        gn_eps,
                        &parts,
                        &solver.lanczos,
                        gn_top.or(top),
                        solver.seed ^ GN_SEED,
                        &device,
                    )
                    .await?;
                    row.layer_gvps = Some(r.iter().map(|s| s.products).sum());
                    row.gn_layer_sharpness = Some(by_block(&parts, &r));
                }
                if cfg.factors {
                    if let Some(u) = top {
                        let (uhu, ugu) = along(&mut h, &mut g, u, &device).await?;
                        let (share, residual) = share_and_residual(uhu, ugu);
                        row.gn_share = Some(share);
                        row.residual_curvature = Some(residual);
                        row.top_eigvec_layer_mass = Some(ByName(block_mass(u, &parts)));
                    }
                }
            }
        }
        if cfg.factors {
            let (max, mean) = cost_curvature(model, sample, loss, solver.bn_mode).await?;
            row.cost_curvature_max = Some(max);
            row.cost_curvature_mean = Some(mean);
        }
        if let Some(folds) = &self.folds {
            let f = fold_sharpness(model, folds, loss, solver, top).await?;
            row.sharpness_fold_mean = Some(f.mean);
            row.sharpness_fold_sd = Some(f.sd);
            row.fold_hvps = Some(f.products);
            row.sharpness_folds = Some(f.values);
        }
        row.spectrum_wall_s = Some(t0.elapsed().as_secs_f64());
        Ok(())
    }
}

fn by_block(parts: &[crate::layers::ParamBlock], r: &[Sharpness]) -> ByName {
    ByName(
        parts
            .iter()
            .zip(r)
            .map(|(b, s)| (b.name.clone(), s.top()))
            .collect(),
    )
}

fn fill_sharpness(row: &mut MetricsRow, s: &Sharpness) {
    row.sharpness = Some(s.top());
    row.sharpness_residual = Some(s.residuals[0]);
    row.eigenvalues = s.eigenvalues.clone();
    row.residuals = s.residuals.clone();
    row.hvps = Some(s.products);
    row.sharpness_wall_s = Some(s.wall_s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spectrum_settings_are_checked() {
        assert!(MeasureConfig::default().validate().is_ok());
        let d = MeasureConfig::default();
        assert!(!d.any_extra(), "the extras are off by default");
        for (cfg, want) in [
            (
                MeasureConfig {
                    spectrum_every: 0,
                    ..d.clone()
                },
                "measure.spectrum_every must be ≥ 1",
            ),
            (
                MeasureConfig {
                    top_k: Some(TopK::Count(0)),
                    ..d.clone()
                },
                "top_k must be a positive integer",
            ),
            (
                MeasureConfig {
                    trace: true,
                    hutchpp: TraceConfig { products: 3 },
                    ..d.clone()
                },
                "measure.hutchpp.products must be ≥ 6",
            ),
            (
                MeasureConfig {
                    density: true,
                    slq: DensityConfig {
                        steps: 1,
                        ..Default::default()
                    },
                    ..d.clone()
                },
                "measure.slq.steps must be ≥ 2",
            ),
            (
                MeasureConfig {
                    folds: true,
                    fold_count: 1,
                    ..d.clone()
                },
                "measure.fold_count must be ≥ 2",
            ),
            (
                MeasureConfig {
                    factors: true,
                    sharpness: false,
                    ..d.clone()
                },
                "measure.factors needs measure.sharpness",
            ),
        ] {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        // TOML / JSON spelling of the settings
        let cfg: MeasureConfig = serde_json::from_str(
            r#"{"top_k": "classes", "spectrum_every": 5, "trace": true, "hutchpp": {"products": 60},
                "density": true, "slq": {"probes": 8, "probe": "gaussian"}, "folds": true}"#,
        )
        .unwrap();
        assert_eq!(cfg.top_k, Some(TopK::Classes));
        assert_eq!(cfg.hutchpp.products, 60);
        assert_eq!((cfg.slq.probes, cfg.slq.steps), (8, 40));
        assert_eq!(cfg.fold_count, 4);
        assert!(cfg.validate().is_ok());
        let e = serde_json::from_str::<MeasureConfig>(r#"{"slq": {"probs": 8}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `probs`"), "{e}");
    }

    #[test]
    fn probe_streams_differ_by_step_and_estimator() {
        let a = probe_rng(1, 0, "trace").next_u64();
        assert_eq!(a, probe_rng(1, 0, "trace").next_u64());
        assert_ne!(a, probe_rng(1, 50, "trace").next_u64());
        assert_ne!(a, probe_rng(1, 0, "density").next_u64());
    }
}
