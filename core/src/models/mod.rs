//! Models f(x; θ), one file per architecture (`mlp.rs`, `cnn.rs`, `vgg.rs`,
//! `resnet.rs`), written as pure functions of a flat parameter list so that
//! curvature code can perturb θ freely (θ ± εv) without touching module state.
//!
//! Parameters are kept in PyTorch's layout and order (Linear weight
//! `[out, in]`, Conv2d weight `[out, in, kh, kw]`, bias `[out]`), each stored
//! as a flat `Tensor<1>`; so the flat θ of curvlab is the flat θ of the same
//! PyTorch model (`torch.cat([p.flatten() for p in model.parameters()])`).
//!
//! # A model
//! A model is a config struct (its JSON is the model's entry in safetensors
//! metadata and checkpoints) implementing [`Net`]: `declare` names each layer
//! once, in PyTorch's order ([`params::Layout`]: that one declaration gives
//! θ's layout, initialisation, safetensors names, BatchNorm buffers and the
//! stem), and `forward_from_stem` takes the layers back by name through a
//! [`Pass`], which checks them against the declaration. Adding a model is its
//! file plus its line in `register!` below (and its `mod` line); the
//! [`Architecture`] enum, [`ModelKind`]'s names (TOML, `--model`, the web
//! page's menu) and safetensors inference follow from the registry.
//!
//! # Activation gates
//! See [`gates`]: ReLU and max-pool gates recorded at θ and fixed in the
//! passes at θ ± εv give the generalised Hessian.
//!
//! # Shapes
//! Input `[B, d]` (images flattened in (c, h, w) order), output logits `[B, C]`.

use std::collections::HashMap;
use std::fmt;

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::backend::tensor_to_vec;
use crate::data::Dataset;
use crate::experiment::ModelConfig;
use crate::rng::Rng;
use crate::{Error, Result};

pub mod batch_norm;
pub mod forward;
pub mod gates;
pub mod params;

pub use batch_norm::{Bn, BnMode, BN_EPS, BN_MOMENTUM};
pub use forward::{
    forward, forward_bn, forward_from_stem, stem, stem_gradients, stem_param_count, Pass,
};
pub use gates::{Activation, Gate, Gates};
pub use params::{Init, Input, Layout, ParamSpec};
pub use vgg::VGG11_LAYERS;

/// One architecture: its hyper-parameters (the implementing struct, whose
/// JSON is the architecture's), its declaration and its forward pass.
///
/// Implementations are registered in `register!`; everything else
/// (initialisation, safetensors names, BatchNorm buffers, the stem that
/// curvature code caches) is derived from [`Net::declare`].
pub trait Net: fmt::Debug {
    /// The names under which a run asks for this architecture (`model.kind`).
    fn kinds() -> &'static [ModelKind]
    where
        Self: Sized;

    /// This architecture recognised from a PyTorch state dict without
    /// curvlab's metadata (tensor name → shape): `None` when the names are
    /// not this model's, an error when they are but the shapes do not fit.
    fn infer(_shapes: &Shapes) -> Option<std::result::Result<Self, String>>
    where
        Self: Sized,
    {
        None
    }

    /// What the model reads.
    fn input(&self) -> Input;

    /// Number of classes C (output width).
    fn classes(&self) -> usize;

    /// The hidden-unit nonlinearity.
    fn activation(&self) -> Activation {
        Activation::Relu
    }

    /// Sets the nonlinearity where it is a setting of the model (a no-op for
    /// models whose nonlinearity is fixed).
    fn set_activation(&mut self, _activation: Activation) {}

    /// True when the forward pass has gates (ReLU or max-pool) to fix for
    /// finite-difference curvature.
    fn has_gates(&self) -> bool {
        true
    }

    /// Checks that the hyper-parameters can work.
    fn validate(&self) -> Result<()>;

