//! CPU kernels for the layers where burn's flex backend is slow on
//! curvlab's workloads, used when a tensor lives on flex; on any other
//! backend (wgpu) the same functions call burn's own ops.
//!
//! - [`conv2d`]: flex computes a convolution's input gradient as a
//!   transposed convolution and its weight gradient as a convolution whose
//!   kernel is the whole output gradient (one tiny product per input
//!   channel); here all three passes are one im2col matrix product per group
//!   of images ([`conv`]), on the same GEMM (`gemm` crate) and thread pool
//!   (rayon) flex uses.
//!
//! - [`batch_norm`]: burn composes BatchNorm from means, squares and
//!   broadcasts (about 25 passes over the activation, forward and
//!   backward, each allocating, most on one thread); here the statistics,
//!   the affine map, the ReLU that follows it and the backward step are
//!   fused, and run on every thread.
//! - [`add_relu`]: a ResNet block's relu(a + b) in one pass each way.
//! - [`linear`]: the dense layer and its gradients as one GEMM each into
//!   uninitialised outputs (flex zero-fills its outputs first: 6 MB for
//!   the benchmark MLP's first weight gradient, half its cost).
//! - [`max_pool2`]: max-pool 2×2 with its argmax kept for the backward
//!   step (flex's pooling and its scatter run ~20% of a VGG step).
//!
//! What is computed is unchanged: the same sums in a different order, so
//! results agree with burn's ops to float rounding (unit tests compare them).
//! [`set_enabled`]`(false)` turns the kernels off on the calling thread
//! (burn's ops everywhere), to compare the two paths.

mod batch_norm;
mod conv;
mod flex;
mod gemm;
mod linear;
mod pool;
mod relu;
mod sgd;
mod simd;

use std::cell::Cell;

use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::module;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Bool, DType, Int, Tensor, TensorData};

use batch_norm::{Norm, Planes};
use conv::{Conv, Geometry};
use flex::{apply, flex, slice, values, Flexed};
use linear::{Dense, Linear};
use pool::{Argmax, MaxPool, Pool};
use relu::{AddRelu, Gate, Relu1};

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Turns the host kernels on (the default) or off (burn's ops on every
/// backend) for operations the calling thread starts.
pub fn set_enabled(on: bool) {
    ENABLED.with(|e| e.set(on));
}

/// Whether the calling thread uses the host kernels on flex.
pub fn enabled() -> bool {
    ENABLED.with(Cell::get)
}

/// Square-kernel convolution sizes of `x` `[B, c_in, h, w]` and `weight`
/// `[c_out, c_in, kh, kw]` with `options`, when the kernels handle them (one
/// group, dilation 1, the same padding on both sides).
fn geometry(x: &[usize], w: &[usize], options: &ConvOptions<2>) -> Option<Geometry> {
    let symmetric = options.padding.iter().all(|(a, b)| a == b);
    if !enabled() || options.groups != 1 || options.dilation != [1, 1] || !symmetric || x[1] != w[1]
    {
        return None;
    }
    let g = Geometry {
        batch: x[0],
        c_in: x[1],
        h: x[2],
        w: x[3],
        c_out: w[0],
        kh: w[2],
        kw: w[3],
        stride: options.stride,
        pad: options.padding.map(|(p, _)| p),
    };
    g.is_valid().then_some(g)
}

/// 2-D convolution of `x` `[B, c_in, h, w]` with `weight`
/// `[c_out, c_in, kh, kw]` (and `bias` `[c_out]`): burn's
/// [`module::conv2d`], computed by the host kernels when the tensors are
/// on flex.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let fast = geometry(&x.dims(), &weight.dims(), &options).and_then(|g| {
        let (fx, fw) = (Flexed::of(&x)?, Flexed::of(&weight)?);
        Some(match &bias {
            None => apply(Conv(g), [fx, fw]),
            Some(b) => apply(Conv(g), [fx, fw, Flexed::of(b)?]),
        })
    });
    fast.unwrap_or_else(|| module::conv2d(x, weight, bias, options))
}

