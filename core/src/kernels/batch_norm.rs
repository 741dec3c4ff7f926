//! BatchNorm over `[B, C, H, W]` on host slices, fused: per-channel
//! statistics in one pass each, the affine map in one pass, and the
//! backward step in two (burn's composition of means, squares and
//! broadcasts makes ~25 passes over the activation, forward and backward).
//!
//! y = γ·x̂ + β with x̂ = (x − μ)·s, s = 1/√(σ² + ε), per channel over the
//! N = B·H·W values of the channel. With the batch's statistics (train
//! mode; σ² biased) the gradient flows through μ and σ²:
//!
//!   ∂β = Σ δ,  ∂γ = Σ δ·x̂,  ∂x = γ·s·(δ − ∂β/N − x̂·∂γ/N);
//!
//! with fixed (running) statistics ∂x = γ·s·δ and ∂γ, ∂β as above.
//! Sums over a channel run in f64, each in a fixed order (one channel per
//! task), so results do not depend on the number of threads.
//!
//! # Shapes
//! x, y, δ `[B, C, H, W]` contiguous; γ, β, μ, σ² `[C]`.

use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use std::mem::MaybeUninit;

use super::flex::{assume_init, flex, par_vec_uninit, slice, values, Kernel};
use super::relu::Gate;
use super::simd::wide;

/// Sizes of a BatchNorm input: B images of C planes of `plane` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Planes {
    pub batch: usize,
    pub channels: usize,
    pub plane: usize,
}

impl Planes {
    /// N, the values per channel.
    pub fn per_channel(&self) -> usize {
        self.batch * self.plane
    }

    /// The values of channel `c` of `x`, image by image.
    fn channel<'a>(&self, x: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (plane, stride) = (self.plane, self.channels * self.plane);
        (0..self.batch).map(move |b| &x[b * stride + c * plane..][..plane])
    }
}

/// Lanes of the partial sums in [`sum2`].
const LANES: usize = 16;

#[inline(always)]
/// Σᵢ f(aᵢ, bᵢ) in f64, vectorisable: f32 partial sums in 16 lanes over
/// blocks of 256 terms, each block's sum added in f64.
fn sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    const BLOCK: usize = 256;
    assert_eq!(a.len(), b.len());
    let mut total = 0.0f64;
    for (ab, bb) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
        let mut lanes = [0.0f32; LANES];
        let (ac, bc) = (ab.chunks_exact(LANES), bb.chunks_exact(LANES));
        let (ar, br) = (ac.remainder(), bc.remainder());
        for (x, y) in ac.zip(bc) {
            for l in 0..LANES {
                lanes[l] += f(x[l], y[l]);
            }
        }
        let mut block: f32 = lanes.iter().sum();
        for (&x, &y) in ar.iter().zip(br) {
            block += f(x, y);
        }
        total += block as f64;
    }
    total
}

/// Σᵢ f(aᵢ) in f64 (see [`sum2`]).
#[inline(always)]
fn sum1(a: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    sum2(a, a, |x, _| f(x))
}

/// Per-channel mean and biased variance of `x` (two passes, f64 sums).
pub(crate) fn stats(p: &Planes, x: &[f32]) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(
        x.len(),
        p.batch * p.channels * p.plane,
        "batch_norm: input size"
    );
    let n = p.per_channel() as f64;
    (0..p.channels)
        .into_par_iter()
        .map(|c| {
            wide(|| {
                let total: f64 = p.channel(x, c).map(|v| sum1(v, |a| a)).sum();
                let mean = total / n;
                let m = mean as f32;
                let sq: f64 = p
                    .channel(x, c)
                    .map(|v| {
                        sum1(v, |a| {
                            let d = a - m;
                            d * d
                        })
                    })
                    .sum();
                // Σ(x − m)² with m = μ rounded: the variance about μ is that less (μ − m)²
                let shift = mean - m as f64;
                (mean, (sq / n - shift * shift).max(0.0))
            })
        })
        .unzip()
}