    /// Values one example's forward pass creates: every layer's output
    /// (linear or convolution, BatchNorm, nonlinearity, pooling, residual
    /// sum). The activations term of the memory estimate ([`crate::memory`]);
    /// a float, so that absurd sizes cannot overflow.
    fn activations(&self) -> f64;

    /// Declares every layer once, in PyTorch's `parameters()` order; the first
    /// reads the input (the stem: a linear layer for vector input, a
    /// convolution for images).
    fn declare(&self, p: &mut Layout);

    /// Logits `[B, C]` from the stem's output `z1` (`[B, m]`; for a
    /// convolutional stem [`Pass::stem_image`] gives it as an image), taking
    /// every later layer through `p` in declaration order.
    fn forward_from_stem(&self, z1: Tensor<2>, p: &mut Pass) -> Tensor<2>;
}

/// Tensor name → shape, for [`Net::infer`].
pub type Shapes = HashMap<String, Vec<usize>>;

/// Generates, from one `file::Type` line per architecture, the
/// [`Architecture`] enum (JSON `{"kind": "<lowercase type name>", …fields}`),
/// its dispatch to [`Net`], and the lists of kinds and of safetensors
/// recognisers, in registration order.
macro_rules! register {
    ($($file:ident :: $net:ident),+ $(,)?) => {
        $(pub use $file::$net;)+

        /// A network architecture: one variant per registered [`Net`].
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "lowercase")]
        pub enum Architecture {
            $($net($net),)+
        }

        $(impl From<$net> for Architecture {
            fn from(net: $net) -> Architecture {
                Architecture::$net(net)
            }
        })+

        impl Architecture {
            /// The architecture's [`Net`].
            pub fn net(&self) -> &dyn Net {
                match self {
                    $(Architecture::$net(n) => n,)+
                }
            }

            fn net_mut(&mut self) -> &mut dyn Net {
                match self {
                    $(Architecture::$net(n) => n,)+
                }
            }
        }

        /// Every registered kind, in registration order.
        fn registered_kinds() -> impl Iterator<Item = ModelKind> {
            [$(<$net as Net>::kinds()),+].into_iter().flatten().copied()
        }

        /// The first registered architecture that recognises `shapes`.
        fn infer_registered(shapes: &Shapes) -> Option<std::result::Result<Architecture, String>> {
            $(if let Some(r) = <$net as Net>::infer(shapes) {
                return Some(r.map(Architecture::from));
            })+
            None
        }
    };
}

pub mod cnn;
pub mod mlp;
pub mod resnet;
pub mod vgg;

register! {
    mlp::Mlp,
    cnn::Cnn,
    vgg::Vgg11,
    resnet::Resnet18,
}

impl Architecture {
    /// The declaration: every layer and parameter tensor, in PyTorch order.
    pub fn layout(&self) -> Layout {
        let net = self.net();
        let mut layout = Layout::new(net.input());
        net.declare(&mut layout);
        layout
    }

    /// Number of classes C (output width).
    pub fn classes(&self) -> usize {
        self.net().classes()
    }

    /// Image shape `[c, h, w]` (None for vector input).
    pub fn image_shape(&self) -> Option<[usize; 3]> {
        match self.net().input() {
            Input::Image(s) => Some(s),
            Input::Vector(_) => None,
        }
    }

    /// Input length d.
    pub fn input_len(&self) -> usize {
        match self.net().input() {
            Input::Image(s) => s.iter().product(),
            Input::Vector(d) => d,
        }
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        self.net().activation()
    }

    /// Sets the activation where the model has it as a setting (MLP, CNN).
    pub fn set_activation(&mut self, activation: Activation) {
        self.net_mut().set_activation(activation)
    }

    /// True when the forward pass has gates (ReLU or max-pool) to fix for
    /// finite-difference curvature.
    pub fn has_gates(&self) -> bool {
        self.net().has_gates()
    }

    /// True when the model has BatchNorm layers (train and eval mode differ).
    pub fn has_batch_norm(&self) -> bool {
        !self.batch_norm_layers().is_empty()
    }

