//! Forward passes of any registered model: the stem (the first layer, which
//! curvature code caches and differentiates by hand) and the rest of the
//! network ([`Net::forward_from_stem`]) through a [`Pass`].
//!
//! f(x; θ) = forward_from_stem(stem(x; θ₀); θ₁…) where θ₀ are the stem's
//! parameters (the first [`stem_param_count`] tensors). The stem is linear in
//! its parameters jointly, `z₁ = W₀x (+ b₀)`, so it also gives directional
//! derivatives: stem(v, x) = [z₁(θ + εv) − z₁(θ)]/ε exactly.
//!
//! # Shapes
//! `x`: `[B, d]`; stem output `z₁`: `[B, m]` (a convolution's output
//! flattened in (c, h, w) order); logits `[B, C]`.

use crate::kernels::{conv2d_weight_grad, linear_param_grads};
use burn::tensor::Tensor;

use super::batch_norm::{batch_norm, batch_norm_relu};
use super::gates::GateCursor;
use super::params::{Cursor, Input, Layout, Op};
use super::{Activation, Architecture, Bn, Gates};
use crate::kernels::add_relu;

/// One forward pass in progress: the parameters (taken by layer name, in
/// declaration order), the gates and the BatchNorm mode. A model's
/// [`super::Net::forward_from_stem`] computes through it.
pub struct Pass<'a, 'b> {
    params: Cursor<'a>,
    gates: GateCursor<'a>,
    bn: &'a mut Bn<'b>,
}

impl<'a, 'b> Pass<'a, 'b> {
    fn new(
        layout: &'a Layout,
        params: &'a [Tensor<1>],
        gates: Gates<'a>,
        bn: &'a mut Bn<'b>,
    ) -> Pass<'a, 'b> {
        Pass {
            params: Cursor::new(layout, params),
            gates: GateCursor::new(gates),
            bn,
        }
    }

    /// The next layer, linear and named `name`, applied to `h` `[B, in]`.
    pub fn linear(&mut self, name: &str, h: Tensor<2>) -> Tensor<2> {
        self.params.linear(name, h)
    }

    /// The next layer, a convolution named `name`, applied to `h` `[B, C, H, W]`.
    pub fn conv(&mut self, name: &str, h: Tensor<4>) -> Tensor<4> {
        self.params.conv(name, h)
    }

    /// The next layer, BatchNorm named `name`, applied to `h` `[B, C, H, W]`
    /// with the pass's statistics (see [`Bn`]).
    pub fn batch_norm(&mut self, name: &str, h: Tensor<4>) -> Tensor<4> {
        let (gamma, beta, slot) = self.params.batch_norm(name);
        batch_norm(h, gamma, beta, self.bn, slot)
    }

    /// The next layer, BatchNorm named `name`, applied to `h`, then ReLU
    /// through the pass's gates: `relu(batch_norm(name, h))`, as one kernel
    /// where the kernels run.
    pub fn batch_norm_relu(&mut self, name: &str, h: Tensor<4>) -> Tensor<4> {
        let (gamma, beta, slot) = self.params.batch_norm(name);
        batch_norm_relu(h, gamma, beta, self.bn, slot, &mut self.gates)
    }

    /// ReLU of `a + b` through the pass's gates (a residual sum), as one
    /// kernel where the kernels run.
    pub fn add_relu(&mut self, a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
        match add_relu(&a, &b, self.gates.fused_relu()) {
            Some(f) => {
                self.gates.advance(f.off);
                f.y
            }
            None => self.relu(a + b),
        }
    }

    /// `a` elementwise (ReLU through the pass's gates).
    pub fn act<const D: usize>(&mut self, h: Tensor<D>, a: Activation) -> Tensor<D> {
        self.gates.act(h, a)
    }

    /// ReLU through the pass's gates.
    pub fn relu<const D: usize>(&mut self, h: Tensor<D>) -> Tensor<D> {
        self.gates.act(h, Activation::Relu)
    }

    /// Max-pool 2×2, stride 2, through the pass's gates.
    pub fn max_pool(&mut self, h: Tensor<4>) -> Tensor<4> {
        self.gates.max_pool(h)
    }

    /// The stem's output `z1` (`[B, m]`) as the image `[B, C, H, W]` its
    /// convolution produced.
    ///
    /// # Panics
    /// For a linear stem.
    pub fn stem_image(&self, z1: Tensor<2>) -> Tensor<4> {
        let [c, h, w] = self
            .params
            .layout()
            .stem_image()
            .expect("stem_image needs a convolutional stem");
        let b = z1.dims()[0];
        z1.reshape([b, c, h, w])
    }

    /// Applies the stem (the first layer) to `x` `[B, d]`: `[B, m]`.
    fn stem(&mut self, x: Tensor<2>) -> Tensor<2> {
        let layout = self.params.layout();
        let name = &layout.stem().name;
        match layout.input {
            Input::Vector(_) => self.params.linear(name, x),
            Input::Image([c, h, w]) => {
                let b = x.dims()[0];
                self.params
                    .conv(name, x.reshape([b, c, h, w]))
                    .reshape([b as i64, -1])
            }
        }
    }
}

