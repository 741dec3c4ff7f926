//! Models f(x; θ): an MLP of any depth/width and a small CNN, written as pure
//! functions of a flat parameter list so that curvature code can perturb θ
//! freely (θ ± εv) without touching module state.
//!
//! Parameters are kept in PyTorch's layout and order (Linear weight
//! `[out, in]`, Conv2d weight `[out, in, kh, kw]`, bias `[out]`), each stored
//! as a flat `Tensor<1>`; so the flat θ of curvlab is the flat θ of the same
//! PyTorch model (`torch.cat([p.flatten() for p in model.parameters()])`).
//!
//! # Activation gates
//! ReLU and max-pool are piecewise linear. For finite-difference curvature the
//! forward pass at θ can *record* its gates (which ReLU units are off, which
//! input each max-pool window picks), and the passes at θ ± εv can reuse them
//! (*fixed* gates). The network with fixed gates is a polynomial in θ whose
//! Hessian at θ is the generalised Hessian that double-backward frameworks
//! compute (relu'' = 0, max-pool routing fixed).
//!
//! # Shapes
//! Input `[B, d]` (images flattened in (c, h, w) order), output logits `[B, C]`.

use burn::tensor::activation;
use burn::tensor::module::{conv2d, conv2d_weight_backward, max_pool2d, max_pool2d_with_indices};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::{Error, Result};

/// Hidden-unit nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// max(0, x); gates recorded/fixed for curvature.
    #[default]
    Relu,
    /// tanh(x)
    Tanh,
    /// x·Φ(x) (exact, erf form)
    Gelu,
}

impl std::str::FromStr for Activation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            "gelu" => Ok(Activation::Gelu),
            o => Err(Error::Config(format!(
                "unknown activation '{o}' (expected relu, tanh or gelu)"
            ))),
        }
    }
}

/// A network architecture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Architecture {
    /// Fully connected: d → hidden[0] → … → hidden[L−1] → C, activation after
    /// every hidden layer. PyTorch names `layers.{i}.weight|bias`.
    Mlp {
        input_dim: usize,
        hidden: Vec<usize>,
        classes: usize,
        activation: Activation,
    },
    /// Small CNN: for each entry of `channels`, conv 3×3 (padding 1) →
    /// activation → max-pool 2×2; then one linear layer to C. PyTorch names
    /// `features.{3i}.weight|bias` (nn.Sequential of conv, act, pool) and
    /// `classifier.weight|bias`.
    Cnn {
        in_channels: usize,
        height: usize,
        width: usize,
        channels: Vec<usize>,
        classes: usize,
        activation: Activation,
    },
    /// VGG11 (configuration "A": 64, M, 128, M, 256, 256, M, 512, 512, M,
    /// 512, 512, M) for CIFAR-size images: torchvision's `features`
    /// (conv 3×3 with bias [+ BatchNorm] + ReLU; max-pool 2×2) and, as in
    /// the CIFAR variants, one linear `classifier` on the flattened map.
    /// Widths scale as `base`/64 (64 = the paper's network).
    Vgg11 {
        in_channels: usize,
        height: usize,
        width: usize,
        classes: usize,
        base: usize,
        batch_norm: bool,
    },
    /// ResNet18, CIFAR variant: 3×3 stride-1 stem, no max-pool, BasicBlocks
    /// [2, 2, 2, 2] with widths base·(1, 2, 4, 8), global average pool, `fc`.
    /// torchvision's names (`conv1`, `bn1`, `layer{l}.{k}.conv1|bn1|conv2|bn2`,
    /// `layer{l}.0.downsample.0|1`, `fc`).
    Resnet18 {
        in_channels: usize,
        height: usize,
        width: usize,
        classes: usize,
        base: usize,
    },
}

/// How a parameter tensor is initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// U(−1/√fan_in, 1/√fan_in): PyTorch's default for Linear and Conv2d
    /// (kaiming_uniform with a = √5 for weights, and the bias rule).
    Uniform { fan_in: usize },
    /// N(0, 2/fan_out): torchvision's `kaiming_normal_(mode="fan_out", nonlinearity="relu")` for convolutions.
    KaimingNormalFanOut { fan_out: usize },
    /// N(0, σ²) (torchvision VGG's classifier: σ = 0.01).
    Normal { std: f64 },
    /// A constant (BatchNorm weight 1, bias 0; VGG conv and classifier bias 0).
    Const(f32),
}

/// Name and PyTorch shape of one parameter tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    /// Initialisation rule.
    pub init: Init,
}

/// The VGG11 layer configuration: `Some(channels)` = conv block, `None` = max-pool.
pub const VGG11_LAYERS: [Option<usize>; 13] = [
    Some(64),
    None,
    Some(128),
    None,
    Some(256),
    Some(256),
    None,
    Some(512),
    Some(512),
    None,
    Some(512),
    Some(512),
    None,
];

/// `c`·base/64, at least 1.
fn scaled(c: usize, base: usize) -> usize {
    (c * base / 64).max(1)
}

/// One BasicBlock of ResNet18: (layer, block, in, out, stride).
fn resnet18_blocks(base: usize) -> Vec<(usize, usize, usize, usize, usize)> {
    let mut out = Vec::new();
    let mut inp = base;
    for l in 1..=4 {
        let planes = base << (l - 1);
        for k in 0..2 {
            let stride = if l > 1 && k == 0 { 2 } else { 1 };
            out.push((l, k, inp, planes, stride));
            inp = planes;
        }
    }
    out
}

