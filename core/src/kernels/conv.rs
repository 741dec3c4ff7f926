//! 2-D convolution (one group, dilation 1, zero padding) on host slices:
//! the forward pass and its input and weight gradients, each as an im2col
//! matrix product per group of images on rayon's pool.
//!
//! For one image, with K = c_in·kh·kw and P = ho·wo output positions,
//! cols `[K, P]` holds the input patch of every output position (row
//! (c, i, j), column (oh, ow): x[c, oh·s_h + i − p_h, ow·s_w + j − p_w], zero
//! outside the image), and
//!
//! - forward: y = W·cols (+ b), W `[c_out, K]`;
//! - weight gradient: ∂W = Σ_images δ·colsᵀ, ∂b = Σ_{images, positions} δ;
//! - input gradient: the stride-1 case is the forward convolution of δ with
//!   the flipped, transposed kernel (padding k − 1 − p); otherwise
//!   ∂cols = Wᵀ·δ scattered back onto the image (col2im).
//!
//! Images whose output plane is small are processed several at a time (one
//! product over `[K, n·P]`), so every product has at least ~1,024 columns.
//! Results do not depend on the number of threads: images are independent
//! in the forward pass and the input gradient, and the weight gradient sums
//! fixed blocks of images in a fixed order.
//!
//! # Shapes
//! x `[B, c_in, h, w]`, W `[c_out, c_in, kh, kw]`, b `[c_out]`,
//! y and δ `[B, c_out, ho, wo]`, all contiguous row-major.

use rayon::prelude::*;
use std::cell::RefCell;

use burn::backend::flex::FlexTensor;

use std::mem::MaybeUninit;

use super::flex::{assume_init, flex, par_vec, par_vec_uninit, slice, values, Kernel};
use super::gemm::{matmul, matmul_into, Mat};
use super::simd::wide;

thread_local! {
    /// Per-thread scratch for patch matrices, reused across calls.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on two scratch buffers of `a` and `b` values (contents
/// unspecified: callers write before they read). The thread's buffer is
/// reused; if it is in use (a nested call while this thread waits on rayon)
/// fresh ones are allocated.
fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < a + b {
                buf.resize(a + b, 0.0);
            }
            let (x, y) = buf[..a + b].split_at_mut(a);
            f(x, y)
        }
        Err(_) => f(&mut vec![0.0; a], &mut vec![0.0; b]),
    })
}

/// Columns a product should have at least (output positions × images).
const MIN_COLUMNS: usize = 1024;

/// Groups of images a batch is split into at least (when it has as many).
const MIN_GROUPS: usize = 8;

/// Blocks of images whose weight gradients are summed separately (then in
/// order), whatever the number of threads.
const WEIGHT_GRAD_BLOCKS: usize = 8;

/// The sizes of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub pad: [usize; 2],
}

impl Geometry {
    /// Output height.
    pub fn ho(&self) -> usize {
        (self.h + 2 * self.pad[0] - self.kh) / self.stride[0] + 1
    }

    /// Output width.
    pub fn wo(&self) -> usize {
        (self.w + 2 * self.pad[1] - self.kw) / self.stride[1] + 1
    }

