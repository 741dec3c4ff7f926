//! Every control of the explainer, in one struct ([`Settings`]), and the one
//! table ([`FIELDS`]) that names each control's URL key, label, range and
//! parser. The page binds its inputs, the URL and the presets through that
//! table, so a control cannot exist without living in the URL.
//!
//! [`Settings::plans`] turns the controls into the runs to train: one
//! [`RunPlan`] per value of the compared setting (`vary`/`values`), each a
//! core [`RunConfig`] plus where its data comes from.

use std::fmt::Write as _;

use curvlab::data::synthetic::SyntheticConfig;
use curvlab::data::toy::{ToyConfig, ToyShape};
use curvlab::experiment::{DataConfig, ModelConfig, ModelKind, RunConfig};
use curvlab::loss::{LossConfig, LossKind};
use curvlab::measure::MeasureConfig;
use curvlab::models::Activation;
use curvlab::train::OptimConfig;
use serde::{Deserialize, Serialize};

/// Where the training data comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataKind {
    /// The synthetic δ-good set (docs/measurements.md "Data and inputs").
    Synthetic,
    /// The 2-D toy set (spirals or rings).
    Toy,
    /// A CIFAR-10/100 binary file the user supplies.
    Cifar,
}

/// Which compute backend the page asks the worker for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendPref {
    /// WebGPU when an adapter is granted, else the CPU.
    Auto,
    /// WebGPU only (an error message when there is no adapter).
    Webgpu,
    /// burn's CPU backend compiled to WebAssembly.
    Cpu,
}

/// The setting compared across overlaid runs (one run per value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vary {
    None,
    Ls,
    Lr,
    Sin,
    Tscale,
    Wd,
    Batch,
    Width,
    Seed,
}

impl Vary {
    /// Every choice with its URL value (`none`, or the varied field's key).
    pub const ALL: [(Vary, &'static str); 9] = [
        (Vary::None, "none"),
        (Vary::Ls, "ls"),
        (Vary::Lr, "lr"),
        (Vary::Sin, "sin"),
        (Vary::Tscale, "tscale"),
        (Vary::Wd, "wd"),
        (Vary::Batch, "batch"),
        (Vary::Width, "width"),
        (Vary::Seed, "seed"),
    ];

    /// The URL key of the varied field (`None` for [`Vary::None`]).
    pub fn key(self) -> Option<&'static str> {
        match self {
            Vary::None => None,
            v => Vary::ALL.iter().find(|(w, _)| *w == v).map(|(_, k)| *k),
        }
    }
}

/// How fast a backend is, which decides the default problem size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Speed {
    /// A hardware GPU through WebGPU.
    Gpu,
    /// burn's CPU backend compiled to WebAssembly.
    Cpu,
    /// A software WebGPU adapter (a rasteriser running on the CPU).
    Software,
}

/// Most runs overlaid at once (one colour each).
pub const MAX_RUNS: usize = 4;

/// The state of every control.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub data: DataKind,
    /// Synthetic: intrinsic dimension k.
    pub k: usize,
    /// Synthetic: ambient (input) dimension d.
    pub d: usize,
    /// Toy: spirals or rings.
    pub shape: ToyShape,
    /// Toy: noise σ.
    pub noise: f64,
    /// Synthetic and toy: classes C.
    pub classes: usize,
    /// Training examples N (CIFAR: a class-balanced subset of the file's first half).
    pub n_train: usize,
    /// Test examples (CIFAR: a class-balanced subset of the file's second half).
    pub n_test: usize,
    /// Input scale s_in.
    pub input_scale: f32,
    pub model: ModelKind,
    /// MLP hidden width.
    pub width: usize,
    /// MLP hidden layers.
    pub depth: usize,
    /// CNN channels per conv block.
    pub channels: Vec<usize>,
    pub activation: Activation,
    pub loss: LossKind,
    /// Label smoothing α.
    pub label_smoothing: f64,
    /// Target (output) scale of the square loss.
    pub target_scale: f64,
    /// Learning rate η.
    pub lr: f64,
    /// Minibatch size; 0 = full batch (GD).
    pub batch_size: usize,
    pub momentum: f64,
    pub weight_decay: f64,
    /// Seed of the initial weights and minibatch order.
    pub seed: u64,
    pub steps: u64,
    /// Measure every M steps.
    pub measure_every: u64,
    /// Measurement subset size.
    pub samples: usize,
    /// Also estimate the Gauss–Newton top eigenvalue.
    pub gauss_newton: bool,
    pub vary: Vary,
    /// The values of the varied setting, one run each.
    pub values: Vec<String>,
    pub backend: BackendPref,
}