impl ParamSpec {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// True for a zero-size tensor.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Architecture {
    /// Number of classes C (output width).
    pub fn classes(&self) -> usize {
        match self {
            Architecture::Mlp { classes, .. }
            | Architecture::Cnn { classes, .. }
            | Architecture::Vgg11 { classes, .. }
            | Architecture::Resnet18 { classes, .. } => *classes,
        }
    }

    /// Image shape `[c, h, w]` (None for the MLP).
    pub fn image_shape(&self) -> Option<[usize; 3]> {
        match self {
            Architecture::Mlp { .. } => None,
            Architecture::Cnn {
                in_channels,
                height,
                width,
                ..
            }
            | Architecture::Vgg11 {
                in_channels,
                height,
                width,
                ..
            }
            | Architecture::Resnet18 {
                in_channels,
                height,
                width,
                ..
            } => Some([*in_channels, *height, *width]),
        }
    }

    /// True when the model has BatchNorm layers (train and eval mode differ).
    pub fn has_batch_norm(&self) -> bool {
        matches!(
            self,
            Architecture::Vgg11 {
                batch_norm: true,
                ..
            } | Architecture::Resnet18 { .. }
        )
    }

    /// The BatchNorm layers in forward order: (name prefix, channels). Their
    /// running statistics are the model's buffers
    /// (`{prefix}.running_mean`, `{prefix}.running_var`).
    pub fn batch_norm_layers(&self) -> Vec<(String, usize)> {
        match self {
            Architecture::Vgg11 {
                base,
                batch_norm: true,
                ..
            } => {
                let mut out = Vec::new();
                let mut idx = 0;
                for layer in VGG11_LAYERS {
                    match layer {
                        Some(c) => {
                            out.push((format!("features.{}", idx + 1), scaled(c, *base)));
                            idx += 3;
                        }
                        None => idx += 1,
                    }
                }
                out
            }
            Architecture::Resnet18 { base, .. } => {
                let mut out = vec![("bn1".to_string(), *base)];
                for (l, k, inp, planes, stride) in resnet18_blocks(*base) {
                    out.push((format!("layer{l}.{k}.bn1"), planes));
                    out.push((format!("layer{l}.{k}.bn2"), planes));
                    if stride != 1 || inp != planes {
                        out.push((format!("layer{l}.{k}.downsample.1"), planes));
                    }
                }
                out
            }
            _ => Vec::new(),
        }
    }

    /// Input length d.
    pub fn input_len(&self) -> usize {
        match self {
            Architecture::Mlp { input_dim, .. } => *input_dim,
            _ => self.image_shape().expect("image model").iter().product(),
        }
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        match self {
            Architecture::Mlp { activation, .. } | Architecture::Cnn { activation, .. } => {
                *activation
            }
            Architecture::Vgg11 { .. } | Architecture::Resnet18 { .. } => Activation::Relu,
        }
    }

    /// True when the forward pass has gates (ReLU or max-pool) to fix for
    /// finite-difference curvature.
    pub fn has_gates(&self) -> bool {
        !matches!(self, Architecture::Mlp { .. }) || self.activation() == Activation::Relu
    }