    /// The BatchNorm layers in forward order: (name prefix, channels). Their
    /// running statistics are the model's buffers
    /// (`{prefix}.running_mean`, `{prefix}.running_var`).
    pub fn batch_norm_layers(&self) -> Vec<(String, usize)> {
        self.layout().batch_norm_layers()
    }

    /// Checks that the architecture can work.
    pub fn validate(&self) -> Result<()> {
        self.net().validate()
    }

    /// Values one example's forward pass creates ([`Net::activations`]).
    pub fn activations(&self) -> f64 {
        self.net().activations()
    }

    /// Number of parameters P as a float, computed without overflow (for
    /// sizes checked before anything is allocated).
    pub fn num_params_f64(&self) -> f64 {
        self.param_specs()
            .iter()
            .map(|s| s.shape.iter().map(|&d| d as f64).product::<f64>())
            .sum()
    }

    /// The parameter tensors, in PyTorch's `parameters()` order.
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        self.layout().params
    }

    /// Total number of parameters P.
    pub fn num_params(&self) -> usize {
        self.param_specs().iter().map(ParamSpec::len).sum()
    }

    /// The architecture a PyTorch state dict without curvlab's metadata holds
    /// (tensor name → shape), recognised by the first registered model that
    /// knows its names.
    pub fn infer(shapes: &Shapes) -> std::result::Result<Architecture, String> {
        infer_registered(shapes).unwrap_or_else(|| {
            let mut names: Vec<&String> = shapes.keys().collect();
            names.sort();
            names.truncate(5);
            Err(format!(
                "no model recognises these tensors (e.g. {names:?}); expected an MLP \
                 ('layers.{{i}}.weight'), a torchvision ResNet18 or a VGG11"
            ))
        })
    }
}

/// What a run can ask for by name: one entry of the registry. Each model file
/// declares its own ([`Net::kinds`]).
#[derive(Debug)]
pub struct KindInfo {
    /// The name in TOML, config.json and `--model` (`mlp`, `vgg11_bn`).
    pub name: &'static str,
    /// The name in messages and legends (`MLP`, `VGG11-BN`).
    pub label: &'static str,
    /// One line for `--help` and the web page's menu.
    pub about: &'static str,
    /// Offered by the browser page (small enough to train in a tab).
    pub in_browser: bool,
    /// The architecture for a model config and the data it trains on (the
    /// kind is this one, for messages and variants).
    pub build: fn(ModelKind, &ModelConfig, &Dataset) -> Result<Architecture>,
    /// The config's sizes in a legend ("MLP 256×256").
    pub summary: fn(&ModelConfig) -> String,
}

/// A model kind (`model.kind`): a handle to its registry entry. Serialised as
/// its name.
#[derive(Clone, Copy)]
pub struct ModelKind(&'static KindInfo);

impl ModelKind {
    /// Every registered kind, in registration order.
    pub fn all() -> impl Iterator<Item = ModelKind> {
        registered_kinds()
    }

    /// The kind called `name`, if registered.
    pub fn named(name: &str) -> Option<ModelKind> {
        ModelKind::all().find(|k| k.name() == name)
    }

    /// The name in TOML, config.json and `--model`.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The name used in messages.
    pub fn display_name(self) -> &'static str {
        self.0.label
    }

    /// One line describing the model.
    pub fn about(self) -> &'static str {
        self.0.about
    }

    /// Whether the browser page offers it.
    pub fn in_browser(self) -> bool {
        self.0.in_browser
    }

    /// The architecture of `cfg` for `data` (not yet validated).
    pub fn architecture(self, cfg: &ModelConfig, data: &Dataset) -> Result<Architecture> {
        (self.0.build)(self, cfg, data)
    }

    /// A short description of `cfg` for legends ("MLP 256×256", "CNN 16-32").
    pub fn summary(self, cfg: &ModelConfig) -> String {
        (self.0.summary)(cfg)
    }

    /// `[c, h, w]` of `data`, which this kind needs as image inputs.
    pub fn image_input(self, data: &Dataset) -> Result<[usize; 3]> {
        match *data.input_shape.as_slice() {
            [c, h, w] => Ok([c, h, w]),
            _ => Err(Error::Shape(format!(
                "a {} needs image inputs [c, h, w]; {} has inputs of shape {:?}",
                self.display_name(),
                data.name,
                data.input_shape
            ))),
        }
    }

    fn names() -> String {
        let names: Vec<&str> = ModelKind::all().map(ModelKind::name).collect();
        names.join(", ")
    }
}

