//! Data augmentation and mixup on host batches (issue 3, "Regimes").
//!
//! Batches are host `f32` slices, batch-major: inputs `x` of length B·d with
//! each example an image in (c, h, w) order (d = c·h·w, the order of docs/measurements.md "Data
//! and inputs"), targets `t` of length B·C (one-hot or label-smoothed rows).
//! Every random number comes from [`crate::rng::Rng`], so a seed gives the same
//! batches on every backend.
//!
//! - **Random crop + horizontal flip** ([`crop_flip`]), torchvision's
//!   `RandomCrop(size, padding = p)` followed by `RandomHorizontalFlip()`: pad
//!   each example by `p` pixels on every side, take an h×w window at offsets
//!   (dy, dx) uniform in 0..=2p, then mirror the columns with probability ½.
//!   *Padding value*: torchvision pads the raw image with 0 before
//!   `Normalize`, i.e. with a black pixel. curvlab's inputs are already
//!   normalised, so the fill is taken per channel as an argument; passing
//!   [`pixel_zero_fill`] (−s_in·m_c/σ_c, the normalised value of pixel byte 0)
//!   reproduces torchvision exactly, and is what the paper's pipeline did.
//!   Passing zeros pads with the channel mean instead (zero in normalised space).
//! - **Mixup** ([`mixup`], Zhang et al. 2018 and their PyTorch code): one
//!   λ ~ Beta(α, α) per batch and a random permutation π of the batch;
//!   x_i ← λx_i + (1 − λ)x_π(i), t_i ← λt_i + (1 − λ)t_π(i). The mixed targets
//!   are soft rows that still sum to 1; the cross-entropy −Σ_k t_k log softmax(z)_k
//!   is linear in t, so training on them equals the reference implementation's
//!   λ·c(z, t_i) + (1 − λ)·c(z, t_π(i)).
//!
//! The Jacobian norm is measured on the un-augmented, un-mixed training images
//! (Fig. 5 caption): these functions are for the training batches only.

use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::{Error, Result};

/// Augmentation of the training batches; the default is no augmentation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Padding in pixels of the random crop; 0 = off (the paper uses 4).
    pub crop: usize,
    /// Random horizontal flip with probability ½.
    pub flip: bool,
    /// Mixup α of Beta(α, α); 0 = off.
    pub mixup_alpha: f64,
}

impl AugmentConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if !(self.mixup_alpha.is_finite() && self.mixup_alpha >= 0.0) {
            return Err(Error::Config(format!(
                "mixup_alpha must be finite and ≥ 0, got {}",
                self.mixup_alpha
            )));
        }
        Ok(())
    }

    /// True when the batches pass through unchanged.
    pub fn is_identity(&self) -> bool {
        self.crop == 0 && !self.flip && self.mixup_alpha == 0.0
    }

    /// Whether the random crop or the flip is on (these need image-shaped inputs).
    pub fn uses_geometry(&self) -> bool {
        self.crop > 0 || self.flip
    }

    /// Applies the whole augmentation to one training batch: [`crop_flip`] per
    /// example, then [`mixup`] over the batch (the order of a torchvision
    /// transform pipeline followed by mixup in the training loop). `shape` is
    /// (c, h, w) of one example, `classes` the target row length, `fill` the
    /// per-channel padding value (see [`pixel_zero_fill`]). Returns the mixup λ
    /// (1 when mixup is off).
    pub fn apply(
        &self,
        x: &mut [f32],
        t: &mut [f32],
        shape: [usize; 3],
        classes: usize,
        fill: &[f32],
        rng: &mut Rng,
    ) -> f64 {
        if self.uses_geometry() {
            crop_flip(x, shape, self.crop, self.flip, fill, rng);
        }
        let d = shape[0] * shape[1] * shape[2];
        mixup(x, t, d, classes, self.mixup_alpha, rng)
    }
}