    /// Checks that the architecture can work.
    pub fn validate(&self) -> Result<()> {
        match self {
            Architecture::Mlp {
                input_dim,
                hidden,
                classes,
                ..
            } => {
                if *input_dim == 0 || *classes < 2 || hidden.contains(&0) {
                    return Err(Error::Config(format!(
                        "MLP needs input_dim ≥ 1, classes ≥ 2 and non-zero widths (got d={input_dim}, hidden={hidden:?}, C={classes})"
                    )));
                }
            }
            Architecture::Cnn {
                in_channels,
                height,
                width,
                channels,
                classes,
                ..
            } => {
                let div = 1usize << channels.len();
                if *in_channels == 0 || *classes < 2 || channels.is_empty() || channels.contains(&0)
                {
                    return Err(Error::Config(
                        "CNN needs ≥ 1 input channel, ≥ 1 non-zero conv layer and ≥ 2 classes"
                            .into(),
                    ));
                }
                if height % div != 0 || width % div != 0 {
                    return Err(Error::Shape(format!(
                        "CNN with {} pooling layers needs height and width divisible by {div} (got {height}×{width})",
                        channels.len()
                    )));
                }
            }
            Architecture::Vgg11 {
                in_channels,
                height,
                width,
                classes,
                base,
                ..
            } => {
                if *in_channels == 0 || *classes < 2 || *base == 0 {
                    return Err(Error::Config(
                        "VGG11 needs ≥ 1 input channel, base width ≥ 1 and ≥ 2 classes".into(),
                    ));
                }
                if height % 32 != 0 || width % 32 != 0 {
                    return Err(Error::Shape(format!(
                        "VGG11 has 5 max-pool layers and needs height and width divisible by 32 (got {height}×{width})"
                    )));
                }
            }
            Architecture::Resnet18 {
                in_channels,
                height,
                width,
                classes,
                base,
            } => {
                if *in_channels == 0 || *classes < 2 || *base == 0 {
                    return Err(Error::Config(
                        "ResNet18 needs ≥ 1 input channel, base width ≥ 1 and ≥ 2 classes".into(),
                    ));
                }
                if *height < 8 || *width < 8 {
                    return Err(Error::Shape(format!(
                        "ResNet18 downsamples 8× and needs images of at least 8×8 (got {height}×{width})"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The parameter tensors, in PyTorch's `parameters()` order.
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        let mut specs = Vec::new();
        let linear = |name: String, fan_in: usize, out: usize, specs: &mut Vec<ParamSpec>| {
            specs.push(ParamSpec {
                name: format!("{name}.weight"),
                shape: vec![out, fan_in],
                init: Init::Uniform { fan_in },
            });
            specs.push(ParamSpec {
                name: format!("{name}.bias"),
                shape: vec![out],
                init: Init::Uniform { fan_in },
            });
        };
        let conv = |name: String, ci: usize, co: usize, k: usize, specs: &mut Vec<ParamSpec>| {
            specs.push(ParamSpec {
                name: format!("{name}.weight"),
                shape: vec![co, ci, k, k],
                init: Init::KaimingNormalFanOut {
                    fan_out: co * k * k,
                },
            });
        };
        let bn = |name: String, c: usize, specs: &mut Vec<ParamSpec>| {
            specs.push(ParamSpec {
                name: format!("{name}.weight"),
                shape: vec![c],
                init: Init::Const(1.0),
            });
            specs.push(ParamSpec {
                name: format!("{name}.bias"),
                shape: vec![c],
                init: Init::Const(0.0),
            });
        };
        match self {
            Architecture::Mlp {
                input_dim,
                hidden,
                classes,
                ..
            } => {
                let mut d = *input_dim;
                for (i, &h) in hidden.iter().chain(std::iter::once(classes)).enumerate() {
                    linear(format!("layers.{i}"), d, h, &mut specs);
                    d = h;
                }
            }
            Architecture::Cnn {
                in_channels,
                height,
                width,
                channels,
                classes,
                ..
            } => {
                let mut c = *in_channels;
                for (i, &co) in channels.iter().enumerate() {
                    let fan_in = c * 9;
                    specs.push(ParamSpec {
                        name: format!("features.{}.weight", 3 * i),
                        shape: vec![co, c, 3, 3],
                        init: Init::Uniform { fan_in },
                    });
                    specs.push(ParamSpec {
                        name: format!("features.{}.bias", 3 * i),
                        shape: vec![co],
                        init: Init::Uniform { fan_in },
                    });
                    c = co;
                }
                let div = 1usize << channels.len();
                let flat = c * (height / div) * (width / div);
                linear("classifier".into(), flat, *classes, &mut specs);
            }
            Architecture::Vgg11 {
                in_channels,
                height,
                width,
                classes,
                base,
                batch_norm,
            } => {
                // torchvision VGG._initialize_weights: conv kaiming_normal(fan_out), bias 0;
                // BatchNorm 1, 0; Linear N(0, 0.01), bias 0.
                let mut c = *in_channels;
                let mut idx = 0;
                for layer in VGG11_LAYERS {
                    let Some(co) = layer else {
                        idx += 1;
                        continue;
                    };
                    let co = scaled(co, *base);
                    conv(format!("features.{idx}"), c, co, 3, &mut specs);
                    specs.push(ParamSpec {
                        name: format!("features.{idx}.bias"),
                        shape: vec![co],
                        init: Init::Const(0.0),
                    });
                    if *batch_norm {
                        bn(format!("features.{}", idx + 1), co, &mut specs);
                        idx += 3;
                    } else {
                        idx += 2;
                    }
                    c = co;
                }
                let flat = c * (height / 32) * (width / 32);
                specs.push(ParamSpec {
                    name: "classifier.weight".into(),
                    shape: vec![*classes, flat],
                    init: Init::Normal { std: 0.01 },
                });
                specs.push(ParamSpec {
                    name: "classifier.bias".into(),
                    shape: vec![*classes],
                    init: Init::Const(0.0),
                });
            }
            Architecture::Resnet18 {
                in_channels,
                classes,
                base,
                ..
            } => {
                // torchvision ResNet: conv kaiming_normal(fan_out), BatchNorm 1, 0,
                // fc PyTorch's default.
                conv("conv1".into(), *in_channels, *base, 3, &mut specs);
                bn("bn1".into(), *base, &mut specs);
                for (l, k, inp, planes, stride) in resnet18_blocks(*base) {
                    let p = format!("layer{l}.{k}");
                    conv(format!("{p}.conv1"), inp, planes, 3, &mut specs);
                    bn(format!("{p}.bn1"), planes, &mut specs);
                    conv(format!("{p}.conv2"), planes, planes, 3, &mut specs);
                    bn(format!("{p}.bn2"), planes, &mut specs);
                    if stride != 1 || inp != planes {
                        conv(format!("{p}.downsample.0"), inp, planes, 1, &mut specs);
                        bn(format!("{p}.downsample.1"), planes, &mut specs);
                    }
                }
                linear("fc".into(), base * 8, *classes, &mut specs);
            }
        }
        specs
    }

    /// Total number of parameters P.
    pub fn num_params(&self) -> usize {
        self.param_specs().iter().map(ParamSpec::len).sum()
    }
}

/// A gate recorded by a forward pass at θ.
#[derive(Clone, Debug)]
pub enum Gate {
    /// ReLU units that are off (pre-activation ≤ 0), flattened `[B, units]`.
    Off(Tensor<2, Bool>),
    /// Max-pool argmax per window, indices into the flattened `h·w` plane, `[B, C, h'·w']`.
    Pool(Tensor<3, Int>),
}

/// How a forward pass treats ReLU and max-pool.
pub enum Gates<'a> {
    /// Ordinary forward pass.
    Free,
    /// Ordinary forward pass that records its gates.
    Record(&'a mut Vec<Gate>),
    /// Forward pass with gates fixed to recorded ones.
    Fixed(&'a [Gate]),
}

/// A model: its architecture, its parameters θ (flat tensors, PyTorch
/// order) and, with BatchNorm, its running statistics (buffers).
#[derive(Clone, Debug)]
pub struct Model {
    pub arch: Architecture,
    pub params: Vec<Tensor<1>>,
    /// BatchNorm running statistics `[mean₀, var₀, mean₁, var₁, …]` in
    /// [`Architecture::batch_norm_layers`] order; empty without BatchNorm.
    /// They are not part of θ: curvature never perturbs them.
    pub buffers: Vec<Tensor<1>>,
    /// Running-statistic updates so far (PyTorch's `num_batches_tracked`).
    pub bn_updates: u64,
}

/// BatchNorm momentum (PyTorch's default): running ← (1 − m)·running + m·batch.
pub const BN_MOMENTUM: f64 = 0.1;
/// BatchNorm ε (PyTorch's default).
pub const BN_EPS: f64 = 1e-5;

impl Model {
    /// Initialisation as PyTorch / torchvision do it ([`Init`] per parameter),
    /// drawn on the host from `seed`, so identical on every backend. Running
    /// statistics start at mean 0, variance 1.
    pub fn init(arch: &Architecture, seed: u64, device: &Device) -> Result<Model> {
        arch.validate()?;
        let mut rng = Rng::derived(seed, "init");
        let host: Vec<Vec<f32>> = arch
            .param_specs()
            .iter()
            .map(|s| {
                let n = s.len();
                match s.init {
                    Init::Uniform { fan_in } => {
                        let bound = 1.0 / (fan_in as f64).sqrt();
                        (0..n)
                            .map(|_| rng.uniform_in(-bound, bound) as f32)
                            .collect()
                    }
                    Init::KaimingNormalFanOut { fan_out } => {
                        let std = (2.0 / fan_out as f64).sqrt();
                        (0..n).map(|_| (std * rng.normal()) as f32).collect()
                    }
                    Init::Normal { std } => (0..n).map(|_| (std * rng.normal()) as f32).collect(),
                    Init::Const(v) => vec![v; n],
                }
            })
            .collect();
        Model::from_host(arch, &host, device)
    }

    /// Builds a model from host values (one Vec per parameter, PyTorch order),
    /// with fresh running statistics (mean 0, variance 1).
    pub fn from_host(arch: &Architecture, host: &[Vec<f32>], device: &Device) -> Result<Model> {
        let buffers: Vec<Vec<f32>> = arch
            .batch_norm_layers()
            .iter()
            .flat_map(|(_, c)| [vec![0.0; *c], vec![1.0; *c]])
            .collect();
        Model::from_host_with_buffers(arch, host, &buffers, 0, device)
    }

    /// [`Model::from_host`] with given running statistics
    /// (`[mean₀, var₀, mean₁, …]`) and update count.
    pub fn from_host_with_buffers(
        arch: &Architecture,
        host: &[Vec<f32>],
        buffers: &[Vec<f32>],
        bn_updates: u64,
        device: &Device,
    ) -> Result<Model> {
        arch.validate()?;
        let specs = arch.param_specs();
        if specs.len() != host.len() {
            return Err(Error::Shape(format!(
                "{} parameter tensors given, architecture has {}",
                host.len(),
                specs.len()
            )));
        }
        let upload =
            |v: &Vec<f32>| Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), device);
        let params = specs
            .iter()
            .zip(host)
            .map(|(s, v)| {
                if s.len() != v.len() {
                    return Err(Error::Shape(format!(
                        "{}: {} values, expected {} ({:?})",
                        s.name,
                        v.len(),
                        s.len(),
                        s.shape
                    )));
                }
                Ok(upload(v))
            })
            .collect::<Result<Vec<_>>>()?;
        let layers = arch.batch_norm_layers();
        if buffers.len() != 2 * layers.len() {
            return Err(Error::Shape(format!(
                "{} running-statistic tensors given, architecture has {}",
                buffers.len(),
                2 * layers.len()
            )));
        }
        for (i, b) in buffers.iter().enumerate() {
            let (name, c) = &layers[i / 2];
            if b.len() != *c {
                return Err(Error::Shape(format!(
                    "{name}.{}: {} values, expected {c}",
                    if i % 2 == 0 {
                        "running_mean"
                    } else {
                        "running_var"
                    },
                    b.len()
                )));
            }
        }
        Ok(Model {
            arch: arch.clone(),
            params,
            buffers: buffers.iter().map(upload).collect(),
            bn_updates,
        })
    }

    /// Parameters copied to the host.
    pub fn to_host(&self) -> Vec<Vec<f32>> {
        self.params.iter().map(tensor_to_vec).collect()
    }

    /// Running statistics copied to the host.
    pub fn buffers_to_host(&self) -> Vec<Vec<f32>> {
        self.buffers.iter().map(tensor_to_vec).collect()
    }

    /// θ as one flat host vector (PyTorch order).
    pub fn flat(&self) -> Vec<f32> {
        self.to_host().concat()
    }

    /// The device θ lives on.
    pub fn device(&self) -> Device {
        self.params[0].device()
    }

    /// Logits for a batch `[B, d]` in eval mode (running statistics).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        forward_bn(
            &self.arch,
            &self.params,
            x,
            Gates::Free,
            &mut Bn::Running(&self.buffers),
        )
    }
}

/// Which BatchNorm statistics a measurement uses (SPEC "BatchNorm").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BnMode {
    /// Batch statistics over each chunk of the sample (train-mode loss); running statistics untouched.
    #[default]
    Train,
    /// Running statistics (eval-mode loss).
    Eval,
}

impl BnMode {
    /// The label written into results: "train", "eval", or "none" for a model without BatchNorm.
    pub fn label(self, arch: &Architecture) -> &'static str {
        match (arch.has_batch_norm(), self) {
            (false, _) => "none",
            (true, BnMode::Train) => "train",
            (true, BnMode::Eval) => "eval",
        }
    }

    /// The running statistics a pass in this mode uses (`None` = batch statistics).
    pub fn running(self, model: &Model) -> Option<&[Tensor<1>]> {
        match self {
            BnMode::Train => None,
            BnMode::Eval => Some(&model.buffers),
        }
    }
}

impl<'a> Bn<'a> {
    /// `Running(buffers)` when given, else `Batch`.
    pub fn from_running(running: Option<&'a [Tensor<1>]>) -> Bn<'a> {
        match running {
            Some(b) => Bn::Running(b),
            None => Bn::Batch,
        }
    }
}

/// How BatchNorm layers normalise in a forward pass.
pub enum Bn<'a> {
    /// Train mode: statistics of the pass's own batch; running statistics untouched.
    Batch,
    /// Eval mode: the given running statistics (`[mean₀, var₀, …]`).
    Running(&'a [Tensor<1>]),
    /// Train mode that also updates the running statistics in place with
    /// momentum `momentum` (unbiased batch variance, as PyTorch).
    Update {
        buffers: &'a mut Vec<Tensor<1>>,
        momentum: f64,
    },
}

/// Reads a tensor's values to the host as f32, yielding while the device
/// finishes (the only way to read on wasm with WebGPU).
pub async fn read_vec<const D: usize>(t: &Tensor<D>) -> Result<Vec<f32>> {
    t.to_data_async()
        .await
        .map_err(|e| Error::Backend(format!("reading a tensor from the device failed: {e:?}")))?
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Backend(format!("tensor data is not f32: {e:?}")))
}

/// [`read_vec`] run to completion on this thread (native code and tests).
///
/// # Panics
/// If the device read fails.
pub fn tensor_to_vec<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    crate::block_on(read_vec(t)).expect("tensor read")
}

