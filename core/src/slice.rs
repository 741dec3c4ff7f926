//! The loss along one direction through θ: the one-dimensional picture of why
//! gradient descent with step size η cannot settle where the curvature exceeds 2/η.
//!
//! For a unit direction u (the top Hessian eigenvector) and t on a grid,
//! the slice is ℓ_S(θ + t·u). With the gradient g = ∇ℓ_S(θ), one GD step
//! θ' = θ − η·g moves along u by
//!
//! t_step = ⟨θ' − θ, u⟩ = −η·(g·u).
//!
//! Near θ the slice is the parabola ℓ_S(θ) + (g·u)·t + ½·λ·t², λ = uᵀ∇²ℓ_S u
//! (= λ_max for the top eigenvector), whose vertex is t* = −(g·u)/λ. The step
//! maps the distance to the vertex by the factor 1 − ηλ:
//! t_step − t* = (1 − ηλ)·(0 − t*). While λ < 2/η, |1 − ηλ| < 1 and the step
//! lands inside the valley, closer to its floor; at λ = 2/η it lands on the
//! opposite wall at the same height (the step bounces between the walls); beyond,
//! it climbs out. That is the edge of stability.
//!
//! The direction's sign is chosen so that g·u ≤ 0 (the step moves towards
//! positive t); the slice does not depend on it otherwise.
//!
//! # Shapes
//! `direction`: flat θ-shaped, `P` values in [`crate::models::Architecture::param_specs`]
//! order; the slice: `points` values of t and of ℓ_S.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::backend::read_vec;
use crate::loss::LossConfig;
use crate::models::{forward_bn, Bn, BnMode, Gates, Model};
use crate::objective::{flatten, loss_and_gradient, unflatten_from_host, Sample};
use crate::{Error, Result};

/// How a slice is sampled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SliceConfig {
    /// Grid points (t = 0 is always one of them when odd).
    pub points: usize,
    /// Half-width R of the grid [−R, R]; `None`: [`LossSlice::auto_radius`].
    pub radius: Option<f64>,
    /// BatchNorm statistics of the sliced loss (as the Hessian's).
    pub bn_mode: BnMode,
}

impl Default for SliceConfig {
    fn default() -> Self {
        SliceConfig {
            points: 41,
            radius: None,
            bn_mode: BnMode::Train,
        }
    }
}

/// ℓ_S along a direction through θ, with the GD step drawn on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossSlice {
    /// Grid positions t (ascending).
    pub t: Vec<f64>,
    /// ℓ_S(θ + t·u) at each t.
    pub loss: Vec<f64>,
    /// ℓ_S(θ).
    pub loss0: f64,
    /// g·u, the slope of the slice at t = 0 (≤ 0 by the choice of sign).
    pub slope: f64,
    /// λ = uᵀ∇²ℓ_S u as given (the Lanczos estimate of λ_max).
    pub curvature: f64,
    /// The step size η of the step.
    pub lr: f64,
    /// Where one GD step lands along u: −η·(g·u).
    pub t_step: f64,
    /// ℓ_S(θ + t_step·u): the slice's height where the step lands.
    pub loss_step: f64,
    /// The vertex of the parabola, −(g·u)/λ (`None` when λ ≤ 0).
    pub t_vertex: Option<f64>,
}

impl LossSlice {
    /// 1 − ηλ: the factor a GD step applies to the distance from the vertex.
    pub fn contraction(&self) -> f64 {
        1.0 - self.lr * self.curvature
    }

    /// The grid half-width that shows the valley: 1.3 × the largest of the
    /// step, twice the vertex's distance (where a bouncing step lands) and
    /// the width at which the parabola rises by a tenth of ℓ_S(θ).
    pub fn auto_radius(loss0: f64, slope: f64, curvature: f64, lr: f64) -> f64 {
        let step = (lr * slope).abs();
        let (vertex, rise) = if curvature > 0.0 {
            (
                (slope / curvature).abs(),
                (0.2 * loss0.abs().max(1e-12) / curvature).sqrt(),
            )
        } else {
            (0.0, 0.0)
        };
        let r = 1.3 * step.max(2.0 * vertex).max(rise);
        if r.is_finite() && r > 0.0 {
            r
        } else {
            1e-3
        }
    }
}

