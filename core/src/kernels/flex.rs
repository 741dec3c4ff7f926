//! The bridge between burn tensors and the host kernels: a float tensor on
//! the flex backend, plain or tracked by autodiff, as its primitive; kernel
//! results back as tensors; and autodiff nodes whose backward step runs the
//! kernels' gradients.
//!
//! Only burn's public extension API is used (`Tensor::try_into_primitive`,
//! `burn::backend::autodiff::ops::Backward`); tensors on any other backend,
//! or tracked with gradient checkpointing, are not flex tensors here and
//! callers fall back to burn's own ops.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use std::mem::MaybeUninit;

use super::simd::wide;

use burn::tensor::{DType, Tensor, TensorData};

/// The autodiff primitive of a tracked flex tensor.
pub(crate) type Tracked = <Autodiff<Flex> as burn::backend::BackendTypes>::FloatTensorPrimitive;

/// A float tensor's flex primitive.
pub(crate) enum Flexed {
    /// Not tracked by autodiff.
    Plain(FlexTensor),
    /// Tracked by autodiff (a leaf, a result, or a constant lifted into the graph).
    Tracked(Tracked),
}

impl Flexed {
    /// `t`'s primitive when it is an f32 tensor on flex (plain, or tracked
    /// without gradient checkpointing); `None` otherwise.
    pub fn of<const D: usize>(t: &Tensor<D>) -> Option<Flexed> {
        let p = match t.clone().try_into_primitive::<Flex>() {
            Ok(p) => Flexed::Plain(p),
            Err(_) => Flexed::Tracked(t.clone().try_into_primitive::<Autodiff<Flex>>().ok()?),
        };
        (p.value().dtype() == DType::F32).then_some(p)
    }

    /// The values (for a tracked tensor, the primitive it wraps).
    pub fn value(&self) -> FlexTensor {
        match self {
            Flexed::Plain(p) => p.clone(),
            Flexed::Tracked(t) => {
                <Autodiff<Flex> as burn::backend::AutodiffBackend>::inner(t.clone())
            }
        }
    }

    fn is_tracked(&self) -> bool {
        matches!(self, Flexed::Tracked(_))
    }

    /// As a node of the autodiff graph (a plain tensor becomes a constant).
    fn into_tracked(self) -> Tracked {
        match self {
            Flexed::Plain(p) => <Autodiff<Flex> as burn::backend::AutodiffBackend>::from_inner(p),
            Flexed::Tracked(t) => t,
        }
    }
}

/// The values of a flex tensor as a contiguous f32 slice (copied only when
/// the tensor is a strided view).
pub(crate) fn values(t: &FlexTensor) -> FlexTensor {
    if t.is_contiguous() && t.layout().start_offset() == 0 {
        t.clone()
    } else {
        t.to_contiguous()
    }
}

/// The f32 slice of a contiguous flex tensor (see [`values`]).
pub(crate) fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 flex tensor")
}

/// A vector of `n` values computed in parallel chunks of `chunk` values:
/// `f(i, c)` fills chunk `i`, which it finds zeroed. Each chunk is zeroed by
/// the thread that fills it, right before, rather than the whole vector by
/// the caller beforehand (a serial pass over cold memory).
pub(crate) fn par_vec(
    n: usize,
    chunk: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    use rayon::prelude::*;
    let mut v: Vec<f32> = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, c)| {
            for x in c.iter_mut() {
                x.write(0.0);
            }
            // SAFETY: every element of `c` was initialised just above.
            wide(|| f(i, unsafe { assume_init(c) }));
        });
    // SAFETY: the chunks cover `0..n` and each was initialised above.
    unsafe { v.set_len(n) };
    v
}

/// A vector of `n` values computed in parallel chunks of `chunk` values,
/// uninitialised until `f(i, c)` writes every value of chunk `i` (for
/// kernels that overwrite their output; [`par_vec`] zeroes it first).
///
/// # Safety
/// `f` must write every element of the chunk it is given.
pub(crate) unsafe fn par_vec_uninit(
    n: usize,
    chunk: usize,
    f: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    use rayon::prelude::*;
    let mut v: Vec<f32> = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, c)| wide(|| f(i, c)));
    // SAFETY: the chunks cover `0..n` and `f` wrote each (the caller's contract).
    unsafe { v.set_len(n) };
    v
}