/// The weight gradient of [`conv2d`] for input `x` and output gradient
/// `delta` (`weight` gives only the shape): burn's
/// [`module::conv2d_weight_backward`], by the host kernels on flex.
pub fn conv2d_weight_grad(
    x: Tensor<4>,
    weight: Tensor<4>,
    delta: Tensor<4>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let fast = geometry(&x.dims(), &weight.dims(), &options).and_then(|g| {
        let (Flexed::Plain(fx), Flexed::Plain(fd)) = (Flexed::of(&x)?, Flexed::of(&delta)?) else {
            return None;
        };
        // only the weight gradient: the weight argument (read for ∂x alone) is unused
        let [_, dw, _] = Conv(g).grads(&fx, &fx, fd, [false, true, false]);
        Some(Tensor::from_primitive::<Flex>(dw?))
    });
    fast.unwrap_or_else(|| module::conv2d_weight_backward(x, weight, delta, options))
}

/// A dense layer y = x·Wᵀ + b for `x` `[B, in]`, `weight` `[out, in]`,
/// `bias` `[out]`, by the host kernels on flex (burn's matmul otherwise).
pub fn linear(x: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
    let [batch, inputs] = x.dims();
    let [outputs, w_in] = weight.dims();
    let fast = (enabled() && w_in == inputs && bias.dims() == [outputs]).then(|| {
        let d = Dense {
            batch,
            inputs,
            outputs,
        };
        Some(apply(
            Linear(d),
            [Flexed::of(&x)?, Flexed::of(&weight)?, Flexed::of(&bias)?],
        ))
    });
    fast.flatten()
        .unwrap_or_else(|| x.matmul(weight.transpose()) + bias.unsqueeze::<2>())
}

/// The parameter gradients of [`linear`] for input `x` `[B, in]` and
/// output gradient `delta` `[B, out]`: (δᵀ·x `[out, in]`, Σ_batch δ `[out]`),
/// by the host kernels on flex.
pub fn linear_param_grads(x: Tensor<2>, delta: Tensor<2>) -> (Tensor<2>, Tensor<1>) {
    let [batch, inputs] = x.dims();
    let outputs = delta.dims()[1];
    let fast = enabled().then(|| {
        let (Flexed::Plain(fx), Flexed::Plain(fd)) = (Flexed::of(&x)?, Flexed::of(&delta)?) else {
            return None;
        };
        let d = Dense {
            batch,
            inputs,
            outputs,
        };
        let (fx, fd) = (values(&fx), values(&fd));
        let dw = linear::weight_grad(&d, slice(&fx), slice(&fd));
        let db = linear::bias_grad(&d, slice(&fd));
        Some((
            Tensor::from_primitive::<Flex>(flex(dw, &[outputs, inputs])),
            Tensor::from_primitive::<Flex>(flex(db, &[outputs])),
        ))
    });
    fast.flatten().unwrap_or_else(|| {
        let db = delta.clone().sum_dim(0).reshape([outputs]);
        (delta.transpose().matmul(x), db)
    })
}

/// A ReLU fused into a kernel's output (see `models::gates`).
pub enum Relu<'a> {
    /// No ReLU.
    Off,
    /// Units ≤ 0 set to 0; with `record`, their mask (`[B, units]`, true =
    /// off) is returned.
    On { record: bool },
    /// Units set to 0 where the recorded mask `[B, units]` is true.
    Fixed(&'a Tensor<2, Bool>),
}

/// The result of a fused kernel.
pub struct Fused {
    /// The output.
    pub y: Tensor<4>,
    /// BatchNorm with batch statistics: the batch's (μ, biased σ²), plain
    /// tensors, for the running update.
    pub stats: Option<(Tensor<1>, Tensor<1>)>,
    /// With [`Relu::On`]`{ record: true }`: the off mask `[B, units]`.
    pub off: Option<Tensor<2, Bool>>,
}

