//! The small CNN: for each entry of `channels`, conv 3×3 (padding 1) →
//! activation → max-pool 2×2; then one linear layer to C. PyTorch: an
//! `nn.Sequential` `features` of (conv, act, pool) triples, names
//! `features.{3i}.weight|bias`, and `classifier.weight|bias`.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::params::{Conv2d, Input, Layout, Linear};
use super::{Activation, Architecture, KindInfo, ModelKind, Net, Pass};
use crate::data::Dataset;
use crate::experiment::ModelConfig;
use crate::{Error, Result};

/// Small CNN: for each entry of `channels`, conv 3×3 (padding 1) →
/// activation → max-pool 2×2; then one linear layer to C. PyTorch names
/// `features.{3i}.weight|bias` (nn.Sequential of conv, act, pool) and
/// `classifier.weight|bias`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cnn {
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub channels: Vec<usize>,
    pub classes: usize,
    pub activation: Activation,
}

impl ModelKind {
    /// `cnn`: a [`Cnn`] with `channels` per block.
    pub const CNN: ModelKind = ModelKind(&KindInfo {
        name: "cnn",
        label: "CNN",
        about: "small CNN (conv 3×3 + max-pool blocks)",
        in_browser: true,
        build: |kind, cfg: &ModelConfig, data: &Dataset| {
            let [in_channels, height, width] = kind.image_input(data)?;
            Ok(Architecture::Cnn(Cnn {
                in_channels,
                height,
                width,
                channels: cfg.channels.clone(),
                classes: data.classes,
                activation: cfg.activation,
            }))
        },
        summary: |cfg: &ModelConfig| {
            let widths: Vec<String> = cfg.channels.iter().map(usize::to_string).collect();
            format!("CNN {}", widths.join("-"))
        },
    });
}

impl Net for Cnn {
    fn kinds() -> &'static [ModelKind] {
        &[ModelKind::CNN]
    }

    fn input(&self) -> Input {
        Input::Image([self.in_channels, self.height, self.width])
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

    fn validate(&self) -> Result<()> {
        let Cnn {
            in_channels,
            height,
            width,
            channels,
            classes,
            ..
        } = self;
        if *in_channels == 0 || *classes < 2 || channels.is_empty() || channels.contains(&0) {
            return Err(Error::Config(
                "CNN needs ≥ 1 input channel, ≥ 1 non-zero conv layer and ≥ 2 classes".into(),
            ));
        }
        // Each block's 2×2 max-pool halves an even height and width, so L
        // blocks need both divisible by 2^L: at most the number of times 2
        // divides the smaller of them (5 for 32×32 images).
        let fits = |n: usize| n > 0 && channels.len() <= n.trailing_zeros() as usize;
        if !fits(*height) || !fits(*width) {
            let most = height.trailing_zeros().min(width.trailing_zeros());
            return Err(Error::Shape(format!(
                "CNN with {} pooling layers needs height and width divisible by 2^{} (got {height}×{width}): at most {most} conv blocks (model.channels entries) fit",
                channels.len(),
                channels.len()
            )));
        }
        Ok(())
    }

    /// Per block at its resolution: the convolution and the activation, then
    /// the pooled map (a quarter); and the logits.
    fn activations(&self) -> f64 {
        let mut area = (self.height * self.width) as f64;
        let mut n = self.classes as f64;
        for &c in &self.channels {
            n += 2.25 * c as f64 * area;
            area /= 4.0;
        }
        n
    }

    fn declare(&self, p: &mut Layout) {
        let mut c = self.in_channels;
        for (i, &co) in self.channels.iter().enumerate() {
            p.conv(
                &format!("features.{}", 3 * i),
                Conv2d::new(c, co, 3).padding(1),
            );
            c = co;
        }
        let div = 1usize << self.channels.len();
        let flat = c * (self.height / div) * (self.width / div);
        p.linear("classifier", Linear::new(flat, self.classes));
    }

    fn forward_from_stem(&self, z1: Tensor<2>, p: &mut Pass) -> Tensor<2> {
        let b = z1.dims()[0];
        let mut h = p.stem_image(z1);
        for l in 0..self.channels.len() {
            if l > 0 {
                h = p.conv(&format!("features.{}", 3 * l), h);
            }
            h = p.act(h, self.activation);
            h = p.max_pool(h);
        }
        p.linear("classifier", h.reshape([b as i64, -1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::tensor_to_vec;
    use crate::models::{forward, Gates, Model};
    use crate::rng::Rng;
    use burn::tensor::{Device, TensorData};

    fn cnn(height: usize, channels: Vec<usize>) -> Cnn {
        Cnn {
            in_channels: 3,
            height,
            width: 32,
            channels,
            classes: 10,
            activation: Activation::Relu,
        }
    }

    #[test]
    fn parameter_count_and_validation() {
        // torch: Conv2d(3,16,3)=448, Conv2d(16,32,3)=4640, Linear(32*8*8,10)=20490
        let arch = Architecture::Cnn(cnn(32, vec![16, 32]));
        assert_eq!(arch.num_params(), 448 + 4640 + 20490);
        let names: Vec<_> = arch.param_specs().into_iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "features.0.weight",
                "features.0.bias",
                "features.3.weight",
                "features.3.bias",
                "classifier.weight",
                "classifier.bias"
            ]
        );
        assert!(cnn(30, vec![8, 8]).validate().is_err());
        // 32 = 2^5: five 2×2 pools fit, six do not; 64 or 65 blocks (a shift
        // past the word size) are refused, not wrapped around.
        assert!(cnn(32, vec![4; 5]).validate().is_ok());
        for blocks in [6, 63, 64, 65] {
            let e = cnn(32, vec![4; blocks]).validate().unwrap_err().to_string();
            assert!(e.contains("at most 5 conv blocks"), "{blocks}: {e}");
        }
    }

    #[test]
    fn fixed_gates_reproduce_the_free_pass() {
        let dev = Device::flex();
        let arch = Architecture::Cnn(Cnn {
            in_channels: 2,
            height: 4,
            width: 4,
            channels: vec![3],
            classes: 3,
            activation: Activation::Relu,
        });
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