fn act<const D: usize>(h: Tensor<D>, a: Activation, gates: &mut Gates, k: &mut usize) -> Tensor<D> {
    match a {
        Activation::Tanh => activation::tanh(h),
        Activation::Gelu => activation::gelu(h),
        Activation::Relu => {
            let dims = h.dims();
            let b = dims[0];
            let off: Tensor<2, Bool> = match gates {
                Gates::Free => return activation::relu(h),
                Gates::Record(list) => {
                    let off = h.clone().lower_equal_elem(0.0).reshape([b as i64, -1]);
                    list.push(Gate::Off(off.clone()));
                    off
                }
                Gates::Fixed(list) => match &list[*k] {
                    Gate::Off(off) => off.clone(),
                    Gate::Pool(_) => panic!("gate {k} is a pool gate, expected a ReLU gate"),
                },
            };
            *k += 1;
            h.mask_fill(off.reshape(dims), 0.0)
        }
    }
}

fn pool(h: Tensor<4>, gates: &mut Gates, k: &mut usize) -> Tensor<4> {
    let [b, c, hh, ww] = h.dims();
    let opts = MaxPoolOptions::new([2, 2]);
    let out = match gates {
        Gates::Free => return max_pool2d(h, opts),
        Gates::Record(list) => {
            let (out, idx) = max_pool2d_with_indices(h, opts);
            list.push(Gate::Pool(idx.reshape([b, c, (hh / 2) * (ww / 2)])));
            out
        }
        Gates::Fixed(list) => match &list[*k] {
            Gate::Pool(idx) => {
                h.reshape([b, c, hh * ww])
                    .gather(2, idx.clone())
                    .reshape([b, c, hh / 2, ww / 2])
            }
            Gate::Off(_) => panic!("gate {k} is a ReLU gate, expected a pool gate"),
        },
    };
    *k += 1;
    out
}

