//! A dense layer y = x·Wᵀ + b on host slices and its gradients, each one
//! GEMM on the `gemm` crate's thread pool, written into uninitialised
//! outputs (burn flex zero-fills every output first, 6 MB for the
//! benchmark MLP's first weight gradient).
//!
//! - forward: x·Wᵀ into a column-major buffer, x transposed first when
//!   large (with W stored `[out, in]` this orientation runs the benchmark
//!   MLP's first layer in 2.3 ms against 4.0 for row-major y from row-major
//!   x: the GEMM then packs neither operand on one thread), then y
//!   row-major plus b;
//! - ∂W = δᵀ·x, ∂b = Σ_batch δ, ∂x = δ·W.
//!
//! # Shapes
//! x `[B, in]`, W `[out, in]`, b `[out]`, y and δ `[B, out]`, row-major.

use std::mem::MaybeUninit;

use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::flex::{flex, par_vec_uninit, slice, values, Kernel};
use super::gemm::{matmul_into, Mat};

/// The sizes of a dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dense {
    pub batch: usize,
    pub inputs: usize,
    pub outputs: usize,
}

/// Rows per parallel task of the elementwise passes.
const ROWS: usize = 16;

/// Whether an `[m, k]·[k, n]` product is worth running on every thread
/// (burn flex's threshold).
fn large(m: usize, n: usize, k: usize) -> bool {
    m.saturating_mul(n).saturating_mul(k) >= 192 * 192 * 192
}

/// y = x·Wᵀ + b.
pub(crate) fn forward(d: &Dense, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let (n, i, o) = (d.batch, d.inputs, d.outputs);
    assert_eq!(x.len(), n * i, "linear: input size");
    assert_eq!(w.len(), o * i, "linear: weight size");
    assert_eq!(b.len(), o, "linear: bias size");
    // x·Wᵀ stored column-major (t[j·n + r] = y[r, j] − b[j]); a large x
    // is first transposed (in parallel) so that the GEMM reads it without
    // packing it on one thread
    let xt = large(n, o, i).then(|| transpose(x, n, i));
    let lhs = match &xt {
        Some(xt) => Mat {
            data: xt,
            rs: 1,
            cs: n,
        },
        None => Mat::rows(x, i),
    };
    let mut t: Vec<f32> = Vec::with_capacity(n * o);
    matmul_into(
        n,
        o,
        i,
        lhs,
        Mat::transposed(w, i),
        &mut t.spare_capacity_mut()[..n * o],
        1,
        n,
        large(n, o, i),
    );
    // SAFETY: the product wrote all n·o values.
    unsafe { t.set_len(n * o) };
    let fill = |r: usize, y: &mut [MaybeUninit<f32>]| {
        for (k, row) in y.chunks_mut(o).enumerate() {
            let r = r * ROWS + k;
            for (j, (v, &bj)) in row.iter_mut().zip(b).enumerate() {
                v.write(t[j * n + r] + bj);
            }
        }
    };
    // SAFETY: `fill` writes every value of its rows.
    unsafe { par_vec_uninit(n * o, ROWS * o, fill) }
}

/// The transpose `[cols, rows]` of row-major `x` `[rows, cols]`, in
/// parallel tiles of 16 columns.
fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const TILE: usize = 16;
    let fill = |t: usize, out: &mut [MaybeUninit<f32>]| {
        let (c0, nc) = (t * TILE, out.len() / rows);
        for r in 0..rows {
            for (k, &v) in x[r * cols + c0..][..nc].iter().enumerate() {
                out[k * rows + r].write(v);
            }
        }
    };
    // SAFETY: tile t holds columns t·16.. of every row, all written above.
    unsafe { par_vec_uninit(rows * cols, TILE * rows, fill) }
}

/// ∂W = δᵀ·x `[out, in]`.
pub(crate) fn weight_grad(d: &Dense, x: &[f32], delta: &[f32]) -> Vec<f32> {
    let (n, i, o) = (d.batch, d.inputs, d.outputs);
    assert_eq!(x.len(), n * i, "linear: input size");
    assert_eq!(delta.len(), n * o, "linear: gradient size");
    let mut dw: Vec<f32> = Vec::with_capacity(o * i);
    matmul_into(
        o,
        i,
        n,
        Mat::transposed(delta, o),
        Mat::rows(x, i),
        &mut dw.spare_capacity_mut()[..o * i],
        i,
        1,
        large(o, i, n),
    );
    // SAFETY: the product wrote all o·i values.
    unsafe { dw.set_len(o * i) };
    dw
}

