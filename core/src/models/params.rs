//! A model's parameters, declared once: each layer by name and
//! hyper-parameters, in PyTorch's `parameters()` order ([`Layout`]), and the
//! [`Cursor`] through which a forward pass takes them back in that order.
//!
//! One declaration gives everything that used to be kept in step by hand:
//! the flat layout of θ (`torch.cat([p.flatten() for p in
//! model.parameters()])`), each tensor's initialisation, its PyTorch name
//! (the safetensors key), the BatchNorm layers and their running-statistic
//! slots, and the first layer (the *stem*, see [`super::stem`]). A forward
//! pass asks the cursor for layer `"layer1.0.conv1"`; the cursor checks that
//! it is the next declared layer and of the kind asked for, so a forward pass
//! and its declaration cannot drift apart silently (a mismatch is a panic
//! naming both, and every pass checks at its end that all layers were used).
//!
//! # Shapes
//! PyTorch's: Linear weight `[out, in]`, Conv2d weight `[out, in, k, k]`,
//! biases and BatchNorm affine parameters `[channels]`; each stored as a flat
//! `Tensor<1>`.

use std::ops::Range;

use burn::tensor::ops::ConvOptions;
use burn::tensor::Tensor;

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

/// How a layer's weight and bias are initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerInit {
    /// PyTorch's default for Linear and Conv2d: weight and bias
    /// U(±1/√fan_in), fan_in = inputs · kernel area.
    PyTorch,
    /// torchvision's convolutions (ResNet, VGG): weight N(0, 2/fan_out)
    /// (`kaiming_normal_`, mode fan_out, fan_out = outputs · kernel area), bias 0.
    KaimingFanOut,
    /// Weight N(0, σ²), bias 0 (torchvision VGG's linear layers: σ = 0.01).
    Normal(f64),
}

impl LayerInit {
    /// The rules for (weight, bias) of a layer with these fans.
    fn rules(self, fan_in: usize, fan_out: usize) -> (Init, Init) {
        match self {
            LayerInit::PyTorch => (Init::Uniform { fan_in }, Init::Uniform { fan_in }),
            LayerInit::KaimingFanOut => (Init::KaimingNormalFanOut { fan_out }, Init::Const(0.0)),
            LayerInit::Normal(std) => (Init::Normal { std }, Init::Const(0.0)),
        }
    }
}

/// A dense layer `y = x·Wᵀ + b` (PyTorch's `nn.Linear`, always with bias).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Linear {
    pub inputs: usize,
    pub outputs: usize,
    pub init: LayerInit,
}

impl Linear {
    /// `inputs → outputs`, PyTorch's default initialisation.
    pub fn new(inputs: usize, outputs: usize) -> Linear {
        Linear {
            inputs,
            outputs,
            init: LayerInit::PyTorch,
        }
    }
    /// With initialisation `init`.
    pub fn init(self, init: LayerInit) -> Linear {
        Linear { init, ..self }
    }
}

/// A 2-D convolution with a square kernel (PyTorch's `nn.Conv2d`, dilation
/// 1, one group).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2d {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub bias: bool,
    pub init: LayerInit,
}

impl Conv2d {
    /// `in_channels → out_channels` with a `kernel`×`kernel` kernel: stride 1,
    /// no padding, with bias, PyTorch's default initialisation (as `nn.Conv2d`).
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Conv2d {
        Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride: 1,
            padding: 0,
            bias: true,
            init: LayerInit::PyTorch,
        }
    }
    /// With stride `s`.
    pub fn stride(self, stride: usize) -> Conv2d {
        Conv2d { stride, ..self }
    }
    /// With zero padding `p` on every side.
    pub fn padding(self, padding: usize) -> Conv2d {
        Conv2d { padding, ..self }
    }
    /// Without (`false`) or with a bias.
    pub fn bias(self, bias: bool) -> Conv2d {
        Conv2d { bias, ..self }
    }
    /// With initialisation `init`.
    pub fn init(self, init: LayerInit) -> Conv2d {
        Conv2d { init, ..self }
    }
    /// burn's options for this convolution.
    pub(crate) fn options(&self) -> ConvOptions<2> {
        ConvOptions::new(
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )
    }
    /// Output height and width for an input of `h`×`w`.
    pub fn output_size(&self, h: usize, w: usize) -> [usize; 2] {
        let side = |x: usize| (x + 2 * self.padding - self.kernel) / self.stride + 1;
        [side(h), side(w)]
    }
}

