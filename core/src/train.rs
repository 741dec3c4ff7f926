//! Training: full-batch gradient descent and minibatch SGD with momentum and
//! weight decay (PyTorch's `torch.optim.SGD` semantics:
//! g ← ∇ℓ_B(θ) + λθ; b ← μb + g; θ ← θ − ηb), constant learning rate.
//!
//! Deterministic for a given seed on a given backend: minibatch order comes
//! from the host RNG, and full-batch gradients are summed in a fixed chunk order.

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::loss::LossConfig;
use crate::models::{forward, Gates, Model};
use crate::objective::{leaf_gradients, leaves, loss_and_gradient, Sample};
use crate::rng::Rng;
use crate::{Error, Result};

/// Optimiser settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Learning rate η.
    pub lr: f64,
    /// Heavy-ball momentum μ (0 = plain GD/SGD).
    pub momentum: f64,
    /// Weight decay λ (L2 term added to the gradient; not part of ℓ_S).
    pub weight_decay: f64,
    /// Minibatch size; 0 = full batch (gradient descent).
    pub batch_size: usize,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 0.05,
            momentum: 0.0,
            weight_decay: 0.0,
            batch_size: 0,
        }
    }
}

impl OptimConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::Config(format!(
                "learning rate must be positive, got {}",
                self.lr
            )));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::Config(format!(
                "momentum must be in [0, 1), got {}",
                self.momentum
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::Config(format!(
                "weight decay must be ≥ 0, got {}",
                self.weight_decay
            )));
        }
        Ok(())
    }
}

/// What one step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepMetrics {
    /// Loss on the step's batch at θ before the update.
    pub loss: f64,
}

/// A training run's state: model, optimiser state and data.
pub struct Trainer {
    pub model: Model,
    pub optim: OptimConfig,
    pub loss: LossConfig,
    velocity: Option<Vec<Tensor<1>>>,
    /// Full training set on the device, in chunks (full-batch GD).
    full: Sample,
    /// Whole training inputs/targets as single tensors (minibatch SGD).
    x_all: Option<(Tensor<2>, Tensor<2>)>,
    rng: Rng,
    order: Vec<usize>,
    cursor: usize,
    n: usize,
    /// Steps taken.
    pub step: u64,
}

impl Trainer {
    /// Sets up training of `model` on `train`.
    pub fn new(
        model: Model,
        train: &Dataset,
        loss: LossConfig,
        optim: OptimConfig,
        chunk: usize,
        seed: u64,
    ) -> Result<Trainer> {
        optim.validate()?;
        loss.validate()?;
        let device = model.device();
        if train.input_len() != model.arch.input_len() || train.classes != model.arch.classes() {
            return Err(Error::Shape(format!(
                "model expects inputs of length {} and {} classes; data {} has {} and {}",
                model.arch.input_len(),
                model.arch.classes(),
                train.name,
                train.input_len(),
                train.classes
            )));
        }
        if optim.batch_size > train.len() {
            return Err(Error::Config(format!(
                "batch size {} exceeds the {} training examples",
                optim.batch_size,
                train.len()
            )));
        }
        let full = Sample::new(train, &loss, chunk, &device)?;
        let x_all = (optim.batch_size > 0).then(|| upload_all(train, &loss, &device));
        Ok(Trainer {
            model,
            optim,
            loss,
            velocity: None,
            full,
            x_all,
            rng: Rng::derived(seed, "batches"),
            order: Vec::new(),
            cursor: 0,
            n: train.len(),
            step: 0,
        })
    }

    /// Epochs completed (fractional for SGD).
    pub fn epoch(&self) -> f64 {
        if self.optim.batch_size == 0 {
            self.step as f64
        } else {
            self.step as f64 * self.optim.batch_size as f64 / self.n as f64
        }
    }

    fn next_batch(&mut self) -> Vec<usize> {
        let b = self.optim.batch_size;
        if self.cursor + b > self.order.len() {
            self.order = (0..self.n).collect();
            self.rng.shuffle(&mut self.order);
            self.cursor = 0;
        }
        let idx = self.order[self.cursor..self.cursor + b].to_vec();
        self.cursor += b;
        idx
    }

    /// ∇ of the step's objective (batch or full) at θ, and its loss.
    fn gradient(&mut self) -> (f64, Vec<Tensor<1>>) {
        if self.optim.batch_size == 0 {
            return loss_and_gradient(
                &self.model.arch,
                &self.model.params,
                &self.full,
                &self.loss,
                None,
            );
        }
        let idx = self.next_batch();
        let arch = &self.model.arch;
        let (x_all, t_all) = self.x_all.as_ref().expect("uploaded for SGD");
        let device = x_all.device();
        let ids = Tensor::<1, Int>::from_data(
            TensorData::new(
                idx.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                [idx.len()],
            ),
            &device,
        );
        let x = x_all.clone().select(0, ids.clone());
        let t = t_all.clone().select(0, ids);
        let leaves = leaves(&self.model.params);
        let l = self
            .loss
            .per_example(forward(arch, &leaves, x, Gates::Free), t)
            .mean();
        let grads = l.backward();
        let g = leaf_gradients(&leaves, &grads);
        (crate::models::tensor_to_vec(&l.inner())[0] as f64, g)
    }