/// f(x; θ) in train mode (batch statistics for BatchNorm models); see [`forward_bn`].
pub fn forward(arch: &Architecture, params: &[Tensor<1>], x: Tensor<2>, gates: Gates) -> Tensor<2> {
    forward_bn(arch, params, x, gates, &mut Bn::Batch)
}

/// f(x; θ) with `params` in [`Architecture::param_specs`] order, BatchNorm as `bn` says.
///
/// `x`: `[B, d]`; returns logits `[B, C]`. The same computation as
/// [`forward_from_stem`] applied to [`stem`]`(x)`.
pub fn forward_bn(
    arch: &Architecture,
    params: &[Tensor<1>],
    x: Tensor<2>,
    gates: Gates,
    bn: &mut Bn,
) -> Tensor<2> {
    let layout = arch.layout();
    let mut pass = Pass::new(&layout, params, gates, bn);
    let z1 = pass.stem(x);
    let z = arch.net().forward_from_stem(z1, &mut pass);
    pass.params.finish();
    z
}

/// Number of parameter tensors of the first layer (the *stem*): the first
/// dense layer's weight and bias (MLP), the first convolution's weight and
/// bias (CNN, VGG11), or the bias-free first convolution's weight (ResNet18).
/// They are the first entries of [`Architecture::param_specs`].
pub fn stem_param_count(arch: &Architecture) -> usize {
    arch.layout().stem().params.len()
}

