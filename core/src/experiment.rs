//! A whole run: its configuration (one struct, every default named here and
//! written to `config.json`), and the loop that trains and measures every M
//! steps. The loop reports through a callback, never prints, so a CLI progress
//! bar and a browser worker can both drive it.

use std::collections::VecDeque;
use std::path::PathBuf;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::augment::{pixel_zero_fill, AugmentConfig};
use crate::backend::BackendKind;
use crate::config::{self, settings};
use crate::data::cifar::{self, CifarKind, CifarOptions};
use crate::data::synthetic::{self, SyntheticConfig};
use crate::data::toy::{self, ToyConfig};
use crate::data::Dataset;
use crate::loss::{LossConfig, LossKind};
use crate::measure::{MeasureConfig, Measurer};
pub use crate::models::ModelKind;
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
    /// A 2-D toy set (spirals or rings), the browser explainer's smallest data.
    Toy(ToyConfig),
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

/// The class-balanced subset of `n` training examples of `set` (all of it
/// when `n` is absent or equal to its size); more than the set holds is an
/// error, never silently all of them.
fn subset(set: Dataset, n: Option<usize>, path: &str, dir: &std::path::Path) -> Result<Dataset> {
    match n {
        Some(n) if n > set.len() => Err(too_many(n, set.len(), path, dir)),
        Some(n) if n < set.len() => set.class_balanced(n),
        _ => Ok(set),
    }
}

fn too_many(n: usize, have: usize, path: &str, dir: &std::path::Path) -> Error {
    Error::Config(format!(
        "{path} = {n}, but {} holds only {have} training examples",
        dir.display()
    ))
}

/// A run's data before it is read ([`DataConfig::shape`]).
#[derive(Clone, Debug, PartialEq)]
pub struct DataShape {
    /// Shape of one input: `[d]` or `[c, h, w]`.
    pub input_shape: Vec<usize>,
    /// Number of classes C.
    pub classes: usize,
    /// Training examples N (after `train_samples`).
    pub n_train: usize,
    /// Test examples (after `test_samples`).
    pub n_test: usize,
    /// The data's name (for messages).
    pub name: String,
}

impl DataShape {
    /// Values of one input, d.
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// A dataset of no examples of this shape (to size a model with).
    pub fn empty(&self) -> Dataset {
        Dataset::empty(self.input_shape.clone(), self.classes, self.name.clone())
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig::Synthetic(SyntheticConfig::default())
    }
}

impl DataConfig {
    /// Checks the settings (the synthetic and toy sets' own checks; for
    /// CIFAR the subset sizes and the input scale).
    pub fn validate(&self) -> Result<()> {
        match self {
            DataConfig::Synthetic(cfg) => cfg.validate(),
            DataConfig::Toy(cfg) => cfg.validate(),
            DataConfig::Cifar {
                dir,
                train_samples,
                test_samples,
                input_scale,
                ..
            } => {
                if dir.as_os_str().is_empty() {
                    return Err(Error::Config("data.dir must name a CIFAR directory".into()));
                }
                for (path, n) in [
                    ("data.train_samples", train_samples),
                    ("data.test_samples", test_samples),
                ] {
                    if let Some(n) = n {
                        config::at_least(path, *n, 1)?;
                    }
                }
                config::positive("data.input_scale", f64::from(*input_scale))
            }
        }
    }

