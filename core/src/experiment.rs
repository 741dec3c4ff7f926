//! A whole run: its configuration (one struct, every default named here and
//! written to `config.json`), and the loop that trains and measures every M
//! steps. The loop reports through a callback, never prints, so a CLI progress
//! bar and a browser worker can both drive it.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::data::cifar::{self, CifarKind, CifarOptions};
use crate::data::synthetic::{self, SyntheticConfig};
use crate::data::Dataset;
use crate::loss::{LossConfig, LossKind};
use crate::measure::{MeasureConfig, Measurer};
use crate::models::{Activation, Architecture, Model};
use crate::record::MetricsRow;
use crate::train::{OptimConfig, Trainer};
use crate::{Error, Result};

/// Where the data comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DataConfig {
    /// The synthetic δ-good dataset (embedded; no download).
    Synthetic(SyntheticConfig),
    /// CIFAR-10 / CIFAR-100 binary files in a directory.
    Cifar {
        /// Directory holding `data_batch_*.bin` + `test_batch.bin`, or `train.bin` + `test.bin`.
        dir: PathBuf,
        /// Train on this many examples (class-balanced, file order); all if absent.
        #[serde(default)]
        train_samples: Option<usize>,
        /// Evaluate on at most this many test examples (class-balanced); all if absent.
        #[serde(default)]
        test_samples: Option<usize>,
        /// Input scale s_in (App. C.2).
        #[serde(default = "one")]
        input_scale: f32,
        /// For CIFAR-100: use the 20 coarse labels instead of the 100 fine ones.
        #[serde(default)]
        coarse: bool,
    },
}

fn one() -> f32 {
    1.0
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig::Synthetic(SyntheticConfig::default())
    }
}

impl DataConfig {
    /// Loads (train, test).
    pub fn load(&self) -> Result<(Dataset, Dataset)> {
        match self {
            DataConfig::Synthetic(cfg) => {
                let s = synthetic::generate(cfg)?;
                Ok((s.train, s.test))
            }
            DataConfig::Cifar {
                dir,
                train_samples,
                test_samples,
                input_scale,
                coarse,
            } => {
                let kind = match cifar::detect_kind(dir)? {
                    CifarKind::Cifar100 { .. } => CifarKind::Cifar100 { coarse: *coarse },
                    k => k,
                };
                let (train, test) = cifar::load_dir(
                    dir,
                    &CifarOptions {
                        kind,
                        input_scale: *input_scale,
                    },
                )?;
                let train = match train_samples {
                    Some(n) if *n < train.len() => train.class_balanced(*n)?,
                    _ => train,
                };
                let test = match test_samples {
                    Some(n) if *n < test.len() => test.class_balanced(*n)?,
                    _ => test,
                };
                Ok((train, test))
            }
        }
    }
}

/// Model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    #[default]
    Mlp,
    Cnn,
}

/// Model settings; input size and classes come from the data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// MLP or small CNN.
    pub kind: ModelKind,
    /// MLP hidden widths (depth = its length).
    pub hidden: Vec<usize>,
    /// CNN channels per conv block.
    pub channels: Vec<usize>,
    /// Nonlinearity.
    pub activation: Activation,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: ModelKind::Mlp,
            hidden: vec![256, 256],
            channels: vec![16, 32],
            activation: Activation::Tanh,
        }
    }
}

impl ModelConfig {
    /// The architecture for `data`.
    pub fn architecture(&self, data: &Dataset) -> Result<Architecture> {
        let arch = match self.kind {
            ModelKind::Mlp => Architecture::Mlp {
                input_dim: data.input_len(),
                hidden: self.hidden.clone(),
                classes: data.classes,
                activation: self.activation,
            },
            ModelKind::Cnn => {
                let &[c, h, w] = data.input_shape.as_slice() else {
                    return Err(Error::Shape(format!(
                        "a CNN needs image inputs [c, h, w]; {} has inputs of shape {:?}",
                        data.name, data.input_shape
                    )));
                };
                Architecture::Cnn {
                    in_channels: c,
                    height: h,
                    width: w,
                    channels: self.channels.clone(),
                    classes: data.classes,
                    activation: self.activation,
                }
            }
        };
        arch.validate()?;
        Ok(arch)
    }
}