/// `s` as initialised values.
///
/// # Safety
/// Every element of `s` must have been written.
pub(crate) unsafe fn assume_init(s: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: MaybeUninit<f32> has f32's layout; the caller guarantees
    // every element is initialised.
    unsafe { &mut *(s as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// A flex tensor holding `v` with shape `shape`.
pub(crate) fn flex(v: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape.to_vec()))
}

/// A kernel with a backward step: its forward values and, given the output
/// gradient, the gradients of its inputs (`None` where not asked for).
pub(crate) trait Kernel<const N: usize>: Clone + Send + std::fmt::Debug + 'static {
    /// The output from the inputs' values.
    fn forward(&self, inputs: &[FlexTensor; N]) -> FlexTensor;
    /// Whether [`Kernel::backward`] reads the forward output (kept until
    /// then only if so).
    fn needs_output(&self) -> bool {
        false
    }
    /// The inputs' gradients from their values, the output (when
    /// [`Kernel::needs_output`]) and the output gradient; `wanted[i]` says
    /// whether input i needs one.
    fn backward(
        &self,
        inputs: &[FlexTensor; N],
        output: Option<&FlexTensor>,
        grad: FlexTensor,
        wanted: [bool; N],
    ) -> [Option<FlexTensor>; N];
}

/// The autodiff step of a [`Kernel`]: the inputs it saved, run backward.
#[derive(Debug)]
struct Step<K>(std::marker::PhantomData<K>);

impl<K: Kernel<N>, const N: usize> Backward<Flex, N> for Step<K> {
    /// The kernel, its inputs' values, its output when it needs it, and the
    /// inputs' graph handles (to find gradients already registered for them).
    type State = (K, [FlexTensor; N], Option<FlexTensor>, [Tracked; N]);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let (kernel, inputs, output, handles) = ops.state;
        let wanted = ops.parents.each_ref().map(Option::is_some);
        let out = kernel.backward(&inputs, output.as_ref(), grad, wanted);
        for ((parent, g), handle) in ops.parents.into_iter().zip(out).zip(&handles) {
            if let (Some(node), Some(g)) = (parent, g) {
                // a tensor used twice (a ResNet block's input) gets the sum
                // of its gradients: burn's registry would add them in one
                // thread; the same sum, g + earlier, on every thread
                let g = match grads.remove::<Flex>(handle) {
                    Some(earlier) => sum(&g, &earlier),
                    None => g,
                };
                grads.register::<Flex>(node.id, g);
            }
        }
    }
}

/// a + b elementwise (same shape; burn's `float_add` values) in parallel
/// chunks.
fn sum(a: &FlexTensor, b: &FlexTensor) -> FlexTensor {
    let (a, b) = (values(a), values(b));
    let (x, y) = (slice(&a), slice(&b));
    assert_eq!(x.len(), y.len(), "gradient sum: shapes differ");
    const CHUNK: usize = 16384;
    let fill = |i: usize, o: &mut [MaybeUninit<f32>]| {
        let at = i * CHUNK;
        for ((o, &p), &q) in o.iter_mut().zip(&x[at..]).zip(&y[at..]) {
            o.write(p + q);
        }
    };
    // SAFETY: `fill` writes every value of its chunk.
    let v = unsafe { par_vec_uninit(x.len(), CHUNK, fill) };
    FlexTensor::from_data(TensorData::new(v, a.layout().shape().to_vec()))
}

#[cfg(test)]
thread_local! {
    /// Kernel runs on this thread, by kernel type (tests check that a path
    /// really ran the kernels).
    pub(crate) static RUNS: std::cell::RefCell<std::collections::BTreeMap<&'static str, usize>> =
        const { std::cell::RefCell::new(std::collections::BTreeMap::new()) };
}

/// Runs `kernel` on `inputs` (all flex tensors), recording its backward step
/// when any input is tracked by autodiff; the result has shape `D`.
pub(crate) fn apply<K: Kernel<N>, const N: usize, const D: usize>(
    kernel: K,
    inputs: [Flexed; N],
) -> Tensor<D> {
    #[cfg(test)]
    RUNS.with(|r| {
        let name = std::any::type_name::<K>()
            .rsplit("::")
            .next()
            .unwrap_or("?");
        *r.borrow_mut().entry(name).or_default() += 1;
    });
    if !inputs.iter().any(Flexed::is_tracked) {
        let values = inputs.map(|i| i.value());
        return Tensor::from_primitive::<Flex>(kernel.forward(&values));
    }
    let tracked = inputs.map(Flexed::into_tracked);
    let nodes = tracked.each_ref().map(|t| t.node());
    let handles = tracked.clone();
    let values = tracked.map(<Autodiff<Flex> as burn::backend::AutodiffBackend>::inner);
    let out = match Step::<K>(std::marker::PhantomData)
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let out = kernel.forward(&values);
            let keep = kernel.needs_output().then(|| out.clone());
            prep.finish((kernel, values, keep, handles), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(kernel.forward(&values)),
    };
    Tensor::from_primitive::<Autodiff<Flex>>(out)
}
