//! The δ-good synthetic dataset of docs/measurements.md "Data and inputs" — curvlab's embedded
//! default dataset, generated from a seed, never downloaded.
//!
//! * Latents z: uniform on the cube [0,1]^k ([`Domain::Cube`], z ∈ R^k), or
//!   uniform on the sphere S^k ([`Domain::Sphere`], the unit sphere in
//!   R^{k+1}, drawn as a normalised standard Gaussian in R^{k+1}).
//! * Inputs x = g(z) ∈ R^d, with a fixed random generator
//!   g(z) = W₂ tanh(W₁ z + b₁) + b₂ ([`Generator`]) of hidden width h:
//!   W₁ ~ N(0, 4/len(z)), b₁ ~ N(0, 1), W₂⁰ ~ N(0, 1/h) entrywise; each
//!   output of W₂⁰ tanh(W₁ z + b₁) is then standardised on a calibration draw
//!   of 4096 latents (mean μ, standard deviation σ) and multiplied by the
//!   input scale s_in: W₂ = s_in·diag(1/σ)·W₂⁰, b₂ = −s_in·μ/σ, so every
//!   coordinate of x has mean ≈ 0 and variance ≈ s_in².
//! * Labels y = argmax_c t_c(z) from a fixed random teacher
//!   t(z) = V₂ tanh(V₁ z + c₁) + c₂ ([`Teacher`], hidden width 32, drawn like
//!   the generator), whose logits are standardised per class and shifted by per-class offsets chosen on the
//!   calibration draw so the classes are balanced.
//!
//! The seed fixes g, the teacher and the draws; train and test come from the
//! same distribution through independent streams. Since tanh is 1-Lipschitz,
//! ‖g‖_Lip ≤ ‖W₂‖₂·‖W₁‖₂ ([`Synthetic::generator_lipschitz`], Euclidean
//! distance between latent vectors). By Theorem 4.2 the data is
//! ‖g‖_Lip·δ-good with δ = δ(N, ε) of eq. (6) (cube) or eq. (7) (sphere) in
//! intrinsic dimension k.

use serde::{Deserialize, Serialize};

use super::Dataset;
use crate::rng::Rng;
use crate::{Error, Result};

/// Where the latents z live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    /// Uniform on the hypercube [0,1]^k; z ∈ R^k.
    #[default]
    Cube,
    /// Uniform on the sphere S^k = {z ∈ R^{k+1} : ‖z‖ = 1}.
    Sphere,
}

impl Domain {
    /// Length of a latent vector for intrinsic dimension k: k (cube) or k + 1 (sphere).
    pub fn latent_len(self, k: usize) -> usize {
        match self {
            Domain::Cube => k,
            Domain::Sphere => k + 1,
        }
    }
}

/// Configuration of the synthetic dataset. Missing fields take their
/// [`Default`] values when deserialised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyntheticConfig {
    /// Intrinsic dimension k of the latents (k ≥ 1).
    pub intrinsic_dim: usize,
    /// Ambient (input) dimension d (d ≥ 1).
    pub ambient_dim: usize,
    /// Number of classes C (C ≥ 2).
    pub classes: usize,
    /// Number of training examples N (N ≥ 1).
    pub n_train: usize,
    /// Number of test examples.
    pub n_test: usize,
    /// Latent domain: cube [0,1]^k or sphere S^k.
    pub domain: Domain,
    /// Hidden width of the generator g (≥ 1).
    pub generator_width: usize,
    /// Seed fixing the generator, the teacher and the draws.
    pub seed: u64,
    /// Input scale s_in multiplying g (finite, > 0; default 1).
    pub input_scale: f32,
}

impl Default for SyntheticConfig {
    /// k = 4, d = 32, C = 4, 1000 train and 1000 test examples on the cube,
    /// generator width 64, seed 0, input scale 1.
    fn default() -> Self {
        SyntheticConfig {
            intrinsic_dim: 4,
            ambient_dim: 32,
            classes: 4,
            n_train: 1000,
            n_test: 1000,
            domain: Domain::Cube,
            generator_width: 64,
            seed: 0,
            input_scale: 1.0,
        }
    }
}