    /// One optimiser step.
    pub fn step(&mut self) -> StepMetrics {
        let (loss, mut g) = self.gradient();
        if self.optim.weight_decay > 0.0 {
            g = g
                .into_iter()
                .zip(&self.model.params)
                .map(|(gi, p)| gi + p.clone().mul_scalar(self.optim.weight_decay))
                .collect();
        }
        let dir = if self.optim.momentum > 0.0 {
            let v = match self.velocity.take() {
                None => g,
                Some(v) => v
                    .into_iter()
                    .zip(g)
                    .map(|(vi, gi)| vi.mul_scalar(self.optim.momentum) + gi)
                    .collect(),
            };
            self.velocity = Some(v.clone());
            v
        } else {
            g
        };
        let lr = self.optim.lr;
        self.model.params = self
            .model
            .params
            .iter()
            .zip(dir)
            .map(|(p, d)| p.clone() - d.mul_scalar(lr))
            .collect();
        self.step += 1;
        StepMetrics { loss }
    }
}

fn upload_all(train: &Dataset, loss: &LossConfig, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let n = train.len();
    let x = Tensor::from_data(
        TensorData::new(train.x.clone(), [n, train.input_len()]),
        device,
    );
    let t = Tensor::from_data(
        TensorData::new(loss.targets(&train.y, train.classes), [n, train.classes]),
        device,
    );
    (x, t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Activation, Architecture};

    fn data(n: usize, d: usize, c: usize) -> Dataset {
        let mut rng = Rng::new(5);
        Dataset {
            x: (0..n * d).map(|_| rng.normal() as f32).collect(),
            y: (0..n).map(|i| (i % c) as u32).collect(),
            input_shape: vec![d],
            classes: c,
            name: "t".into(),
        }
    }

    fn train(seed: u64, optim: OptimConfig, steps: usize) -> (Vec<f32>, Vec<f64>) {
        let dev = Device::flex();
        let arch = Architecture::Mlp {
            input_dim: 5,
            hidden: vec![7],
            classes: 3,
            activation: Activation::Relu,
        };
        let model = Model::init(&arch, seed, &dev).unwrap();
        let mut t = Trainer::new(
            model,
            &data(30, 5, 3),
            LossConfig::default(),
            optim,
            8,
            seed,
        )
        .unwrap();
        let losses = (0..steps).map(|_| t.step().loss).collect();
        (t.model.flat(), losses)
    }

    #[test]
    fn deterministic_for_a_seed() {
        let sgd = OptimConfig {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-3,
            batch_size: 4,
        };
        assert_eq!(train(1, sgd.clone(), 20), train(1, sgd.clone(), 20));
        assert_ne!(train(1, sgd.clone(), 20).0, train(2, sgd, 20).0);
        let gd = OptimConfig {
            lr: 0.1,
            ..Default::default()
        };
        let (_, losses) = train(3, gd, 30);
        assert!(
            losses[29] < losses[0],
            "GD did not lower the loss: {losses:?}"
        );
    }

    #[test]
    fn sgd_momentum_weight_decay_by_hand() {
        // A linear model z = Wx + b on the single input x = 0 with the square
        // loss: W sees only weight decay, b the data gradient b − t.
        let dev = Device::flex();
        let arch = Architecture::Mlp {
            input_dim: 1,
            hidden: vec![],
            classes: 2,
            activation: Activation::Tanh,
        };
        let model = Model::from_host(&arch, &[vec![1.0, -2.0], vec![0.0, 0.0]], &dev).unwrap();
        let data = Dataset {
            x: vec![0.0],
            y: vec![0],
            input_shape: vec![1],
            classes: 2,
            name: "z".into(),
        };
        let loss = LossConfig {
            kind: crate::loss::LossKind::Square,
            label_smoothing: 0.0,
            target_scale: 1.0,
        };
        let optim = OptimConfig {
            lr: 0.5,
            momentum: 0.5,
            weight_decay: 0.1,
            batch_size: 0,
        };
        let mut t = Trainer::new(model, &data, loss, optim, 1, 0).unwrap();
        t.step();
        t.step();
        // W: g = λW (x = 0 gives no data gradient). b: g = b − t, t = (1, 0).
        // step 1: W1 = W0 − 0.5·0.1·W0 = 0.95 W0; vb = (−1, 0); b1 = (0.5, 0)
        // step 2: gW = 0.095 W0, vW = 0.5·0.1 W0 + 0.095 W0 = 0.145 W0, W2 = 0.95 W0 − 0.0725 W0 = 0.8775 W0
        //         gb = b1 − t + 0.1 b1 = (−0.45, 0); vb = (−0.5 − 0.45, 0) = (−0.95, 0); b2 = (0.5 + 0.475, 0) = (0.975, 0)
        let host = t.model.to_host();
        for (got, want) in host[0].iter().zip([0.8775f32, -1.755]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        for (got, want) in host[1].iter().zip([0.975f32, 0.0]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }
}