    /// K = c_in·kh·kw, the length of one patch.
    fn patch(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// P = ho·wo.
    fn plane_out(&self) -> usize {
        self.ho() * self.wo()
    }

    /// True when the sizes describe a convolution: positive sizes and
    /// strides, a kernel that fits the padded image.
    pub fn is_valid(&self) -> bool {
        let positive = [
            self.batch,
            self.c_in,
            self.h,
            self.w,
            self.c_out,
            self.kh,
            self.kw,
            self.stride[0],
            self.stride[1],
        ]
        .iter()
        .all(|&s| s > 0);
        positive && self.h + 2 * self.pad[0] >= self.kh && self.w + 2 * self.pad[1] >= self.kw
    }

    /// Images per product: enough for [`MIN_COLUMNS`] columns, but at most
    /// an eighth of the batch, so that the groups keep every thread busy
    /// (a fixed fraction, not the thread count: the grouping sets the
    /// products' shapes and so their rounding).
    fn images_per_product(&self) -> usize {
        MIN_COLUMNS
            .div_ceil(self.plane_out())
            .min(self.batch.div_ceil(MIN_GROUPS))
            .max(1)
    }

    /// The convolution whose forward pass is this one's input gradient when
    /// the stride is 1: δ `[B, c_out, ho, wo]` in, `[B, c_in, h, w]` out,
    /// kernel flipped and transposed, padding k − 1 − p.
    fn transposed(&self) -> Option<Geometry> {
        let fits = self.stride == [1, 1] && self.pad[0] < self.kh && self.pad[1] < self.kw;
        fits.then(|| Geometry {
            batch: self.batch,
            c_in: self.c_out,
            h: self.ho(),
            w: self.wo(),
            c_out: self.c_in,
            kh: self.kh,
            kw: self.kw,
            stride: [1, 1],
            pad: [self.kh - 1 - self.pad[0], self.kw - 1 - self.pad[1]],
        })
    }
}

/// The output positions `o` in `0..n_out` whose input index `o·s + k − p`
/// lies in `0..n_in`: `lo..hi`.
fn valid(n_in: usize, n_out: usize, s: usize, k: usize, p: usize) -> (usize, usize) {
    let lo = if k >= p { 0 } else { (p - k).div_ceil(s) };
    let hi = if n_in + p <= k {
        0
    } else {
        (n_in + p - k).div_ceil(s)
    };
    (lo.min(n_out), hi.clamp(lo.min(n_out), n_out))
}

#[inline(always)]
/// Writes the patches of one image `x` (`[c_in, h, w]`) into `cols` as a
/// `[K, P]` block at column `off` of a matrix with row stride `ld`.
fn im2col(g: &Geometry, x: &[f32], cols: &mut [f32], ld: usize, off: usize) {
    let (ho, wo) = (g.ho(), g.wo());
    let ([sh, sw], [ph, pw]) = (g.stride, g.pad);
    // stride 1 and an output as wide as the input: a patch row is the input
    // plane shifted by a constant, whose wrapped-around edge columns are zeroed
    let shifted = sh == 1 && sw == 1 && wo == g.w;
    for c in 0..g.c_in {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            let (oh_lo, oh_hi) = valid(g.h, ho, sh, i, ph);
            for j in 0..g.kw {
                let (ow_lo, ow_hi) = valid(g.w, wo, sw, j, pw);
                let row = (c * g.kh + i) * g.kw + j;
                let dst = &mut cols[row * ld + off..row * ld + off + ho * wo];
                dst[..oh_lo * wo].fill(0.0);
                dst[oh_hi * wo..].fill(0.0);
                if shifted {
                    if oh_lo < oh_hi {
                        // dst[oh·w + ow] = plane[(oh + i − ph)·w + ow + j − pw]
                        let (a, b) = (oh_lo * wo, oh_hi * wo);
                        let start = (oh_lo + i - ph) * g.w;
                        if j >= pw {
                            let shift = j - pw;
                            let n = (b - a).min(plane.len() - start - shift);
                            dst[a..a + n].copy_from_slice(&plane[start + shift..][..n]);
                            dst[a + n..b].fill(0.0);
                        } else {
                            let shift = pw - j;
                            dst[a..a + shift].fill(0.0);
                            dst[a + shift..b].copy_from_slice(&plane[start..start + b - a - shift]);
                        }
                        for oh in oh_lo..oh_hi {
                            let d = &mut dst[oh * wo..(oh + 1) * wo];
                            for v in &mut d[..ow_lo] {
                                *v = 0.0;
                            }
                            for v in &mut d[ow_hi..] {
                                *v = 0.0;
                            }
                        }
                    }
                    continue;
                }
                for oh in oh_lo..oh_hi {
                    let src = &plane[(oh * sh + i - ph) * g.w..][..g.w];
                    let d = &mut dst[oh * wo..(oh + 1) * wo];
                    d[..ow_lo].fill(0.0);
                    d[ow_hi..].fill(0.0);
                    if sw == 1 {
                        d[ow_lo..ow_hi].copy_from_slice(&src[ow_lo + j - pw..ow_hi + j - pw]);
                    } else {
                        for (ow, v) in d.iter_mut().enumerate().take(ow_hi).skip(ow_lo) {
                            *v = src[ow * sw + j - pw];
                        }
                    }
                }
            }
        }
    }
}

