//! PyTorch's SGD update of one parameter tensor in one pass (burn's ops
//! take five to six passes, each allocating):
//!
//!   g ← g + λθ;  b ← μb + g (b = g on the first step);  θ ← θ − η·b,
//!
//! in f32 with each scalar rounded to f32 and each operation in that order,
//! so the values are those of the composed ops bit for bit.
//!
//! # Shapes
//! θ, g, b: the same length.

use std::mem::MaybeUninit;

use super::flex::par_vec_uninit;

/// The step's scalars.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sgd {
    pub lr: f32,
    /// μ, when momentum is on.
    pub momentum: Option<f32>,
    /// λ, when weight decay is on.
    pub weight_decay: Option<f32>,
}

/// Values per parallel task.
const CHUNK: usize = 16384;

/// (θ′, b′) from θ, g and the momentum buffer `b` (None on the first
/// momentum step); b′ is returned when momentum is on.
pub(crate) fn update(
    s: &Sgd,
    p: &[f32],
    g: &[f32],
    b: Option<&[f32]>,
) -> (Vec<f32>, Option<Vec<f32>>) {
    assert_eq!(p.len(), g.len(), "sgd: gradient size");
    let dir = |i: usize| {
        let mut d = g[i];
        if let Some(wd) = s.weight_decay {
            d += p[i] * wd;
        }
        if let (Some(mu), Some(b)) = (s.momentum, b) {
            d += b[i] * mu; // = μb + g: IEEE addition commutes
        }
        d
    };
    let buffer = s.momentum.map(|_| {
        let fill = |t: usize, o: &mut [MaybeUninit<f32>]| {
            for (k, v) in o.iter_mut().enumerate() {
                v.write(dir(t * CHUNK + k));
            }
        };
        // SAFETY: `fill` writes every value of its chunk.
        unsafe { par_vec_uninit(p.len(), CHUNK, fill) }
    });
    let fill = |t: usize, o: &mut [MaybeUninit<f32>]| {
        for (k, v) in o.iter_mut().enumerate() {
            let i = t * CHUNK + k;
            let d = buffer.as_ref().map_or_else(|| dir(i), |b| b[i]);
            v.write(p[i] - d * s.lr);
        }
    };
    // SAFETY: `fill` writes every value of its chunk.
    let next = unsafe { par_vec_uninit(p.len(), CHUNK, fill) };
    (next, buffer)
}