/// Everything a run needs. Defaults: the progressive-sharpening demo on
/// synthetic data (see the README).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Seed of initial weights, data and minibatch order.
    pub seed: u64,
    /// Compute backend.
    pub backend: BackendKind,
    /// Data source.
    pub data: DataConfig,
    /// Model.
    pub model: ModelConfig,
    /// Loss.
    pub loss: LossConfig,
    /// Optimiser.
    pub optim: OptimConfig,
    /// Optimiser steps.
    pub steps: u64,
    /// Measure every M steps (and at step 0 and the last step).
    pub measure_every: u64,
    /// Measurement settings.
    pub measure: MeasureConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            seed: 0,
            backend: BackendKind::Cpu,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            loss: LossConfig {
                kind: LossKind::Square,
                label_smoothing: 0.0,
                target_scale: 1.0,
            },
            optim: OptimConfig {
                lr: 0.06,
                momentum: 0.0,
                weight_decay: 0.0,
                batch_size: 0,
            },
            steps: 2000,
            measure_every: 50,
            measure: MeasureConfig::default(),
        }
    }
}

impl RunConfig {
    /// Checks settings that can be checked without data.
    pub fn validate(&self) -> Result<()> {
        self.optim.validate()?;
        self.loss.validate()?;
        if self.measure_every == 0 {
            return Err(Error::Config("measure_every must be ≥ 1".into()));
        }
        if self.measure.chunk == 0 || self.measure.samples == 0 {
            return Err(Error::Config(
                "measure.chunk and measure.samples must be ≥ 1".into(),
            ));
        }
        if self.measure.solver.lanczos.k == 0 || self.measure.solver.lanczos.max_steps == 0 {
            return Err(Error::Config(
                "measure.solver.lanczos.k and max_steps must be ≥ 1".into(),
            ));
        }
        if !(self.measure.solver.hvp.eps_rel > 0.0 && self.measure.solver.hvp.eps_rel < 1.0) {
            return Err(Error::Config(
                "measure.solver.hvp.eps_rel must be in (0, 1)".into(),
            ));
        }
        Ok(())
    }
}

/// Progress reported by [`run`].
pub enum Event<'a> {
    /// Set up: parameter count and data sizes.
    Started {
        params: usize,
        train: usize,
        test: usize,
        measure_n: usize,
    },
    /// An optimiser step finished.
    Step { step: u64, loss: f64 },
    /// A measurement row (also the final `diverged` row).
    Row(&'a MetricsRow),
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub rows: usize,
    pub steps: u64,
    pub diverged: bool,
    pub model: Model,
}

/// Trains and measures as `cfg` says, reporting through `on`.
pub fn run(cfg: &RunConfig, device: &Device, mut on: impl FnMut(Event)) -> Result<RunSummary> {
    cfg.validate()?;
    let t0 = Instant::now();
    let (train, test) = cfg.data.load()?;
    let arch = cfg.model.architecture(&train)?;
    let model = Model::init(&arch, cfg.seed, device)?;
    let mut measurer = Measurer::new(&train, Some(&test), &cfg.loss, &cfg.measure, device)?;
    let mut trainer = Trainer::new(
        model,
        &train,
        cfg.loss.clone(),
        cfg.optim.clone(),
        cfg.measure.chunk,
        cfg.seed,
    )?;
    on(Event::Started {
        params: arch.num_params(),
        train: train.len(),
        test: test.len(),
        measure_n: measurer.train.n,
    });
    let mut rows = 0;
    let measure_n = measurer.train.n;
    let base_row = |trainer: &Trainer| MetricsRow {
        step: trainer.step,
        epoch: trainer.epoch(),
        lr: cfg.optim.lr,
        two_over_lr: 2.0 / cfg.optim.lr,
        bn_mode: "none".into(),
        n: measure_n,
        ..Default::default()
    };
    loop {
        let step = trainer.step;
        if step % cfg.measure_every == 0 || step == cfg.steps {
            let mut row = base_row(&trainer);
            measurer.measure(&trainer.model, &mut row);
            row.wall_s = t0.elapsed().as_secs_f64();
            on(Event::Row(&row));
            rows += 1;
            if row.diverged {
                return Ok(RunSummary {
                    rows,
                    steps: step,
                    diverged: true,
                    model: trainer.model,
                });
            }
        }
        if step >= cfg.steps {
            return Ok(RunSummary {
                rows,
                steps: step,
                diverged: false,
                model: trainer.model,
            });
        }
        let m = trainer.step();
        on(Event::Step {
            step: trainer.step,
            loss: m.loss,
        });
        if !m.loss.is_finite() {
            let mut row = base_row(&trainer);
            row.train_loss = Some(m.loss);
            row.diverged = true;
            row.wall_s = t0.elapsed().as_secs_f64();
            on(Event::Row(&row));
            return Ok(RunSummary {
                rows: rows + 1,
                steps: trainer.step,
                diverged: true,
                model: trainer.model,
            });
        }
    }
}