    /// What the data will be, without reading it (for CIFAR, from the files'
    /// sizes): the shape of one input, the classes, and the set sizes after
    /// `train_samples`/`test_samples`. An error when `train_samples` asks
    /// for more examples than there are.
    pub fn shape(&self) -> Result<DataShape> {
        match self {
            DataConfig::Synthetic(cfg) => Ok(DataShape {
                input_shape: vec![cfg.ambient_dim],
                classes: cfg.classes,
                n_train: cfg.n_train,
                n_test: cfg.n_test,
                name: "synthetic".into(),
            }),
            DataConfig::Toy(cfg) => Ok(DataShape {
                input_shape: vec![2],
                classes: cfg.classes,
                n_train: cfg.n_train,
                n_test: cfg.n_test,
                name: cfg.name(),
            }),
            DataConfig::Cifar {
                dir,
                train_samples,
                test_samples,
                coarse,
                ..
            } => {
                let kind = match cifar::detect_kind(dir)? {
                    CifarKind::Cifar100 { .. } => CifarKind::Cifar100 { coarse: *coarse },
                    k => k,
                };
                let (n_train, n_test) = cifar::record_counts(dir, kind)?;
                if let Some(n) = train_samples.filter(|&n| n > n_train) {
                    return Err(too_many(n, n_train, "data.train_samples", dir));
                }
                Ok(DataShape {
                    input_shape: vec![3, 32, 32],
                    classes: kind.classes(),
                    n_train: train_samples.unwrap_or(n_train),
                    n_test: test_samples.map_or(n_test, |n| n.min(n_test)),
                    name: format!("{}:{}", kind.short_name(), dir.display()),
                })
            }
        }
    }

    /// Loads (train, test).
    pub fn load(&self) -> Result<(Dataset, Dataset)> {
        match self {
            DataConfig::Synthetic(cfg) => {
                let s = synthetic::generate(cfg)?;
                Ok((s.train, s.test))
            }
            DataConfig::Toy(cfg) => toy::generate(cfg),
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
                let train = subset(train, *train_samples, "data.train_samples", dir)?;
                let test = match test_samples {
                    Some(n) if *n < test.len() => test.class_balanced(*n)?,
                    _ => test,
                };
                Ok((train, test))
            }
        }
    }
}

settings! {
    /// Model settings; input size and classes come from the data.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct ModelConfig {
        /// Which registered model (`mlp`, `cnn`, `vgg11`, `vgg11_bn`, `resnet18`).
        pub kind: ModelKind = ModelKind::MLP,
        /// MLP hidden widths (depth = its length).
        pub hidden: Vec<usize> = vec![256, 256],
        /// CNN channels per conv block.
        pub channels: Vec<usize> = vec![16, 32],
        /// Nonlinearity (MLP and CNN; VGG11 and ResNet18 use ReLU).
        pub activation: Activation = Activation::Tanh,
        /// Base width of VGG11 / ResNet18 (channels scale as width/64; 64 is the paper's network).
        pub width: usize = 64,
    }
}

impl ModelConfig {
    /// Checks the sizes that need no data: no zero width or channel count.
    /// (Whether they fit the data's shape is checked by [`ModelConfig::architecture`].)
    pub fn validate(&self) -> Result<()> {
        if self.hidden.contains(&0) {
            return Err(Error::Config(format!(
                "model.hidden widths must be ≥ 1, got {:?}",
                self.hidden
            )));
        }
        if self.channels.contains(&0) {
            return Err(Error::Config(format!(
                "model.channels must be ≥ 1 each, got {:?}",
                self.channels
            )));
        }
        config::at_least("model.width", self.width, 1)
    }

    /// The architecture for `data` (the kind's registry entry builds it), validated.
    pub fn architecture(&self, data: &Dataset) -> Result<Architecture> {
        let arch = self.kind.architecture(self, data)?;
        arch.validate()?;
        Ok(arch)
    }

    /// A short description for legends ("MLP 256×256", "CNN 16-32").
    pub fn summary(&self) -> String {
        self.kind.summary(self)
    }
}