impl SyntheticConfig {
    /// Check that the configuration can work: k ≥ 1, d ≥ 1, C ≥ 2, N ≥ 1,
    /// generator width ≥ 1, a finite positive input scale, sizes that fit memory.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Config(format!("synthetic data: {msg}")));
        if self.intrinsic_dim == 0 {
            return bad("intrinsic_dim (k) must be at least 1".into());
        }
        if self.ambient_dim == 0 {
            return bad("ambient_dim (d) must be at least 1".into());
        }
        if self.classes < 2 {
            return bad(format!(
                "classes (C) must be at least 2, got {}",
                self.classes
            ));
        }
        if self.classes > u32::MAX as usize {
            return bad(format!("classes (C) must fit in u32, got {}", self.classes));
        }
        if self.n_train == 0 {
            return bad("n_train (N) must be at least 1".into());
        }
        if self.generator_width == 0 {
            return bad("generator_width must be at least 1".into());
        }
        if !(self.input_scale.is_finite() && self.input_scale > 0.0) {
            return bad(format!(
                "input_scale must be finite and positive, got {}",
                self.input_scale
            ));
        }
        let latent = self.domain.latent_len(self.intrinsic_dim);
        for (what, n) in [("n_train", self.n_train), ("n_test", self.n_test)] {
            let fits = n
                .checked_mul(self.ambient_dim.max(latent))
                .and_then(|v| v.checked_mul(8))
                .is_some();
            if !fits {
                return bad(format!(
                    "{what} = {n} examples of dimension {} do not fit in memory",
                    self.ambient_dim
                ));
            }
        }
        Ok(())
    }

    /// The training set's name: `synthetic(k=…,d=…,C=…,N=…,seed=…)`, with
    /// `,sphere` and `,s_in=…` appended when they differ from the defaults.
    pub fn name(&self) -> String {
        let mut name = format!(
            "synthetic(k={},d={},C={},N={},seed={}",
            self.intrinsic_dim, self.ambient_dim, self.classes, self.n_train, self.seed
        );
        if self.domain == Domain::Sphere {
            name.push_str(",sphere");
        }
        if self.input_scale != 1.0 {
            name.push_str(&format!(",s_in={}", self.input_scale));
        }
        name.push(')');
        name
    }
}

/// Number of latents drawn to standardise the generator and balance the teacher.
const CALIBRATION_DRAWS: usize = 4096;

/// Hidden width of the teacher.
const TEACHER_WIDTH: usize = 32;

/// First-layer gain: W₁ entries ~ N(0, GAIN²/len(z)), biases ~ N(0, 1), so the
/// tanh units work in their non-linear range.
const FIRST_LAYER_GAIN: f64 = 2.0;

/// A dense layer a ↦ W a + b, W row-major `out × inp`.
#[derive(Clone, Debug)]
struct Dense {
    inp: usize,
    out: usize,
    w: Vec<f64>,
    b: Vec<f64>,
}

impl Dense {
    /// W entries ~ N(0, gain²/inp), b entries ~ N(0, bias_std²).
    fn random(inp: usize, out: usize, gain: f64, bias_std: f64, rng: &mut Rng) -> Dense {
        let s = gain / (inp as f64).sqrt();
        let w = (0..inp * out).map(|_| s * rng.normal()).collect();
        let b = (0..out).map(|_| bias_std * rng.normal()).collect();
        Dense { inp, out, w, b }
    }

    fn apply(&self, a: &[f64]) -> Vec<f64> {
        self.w
            .chunks_exact(self.inp)
            .zip(&self.b)
            .map(|(row, b)| b + dot(row, a))
            .collect()
    }