/// y = gate(x·scale[c] + shift[c]).
pub(crate) fn affine(p: &Planes, x: &[f32], scale: &[f32], shift: &[f32], gate: &Gate) -> Vec<f32> {
    let img = p.channels * p.plane;
    assert_eq!(x.len(), p.batch * img, "batch_norm: input size");
    let fill = |b: usize, yb: &mut [MaybeUninit<f32>]| {
        let xb = &x[b * img..][..img];
        for (c, (yc, xc)) in yb.chunks_mut(p.plane).zip(xb.chunks(p.plane)).enumerate() {
            let (a, s) = (scale[c], shift[c]);
            for (o, &v) in yc.iter_mut().zip(xc) {
                o.write(v * a + s);
            }
        }
        // SAFETY: the loop above wrote every value of the image.
        gate.apply(unsafe { assume_init(yb) }, b * img);
    };
    // SAFETY: `fill` writes every value of its image.
    unsafe { par_vec_uninit(x.len(), img, fill) }
}

/// Which units of the output pass δ back (the fused ReLU's gate).
#[derive(Clone, Copy)]
pub(crate) enum Gating<'a> {
    /// Every unit (no ReLU).
    All,
    /// Units whose output before the ReLU, x·scale[c] + shift[c] (recomputed
    /// exactly as the forward pass computed it), is > 0.
    Positive { scale: &'a [f32], shift: &'a [f32] },
    /// Units whose mask byte (same layout as x) is 0.
    Mask(&'a [u8]),
}

impl Gating<'_> {
    /// δ of the plane at offset `at` (channel `c`, values `xv`, `dv`) with
    /// the off units zeroed: `dv` itself when every unit passes, else
    /// written to `buf`.
    #[inline(always)]
    fn plane<'b>(
        &self,
        c: usize,
        at: usize,
        xv: &[f32],
        dv: &'b [f32],
        buf: &'b mut Vec<f32>,
    ) -> &'b [f32] {
        buf.clear();
        match *self {
            Gating::All => return dv,
            Gating::Positive { scale, shift } => {
                let (a, s) = (scale[c], shift[c]);
                buf.extend(
                    xv.iter()
                        .zip(dv)
                        .map(|(&x, &d)| if x * a + s <= 0.0 { 0.0 } else { d }),
                );
            }
            Gating::Mask(m) => {
                let m = &m[at..at + dv.len()];
                buf.extend(
                    m.iter()
                        .zip(dv)
                        .map(|(&off, &d)| if off != 0 { 0.0 } else { d }),
                );
            }
        }
        buf
    }
}

/// The backward step: (∂x, ∂γ, ∂β) from x, δ (gated by `gating`), the
/// statistics the forward pass used (μ, s = 1/√(σ² + ε)) and γ; `batch`:
/// the statistics were the batch's own (train mode), so the gradient also
/// flows through them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    p: &Planes,
    x: &[f32],
    delta: &[f32],
    gating: Gating,
    mean: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    batch: bool,
    want_x: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let img = p.channels * p.plane;
    assert_eq!(x.len(), p.batch * img, "batch_norm: input size");
    assert_eq!(delta.len(), x.len(), "batch_norm: gradient size");
    let (dgamma, dbeta): (Vec<f64>, Vec<f64>) = (0..p.channels)
        .into_par_iter()
        .map(|c| {
            wide(|| {
                let (mu, s) = (mean[c], inv_std[c]);
                let mut buf = Vec::with_capacity(p.plane);
                let (mut g, mut b) = (0.0f64, 0.0f64);
                for bi in 0..p.batch {
                    let at = bi * img + c * p.plane;
                    let (xv, dv) = (&x[at..][..p.plane], &delta[at..][..p.plane]);
                    let dv = gating.plane(c, at, xv, dv, &mut buf);
                    g += sum2(xv, dv, |a, d| d * ((a - mu) * s));
                    b += sum1(dv, |d| d);
                }
                (g, b)
            })
        })
        .collect::<Vec<(f64, f64)>>()
        .into_iter()
        .unzip();
    let dx = want_x.then(|| {
        let n = p.per_channel() as f64;
        // ∂x = k·δ − k·s·(x − μ)·∂γ/N − k·∂β/N, k = γ·s: a·δ + b·(x − μ) + c
        let coef: Vec<(f32, f32, f32)> = (0..p.channels)
            .map(|c| {
                let k = gamma[c] as f64 * inv_std[c] as f64;
                if !batch {
                    return (k as f32, 0.0, 0.0);
                }
                let b = -k * inv_std[c] as f64 * dgamma[c] / n;
                (k as f32, b as f32, (-k * dbeta[c] / n) as f32)
            })
            .collect();
        let fill = |bi: usize, ob: &mut [MaybeUninit<f32>]| {
            let mut buf = Vec::with_capacity(p.plane);
            for (c, oc) in ob.chunks_mut(p.plane).enumerate() {
                let at = bi * img + c * p.plane;
                let (xc, dc) = (&x[at..][..p.plane], &delta[at..][..p.plane]);
                let dc = gating.plane(c, at, xc, dc, &mut buf);
                let ((a, b, c0), mu) = (coef[c], mean[c]);
                for ((o, &xv), &dv) in oc.iter_mut().zip(xc).zip(dc) {
                    o.write(a * dv + b * (xv - mu) + c0);
                }
            }
        };
        // SAFETY: `fill` writes every value of its image.
        unsafe { par_vec_uninit(x.len(), img, fill) }
    });
    let f32s = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect();
    (dx, f32s(dgamma), f32s(dbeta))
}