settings! {
    /// Everything a run needs. Defaults: the progressive-sharpening demo on
    /// synthetic data (see the README). A TOML table or config.json may name
    /// any subset of the fields (at any depth); the rest take these defaults.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct RunConfig {
        /// Seed of initial weights, data and minibatch order.
        pub seed: u64 = 0,
        /// Compute backend.
        pub backend: BackendKind = BackendKind::Cpu,
        /// Data source.
        pub data: DataConfig = DataConfig::default(),
        /// Model.
        pub model: ModelConfig = ModelConfig::default(),
        /// Loss: the square loss of the progressive-sharpening demo (a `[loss]`
        /// table without `kind` keeps it; [`LossConfig`]'s own default kind, for
        /// code that builds one, is cross-entropy).
        pub loss: LossConfig = LossConfig {
            kind: LossKind::Square,
            ..LossConfig::default()
        },
        /// Optimiser.
        pub optim: OptimConfig = OptimConfig::default(),
        /// Optimiser steps (ignored when `epochs` is set).
        pub steps: u64 = 2000,
        /// Train for this many epochs instead: steps = epochs·⌈N/B⌉ (GD: one step per epoch).
        pub epochs: Option<u64> = None,
        /// Measure every M steps (and at step 0 and the last step).
        pub measure_every: u64 = 50,
        /// Write a checkpoint every K steps (and always when the run stops); 0 = only when it stops.
        pub checkpoint_every: u64 = 0,
        /// Augmentation of the training batches (random crop, flip, mixup).
        pub augment: AugmentConfig = AugmentConfig::default(),
        /// Measurement settings.
        pub measure: MeasureConfig = MeasureConfig::default(),
    }
}

impl RunConfig {
    /// The run's length in optimiser steps for `n_train` training examples.
    pub fn total_steps(&self, n_train: usize) -> u64 {
        match self.epochs {
            None => self.steps,
            Some(e) if self.optim.batch_size == 0 => e,
            Some(e) => e * n_train.div_ceil(self.optim.batch_size.max(1)) as u64,
        }
    }

    /// The crop padding value per channel: torchvision's black pixel for CIFAR
    /// (see [`crate::augment::pixel_zero_fill`]), 0 otherwise.
    pub fn crop_fill(&self, train: &Dataset) -> Vec<f32> {
        let channels = train.input_shape.first().copied().unwrap_or(1);
        match &self.data {
            DataConfig::Cifar { input_scale, .. } if channels == 3 => {
                pixel_zero_fill(&cifar::MEAN, &cifar::STD, *input_scale)
            }
            _ => vec![0.0; channels],
        }
    }

    /// Checks every setting that can be checked without data: each number's
    /// range (NaN and ±∞ refused), in every table, whether or not the
    /// feature it belongs to is switched on (config.json must read back).
    /// The one check of a run's settings: `curvlab run` (flags and
    /// `--config`), `--resume`, sweeps and the web page all call it.
    pub fn validate(&self) -> Result<()> {
        self.data.validate()?;
        self.model.validate()?;
        self.loss.validate()?;
        self.optim.validate()?;
        self.augment.validate()?;
        if self.epochs == Some(0) {
            return Err(Error::Config("epochs must be ≥ 1".into()));
        }
        config::at_least("measure_every", self.measure_every, 1)?;
        self.measure.validate()
    }
}

/// Progress reported by [`Run::next`].
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // one event at a time, handed straight on
pub enum Event {
    /// Set up: parameter count and data sizes.
    Started {
        params: usize,
        train: usize,
        test: usize,
        measure_n: usize,
        /// Optimiser steps the run will take.
        steps: u64,
    },
    /// An optimiser step finished: its batch loss and learning rate.
    Step { step: u64, loss: f64, lr: f64 },
    /// A measurement row (also the final `diverged` row).
    Row(MetricsRow),
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub rows: usize,
    pub steps: u64,
    pub diverged: bool,
    pub model: Model,
}

/// A run driven one unit of work at a time (a measurement or an optimiser
/// step), so that a CLI loop and a browser worker (which must yield between
/// GPU reads) share the same code and produce the same numbers.
pub struct Run {
    pub(crate) cfg: RunConfig,
    pub(crate) trainer: Trainer,
    pub(crate) measurer: Measurer,
    pub(crate) t0: Instant,
    info: (usize, usize, usize),
    pub(crate) started: bool,
    /// The step whose measurement row has been emitted.
    pub(crate) measured: Option<u64>,
    pub(crate) pending: VecDeque<Event>,
    pub(crate) rows: usize,
    pub(crate) diverged: bool,
    pub(crate) done: bool,
}

impl Run {
    /// Loads the data `cfg` names and sets up model, optimiser and measurements.
    pub async fn new(cfg: &RunConfig, device: &Device) -> Result<Run> {
        cfg.validate()?;
        let (train, test) = cfg.data.load()?;
        Run::from_data(cfg, &train, &test, device).await
    }