/// ℓ_S(θ + t·u) on a grid of t and the GD step along u (see the module docs).
///
/// `direction` needs not be normalised (it is scaled to unit length);
/// `curvature` is λ = uᵀ∇²ℓ_S u (the sharpness when u is the top eigenvector).
pub async fn loss_slice(
    model: &Model,
    sample: &Sample,
    loss: &LossConfig,
    direction: &[f64],
    curvature: f64,
    lr: f64,
    cfg: &SliceConfig,
) -> Result<LossSlice> {
    let p = model.arch.num_params();
    if direction.len() != p {
        return Err(Error::Shape(format!(
            "slice direction has {} values, the model {p} parameters",
            direction.len()
        )));
    }
    let norm = direction.iter().map(|x| x * x).sum::<f64>().sqrt();
    if !(norm.is_finite() && norm > 0.0) {
        return Err(Error::Config(
            "slice direction must be finite and non-zero".into(),
        ));
    }
    if cfg.points < 3 {
        return Err(Error::Config("a slice needs at least 3 points".into()));
    }
    let running = cfg.bn_mode.running(model);
    let (arch, params) = (&model.arch, &model.params[..]);
    let unit: Vec<f64> = direction.iter().map(|x| x / norm).collect();
    let u = unflatten_from_host(&unit, params);
    let (loss0, grad) = loss_and_gradient(
        arch,
        params,
        sample,
        loss,
        None,
        &mut Bn::from_running(running),
    )
    .await?;
    let gu = read_vec(&(flatten(&grad) * flatten(&u)).sum()).await?[0] as f64;
    // Orient u so that the step moves towards positive t.
    let sign = if gu > 0.0 { -1.0 } else { 1.0 };
    let slope = sign * gu;
    let t_step = -lr * slope;
    let radius = cfg
        .radius
        .unwrap_or_else(|| LossSlice::auto_radius(loss0, slope, curvature, lr));
    let n = cfg.points;
    let mut t: Vec<f64> = (0..n)
        .map(|i| -radius + 2.0 * radius * i as f64 / (n - 1) as f64)
        .collect();
    if n % 2 == 1 {
        t[n / 2] = 0.0; // exactly θ
    }
    // Every grid point and the landing point, read back in one transfer.
    let mut at: Vec<Tensor<1>> = Vec::with_capacity(n + 1);
    for &ti in t.iter().chain(std::iter::once(&t_step)) {
        let shifted: Vec<Tensor<1>> = params
            .iter()
            .zip(&u)
            .map(|(pi, ui)| pi.clone() + ui.clone().mul_scalar(sign * ti))
            .collect();
        at.push(sample_loss(model, &shifted, sample, loss, running));
    }
    let values: Vec<f64> = read_vec(&Tensor::cat(at, 0))
        .await?
        .into_iter()
        .map(f64::from)
        .collect();
    Ok(LossSlice {
        loss: values[..n].to_vec(),
        loss_step: values[n],
        t,
        loss0,
        slope,
        curvature,
        lr,
        t_step,
        t_vertex: (curvature > 0.0).then(|| -slope / curvature),
    })
}

