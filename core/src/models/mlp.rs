//! The multi-layer perceptron: d → hidden[0] → … → hidden[L−1] → C, the
//! activation after every hidden layer. PyTorch: an `nn.Sequential`-like
//! `layers` list of `nn.Linear`, names `layers.{i}.weight|bias`.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::params::{Input, Layout, Linear};
use super::{Activation, Architecture, KindInfo, ModelKind, Net, Pass, Shapes};
use crate::data::Dataset;
use crate::experiment::ModelConfig;
use crate::{Error, Result};

/// Fully connected: d → hidden[0] → … → hidden[L−1] → C, activation after
/// every hidden layer. PyTorch names `layers.{i}.weight|bias`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mlp {
    pub input_dim: usize,
    pub hidden: Vec<usize>,
    pub classes: usize,
    pub activation: Activation,
}

impl ModelKind {
    /// `mlp`: an [`Mlp`] of `hidden` widths on the flattened input.
    pub const MLP: ModelKind = ModelKind(&KindInfo {
        name: "mlp",
        label: "MLP",
        about: "MLP (fully connected)",
        in_browser: true,
        build: |_, cfg: &ModelConfig, data: &Dataset| {
            Ok(Architecture::Mlp(Mlp {
                input_dim: data.input_len(),
                hidden: cfg.hidden.clone(),
                classes: data.classes,
                activation: cfg.activation,
            }))
        },
        summary: |cfg: &ModelConfig| {
            let widths: Vec<String> = cfg.hidden.iter().map(usize::to_string).collect();
            format!("MLP {}", widths.join("×"))
        },
    });
}

impl Net for Mlp {
    fn kinds() -> &'static [ModelKind] {
        &[ModelKind::MLP]
    }

    /// `layers.{i}.weight` `[out, in]` and `layers.{i}.bias` `[out]`, the
    /// layers sorted by index, each weight chaining into the next. The
    /// activation is ReLU unless the caller sets another.
    fn infer(shapes: &Shapes) -> Option<std::result::Result<Mlp, String>> {
        let mut idx: Vec<usize> = shapes
            .keys()
            .filter_map(|k| {
                k.strip_prefix("layers.")?
                    .strip_suffix(".weight")?
                    .parse()
                    .ok()
            })
            .collect();
        if idx.is_empty() {
            return None;
        }
        idx.sort_unstable();
        let mut dims = Vec::new();
        for (n, &i) in idx.iter().enumerate() {
            let w = &shapes[&format!("layers.{i}.weight")];
            if w.len() != 2 {
                return Some(Err(format!(
                    "layers.{i}.weight has shape {w:?}, expected [out, in]"
                )));
            }
            let Some(b) = shapes.get(&format!("layers.{i}.bias")) else {
                return Some(Err(format!("layers.{i}.bias is missing")));
            };
            if *b != [w[0]] {
                return Some(Err(format!(
                    "layers.{i}.bias has shape {b:?}, expected [{}]",
                    w[0]
                )));
            }
            if n == 0 {
                dims.push(w[1]);
            } else if dims[n] != w[1] {
                return Some(Err(format!(
                    "layers.{i}.weight takes {} inputs but the previous layer gives {}",
                    w[1], dims[n]
                )));
            }
            dims.push(w[0]);
        }
        Some(Ok(Mlp {
            input_dim: dims[0],
            hidden: dims[1..dims.len() - 1].to_vec(),
            classes: dims[dims.len() - 1],
            activation: Activation::Relu,
        }))
    }

    fn input(&self) -> Input {
        Input::Vector(self.input_dim)
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn set_activation(&mut self, activation: Activation) {
        self.activation = activation;
    }

    /// Gates only with ReLU (an MLP has no pooling).
    fn has_gates(&self) -> bool {
        self.activation == Activation::Relu
    }

    fn validate(&self) -> Result<()> {
        let Mlp {
            input_dim,
            hidden,
            classes,
            ..
        } = self;
        if *input_dim == 0 || *classes < 2 || hidden.contains(&0) {
            return Err(Error::Config(format!(
                "MLP needs input_dim ≥ 1, classes ≥ 2 and non-zero widths (got d={input_dim}, hidden={hidden:?}, C={classes})"
            )));
        }
        Ok(())
    }

    /// Each hidden layer's pre- and post-activation, and the logits.
    fn activations(&self) -> f64 {
        2.0 * self.hidden.iter().map(|&h| h as f64).sum::<f64>() + self.classes as f64
    }

    fn declare(&self, p: &mut Layout) {
        let mut d = self.input_dim;
        for (i, &h) in self.hidden.iter().chain([&self.classes]).enumerate() {
            p.linear(&format!("layers.{i}"), Linear::new(d, h));
            d = h;
        }
    }

    fn forward_from_stem(&self, z1: Tensor<2>, p: &mut Pass) -> Tensor<2> {
        let mut h = z1;
        for l in 1..=self.hidden.len() {
            h = p.act(h, self.activation);
            h = p.linear(&format!("layers.{l}"), h);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::tensor_to_vec;
    use crate::models::Model;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn parameter_counts_and_names() {
        let mlp = Architecture::Mlp(Mlp {
            input_dim: 3072,
            hidden: vec![512, 512],
            classes: 10,
            activation: Activation::Relu,
        });
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
    }

    #[test]
    fn mlp_forward_by_hand() {
        let dev = Device::flex();
        let arch = Architecture::Mlp(Mlp {
            input_dim: 2,
            hidden: vec![2],
            classes: 2,
            activation: Activation::Relu,
        });
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
    fn inference_from_names_and_its_errors() {
        let shapes = |v: &[(&str, &[usize])]| -> Shapes {
            v.iter().map(|(n, s)| (n.to_string(), s.to_vec())).collect()
        };
        let ok = shapes(&[
            ("layers.0.weight", &[4, 3]),
            ("layers.0.bias", &[4]),
            ("layers.2.weight", &[2, 4]),
            ("layers.2.bias", &[2]),
        ]);
        assert_eq!(
            Mlp::infer(&ok).unwrap().unwrap(),
            Mlp {
                input_dim: 3,
                hidden: vec![4],
                classes: 2,
                activation: Activation::Relu
            }
        );
        assert!(Mlp::infer(&shapes(&[("fc.weight", &[2, 3])])).is_none());
        let broken = shapes(&[
            ("layers.0.weight", &[4, 3]),
            ("layers.0.bias", &[4]),
            ("layers.1.weight", &[2, 5]),
            ("layers.1.bias", &[2]),
        ]);
        let e = Mlp::infer(&broken).unwrap().unwrap_err();
        assert!(
            e.contains("takes 5 inputs but the previous layer gives 4"),
            "{e}"
        );
    }
}