/// The host gate for `relu` on an output of `n` values, `None` when a fixed
/// mask is not a flex byte mask of that size.
fn gate(relu: &Relu, n: usize) -> Option<Gate> {
    Some(match relu {
        Relu::Off => Gate::Identity,
        Relu::On { .. } => Gate::Sign,
        Relu::Fixed(mask) => {
            let mask: Tensor<2, Bool> = (*mask).clone();
            let m = match mask.clone().try_into_primitive::<Flex>() {
                Ok(m) => m,
                Err(_) => mask.try_into_primitive::<Autodiff<Flex>>().ok()?,
            };
            let m = relu::mask_bytes(&m)?;
            (m.layout().num_elements() == n).then_some(Gate::Mask(m))?
        }
    })
}

/// The off mask of `y` (computed with [`Relu::On`]), when recording.
fn recorded(relu: &Relu, y: &Tensor<4>) -> Option<Tensor<2, Bool>> {
    let Relu::On { record: true } = relu else {
        return None;
    };
    let [b, c, h, w] = y.dims();
    let v = values(&Flexed::of(y).expect("a flex kernel output").value());
    let off = relu::off_mask(slice(&v));
    Some(Tensor::from_primitive::<Flex>(FlexTensor::from_data(
        TensorData::new(off, [b, c * h * w]),
    )))
}

/// A plain flex tensor `[n]` holding `v`.
fn plain(v: &[f32]) -> Tensor<1> {
    Tensor::from_primitive::<Flex>(flex(v.to_vec(), &[v.len()]))
}

/// BatchNorm y = γ·(x − μ)/√(σ² + ε) + β over `x` `[B, C, H, W]`, followed
/// by `relu`, as one kernel when the tensors are on flex (`None` otherwise:
/// use burn's ops). With `running` = (μ, σ²) those statistics are used
/// (eval mode); without, the batch's own (train mode, gradient through
/// them), returned in [`Fused::stats`] for the running update.
pub fn batch_norm(
    x: &Tensor<4>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    running: Option<(&Tensor<1>, &Tensor<1>)>,
    eps: f64,
    relu: Relu,
) -> Option<Fused> {
    if !enabled() {
        return None;
    }
    let shape = x.dims();
    let [b, c, h, w] = shape;
    let planes = Planes {
        batch: b,
        channels: c,
        plane: h * w,
    };
    let (fx, fg, fb) = (Flexed::of(x)?, Flexed::of(gamma)?, Flexed::of(beta)?);
    let host = |t: &Tensor<1>| match Flexed::of(t)? {
        Flexed::Plain(p) => Some(slice(&values(&p)).to_vec()),
        Flexed::Tracked(_) => None,
    };
    let (mean, var, batch) = match running {
        Some((m, v)) => (host(m)?, host(v)?, false),
        None => {
            let (m, v) = batch_norm::stats(&planes, slice(&values(&fx.value())));
            let f32s = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect::<Vec<f32>>();
            (f32s(m), f32s(v), true)
        }
    };
    if gamma.dims() != [c] || beta.dims() != [c] || mean.len() != c || var.len() != c {
        return None;
    }
    let gate = gate(&relu, b * c * h * w)?;
    let std = var.iter().map(|v| (v + eps as f32).sqrt()).collect();
    let stats = batch.then(|| (plain(&mean), plain(&var)));
    let norm = Norm {
        planes,
        shape,
        mean,
        std,
        batch,
        gate,
    };
    let y = apply(norm, [fx, fg, fb]);
    let off = recorded(&relu, &y);
    Some(Fused { y, stats, off })
}

/// relu(a + b) for `a`, `b` `[B, C, H, W]` as one kernel when both are on
/// flex (`None` otherwise, or for [`Relu::Off`]: use burn's ops).
pub fn add_relu(a: &Tensor<4>, b: &Tensor<4>, relu: Relu) -> Option<Fused> {
    if !enabled() || matches!(relu, Relu::Off) || a.dims() != b.dims() {
        return None;
    }
    let (fa, fb) = (Flexed::of(a)?, Flexed::of(b)?);
    let shape = a.dims();
    let n = shape.iter().product();
    let kernel = AddRelu {
        shape: shape.to_vec(),
        gate: gate(&relu, n)?,
        chunk: n / shape[0].max(1),
    };
    let y = apply(kernel, [fa, fb]);
    let off = recorded(&relu, &y);
    Some(Fused {
        y,
        stats: None,
        off,
    })
}