#[inline(always)]
/// Adds the `[K, P]` block `cols` (row stride P) back onto one image `dx`
/// (`[c_in, h, w]`): the adjoint of [`im2col`].
fn col2im(g: &Geometry, cols: &[f32], dx: &mut [f32]) {
    let (ho, wo) = (g.ho(), g.wo());
    let ([sh, sw], [ph, pw]) = (g.stride, g.pad);
    for c in 0..g.c_in {
        let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            let (oh_lo, oh_hi) = valid(g.h, ho, sh, i, ph);
            for j in 0..g.kw {
                let (ow_lo, ow_hi) = valid(g.w, wo, sw, j, pw);
                let row = (c * g.kh + i) * g.kw + j;
                let src = &cols[row * ho * wo..(row + 1) * ho * wo];
                for oh in oh_lo..oh_hi {
                    let d = &mut plane[(oh * sh + i - ph) * g.w..][..g.w];
                    let s = &src[oh * wo..(oh + 1) * wo];
                    for ow in ow_lo..ow_hi {
                        d[ow * sw + j - pw] += s[ow];
                    }
                }
            }
        }
    }
}

/// y = conv(x, W) + b: `[B, c_out, ho, wo]`.
pub(crate) fn forward(g: &Geometry, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (k, p) = (g.patch(), g.plane_out());
    let (img_in, img_out) = (g.c_in * g.h * g.w, g.c_out * p);
    assert_eq!(x.len(), g.batch * img_in, "conv: input size");
    assert_eq!(w.len(), g.c_out * k, "conv: weight size");
    let n = g.images_per_product();
    let groups = g.batch.div_ceil(n);
    let threads = groups < rayon::current_num_threads();
    let fill = |gi: usize, y_g: &mut [MaybeUninit<f32>]| {
        with_scratch(k * n * p, g.c_out * n * p, |cols, prod| {
            let nb = y_g.len() / img_out;
            let b0 = gi * n;
            let ld = nb * p;
            for i in 0..nb {
                im2col(g, &x[(b0 + i) * img_in..][..img_in], cols, ld, i * p);
            }
            let cols = Mat::rows(&cols[..k * ld], ld);
            if nb == 1 {
                matmul_into(g.c_out, p, k, Mat::rows(w, k), cols, y_g, p, 1, threads);
            } else {
                let prod = &mut prod[..g.c_out * ld];
                matmul(
                    g.c_out,
                    ld,
                    k,
                    Mat::rows(w, k),
                    cols,
                    prod,
                    ld,
                    1,
                    false,
                    threads,
                );
                for i in 0..nb {
                    for c in 0..g.c_out {
                        let src = &prod[c * ld + i * p..][..p];
                        for (d, &v) in y_g[i * img_out + c * p..][..p].iter_mut().zip(src) {
                            d.write(v);
                        }
                    }
                }
            }
            if let Some(b) = bias {
                // SAFETY: the product or the copy above wrote all of y_g.
                let y_g = unsafe { assume_init(y_g) };
                for img in y_g.chunks_mut(img_out) {
                    for (plane, &bc) in img.chunks_mut(p).zip(b) {
                        plane.iter_mut().for_each(|v| *v += bc);
                    }
                }
            }
        })
    };
    // SAFETY: `fill` writes every value of its chunk (the product writes
    // the whole `[c_out, p]` image, the copy every image of a group).
    unsafe { par_vec_uninit(g.batch * img_out, n * img_out, fill) }
}