/// BatchNorm over `[B, C, H, W]` with affine `gamma`, `beta`; `li` is the
/// layer's index in [`Architecture::batch_norm_layers`].
fn batch_norm(
    h: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    bn: &mut Bn,
    li: usize,
) -> Tensor<4> {
    let [b, c, hh, ww] = h.dims();
    let (mean, var): (Tensor<1>, Tensor<1>) = match bn {
        Bn::Running(buf) => (buf[2 * li].clone(), buf[2 * li + 1].clone()),
        Bn::Batch | Bn::Update { .. } => {
            let n = b * hh * ww;
            let flat: Tensor<2> = h.clone().swap_dims(0, 1).reshape([c, n]);
            let mean: Tensor<1> = flat.clone().mean_dim(1).reshape([c]);
            let var: Tensor<1> = (flat - mean.clone().unsqueeze_dim(1))
                .square()
                .mean_dim(1)
                .reshape([c]);
            if let Bn::Update { buffers, momentum } = bn {
                let m = *momentum;
                let unbiased = var
                    .clone()
                    .inner()
                    .mul_scalar(n as f64 / (n as f64 - 1.0).max(1.0));
                buffers[2 * li] = buffers[2 * li].clone().mul_scalar(1.0 - m)
                    + mean.clone().inner().mul_scalar(m);
                buffers[2 * li + 1] =
                    buffers[2 * li + 1].clone().mul_scalar(1.0 - m) + unbiased.mul_scalar(m);
            }
            (mean, var)
        }
    };
    let scale = gamma / var.add_scalar(BN_EPS).sqrt();
    let shift = beta - mean * scale.clone();
    h * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1])
}