    /// Like [`Run::new`] with data the caller supplies (a file the browser
    /// read, a toy set); `cfg.data` is then only a record.
    pub async fn from_data(
        cfg: &RunConfig,
        train: &Dataset,
        test: &Dataset,
        device: &Device,
    ) -> Result<Run> {
        cfg.validate()?;
        let t0 = Instant::now();
        let arch = cfg.model.architecture(train)?;
        let model = Model::init(&arch, cfg.seed, device)?;
        let measurer = Measurer::new(train, Some(test), &cfg.loss, &cfg.measure, device).await?;
        let trainer = Trainer::new(
            model,
            train,
            cfg.loss.clone(),
            cfg.optim.clone(),
            cfg.measure.chunk,
            cfg.seed,
        )?
        .with_augment(train, &cfg.augment, cfg.crop_fill(train), cfg.seed)?
        .with_total_steps(cfg.total_steps(train.len()));
        Ok(Run {
            cfg: cfg.clone(),
            info: (train.len(), test.len(), measurer.train.n),
            trainer,
            measurer,
            t0,
            started: false,
            measured: None,
            pending: VecDeque::new(),
            rows: 0,
            diverged: false,
            done: false,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RunConfig {
        &self.cfg
    }

    /// The model at the current step.
    pub fn model(&self) -> &Model {
        &self.trainer.model
    }

    /// Optimiser steps taken.
    pub fn step(&self) -> u64 {
        self.trainer.step
    }

    /// True when events are queued (a checkpoint must wait until they are drained).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn base_row(&self) -> MetricsRow {
        MetricsRow {
            step: self.trainer.step,
            epoch: self.trainer.epoch(),
            lr: self.trainer.lr(),
            two_over_lr: 2.0 / self.trainer.lr(),
            bn_mode: self
                .cfg
                .measure
                .solver
                .bn_mode
                .label(&self.trainer.model.arch)
                .into(),
            n: self.info.2,
            ..Default::default()
        }
    }

    /// Does the next unit of work and reports it; `None` once finished.
    pub async fn next(&mut self) -> Result<Option<Event>> {
        if let Some(e) = self.pending.pop_front() {
            return Ok(Some(e));
        }
        if !self.started {
            self.started = true;
            return Ok(Some(Event::Started {
                params: self.trainer.model.arch.num_params(),
                train: self.info.0,
                test: self.info.1,
                measure_n: self.info.2,
                steps: self.trainer.total_steps,
            }));
        }
        if self.done {
            return Ok(None);
        }
        let step = self.trainer.step;
        let total = self.trainer.total_steps;
        let due = step.is_multiple_of(self.cfg.measure_every) || step == total;
        if due && self.measured != Some(step) {
            let mut row = self.base_row();
            self.measurer
                .measure_at(&self.trainer.model, &mut row, self.rows as u64)
                .await?;
            row.wall_s = self.t0.elapsed().as_secs_f64();
            self.measured = Some(step);
            self.rows += 1;
            if row.diverged {
                self.diverged = true;
                self.done = true;
            }
            return Ok(Some(Event::Row(row)));
        }
        if step >= total {
            self.done = true;
            return Ok(None);
        }
        let m = self.trainer.step().await?;
        if !m.loss.is_finite() {
            let mut row = self.base_row();
            row.train_loss = Some(m.loss);
            row.diverged = true;
            row.wall_s = self.t0.elapsed().as_secs_f64();
            self.rows += 1;
            self.diverged = true;
            self.done = true;
            self.pending.push_back(Event::Row(row));
        }
        Ok(Some(Event::Step {
            step: self.trainer.step,
            loss: m.loss,
            lr: m.lr,
        }))
    }

    /// The outcome (call once finished, or to stop early).
    pub fn summary(self) -> RunSummary {
        RunSummary {
            rows: self.rows,
            steps: self.trainer.step,
            diverged: self.diverged,
            model: self.trainer.model,
        }
    }
}