/// ∂L/∂x `[B, c_in, h, w]` from δ = ∂L/∂y.
pub(crate) fn input_grad(g: &Geometry, w: &[f32], delta: &[f32]) -> Vec<f32> {
    let (k, p) = (g.patch(), g.plane_out());
    let (img_in, img_out) = (g.c_in * g.h * g.w, g.c_out * p);
    assert_eq!(delta.len(), g.batch * img_out, "conv: gradient size");
    assert_eq!(w.len(), g.c_out * k, "conv: weight size");
    if let Some(t) = g.transposed() {
        // W'[ci, co, i, j] = W[co, ci, kh − 1 − i, kw − 1 − j]
        let area = g.kh * g.kw;
        let mut wt = vec![0.0f32; w.len()];
        for co in 0..g.c_out {
            for ci in 0..g.c_in {
                let src = &w[(co * g.c_in + ci) * area..][..area];
                let dst = &mut wt[(ci * g.c_out + co) * area..][..area];
                for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                    *d = *s;
                }
            }
        }
        return forward(&t, delta, &wt, None);
    }
    let groups = g.batch;
    let threads = groups < rayon::current_num_threads();
    par_vec(g.batch * img_in, img_in, |b, dx_b| {
        with_scratch(k * p, 0, |cols, _| {
            let d = Mat::rows(&delta[b * img_out..][..img_out], p);
            matmul(
                k,
                p,
                g.c_out,
                Mat::transposed(w, k),
                d,
                cols,
                p,
                1,
                false,
                threads,
            );
            col2im(g, cols, dx_b);
        })
    })
}

/// (∂L/∂W `[c_out, c_in, kh, kw]`, ∂L/∂b `[c_out]` when `bias`) from
/// δ = ∂L/∂y.
pub(crate) fn weight_grad(
    g: &Geometry,
    x: &[f32],
    delta: &[f32],
    bias: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    // the shifted product's rows are the kw·c_in taps of a kernel row: with
    // fewer than one vector's worth (the 3-channel stem) im2col is faster
    if g.stride == [1, 1] && g.kw * g.c_in >= 16 {
        weight_grad_shifted(g, x, delta, bias)
    } else {
        weight_grad_im2col(g, x, delta, bias)
    }
}

/// [`weight_grad`] through an im2col matrix (any stride).
fn weight_grad_im2col(
    g: &Geometry,
    x: &[f32],
    delta: &[f32],
    bias: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let (k, p) = (g.patch(), g.plane_out());
    let (img_in, img_out) = (g.c_in * g.h * g.w, g.c_out * p);
    assert_eq!(x.len(), g.batch * img_in, "conv: input size");
    assert_eq!(delta.len(), g.batch * img_out, "conv: gradient size");
    let n = g.images_per_product();
    let groups = g.batch.div_ceil(n);
    let blocks = groups.min(WEIGHT_GRAD_BLOCKS);
    let threads = blocks < rayon::current_num_threads();
    let partials: Vec<(Vec<f32>, Vec<f32>)> = (0..blocks)
        .into_par_iter()
        .map(|blk| {
            let mut dw = vec![0.0f32; g.c_out * k];
            let mut db = vec![0.0f32; g.c_out];
            with_scratch(k * n * p, g.c_out * n * p, |cols, dgrp| {
                wide(|| {
                    for gi in (blk * groups / blocks)..((blk + 1) * groups / blocks) {
                        let b0 = gi * n;
                        let nb = n.min(g.batch - b0);
                        let ld = nb * p;
                        for i in 0..nb {
                            im2col(g, &x[(b0 + i) * img_in..][..img_in], cols, ld, i * p);
                        }
                        let d: &[f32] = if nb == 1 {
                            &delta[b0 * img_out..][..img_out]
                        } else {
                            for i in 0..nb {
                                for c in 0..g.c_out {
                                    dgrp[c * ld + i * p..][..p]
                                        .copy_from_slice(&delta[(b0 + i) * img_out + c * p..][..p]);
                                }
                            }
                            &dgrp[..g.c_out * ld]
                        };
                        matmul(
                            g.c_out,
                            k,
                            ld,
                            Mat::rows(d, ld),
                            Mat::transposed(&cols[..k * ld], ld),
                            &mut dw,
                            k,
                            1,
                            true,
                            threads,
                        );
                        if bias {
                            for (c, acc) in db.iter_mut().enumerate() {
                                *acc += d[c * ld..(c + 1) * ld].iter().sum::<f32>();
                            }
                        }
                    }
                })
            });
            (dw, db)
        })
        .collect();
    let (dw, db) = sum_partials(partials);
    (dw, bias.then_some(db))
}

