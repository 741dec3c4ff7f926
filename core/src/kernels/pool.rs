//! Max-pool 2×2, stride 2 (no padding; a last odd row or column is
//! dropped) on host slices, with the argmax of every window: computed
//! (first maximum in row-major window order wins, a NaN always wins — burn
//! flex's rule) or given (fixed gates). The backward step routes δ to the
//! argmax.
//!
//! # Shapes
//! x `[B, C, h, w]`, y and δ `[B, C, h/2, w/2]`; the argmax of each output
//! is its input's index in the flattened `h·w` plane (as burn's
//! `max_pool2d_with_indices` gives it).

use burn::backend::flex::FlexTensor;
use std::mem::MaybeUninit;

use super::flex::{flex, par_vec, par_vec_uninit, slice, values, Kernel};

/// The sizes of a pooled input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pool {
    /// B·C planes.
    pub planes: usize,
    pub h: usize,
    pub w: usize,
}

impl Pool {
    fn out(&self) -> (usize, usize) {
        (self.h / 2, self.w / 2)
    }

    /// Output values per plane.
    pub fn plane_out(&self) -> usize {
        let (ho, wo) = self.out();
        ho * wo
    }
}

/// Planes per parallel task.
fn planes_per_task(p: &Pool) -> usize {
    (4096 / (p.h * p.w).max(1)).max(1)
}

/// (y, argmax) of `x`.
pub(crate) fn forward(p: &Pool, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
    let (ho, wo) = p.out();
    let (hw, po) = (p.h * p.w, ho * wo);
    assert_eq!(x.len(), p.planes * hw, "max_pool: input size");
    let per = planes_per_task(p);
    let idx: Vec<u32> = {
        let fill = |t: usize, out: &mut [MaybeUninit<u32>]| {
            for (k, o) in out.chunks_mut(po).enumerate() {
                let src = &x[(t * per + k) * hw..][..hw];
                for oh in 0..ho {
                    let (r0, r1) = (
                        &src[2 * oh * p.w..][..p.w],
                        &src[(2 * oh + 1) * p.w..][..p.w],
                    );
                    for (ow, slot) in o[oh * wo..(oh + 1) * wo].iter_mut().enumerate() {
                        let c = 2 * ow;
                        // row-major window order; the first maximum wins, a NaN always
                        let mut best = (r0[c], c);
                        for (v, i) in [
                            (r0[c + 1], c + 1),
                            (r1[c], p.w + c),
                            (r1[c + 1], p.w + c + 1),
                        ] {
                            if v > best.0 || v.is_nan() {
                                best = (v, i);
                            }
                        }
                        slot.write((2 * oh * p.w + best.1) as u32);
                    }
                }
            }
        };
        let n = p.planes * po;
        let mut v: Vec<u32> = Vec::with_capacity(n);
        {
            use rayon::prelude::*;
            v.spare_capacity_mut()[..n]
                .par_chunks_mut(per * po)
                .enumerate()
                .for_each(|(t, c)| super::simd::wide(|| fill(t, c)));
        }
        // SAFETY: the chunks cover `0..n` and `fill` wrote each value.
        unsafe { v.set_len(n) };
        v
    };
    (gather(p, x, &idx), idx)
}

/// y[o] = x[plane(o), argmax[o]].
pub(crate) fn gather(p: &Pool, x: &[f32], idx: &[u32]) -> Vec<f32> {
    let (hw, po) = (p.h * p.w, p.plane_out());
    assert_eq!(idx.len(), p.planes * po, "max_pool: index count");
    let per = planes_per_task(p);
    let fill = |t: usize, out: &mut [MaybeUninit<f32>]| {
        for (k, o) in out.chunks_mut(po).enumerate() {
            let plane = t * per + k;
            let src = &x[plane * hw..][..hw];
            for (slot, &i) in o.iter_mut().zip(&idx[plane * po..][..po]) {
                slot.write(src[i as usize]);
            }
        }
    };
    // SAFETY: `fill` writes every value of its chunk.
    unsafe { par_vec_uninit(p.planes * po, per * po, fill) }
}

/// ∂x: δ added at each output's argmax, zero elsewhere.
pub(crate) fn backward(p: &Pool, idx: &[u32], delta: &[f32]) -> Vec<f32> {
    let (hw, po) = (p.h * p.w, p.plane_out());
    assert_eq!(delta.len(), p.planes * po, "max_pool: gradient size");
    let per = planes_per_task(p);
    par_vec(p.planes * hw, per * hw, |t, dx| {
        let first = t * per;
        for (k, plane) in dx.chunks_mut(hw).enumerate() {
            let o = (first + k) * po;
            for (&i, &d) in idx[o..o + po].iter().zip(&delta[o..o + po]) {
                plane[i as usize] += d;
            }
        }
    })
}

/// The argmax of every window: computed here, or a recorded `i32` index
/// tensor read in place.
#[derive(Clone, Debug)]
pub(crate) enum Argmax {
    Owned(std::sync::Arc<Vec<u32>>),
    /// A contiguous `i32` flex tensor of in-range (non-negative) indices.
    Recorded(FlexTensor),
}

impl Argmax {
    pub fn as_slice(&self) -> &[u32] {
        match self {
            Argmax::Owned(v) => v,
            Argmax::Recorded(t) => {
                let (a, b) = t
                    .layout()
                    .contiguous_offsets()
                    .expect("a contiguous index tensor");
                let s = &t.storage::<i32>()[a..b];
                // SAFETY: i32 and u32 have the same size and alignment and
                // every bit pattern is valid for both; the indices are
                // non-negative (checked when the tensor was accepted).
                unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u32>(), s.len()) }
            }
        }
    }
}

/// Max-pool as an autodiff kernel on x: the forward values and argmax,
/// computed before the node is built.
#[derive(Clone, Debug)]
pub(crate) struct MaxPool {
    pub pool: Pool,
    /// `[B, C, h, w]`
    pub shape: [usize; 4],
    pub y: FlexTensor,
    pub idx: Argmax,
}

impl Kernel<1> for MaxPool {
    fn forward(&self, _: &[FlexTensor; 1]) -> FlexTensor {
        self.y.clone()
    }

    fn backward(
        &self,
        _: &[FlexTensor; 1],
        _: Option<&FlexTensor>,
        grad: FlexTensor,
        [want_x]: [bool; 1],
    ) -> [Option<FlexTensor>; 1] {
        let delta = values(&grad);
        [want_x.then(|| {
            flex(
                backward(&self.pool, self.idx.as_slice(), slice(&delta)),
                &self.shape,
            )
        })]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_ties_and_routing() {
        // one plane 3×4 (last row dropped): windows [1 5 | 2 2], [5 1 | 2 7]
        let p = Pool {
            planes: 1,
            h: 3,
            w: 4,
        };
        let x = [1.0, 5.0, 5.0, 1.0, 2.0, 2.0, 2.0, 7.0, 9.0, 9.0, 9.0, 9.0];
        let (y, idx) = forward(&p, &x);
        assert_eq!(y, vec![5.0, 7.0]);
        assert_eq!(idx, vec![1, 7]);
        // a tie keeps the first maximum; a NaN always wins
        let (_, idx) = forward(
            &p,
            &[
                3.0,
                3.0,
                0.0,
                f32::NAN,
                3.0,
                3.0,
                1.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
            ],
        );
        assert_eq!(idx, vec![0, 3]);
        let dx = backward(&p, &[1, 7], &[0.5, -2.0]);
        assert_eq!(
            dx,
            vec![0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, -2.0, 0.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(gather(&p, &x, &[4, 2]), vec![2.0, 5.0]);
    }
}