/// f(x; θ) in train mode (batch statistics for BatchNorm models); see [`forward_bn`].
pub fn forward(arch: &Architecture, params: &[Tensor<1>], x: Tensor<2>, gates: Gates) -> Tensor<2> {
    forward_bn(arch, params, x, gates, &mut Bn::Batch)
}

/// f(x; θ) with `params` in [`Architecture::param_specs`] order, BatchNorm as `bn` says.
///
/// `x`: `[B, d]`; returns logits `[B, C]`. The same computation as
/// [`forward_from_stem`] applied to [`stem`]`(x)`, which is how it is implemented.
pub fn forward_bn(
    arch: &Architecture,
    params: &[Tensor<1>],
    x: Tensor<2>,
    gates: Gates,
    bn: &mut Bn,
) -> Tensor<2> {
    forward_from_stem(arch, params, stem(arch, params, x), gates, bn)
}

/// Number of parameter tensors of the first layer (the *stem*): the first
/// dense layer's weight and bias (MLP), the first convolution's weight and
/// bias (CNN, VGG11), or the bias-free first convolution's weight (ResNet18).
/// They are the first entries of [`Architecture::param_specs`].
pub fn stem_param_count(arch: &Architecture) -> usize {
    match arch {
        Architecture::Resnet18 { .. } => 1,
        _ => 2,
    }
}

fn stem_conv_options() -> ConvOptions<2> {
    ConvOptions::new([1, 1], [1, 1], [1, 1], 1)
}

/// The first layer's output (pre-activation, pre-BatchNorm) `z₁ = W₀x (+ b₀)`,
/// flattened to `[B, m]` (`(c, h, w)` order for convolutions).
///
/// The stem is linear in its parameters jointly (weight and bias), so with
/// `params` = a direction v it gives the stem's directional derivative
/// `z₁(θ + εv) − z₁(θ) = ε·stem(v, x)` exactly; only the stem entries of
/// `params` are read.
pub fn stem(arch: &Architecture, params: &[Tensor<1>], x: Tensor<2>) -> Tensor<2> {
    let shape = &arch.param_specs()[0].shape;
    let b = x.dims()[0];
    match arch {
        Architecture::Mlp { .. } => {
            let w: Tensor<2> = params[0].clone().reshape([shape[0], shape[1]]);
            x.matmul(w.transpose()) + params[1].clone().unsqueeze::<2>()
        }
        _ => {
            let [c, h, w] = arch.image_shape().expect("image model");
            let weight: Tensor<4> = params[0]
                .clone()
                .reshape([shape[0], shape[1], shape[2], shape[3]]);
            let bias = (stem_param_count(arch) == 2).then(|| params[1].clone());
            conv2d(x.reshape([b, c, h, w]), weight, bias, stem_conv_options())
                .reshape([b as i64, -1])
        }
    }
}

/// Gradients of the stem's parameters (the first [`stem_param_count`]
/// tensors, flat) of a scalar whose gradient with respect to the stem output
/// `z₁` (as [`stem`] shapes it, `[B, m]`) is `delta`: `δᵀx` and `Σ_batch δ`
/// for the dense stem, the convolution's weight gradient and `Σ_{batch, h, w} δ`
/// for a conv stem. Linear in `delta`; `params` supplies only shapes.
pub fn stem_gradients(
    arch: &Architecture,
    params: &[Tensor<1>],
    x: Tensor<2>,
    delta: Tensor<2>,
) -> Vec<Tensor<1>> {
    let shape = &arch.param_specs()[0].shape;
    let b = x.dims()[0];
    match arch {
        Architecture::Mlp { .. } => {
            let m = shape[0];
            let dw = delta.clone().transpose().matmul(x).reshape([m * shape[1]]);
            let db = delta.sum_dim(0).reshape([m]);
            vec![dw, db]
        }
        _ => {
            let [c, h, w] = arch.image_shape().expect("image model");
            let co = shape[0];
            let weight: Tensor<4> = params[0]
                .clone()
                .reshape([shape[0], shape[1], shape[2], shape[3]]);
            let d4: Tensor<4> = delta.reshape([b, co, h, w]);
            let dw = conv2d_weight_backward(
                x.reshape([b, c, h, w]),
                weight,
                d4.clone(),
                stem_conv_options(),
            )
            .reshape([co * shape[1] * shape[2] * shape[3]]);
            let mut out = vec![dw];
            if stem_param_count(arch) == 2 {
                let db: Tensor<3> = d4.reshape([b, co, h * w]);
                out.push(db.sum_dim(2).sum_dim(0).reshape([co]));
            }
            out
        }
    }
}

