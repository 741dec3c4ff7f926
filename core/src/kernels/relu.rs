//! A ReLU fused into a kernel's output, and the residual sum with its ReLU
//! (`relu(a + b)`, the end of a ResNet block) as one kernel.
//!
//! The gate is what `models::gates` does with separate ops: a unit is off
//! where its pre-activation is ≤ 0 (and then set to 0), or where a recorded
//! mask says (fixed gates, for finite-difference curvature); the backward
//! step passes δ where the unit is on and 0 where it is off.
//!
//! # Shapes
//! Output and δ: any shape, contiguous; a mask has one byte (1 = off) per
//! output value, in the same order.

use burn::backend::flex::FlexTensor;

use std::mem::MaybeUninit;

use super::flex::{assume_init, flex, par_vec_uninit, slice, values, Kernel};

/// How a fused ReLU gates its units.
#[derive(Clone, Debug)]
pub(crate) enum Gate {
    /// No ReLU: the identity.
    Identity,
    /// Units whose value is ≤ 0 are set to 0; in the backward step a unit
    /// is on where the output is not ≤ 0.
    Sign,
    /// Units set to 0 where the mask (bool flex tensor) says.
    Mask(FlexTensor),
}

/// The bytes of a bool flex tensor (1 = true), or `None` for a storage
/// other than one byte per value.
pub(crate) fn mask_bytes(mask: &FlexTensor) -> Option<FlexTensor> {
    use burn::tensor::{BoolStore, DType};
    matches!(mask.dtype(), DType::Bool(BoolStore::Native | BoolStore::U8)).then(|| values(mask))
}

/// The mask of a contiguous bool flex tensor (see [`mask_bytes`]).
pub(crate) fn bytes(mask: &FlexTensor) -> &[u8] {
    let (start, end) = mask
        .layout()
        .contiguous_offsets()
        .expect("a contiguous mask");
    &mask.storage::<u8>()[start..end]
}

impl Gate {
    /// Whether the backward step reads the forward output.
    pub fn needs_output(&self) -> bool {
        matches!(self, Gate::Sign)
    }

    /// Applies the gate to `y`, the output values from index `at` on.
    #[inline(always)]
    pub fn apply(&self, y: &mut [f32], at: usize) {
        match self {
            Gate::Identity => {}
            Gate::Sign => {
                for v in y.iter_mut() {
                    *v = if *v <= 0.0 { 0.0 } else { *v };
                }
            }
            Gate::Mask(m) => {
                for (v, &off) in y.iter_mut().zip(&bytes(m)[at..]) {
                    *v = if off != 0 { 0.0 } else { *v };
                }
            }
        }
    }

    /// δ with the off units' entries set to 0 (`output`: the forward
    /// output, for [`Gate::Sign`]); `None` for the identity (δ unchanged).
    /// `chunk`: values per parallel task.
    pub fn backward(
        &self,
        delta: &[f32],
        output: Option<&FlexTensor>,
        chunk: usize,
    ) -> Option<Vec<f32>> {
        let on = |i: usize, d: &mut [MaybeUninit<f32>]| {
            let src = &delta[i * chunk..][..d.len()];
            match self {
                Gate::Identity => unreachable!(),
                Gate::Sign => {
                    let y = output.expect("the forward output");
                    let y = &slice(y)[i * chunk..][..d.len()];
                    for ((o, &v), &yv) in d.iter_mut().zip(src).zip(y) {
                        o.write(if yv <= 0.0 { 0.0 } else { v });
                    }
                }
                Gate::Mask(m) => {
                    let m = &bytes(m)[i * chunk..][..d.len()];
                    for ((o, &v), &off) in d.iter_mut().zip(src).zip(m) {
                        o.write(if off != 0 { 0.0 } else { v });
                    }
                }
            }
        };
        match self {
            Gate::Identity => None,
            // SAFETY: `on` writes every value of its chunk.
            _ => Some(unsafe { par_vec_uninit(delta.len(), chunk, on) }),
        }
    }
}

/// The off mask (value ≤ 0) of an output computed with [`Gate::Sign`].
pub(crate) fn off_mask(y: &[f32]) -> Vec<bool> {
    y.iter().map(|&v| v <= 0.0).collect()
}

/// y = gate(a + b) as an autodiff kernel on (a, b).
#[derive(Clone, Debug)]
pub(crate) struct AddRelu {
    pub shape: Vec<usize>,
    pub gate: Gate,
    /// Values per parallel task (one image).
    pub chunk: usize,
}

impl Kernel<2> for AddRelu {
    fn forward(&self, [a, b]: &[FlexTensor; 2]) -> FlexTensor {
        let (a, b) = (values(a), values(b));
        let (a, b) = (slice(&a), slice(&b));
        let fill = |i: usize, y: &mut [MaybeUninit<f32>]| {
            let at = i * self.chunk;
            for ((o, &x), &z) in y.iter_mut().zip(&a[at..]).zip(&b[at..]) {
                o.write(x + z);
            }
            // SAFETY: the loop above wrote every value of the chunk.
            self.gate.apply(unsafe { assume_init(y) }, at);
        };
        // SAFETY: `fill` writes every value of its chunk.
        let y = unsafe { par_vec_uninit(a.len(), self.chunk, fill) };
        flex(y, &self.shape)
    }

    fn needs_output(&self) -> bool {
        self.gate.needs_output()
    }

    fn backward(
        &self,
        _: &[FlexTensor; 2],
        output: Option<&FlexTensor>,
        grad: FlexTensor,
        [want_a, want_b]: [bool; 2],
    ) -> [Option<FlexTensor>; 2] {
        let delta = values(&grad);
        let out = output.map(values);
        let d = match self.gate.backward(slice(&delta), out.as_ref(), self.chunk) {
            Some(d) => flex(d, &self.shape),
            None => delta,
        };
        [want_a.then(|| d.clone()), want_b.then_some(d)]
    }
}

/// y = gate(x) (a ReLU on its own) as an autodiff kernel on x.
#[derive(Clone, Debug)]
pub(crate) struct Relu1 {
    pub shape: Vec<usize>,
    pub gate: Gate,
    /// Values per parallel task.
    pub chunk: usize,
}

impl Kernel<1> for Relu1 {
    fn forward(&self, [x]: &[FlexTensor; 1]) -> FlexTensor {
        let x = values(x);
        let x = slice(&x);
        let fill = |i: usize, y: &mut [MaybeUninit<f32>]| {
            let at = i * self.chunk;
            for (o, &v) in y.iter_mut().zip(&x[at..]) {
                o.write(v);
            }
            // SAFETY: the loop above wrote every value of the chunk.
            self.gate.apply(unsafe { assume_init(y) }, at);
        };
        // SAFETY: `fill` writes every value of its chunk.
        flex(
            unsafe { par_vec_uninit(x.len(), self.chunk, fill) },
            &self.shape,
        )
    }

    fn needs_output(&self) -> bool {
        self.gate.needs_output()
    }

    fn backward(
        &self,
        _: &[FlexTensor; 1],
        output: Option<&FlexTensor>,
        grad: FlexTensor,
        [want_x]: [bool; 1],
    ) -> [Option<FlexTensor>; 1] {
        let delta = values(&grad);
        let out = output.map(values);
        let d = match self.gate.backward(slice(&delta), out.as_ref(), self.chunk) {
            Some(d) => flex(d, &self.shape),
            None => delta,
        };
        [want_x.then_some(d)]
    }
}