impl Default for Settings {
    /// The native CLI's default run (progressive sharpening on synthetic data,
    /// MLP 256×2 tanh, square loss, GD η = 0.06, 2000 steps, every 50): the
    /// default on a hardware GPU. See [`Settings::small`] and [`Settings::tiny`]
    /// for slower backends.
    fn default() -> Self {
        Settings {
            data: DataKind::Synthetic,
            k: 4,
            d: 32,
            shape: ToyShape::Spirals,
            noise: 0.03,
            classes: 4,
            n_train: 1000,
            n_test: 1000,
            input_scale: 1.0,
            model: ModelKind::MLP,
            width: 256,
            depth: 2,
            channels: vec![16, 32],
            activation: Activation::Tanh,
            loss: LossKind::Square,
            label_smoothing: 0.0,
            target_scale: 1.0,
            lr: 0.06,
            batch_size: 0,
            momentum: 0.0,
            weight_decay: 0.0,
            seed: 0,
            steps: 2000,
            measure_every: 50,
            samples: 1000,
            gauss_newton: true,
            vary: Vary::None,
            values: Vec::new(),
            backend: BackendPref::Auto,
        }
    }
}

impl Settings {
    /// The default on a slow backend (software WebGPU adapter or the CPU): the
    /// same experiment at a quarter of the data and half the width, with
    /// η = 0.1 so that it reaches its 2/η = 20 within the run (natively:
    /// sharpness 5.6 at step 0, 20 near step 850).
    pub fn small() -> Self {
        Settings {
            n_train: 256,
            n_test: 256,
            samples: 256,
            width: 128,
            lr: 0.1,
            steps: 1200,
            measure_every: 25,
            ..Settings::default()
        }
    }

    /// The default on a software WebGPU adapter (SwiftShader, llvmpipe), ~30
    /// times slower than the CPU backend: N = 64, width 32 and η = 0.2, which
    /// still sharpens to 2/η = 10 (natively: 3.0 at step 0, 10 near step 200,
    /// then the edge of stability with its loss spikes).
    pub fn tiny() -> Self {
        Settings {
            n_train: 64,
            n_test: 64,
            samples: 64,
            width: 32,
            lr: 0.2,
            steps: 400,
            measure_every: 40,
            ..Settings::default()
        }
    }

    /// The default for a backend of speed `speed`.
    pub fn for_speed(speed: Speed) -> Self {
        match speed {
            Speed::Gpu => Settings::default(),
            Speed::Cpu => Settings::small(),
            Speed::Software => Settings::tiny(),
        }
    }

    /// Checks what single fields cannot: that the model fits the data, the
    /// comparison is well formed, and the sizes are sane for a browser tab.
    pub fn validate(&self) -> Result<(), String> {
        if self.model == ModelKind::CNN && self.data != DataKind::Cifar {
            return Err("the CNN needs image data: choose the CIFAR-10 file, or an MLP".into());
        }
        if self.samples == 0 {
            return Err("the measurement subset needs at least one example".into());
        }
        if self.data == DataKind::Cifar && self.n_test == 0 {
            return Err("CIFAR needs at least one test example".into());
        }
        if self.vary != Vary::None {
            if self.values.is_empty() {
                return Err("list the values to compare, e.g. 0, 0.1, 0.2".into());
            }
            if self.values.len() > MAX_RUNS {
                return Err(format!("compare at most {MAX_RUNS} values"));
            }
        }
        for plan in self.plans_unchecked()? {
            plan.config.validate().map_err(|e| {
                if plan.label.is_empty() {
                    e.to_string()
                } else {
                    format!("{}: {e}", plan.label)
                }
            })?;
        }
        Ok(())
    }

    /// The runs these settings ask for, each checked by the core.
    pub fn plans(&self) -> Result<Vec<RunPlan>, String> {
        self.validate()?;
        self.plans_unchecked()
    }

    fn plans_unchecked(&self) -> Result<Vec<RunPlan>, String> {
        let Some(key) = self.vary.key() else {
            return Ok(vec![self.plan(String::new())]);
        };
        let field = field(key).expect("every Vary names a field");
        self.values
            .iter()
            .map(|v| {
                let mut s = self.clone();
                (field.set)(&mut s, v).map_err(|e| format!("compared value '{v}': {e}"))?;
                Ok(s.plan(format!("{} = {}", field.short, (field.get)(&s))))
            })
            .collect()
    }

