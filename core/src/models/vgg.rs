//! VGG11 (configuration "A") with or without BatchNorm, for CIFAR-size
//! images: torchvision's `features` and, as in the CIFAR variants, one linear
//! `classifier` on the flattened map.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::params::{Conv2d, Input, LayerInit, Layout, Linear};
use super::{Architecture, KindInfo, ModelKind, Net, Pass, Shapes};
use crate::data::Dataset;
use crate::experiment::ModelConfig;
use crate::{Error, Result};

/// VGG11 (configuration "A": 64, M, 128, M, 256, 256, M, 512, 512, M,
/// 512, 512, M) for CIFAR-size images: torchvision's `features`
/// (conv 3×3 with bias [+ BatchNorm] + ReLU; max-pool 2×2) and, as in
/// the CIFAR variants, one linear `classifier` on the flattened map.
/// Widths scale as `base`/64 (64 = the paper's network).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vgg11 {
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    pub base: usize,
    pub batch_norm: bool,
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

/// VGG11 (`kind` [`ModelKind::VGG11_BN`]: with BatchNorm) for `cfg` (base
/// width `cfg.width`) on `data`'s images.
fn build(kind: ModelKind, cfg: &ModelConfig, data: &Dataset) -> Result<Architecture> {
    let [in_channels, height, width] = kind.image_input(data)?;
    Ok(Architecture::Vgg11(Vgg11 {
        in_channels,
        height,
        width,
        classes: data.classes,
        base: cfg.width,
        batch_norm: kind == ModelKind::VGG11_BN,
    }))
}

impl ModelKind {
    /// `vgg11`: [`Vgg11`] without BatchNorm, base width `width`.
    pub const VGG11: ModelKind = ModelKind(&KindInfo {
        name: "vgg11",
        label: "VGG11",
        about: "VGG11 (torchvision features, linear classifier)",
        in_browser: false,
        build,
        summary: |cfg: &ModelConfig| format!("VGG11 (width {})", cfg.width),
    });

    /// `vgg11_bn`: [`Vgg11`] with BatchNorm after every convolution.
    pub const VGG11_BN: ModelKind = ModelKind(&KindInfo {
        name: "vgg11_bn",
        label: "VGG11-BN",
        about: "VGG11 with BatchNorm after every convolution",
        in_browser: false,
        build,
        summary: |cfg: &ModelConfig| format!("VGG11-BN (width {})", cfg.width),
    });
}

impl Net for Vgg11 {
    fn kinds() -> &'static [ModelKind] {
        &[ModelKind::VGG11, ModelKind::VGG11_BN]
    }

    /// torchvision's `features.*` and `classifier` names (BatchNorm when
    /// `features.1` is one), square images: 32×32 unless the classifier's
    /// input size says otherwise.
    fn infer(shapes: &Shapes) -> Option<std::result::Result<Vgg11, String>> {
        let (f0, cl) = (
            shapes.get("features.0.weight")?,
            shapes.get("classifier.weight")?,
        );
        if f0.len() != 4 || cl.len() != 2 {
            return None;
        }
        let batch_norm = shapes
            .get("features.1.weight")
            .is_some_and(|s| s.len() == 1);
        let base = f0[0];
        let last = scaled(512, base);
        let cells = cl[1] / last;
        let side = (cells as f64).sqrt().round() as usize;
        if side == 0 || side * side * last != cl[1] {
            return Some(Err(format!(
                "classifier.weight {cl:?} does not fit VGG11 with base width {base}"
            )));
        }
        Some(Ok(Vgg11 {
            in_channels: f0[1],
            height: 32 * side,
            width: 32 * side,
            classes: cl[0],
            base,
            batch_norm,
        }))
    }

    fn input(&self) -> Input {
        Input::Image([self.in_channels, self.height, self.width])
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn validate(&self) -> Result<()> {
        let Vgg11 {
            in_channels,
            height,
            width,
            classes,
            base,
            ..
        } = self;
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
        Ok(())
    }

    /// Per conv block at its resolution: the convolution, [BatchNorm,] ReLU;
    /// each max-pool's output (a quarter of its input); and the logits.
    fn activations(&self) -> f64 {
        let per_conv = if self.batch_norm { 3.0 } else { 2.0 };
        let mut area = (self.height * self.width) as f64;
        let mut c = self.in_channels as f64;
        let mut n = self.classes as f64;
        for layer in VGG11_LAYERS {
            match layer {
                Some(co) => {
                    c = scaled(co, self.base) as f64;
                    n += per_conv * c * area;
                }
                None => {
                    area /= 4.0;
                    n += c * area;
                }
            }
        }
        n
    }

    /// torchvision `VGG._initialize_weights`: conv kaiming_normal (fan_out),
    /// bias 0; BatchNorm 1, 0; Linear N(0, 0.01), bias 0. `features` indices
    /// count every module of the Sequential (conv, [BatchNorm,] ReLU; pool).
    fn declare(&self, p: &mut Layout) {
        let mut c = self.in_channels;
        let mut idx = 0;
        for layer in VGG11_LAYERS {
            let Some(co) = layer else {
                idx += 1;
                continue;
            };
            let co = scaled(co, self.base);
            let conv = Conv2d::new(c, co, 3)
                .padding(1)
                .init(LayerInit::KaimingFanOut);
            p.conv(&format!("features.{idx}"), conv);
            if self.batch_norm {
                p.batch_norm(&format!("features.{}", idx + 1), co);
                idx += 3;
            } else {
                idx += 2;
            }
            c = co;
        }
        let flat = c * (self.height / 32) * (self.width / 32);
        p.linear(
            "classifier",
            Linear::new(flat, self.classes).init(LayerInit::Normal(0.01)),
        );
    }

    fn forward_from_stem(&self, z1: Tensor<2>, p: &mut Pass) -> Tensor<2> {
        let b = z1.dims()[0];
        let mut h = p.stem_image(z1);
        let mut idx = 0;
        for layer in VGG11_LAYERS {
            if layer.is_none() {
                h = p.max_pool(h);
                idx += 1;
                continue;
            }
            if idx > 0 {
                h = p.conv(&format!("features.{idx}"), h);
            }
            if self.batch_norm {
                h = p.batch_norm_relu(&format!("features.{}", idx + 1), h);
                idx += 3;
            } else {
                h = p.relu(h);
                idx += 2;
            }
        }
        p.linear("classifier", h.reshape([b as i64, -1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vgg(batch_norm: bool, height: usize) -> Architecture {
        Architecture::Vgg11(Vgg11 {
            in_channels: 3,
            height,
            width: 32,
            classes: 10,
            base: 64,
            batch_norm,
        })
    }

    #[test]
    fn matches_torchvision_counts_and_names() {
        // torchvision vgg11 / vgg11_bn `features` + Linear(512, 10)
        assert_eq!(vgg(false, 32).num_params(), 9_225_610);
        assert_eq!(vgg(true, 32).num_params(), 9_231_114);
        let names: Vec<_> = vgg(true, 32)
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
        let names: Vec<_> = vgg(false, 32)
            .param_specs()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert!(names.contains(&"features.18.weight".to_string())); // last conv of vgg11
        let bn = vgg(true, 32).batch_norm_layers();
        assert_eq!(bn.len(), 8);
        assert_eq!(bn[0], ("features.1".to_string(), 64));
        assert_eq!(bn[7], ("features.26".to_string(), 512));
        assert!(vgg(true, 28).validate().is_err());
    }
}
