//! A 2-D toy classification set for the browser explainer: C interleaved
//! spiral arms or C concentric rings in the plane, seeded.
//!
//! Example i has label i mod C (classes interleave in file order, so the
//! measurement subset "first min(N, n) examples" is balanced). For the spiral
//! of class c, with t ~ U[0, 1):
//!
//!   r = 0.1 + 0.9·t,   θ = 2π·c/C + 2π·turns·t,   x = s_in·(r cos θ, r sin θ) + s_in·σ·ε,
//!
//! ε ~ N(0, I₂). For rings, r = (c + 0.5 + u)/C with u ~ U[−½, ½]·(1 − gap) and
//! θ ~ U[0, 2π), the same noise added. Inputs lie in about [−1, 1]² (times s_in),
//! so they need no further normalisation.
//!
//! Random streams, all from `seed`: `toy/train` and `toy/test`.

use serde::{Deserialize, Serialize};

use crate::config::settings;
use crate::data::Dataset;
use crate::rng::Rng;
use crate::{Error, Result};

/// The shape of the classes in the plane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToyShape {
    /// C interleaved spiral arms.
    #[default]
    Spirals,
    /// C concentric rings.
    Rings,
}

impl std::str::FromStr for ToyShape {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "spirals" | "spiral" => Ok(ToyShape::Spirals),
            "rings" | "ring" => Ok(ToyShape::Rings),
            o => Err(Error::Config(format!(
                "unknown toy shape '{o}' (expected spirals or rings)"
            ))),
        }
    }
}

settings! {
    /// Configuration of the toy set. Missing fields take their [`Default`] values
    /// when deserialised.
    ///
    /// Three spiral arms of one turn, 300 train and 300 test points, σ = 0.03.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct ToyConfig {
        /// Spirals or rings.
        pub shape: ToyShape = ToyShape::Spirals,
        /// Number of classes C (2 ≤ C ≤ 16).
        pub classes: usize = 3,
        /// Number of training examples N (N ≥ C).
        pub n_train: usize = 300,
        /// Number of test examples.
        pub n_test: usize = 300,
        /// Turns of each spiral arm (spirals only; > 0).
        pub turns: f64 = 1.0,
        /// Standard deviation σ of the Gaussian noise, before the input scale (≥ 0).
        pub noise: f64 = 0.03,
        /// Seed of the draws.
        pub seed: u64 = 0,
        /// Input scale s_in multiplying every input (finite, > 0).
        pub input_scale: f32 = 1.0,
    }
}

/// Relative width of the empty band between neighbouring rings.
const RING_GAP: f64 = 0.3;

/// Largest number of classes (beyond it the arms/rings overlap into noise).
pub const MAX_CLASSES: usize = 16;

impl ToyConfig {
    /// Checks the values (see the field docs).
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Config(format!("toy data: {msg}")));
        if !(2..=MAX_CLASSES).contains(&self.classes) {
            return bad(format!(
                "classes must be in 2..={MAX_CLASSES}, got {}",
                self.classes
            ));
        }
        if self.n_train < self.classes {
            return bad(format!(
                "n_train must be at least the number of classes ({}), got {}",
                self.classes, self.n_train
            ));
        }
        if !(self.turns.is_finite() && self.turns > 0.0) {
            return bad(format!("turns must be positive, got {}", self.turns));
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return bad(format!("noise must be ≥ 0, got {}", self.noise));
        }
        if !(self.input_scale.is_finite() && self.input_scale > 0.0) {
            return bad(format!(
                "input_scale must be finite and positive, got {}",
                self.input_scale
            ));
        }
        Ok(())
    }

    /// The training set's name: `toy(spirals,C=…,N=…,seed=…)`, with `,s_in=…`
    /// when the input scale is not 1.
    pub fn name(&self) -> String {
        let shape = match self.shape {
            ToyShape::Spirals => "spirals",
            ToyShape::Rings => "rings",
        };
        let mut name = format!(
            "toy({shape},C={},N={},seed={}",
            self.classes, self.n_train, self.seed
        );
        if self.input_scale != 1.0 {
            name.push_str(&format!(",s_in={}", self.input_scale));
        }
        name.push(')');
        name
    }

    /// One point of class `c`, drawn from `rng`.
    fn point(&self, c: usize, rng: &mut Rng) -> [f64; 2] {
        let classes = self.classes as f64;
        let (r, theta) = match self.shape {
            ToyShape::Spirals => {
                let t = rng.uniform();
                let theta = std::f64::consts::TAU * (c as f64 / classes + self.turns * t);
                (0.1 + 0.9 * t, theta)
            }
            ToyShape::Rings => {
                let u = rng.uniform_in(-0.5, 0.5) * (1.0 - RING_GAP);
                let theta = rng.uniform_in(0.0, std::f64::consts::TAU);
                ((c as f64 + 0.5 + u) / classes, theta)
            }
        };
        let s = self.input_scale as f64;
        [
            s * (r * theta.cos() + self.noise * rng.normal()),
            s * (r * theta.sin() + self.noise * rng.normal()),
        ]
    }

    fn draw(&self, n: usize, stream: &str, name: String) -> Dataset {
        let mut rng = Rng::derived(self.seed, stream);
        let mut x = Vec::with_capacity(2 * n);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let c = i % self.classes;
            x.extend(self.point(c, &mut rng).map(|v| v as f32));
            y.push(c as u32);
        }
        Dataset {
            x,
            y,
            input_shape: vec![2],
            classes: self.classes,
            name,
        }
    }
}