/// relu(x) for `x` of any shape `[B, …]` as one kernel on flex (`None`
/// otherwise, or for [`Relu::Off`]: use burn's ops); the recorded mask is
/// `[B, units]`.
pub fn relu<const D: usize>(
    x: &Tensor<D>,
    relu: Relu,
) -> Option<(Tensor<D>, Option<Tensor<2, Bool>>)> {
    if !enabled() || matches!(relu, Relu::Off) {
        return None;
    }
    let fx = Flexed::of(x)?;
    let shape = x.dims();
    let n: usize = shape.iter().product();
    let b = shape[0].max(1);
    let kernel = Relu1 {
        shape: shape.to_vec(),
        gate: gate(&relu, n)?,
        chunk: (n / b).max(4096),
    };
    let y: Tensor<D> = apply(kernel, [fx]);
    let off = match relu {
        Relu::On { record: true } => {
            let v = values(&Flexed::of(&y).expect("a flex kernel output").value());
            let off = relu::off_mask(slice(&v));
            Some(Tensor::from_primitive::<Flex>(FlexTensor::from_data(
                TensorData::new(off, [b, n / b]),
            )))
        }
        _ => None,
    };
    Some((y, off))
}

/// The values of plain (untracked) flex tensors of one shape, contiguous.
fn plain_values<const D: usize>(ts: &[&Tensor<D>]) -> Option<Vec<FlexTensor>> {
    let dims = ts.first()?.dims();
    ts.iter()
        .map(|t| match Flexed::of(*t)? {
            Flexed::Plain(p) if t.dims() == dims => Some(values(&p)),
            _ => None,
        })
        .collect()
}

/// `f` applied elementwise to plain flex tensors `a`, `b` of one shape, on
/// every thread (`None` if they are not).
fn zip_map<const D: usize>(
    a: &Tensor<D>,
    b: &Tensor<D>,
    f: impl Fn(f32, f32) -> f32 + Sync + Send,
) -> Option<Tensor<D>> {
    if !enabled() {
        return None;
    }
    let v = plain_values(&[a, b])?;
    let (x, y) = (slice(&v[0]), slice(&v[1]));
    let fill = |i: usize, o: &mut [std::mem::MaybeUninit<f32>]| {
        let at = i * 16384;
        for ((o, &p), &q) in o.iter_mut().zip(&x[at..]).zip(&y[at..]) {
            o.write(f(p, q));
        }
    };
    // SAFETY: `fill` writes every value of its chunk.
    let out = unsafe { flex::par_vec_uninit(x.len(), 16384, fill) };
    Some(Tensor::from_primitive::<Flex>(flex(out, &a.dims())))
}

/// a + b·s (`s` rounded to f32, as burn's `mul_scalar`): the same values
/// as `a + b.mul_scalar(s)`, in one pass on every thread for plain flex
/// tensors.
pub fn add_scaled<const D: usize>(a: Tensor<D>, b: Tensor<D>, s: f64) -> Tensor<D> {
    let s32 = s as f32;
    zip_map(&a, &b, |p, q| p + q * s32).unwrap_or_else(|| a + b.mul_scalar(s))
}

/// (a − b)·s (`s` rounded to f32): the same values as
/// `(a - b).mul_scalar(s)`, in one pass on every thread for plain flex
/// tensors.
pub fn scaled_difference<const D: usize>(a: Tensor<D>, b: Tensor<D>, s: f64) -> Tensor<D> {
    let s32 = s as f32;
    zip_map(&a, &b, |p, q| (p - q) * s32).unwrap_or_else(|| (a - b).mul_scalar(s))
}