/// The blocks' partial gradients summed in block order.
fn sum_partials(partials: Vec<(Vec<f32>, Vec<f32>)>) -> (Vec<f32>, Vec<f32>) {
    let mut parts = partials.into_iter();
    let (mut dw, mut db) = parts.next().expect("at least one block");
    for (w, b) in parts {
        dw.iter_mut().zip(w).for_each(|(a, v)| *a += v);
        db.iter_mut().zip(b).for_each(|(a, v)| *a += v);
    }
    (dw, db)
}

/// Padded positions the shifted weight gradient puts in one product.
const SHIFTED_POSITIONS: usize = 4096;

/// [`weight_grad`] for stride 1 without an im2col matrix (whose 9-fold
/// copy, and GEMM's repacking of it, cost more than the product on small
/// channel counts). On the zero-padded grid (hp × wp positions per image,
/// q = image·hp·wp + r·wp + col), the input in channels-last order xp and
/// δ at its output positions (zero elsewhere) dt, one product per kernel
/// row i gives ∂W[co, c, i, j] for all j, c:
///
///   Σ_q xp[(q + i·wp)·c_in + j·c_in + c] · dt[q·c_out + co],
///
/// whose left operand is a strided view of xp (no copy). Valid outputs
/// never read past their own image's padded block.
fn weight_grad_shifted(
    g: &Geometry,
    x: &[f32],
    delta: &[f32],
    bias: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    assert_eq!(g.stride, [1, 1], "shifted weight gradient: stride 1 only");
    let (p, (ho, wo)) = (g.plane_out(), (g.ho(), g.wo()));
    let (img_in, img_out) = (g.c_in * g.h * g.w, g.c_out * p);
    assert_eq!(x.len(), g.batch * img_in, "conv: input size");
    assert_eq!(delta.len(), g.batch * img_out, "conv: gradient size");
    let ([ph, pw], (ci, co, kw)) = (g.pad, (g.c_in, g.c_out, g.kw));
    let (hp, wp) = (g.h + 2 * ph, g.w + 2 * pw);
    let s = hp * wp;
    let slack = (g.kh - 1) * wp + kw - 1;
    let n = (SHIFTED_POSITIONS / s)
        .min(g.batch.div_ceil(MIN_GROUPS))
        .max(1);
    let groups = g.batch.div_ceil(n);
    let blocks = groups.min(WEIGHT_GRAD_BLOCKS);
    let threads = blocks < rayon::current_num_threads();
    let row = co * kw * ci;
    let partials: Vec<(Vec<f32>, Vec<f32>)> = (0..blocks)
        .into_par_iter()
        .map(|blk| {
            // per kernel row i: [co][(j, c)]
            let mut d = vec![0.0f32; g.kh * row];
            let mut db = vec![0.0f32; co];
            with_scratch((n * s + slack) * ci, n * s * co, |xp, dt| {
                wide(|| {
                    for gi in (blk * groups / blocks)..((blk + 1) * groups / blocks) {
                        let b0 = gi * n;
                        let nb = n.min(g.batch - b0);
                        let q = nb * s;
                        let xp = &mut xp[..(q + slack) * ci];
                        let dt = &mut dt[..q * co];
                        xp.fill(0.0);
                        dt.fill(0.0);
                        for b in 0..nb {
                            let img = &x[(b0 + b) * img_in..][..img_in];
                            for c in 0..ci {
                                for r in 0..g.h {
                                    let src = &img[(c * g.h + r) * g.w..][..g.w];
                                    let dst = &mut xp[(b * s + (r + ph) * wp + pw) * ci + c..];
                                    for (k, &v) in src.iter().enumerate() {
                                        dst[k * ci] = v;
                                    }
                                }
                            }
                            let dimg = &delta[(b0 + b) * img_out..][..img_out];
                            for k in 0..co {
                                let plane = &dimg[k * p..][..p];
                                if bias {
                                    db[k] += plane.iter().sum::<f32>();
                                }
                                for oh in 0..ho {
                                    let dst = &mut dt[(b * s + oh * wp) * co + k..];
                                    for (ow, &v) in plane[oh * wo..][..wo].iter().enumerate() {
                                        dst[ow * co] = v;
                                    }
                                }
                            }
                        }
                        for i in 0..g.kh {
                            let lhs = Mat {
                                data: &xp[i * wp * ci..],
                                rs: 1,
                                cs: ci,
                            };
                            let rhs = Mat {
                                data: dt,
                                rs: co,
                                cs: 1,
                            };
                            let di = &mut d[i * row..][..row];
                            matmul(kw * ci, co, q, lhs, rhs, di, 1, kw * ci, true, threads);
                        }
                    }
                })
            });
            (d, db)
        })
        .collect();
    let (d, db) = sum_partials(partials);
    // ∂W[co, c, i, j] = d[i][co][j·c_in + c]
    let mut dw = vec![0.0f32; co * ci * g.kh * kw];
    for o in 0..co {
        for c in 0..ci {
            for i in 0..g.kh {
                for j in 0..kw {
                    dw[((o * ci + c) * g.kh + i) * kw + j] = d[i * row + o * kw * ci + j * ci + c];
                }
            }
        }
    }
    (dw, bias.then_some(db))
}