    /// The run of these settings (no comparison), labelled `label`.
    fn plan(&self, label: String) -> RunPlan {
        // Only the chosen family's sizes are recorded; the other keeps the core's default.
        let model_defaults = ModelConfig::default();
        let (hidden, channels) = if self.model == ModelKind::CNN {
            (model_defaults.hidden, self.channels.clone())
        } else {
            (vec![self.width; self.depth], model_defaults.channels)
        };
        let (data_config, data) = match self.data {
            DataKind::Synthetic => (
                DataConfig::Synthetic(SyntheticConfig {
                    intrinsic_dim: self.k,
                    ambient_dim: self.d,
                    classes: self.classes,
                    n_train: self.n_train,
                    n_test: self.n_test,
                    input_scale: self.input_scale,
                    ..SyntheticConfig::default()
                }),
                DataPlan::Config,
            ),
            DataKind::Toy => {
                let toy = ToyConfig {
                    shape: self.shape,
                    classes: self.classes,
                    n_train: self.n_train,
                    n_test: self.n_test,
                    noise: self.noise,
                    input_scale: self.input_scale,
                    ..ToyConfig::default()
                };
                (DataConfig::Toy(toy.clone()), DataPlan::Toy(toy))
            }
            DataKind::Cifar => (
                DataConfig::Cifar {
                    dir: "browser-file".into(),
                    train_samples: Some(self.n_train),
                    test_samples: Some(self.n_test),
                    input_scale: self.input_scale,
                    coarse: false,
                },
                DataPlan::CifarFile {
                    train_samples: self.n_train,
                    test_samples: self.n_test,
                    input_scale: self.input_scale,
                },
            ),
        };
        let defaults = RunConfig::default();
        let config = RunConfig {
            seed: self.seed,
            data: data_config,
            model: ModelConfig {
                kind: self.model,
                hidden,
                channels,
                activation: self.activation,
                ..ModelConfig::default()
            },
            loss: LossConfig {
                kind: self.loss,
                label_smoothing: self.label_smoothing,
                target_scale: self.target_scale,
            },
            optim: OptimConfig {
                lr: self.lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
                batch_size: self.batch_size,
                ..defaults.optim.clone()
            },
            steps: self.steps,
            measure_every: self.measure_every,
            measure: MeasureConfig {
                samples: self.samples,
                gauss_newton: self.gauss_newton,
                ..defaults.measure.clone()
            },
            ..defaults
        };
        RunPlan {
            label,
            config,
            data,
        }
    }

    /// Every control as a URL query (without `?`), in [`FIELDS`] order.
    pub fn to_query(&self) -> String {
        let mut q = String::new();
        for f in FIELDS {
            if !q.is_empty() {
                q.push('&');
            }
            let _ = write!(q, "{}={}", f.key, encode((f.get)(self).as_str()));
        }
        q
    }
}

/// One run to train: its core configuration and the source of its data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    /// Legend label: the compared value ("α = 0.1"), empty for a single run.
    pub label: String,
    /// What the core runs (`config.backend` is set by the worker).
    pub config: RunConfig,
    pub data: DataPlan,
}

/// Where a run's data comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DataPlan {
    /// `config.data` says it all (synthetic data).
    Config,
    /// The toy set.
    Toy(ToyConfig),
    /// The CIFAR file the user dropped (its bytes travel beside the plan).
    CifarFile {
        train_samples: usize,
        test_samples: usize,
        input_scale: f32,
    },
}

/// What kind of input a control is.
#[derive(Clone, Copy, Debug)]
pub enum FieldKind {
    /// A number input with its minimum, maximum and step.
    Number { min: f64, max: f64, step: f64 },
    /// A menu: its (URL value, label) pairs.
    Choice(fn() -> Vec<(&'static str, &'static str)>),
    /// A checkbox ("1"/"0").
    Toggle,
    /// A comma-separated list.
    List,
}

/// One control: its URL key, label, kind, and how it reads and writes [`Settings`].
pub struct Field {
    /// URL key and the suffix of the input's element id (`ctl-<key>`).
    pub key: &'static str,
    /// Label beside the input.
    pub label: &'static str,
    /// Short name used in legends ("α", "η").
    pub short: &'static str,
    pub kind: FieldKind,
    /// The group of controls it belongs to (a fieldset in the page).
    pub group: &'static str,
    /// Which datasets/models it applies to; the page hides it otherwise.
    pub applies: fn(&Settings) -> bool,
    pub get: fn(&Settings) -> String,
    pub set: fn(&mut Settings, &str) -> Result<(), String>,
}