/// One SGD step of a parameter tensor `p` with gradient `g` and momentum
/// buffer `buffer` (see `train::Trainer::step`): (θ′, b′), b′ when
/// `momentum` is given, by one pass on plain flex tensors (`None`
/// otherwise: use burn's ops).
pub fn sgd_update(
    p: &Tensor<1>,
    g: &Tensor<1>,
    buffer: Option<&Tensor<1>>,
    lr: f64,
    momentum: Option<f64>,
    weight_decay: Option<f64>,
) -> Option<(Tensor<1>, Option<Tensor<1>>)> {
    if !enabled() {
        return None;
    }
    let mut ts = vec![p, g];
    ts.extend(buffer);
    let v = plain_values(&ts)?;
    let s = sgd::Sgd {
        lr: lr as f32,
        momentum: momentum.map(|m| m as f32),
        weight_decay: weight_decay.map(|w| w as f32),
    };
    let (next, b) = sgd::update(&s, slice(&v[0]), slice(&v[1]), v.get(2).map(slice));
    let t = |v: Vec<f32>| Tensor::from_primitive::<Flex>(flex(v, &p.dims()));
    Some((t(next), b.map(t)))
}

/// Rows `rows` of `x` `[N, d]` (burn's `select(0, ·)`), copied in parallel
/// for a plain flex tensor (`None` otherwise, or for an index out of range).
pub fn select_rows(x: &Tensor<2>, rows: &[usize]) -> Option<Tensor<2>> {
    let [n, d] = x.dims();
    if !enabled() || rows.iter().any(|&r| r >= n) {
        return None;
    }
    let v = plain_values(&[x])?;
    let src = slice(&v[0]);
    let per = (16384 / d.max(1)).max(1);
    let fill = |t: usize, out: &mut [std::mem::MaybeUninit<f32>]| {
        for (k, row) in out.chunks_mut(d).enumerate() {
            let r = rows[t * per + k];
            for (o, &s) in row.iter_mut().zip(&src[r * d..][..d]) {
                o.write(s);
            }
        }
    };
    // SAFETY: chunk t holds whole rows t·per.., each written above.
    let out = unsafe { flex::par_vec_uninit(rows.len() * d, per * d, fill) };
    Some(Tensor::from_primitive::<Flex>(flex(out, &[rows.len(), d])))
}

/// How a max-pool picks each window's input (see `models::gates`).
pub enum PoolGate<'a> {
    /// The maximum.
    Free,
    /// The maximum; its index is returned.
    Record,
    /// The recorded index `[B, C, h'·w']` (into the flattened `h·w` plane).
    Fixed(&'a Tensor<3, Int>),
}