/// The normalised value of pixel byte 0 per channel, s_in·(0 − m_c)/σ_c,
/// computed in f64 as the CIFAR loader does: the crop fill that reproduces
/// torchvision's zero padding of raw pixels.
pub fn pixel_zero_fill(mean: &[f32], std: &[f32], input_scale: f32) -> Vec<f32> {
    assert_eq!(mean.len(), std.len(), "mean and std lengths differ");
    mean.iter()
        .zip(std)
        .map(|(&m, &s)| (input_scale as f64 * ((0.0 - m as f64) / s as f64)) as f32)
        .collect()
}

/// Writes into `dst` (one example, (c, h, w)) the h×w window of `src`
/// zero-padded by `crop` with `fill[ch]`, top-left corner at (dy, dx) of the
/// padded image, mirrored horizontally if `flip`.
#[allow(clippy::too_many_arguments)]
fn write_crop_flip(
    src: &[f32],
    dst: &mut [f32],
    shape: [usize; 3],
    crop: usize,
    dx: usize,
    dy: usize,
    flip: bool,
    fill: &[f32],
) {
    let [c, h, w] = shape;
    for ch in 0..c {
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        for i in 0..h {
            // Row in the padded image: i + dy; in the source: i + dy − crop.
            let si = (i + dy).checked_sub(crop).filter(|&r| r < h);
            for j in 0..w {
                let jj = if flip { w - 1 - j } else { j };
                let sj = (jj + dx).checked_sub(crop).filter(|&q| q < w);
                dst[(ch * h + i) * w + j] = match (si, sj) {
                    (Some(r), Some(q)) => plane[r * w + q],
                    _ => fill[ch],
                };
            }
        }
    }
}

fn check_shape(len: usize, shape: [usize; 3], crop: usize, dx: usize, dy: usize, fill: &[f32]) {
    assert_eq!(
        fill.len(),
        shape[0],
        "crop fill has {} values for {} channels",
        fill.len(),
        shape[0]
    );
    assert!(
        dx <= 2 * crop && dy <= 2 * crop,
        "crop offsets ({dy}, {dx}) outside 0..={}",
        2 * crop
    );
    let d = shape[0] * shape[1] * shape[2];
    assert!(
        d > 0 && len.is_multiple_of(d),
        "input length {len} is not a multiple of c·h·w = {d} ({shape:?})"
    );
}

/// Crops and flips one example `x` ((c, h, w), length c·h·w) in place with the
/// given offsets: pad by `crop` on each side with `fill[ch]` per channel, take
/// the h×w window whose top-left corner is row `dy`, column `dx` of the padded
/// image (each in 0..=2·crop; `crop` on both is the original image), then
/// mirror the columns if `flip`. [`crop_flip`] draws the offsets and the flip.
pub fn crop_flip_at(
    x: &mut [f32],
    shape: [usize; 3],
    crop: usize,
    dx: usize,
    dy: usize,
    flip: bool,
    fill: &[f32],
) {
    check_shape(x.len(), shape, crop, dx, dy, fill);
    assert_eq!(
        x.len(),
        shape.iter().product::<usize>(),
        "one example expected"
    );
    let src = x.to_vec();
    write_crop_flip(&src, x, shape, crop, dx, dy, flip, fill);
}

/// Random crop with `crop` pixels of padding (0 = no crop) and, if `flip`, a
/// random horizontal flip with probability ½, per example of the batch `x`
/// (B examples of shape (c, h, w)); see the module documentation for the fill.
/// Draws per example: dy then dx (each `rng.below(2·crop + 1)`, only when
/// crop > 0), then the flip (`rng.uniform() < 0.5`, only when `flip`).
pub fn crop_flip(
    x: &mut [f32],
    shape: [usize; 3],
    crop: usize,
    flip: bool,
    fill: &[f32],
    rng: &mut Rng,
) {
    check_shape(x.len(), shape, crop, crop, crop, fill);
    if crop == 0 && !flip {
        return;
    }
    let d = shape.iter().product::<usize>();
    let mut scratch = vec![0.0f32; d];
    for example in x.chunks_exact_mut(d) {
        let (dy, dx) = if crop > 0 {
            let dy = rng.below(2 * crop + 1);
            (dy, rng.below(2 * crop + 1))
        } else {
            (0, 0)
        };
        let mirrored = flip && rng.uniform() < 0.5;
        if (dy, dx) == (crop, crop) && !mirrored {
            continue;
        }
        scratch.copy_from_slice(example);
        write_crop_flip(&scratch, example, shape, crop, dx, dy, mirrored, fill);
    }
}