/// f(x; θ) continued from a given stem output `z1` (`[B, m]`, as [`stem`]
/// returns it): every layer after the first, with `params` in
/// [`Architecture::param_specs`] order (the stem's own entries are not read)
/// and BatchNorm as `bn` says (batch statistics are those of `z1`'s batch).
/// Returns logits `[B, C]`.
pub fn forward_from_stem(
    arch: &Architecture,
    params: &[Tensor<1>],
    z1: Tensor<2>,
    mut gates: Gates,
    bn: &mut Bn,
) -> Tensor<2> {
    let specs = arch.param_specs();
    let p2 = |i: usize| -> Tensor<2> {
        let s = &specs[i].shape;
        params[i].clone().reshape([s[0], s[1]])
    };
    let p4 = |i: usize| -> Tensor<4> {
        let s = &specs[i].shape;
        params[i].clone().reshape([s[0], s[1], s[2], s[3]])
    };
    let conv = |h: Tensor<4>, i: usize, bias: Option<Tensor<1>>, stride: usize, pad: usize| {
        conv2d(
            h,
            p4(i),
            bias,
            ConvOptions::new([stride, stride], [pad, pad], [1, 1], 1),
        )
    };
    let mut k = 0usize;
    let a = arch.activation();
    let b = z1.dims()[0];
    // the stem's output as an image batch [B, c₀, H, W] (stride 1, padding 1)
    let image = |z1: Tensor<2>, c0: usize| -> Tensor<4> {
        let [_, h, w] = arch.image_shape().expect("image model");
        z1.reshape([b, c0, h, w])
    };
    match arch {
        Architecture::Mlp { hidden, .. } => {
            let mut h = z1;
            for l in 0..=hidden.len() {
                if l > 0 {
                    h = h.matmul(p2(2 * l).transpose())
                        + params[2 * l + 1].clone().unsqueeze::<2>();
                }
                if l < hidden.len() {
                    h = act(h, a, &mut gates, &mut k);
                }
            }
            h
        }
        Architecture::Cnn { channels, .. } => {
            let mut h: Tensor<4> = image(z1, channels[0]);
            for l in 0..channels.len() {
                if l > 0 {
                    h = conv(h, 2 * l, Some(params[2 * l + 1].clone()), 1, 1);
                }
                h = act(h, a, &mut gates, &mut k);
                h = pool(h, &mut gates, &mut k);
            }
            let l = channels.len();
            let flat: Tensor<2> = h.reshape([b as i64, -1]);
            flat.matmul(p2(2 * l).transpose()) + params[2 * l + 1].clone().unsqueeze::<2>()
        }
        Architecture::Vgg11 {
            base,
            batch_norm: with_bn,
            ..
        } => {
            let c0 = scaled(VGG11_LAYERS[0].expect("VGG11 starts with a conv"), *base);
            let mut h: Tensor<4> = image(z1, c0);
            let (mut pi, mut li) = (0, 0);
            for (idx, layer) in VGG11_LAYERS.into_iter().enumerate() {
                if layer.is_none() {
                    h = pool(h, &mut gates, &mut k);
                    continue;
                }
                if idx > 0 {
                    h = conv(h, pi, Some(params[pi + 1].clone()), 1, 1);
                }
                pi += 2;
                if *with_bn {
                    h = batch_norm(h, params[pi].clone(), params[pi + 1].clone(), bn, li);
                    pi += 2;
                    li += 1;
                }
                h = act(h, Activation::Relu, &mut gates, &mut k);
            }
            let flat: Tensor<2> = h.reshape([b as i64, -1]);
            flat.matmul(p2(pi).transpose()) + params[pi + 1].clone().unsqueeze::<2>()
        }
        Architecture::Resnet18 { base, .. } => {
            let h: Tensor<4> = image(z1, *base);
            let h = batch_norm(h, params[1].clone(), params[2].clone(), bn, 0);
            let mut h = act(h, Activation::Relu, &mut gates, &mut k);
            let (mut pi, mut li) = (3, 1);
            for (_, _, inp, planes, stride) in resnet18_blocks(*base) {
                let identity = h.clone();
                let o = conv(h, pi, None, stride, 1);
                let o = batch_norm(o, params[pi + 1].clone(), params[pi + 2].clone(), bn, li);
                let o = act(o, Activation::Relu, &mut gates, &mut k);
                let o = conv(o, pi + 3, None, 1, 1);
                let o = batch_norm(
                    o,
                    params[pi + 4].clone(),
                    params[pi + 5].clone(),
                    bn,
                    li + 1,
                );
                pi += 6;
                li += 2;
                let shortcut = if stride != 1 || inp != planes {
                    let s = conv(identity, pi, None, stride, 0);
                    let s = batch_norm(s, params[pi + 1].clone(), params[pi + 2].clone(), bn, li);
                    pi += 3;
                    li += 1;
                    s
                } else {
                    identity
                };
                h = act(o + shortcut, Activation::Relu, &mut gates, &mut k);
            }
            let [_, c, _, _] = h.dims();
            let pooled: Tensor<2> = h.mean_dim(3).mean_dim(2).reshape([b, c]);
            pooled.matmul(p2(pi).transpose()) + params[pi + 1].clone().unsqueeze::<2>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_and_names() {
        let mlp = Architecture::Mlp {
            input_dim: 3072,
            hidden: vec![512, 512],
            classes: 10,
            activation: Activation::Relu,
        };
        assert_eq!(
            mlp.num_params(),
            3072 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10
        );
        let names: Vec<_> = mlp.param_specs().into_iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "layers.0.weight",
                "layers.0.bias",
                "layers.1.weight",
                "layers.1.bias",
                "layers.2.weight",
                "layers.2.bias"
            ]
        );
        let cnn = Architecture::Cnn {
            in_channels: 3,
            height: 32,
            width: 32,
            channels: vec![16, 32],
            classes: 10,
            activation: Activation::Relu,
        };
        // torch: Conv2d(3,16,3)=448, Conv2d(16,32,3)=4640, Linear(32*8*8,10)=20490
        assert_eq!(cnn.num_params(), 448 + 4640 + 20490);
        assert!(Architecture::Cnn {
            in_channels: 3,
            height: 30,
            width: 32,
            channels: vec![8, 8],
            classes: 10,
            activation: Activation::Relu
        }
        .validate()
        .is_err());
    }

    #[test]
    fn deep_models_match_torchvision_counts_and_names() {
        let resnet = Architecture::Resnet18 {
            in_channels: 3,
            height: 32,
            width: 32,
            classes: 10,
            base: 64,
        };
        // torchvision resnet18(num_classes=10) with the CIFAR stem (conv1 3×3, no max-pool)
        assert_eq!(resnet.num_params(), 11_173_962);
        let names: Vec<_> = resnet.param_specs().into_iter().map(|s| s.name).collect();
        assert_eq!(names.len(), 62);
        assert_eq!(&names[..3], ["conv1.weight", "bn1.weight", "bn1.bias"]);
        assert!(names.contains(&"layer2.0.downsample.0.weight".to_string()));
        assert!(names.contains(&"layer4.1.bn2.bias".to_string()));
        assert_eq!(&names[60..], ["fc.weight", "fc.bias"]);
        assert_eq!(resnet.batch_norm_layers().len(), 20);
        let vgg = |batch_norm| Architecture::Vgg11 {
            in_channels: 3,
            height: 32,
            width: 32,
            classes: 10,
            base: 64,
            batch_norm,
        };
        // torchvision vgg11 / vgg11_bn `features` + Linear(512, 10)
        assert_eq!(vgg(false).num_params(), 9_225_610);
        assert_eq!(vgg(true).num_params(), 9_231_114);
        let names: Vec<_> = vgg(true)
            .param_specs()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(
            &names[..6],
            [
                "features.0.weight",
                "features.0.bias",
                "features.1.weight",
                "features.1.bias",
                "features.4.weight",
                "features.4.bias"
            ]
        );
        assert!(names.contains(&"features.26.weight".to_string())); // last conv of vgg11_bn
        let names: Vec<_> = vgg(false)
            .param_specs()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert!(names.contains(&"features.18.weight".to_string())); // last conv of vgg11
        assert!(Architecture::Vgg11 {
            in_channels: 3,
            height: 28,
            width: 28,
            classes: 10,
            base: 64,
            batch_norm: true
        }
        .validate()
        .is_err());
    }

    #[test]
    fn deep_forward_and_backward_shapes() {
        let dev = Device::flex();
        for arch in [
            Architecture::Resnet18 {
                in_channels: 3,
                height: 32,
                width: 32,
                classes: 10,
                base: 8,
            },
            Architecture::Vgg11 {
                in_channels: 3,
                height: 32,
                width: 32,
                classes: 10,
                base: 8,
                batch_norm: true,
            },
        ] {
            let m = Model::init(&arch, 0, &dev).unwrap();
            let mut rng = Rng::new(1);
            let xs: Vec<f32> = (0..2 * 3072).map(|_| rng.normal() as f32).collect();
            let x = Tensor::<2>::from_data(TensorData::new(xs, [2, 3072]), &dev);
            assert_eq!(m.forward(x.clone()).dims(), [2, 10]);
            let leaves: Vec<Tensor<1>> = m
                .params
                .iter()
                .map(|p| p.clone().autodiff().require_grad())
                .collect();
            let z = forward(&arch, &leaves, x, Gates::Free);
            let grads = z.sum().backward();
            for (l, s) in leaves.iter().zip(arch.param_specs()) {
                let g = l.grad(&grads).expect("every parameter gets a gradient");
                assert_eq!(g.dims()[0], s.len(), "{}", s.name);
            }
        }
    }

    #[test]
    fn mlp_forward_by_hand() {
        let dev = Device::flex();
        let arch = Architecture::Mlp {
            input_dim: 2,
            hidden: vec![2],
            classes: 2,
            activation: Activation::Relu,
        };
        // W1 = [[1, -1], [2, 0]], b1 = [0, -1], W2 = [[1, 1], [0, -1]], b2 = [0.5, 0]
        let host = vec![
            vec![1.0, -1.0, 2.0, 0.0],
            vec![0.0, -1.0],
            vec![1.0, 1.0, 0.0, -1.0],
            vec![0.5, 0.0],
        ];
        let m = Model::from_host(&arch, &host, &dev).unwrap();
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 3.0], [1, 2]), &dev);
        // h = relu([1-3, 2-1]) = [0, 1]; z = [0+1+0.5, -1] = [1.5, -1]
        assert_eq!(tensor_to_vec(&m.forward(x)), vec![1.5, -1.0]);
    }

    #[test]
    fn fixed_gates_reproduce_the_free_pass() {
        let dev = Device::flex();
        let arch = Architecture::Cnn {
            in_channels: 2,
            height: 4,
            width: 4,
            channels: vec![3],
            classes: 3,
            activation: Activation::Relu,
        };
        let m = Model::init(&arch, 1, &dev).unwrap();
        let mut rng = Rng::new(2);
        let xs: Vec<f32> = (0..5 * 32).map(|_| rng.normal() as f32).collect();
        let x = Tensor::<2>::from_data(TensorData::new(xs, [5, 32]), &dev);
        let mut g = Vec::new();
        let a = forward(&arch, &m.params, x.clone(), Gates::Record(&mut g));
        let b = forward(&arch, &m.params, x.clone(), Gates::Fixed(&g));
        let c = m.forward(x);
        assert_eq!(g.len(), 2);
        assert_eq!(tensor_to_vec(&a), tensor_to_vec(&c));
        assert_eq!(tensor_to_vec(&b), tensor_to_vec(&c));
    }
}