fn always(_: &Settings) -> bool {
    true
}

fn parse_num<T: std::str::FromStr>(v: &str, what: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{what}: '{v}' is not a valid number"))
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    x: T,
    lo: T,
    hi: T,
    what: &str,
) -> Result<T, String> {
    if x >= lo && x <= hi {
        Ok(x)
    } else {
        Err(format!("{what} must be between {lo} and {hi}, got {x}"))
    }
}

macro_rules! num_field {
    ($key:literal, $label:literal, $short:literal, $group:literal, $applies:expr, $t:ty, $field:ident, $min:expr, $max:expr, $step:expr) => {
        Field {
            key: $key,
            label: $label,
            short: $short,
            kind: FieldKind::Number {
                min: $min as f64,
                max: $max as f64,
                step: $step as f64,
            },
            group: $group,
            applies: $applies,
            get: |s| s.$field.to_string(),
            set: |s, v| {
                let x: $t = parse_num(v, $label)?;
                if !(x as f64).is_finite() {
                    return Err(format!("{} must be finite", $label));
                }
                s.$field = in_range(x, $min as $t, $max as $t, $label)?;
                Ok(())
            },
        }
    };
}

const DATA_CHOICES: &[(&str, &str)] = &[
    ("synthetic", "synthetic δ-good"),
    ("toy", "2-D toy set"),
    ("cifar", "CIFAR-10 files"),
];
const SHAPE_CHOICES: &[(&str, &str)] = &[("spirals", "spirals"), ("rings", "rings")];
const ACT_CHOICES: &[(&str, &str)] = &[("tanh", "tanh"), ("relu", "ReLU"), ("gelu", "GELU")];
const LOSS_CHOICES: &[(&str, &str)] = &[
    ("square", "square loss ½‖z − s·t‖²"),
    ("ce", "cross-entropy"),
];
const VARY_CHOICES: &[(&str, &str)] = &[
    ("none", "nothing (one run)"),
    ("ls", "label smoothing α"),
    ("lr", "learning rate η"),
    ("sin", "input scale"),
    ("tscale", "target scale"),
    ("wd", "weight decay"),
    ("batch", "batch size"),
    ("width", "width"),
    ("seed", "seed"),
];
const BACKEND_CHOICES: &[(&str, &str)] = &[
    ("auto", "WebGPU if available, else CPU"),
    ("webgpu", "WebGPU only"),
    ("cpu", "CPU (WebAssembly)"),
];