/// ℓ_S at `params` on the device (`[1]`), BatchNorm as `running` says.
fn sample_loss(
    model: &Model,
    params: &[Tensor<1>],
    sample: &Sample,
    loss: &LossConfig,
    running: Option<&[Tensor<1>]>,
) -> Tensor<1> {
    let scale = 1.0 / sample.n as f64;
    let mut total: Option<Tensor<1>> = None;
    for ch in &sample.chunks {
        let z = forward_bn(
            &model.arch,
            params,
            ch.x.clone(),
            Gates::Free,
            &mut Bn::from_running(running),
        );
        let l = loss
            .per_example(z, ch.t.clone())
            .sum()
            .mul_scalar(scale)
            .reshape([1]);
        total = Some(match total {
            None => l,
            Some(s) => s + l,
        });
    }
    total.expect("a sample has at least one chunk")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use crate::loss::LossKind;
    use crate::models::{Activation, Architecture, Mlp};
    use crate::rng::Rng;
    use crate::Block;
    use burn::tensor::Device;

    /// Linear regression (an MLP without hidden layers, square loss): ℓ_S is
    /// exactly quadratic in θ, its Hessian is I_C ⊗ A with A = (1/N)·Σ x̃x̃ᵀ,
    /// x̃ = (x, 1); so along the top eigenvector of A (in one class's weights
    /// and bias) the slice is the parabola ℓ(θ) + (g·u)t + ½λ_max t².
    #[test]
    fn linear_regression_slice_is_the_exact_parabola() {
        let dev = Device::flex();
        let (n, d, c) = (24, 3, 2);
        let mut rng = Rng::new(7);
        let x: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
        let y: Vec<u32> = (0..n).map(|i| (i % c) as u32).collect();
        let data = Dataset {
            x: x.clone(),
            y: y.clone(),
            input_shape: vec![d],
            classes: c,
            name: "regression".into(),
        };
        let loss = LossConfig {
            kind: LossKind::Square,
            label_smoothing: 0.0,
            target_scale: 1.0,
        };
        let arch = Architecture::Mlp(Mlp {
            input_dim: d,
            hidden: vec![],
            classes: c,
            activation: Activation::Tanh,
        });
        let model = Model::init(&arch, 3, &dev).unwrap();
        // Chunks of 10: the slice sums over chunks like the objective.
        let sample = Sample::new(&data, &loss, 10, &dev).unwrap();

        // A = (1/N) Σ x̃ x̃ᵀ in f64, its top eigenpair by power iteration.
        let xt = |i: usize| -> Vec<f64> {
            let mut v: Vec<f64> = x[i * d..(i + 1) * d].iter().map(|&a| a as f64).collect();
            v.push(1.0);
            v
        };
        let m = d + 1;
        let mut a = vec![0.0; m * m];
        for i in 0..n {
            let v = xt(i);
            for r in 0..m {
                for s in 0..m {
                    a[r * m + s] += v[r] * v[s] / n as f64;
                }
            }
        }
        let mut v = vec![1.0; m];
        let mut lambda = 0.0;
        for _ in 0..2000 {
            let w: Vec<f64> = (0..m)
                .map(|r| (0..m).map(|s| a[r * m + s] * v[s]).sum())
                .collect();
            lambda = w.iter().map(|z| z * z).sum::<f64>().sqrt();
            v = w.iter().map(|z| z / lambda).collect();
        }
        // u: class 1's weights and bias (PyTorch order: weight [C, d], then bias [C]).
        let mut u = vec![0.0; c * d + c];
        u[d..2 * d].copy_from_slice(&v[..d]);
        u[c * d + 1] = v[d];

        // ℓ(θ) and g·u on the host in f64.
        let host = model.to_host();
        let (w, b) = (&host[0], &host[1]);
        let mut l0 = 0.0;
        let mut gu = 0.0;
        for (i, &yi) in y.iter().enumerate() {
            let xi = xt(i);
            for k in 0..c {
                let z: f64 = (0..d).map(|j| w[k * d + j] as f64 * xi[j]).sum::<f64>() + b[k] as f64;
                let r = z - if yi as usize == k { 1.0 } else { 0.0 };
                l0 += 0.5 * r * r / n as f64;
                if k == 1 {
                    gu += r * (0..m).map(|j| xi[j] * v[j]).sum::<f64>() / n as f64;
                }
            }
        }
        let lr = 0.3;
        let s = loss_slice(
            &model,
            &sample,
            &loss,
            &u,
            lambda,
            lr,
            &SliceConfig {
                points: 21,
                radius: Some(2.0),
                ..Default::default()
            },
        )
        .block()
        .unwrap();
        let sign = if gu > 0.0 { -1.0 } else { 1.0 };
        assert!(
            (s.slope - sign * gu).abs() < 1e-5,
            "{} vs {}",
            s.slope,
            sign * gu
        );
        assert!(s.slope <= 0.0);
        assert!((s.loss0 - l0).abs() < 1e-5 * l0.max(1.0));
        assert_eq!(s.t.len(), 21);
        assert_eq!(s.t[10], 0.0);
        assert!((s.t[0] + 2.0).abs() < 1e-12 && (s.t[20] - 2.0).abs() < 1e-12);
        let parabola = |t: f64| l0 + s.slope * t + 0.5 * lambda * t * t;
        for (&t, &l) in s.t.iter().zip(&s.loss) {
            assert!(
                (l - parabola(t)).abs() < 2e-5 * parabola(t).max(1.0),
                "t = {t}: slice {l}, parabola {}",
                parabola(t)
            );
        }
        // The step: −η(g·u), landing on the parabola at the mirror point scaled by 1 − ηλ.
        assert!((s.t_step + lr * s.slope).abs() < 1e-12);
        assert!((s.loss_step - parabola(s.t_step)).abs() < 2e-5 * l0.max(1.0));
        let tv = s.t_vertex.unwrap();
        assert!((tv + s.slope / lambda).abs() < 1e-12);
        assert!(((s.t_step - tv) - s.contraction() * (0.0 - tv)).abs() < 1e-9);
        // At η = 2/λ the step lands at the mirror image of θ: same height, across the valley.
        let edge = loss_slice(
            &model,
            &sample,
            &loss,
            &u,
            lambda,
            2.0 / lambda,
            &SliceConfig::default(),
        )
        .block()
        .unwrap();
        assert!((edge.contraction() + 1.0).abs() < 1e-12);
        assert!((edge.loss_step - edge.loss0).abs() < 1e-4 * l0.max(1.0));
        assert!((edge.t_step - 2.0 * tv).abs() < 1e-6 * tv.abs().max(1e-3));
        // The automatic grid holds θ, the landing point and its mirror.
        let r = edge.t[edge.t.len() - 1];
        assert!(r >= edge.t_step.abs() && r >= 2.0 * tv.abs());
    }

    #[test]
    fn bad_directions_are_errors() {
        let dev = Device::flex();
        let data = Dataset {
            x: vec![0.0, 1.0, 1.0, 0.0],
            y: vec![0, 1],
            input_shape: vec![2],
            classes: 2,
            name: "two".into(),
        };
        let loss = LossConfig::default();
        let arch = Architecture::Mlp(Mlp {
            input_dim: 2,
            hidden: vec![3],
            classes: 2,
            activation: Activation::Tanh,
        });
        let model = Model::init(&arch, 0, &dev).unwrap();
        let sample = Sample::new(&data, &loss, 8, &dev).unwrap();
        let p = arch.num_params();
        let cfg = SliceConfig::default();
        let run = |u: &[f64]| loss_slice(&model, &sample, &loss, u, 1.0, 0.1, &cfg).block();
        assert!(run(&vec![0.0; p]).is_err());
        assert!(run(&vec![1.0; p + 1]).is_err());
        assert!(run(&vec![1.0; p]).is_ok());
    }
}