/// Mixes the batch with a given λ and permutation: x_i ← λx_i + (1 − λ)x_π(i)
/// and t_i ← λt_i + (1 − λ)t_π(i) for every example i, where `perm[i]` = π(i),
/// `d` the input length and `c` the target length of one example. The sums are
/// formed in f64 and rounded once to f32.
pub fn mix_with(x: &mut [f32], t: &mut [f32], d: usize, c: usize, lambda: f64, perm: &[usize]) {
    let b = perm.len();
    assert_eq!(x.len(), b * d, "inputs: {} values for {b}×{d}", x.len());
    assert_eq!(t.len(), b * c, "targets: {} values for {b}×{c}", t.len());
    for (rows, width) in [(x, d), (t, c)] {
        let orig = rows.to_vec();
        for (i, &p) in perm.iter().enumerate() {
            assert!(p < b, "permutation entry {p} out of range 0..{b}");
            let (own, other) = (
                &orig[i * width..(i + 1) * width],
                &orig[p * width..(p + 1) * width],
            );
            for (o, (&a, &q)) in rows[i * width..(i + 1) * width]
                .iter_mut()
                .zip(own.iter().zip(other))
            {
                *o = (lambda * a as f64 + (1.0 - lambda) * q as f64) as f32;
            }
        }
    }
}

/// Mixup of a batch (inputs `x`, B·`d`; targets `t`, B·`c`) with
/// λ ~ Beta(`alpha`, `alpha`) and a uniformly random permutation of the batch,
/// drawn in that order from `rng`; returns λ. With `alpha` = 0 nothing is drawn
/// or changed and 1 is returned (mixup off).
pub fn mixup(x: &mut [f32], t: &mut [f32], d: usize, c: usize, alpha: f64, rng: &mut Rng) -> f64 {
    assert!(
        alpha.is_finite() && alpha >= 0.0,
        "mixup alpha must be finite and ≥ 0, got {alpha}"
    );
    if alpha == 0.0 {
        return 1.0;
    }
    assert!(
        d > 0 && x.len().is_multiple_of(d),
        "input length {} is not a multiple of {d}",
        x.len()
    );
    let b = x.len() / d;
    let lambda = sample_beta(alpha, alpha, rng);
    let mut perm: Vec<usize> = (0..b).collect();
    rng.shuffle(&mut perm);
    mix_with(x, t, d, c, lambda, &perm);
    lambda
}

/// ln of a Gamma(`shape`, 1) draw. Marsaglia & Tsang (2000) for shape ≥ 1;
/// for shape < 1 their boost Gamma(a) = Gamma(a + 1)·U^{1/a}, taken in log
/// space so that tiny shapes do not underflow.
fn ln_gamma_draw(shape: f64, rng: &mut Rng) -> f64 {
    assert!(
        shape.is_finite() && shape > 0.0,
        "gamma shape must be finite and > 0, got {shape}"
    );
    if shape < 1.0 {
        let u = 1.0 - rng.uniform(); // in (0, 1]
        return ln_gamma_draw(shape + 1.0, rng) + u.ln() / shape;
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let z = rng.normal();
        let v = 1.0 + c * z;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = 1.0 - rng.uniform(); // in (0, 1], so ln u is finite
        let z2 = z * z;
        if u < 1.0 - 0.0331 * z2 * z2 || u.ln() < 0.5 * z2 + d * (1.0 - v + v.ln()) {
            return (d * v).ln();
        }
    }
}