/// What a declared layer computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    Linear(Linear),
    Conv(Conv2d),
    /// BatchNorm over `channels` (affine weight and bias); `slot` is its
    /// position among the model's BatchNorm layers, which indexes its running
    /// statistics (`buffers[2·slot]` = mean, `buffers[2·slot + 1]` = variance).
    BatchNorm {
        channels: usize,
        slot: usize,
    },
}

impl Op {
    fn what(&self) -> &'static str {
        match self {
            Op::Linear(_) => "a linear layer",
            Op::Conv(_) => "a convolution",
            Op::BatchNorm { .. } => "a BatchNorm layer",
        }
    }
}

/// One declared layer: its PyTorch module name, what it computes, and which
/// entries of θ (indices into [`Layout::params`]) are its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub name: String,
    pub op: Op,
    pub params: Range<usize>,
}

/// What a model reads: a vector of `d` values or an image `[c, h, w]`
/// (flattened in (c, h, w) order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Vector(usize),
    Image([usize; 3]),
}

/// A model's declaration: its layers and their parameter tensors in PyTorch's
/// `parameters()` order. Built by [`super::Net::declare`].
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub input: Input,
    /// Every parameter tensor, in θ order.
    pub params: Vec<ParamSpec>,
    /// Every layer, in declaration (= θ) order; the first is the stem.
    pub layers: Vec<Layer>,
}

impl Layout {
    /// An empty declaration for a model reading `input`.
    pub fn new(input: Input) -> Layout {
        Layout {
            input,
            params: Vec::new(),
            layers: Vec::new(),
        }
    }

    fn push(&mut self, name: &str, op: Op, tensors: Vec<(&str, Vec<usize>, Init)>) {
        let start = self.params.len();
        for (suffix, shape, init) in tensors {
            self.params.push(ParamSpec {
                name: format!("{name}.{suffix}"),
                shape,
                init,
            });
        }
        self.layers.push(Layer {
            name: name.to_string(),
            op,
            params: start..self.params.len(),
        });
    }

    /// Declares a linear layer `name` (`{name}.weight` `[out, in]`, `{name}.bias` `[out]`).
    pub fn linear(&mut self, name: &str, l: Linear) {
        let (w, b) = l.init.rules(l.inputs, l.outputs);
        let tensors = vec![
            ("weight", vec![l.outputs, l.inputs], w),
            ("bias", vec![l.outputs], b),
        ];
        self.push(name, Op::Linear(l), tensors);
    }

    /// Declares a convolution `name` (`{name}.weight` `[out, in, k, k]`, and
    /// `{name}.bias` `[out]` if it has one).
    pub fn conv(&mut self, name: &str, c: Conv2d) {
        let area = c.kernel * c.kernel;
        let (w, b) = c.init.rules(c.in_channels * area, c.out_channels * area);
        let mut tensors = vec![(
            "weight",
            vec![c.out_channels, c.in_channels, c.kernel, c.kernel],
            w,
        )];
        if c.bias {
            tensors.push(("bias", vec![c.out_channels], b));
        }
        self.push(name, Op::Conv(c), tensors);
    }

    /// Declares a BatchNorm layer `name` over `channels` (`{name}.weight` = 1,
    /// `{name}.bias` = 0, and the buffers `{name}.running_mean|running_var`).
    pub fn batch_norm(&mut self, name: &str, channels: usize) {
        let slot = self
            .layers
            .iter()
            .filter(|l| matches!(l.op, Op::BatchNorm { .. }))
            .count();
        let tensors = vec![
            ("weight", vec![channels], Init::Const(1.0)),
            ("bias", vec![channels], Init::Const(0.0)),
        ];
        self.push(name, Op::BatchNorm { channels, slot }, tensors);
    }

    /// The BatchNorm layers in declaration order: (name, channels).
    pub fn batch_norm_layers(&self) -> Vec<(String, usize)> {
        self.layers
            .iter()
            .filter_map(|l| match l.op {
                Op::BatchNorm { channels, .. } => Some((l.name.clone(), channels)),
                _ => None,
            })
            .collect()
    }

    /// The first layer, which reads the input: a linear layer (vector input)
    /// or a convolution (image input).
    ///
    /// # Panics
    /// If the declaration is empty or starts otherwise (a bug in the model's
    /// `declare`; the registry's tests build every model).
    pub fn stem(&self) -> &Layer {
        let layer = self
            .layers
            .first()
            .expect("a model declares at least one layer");
        match (layer.op, self.input) {
            (Op::Linear(_), Input::Vector(_)) | (Op::Conv(_), Input::Image(_)) => layer,
            (op, input) => panic!(
                "the first layer '{}' is {} and cannot read {input:?}",
                layer.name,
                op.what()
            ),
        }
    }