fn choice<T: Copy + PartialEq>(
    table: &[(T, &'static str)],
    v: &str,
    what: &str,
) -> Result<T, String> {
    table
        .iter()
        .find(|(_, name)| *name == v.trim())
        .map(|(t, _)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = table.iter().map(|(_, n)| *n).collect();
            format!("{what}: '{v}' is not one of {}", names.join(", "))
        })
}

fn name_of<T: Copy + PartialEq>(table: &[(T, &'static str)], t: T) -> String {
    table
        .iter()
        .find(|(u, _)| *u == t)
        .map(|(_, n)| n.to_string())
        .expect("every variant is named")
}

const DATA_NAMES: [(DataKind, &str); 3] = [
    (DataKind::Synthetic, "synthetic"),
    (DataKind::Toy, "toy"),
    (DataKind::Cifar, "cifar"),
];
const SHAPE_NAMES: [(ToyShape, &str); 2] =
    [(ToyShape::Spirals, "spirals"), (ToyShape::Rings, "rings")];
/// The models the page offers: the core registry's browser-sized kinds.
fn browser_models() -> impl Iterator<Item = ModelKind> {
    ModelKind::all().filter(|k| k.in_browser())
}
const ACT_NAMES: [(Activation, &str); 3] = [
    (Activation::Tanh, "tanh"),
    (Activation::Relu, "relu"),
    (Activation::Gelu, "gelu"),
];
const LOSS_NAMES: [(LossKind, &str); 2] =
    [(LossKind::Square, "square"), (LossKind::CrossEntropy, "ce")];
const BACKEND_NAMES: [(BackendPref, &str); 3] = [
    (BackendPref::Auto, "auto"),
    (BackendPref::Webgpu, "webgpu"),
    (BackendPref::Cpu, "cpu"),
];

fn is_synthetic(s: &Settings) -> bool {
    s.data == DataKind::Synthetic
}
fn is_toy(s: &Settings) -> bool {
    s.data == DataKind::Toy
}
fn not_cifar(s: &Settings) -> bool {
    s.data != DataKind::Cifar
}
fn is_mlp(s: &Settings) -> bool {
    s.model == ModelKind::MLP
}
fn is_cnn(s: &Settings) -> bool {
    s.model == ModelKind::CNN
}
fn is_square(s: &Settings) -> bool {
    s.loss == LossKind::Square
}
fn is_varied(s: &Settings) -> bool {
    s.vary != Vary::None
}

/// Every control, in page order. URL keys are short and stable: links
/// depend on them.
pub static FIELDS: &[Field] = &[
    Field {
        key: "data",
        label: "Dataset",
        short: "data",
        kind: FieldKind::Choice(|| DATA_CHOICES.to_vec()),
        group: "data",
        applies: always,
        get: |s| name_of(&DATA_NAMES, s.data),
        set: |s, v| {
            s.data = choice(&DATA_NAMES, v, "dataset")?;
            Ok(())
        },
    },
    num_field!(
        "k",
        "Intrinsic dimension k",
        "k",
        "data",
        is_synthetic,
        usize,
        k,
        1,
        64,
        1
    ),
    num_field!(
        "d",
        "Input dimension d",
        "d",
        "data",
        is_synthetic,
        usize,
        d,
        1,
        4096,
        1
    ),
    Field {
        key: "shape",
        label: "Toy shape",
        short: "shape",
        kind: FieldKind::Choice(|| SHAPE_CHOICES.to_vec()),
        group: "data",
        applies: is_toy,
        get: |s| name_of(&SHAPE_NAMES, s.shape),
        set: |s, v| {
            s.shape = choice(&SHAPE_NAMES, v, "toy shape")?;
            Ok(())
        },
    },
    num_field!(
        "noise",
        "Toy noise σ",
        "σ",
        "data",
        is_toy,
        f64,
        noise,
        0,
        1,
        0.01
    ),
    num_field!(
        "classes",
        "Classes C",
        "C",
        "data",
        not_cifar,
        usize,
        classes,
        2,
        16,
        1
    ),
    num_field!(
        "n",
        "Training examples N",
        "N",
        "data",
        always,
        usize,
        n_train,
        1,
        50000,
        1
    ),
    num_field!(
        "ntest",
        "Test examples",
        "N_test",
        "data",
        always,
        usize,
        n_test,
        0,
        50000,
        1
    ),
    num_field!(
        "sin",
        "Input scale",
        "s_in",
        "data",
        always,
        f32,
        input_scale,
        0.01,
        100,
        0.1
    ),
    Field {
        key: "model",
        label: "Model",
        short: "model",
        kind: FieldKind::Choice(|| browser_models().map(|k| (k.name(), k.about())).collect()),
        group: "model",
        applies: always,
        get: |s| s.model.name().to_string(),
        set: |s, v| {
            let table: Vec<(ModelKind, &str)> = browser_models().map(|k| (k, k.name())).collect();
            s.model = choice(&table, v, "model")?;
            Ok(())
        },
    },
    num_field!("width", "Width", "width", "model", is_mlp, usize, width, 1, 4096, 1),
    num_field!(
        "depth",
        "Hidden layers",
        "depth",
        "model",
        is_mlp,
        usize,
        depth,
        1,
        16,
        1
    ),
    Field {
        key: "channels",
        label: "CNN channels",
        short: "channels",
        kind: FieldKind::List,
        group: "model",
        applies: is_cnn,
        get: |s| join(&s.channels),
        set: |s, v| {
            let c: Vec<usize> = split_list(v)
                .iter()
                .map(|x| parse_num::<usize>(x, "CNN channels"))
                .collect::<Result<_, _>>()?;
            if c.is_empty() || c.len() > 4 || c.iter().any(|&x| x == 0 || x > 256) {
                return Err("CNN channels: 1 to 4 blocks of 1..=256 channels, e.g. 8,16".into());
            }
            s.channels = c;
            Ok(())
        },
    },
    Field {
        key: "act",
        label: "Activation",
        short: "act",
        kind: FieldKind::Choice(|| ACT_CHOICES.to_vec()),
        group: "model",
        applies: always,
        get: |s| name_of(&ACT_NAMES, s.activation),
        set: |s, v| {
            s.activation = choice(&ACT_NAMES, v, "activation")?;
            Ok(())
        },
    },
    Field {
        key: "loss",
        label: "Loss",
        short: "loss",
        kind: FieldKind::Choice(|| LOSS_CHOICES.to_vec()),
        group: "loss",
        applies: always,
        get: |s| name_of(&LOSS_NAMES, s.loss),
        set: |s, v| {
            s.loss = choice(&LOSS_NAMES, v, "loss")?;
            Ok(())
        },
    },
    num_field!(
        "ls",
        "Label smoothing α",
        "α",
        "loss",
        always,
        f64,
        label_smoothing,
        0,
        0.99,
        0.05
    ),
    num_field!(
        "tscale",
        "Target scale s_out",
        "s_out",
        "loss",
        is_square,
        f64,
        target_scale,
        0.01,
        100,
        0.1
    ),
    num_field!(
        "lr",
        "Learning rate η",
        "η",
        "optim",
        always,
        f64,
        lr,
        1e-6,
        100,
        0.01
    ),
    num_field!(
        "batch",
        "Batch size (0 = full batch)",
        "batch",
        "optim",
        always,
        usize,
        batch_size,
        0,
        50000,
        1
    ),
    num_field!(
        "mom",
        "Momentum μ",
        "μ",
        "optim",
        always,
        f64,
        momentum,
        0,
        0.999,
        0.1
    ),
    num_field!(
        "wd",
        "Weight decay λ",
        "λ",
        "optim",
        always,
        f64,
        weight_decay,
        0,
        10,
        0.0001
    ),
    num_field!(
        "seed",
        "Seed",
        "seed",
        "run",
        always,
        u64,
        seed,
        0,
        1_000_000_000,
        1
    ),
    num_field!("steps", "Steps", "steps", "run", always, u64, steps, 1, 1_000_000, 1),
    num_field!(
        "every",
        "Measure every M steps",
        "M",
        "run",
        always,
        u64,
        measure_every,
        1,
        100_000,
        1
    ),
    num_field!(
        "samples",
        "Measurement subset size",
        "n",
        "run",
        always,
        usize,
        samples,
        1,
        50000,
        1
    ),
    Field {
        key: "gn",
        label: "Gauss–Newton eigenvalue",
        short: "GN",
        kind: FieldKind::Toggle,
        group: "run",
        applies: always,
        get: |s| u8::from(s.gauss_newton).to_string(),
        set: |s, v| {
            s.gauss_newton = parse_toggle(v, "Gauss–Newton")?;
            Ok(())
        },
    },
    Field {
        key: "vary",
        label: "Compare runs over",
        short: "vary",
        kind: FieldKind::Choice(|| VARY_CHOICES.to_vec()),
        group: "compare",
        applies: always,
        get: |s| s.vary.key().unwrap_or("none").to_string(),
        set: |s, v| {
            s.vary = choice(&Vary::ALL, v, "compare")?;
            Ok(())
        },
    },
    Field {
        key: "values",
        label: "Values (comma-separated)",
        short: "values",
        kind: FieldKind::List,
        group: "compare",
        applies: is_varied,
        get: |s| s.values.join(","),
        set: |s, v| {
            s.values = split_list(v);
            Ok(())
        },
    },
    Field {
        key: "backend",
        label: "Backend",
        short: "backend",
        kind: FieldKind::Choice(|| BACKEND_CHOICES.to_vec()),
        group: "run",
        applies: always,
        get: |s| name_of(&BACKEND_NAMES, s.backend),
        set: |s, v| {
            s.backend = choice(&BACKEND_NAMES, v, "backend")?;
            Ok(())
        },
    },
];

/// The field with URL key `key`.
pub fn field(key: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.key == key)
}

fn parse_toggle(v: &str, what: &str) -> Result<bool, String> {
    match v.trim() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        o => Err(format!("{what}: '{o}' is not 0 or 1")),
    }
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

/// Percent-encodes a query value, keeping `A-Z a-z 0-9 - _ . , ~` as they are.
pub fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.,~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decodes a query component: `+` is a space, `%XX` a byte; malformed
/// escapes are kept literally; invalid UTF-8 is replaced.
pub fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The (key, value) pairs of a query string (with or without the leading `?`).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// What a page URL asks for: the settings and the page's own switches.
#[derive(Clone, Debug, PartialEq)]
pub struct PageState {
    pub settings: Settings,
    /// The preset named by `preset=` (applied under the explicit keys).
    pub preset: Option<String>,
    /// True when the URL set any control (or a preset); false means "use the
    /// backend's defaults".
    pub explicit: bool,
    /// `embed=1`: only the plots and the controls named by `show=`.
    pub embed: bool,
    /// `show=`: the controls kept in embed mode (URL keys, plus `play`,
    /// `step`, `reset`, `export`, `legend`).
    pub show: Vec<String>,
    /// `autoplay=1`: start training once loaded.
    pub autoplay: bool,
    /// Problems with the URL, reported in the page (the rest still applies).
    pub errors: Vec<String>,
}

impl PageState {
    /// Reads a page URL's query. Settings start from `base` (the backend's
    /// defaults), then the preset's values, then the URL's own keys. Unknown
    /// keys and bad values are reported in `errors`, never fatal.
    pub fn from_query(query: &str, base: &Settings) -> PageState {
        let pairs = parse_query(query);
        let mut st = PageState {
            settings: base.clone(),
            preset: None,
            explicit: false,
            embed: false,
            show: Vec::new(),
            autoplay: false,
            errors: Vec::new(),
        };
        if let Some((_, name)) = pairs.iter().find(|(k, _)| k == "preset") {
            match crate::presets::preset(name) {
                Some(p) => {
                    st.explicit = true;
                    st.preset = Some(p.name.to_string());
                    st.errors
                        .extend(apply_pairs(&mut st.settings, &parse_query(p.query)));
                }
                None => st.errors.push(format!("unknown preset '{name}'")),
            }
        }
        let mut controls = Vec::new();
        for (k, v) in pairs {
            match k.as_str() {
                "preset" => {}
                "embed" => st.embed = v != "0",
                "autoplay" => st.autoplay = v != "0",
                "show" => st.show = split_list(&v),
                // The guided story's step (read by the page, not a setting).
                "story" => {}
                _ => controls.push((k, v)),
            }
        }
        if !controls.is_empty() {
            st.explicit = true;
        }
        st.errors.extend(apply_pairs(&mut st.settings, &controls));
        st
    }

    /// The page URL's query for this state: every control, then the page switches.
    pub fn to_query(&self) -> String {
        let mut q = self.settings.to_query();
        if self.embed {
            q.push_str("&embed=1");
            if !self.show.is_empty() {
                q.push_str("&show=");
                q.push_str(&encode(&self.show.join(",")));
            }
        }
        if self.autoplay {
            q.push_str("&autoplay=1");
        }
        q
    }
}

/// Applies (key, value) pairs to `s` in order; returns one message per
/// unknown key or rejected value.
pub fn apply_pairs(s: &mut Settings, pairs: &[(String, String)]) -> Vec<String> {
    let mut errors = Vec::new();
    for (k, v) in pairs {
        match field(k) {
            Some(f) => {
                if let Err(e) = (f.set)(s, v) {
                    errors.push(e);
                }
            }
            None => errors.push(format!("unknown URL setting '{k}'")),
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mirrors_the_core_default_run() {
        let plans = Settings::default().plans().unwrap();
        assert_eq!(plans.len(), 1);
        let mut want = RunConfig::default();
        want.measure.samples = 1000;
        assert_eq!(plans[0].config, want);
        assert_eq!(plans[0].data, DataPlan::Config);
    }

    #[test]
    fn every_field_round_trips_through_the_url() {
        // A state in which every control differs from its default.
        let mut s = Settings::default();
        let changed = [
            ("data", "toy"),
            ("k", "5"),
            ("d", "17"),
            ("shape", "rings"),
            ("noise", "0.07"),
            ("classes", "3"),
            ("n", "123"),
            ("ntest", "45"),
            ("sin", "2.5"),
            ("model", "cnn"),
            ("width", "33"),
            ("depth", "3"),
            ("channels", "4,8"),
            ("act", "relu"),
            ("loss", "ce"),
            ("ls", "0.15"),
            ("tscale", "3"),
            ("lr", "0.0125"),
            ("batch", "64"),
            ("mom", "0.9"),
            ("wd", "0.0005"),
            ("seed", "42"),
            ("steps", "77"),
            ("every", "7"),
            ("samples", "99"),
            ("gn", "0"),
            ("vary", "lr"),
            ("values", "0.01,0.02"),
            ("backend", "cpu"),
        ];
        assert_eq!(changed.len(), FIELDS.len(), "the test names every field");
        for (k, v) in changed {
            let f = field(k).unwrap();
            let before = (f.get)(&s);
            (f.set)(&mut s, v).unwrap();
            assert_eq!((f.get)(&s), v, "{k}");
            assert_ne!(before, v, "{k} must differ from its default");
        }
        let q = s.to_query();
        let back = PageState::from_query(&q, &Settings::default());
        assert!(back.errors.is_empty(), "{:?}", back.errors);
        assert_eq!(back.settings, s);
        assert!(back.explicit);
        assert_eq!(back.to_query(), q);
    }

    #[test]
    fn page_switches_and_bad_values() {
        let st = PageState::from_query(
            "?embed=1&show=play,ls&autoplay=1&lr=abc&ls=2&bogus=1&seed=3",
            &Settings::small(),
        );
        assert!(st.embed && st.autoplay);
        assert_eq!(st.show, vec!["play", "ls"]);
        assert_eq!(st.settings.seed, 3);
        assert_eq!(
            st.settings.lr,
            Settings::small().lr,
            "bad value leaves the default"
        );
        assert_eq!(st.errors.len(), 3, "{:?}", st.errors);
        assert!(
            st.errors[0].contains("not a valid number"),
            "{:?}",
            st.errors
        );
        assert!(
            st.errors[1].contains("between 0 and 0.99"),
            "{:?}",
            st.errors
        );
        assert!(st.errors[2].contains("bogus"), "{:?}", st.errors);
        let q = st.to_query();
        assert!(q.ends_with("&embed=1&show=play,ls&autoplay=1"), "{q}");
        let empty = PageState::from_query("", &Settings::small());
        assert!(!empty.explicit && empty.errors.is_empty());
        assert_eq!(empty.settings, Settings::small());
    }

    #[test]
    fn comparisons_make_one_plan_per_value() {
        let s = Settings {
            loss: LossKind::CrossEntropy,
            vary: Vary::Ls,
            values: vec!["0".into(), "0.1".into(), "0.2".into()],
            ..Settings::small()
        };
        let plans = s.plans().unwrap();
        let ls: Vec<f64> = plans
            .iter()
            .map(|p| p.config.loss.label_smoothing)
            .collect();
        assert_eq!(ls, vec![0.0, 0.1, 0.2]);
        assert_eq!(plans[1].label, "α = 0.1");
        let too_many = Settings {
            values: vec!["0".into(); MAX_RUNS + 1],
            ..s.clone()
        };
        assert!(too_many.plans().is_err());
        let bad = Settings {
            values: vec!["0".into(), "1.5".into()],
            ..s
        };
        let err = bad.plans().unwrap_err();
        assert!(err.contains("'1.5'"), "{err}");
    }

    #[test]
    fn data_plans_and_model_checks() {
        let toy = Settings {
            data: DataKind::Toy,
            classes: 3,
            ..Settings::small()
        };
        let p = &toy.plans().unwrap()[0];
        match &p.data {
            DataPlan::Toy(t) => {
                assert_eq!((t.classes, t.n_train, t.shape), (3, 256, ToyShape::Spirals))
            }
            other => panic!("{other:?}"),
        }
        let cnn = Settings {
            model: ModelKind::CNN,
            ..Settings::small()
        };
        assert!(cnn.plans().unwrap_err().contains("CNN"));
        let cifar = Settings {
            data: DataKind::Cifar,
            model: ModelKind::CNN,
            ..cnn
        };
        let p = &cifar.plans().unwrap()[0];
        assert!(matches!(
            p.data,
            DataPlan::CifarFile {
                train_samples: 256,
                ..
            }
        ));
        assert_eq!(p.config.model.kind, ModelKind::CNN);
    }

    /// The model menu is the core registry's browser kinds, by their names.
    #[test]
    fn model_menu_comes_from_the_registry() {
        let f = field("model").unwrap();
        let FieldKind::Choice(choices) = f.kind else {
            panic!("the model control is a menu");
        };
        let values: Vec<&str> = choices().iter().map(|(v, _)| *v).collect();
        assert_eq!(values, ["mlp", "cnn"]);
        assert!(choices().iter().all(|(_, label)| !label.is_empty()));
        let mut s = Settings::default();
        (f.set)(&mut s, "cnn").unwrap();
        assert_eq!(s.model, ModelKind::CNN);
        assert_eq!((f.get)(&s), "cnn");
        let e = (f.set)(&mut s, "resnet18").unwrap_err();
        assert!(e.contains("not one of mlp, cnn"), "{e}");
    }

    #[test]
    fn query_codec() {
        assert_eq!(encode("0.1,0.2"), "0.1,0.2");
        assert_eq!(encode("a b&c=ü"), "a%20b%26c%3D%C3%BC");
        assert_eq!(decode("a%20b%26c%3D%C3%BC"), "a b&c=ü");
        assert_eq!(decode("1+2"), "1 2");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(
            parse_query("?a=1&&b&c=%2C"),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), String::new()),
                ("c".to_string(), ",".to_string())
            ]
        );
    }
}