/// The first layer's output (pre-activation, pre-BatchNorm) `z₁ = W₀x (+ b₀)`,
/// flattened to `[B, m]` (`(c, h, w)` order for convolutions).
///
/// The stem is linear in its parameters jointly (weight and bias), so with
/// `params` = a direction v it gives the stem's directional derivative
/// `z₁(θ + εv) − z₁(θ) = ε·stem(v, x)` exactly; only the stem entries of
/// `params` are read.
pub fn stem(arch: &Architecture, params: &[Tensor<1>], x: Tensor<2>) -> Tensor<2> {
    let layout = arch.layout();
    Pass::new(&layout, params, Gates::Free, &mut Bn::Batch).stem(x)
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
    let layout = arch.layout();
    let stem = layout.stem();
    let shape = &layout.params[stem.params.start].shape;
    let b = x.dims()[0];
    match (stem.op, layout.input) {
        (Op::Conv(conv), Input::Image([c, h, w])) => {
            let [co, ho, wo] = layout.stem_image().expect("convolutional stem");
            let weight: Tensor<4> = params[0]
                .clone()
                .reshape([shape[0], shape[1], shape[2], shape[3]]);
            let d4: Tensor<4> = delta.reshape([b, co, ho, wo]);
            let dw =
                conv2d_weight_grad(x.reshape([b, c, h, w]), weight, d4.clone(), conv.options())
                    .reshape([co * shape[1] * shape[2] * shape[3]]);
            let mut out = vec![dw];
            if conv.bias {
                let db: Tensor<3> = d4.reshape([b, co, ho * wo]);
                out.push(db.sum_dim(2).sum_dim(0).reshape([co]));
            }
            out
        }
        _ => {
            let m = shape[0];
            let (dw, db) = linear_param_grads(x, delta);
            vec![dw.reshape([m * shape[1]]), db]
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
    gates: Gates,
    bn: &mut Bn,
) -> Tensor<2> {
    let layout = arch.layout();
    let mut pass = Pass::new(&layout, params, gates, bn);
    pass.params.skip_stem();
    let z = arch.net().forward_from_stem(z1, &mut pass);
    pass.params.finish();
    z
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::tensor_to_vec;
    use crate::models::tests::one_of_each;
    use crate::models::{Activation, Gate, Mlp, Model};
    use crate::rng::Rng;
    use burn::tensor::{Device, TensorData};

    fn batch(arch: &Architecture, b: usize, seed: u64, dev: &Device) -> Tensor<2> {
        let d = arch.input_len();
        let mut rng = Rng::new(seed);
        let xs: Vec<f32> = (0..b * d).map(|_| rng.normal() as f32).collect();
        Tensor::from_data(TensorData::new(xs, [b, d]), dev)
    }

    /// Every registered model's forward pass takes each declared parameter
    /// exactly once (in order: the cursor checks each name), in every gate and
    /// BatchNorm mode, and its stem split reproduces the whole pass.
    #[test]
    fn every_declared_parameter_is_consumed_exactly_once() {
        let dev = Device::flex();
        for arch in one_of_each() {
            let layout = arch.layout();
            let m = Model::init(&arch, 0, &dev).unwrap();
            let x = batch(&arch, 2, 1, &dev);
            let mut recorded = Vec::new();
            let mut buffers = m.buffers.clone();
            let modes: Vec<(Gates, Bn)> = vec![
                (Gates::Free, Bn::Batch),
                (Gates::Record(&mut recorded), Bn::Running(&m.buffers)),
                (
                    Gates::Free,
                    Bn::Update {
                        buffers: &mut buffers,
                        momentum: 0.1,
                    },
                ),
            ];
            for (gates, mut bn) in modes {
                let mut pass = Pass::new(&layout, &m.params, gates, &mut bn);
                let z1 = pass.stem(x.clone());
                assert_eq!(pass.params.consumed(), stem_param_count(&arch));
                let z = arch.net().forward_from_stem(z1, &mut pass);
                assert_eq!(z.dims(), [2, arch.classes()], "{arch:?}");
                assert_eq!(pass.params.consumed(), layout.params.len(), "{arch:?}");
                pass.params.finish();
            }
            let whole = forward(&arch, &m.params, x.clone(), Gates::Free);
            let split = forward_from_stem(
                &arch,
                &m.params,
                stem(&arch, &m.params, x),
                Gates::Free,
                &mut Bn::Batch,
            );
            assert_eq!(tensor_to_vec(&whole), tensor_to_vec(&split), "{arch:?}");
        }
    }

    /// A forward pass that leaves a declared layer unused is caught.
    #[test]
    #[should_panic(expected = "ended before the declared layer")]
    fn a_forward_that_drifts_from_its_declaration_panics() {
        #[derive(Debug)]
        struct Short(Mlp);
        impl super::super::Net for Short {
            fn kinds() -> &'static [super::super::ModelKind] {
                &[]
            }
            fn input(&self) -> Input {
                self.0.input()
            }
            fn classes(&self) -> usize {
                self.0.classes()
            }
            fn validate(&self) -> crate::Result<()> {
                Ok(())
            }
            fn activations(&self) -> f64 {
                super::super::Net::activations(&self.0)
            }
            fn declare(&self, p: &mut Layout) {
                self.0.declare(p)
            }
            fn forward_from_stem(&self, z1: Tensor<2>, p: &mut Pass) -> Tensor<2> {
                p.relu(z1) // forgets layers.1
            }
        }
        let net = Short(Mlp {
            input_dim: 3,
            hidden: vec![4],
            classes: 2,
            activation: Activation::Relu,
        });
        let arch = Architecture::Mlp(net.0.clone());
        let m = Model::init(&arch, 0, &Device::flex()).unwrap();
        let layout = arch.layout();
        let mut bn = Bn::Batch;
        let mut pass = Pass::new(&layout, &m.params, Gates::Free, &mut bn);
        let z1 = pass.stem(batch(&arch, 1, 0, &Device::flex()));
        let _ = super::super::Net::forward_from_stem(&net, z1, &mut pass);
        pass.params.finish();
    }

    /// The stem's hand-written gradients equal autodiff's, for a dense stem, a
    /// conv stem with bias (CNN, VGG) and one without (ResNet).
    #[test]
    fn stem_gradients_match_autodiff() {
        let dev = Device::flex();
        for arch in one_of_each() {
            let m = Model::init(&arch, 2, &dev).unwrap();
            let x = batch(&arch, 3, 4, &dev);
            let n = stem_param_count(&arch);
            let leaves: Vec<Tensor<1>> = m
                .params
                .iter()
                .map(|p| p.clone().autodiff().require_grad())
                .collect();
            let z1 = stem(&arch, &leaves, x.clone());
            let mut rng = Rng::new(5);
            let dims = z1.dims();
            let ws: Vec<f32> = (0..dims[0] * dims[1])
                .map(|_| rng.normal() as f32)
                .collect();
            let w = Tensor::<2>::from_data(TensorData::new(ws, dims), &dev);
            let grads = (z1 * w.clone()).sum().backward();
            let hand = stem_gradients(&arch, &m.params, x, w);
            assert_eq!(hand.len(), n);
            for (i, g) in hand.iter().enumerate() {
                let auto = tensor_to_vec(&leaves[i].grad(&grads).unwrap());
                let g = tensor_to_vec(g);
                let err = auto
                    .iter()
                    .zip(&g)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                let scale = auto.iter().map(|a| a.abs()).fold(0.0f32, f32::max);
                assert!(err <= 1e-4 * scale.max(1.0), "{arch:?} tensor {i}: {err}");
            }
        }
    }

    #[test]
    fn recorded_gates_count_relus_and_pools() {
        let dev = Device::flex();
        for arch in one_of_each() {
            let m = Model::init(&arch, 0, &dev).unwrap();
            let mut g: Vec<Gate> = Vec::new();
            let _ = forward(
                &arch,
                &m.params,
                batch(&arch, 2, 3, &dev),
                Gates::Record(&mut g),
            );
            let pools = g.iter().filter(|x| matches!(x, Gate::Pool(_))).count();
            let expected = match &arch {
                // ReLU after each hidden layer
                Architecture::Mlp(a) => (a.hidden.len(), 0),
                // ReLU + pool per block
                Architecture::Cnn(a) => (2 * a.channels.len(), a.channels.len()),
                // 8 conv ReLUs + 5 pools
                Architecture::Vgg11(_) => (13, 5),
                // stem ReLU + 2 per block
                Architecture::Resnet18(_) => (17, 0),
            };
            assert_eq!((g.len(), pools), expected, "{arch:?}");
        }
    }
}