/// A convolution (with or without bias) as an autodiff kernel on
/// (x, W[, b]).
#[derive(Clone, Debug)]
pub(crate) struct Conv(pub Geometry);

impl Conv {
    fn output(&self, y: Vec<f32>) -> FlexTensor {
        let g = &self.0;
        flex(y, &[g.batch, g.c_out, g.ho(), g.wo()])
    }

    /// Gradients of x, W and the bias, as `wanted`.
    pub fn grads(
        &self,
        x: &FlexTensor,
        w: &FlexTensor,
        grad: FlexTensor,
        [want_x, want_w, want_b]: [bool; 3],
    ) -> [Option<FlexTensor>; 3] {
        let g = &self.0;
        let delta = values(&grad);
        let dx = want_x.then(|| {
            let w = values(w);
            flex(
                input_grad(g, slice(&w), slice(&delta)),
                &[g.batch, g.c_in, g.h, g.w],
            )
        });
        let (mut dw, mut db) = (None, None);
        if want_w || want_b {
            let x = values(x);
            let (w_grad, b_grad) = weight_grad(g, slice(&x), slice(&delta), want_b);
            dw = want_w.then(|| flex(w_grad, &[g.c_out, g.c_in, g.kh, g.kw]));
            db = b_grad.map(|b| flex(b, &[g.c_out]));
        }
        [dx, dw, db]
    }
}

impl Kernel<2> for Conv {
    fn forward(&self, [x, w]: &[FlexTensor; 2]) -> FlexTensor {
        let (x, w) = (values(x), values(w));
        self.output(forward(&self.0, slice(&x), slice(&w), None))
    }