    /// The shape of the stem's output as an image `[c, h, w]` (None for a
    /// linear stem).
    pub fn stem_image(&self) -> Option<[usize; 3]> {
        match (self.stem().op, self.input) {
            (Op::Conv(c), Input::Image([_, h, w])) => {
                let [ho, wo] = c.output_size(h, w);
                Some([c.out_channels, ho, wo])
            }
            _ => None,
        }
    }
}

/// `p` (flat) reshaped to `shape`.
fn shaped<const D: usize>(p: &Tensor<1>, shape: &[usize]) -> Tensor<D> {
    let dims: [usize; D] = shape
        .try_into()
        .unwrap_or_else(|_| panic!("shape {shape:?} is not {D}-dimensional"));
    p.clone().reshape(dims)
}

/// The parameters of a [`Layout`] taken back in declaration order: each call
/// names the layer it wants, and the cursor checks that it is the next one
/// declared and of the kind asked for.
pub struct Cursor<'a> {
    layout: &'a Layout,
    params: &'a [Tensor<1>],
    /// Index of the next layer to take.
    next: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the first layer (`params`: θ, or anything shaped like it).
    pub fn new(layout: &'a Layout, params: &'a [Tensor<1>]) -> Cursor<'a> {
        assert_eq!(
            params.len(),
            layout.params.len(),
            "{} parameter tensors given, the model declares {}",
            params.len(),
            layout.params.len()
        );
        Cursor {
            layout,
            params,
            next: 0,
        }
    }

    /// The declaration.
    pub fn layout(&self) -> &'a Layout {
        self.layout
    }

    /// Parameter tensors taken so far (they are the first ones of θ).
    pub fn consumed(&self) -> usize {
        self.layout
            .layers
            .get(self.next)
            .map_or(self.layout.params.len(), |l| l.params.start)
    }

    /// Takes the next layer, which must be `name`; returns it and its tensors.
    ///
    /// # Panics
    /// If the next declared layer is another one, or there is none.
    pub fn take(&mut self, name: &str) -> (&'a Layer, &'a [Tensor<1>]) {
        let layer = self.layout.layers.get(self.next).unwrap_or_else(|| {
            panic!("the forward pass takes '{name}' after the last declared layer")
        });
        assert!(
            layer.name == name,
            "the forward pass takes '{name}' where the declaration has '{}' next",
            layer.name
        );
        self.next += 1;
        (layer, &self.params[layer.params.clone()])
    }

    /// Skips the stem (the first layer), whose output the caller supplies.
    pub fn skip_stem(&mut self) {
        assert_eq!(self.next, 0, "the stem is the first layer");
        self.next = 1;
    }

    /// Applies the next layer, a linear one named `name`, to `h` `[B, in]`.
    pub fn linear(&mut self, name: &str, h: Tensor<2>) -> Tensor<2> {
        let (layer, t) = self.take(name);
        let Op::Linear(_) = layer.op else {
            panic!("'{name}' is {}, not a linear layer", layer.op.what())
        };
        let w: Tensor<2> = shaped(&t[0], &self.layout.params[layer.params.start].shape);
        crate::kernels::linear(h, w, t[1].clone())
    }

    /// Applies the next layer, a convolution named `name`, to `h` `[B, C, H, W]`.
    pub fn conv(&mut self, name: &str, h: Tensor<4>) -> Tensor<4> {
        let (layer, t) = self.take(name);
        let Op::Conv(c) = layer.op else {
            panic!("'{name}' is {}, not a convolution", layer.op.what())
        };
        let w: Tensor<4> = shaped(&t[0], &self.layout.params[layer.params.start].shape);
        crate::kernels::conv2d(h, w, c.bias.then(|| t[1].clone()), c.options())
    }

    /// Takes the next layer, a BatchNorm layer named `name`: its weight γ,
    /// bias β and running-statistics slot.
    pub fn batch_norm(&mut self, name: &str) -> (Tensor<1>, Tensor<1>, usize) {
        let (layer, t) = self.take(name);
        let Op::BatchNorm { slot, .. } = layer.op else {
            panic!("'{name}' is {}, not a BatchNorm layer", layer.op.what())
        };
        (t[0].clone(), t[1].clone(), slot)
    }

    /// Checks that every declared layer was taken.
    ///
    /// # Panics
    /// If some were not (the forward pass and the declaration disagree).
    pub fn finish(&self) {
        if let Some(l) = self.layout.layers.get(self.next) {
            panic!(
                "the forward pass ended before the declared layer '{}' ({} of {} layers used)",
                l.name,
                self.next,
                self.layout.layers.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn toy_layout() -> Layout {
        let mut l = Layout::new(Input::Image([2, 6, 6]));
        l.conv("stem", Conv2d::new(2, 3, 3).padding(1));
        l.batch_norm("bn", 3);
        l.conv(
            "down",
            Conv2d::new(3, 4, 1)
                .stride(2)
                .bias(false)
                .init(LayerInit::KaimingFanOut),
        );
        l.linear(
            "fc",
            Linear::new(4 * 3 * 3, 5).init(LayerInit::Normal(0.01)),
        );
        l
    }

    #[test]
    fn declaration_gives_names_shapes_inits_and_slots() {
        let l = toy_layout();
        let names: Vec<&str> = l.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "stem.weight",
                "stem.bias",
                "bn.weight",
                "bn.bias",
                "down.weight",
                "fc.weight",
                "fc.bias"
            ]
        );
        assert_eq!(l.params[0].shape, [3, 2, 3, 3]);
        assert_eq!(l.params[0].init, Init::Uniform { fan_in: 18 });
        assert_eq!(l.params[1].init, Init::Uniform { fan_in: 18 });
        assert_eq!(l.params[2].init, Init::Const(1.0));
        assert_eq!(l.params[4].init, Init::KaimingNormalFanOut { fan_out: 4 });
        assert_eq!(l.params[5].shape, [5, 36]);
        assert_eq!(l.params[5].init, Init::Normal { std: 0.01 });
        assert_eq!(l.params[6].init, Init::Const(0.0));
        assert_eq!(l.layers[2].params, 4..5);
        assert_eq!(l.batch_norm_layers(), [("bn".to_string(), 3)]);
        assert_eq!(l.stem().name, "stem");
        assert_eq!(l.stem_image(), Some([3, 6, 6]));
        assert_eq!(Conv2d::new(3, 4, 1).stride(2).output_size(6, 7), [3, 4]);
    }

    fn halves(l: &Layout) -> Vec<Tensor<1>> {
        let dev = Device::flex();
        l.params
            .iter()
            .map(|p| Tensor::from_data(TensorData::new(vec![0.5f32; p.len()], [p.len()]), &dev))
            .collect()
    }

    #[test]
    fn cursor_takes_layers_in_order_and_reports_use() {
        let l = toy_layout();
        let p = halves(&l);
        let mut c = Cursor::new(&l, &p);
        c.skip_stem();
        assert_eq!(c.consumed(), 2);
        let (_, _, slot) = c.batch_norm("bn");
        assert_eq!(slot, 0);
        let x = Tensor::<4>::zeros([1, 3, 6, 6], &Device::flex());
        let h = c.conv("down", x);
        assert_eq!(h.dims(), [1, 4, 3, 3]);
        let z = c.linear("fc", h.reshape([1, 36]));
        assert_eq!(z.dims(), [1, 5]);
        assert_eq!(c.consumed(), 7);
        c.finish();
    }

    #[test]
    #[should_panic(expected = "takes 'fc' where the declaration has 'bn' next")]
    fn a_skipped_layer_is_caught() {
        let l = toy_layout();
        let p = halves(&l);
        let mut c = Cursor::new(&l, &p);
        c.skip_stem();
        c.linear("fc", Tensor::zeros([1, 36], &Device::flex()));
    }

    #[test]
    #[should_panic(expected = "ended before the declared layer 'down'")]
    fn an_unused_layer_is_caught() {
        let l = toy_layout();
        let p = halves(&l);
        let mut c = Cursor::new(&l, &p);
        c.skip_stem();
        c.batch_norm("bn");
        c.finish();
    }

    #[test]
    #[should_panic(expected = "'bn' is a BatchNorm layer, not a convolution")]
    fn a_layer_of_another_kind_is_caught() {
        let l = toy_layout();
        let p = halves(&l);
        let mut c = Cursor::new(&l, &p);
        c.skip_stem();
        c.conv("bn", Tensor::zeros([1, 3, 6, 6], &Device::flex()));
    }
}
