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
use burn::tensor::module::{conv2d, max_pool2d, max_pool2d_with_indices};
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
}

/// Name and PyTorch shape of one parameter tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    /// fan-in used by PyTorch's default initialisation.
    pub fan_in: usize,
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
            Architecture::Mlp { classes, .. } | Architecture::Cnn { classes, .. } => *classes,
        }
    }

    /// Input length d.
    pub fn input_len(&self) -> usize {
        match self {
            Architecture::Mlp { input_dim, .. } => *input_dim,
            Architecture::Cnn {
                in_channels,
                height,
                width,
                ..
            } => in_channels * height * width,
        }
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        match self {
            Architecture::Mlp { activation, .. } | Architecture::Cnn { activation, .. } => {
                *activation
            }
        }
    }

    /// True when the forward pass has gates (ReLU or max-pool) to fix for
    /// finite-difference curvature.
    pub fn has_gates(&self) -> bool {
        matches!(self, Architecture::Cnn { .. }) || self.activation() == Activation::Relu
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
                fan_in,
            });
            specs.push(ParamSpec {
                name: format!("{name}.bias"),
                shape: vec![out],
                fan_in,
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
                        fan_in,
                    });
                    specs.push(ParamSpec {
                        name: format!("features.{}.bias", 3 * i),
                        shape: vec![co],
                        fan_in,
                    });
                    c = co;
                }
                let div = 1usize << channels.len();
                let flat = c * (height / div) * (width / div);
                linear("classifier".into(), flat, *classes, &mut specs);
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

/// A model: its architecture and its parameters θ (flat tensors, PyTorch order).
#[derive(Clone, Debug)]
pub struct Model {
    pub arch: Architecture,
    pub params: Vec<Tensor<1>>,
}

impl Model {
    /// PyTorch's default initialisation (kaiming_uniform(a=√5) for weights,
    /// U(−1/√fan_in, 1/√fan_in) for biases — both U(−1/√fan_in, 1/√fan_in)),
    /// drawn on the host from `seed`, so identical on every backend.
    pub fn init(arch: &Architecture, seed: u64, device: &Device) -> Result<Model> {
        arch.validate()?;
        let mut rng = Rng::derived(seed, "init");
        let host: Vec<Vec<f32>> = arch
            .param_specs()
            .iter()
            .map(|s| {
                let bound = 1.0 / (s.fan_in as f64).sqrt();
                (0..s.len())
                    .map(|_| rng.uniform_in(-bound, bound) as f32)
                    .collect()
            })
            .collect();
        Model::from_host(arch, &host, device)
    }

    /// Builds a model from host values (one Vec per parameter, PyTorch order).
    pub fn from_host(arch: &Architecture, host: &[Vec<f32>], device: &Device) -> Result<Model> {
        arch.validate()?;
        let specs = arch.param_specs();
        if specs.len() != host.len() {
            return Err(Error::Shape(format!(
                "{} parameter tensors given, architecture has {}",
                host.len(),
                specs.len()
            )));
        }
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
                Ok(Tensor::<1>::from_data(
                    TensorData::new(v.clone(), [v.len()]),
                    device,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Model {
            arch: arch.clone(),
            params,
        })
    }

    /// Parameters copied to the host.
    pub fn to_host(&self) -> Vec<Vec<f32>> {
        self.params.iter().map(tensor_to_vec).collect()
    }

    /// θ as one flat host vector (PyTorch order).
    pub fn flat(&self) -> Vec<f32> {
        self.to_host().concat()
    }

    /// The device θ lives on.
    pub fn device(&self) -> Device {
        self.params[0].device()
    }

    /// Logits for a batch `[B, d]` (eval mode; there is no train/eval
    /// difference in these BatchNorm-free models).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        forward(&self.arch, &self.params, x, Gates::Free)
    }
}

/// Reads a tensor's values to the host as f32.
pub fn tensor_to_vec<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.to_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor data")
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

/// f(x; θ) with `params` in [`Architecture::param_specs`] order.
///
/// `x`: `[B, d]`; returns logits `[B, C]`.
pub fn forward(
    arch: &Architecture,
    params: &[Tensor<1>],
    x: Tensor<2>,
    mut gates: Gates,
) -> Tensor<2> {
    let specs = arch.param_specs();
    let p2 = |i: usize| -> Tensor<2> {
        let s = &specs[i].shape;
        params[i].clone().reshape([s[0], s[1]])
    };
    let mut k = 0usize;
    let a = arch.activation();
    match arch {
        Architecture::Mlp { hidden, .. } => {
            let mut h = x;
            for l in 0..=hidden.len() {
                h = h.matmul(p2(2 * l).transpose()) + params[2 * l + 1].clone().unsqueeze::<2>();
                if l < hidden.len() {
                    h = act(h, a, &mut gates, &mut k);
                }
            }
            h
        }
        Architecture::Cnn {
            in_channels,
            height,
            width,
            channels,
            ..
        } => {
            let b = x.dims()[0];
            let mut h: Tensor<4> = x.reshape([b, *in_channels, *height, *width]);
            for l in 0..channels.len() {
                let s = &specs[2 * l].shape;
                let w: Tensor<4> = params[2 * l].clone().reshape([s[0], s[1], s[2], s[3]]);
                h = conv2d(
                    h,
                    w,
                    Some(params[2 * l + 1].clone()),
                    ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
                );
                h = act(h, a, &mut gates, &mut k);
                h = pool(h, &mut gates, &mut k);
            }
            let l = channels.len();
            let flat: Tensor<2> = h.reshape([b as i64, -1]);
            flat.matmul(p2(2 * l).transpose()) + params[2 * l + 1].clone().unsqueeze::<2>()
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