/// BatchNorm (and a fused ReLU) as an autodiff kernel on (x, γ, β): the
/// statistics its forward pass uses, and whether they are the batch's own.
#[derive(Clone, Debug)]
pub(crate) struct Norm {
    pub planes: Planes,
    pub shape: [usize; 4],
    pub mean: Vec<f32>,
    /// √(σ² + ε)
    pub std: Vec<f32>,
    /// The statistics are the batch's (train mode).
    pub batch: bool,
    pub gate: Gate,
}

impl Norm {
    /// The affine map y = x·scale + shift, as burn's composition computes
    /// it: scale = γ/√(σ² + ε), shift = β − μ·scale.
    fn affine_map(&self, gamma: &[f32], beta: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = gamma.iter().zip(&self.std).map(|(g, s)| g / s).collect();
        let shift = beta
            .iter()
            .zip(&self.mean)
            .zip(&scale)
            .map(|((b, m), a)| b - m * a)
            .collect();
        (scale, shift)
    }
}

impl Kernel<3> for Norm {
    fn forward(&self, [x, gamma, beta]: &[FlexTensor; 3]) -> FlexTensor {
        let (x, gamma, beta) = (values(x), values(gamma), values(beta));
        let (scale, shift) = self.affine_map(slice(&gamma), slice(&beta));
        let y = affine(&self.planes, slice(&x), &scale, &shift, &self.gate);
        flex(y, &self.shape)
    }