impl Default for ModelKind {
    fn default() -> Self {
        ModelKind::MLP
    }
}

impl PartialEq for ModelKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for ModelKind {}

impl fmt::Debug for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelKind({})", self.name())
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ModelKind::named(s).ok_or_else(|| {
            Error::Config(format!(
                "unknown model '{s}' (expected one of {})",
                ModelKind::names()
            ))
        })
    }
}

impl Serialize for ModelKind {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ModelKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ModelKind::named(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown model kind `{name}`, expected one of {}",
                ModelKind::names()
            ))
        })
    }
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
        let layout = arch.layout();
        let specs = &layout.params;
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
        let layers = layout.batch_norm_layers();
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small dataset of 3×32×32 images with 4 classes (shape only).
    pub(crate) fn images() -> Dataset {
        Dataset {
            x: Vec::new(),
            y: Vec::new(),
            input_shape: vec![3, 32, 32],
            classes: 4,
            name: "images".into(),
        }
    }

    /// One small architecture per registered kind.
    pub(crate) fn one_of_each() -> Vec<Architecture> {
        let cfg = ModelConfig {
            hidden: vec![6, 5],
            channels: vec![3, 4],
            activation: Activation::Relu,
            width: 4,
            ..ModelConfig::default()
        };
        ModelKind::all()
            .map(|k| {
                let arch = k.architecture(&cfg, &images()).unwrap();
                arch.validate().unwrap();
                arch
            })
            .collect()
    }

    #[test]
    fn registry_names_are_the_serialised_ones() {
        let names: Vec<&str> = ModelKind::all().map(ModelKind::name).collect();
        assert_eq!(names, ["mlp", "cnn", "vgg11", "vgg11_bn", "resnet18"]);
        for k in ModelKind::all() {
            assert_eq!(k.name().parse::<ModelKind>().unwrap(), k);
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
            let back: ModelKind = serde_json::from_str(&format!("\"{}\"", k.name())).unwrap();
            assert_eq!(back, k);
        }
        assert_eq!(ModelKind::default(), ModelKind::MLP);
        let e = "vgg16".parse::<ModelKind>().unwrap_err().to_string();
        assert!(
            e.contains("unknown model 'vgg16'") && e.contains("vgg11_bn, resnet18"),
            "{e}"
        );
        let e = serde_json::from_str::<ModelKind>("\"vgg16\"").unwrap_err();
        assert!(e.to_string().contains("unknown model kind `vgg16`"), "{e}");
        let browser: Vec<&str> = ModelKind::all()
            .filter(|k| k.in_browser())
            .map(ModelKind::name)
            .collect();
        assert_eq!(browser, ["mlp", "cnn"]);
    }

    /// Checkpoints, safetensors metadata and config.json of existing runs hold
    /// the architecture in this JSON form: it must read and write byte for byte.
    #[test]
    fn architecture_json_is_the_stored_format() {
        let old = [
            r#"{"kind":"mlp","input_dim":3072,"hidden":[512,512],"classes":10,"activation":"relu"}"#,
            r#"{"kind":"cnn","in_channels":3,"height":32,"width":32,"channels":[16,32],"classes":10,"activation":"tanh"}"#,
            r#"{"kind":"vgg11","in_channels":3,"height":32,"width":32,"classes":10,"base":64,"batch_norm":true}"#,
            r#"{"kind":"vgg11","in_channels":1,"height":64,"width":32,"classes":5,"base":8,"batch_norm":false}"#,
            r#"{"kind":"resnet18","in_channels":3,"height":32,"width":32,"classes":100,"base":64}"#,
        ];
        let want = [
            Architecture::Mlp(Mlp {
                input_dim: 3072,
                hidden: vec![512, 512],
                classes: 10,
                activation: Activation::Relu,
            }),
            Architecture::Cnn(Cnn {
                in_channels: 3,
                height: 32,
                width: 32,
                channels: vec![16, 32],
                classes: 10,
                activation: Activation::Tanh,
            }),
            Architecture::Vgg11(Vgg11 {
                in_channels: 3,
                height: 32,
                width: 32,
                classes: 10,
                base: 64,
                batch_norm: true,
            }),
            Architecture::Vgg11(Vgg11 {
                in_channels: 1,
                height: 64,
                width: 32,
                classes: 5,
                base: 8,
                batch_norm: false,
            }),
            Architecture::Resnet18(Resnet18 {
                in_channels: 3,
                height: 32,
                width: 32,
                classes: 100,
                base: 64,
            }),
        ];
        for (json, arch) in old.iter().zip(&want) {
            let read: Architecture = serde_json::from_str(json).unwrap();
            assert_eq!(&read, arch);
            assert_eq!(&serde_json::to_string(arch).unwrap(), json);
        }
    }

    #[test]
    fn config_builds_each_kind_and_checks_inputs() {
        let cfg = ModelConfig::default();
        let vectors = Dataset {
            input_shape: vec![32],
            name: "vectors".into(),
            ..images()
        };
        let mlp = ModelKind::MLP.architecture(&cfg, &vectors).unwrap();
        assert_eq!(mlp.input_len(), 32);
        assert_eq!(mlp.image_shape(), None);
        for k in [
            ModelKind::CNN,
            ModelKind::VGG11,
            ModelKind::VGG11_BN,
            ModelKind::RESNET18,
        ] {
            let e = k.architecture(&cfg, &vectors).unwrap_err().to_string();
            assert!(
                e.contains(&format!("a {} needs image inputs", k.display_name())),
                "{e}"
            );
            let arch = k.architecture(&cfg, &images()).unwrap();
            assert_eq!(arch.image_shape(), Some([3, 32, 32]));
            assert_eq!(arch.classes(), 4);
        }
        let bn = |k: ModelKind| k.architecture(&cfg, &images()).unwrap().has_batch_norm();
        assert!(!bn(ModelKind::VGG11) && bn(ModelKind::VGG11_BN) && bn(ModelKind::RESNET18));
        assert_eq!(
            ModelKind::MLP.summary(&ModelConfig {
                hidden: vec![256, 128],
                ..cfg.clone()
            }),
            "MLP 256×128"
        );
        assert_eq!(ModelKind::CNN.summary(&cfg), "CNN 16-32");
        assert_eq!(ModelKind::RESNET18.summary(&cfg), "ResNet18 (width 64)");
    }

    #[test]
    fn safetensors_names_are_recognised_by_their_model() {
        // The small CNN is only read from curvlab's own files (with metadata).
        for arch in one_of_each()
            .into_iter()
            .filter(|a| !matches!(a, Architecture::Cnn(_)))
        {
            let shapes: Shapes = arch
                .param_specs()
                .into_iter()
                .map(|s| (s.name, s.shape))
                .collect();
            let mut got = Architecture::infer(&shapes).unwrap();
            got.set_activation(arch.activation());
            assert_eq!(got, arch);
        }
        let shapes = Shapes::from([("encoder.weight".to_string(), vec![3, 4])]);
        let e = Architecture::infer(&shapes).unwrap_err();
        assert!(
            e.contains("no model recognises") && e.contains("encoder.weight"),
            "{e}"
        );
    }
}
