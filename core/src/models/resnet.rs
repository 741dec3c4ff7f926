//! ResNet18, CIFAR variant: 3×3 stride-1 stem without max-pool, BasicBlocks
//! [2, 2, 2, 2] of widths base·(1, 2, 4, 8), global average pool, `fc`.
//! torchvision's names (`conv1`, `bn1`, `layer{l}.{k}.conv1|bn1|conv2|bn2`,
//! `layer{l}.0.downsample.0|1`, `fc`).

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::params::{Conv2d, Input, LayerInit, Layout, Linear};
use super::{Architecture, KindInfo, ModelKind, Net, Pass, Shapes};
use crate::data::Dataset;
use crate::experiment::ModelConfig;
use crate::{Error, Result};

/// ResNet18, CIFAR variant: 3×3 stride-1 stem, no max-pool, BasicBlocks
/// [2, 2, 2, 2] with widths base·(1, 2, 4, 8), global average pool, `fc`.
/// torchvision's names (`conv1`, `bn1`, `layer{l}.{k}.conv1|bn1|conv2|bn2`,
/// `layer{l}.0.downsample.0|1`, `fc`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resnet18 {
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    pub base: usize,
}

impl ModelKind {
    /// `resnet18`: [`Resnet18`], base width `width`.
    pub const RESNET18: ModelKind = ModelKind(&KindInfo {
        name: "resnet18",
        label: "ResNet18",
        about: "ResNet18 (CIFAR stem, torchvision layout)",
        in_browser: false,
        build: |kind, cfg: &ModelConfig, data: &Dataset| {
            let [in_channels, height, width] = kind.image_input(data)?;
            Ok(Architecture::Resnet18(Resnet18 {
                in_channels,
                height,
                width,
                classes: data.classes,
                base: cfg.width,
            }))
        },
        summary: |cfg: &ModelConfig| format!("ResNet18 (width {})", cfg.width),
    });
}

/// One BasicBlock: its module name `layer{l}.{k}`, input and output widths,
/// and stride.
struct Block {
    name: String,
    inputs: usize,
    planes: usize,
    stride: usize,
}

impl Block {
    /// A 1×1 convolution + BatchNorm on the shortcut when the block changes
    /// the shape.
    fn downsamples(&self) -> bool {
        self.stride != 1 || self.inputs != self.planes
    }
}

impl Resnet18 {
    /// The eight BasicBlocks in order.
    fn blocks(&self) -> Vec<Block> {
        let mut out = Vec::new();
        let mut inputs = self.base;
        for l in 1..=4 {
            let planes = self.base << (l - 1);
            for k in 0..2 {
                let stride = if l > 1 && k == 0 { 2 } else { 1 };
                out.push(Block {
                    name: format!("layer{l}.{k}"),
                    inputs,
                    planes,
                    stride,
                });
                inputs = planes;
            }
        }
        out
    }
}

/// torchvision's bias-free 3×3 convolution (padding 1), kaiming_normal (fan_out).
fn conv3x3(inputs: usize, outputs: usize, stride: usize) -> Conv2d {
    Conv2d::new(inputs, outputs, 3)
        .stride(stride)
        .padding(1)
        .bias(false)
        .init(LayerInit::KaimingFanOut)
}