    fn backward(
        &self,
        [x, gamma, beta]: &[FlexTensor; 3],
        _: Option<&FlexTensor>,
        grad: FlexTensor,
        [want_x, want_g, want_b]: [bool; 3],
    ) -> [Option<FlexTensor>; 3] {
        let (x, gamma, beta, delta) = (values(x), values(gamma), values(beta), values(&grad));
        let (scale, shift) = self.affine_map(slice(&gamma), slice(&beta));
        let mask = match &self.gate {
            Gate::Mask(m) => Some(values(m)),
            _ => None,
        };
        let gating = match &self.gate {
            Gate::Identity => Gating::All,
            Gate::Sign => Gating::Positive {
                scale: &scale,
                shift: &shift,
            },
            Gate::Mask(_) => Gating::Mask(super::relu::bytes(mask.as_ref().expect("a mask"))),
        };
        let inv: Vec<f32> = self.std.iter().map(|s| 1.0 / s).collect();
        let (dx, dg, db) = backward(
            &self.planes,
            slice(&x),
            slice(&delta),
            gating,
            &self.mean,
            &inv,
            slice(&gamma),
            self.batch,
            want_x,
        );
        let c = [self.planes.channels];
        [
            dx.map(|d| flex(d, &self.shape)),
            want_g.then(|| flex(dg, &c)),
            want_b.then(|| flex(db, &c)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Train-mode BatchNorm output of channel values, in f64.
    fn bn(xs: &[f64], g: f64, b: f64, eps: f64) -> Vec<f64> {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
        xs.iter()
            .map(|x| g * (x - m) / (v + eps).sqrt() + b)
            .collect()
    }

    /// The backward step equals central differences of the f64 definition
    /// (train mode) and the closed form (fixed statistics).
    #[test]
    fn backward_matches_finite_differences() {
        let p = Planes {
            batch: 3,
            channels: 2,
            plane: 5,
        };
        let eps = 1e-5;
        let mut rng = Rng::new(4);
        let x: Vec<f32> = (0..30).map(|_| (rng.normal() * 2.0 + 1.0) as f32).collect();
        let delta: Vec<f32> = (0..30).map(|_| rng.normal() as f32).collect();
        let gamma = [1.5f32, -0.7];
        let beta = [0.3f32, 0.2];
        let (mean, var) = stats(&p, &x);
        let inv: Vec<f32> = var
            .iter()
            .map(|v| (1.0 / (v + eps).sqrt()) as f32)
            .collect();
        let mean32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let (dx, dg, db) = backward(
            &p,
            &x,
            &delta,
            Gating::All,
            &mean32,
            &inv,
            &gamma,
            true,
            true,
        );
        let dx = dx.unwrap();
        // loss L = Σ δ·y, channel by channel
        for c in 0..2 {
            let idx: Vec<usize> = (0..3)
                .flat_map(|b| (0..5).map(move |i| b * 10 + c * 5 + i))
                .collect();
            let loss = |xs: &[f64], g: f64, b: f64| -> f64 {
                bn(xs, g, b, eps)
                    .iter()
                    .zip(&idx)
                    .map(|(y, &k)| y * delta[k] as f64)
                    .sum()
            };
            let xs: Vec<f64> = idx.iter().map(|&k| x[k] as f64).collect();
            let (g, b) = (gamma[c] as f64, beta[c] as f64);
            let h = 1e-6;
            for (j, &k) in idx.iter().enumerate() {
                let (mut up, mut dn) = (xs.clone(), xs.clone());
                up[j] += h;
                dn[j] -= h;
                let fd = (loss(&up, g, b) - loss(&dn, g, b)) / (2.0 * h);
                assert!(
                    (dx[k] as f64 - fd).abs() < 1e-4,
                    "dx[{k}] {} vs {fd}",
                    dx[k]
                );
            }
            let fd_g = (loss(&xs, g + h, b) - loss(&xs, g - h, b)) / (2.0 * h);
            let fd_b = (loss(&xs, g, b + h) - loss(&xs, g, b - h)) / (2.0 * h);
            assert!((dg[c] as f64 - fd_g).abs() < 1e-4, "dγ {} vs {fd_g}", dg[c]);
            assert!((db[c] as f64 - fd_b).abs() < 1e-4, "dβ {} vs {fd_b}", db[c]);
        }
        // fixed statistics: ∂x = γ·s·δ
        let (dx, _, _) = backward(
            &p,
            &x,
            &delta,
            Gating::All,
            &mean32,
            &inv,
            &gamma,
            false,
            true,
        );
        for (k, v) in dx.unwrap().iter().enumerate() {
            let c = (k / 5) % 2;
            assert!((v - gamma[c] * inv[c] * delta[k]).abs() < 1e-6);
        }
    }

    #[test]
    fn affine_and_stats() {
        let p = Planes {
            batch: 2,
            channels: 2,
            plane: 2,
        };
        let x = [1.0f32, 2.0, 10.0, 20.0, 3.0, 4.0, 30.0, 40.0];
        let (m, v) = stats(&p, &x);
        assert_eq!(m, vec![2.5, 25.0]);
        assert_eq!(v, vec![1.25, 125.0]);
        let y = affine(&p, &x, &[2.0, 1.0], &[0.0, -1.0], &Gate::Identity);
        assert_eq!(y, vec![2.0, 4.0, 9.0, 19.0, 6.0, 8.0, 29.0, 39.0]);
        let y = affine(&p, &x, &[2.0, -1.0], &[0.0, 15.0], &Gate::Sign);
        assert_eq!(y, vec![2.0, 4.0, 5.0, 0.0, 6.0, 8.0, 0.0, 0.0]);
    }
}