    /// Replace row r by `scale[r]·row` and bias r by `scale[r]·b_r + shift[r]`.
    fn affine_rows(&mut self, scale: &[f64], shift: &[f64]) {
        for (r, row) in self.w.chunks_exact_mut(self.inp).enumerate() {
            row.iter_mut().for_each(|v| *v *= scale[r]);
            self.b[r] = scale[r] * self.b[r] + shift[r];
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A two-layer tanh net z ↦ L₂ tanh(L₁ z).
#[derive(Clone, Debug)]
struct TanhNet {
    l1: Dense,
    l2: Dense,
}

impl TanhNet {
    fn apply(&self, z: &[f64]) -> Vec<f64> {
        let h: Vec<f64> = self.l1.apply(z).into_iter().map(f64::tanh).collect();
        self.l2.apply(&h)
    }

    /// Outputs for each of the latents `zs` (row-major, `inp` per row).
    fn apply_all(&self, zs: &[f64]) -> Vec<Vec<f64>> {
        zs.chunks_exact(self.l1.inp)
            .map(|z| self.apply(z))
            .collect()
    }

    /// Per-output mean μ and standard deviation σ over `outs`; σ is replaced
    /// by 1 where it vanishes.
    fn moments(outs: &[Vec<f64>], dim: usize) -> (Vec<f64>, Vec<f64>) {
        let n = outs.len().max(1) as f64;
        let mut mean = vec![0.0; dim];
        for o in outs {
            mean.iter_mut().zip(o).for_each(|(m, v)| *m += v / n);
        }
        let mut var = vec![0.0; dim];
        for o in outs {
            var.iter_mut()
                .zip(o.iter().zip(&mean))
                .for_each(|(s, (v, m))| *s += (v - m).powi(2) / n);
        }
        let std = var
            .into_iter()
            .map(|v| if v.sqrt() > 1e-12 { v.sqrt() } else { 1.0 })
            .collect();
        (mean, std)
    }
}

/// The fixed random generator g(z) = W₂ tanh(W₁ z + b₁) + b₂ : R^{len(z)} → R^d.
#[derive(Clone, Debug)]
pub struct Generator {
    net: TanhNet,
    lipschitz: f64,
}

impl Generator {
    /// Draw W₁, b₁, W₂⁰ from `rng`, then standardise each output on the
    /// calibration latents and multiply by `input_scale`.
    fn new(
        latent_len: usize,
        width: usize,
        d: usize,
        input_scale: f64,
        calib: &[f64],
        rng: &mut Rng,
    ) -> Self {
        let l1 = Dense::random(latent_len, width, FIRST_LAYER_GAIN, 1.0, rng);
        let l2 = Dense::random(width, d, 1.0, 0.0, rng);
        let mut net = TanhNet { l1, l2 };
        let (mean, std) = TanhNet::moments(&net.apply_all(calib), d);
        let scale: Vec<f64> = std.iter().map(|s| input_scale / s).collect();
        let shift: Vec<f64> = mean.iter().zip(&scale).map(|(m, s)| -m * s).collect();
        net.l2.affine_rows(&scale, &shift);
        let lipschitz = spectral_norm(&net.l2.w, net.l2.out, net.l2.inp)
            * spectral_norm(&net.l1.w, net.l1.out, net.l1.inp);
        Generator { net, lipschitz }
    }

    /// Length of the latent vectors g takes (k for the cube, k + 1 for the sphere).
    pub fn latent_len(&self) -> usize {
        self.net.l1.inp
    }

    /// Output dimension d.
    pub fn ambient_dim(&self) -> usize {
        self.net.l2.out
    }

    /// g(z). Panics if `z.len() != self.latent_len()`.
    pub fn apply(&self, z: &[f64]) -> Vec<f64> {
        assert_eq!(z.len(), self.latent_len(), "latent length");
        self.net.apply(z)
    }

    /// Upper bound ‖W₂‖₂·‖W₁‖₂ ≥ ‖g‖_Lip (tanh is 1-Lipschitz), with respect
    /// to the Euclidean norms of R^{len(z)} and R^d.
    pub fn lipschitz_bound(&self) -> f64 {
        self.lipschitz
    }
}

/// The fixed random teacher labelling latents: y = argmax_c t_c(z) with
/// t(z) = V₂ tanh(V₁ z + c₁) + c₂, logits standardised per class and shifted
/// to balance the classes.
#[derive(Clone, Debug)]
pub struct Teacher {
    net: TanhNet,
}

impl Teacher {
    fn new(latent_len: usize, classes: usize, calib: &[f64], rng: &mut Rng) -> Self {
        let l1 = Dense::random(latent_len, TEACHER_WIDTH, FIRST_LAYER_GAIN, 1.0, rng);
        let l2 = Dense::random(TEACHER_WIDTH, classes, 1.0, 0.0, rng);
        let mut net = TanhNet { l1, l2 };
        let outs = net.apply_all(calib);
        let (mean, std) = TanhNet::moments(&outs, classes);
        let scale: Vec<f64> = std.iter().map(|s| 1.0 / s).collect();
        let shift: Vec<f64> = mean.iter().zip(&scale).map(|(m, s)| -m * s).collect();
        net.l2.affine_rows(&scale, &shift);
        let standardised: Vec<Vec<f64>> = outs
            .iter()
            .map(|o| {
                o.iter()
                    .enumerate()
                    .map(|(c, v)| scale[c] * v + shift[c])
                    .collect()
            })
            .collect();
        let offsets = balance_offsets(&standardised, classes);
        net.l2.affine_rows(&vec![1.0; classes], &offsets);
        Teacher { net }
    }

    /// Number of classes C.
    pub fn classes(&self) -> usize {
        self.net.l2.out
    }

    /// The teacher's logits t(z). Panics if `z` has the wrong length.
    pub fn logits(&self, z: &[f64]) -> Vec<f64> {
        assert_eq!(z.len(), self.net.l1.inp, "latent length");
        self.net.apply(z)
    }

    /// The label argmax_c t_c(z) (the first maximiser on ties).
    pub fn label(&self, z: &[f64]) -> u32 {
        argmax(&self.logits(z)) as u32
    }
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// The largest and second-largest entries of `l + b` as (index, value) pairs;
/// the first maximiser wins ties, as in [`argmax`].
fn top2(l: &[f64], b: &[f64]) -> [(usize, f64); 2] {
    let mut top = [(0, f64::NEG_INFINITY), (0, f64::NEG_INFINITY)];
    for (j, (v, o)) in l.iter().zip(b).enumerate() {
        let s = v + o;
        if s > top[0].1 {
            top = [(j, s), top[0]];
        } else if s > top[1].1 {
            top[1] = (j, s);
        }
    }
    top
}

/// Per-class offsets b making argmax_c (t_c + b_c) balanced on the M
/// calibration logits. Each class in turn gets the b_c at which it wins
/// exactly its share q_c (⌊M/C⌋, +1 for the first M mod C classes) given the
/// other offsets: the midpoint between the q_c-th and (q_c+1)-th smallest
/// margins max_{c'≠c}(t_{c'} + b_{c'}) − t_c. Sweeps over the classes repeat
/// until every class's count is within max(1, q/100) of its share (at most
/// `MAX_SWEEPS` sweeps; the best-balanced offsets seen are kept).
fn balance_offsets(logits: &[Vec<f64>], classes: usize) -> Vec<f64> {
    const MAX_SWEEPS: usize = 50;
    let m = logits.len();
    let mut b = vec![0.0; classes];
    if m == 0 {
        return b;
    }
    let share: Vec<usize> = (0..classes)
        .map(|c| m / classes + usize::from(c < m % classes))
        .collect();
    let tolerance = (m / classes / 100).max(1);
    let mut top: Vec<[(usize, f64); 2]> = logits.iter().map(|l| top2(l, &b)).collect();
    let deviation = |top: &[[(usize, f64); 2]]| {
        let mut counts = vec![0usize; classes];
        top.iter().for_each(|t| counts[t[0].0] += 1);
        counts
            .iter()
            .zip(&share)
            .map(|(&n, &q)| n.abs_diff(q))
            .max()
            .unwrap_or(0)
    };
    let mut best = (deviation(&top), b.clone());
    let mut margins = vec![0.0; m];
    for _ in 0..MAX_SWEEPS {
        if best.0 <= tolerance {
            break;
        }
        for c in 0..classes {
            for ((mi, l), t) in margins.iter_mut().zip(logits).zip(&top) {
                let others = if t[0].0 == c { t[1].1 } else { t[0].1 };
                *mi = others - l[c];
            }
            b[c] = match share[c] {
                0 => margins.iter().copied().fold(f64::INFINITY, f64::min) - 1.0,
                q if q >= m => margins.iter().copied().fold(f64::NEG_INFINITY, f64::max) + 1.0,
                q => {
                    let (_, &mut below, above) =
                        margins.select_nth_unstable_by(q - 1, f64::total_cmp);
                    0.5 * (below + above.iter().copied().fold(f64::INFINITY, f64::min))
                }
            };
            // Update the top two of every example for the new b_c.
            for (l, t) in logits.iter().zip(top.iter_mut()) {
                let s = l[c] + b[c];
                if t[0].0 == c || t[1].0 == c {
                    *t = top2(l, &b);
                } else if s > t[0].1 || (s == t[0].1 && c < t[0].0) {
                    *t = [(c, s), t[0]];
                } else if s > t[1].1 {
                    t[1] = (c, s);
                }
            }
        }
        let dev = deviation(&top);
        if dev < best.0 {
            best = (dev, b.clone());
        }
    }
    best.1
}

/// Largest singular value ‖A‖₂ of the row-major `rows × cols` matrix `a`, by
/// power iteration on AᵀA in f64: v ← AᵀAv/‖AᵀAv‖, estimate μ = ‖AᵀAv‖ (a
/// non-decreasing lower bound of σ₁²). It stops when the geometric tail of the
/// increments, Δ_t·ρ/(1 − ρ) with ρ = Δ_t/Δ_{t−1}, is below 1e-13·μ (or the
/// increments reach rounding level) three iterations in a row, and returns
/// √μ·(1 + 1e-9), an upper bound of σ₁ once converged to better than 1e-9
/// relative (the start vector is a fixed random one).
fn spectral_norm(a: &[f64], rows: usize, cols: usize) -> f64 {
    const MAX_ITERATIONS: usize = 1_000_000;
    if rows == 0 || cols == 0 {
        return 0.0;
    }
    let apply = |v: &[f64]| -> Vec<f64> {
        let av: Vec<f64> = a.chunks_exact(cols).map(|row| dot(row, v)).collect();
        let mut w = vec![0.0; cols];
        for (row, s) in a.chunks_exact(cols).zip(&av) {
            w.iter_mut().zip(row).for_each(|(wi, r)| *wi += s * r);
        }
        w
    };
    let mut v = Rng::derived(0, "spectral_norm").unit_vector(cols);
    let mut mu = 0.0f64;
    let mut prev_delta = 0.0f64;
    // Consecutive iterations meeting the stopping test.
    let mut settled = 0;
    for t in 0..MAX_ITERATIONS {
        let w = apply(&v);
        let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 || !norm.is_finite() {
            break;
        }
        let delta = norm - mu;
        mu = mu.max(norm);
        v = w.into_iter().map(|x| x / norm).collect();
        // The first increments (from μ = 0) say nothing about the rate.
        let done = if delta <= 8.0 * f64::EPSILON * mu {
            true
        } else if t >= 2 && prev_delta > 0.0 {
            let rho = delta / prev_delta;
            rho < 1.0 && delta * rho / (1.0 - rho) <= 1e-13 * mu
        } else {
            false
        };
        settled = if done { settled + 1 } else { 0 };
        if settled >= 3 {
            break;
        }
        prev_delta = delta;
    }
    mu.sqrt() * (1.0 + 1e-9)
}

/// Draw `n` latents (row-major, `domain.latent_len(k)` values each): uniform on
/// [0,1]^k for the cube; for the sphere S^k, a standard Gaussian in R^{k+1}
/// divided by its norm.
pub fn sample_latents(domain: Domain, k: usize, n: usize, rng: &mut Rng) -> Vec<f64> {
    let len = domain.latent_len(k);
    let mut out = Vec::with_capacity(n * len);
    for _ in 0..n {
        match domain {
            Domain::Cube => out.extend((0..len).map(|_| rng.uniform())),
            Domain::Sphere => loop {
                let g: Vec<f64> = (0..len).map(|_| rng.normal()).collect();
                let norm = dot(&g, &g).sqrt();
                if norm > 1e-300 {
                    out.extend(g.iter().map(|x| x / norm));
                    break;
                }
            },
        }
    }
    out
}

/// A generated synthetic dataset with the objects that define it.
#[derive(Clone, Debug)]
pub struct Synthetic {
    /// Training set: N examples, inputs `[d]`, C classes.
    pub train: Dataset,
    /// Test set from the same distribution (independent draw).
    pub test: Dataset,
    /// Upper bound on ‖g‖_Lip: ‖W₂‖₂·‖W₁‖₂ (includes s_in).
    pub generator_lipschitz: f64,
    /// Intrinsic dimension k of the latent domain (the d of eqs. (6)/(7)).
    pub latent_dim: usize,
    /// Latent domain.
    pub domain: Domain,
    /// The generator g.
    pub generator: Generator,
    /// The teacher labelling latents.
    pub teacher: Teacher,
    /// Training latents, row-major, `domain.latent_len(k)` values each.
    pub train_latents: Vec<f64>,
    /// Test latents, row-major.
    pub test_latents: Vec<f64>,
}

/// Generate the synthetic dataset of `cfg` (see the module documentation).
///
/// Random streams, all from `cfg.seed`: `synthetic/calibration` (latents
/// standardising g and balancing the teacher), `synthetic/generator`,
/// `synthetic/teacher`, `synthetic/train`, `synthetic/test`.
pub fn generate(cfg: &SyntheticConfig) -> Result<Synthetic> {
    cfg.validate()?;
    let k = cfg.intrinsic_dim;
    let latent_len = cfg.domain.latent_len(k);
    let stream = |name: &str| Rng::derived(cfg.seed, name);
    let calib = sample_latents(
        cfg.domain,
        k,
        CALIBRATION_DRAWS,
        &mut stream("synthetic/calibration"),
    );
    let generator = Generator::new(
        latent_len,
        cfg.generator_width,
        cfg.ambient_dim,
        cfg.input_scale as f64,
        &calib,
        &mut stream("synthetic/generator"),
    );
    let teacher = Teacher::new(
        latent_len,
        cfg.classes,
        &calib,
        &mut stream("synthetic/teacher"),
    );

    let draw = |n: usize, rng: &mut Rng, name: String| -> (Dataset, Vec<f64>) {
        let z = sample_latents(cfg.domain, k, n, rng);
        let mut x = Vec::with_capacity(n * cfg.ambient_dim);
        let mut y = Vec::with_capacity(n);
        for zi in z.chunks_exact(latent_len) {
            x.extend(generator.apply(zi).into_iter().map(|v| v as f32));
            y.push(teacher.label(zi));
        }
        (
            Dataset {
                x,
                y,
                input_shape: vec![cfg.ambient_dim],
                classes: cfg.classes,
                name,
            },
            z,
        )
    };
    let name = cfg.name();
    let (train, train_latents) = draw(cfg.n_train, &mut stream("synthetic/train"), name.clone());
    let (test, test_latents) = draw(
        cfg.n_test,
        &mut stream("synthetic/test"),
        format!("{name}:test"),
    );
    Ok(Synthetic {
        train,
        test,
        generator_lipschitz: generator.lipschitz_bound(),
        latent_dim: k,
        domain: cfg.domain,
        generator,
        teacher,
        train_latents,
        test_latents,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &[f64]) -> f64 {
        dot(v, v).sqrt()
    }

    #[test]
    fn deterministic_shapes_and_names() {
        let cfg = SyntheticConfig {
            n_train: 200,
            n_test: 50,
            ..Default::default()
        };
        let a = generate(&cfg).unwrap();
        let b = generate(&cfg).unwrap();
        assert_eq!(a.train.x, b.train.x);
        assert_eq!(a.train.y, b.train.y);
        assert_eq!(a.test.x, b.test.x);
        assert_eq!(a.generator_lipschitz, b.generator_lipschitz);

        assert_eq!(a.train.len(), 200);
        assert_eq!(a.test.len(), 50);
        assert_eq!(a.train.input_shape, vec![32]);
        assert_eq!(a.train.x.len(), 200 * 32);
        assert_eq!(a.train.classes, 4);
        assert_eq!(a.train_latents.len(), 200 * 4);
        assert_eq!(a.latent_dim, 4);
        assert_eq!(a.train.name, "synthetic(k=4,d=32,C=4,N=200,seed=0)");
        assert_eq!(a.test.name, "synthetic(k=4,d=32,C=4,N=200,seed=0):test");
        assert!(a.train.x.iter().all(|v| v.is_finite()));
        // Train and test are different draws.
        assert_ne!(&a.train.x[..32], &a.test.x[..32]);

        let c = generate(&SyntheticConfig {
            seed: 1,
            ..cfg.clone()
        })
        .unwrap();
        assert_ne!(a.train.x, c.train.x);
        assert_ne!(a.generator_lipschitz, c.generator_lipschitz);
        assert!(c.train.name.contains("seed=1"));

        let s = generate(&SyntheticConfig {
            domain: Domain::Sphere,
            input_scale: 2.0,
            ..cfg
        })
        .unwrap();
        assert_eq!(
            s.train.name,
            "synthetic(k=4,d=32,C=4,N=200,seed=0,sphere,s_in=2)"
        );
        assert_eq!(s.train_latents.len(), 200 * 5);
    }

    #[test]
    fn every_class_present_and_balanced() {
        for domain in [Domain::Cube, Domain::Sphere] {
            for classes in [2, 3, 5, 10] {
                for seed in 0..8 {
                    for k in [1, 4] {
                        let cfg = SyntheticConfig {
                            intrinsic_dim: k,
                            classes,
                            n_train: 100,
                            n_test: 0,
                            domain,
                            seed,
                            ..Default::default()
                        };
                        let d = generate(&cfg).unwrap();
                        let counts = d.train.class_counts();
                        assert!(counts.iter().all(|&c| c > 0), "{cfg:?}: {counts:?}");
                    }
                }
            }
        }
        let cfg = SyntheticConfig {
            n_train: 8000,
            n_test: 0,
            ..Default::default()
        };
        let counts = generate(&cfg).unwrap().train.class_counts();
        for c in counts.iter() {
            let frac = *c as f64 / 8000.0;
            assert!((frac - 0.25).abs() < 0.04, "{counts:?}");
        }
    }

    #[test]
    fn lipschitz_bound_holds() {
        for domain in [Domain::Cube, Domain::Sphere] {
            for seed in 0..4 {
                let cfg = SyntheticConfig {
                    n_train: 1,
                    n_test: 0,
                    domain,
                    seed,
                    ..Default::default()
                };
                let s = generate(&cfg).unwrap();
                let g = &s.generator;
                let bound = s.generator_lipschitz;
                assert!(bound.is_finite() && bound > 0.0);
                let mut rng = Rng::derived(seed, "lipschitz-test");
                let zs = sample_latents(domain, 4, 4000, &mut rng);
                let len = domain.latent_len(4);
                let mut worst: f64 = 0.0;
                for (i, pair) in zs.chunks_exact(2 * len).enumerate() {
                    let (z, far) = pair.split_at(len);
                    // Alternate far pairs with near pairs (tiny random steps).
                    let other: Vec<f64> = if i % 2 == 0 {
                        far.to_vec()
                    } else {
                        let eps = 10f64.powi(-((i % 7) as i32));
                        z.iter().zip(far).map(|(a, b)| a + eps * (b - a)).collect()
                    };
                    let dz: Vec<f64> = z.iter().zip(&other).map(|(a, b)| a - b).collect();
                    if norm(&dz) == 0.0 {
                        continue;
                    }
                    let gx = g.apply(z);
                    let gy = g.apply(&other);
                    let dx: Vec<f64> = gx.iter().zip(&gy).map(|(a, b)| a - b).collect();
                    let ratio = norm(&dx) / norm(&dz);
                    assert!(ratio <= bound, "ratio {ratio} > bound {bound}");
                    worst = worst.max(ratio);
                }
                // The bound is an upper bound, but not a vacuous one.
                assert!(worst > 0.05 * bound, "worst ratio {worst} vs bound {bound}");
            }
        }
    }

    #[test]
    fn spectral_norm_of_known_matrices() {
        let close = |a: f64, b: f64| (a - b).abs() <= 2e-9 * b && a >= b;
        // diag(3, 2, 1) padded to 4 × 3.
        let d = [3.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        assert!(close(spectral_norm(&d, 4, 3), 3.0));
        // [[1, 1], [0, 1]]: σ₁ = golden ratio.
        let phi = (1.0 + 5f64.sqrt()) / 2.0;
        assert!(close(spectral_norm(&[1.0, 1.0, 0.0, 1.0], 2, 2), phi));
        // Rank one u vᵀ: ‖u‖·‖v‖.
        let (u, v) = ([1.0, -2.0, 0.5], [3.0, 4.0]);
        let a: Vec<f64> = u
            .iter()
            .flat_map(|x| v.iter().map(move |y| x * y))
            .collect();
        assert!(close(spectral_norm(&a, 3, 2), norm(&u) * norm(&v)));
        // Close top singular values (3 and 2.999) still converge.
        let d = [3.0, 0.0, 0.0, 2.999];
        assert!(close(spectral_norm(&d, 2, 2), 3.0));
        assert_eq!(spectral_norm(&[0.0; 4], 2, 2), 0.0);
    }

    #[test]
    fn latents_in_their_domain() {
        let mut rng = Rng::new(5);
        let z = sample_latents(Domain::Sphere, 3, 500, &mut rng);
        assert_eq!(z.len(), 500 * 4);
        for row in z.chunks_exact(4) {
            assert!((norm(row) - 1.0).abs() < 1e-12);
        }
        let mean: f64 = z.iter().step_by(4).sum::<f64>() / 500.0;
        assert!(mean.abs() < 0.1, "sphere mean {mean}");
        let z = sample_latents(Domain::Cube, 3, 500, &mut rng);
        assert_eq!(z.len(), 500 * 3);
        assert!(z.iter().all(|&v| (0.0..1.0).contains(&v)));

        let s = generate(&SyntheticConfig {
            domain: Domain::Sphere,
            n_train: 50,
            ..Default::default()
        })
        .unwrap();
        for row in s.train_latents.chunks_exact(5) {
            assert!((norm(row) - 1.0).abs() < 1e-12);
        }
        // The stored latents are the ones the data were made from.
        let x0: Vec<f32> = s
            .generator
            .apply(&s.train_latents[..5])
            .into_iter()
            .map(|v| v as f32)
            .collect();
        assert_eq!(x0, s.train.input(0));
        assert_eq!(s.teacher.label(&s.train_latents[..5]), s.train.y[0]);
    }

    #[test]
    fn unit_variance_and_input_scale() {
        let cfg = SyntheticConfig {
            n_train: 4000,
            n_test: 0,
            ..Default::default()
        };
        let a = generate(&cfg).unwrap();
        let d = 32;
        for j in 0..d {
            let col: Vec<f64> = (0..a.train.len())
                .map(|i| a.train.input(i)[j] as f64)
                .collect();
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64;
            assert!(
                mean.abs() < 0.15 && (var - 1.0).abs() < 0.15,
                "coordinate {j}: mean {mean}, var {var}"
            );
        }
        let b = generate(&SyntheticConfig {
            input_scale: 3.0,
            ..cfg
        })
        .unwrap();
        assert_eq!(a.train.y, b.train.y);
        for (u, v) in a.train.x.iter().zip(&b.train.x) {
            assert!((3.0 * u - v).abs() <= 1e-5 * (1.0 + v.abs()), "{u} {v}");
        }
        assert!((b.generator_lipschitz / a.generator_lipschitz - 3.0).abs() < 1e-9);
    }

    #[test]
    fn invalid_configs() {
        let ok = SyntheticConfig::default();
        let cases = [
            SyntheticConfig {
                intrinsic_dim: 0,
                ..ok.clone()
            },
            SyntheticConfig {
                ambient_dim: 0,
                ..ok.clone()
            },
            SyntheticConfig {
                classes: 1,
                ..ok.clone()
            },
            SyntheticConfig {
                n_train: 0,
                ..ok.clone()
            },
            SyntheticConfig {
                generator_width: 0,
                ..ok.clone()
            },
            SyntheticConfig {
                input_scale: 0.0,
                ..ok.clone()
            },
            SyntheticConfig {
                input_scale: f32::NAN,
                ..ok.clone()
            },
            SyntheticConfig {
                n_train: usize::MAX / 4,
                ..ok.clone()
            },
        ];
        for cfg in cases {
            match generate(&cfg) {
                Err(Error::Config(msg)) => assert!(msg.starts_with("synthetic data:"), "{msg}"),
                other => panic!("{cfg:?}: expected a config error, got {other:?}"),
            }
        }
        assert!(ok.validate().is_ok());
        assert!(generate(&SyntheticConfig {
            n_test: 0,
            n_train: 1,
            ..ok
        })
        .is_ok());
    }

    #[test]
    fn config_serde() {
        let cfg = SyntheticConfig {
            domain: Domain::Sphere,
            seed: 9,
            ..Default::default()
        };
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains("\"domain\":\"sphere\""), "{json}");
        let back: SyntheticConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);
        let partial: SyntheticConfig =
            serde_json::from_str(r#"{"domain": "cube", "classes": 10}"#).unwrap();
        assert_eq!(
            partial,
            SyntheticConfig {
                classes: 10,
                ..Default::default()
            }
        );
    }
}