/// Generate (train, test) for `cfg`.
///
/// # Errors
/// [`Error::Config`] when `cfg` fails [`ToyConfig::validate`].
pub fn generate(cfg: &ToyConfig) -> Result<(Dataset, Dataset)> {
    cfg.validate()?;
    let name = cfg.name();
    let train = cfg.draw(cfg.n_train, "toy/train", name.clone());
    let test = cfg.draw(cfg.n_test, "toy/test", format!("{name}:test"));
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_balanced_and_named() {
        let cfg = ToyConfig::default();
        let (a, at) = generate(&cfg).unwrap();
        let (b, _) = generate(&cfg).unwrap();
        assert_eq!(a.x, b.x);
        assert_eq!(a.len(), 300);
        assert_eq!(at.len(), 300);
        assert_eq!(a.input_shape, vec![2]);
        assert_eq!(a.class_counts(), vec![100, 100, 100]);
        assert_eq!(&a.y[..4], &[0, 1, 2, 0]);
        assert_ne!(a.x, at.x, "train and test are different draws");
        assert_eq!(a.name, "toy(spirals,C=3,N=300,seed=0)");
        let other = generate(&ToyConfig { seed: 1, ..cfg }).unwrap().0;
        assert_ne!(a.x, other.x);
    }

    #[test]
    fn noiseless_points_lie_on_their_curves() {
        // Without noise a spiral point of class c at radius r has angle
        // 2π(c/C + turns·(r − 0.1)/0.9) mod 2π; a ring point has radius in
        // its class's band ((c + 0.5 ± 0.35)/C).
        let cfg = ToyConfig {
            noise: 0.0,
            classes: 4,
            turns: 1.5,
            n_train: 400,
            ..Default::default()
        };
        let (d, _) = generate(&cfg).unwrap();
        for i in 0..d.len() {
            let [x, y] = [d.input(i)[0] as f64, d.input(i)[1] as f64];
            let r = x.hypot(y);
            let t = (r - 0.1) / 0.9;
            let want = std::f64::consts::TAU * (d.y[i] as f64 / 4.0 + 1.5 * t);
            let diff = (y.atan2(x) - want).rem_euclid(std::f64::consts::TAU);
            let diff = diff.min(std::f64::consts::TAU - diff);
            assert!(diff < 1e-5, "example {i}: angle off by {diff}");
        }
        let rings = ToyConfig {
            shape: ToyShape::Rings,
            input_scale: 2.0,
            ..cfg
        };
        let (d, _) = generate(&rings).unwrap();
        for i in 0..d.len() {
            let r = (d.input(i)[0] as f64).hypot(d.input(i)[1] as f64) / 2.0;
            let c = d.y[i] as f64;
            assert!(
                (r * 4.0 - (c + 0.5)).abs() <= 0.35 + 1e-6,
                "example {i} of class {c} at radius {r}"
            );
        }
    }

    #[test]
    fn rejects_bad_settings() {
        let ok = ToyConfig::default();
        for bad in [
            ToyConfig {
                classes: 1,
                ..ok.clone()
            },
            ToyConfig {
                classes: 17,
                ..ok.clone()
            },
            ToyConfig {
                n_train: 2,
                ..ok.clone()
            },
            ToyConfig {
                turns: 0.0,
                ..ok.clone()
            },
            ToyConfig {
                noise: -0.1,
                ..ok.clone()
            },
            ToyConfig {
                input_scale: f32::NAN,
                ..ok.clone()
            },
        ] {
            assert!(generate(&bad).is_err(), "{bad:?}");
        }
        assert_eq!("rings".parse::<ToyShape>().unwrap(), ToyShape::Rings);
        assert!("moons".parse::<ToyShape>().is_err());
    }
}