    fn backward(
        &self,
        [x, w]: &[FlexTensor; 2],
        _: Option<&FlexTensor>,
        grad: FlexTensor,
        [want_x, want_w]: [bool; 2],
    ) -> [Option<FlexTensor>; 2] {
        let [dx, dw, _] = self.grads(x, w, grad, [want_x, want_w, false]);
        [dx, dw]
    }
}

impl Kernel<3> for Conv {
    fn forward(&self, [x, w, b]: &[FlexTensor; 3]) -> FlexTensor {
        let (x, w, b) = (values(x), values(w), values(b));
        self.output(forward(&self.0, slice(&x), slice(&w), Some(slice(&b))))
    }

    fn backward(
        &self,
        [x, w, _]: &[FlexTensor; 3],
        _: Option<&FlexTensor>,
        grad: FlexTensor,
        wanted: [bool; 3],
    ) -> [Option<FlexTensor>; 3] {
        self.grads(x, w, grad, wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn random(n: usize, rng: &mut Rng) -> Vec<f32> {
        (0..n).map(|_| rng.normal() as f32).collect()
    }

    /// y[b, co, oh, ow] by the definition, in f64.
    fn naive_forward(g: &Geometry, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f64> {
        let (ho, wo) = (g.ho(), g.wo());
        let mut y = vec![0.0f64; g.batch * g.c_out * ho * wo];
        for b in 0..g.batch {
            for co in 0..g.c_out {
                for oh in 0..ho {
                    for ow in 0..wo {
                        let mut s = bias.map_or(0.0, |bb| bb[co] as f64);
                        for ci in 0..g.c_in {
                            for i in 0..g.kh {
                                for j in 0..g.kw {
                                    let ih = (oh * g.stride[0] + i) as isize - g.pad[0] as isize;
                                    let iw = (ow * g.stride[1] + j) as isize - g.pad[1] as isize;
                                    if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xv = x[((b * g.c_in + ci) * g.h + ih as usize) * g.w
                                        + iw as usize];
                                    let wv = w[((co * g.c_in + ci) * g.kh + i) * g.kw + j];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        y[((b * g.c_out + co) * ho + oh) * wo + ow] = s;
                    }
                }
            }
        }
        y
    }

    fn close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (*g as f64 - w).abs() <= 1e-5 * scale,
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }

    /// Shapes covering every path: stride 1 and 2, padding 0–2, 1×1 and
    /// 3×3 and non-square kernels, planes that take one image per product
    /// and several (with a batch that does not divide evenly).
    fn geometries() -> Vec<Geometry> {
        let g = |batch, c_in, h, w, c_out, k: [usize; 2], s, p| Geometry {
            batch,
            c_in,
            h,
            w,
            c_out,
            kh: k[0],
            kw: k[1],
            stride: [s, s],
            pad: [p, p],
        };
        vec![
            g(3, 2, 7, 6, 3, [3, 3], 1, 1),
            g(2, 3, 9, 9, 4, [3, 3], 2, 1),
            g(5, 4, 4, 4, 2, [1, 1], 2, 0),
            g(4, 3, 5, 5, 3, [1, 1], 1, 0),
            g(2, 2, 6, 5, 2, [2, 3], 1, 0),
            g(3, 2, 5, 6, 3, [3, 2], 2, 2),
            g(2, 1, 40, 36, 2, [3, 3], 1, 1),
            g(70, 2, 2, 2, 3, [3, 3], 1, 1),
        ]
    }

    /// The forward pass equals the definition; the gradients equal the
    /// adjoint identities ⟨δ, conv(x, W)⟩ = ⟨∂x, x⟩ = ⟨∂W, W⟩ (+ ⟨∂b, b⟩),
    /// i.e. the exact gradients of the linear map.
    #[test]
    fn forward_and_gradients_match_the_definition() {
        let mut rng = Rng::new(7);
        for g in geometries() {
            assert!(g.is_valid(), "{g:?}");
            let x = random(g.batch * g.c_in * g.h * g.w, &mut rng);
            let w = random(g.c_out * g.patch(), &mut rng);
            let b = random(g.c_out, &mut rng);
            let y = forward(&g, &x, &w, Some(&b));
            close(
                &y,
                &naive_forward(&g, &x, &w, Some(&b)),
                &format!("y {g:?}"),
            );
            let delta = random(y.len(), &mut rng);
            // ∂x: for each input unit e_k, ∂x_k = ⟨δ, conv(e_k, W)⟩
            let dx = input_grad(&g, &w, &delta);
            let dx_want: Vec<f64> = (0..x.len())
                .map(|kk| {
                    let mut e = vec![0.0f32; x.len()];
                    e[kk] = 1.0;
                    let ye = naive_forward(&g, &e, &w, None);
                    ye.iter().zip(&delta).map(|(a, d)| a * *d as f64).sum()
                })
                .collect();
            close(&dx, &dx_want, &format!("dx {g:?}"));
            let (dw, db) = weight_grad(&g, &x, &delta, true);
            let mut paths = vec![weight_grad_im2col(&g, &x, &delta, true)];
            if g.stride == [1, 1] {
                paths.push(weight_grad_shifted(&g, &x, &delta, true));
            }
            let dw_want: Vec<f64> = (0..w.len())
                .map(|kk| {
                    let mut e = vec![0.0f32; w.len()];
                    e[kk] = 1.0;
                    let ye = naive_forward(&g, &x, &e, None);
                    ye.iter().zip(&delta).map(|(a, d)| a * *d as f64).sum()
                })
                .collect();
            close(&dw, &dw_want, &format!("dW {g:?}"));
            for (k, (w, _)) in paths.iter().enumerate() {
                close(w, &dw_want, &format!("dW path {k} {g:?}"));
            }
            let p = g.plane_out();
            let db_want: Vec<f64> = (0..g.c_out)
                .map(|c| {
                    (0..g.batch)
                        .map(|bi| {
                            delta[(bi * g.c_out + c) * p..][..p]
                                .iter()
                                .map(|v| *v as f64)
                                .sum::<f64>()
                        })
                        .sum()
                })
                .collect();
            close(&db.unwrap(), &db_want, &format!("db {g:?}"));
            for (k, (_, b)) in paths.iter().enumerate() {
                close(b.as_ref().unwrap(), &db_want, &format!("db path {k} {g:?}"));
            }
            assert!(weight_grad(&g, &x, &delta, false).1.is_none());
        }
    }

    /// The weight gradient's summation order is fixed: the same bits on a
    /// one-thread pool as on the global one.
    #[test]
    fn weight_gradient_does_not_depend_on_threads() {
        let mut rng = Rng::new(3);
        let g = Geometry {
            batch: 37,
            c_in: 3,
            h: 8,
            w: 8,
            c_out: 4,
            kh: 3,
            kw: 3,
            stride: [1, 1],
            pad: [1, 1],
        };
        let x = random(g.batch * g.c_in * 64, &mut rng);
        let delta = random(g.batch * g.c_out * 64, &mut rng);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        for f in [weight_grad_im2col, weight_grad_shifted] {
            let many = f(&g, &x, &delta, true);
            assert_eq!(many, one.install(|| f(&g, &x, &delta, true)));
        }
    }

    #[test]
    fn valid_ranges() {
        // n_in 5, stride 1, k = 0, p = 1: o − 1 ∈ [0, 5) → o ∈ 1..6 (n_out 5 → 1..5)
        assert_eq!(valid(5, 5, 1, 0, 1), (1, 5));
        assert_eq!(valid(5, 5, 1, 2, 1), (0, 4));
        // stride 2, n_in 9, n_out 5, k = 0, p = 1: 2o − 1 ∈ [0, 9) → o ∈ 1..5
        assert_eq!(valid(9, 5, 2, 0, 1), (1, 5));
        // a kernel row that never meets the image
        assert_eq!(valid(1, 3, 1, 0, 2), (2, 3));
        assert_eq!(valid(1, 1, 1, 0, 2), (1, 1));
    }
}