impl Net for Resnet18 {
    fn kinds() -> &'static [ModelKind] {
        &[ModelKind::RESNET18]
    }

    /// torchvision's `conv1`, `layer4.1.conv2` and `fc` names, 32×32 images.
    fn infer(shapes: &Shapes) -> Option<std::result::Result<Resnet18, String>> {
        let (c1, fc) = (shapes.get("conv1.weight")?, shapes.get("fc.weight")?);
        shapes.get("layer4.1.conv2.weight")?;
        if c1.len() != 4 || fc.len() != 2 {
            return Some(Err(format!(
                "conv1.weight {c1:?} / fc.weight {fc:?} are not ResNet18 shapes"
            )));
        }
        Some(Ok(Resnet18 {
            in_channels: c1[1],
            height: 32,
            width: 32,
            classes: fc[0],
            base: c1[0],
        }))
    }

    fn input(&self) -> Input {
        Input::Image([self.in_channels, self.height, self.width])
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn validate(&self) -> Result<()> {
        let Resnet18 {
            in_channels,
            height,
            width,
            classes,
            base,
        } = self;
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
        Ok(())
    }

    /// The stem's convolution, BatchNorm and ReLU; per block at its output
    /// resolution: two convolutions with their BatchNorms, the inner ReLU,
    /// the residual sum and its ReLU (and the downsampling convolution and
    /// BatchNorm); the pooled features and the logits.
    fn activations(&self) -> f64 {
        let (mut h, mut w) = (self.height, self.width);
        let mut n = 3.0 * (self.base * h * w) as f64;
        for b in self.blocks() {
            [h, w] = conv3x3(b.inputs, b.planes, b.stride).output_size(h, w);
            let map = (b.planes * h * w) as f64;
            n += if b.downsamples() { 9.0 } else { 7.0 } * map;
        }
        n + (8 * self.base + self.classes) as f64
    }

    /// torchvision ResNet: conv kaiming_normal (fan_out), BatchNorm 1, 0, `fc`
    /// PyTorch's default.
    fn declare(&self, p: &mut Layout) {
        p.conv("conv1", conv3x3(self.in_channels, self.base, 1));
        p.batch_norm("bn1", self.base);
        for b in self.blocks() {
            let n = &b.name;
            p.conv(&format!("{n}.conv1"), conv3x3(b.inputs, b.planes, b.stride));
            p.batch_norm(&format!("{n}.bn1"), b.planes);
            p.conv(&format!("{n}.conv2"), conv3x3(b.planes, b.planes, 1));
            p.batch_norm(&format!("{n}.bn2"), b.planes);
            if b.downsamples() {
                let down = Conv2d::new(b.inputs, b.planes, 1)
                    .stride(b.stride)
                    .bias(false)
                    .init(LayerInit::KaimingFanOut);
                p.conv(&format!("{n}.downsample.0"), down);
                p.batch_norm(&format!("{n}.downsample.1"), b.planes);
            }
        }
        p.linear("fc", Linear::new(8 * self.base, self.classes));
    }

    fn forward_from_stem(&self, z1: Tensor<2>, p: &mut Pass) -> Tensor<2> {
        let h = p.stem_image(z1);
        let mut h = p.batch_norm_relu("bn1", h);
        for b in self.blocks() {
            let n = &b.name;
            let identity = h.clone();
            let o = p.conv(&format!("{n}.conv1"), h);
            let o = p.batch_norm_relu(&format!("{n}.bn1"), o);
            let o = p.conv(&format!("{n}.conv2"), o);
            let o = p.batch_norm(&format!("{n}.bn2"), o);
            let shortcut = if b.downsamples() {
                let s = p.conv(&format!("{n}.downsample.0"), identity);
                p.batch_norm(&format!("{n}.downsample.1"), s)
            } else {
                identity
            };
            h = p.add_relu(o, shortcut);
        }
        let [b, c, _, _] = h.dims();
        let pooled: Tensor<2> = h.mean_dim(3).mean_dim(2).reshape([b, c]);
        p.linear("fc", pooled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_torchvision_counts_and_names() {
        let resnet = Architecture::Resnet18(Resnet18 {
            in_channels: 3,
            height: 32,
            width: 32,
            classes: 10,
            base: 64,
        });
        // torchvision resnet18(num_classes=10) with the CIFAR stem (conv1 3×3, no max-pool)
        assert_eq!(resnet.num_params(), 11_173_962);
        let names: Vec<_> = resnet.param_specs().into_iter().map(|s| s.name).collect();
        assert_eq!(names.len(), 62);
        assert_eq!(&names[..3], ["conv1.weight", "bn1.weight", "bn1.bias"]);
        assert!(names.contains(&"layer2.0.downsample.0.weight".to_string()));
        assert!(names.contains(&"layer4.1.bn2.bias".to_string()));
        assert_eq!(&names[60..], ["fc.weight", "fc.bias"]);
        assert_eq!(resnet.batch_norm_layers().len(), 20);
        assert!(Resnet18 {
            in_channels: 3,
            height: 4,
            width: 32,
            classes: 10,
            base: 64,
        }
        .validate()
        .is_err());
    }
}