/// ∂b = Σ_batch δ `[out]`, summed in f64 in batch order per output.
pub(crate) fn bias_grad(d: &Dense, delta: &[f32]) -> Vec<f32> {
    let o = d.outputs;
    assert_eq!(delta.len(), d.batch * o, "linear: gradient size");
    (0..o)
        .into_par_iter()
        .with_min_len(64)
        .map(|j| delta.chunks(o).map(|row| row[j] as f64).sum::<f64>() as f32)
        .collect()
}

/// ∂x = δ·W `[B, in]`.
pub(crate) fn input_grad(d: &Dense, w: &[f32], delta: &[f32]) -> Vec<f32> {
    let (n, i, o) = (d.batch, d.inputs, d.outputs);
    assert_eq!(w.len(), o * i, "linear: weight size");
    assert_eq!(delta.len(), n * o, "linear: gradient size");
    let mut dx: Vec<f32> = Vec::with_capacity(n * i);
    matmul_into(
        n,
        i,
        o,
        Mat::rows(delta, o),
        Mat::rows(w, i),
        &mut dx.spare_capacity_mut()[..n * i],
        i,
        1,
        large(n, i, o),
    );
    // SAFETY: the product wrote all n·i values.
    unsafe { dx.set_len(n * i) };
    dx
}

/// A dense layer as an autodiff kernel on (x, W, b).
#[derive(Clone, Debug)]
pub(crate) struct Linear(pub Dense);

impl Kernel<3> for Linear {
    fn forward(&self, [x, w, b]: &[FlexTensor; 3]) -> FlexTensor {
        let (x, w, b) = (values(x), values(w), values(b));
        let d = &self.0;
        flex(
            forward(d, slice(&x), slice(&w), slice(&b)),
            &[d.batch, d.outputs],
        )
    }

    fn backward(
        &self,
        [x, w, _]: &[FlexTensor; 3],
        _: Option<&FlexTensor>,
        grad: FlexTensor,
        [want_x, want_w, want_b]: [bool; 3],
    ) -> [Option<FlexTensor>; 3] {
        let d = &self.0;
        let delta = values(&grad);
        let dx = want_x.then(|| {
            let w = values(w);
            flex(
                input_grad(d, slice(&w), slice(&delta)),
                &[d.batch, d.inputs],
            )
        });
        let dw = want_w.then(|| {
            let x = values(x);
            flex(
                weight_grad(d, slice(&x), slice(&delta)),
                &[d.outputs, d.inputs],
            )
        });
        let db = want_b.then(|| flex(bias_grad(d, slice(&delta)), &[d.outputs]));
        [dx, dw, db]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_of_a_ragged_shape() {
        let x: Vec<f32> = (0..7 * 37).map(|k| k as f32).collect();
        let t = transpose(&x, 7, 37);
        for r in 0..7 {
            for c in 0..37 {
                assert_eq!(t[c * 7 + r], x[r * 37 + c]);
            }
        }
    }

    #[test]
    fn products_match_the_definition() {
        let d = Dense {
            batch: 5,
            inputs: 7,
            outputs: 3,
        };
        let x: Vec<f32> = (0..35).map(|k| (k % 9) as f32 * 0.5 - 2.0).collect();
        let w: Vec<f32> = (0..21).map(|k| (k % 5) as f32 - 2.0).collect();
        let b = [0.5f32, -1.0, 2.0];
        let dl: Vec<f32> = (0..15).map(|k| (k % 4) as f32 - 1.5).collect();
        let y = forward(&d, &x, &w, &b);
        let dw = weight_grad(&d, &x, &dl);
        let dx = input_grad(&d, &w, &dl);
        let db = bias_grad(&d, &dl);
        for n in 0..5 {
            for o in 0..3 {
                let want: f32 = (0..7).map(|i| x[n * 7 + i] * w[o * 7 + i]).sum::<f32>() + b[o];
                assert!((y[n * 3 + o] - want).abs() < 1e-4);
            }
            for i in 0..7 {
                let want: f32 = (0..3).map(|o| dl[n * 3 + o] * w[o * 7 + i]).sum();
                assert!((dx[n * 7 + i] - want).abs() < 1e-4);
            }
        }
        for o in 0..3 {
            for i in 0..7 {
                let want: f32 = (0..5).map(|n| dl[n * 3 + o] * x[n * 7 + i]).sum();
                assert!((dw[o * 7 + i] - want).abs() < 1e-4);
            }
            let want: f32 = (0..5).map(|n| dl[n * 3 + o]).sum();
            assert!((db[o] - want).abs() < 1e-5);
        }
    }
}