/// Max-pool 2×2, stride 2 of `x` `[B, C, h, w]` as one kernel when on flex
/// (`None` otherwise: use burn's ops); with [`PoolGate::Record`] also the
/// argmax `[B, C, h'·w']`.
pub fn max_pool2(x: &Tensor<4>, gate: PoolGate) -> Option<(Tensor<4>, Option<Tensor<3, Int>>)> {
    if !enabled() {
        return None;
    }
    let fx = Flexed::of(x)?;
    let shape = x.dims();
    let [b, c, h, w] = shape;
    let pool = Pool {
        planes: b * c,
        h,
        w,
    };
    let (ho, wo) = (h / 2, w / 2);
    let xv = values(&fx.value());
    let (y, idx) = match gate {
        PoolGate::Free | PoolGate::Record => {
            let (y, idx) = pool::forward(&pool, slice(&xv));
            (y, Argmax::Owned(std::sync::Arc::new(idx)))
        }
        PoolGate::Fixed(t) => {
            let t: Tensor<3, Int> = t.clone();
            let p = match t.clone().try_into_primitive::<Flex>() {
                Ok(p) => p,
                Err(_) => t.try_into_primitive::<Autodiff<Flex>>().ok()?,
            };
            let p = values(&p);
            let idx = match p.dtype() {
                DType::I32 => Argmax::Recorded(p),
                DType::I64 => {
                    let v = p.as_slice::<i64>()?.iter().map(|&i| i as u32).collect();
                    Argmax::Owned(std::sync::Arc::new(v))
                }
                _ => return None,
            };
            let s = idx.as_slice();
            if s.len() != b * c * ho * wo || s.iter().any(|&i| i as usize >= h * w) {
                return None;
            }
            (pool::gather(&pool, slice(&xv), s), idx)
        }
    };
    let recorded = matches!(gate, PoolGate::Record).then(|| {
        let v: Vec<i32> = idx.as_slice().iter().map(|&i| i as i32).collect();
        Tensor::from_primitive::<Flex>(FlexTensor::from_data(TensorData::new(v, [b, c, ho * wo])))
    });
    let kernel = MaxPool {
        pool,
        shape,
        y: flex(y, &[b, c, ho, wo]),
        idx,
    };
    Some((apply(kernel, [fx]), recorded))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::tensor_to_vec;
    use crate::rng::Rng;
    use burn::tensor::{Device, TensorData};

    fn random<const D: usize>(shape: [usize; D], rng: &mut Rng) -> Tensor<D> {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
        Tensor::from_data(TensorData::new(v, shape), &Device::flex())
    }

    fn assert_close<const D: usize>(a: &Tensor<D>, b: &Tensor<D>, what: &str) {
        let (a, b) = (tensor_to_vec(a), tensor_to_vec(b));
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= 2e-5 * scale, "{what}[{i}]: {x} vs {y}");
        }
    }

    /// Forward values and every gradient equal burn's conv2d through
    /// autodiff, with and without bias, for stride 1 and 2 and a 1×1
    /// kernel; with only some inputs tracked; and without autodiff.
    #[test]
    fn matches_burn_conv2d_and_its_gradients() {
        let mut rng = Rng::new(11);
        for (ci, co, k, s, p, bias) in [
            (3, 4, 3, 1, 1, true),
            (4, 5, 3, 2, 1, false),
            (4, 6, 1, 2, 0, false),
            (2, 3, 3, 1, 0, true),
        ] {
            let opts = ConvOptions::new([s, s], [p, p], [1, 1], 1);
            let x = random([3, ci, 9, 8], &mut rng);
            let w = random([co, ci, k, k], &mut rng);
            let b = bias.then(|| random([co], &mut rng));
            let ours = conv2d(x.clone(), w.clone(), b.clone(), opts.clone());
            let theirs = module::conv2d(x.clone(), w.clone(), b.clone(), opts.clone());
            assert_close(&ours, &theirs, "forward");
            let up = random(theirs.dims(), &mut rng);
            let run = |f: &dyn Fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>) -> Tensor<4>,
                       track_x: bool| {
                let lx = if track_x {
                    x.clone().autodiff().require_grad()
                } else {
                    x.clone()
                };
                let lw = w.clone().autodiff().require_grad();
                let lb = b.clone().map(|b| b.autodiff().require_grad());
                let grads = (f(lx.clone(), lw.clone(), lb.clone()) * up.clone())
                    .sum()
                    .backward();
                (
                    track_x.then(|| lx.grad(&grads).unwrap()),
                    lw.grad(&grads).unwrap(),
                    lb.map(|b| b.grad(&grads).unwrap()),
                )
            };
            for track_x in [true, false] {
                let o = opts.clone();
                let mine = run(&|x, w, b| conv2d(x, w, b, o.clone()), track_x);
                let o = opts.clone();
                let base = run(&|x, w, b| module::conv2d(x, w, b, o.clone()), track_x);
                if let (Some(a), Some(b)) = (&mine.0, &base.0) {
                    assert_close(a, b, "dx");
                }
                assert_close(&mine.1, &base.1, "dW");
                if let (Some(a), Some(b)) = (&mine.2, &base.2) {
                    assert_close(a, b, "db");
                }
            }
            let dw = conv2d_weight_grad(x.clone(), w.clone(), up.clone(), opts.clone());
            let base = module::conv2d_weight_backward(x, w, up, opts);
            assert_close(&dw, &base, "conv2d_weight_grad");
        }
    }

    /// The fused BatchNorm equals burn's composition (`models::batch_norm`
    /// with the kernels off) in every mode: output, running update and
    /// gradients of x, γ, β.
    #[test]
    fn batch_norm_matches_burns_composition() {
        use crate::models::{Bn, BN_MOMENTUM};
        let mut rng = Rng::new(5);
        let x = random([4, 3, 5, 6], &mut rng)
            .mul_scalar(2.0)
            .add_scalar(0.5);
        let g = random([3], &mut rng);
        let b = random([3], &mut rng);
        let up = random([4, 3, 5, 6], &mut rng);
        let running = vec![
            random([3], &mut rng),
            random([3], &mut rng).abs().add_scalar(0.5),
        ];
        let run = |on: bool, mode: usize| {
            set_enabled(on);
            let (lx, lg, lb) = (
                x.clone().autodiff().require_grad(),
                g.clone().autodiff().require_grad(),
                b.clone().autodiff().require_grad(),
            );
            let mut buffers = running.clone();
            let mut bn = match mode {
                0 => Bn::Batch,
                1 => Bn::Running(&running),
                _ => Bn::Update {
                    buffers: &mut buffers,
                    momentum: BN_MOMENTUM,
                },
            };
            let y = crate::models::batch_norm::batch_norm(
                lx.clone(),
                lg.clone(),
                lb.clone(),
                &mut bn,
                0,
            );
            let grads = (y.clone() * up.clone()).sum().backward();
            set_enabled(true);
            let gx = lx.grad(&grads).unwrap();
            let gg = lg.grad(&grads).unwrap();
            let gb = lb.grad(&grads).unwrap();
            (y.inner(), gx, gg, gb, buffers)
        };
        for mode in 0..3 {
            let (a, b) = (run(true, mode), run(false, mode));
            assert_close(&a.0, &b.0, "y");
            assert_close(&a.1, &b.1, "dx");
            assert_close(&a.2, &b.2, "dγ");
            assert_close(&a.3, &b.3, "dβ");
            for (p, q) in a.4.iter().zip(&b.4) {
                assert_close(p, q, "running statistics");
            }
        }
    }

    /// Every registered model with the kernels equals the model with burn's
    /// ops: logits, recorded gates and every parameter gradient, with free,
    /// recorded and fixed gates and with batch and running BatchNorm
    /// statistics (the running update too).
    #[test]
    fn models_match_burns_ops_in_every_mode() {
        use crate::models::tests::one_of_each;
        use crate::models::{forward_bn, Bn, Gate, Gates, Model, BN_MOMENTUM};
        use crate::objective::{leaf_gradients, leaves};
        let dev = Device::flex();
        let mut rng = Rng::new(9);
        for arch in one_of_each() {
            let model = Model::init(&arch, 3, &dev).unwrap();
            let x = random([5, arch.input_len()], &mut rng);
            let up = random([5, arch.classes()], &mut rng);
            // gates recorded once by each path, each replayed by both
            let record = |on: bool| {
                let mut g = Vec::new();
                set_enabled(on);
                let _ = forward_bn(
                    &arch,
                    &model.params,
                    x.clone(),
                    Gates::Record(&mut g),
                    &mut Bn::Batch,
                );
                set_enabled(true);
                g
            };
            let fixed = [record(false), record(true)];
            let run = |on: bool, gates: usize, bn: usize| {
                flex::RUNS.with(|r| r.borrow_mut().clear());
                set_enabled(on);
                let ls = leaves(&model.params);
                let mut recorded = Vec::new();
                let mut buffers = model.buffers.clone();
                let g = match gates {
                    0 => Gates::Free,
                    1 => Gates::Record(&mut recorded),
                    k => Gates::Fixed(&fixed[k - 2]),
                };
                let mut b = match bn {
                    0 => Bn::Update {
                        buffers: &mut buffers,
                        momentum: BN_MOMENTUM,
                    },
                    _ => Bn::Running(&model.buffers),
                };
                let z = forward_bn(&arch, &ls, x.clone(), g, &mut b);
                let grads = (z.clone() * up.clone()).sum().backward();
                set_enabled(true);
                let runs: Vec<&str> = flex::RUNS.with(|r| r.borrow().keys().copied().collect());
                let want: &[&str] = match (&arch, on) {
                    (_, false) => &[],
                    (crate::models::Architecture::Resnet18(_), _) => {
                        &["AddRelu", "Conv", "Linear", "Norm"]
                    }
                    (crate::models::Architecture::Vgg11(v), _) if v.batch_norm => {
                        &["Conv", "Linear", "MaxPool", "Norm"]
                    }
                    (crate::models::Architecture::Vgg11(_), _) => {
                        &["Conv", "Linear", "MaxPool", "Relu1"]
                    }
                    (crate::models::Architecture::Mlp(_), _) => &["Linear", "Relu1"],
                    _ => &["Conv", "Linear", "MaxPool", "Relu1"],
                };
                assert_eq!(runs, want, "{arch:?}");
                (z.inner(), leaf_gradients(&ls, &grads), recorded, buffers)
            };
            for gates in 0..4 {
                for bn in 0..2 {
                    let what = format!("{arch:?} gates {gates} bn {bn}");
                    let (a, b) = (run(true, gates, bn), run(false, gates, bn));
                    assert_close(&a.0, &b.0, &format!("logits {what}"));
                    for (i, (p, q)) in a.1.iter().zip(&b.1).enumerate() {
                        assert_close(p, q, &format!("gradient {i} {what}"));
                    }
                    for (p, q) in a.3.iter().zip(&b.3) {
                        assert_close(p, q, &format!("running statistics {what}"));
                    }
                    assert_eq!(a.2.len(), b.2.len(), "{what}");
                    for (p, q) in a.2.iter().zip(&b.2) {
                        match (p, q) {
                            (Gate::Off(p), Gate::Off(q)) => {
                                let differ = p.clone().not_equal(q.clone()).int().sum();
                                assert_eq!(tensor_to_vec(&differ.float()), [0.0], "{what}");
                            }
                            (Gate::Pool(p), Gate::Pool(q)) => {
                                assert_eq!(
                                    tensor_to_vec(&p.clone().float()),
                                    tensor_to_vec(&q.clone().float())
                                );
                            }
                            _ => panic!("gate kinds differ: {what}"),
                        }
                    }
                }
            }
        }
    }

    /// The fused elementwise helpers give burn's values bit for bit, on
    /// flex tensors and (falling back) on tracked ones.
    #[test]
    fn elementwise_helpers_match_burn_bit_for_bit() {
        let mut rng = Rng::new(21);
        let a = random([70_000], &mut rng);
        let b = random([70_000], &mut rng);
        let s = 1.0 / (2.0 * 3.7e-4);
        assert_eq!(
            tensor_to_vec(&add_scaled(a.clone(), b.clone(), s)),
            tensor_to_vec(&(a.clone() + b.clone().mul_scalar(s)))
        );
        assert_eq!(
            tensor_to_vec(&scaled_difference(a.clone(), b.clone(), s)),
            tensor_to_vec(&(a.clone() - b.clone()).mul_scalar(s))
        );
        let t = a.clone().autodiff().require_grad();
        let y = add_scaled(t.clone(), b.clone(), s);
        let g = y.sum().backward();
        assert_eq!(tensor_to_vec(&t.grad(&g).unwrap()), vec![1.0; 70_000]);
    }

    #[test]
    fn select_rows_is_burns_select() {
        let mut rng = Rng::new(2);
        let x = random([9, 7], &mut rng);
        let rows = [4usize, 0, 8, 4];
        let ids = Tensor::<1, Int>::from_data(
            TensorData::new(rows.iter().map(|&r| r as i64).collect::<Vec<_>>(), [4]),
            &Device::flex(),
        );
        assert_eq!(
            tensor_to_vec(&select_rows(&x, &rows).unwrap()),
            tensor_to_vec(&x.clone().select(0, ids))
        );
        assert!(select_rows(&x, &[9]).is_none());
    }
}