/// A draw from Gamma(`shape`, 1) (mean = variance = shape), by Marsaglia–Tsang
/// with the shape < 1 boost. Panics unless `shape` is finite and > 0.
pub fn sample_gamma(shape: f64, rng: &mut Rng) -> f64 {
    ln_gamma_draw(shape, rng).exp()
}

/// A draw from Beta(`a`, `b`) as X/(X + Y) with X ~ Gamma(a), Y ~ Gamma(b),
/// formed from their logarithms (1/(1 + e^{ln Y − ln X})) so that small shapes
/// give 0 or 1 rather than 0/0. Panics unless both shapes are finite and > 0.
pub fn sample_beta(a: f64, b: f64, rng: &mut Rng) -> f64 {
    let lx = ln_gamma_draw(a, rng);
    let ly = ln_gamma_draw(b, rng);
    1.0 / (1.0 + (ly - lx).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 1×3×3 image 1..9 (row-major).
    fn img3() -> Vec<f32> {
        (1..=9).map(|v| v as f32).collect()
    }

    #[test]
    fn crop_centre_is_identity_and_flip_mirrors() {
        let mut x = img3();
        crop_flip_at(&mut x, [1, 3, 3], 1, 1, 1, false, &[0.0]);
        assert_eq!(x, img3());
        crop_flip_at(&mut x, [1, 3, 3], 1, 1, 1, true, &[0.0]);
        assert_eq!(x, vec![3., 2., 1., 6., 5., 4., 9., 8., 7.]);
    }

    #[test]
    fn crop_corners_by_hand() {
        // Padded 5×5 image (fill f):
        //   f f f f f
        //   f 1 2 3 f
        //   f 4 5 6 f
        //   f 7 8 9 f
        //   f f f f f
        let f = -7.5;
        let run = |dx, dy, flip| {
            let mut x = img3();
            crop_flip_at(&mut x, [1, 3, 3], 1, dx, dy, flip, &[f]);
            x
        };
        // Top-left window.
        assert_eq!(run(0, 0, false), vec![f, f, f, f, 1., 2., f, 4., 5.]);
        // Bottom-right window.
        assert_eq!(run(2, 2, false), vec![5., 6., f, 8., 9., f, f, f, f]);
        // Top row offset 0, column offset 2 (window shifted right and up).
        assert_eq!(run(2, 0, false), vec![f, f, f, 2., 3., f, 5., 6., f]);
        // Same window, then mirrored.
        assert_eq!(run(2, 0, true), vec![f, f, f, f, 3., 2., f, 6., 5.]);
        // Column offset 0, row offset 1, mirrored.
        assert_eq!(run(0, 1, true), vec![2., 1., f, 5., 4., f, 8., 7., f]);
    }

    #[test]
    fn crop_two_channels_use_their_own_fill() {
        // 2×2×2 example, crop 1, window at (dy, dx) = (0, 2): the padded image's upper right.
        // Channel 0 = [[1,2],[3,4]], channel 1 = [[5,6],[7,8]]; fills 10, 20.
        let mut x = vec![1., 2., 3., 4., 5., 6., 7., 8.];
        crop_flip_at(&mut x, [2, 2, 2], 1, 2, 0, false, &[10.0, 20.0]);
        // Padded channel 0 (4×4): rows f f f f / f 1 2 f / f 3 4 f / f f f f.
        // Window rows 0..2, columns 2..4: [f f] / [2 f].
        assert_eq!(x, vec![10., 10., 2., 10., 20., 20., 6., 20.]);
    }

    #[test]
    fn crop_two_by_two_by_four_by_four_batch() {
        // B = 2, c = 2, 4×4, crop 2; example e, channel ch, pixel (r, q) = 100e + 10ch + 4r + q.
        let shape = [2, 4, 4];
        let d = 32;
        let mut x: Vec<f32> = (0..2 * d)
            .map(|k| {
                let (e, rest) = (k / d, k % d);
                (100 * e + 10 * (rest / 16) + rest % 16) as f32
            })
            .collect();
        let fill = [-1.0, -2.0];
        let mut want = x.clone();
        // Example 0: (dy, dx) = (3, 1): source rows 1..=4 (4 is padding), columns −1..=2.
        // Example 1: (dy, dx) = (2, 4) then mirrored: source rows 0..=3, columns 2..=5 reversed.
        for (e, (dy, dx, flip)) in [(3usize, 1usize, false), (2, 4, true)]
            .into_iter()
            .enumerate()
        {
            for ch in 0..2 {
                for i in 0..4 {
                    for j in 0..4 {
                        let jj = if flip { 3 - j } else { j };
                        let (r, q) = (i as isize + dy as isize - 2, jj as isize + dx as isize - 2);
                        want[e * d + ch * 16 + i * 4 + j] =
                            if (0..4).contains(&r) && (0..4).contains(&q) {
                                (100 * e + 10 * ch) as f32 + (4 * r + q) as f32
                            } else {
                                fill[ch]
                            };
                    }
                }
            }
        }
        // Spot-check the expectation itself by hand.
        assert_eq!(&want[0..4], &[-1., 4., 5., 6.]); // ex 0, ch 0, row 0 = source row 1
        assert_eq!(&want[12..16], &[-1., -1., -1., -1.]); // row 3 = padding row 4
        assert_eq!(&want[32..36], &[-1., -1., 103., 102.]); // ex 1, ch 0, row 0, mirrored
        assert_eq!(&want[48..52], &[-2., -2., 113., 112.]); // ex 1, ch 1, row 0
        let (a, b) = x.split_at_mut(d);
        crop_flip_at(a, shape, 2, 1, 3, false, &fill);
        crop_flip_at(b, shape, 2, 4, 2, true, &fill);
        assert_eq!(x, want);
    }

    #[test]
    fn crop_flip_random_matches_forced_draws() {
        let shape = [3, 5, 6];
        let d = 90;
        let b = 7;
        let orig: Vec<f32> = (0..b * d).map(|k| k as f32 * 0.5 - 3.0).collect();
        let fill = [0.1, 0.2, 0.3];
        let mut x = orig.clone();
        crop_flip(&mut x, shape, 2, true, &fill, &mut Rng::new(42));
        // Replay the documented draw order.
        let mut r = Rng::new(42);
        let mut want = orig.clone();
        for e in want.chunks_exact_mut(d) {
            let dy = r.below(5);
            let dx = r.below(5);
            let flip = r.uniform() < 0.5;
            crop_flip_at(e, shape, 2, dx, dy, flip, &fill);
        }
        assert_eq!(x, want);
        assert_ne!(x, orig);
        // Deterministic per seed, different across seeds.
        let mut y = orig.clone();
        crop_flip(&mut y, shape, 2, true, &fill, &mut Rng::new(42));
        assert_eq!(x, y);
        let mut z = orig.clone();
        crop_flip(&mut z, shape, 2, true, &fill, &mut Rng::new(43));
        assert_ne!(x, z);
    }

    #[test]
    fn flip_only_and_identity() {
        let shape = [1, 3, 3];
        let orig: Vec<f32> = (0..4 * 9).map(|k| k as f32).collect();
        // crop 0, flip false: unchanged, no draws.
        let mut x = orig.clone();
        let mut r = Rng::new(5);
        crop_flip(&mut x, shape, 0, false, &[0.0], &mut r);
        assert_eq!(x, orig);
        assert_eq!(r.next_u64(), Rng::new(5).next_u64());
        // Flip only: every example is itself or its mirror, and over a large
        // batch about half are mirrored.
        let n = 2000;
        let orig: Vec<f32> = (0..n * 9).map(|k| (k % 9) as f32).collect();
        let mut x = orig.clone();
        crop_flip(&mut x, shape, 0, true, &[0.0], &mut Rng::new(9));
        let mirrored = [2., 1., 0., 5., 4., 3., 8., 7., 6.];
        let mut flips = 0;
        for e in x.chunks_exact(9) {
            if e == mirrored {
                flips += 1;
            } else {
                assert_eq!(e, &orig[..9]);
            }
        }
        // Binomial(2000, ½): sd ≈ 22.4; allow 5 sd.
        assert!((flips as f64 - 1000.0).abs() < 112.0, "flips {flips}");
    }

    #[test]
    fn random_crop_offsets_cover_the_range() {
        // A 1×1×1 image with value 1 and crop 1: the window shows it only at the
        // centre offset, so P(value 1) = 1/9.
        let n = 9000;
        let mut x = vec![1.0f32; n];
        crop_flip(&mut x, [1, 1, 1], 1, false, &[0.0], &mut Rng::new(3));
        let ones = x.iter().filter(|&&v| v == 1.0).count();
        // Binomial(9000, 1/9): sd ≈ 29.8; allow 5 sd.
        assert!((ones as f64 - 1000.0).abs() < 150.0, "ones {ones}");
    }

    #[test]
    fn pixel_zero_fill_is_normalised_black() {
        let mean = [0.4914f32, 0.4822, 0.4465];
        let std = [0.2470f32, 0.2435, 0.2616];
        let f = pixel_zero_fill(&mean, &std, 2.0);
        for c in 0..3 {
            let want = (2.0 * (-(mean[c] as f64) / std[c] as f64)) as f32;
            assert_eq!(f[c], want);
        }
        assert!((f[0] - 2.0 * -1.989_474).abs() < 1e-5, "{}", f[0]);
    }

    #[test]
    fn mix_with_by_hand() {
        // B = 3, d = 2, C = 2; λ = 0.75, π = (2, 0, 1).
        let mut x = vec![0.0, 4.0, 8.0, 12.0, -4.0, 16.0];
        let mut t = vec![1.0, 0.0, 0.0, 1.0, 0.9, 0.1];
        mix_with(&mut x, &mut t, 2, 2, 0.75, &[2, 0, 1]);
        // x0 = .75·(0,4) + .25·(−4,16) = (−1, 7)
        // x1 = .75·(8,12) + .25·(0,4) = (6, 10)
        // x2 = .75·(−4,16) + .25·(8,12) = (−1, 15)
        assert_eq!(x, vec![-1.0, 7.0, 6.0, 10.0, -1.0, 15.0]);
        // t0 = .75·(1,0) + .25·(.9,.1) = (.975, .025)
        // t1 = .75·(0,1) + .25·(1,0) = (.25, .75)
        // t2 = .75·(.9,.1) + .25·(0,1) = (.675, .325)
        let want = [0.975, 0.025, 0.25, 0.75, 0.675, 0.325];
        for (g, w) in t.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{t:?}");
        }
        // λ = 1 or the identity permutation changes nothing.
        let mut x2 = x.clone();
        let mut t2 = t.clone();
        mix_with(&mut x2, &mut t2, 2, 2, 1.0, &[1, 2, 0]);
        assert_eq!((x2, t2), (x.clone(), t.clone()));
        let mut x3 = x.clone();
        mix_with(&mut x3, &mut t.clone(), 2, 2, 0.3, &[0, 1, 2]);
        assert_eq!(x3, x);
    }

    #[test]
    fn mixup_rows_sum_to_one_and_replay() {
        let (b, d, c) = (16, 5, 4);
        let x0: Vec<f32> = (0..b * d).map(|k| (k as f32 * 0.37).sin()).collect();
        // One-hot and smoothed rows mixed.
        let t0: Vec<f32> = (0..b)
            .flat_map(|i| {
                let y = i % c;
                (0..c).map(move |k| {
                    if i % 2 == 0 {
                        (k == y) as u8 as f32
                    } else {
                        0.9 * (k == y) as u8 as f32 + 0.1 / c as f32
                    }
                })
            })
            .collect();
        let (mut x, mut t) = (x0.clone(), t0.clone());
        let lambda = mixup(&mut x, &mut t, d, c, 0.4, &mut Rng::new(11));
        assert!((0.0..=1.0).contains(&lambda));
        for row in t.chunks_exact(c) {
            let s: f32 = row.iter().sum();
            assert!((s - 1.0).abs() < 1e-6, "row sums to {s}");
            assert!(row.iter().all(|&v| v >= 0.0));
        }
        // Replay: λ first, then the permutation, then mix_with.
        let mut r = Rng::new(11);
        let l2 = sample_beta(0.4, 0.4, &mut r);
        assert_eq!(l2, lambda);
        let mut perm: Vec<usize> = (0..b).collect();
        r.shuffle(&mut perm);
        let (mut xw, mut tw) = (x0.clone(), t0.clone());
        mix_with(&mut xw, &mut tw, d, c, l2, &perm);
        assert_eq!((&x, &t), (&xw, &tw));
        // Deterministic per seed; another seed differs.
        let (mut x2, mut t2) = (x0.clone(), t0.clone());
        assert_eq!(
            mixup(&mut x2, &mut t2, d, c, 0.4, &mut Rng::new(11)),
            lambda
        );
        assert_eq!((&x2, &t2), (&x, &t));
        let (mut x3, mut t3) = (x0.clone(), t0.clone());
        assert_ne!(
            mixup(&mut x3, &mut t3, d, c, 0.4, &mut Rng::new(12)),
            lambda
        );
        assert_ne!(x3, x);
    }

    #[test]
    fn mixup_off_is_identity() {
        let x0 = vec![1.0f32, 2.0, 3.0, 4.0];
        let t0 = vec![1.0f32, 0.0, 0.0, 1.0];
        let (mut x, mut t) = (x0.clone(), t0.clone());
        let mut r = Rng::new(1);
        assert_eq!(mixup(&mut x, &mut t, 2, 2, 0.0, &mut r), 1.0);
        assert_eq!((x, t), (x0, t0));
        assert_eq!(r.next_u64(), Rng::new(1).next_u64(), "no draws when off");
    }

    /// Sample mean and (unbiased) variance.
    fn moments(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
        (m, v)
    }

    #[test]
    fn gamma_mean_and_variance() {
        // Gamma(a, 1): mean a, variance a, excess kurtosis 6/a. With n draws the
        // standard errors are sqrt(a/n) for the mean and ≈ a·sqrt((2 + 6/a)/n)
        // for the sample variance; we allow 5 standard errors (the seed is fixed,
        // so the test is deterministic; 5 sd would fail by chance < 1e-6).
        let n = 200_000;
        let mut r = Rng::new(2024);
        for a in [0.05, 0.2, 0.5, 1.0, 2.5, 10.0] {
            let xs: Vec<f64> = (0..n).map(|_| sample_gamma(a, &mut r)).collect();
            assert!(xs.iter().all(|&x| x >= 0.0 && x.is_finite()));
            let (m, v) = moments(&xs);
            let se_m = (a / n as f64).sqrt();
            let se_v = a * ((2.0 + 6.0 / a) / n as f64).sqrt();
            assert!((m - a).abs() < 5.0 * se_m, "a {a}: mean {m} (se {se_m})");
            assert!((v - a).abs() < 5.0 * se_v, "a {a}: var {v} (se {se_v})");
        }
    }

    #[test]
    fn beta_mean_and_variance() {
        // Beta(a, b): mean a/(a+b), variance ab/((a+b)²(a+b+1)). Values lie in
        // [0, 1], so the sample variance has standard error ≤ sqrt(E(x − μ)⁴/n)
        // ≤ sqrt(var/n); the mean's is sqrt(var/n). Tolerance: 5 of each.
        let n = 200_000;
        let mut r = Rng::new(7);
        for (a, b) in [
            (0.2, 0.2),
            (0.4, 0.4),
            (1.0, 1.0),
            (2.0, 2.0),
            (0.5, 3.0),
            (4.0, 1.5),
        ] {
            let xs: Vec<f64> = (0..n).map(|_| sample_beta(a, b, &mut r)).collect();
            assert!(xs.iter().all(|&x| (0.0..=1.0).contains(&x)));
            let (m, v) = moments(&xs);
            let mean = a / (a + b);
            let var = a * b / ((a + b) * (a + b) * (a + b + 1.0));
            let se = (var / n as f64).sqrt();
            assert!(
                (m - mean).abs() < 5.0 * se,
                "Beta({a},{b}): mean {m} vs {mean}"
            );
            assert!(
                (v - var).abs() < 5.0 * se,
                "Beta({a},{b}): var {v} vs {var}"
            );
        }
    }

    #[test]
    fn beta_tiny_shapes_stay_finite() {
        // Beta(0.01, 0.01) puts almost all mass near 0 and 1; X/(X+Y) on raw
        // Gamma draws would give 0/0 here.
        let mut r = Rng::new(1);
        for _ in 0..10_000 {
            let l = sample_beta(0.01, 0.01, &mut r);
            assert!((0.0..=1.0).contains(&l), "{l}");
        }
    }

    #[test]
    fn config_validate_identity_serde() {
        let c = AugmentConfig::default();
        assert!(c.is_identity());
        c.validate().unwrap();
        let paper = AugmentConfig {
            crop: 4,
            flip: true,
            mixup_alpha: 0.0,
        };
        assert!(!paper.is_identity() && paper.uses_geometry());
        assert!(!AugmentConfig {
            mixup_alpha: 0.2,
            ..Default::default()
        }
        .is_identity());
        for a in [-0.1, f64::NAN, f64::INFINITY] {
            let e = AugmentConfig {
                mixup_alpha: a,
                ..Default::default()
            }
            .validate()
            .unwrap_err()
            .to_string();
            assert!(
                e.starts_with("config error: mixup_alpha") && !e.contains('\n'),
                "{e}"
            );
        }
        let p: AugmentConfig = serde_json::from_str(r#"{"crop":4,"flip":true}"#).unwrap();
        assert_eq!(p, paper);
        assert!(serde_json::from_str::<AugmentConfig>(r#"{"crop":4,"flips":true}"#).is_err());
    }

    #[test]
    fn apply_composes_crop_flip_then_mixup() {
        let cfg = AugmentConfig {
            crop: 1,
            flip: true,
            mixup_alpha: 1.0,
        };
        let shape = [2, 3, 3];
        let (b, d, c) = (4, 18, 3);
        let x0: Vec<f32> = (0..b * d).map(|k| k as f32).collect();
        let t0: Vec<f32> = (0..b * c)
            .map(|k| ((k % c) == (k / c) % c) as u8 as f32)
            .collect();
        let fill = [-1.0, -2.0];
        let (mut x, mut t) = (x0.clone(), t0.clone());
        let l = cfg.apply(&mut x, &mut t, shape, c, &fill, &mut Rng::new(8));
        let mut r = Rng::new(8);
        let (mut xw, mut tw) = (x0.clone(), t0.clone());
        crop_flip(&mut xw, shape, 1, true, &fill, &mut r);
        assert_eq!(mixup(&mut xw, &mut tw, d, c, 1.0, &mut r), l);
        assert_eq!((x, t), (xw, tw));
        // The identity config changes nothing.
        let (mut x, mut t) = (x0.clone(), t0.clone());
        let one = AugmentConfig::default().apply(&mut x, &mut t, shape, c, &fill, &mut Rng::new(8));
        assert_eq!((one, x, t), (1.0, x0, t0));
    }
}
