//! Training: full-batch gradient descent and minibatch SGD with momentum and
//! weight decay (PyTorch's `torch.optim.SGD` semantics:
//! g ← ∇ℓ_B(θ) + λθ; b ← μb + g; θ ← θ − η_k b), a learning-rate schedule
//! η_k ([`crate::schedule`]), SAM, and augmented or mixed batches
//! ([`crate::augment`]).
//!
//! - **SAM** (Foret et al. 2021, ρ > 0): g = ∇ℓ_B(θ), ε = ρ·g/‖g‖, and the
//!   step uses ∇ℓ_B(θ + ε) on the same batch (then weight decay and momentum
//!   as above). BatchNorm running statistics are updated by the first pass
//!   only, once per step.
//! - **BatchNorm**: train mode; running statistics updated (momentum 0.1)
//!   by every chunk's or minibatch's forward pass, as PyTorch does.
//! - **Augmentation / mixup** apply to the training batches only, drawn from a
//!   separate RNG stream; measurements use the un-augmented data.
//!
//! Deterministic for a given seed on a given backend: minibatch order and
//! augmentation come from the host RNG, and full-batch gradients are summed
//! in a fixed chunk order.

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::augment::AugmentConfig;
use crate::backend::read_vec;
use crate::config::settings;
use crate::data::Dataset;
use crate::kernels::{select_rows, sgd_update};
use crate::loss::LossConfig;
use crate::models::{forward_bn, Bn, Gates, Model, BN_MOMENTUM};
use crate::objective::{leaf_gradients, leaves, loss_and_gradient_tensors, Sample};
use crate::rng::Rng;
use crate::schedule::ScheduleConfig;
use crate::{Error, Result};

settings! {
    /// Optimiser settings.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct OptimConfig {
        /// Base learning rate η.
        pub lr: f64 = 0.06,
        /// Heavy-ball momentum μ (0 = plain GD/SGD).
        pub momentum: f64 = 0.0,
        /// Weight decay λ (L2 term added to the gradient; not part of ℓ_S).
        pub weight_decay: f64 = 0.0,
        /// Minibatch size; 0 = full batch (gradient descent).
        pub batch_size: usize = 0,
        /// Learning-rate schedule over the run (default constant).
        pub schedule: ScheduleConfig = ScheduleConfig::default(),
        /// SAM radius ρ; 0 = plain (S)GD.
        pub sam_rho: f64 = 0.0,
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
        if !(self.sam_rho.is_finite() && self.sam_rho >= 0.0) {
            return Err(Error::Config(format!(
                "SAM ρ must be ≥ 0, got {}",
                self.sam_rho
            )));
        }
        self.schedule.validate()
    }
}

/// What one step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepMetrics {
    /// Loss on the step's batch at θ before the update.
    pub loss: f64,
    /// Learning rate used for the update.
    pub lr: f64,
}

/// Training data kept on the host for augmentation.
struct HostData {
    x: Vec<f32>,
    t: Vec<f32>,
    y: Vec<u32>,
    shape: Vec<usize>,
    classes: usize,
    augment: AugmentConfig,
    fill: Vec<f32>,
    rng: Rng,
}

/// The batch of one step on the device.
#[allow(clippy::large_enum_variant)] // one per step
enum Batch {
    /// The whole training set in its fixed chunks.
    Full,
    /// An augmented or mixed batch in chunks.
    Chunked(Sample),
    /// A minibatch `[B, d]`, targets `[B, C]`.
    Rows(Tensor<2>, Tensor<2>),
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
    /// Host copy for augmentation (None without augmentation).
    host: Option<HostData>,
    chunk: usize,
    rng: Rng,
    order: Vec<usize>,
    cursor: usize,
    n: usize,
    /// Steps taken.
    pub step: u64,
    /// Length of the run, for the learning-rate schedule (0 = constant rate).
    pub total_steps: u64,
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
            host: None,
            chunk: chunk.max(1),
            rng: Rng::derived(seed, "batches"),
            order: Vec::new(),
            cursor: 0,
            n: train.len(),
            step: 0,
            total_steps: 0,
        })
    }

    /// Augments (random crop with padding, flips, mixup) every training batch;
    /// `fill` is the per-channel crop padding value (see
    /// [`crate::augment::pixel_zero_fill`]).
    pub fn with_augment(
        mut self,
        train: &Dataset,
        augment: &AugmentConfig,
        fill: Vec<f32>,
        seed: u64,
    ) -> Result<Trainer> {
        augment.validate()?;
        if augment.is_identity() {
            return Ok(self);
        }
        if augment.uses_geometry() && train.input_shape.len() != 3 {
            return Err(Error::Shape(format!(
                "random crop / flip need image inputs [c, h, w]; {} has inputs of shape {:?}",
                train.name, train.input_shape
            )));
        }
        if augment.uses_geometry() && fill.len() != train.input_shape[0] {
            return Err(Error::Shape(format!(
                "crop fill has {} values for {} channels",
                fill.len(),
                train.input_shape[0]
            )));
        }
        self.host = Some(HostData {
            x: train.x.clone(),
            t: self.loss.targets(&train.y, train.classes),
            y: train.y.clone(),
            shape: train.input_shape.clone(),
            classes: train.classes,
            augment: augment.clone(),
            fill,
            rng: Rng::derived(seed, "augment"),
        });
        Ok(self)
    }

    /// Sets the run length the learning-rate schedule refers to.
    pub fn with_total_steps(mut self, total_steps: u64) -> Trainer {
        self.total_steps = total_steps;
        self
    }

    /// The learning rate of the next update.
    pub fn lr(&self) -> f64 {
        if self.total_steps == 0 {
            return self.optim.lr;
        }
        self.optim
            .schedule
            .lr_at(self.optim.lr, self.step, self.total_steps)
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

    /// Draws the step's batch (and augments it).
    fn draw(&mut self) -> Result<Batch> {
        let idx = (self.optim.batch_size > 0).then(|| self.next_batch());
        let device = self.model.device();
        let Some(h) = self.host.as_mut() else {
            let Some(idx) = idx else {
                return Ok(Batch::Full);
            };
            let (x_all, t_all) = self.x_all.as_ref().expect("uploaded for SGD");
            if let (Some(x), Some(t)) = (select_rows(x_all, &idx), select_rows(t_all, &idx)) {
                return Ok(Batch::Rows(x, t));
            }
            let ids = Tensor::<1, Int>::from_data(
                TensorData::new(
                    idx.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                    [idx.len()],
                ),
                &device,
            );
            return Ok(Batch::Rows(
                x_all.clone().select(0, ids.clone()),
                t_all.clone().select(0, ids),
            ));
        };
        let d: usize = h.shape.iter().product();
        let c = h.classes;
        let idx = idx.unwrap_or_else(|| (0..self.n).collect());
        let mut x = Vec::with_capacity(idx.len() * d);
        let mut t = Vec::with_capacity(idx.len() * c);
        for &i in &idx {
            x.extend_from_slice(&h.x[i * d..(i + 1) * d]);
            t.extend_from_slice(&h.t[i * c..(i + 1) * c]);
        }
        let shape = match h.shape[..] {
            [a, b, cc] => [a, b, cc],
            _ => [1, 1, d],
        };
        h.augment
            .apply(&mut x, &mut t, shape, c, &h.fill, &mut h.rng);
        let y: Vec<u32> = idx.iter().map(|&i| h.y[i]).collect();
        if self.optim.batch_size > 0 {
            let b = idx.len();
            return Ok(Batch::Rows(
                Tensor::from_data(TensorData::new(x, [b, d]), &device),
                Tensor::from_data(TensorData::new(t, [b, c]), &device),
            ));
        }
        Ok(Batch::Chunked(Sample::from_parts(
            &x, &t, &y, d, c, self.chunk, &device,
        )?))
    }

    /// Loss (on the device) and ∇ of the batch loss at `params`; BatchNorm
    /// running statistics are updated when `update_bn`.
    fn gradient_at(
        &mut self,
        params: &[Tensor<1>],
        batch: &Batch,
        update_bn: bool,
    ) -> (Tensor<1>, Vec<Tensor<1>>) {
        let has_bn = self.model.arch.has_batch_norm();
        let mut bn = if update_bn {
            Bn::Update {
                buffers: &mut self.model.buffers,
                momentum: BN_MOMENTUM,
            }
        } else {
            Bn::Batch
        };
        let arch = &self.model.arch;
        let (loss, grad, passes) = match batch {
            Batch::Full | Batch::Chunked(_) => {
                let sample = match batch {
                    Batch::Chunked(s) => s,
                    _ => &self.full,
                };
                let (l, g) =
                    loss_and_gradient_tensors(arch, params, sample, &self.loss, None, &mut bn);
                (l, g, sample.chunks.len() as u64)
            }
            Batch::Rows(x, t) => {
                let leaves = leaves(params);
                let z = forward_bn(arch, &leaves, x.clone(), Gates::Free, &mut bn);
                let l = self.loss.per_example(z, t.clone()).mean();
                let grads = l.backward();
                (l.inner(), leaf_gradients(&leaves, &grads), 1)
            }
        };
        if update_bn && has_bn {
            self.model.bn_updates += passes;
        }
        (loss, grad)
    }

    /// θ ← θ − η·b with g ← g + λθ, b ← μb + g, in burn's ops (any
    /// backend; [`sgd_update`] computes the same values in one pass on flex).
    fn update_composed(&mut self, mut g: Vec<Tensor<1>>, lr: f64) {
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
        self.model.params = self
            .model
            .params
            .iter()
            .zip(dir)
            .map(|(p, d)| p.clone() - d.mul_scalar(lr))
            .collect();
    }

    /// One optimiser step.
    pub async fn step(&mut self) -> Result<StepMetrics> {
        let batch = self.draw()?;
        let params = self.model.params.clone();
        let (loss, mut g) = self.gradient_at(&params, &batch, true);
        let loss = read_vec(&loss).await?[0] as f64;
        if self.optim.sam_rho > 0.0 {
            // ε = ρ g/‖g‖, on the device (no read-back)
            let sq: Vec<Tensor<1>> = g.iter().map(|gi| gi.clone().square().sum()).collect();
            let scale = Tensor::cat(sq, 0)
                .sum()
                .sqrt()
                .add_scalar(1e-12)
                .recip()
                .mul_scalar(self.optim.sam_rho);
            let perturbed: Vec<Tensor<1>> = params
                .iter()
                .zip(&g)
                .map(|(p, gi)| p.clone() + gi.clone() * scale.clone())
                .collect();
            g = self.gradient_at(&perturbed, &batch, false).1;
        }
        let lr = self.lr();
        let (mu, wd) = (self.optim.momentum, self.optim.weight_decay);
        let fused: Option<Vec<(Tensor<1>, Option<Tensor<1>>)>> = self
            .model
            .params
            .iter()
            .zip(&g)
            .enumerate()
            .map(|(i, (p, gi))| {
                let b = self.velocity.as_ref().map(|v| &v[i]);
                sgd_update(
                    p,
                    gi,
                    b,
                    lr,
                    (mu > 0.0).then_some(mu),
                    (wd > 0.0).then_some(wd),
                )
            })
            .collect();
        if let Some(fused) = fused {
            let (params, buffers): (Vec<_>, Vec<_>) = fused.into_iter().unzip();
            self.model.params = params;
            if mu > 0.0 {
                self.velocity = buffers.into_iter().collect();
            }
        } else {
            self.update_composed(g, lr);
        }
        self.step += 1;
        Ok(StepMetrics { loss, lr })
    }
}

/// The host-side state of a [`Trainer`] besides the model: what a checkpoint
/// needs to continue the same sequence of batches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub step: u64,
    pub rng: [u64; 4],
    pub augment_rng: Option<[u64; 4]>,
    pub order: Vec<usize>,
    pub cursor: usize,
}

impl Trainer {
    /// Host-side state for a checkpoint (the velocity is [`Trainer::velocity`]).
    pub fn state(&self) -> TrainerState {
        TrainerState {
            step: self.step,
            rng: self.rng.state(),
            augment_rng: self.host.as_ref().map(|h| h.rng.state()),
            order: self.order.clone(),
            cursor: self.cursor,
        }
    }

    /// The momentum buffer (None before the first momentum step or without momentum).
    pub fn velocity(&self) -> Option<&[Tensor<1>]> {
        self.velocity.as_deref()
    }

    /// Continues from a checkpoint: model, momentum buffer and host state.
    pub fn restore(
        &mut self,
        model: Model,
        velocity: Option<Vec<Tensor<1>>>,
        state: &TrainerState,
    ) -> Result<()> {
        if model.arch != self.model.arch {
            return Err(Error::Config(
                "the checkpoint's model differs from the configured one".into(),
            ));
        }
        if state.cursor > state.order.len() || state.order.iter().any(|&i| i >= self.n) {
            return Err(Error::Config(
                "the checkpoint's batch order does not fit the training data".into(),
            ));
        }
        self.model = model;
        self.velocity = velocity;
        self.step = state.step;
        self.rng = Rng::from_state(state.rng);
        if let (Some(h), Some(s)) = (self.host.as_mut(), state.augment_rng) {
            h.rng = Rng::from_state(s);
        }
        self.order = state.order.clone();
        self.cursor = state.cursor;
        Ok(())
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
    use crate::backend::tensor_to_vec;
    use crate::models::{Activation, Architecture, Mlp};
    use crate::Block;

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
        let arch = Architecture::Mlp(Mlp {
            input_dim: 5,
            hidden: vec![7],
            classes: 3,
            activation: Activation::Relu,
        });
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
        let losses = (0..steps).map(|_| t.step().block().unwrap().loss).collect();
        (t.model.flat(), losses)
    }

    #[test]
    fn deterministic_for_a_seed() {
        let sgd = OptimConfig {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-3,
            batch_size: 4,
            ..Default::default()
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

    /// A linear model z = Wx + b, W = (1, −2), b = 0, on the single input
    /// x = 0 with label 0 and the square loss ½‖b − t‖², t = (1, 0).
    fn zero_input_linear(optim: OptimConfig) -> Trainer {
        let dev = Device::flex();
        let arch = Architecture::Mlp(Mlp {
            input_dim: 1,
            hidden: vec![],
            classes: 2,
            activation: Activation::Tanh,
        });
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
        Trainer::new(model, &data, loss, optim, 1, 0).unwrap()
    }

    #[test]
    fn sgd_momentum_weight_decay_by_hand() {
        // A linear model z = Wx + b on the single input x = 0 with the square
        // loss: W sees only weight decay, b the data gradient b − t.
        let mut t = zero_input_linear(OptimConfig {
            lr: 0.5,
            momentum: 0.5,
            weight_decay: 0.1,
            batch_size: 0,
            ..Default::default()
        });
        t.step().block().unwrap();
        t.step().block().unwrap();
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

    /// The fused update (`kernels::sgd_update`) gives the composed ops'
    /// values bit for bit, with and without momentum (first step and later)
    /// and weight decay.
    #[test]
    fn fused_update_equals_the_composed_one() {
        let dev = Device::flex();
        let mut rng = Rng::new(8);
        let mut t = |n: usize| {
            let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
            Tensor::<1>::from_data(TensorData::new(v, [n]), &dev)
        };
        let (p, g, b) = (t(40_000), t(40_000), t(40_000));
        let lr = 0.1;
        for (mu, wd) in [(0.9, 5e-4), (0.0, 1e-3), (0.5, 0.0), (0.0, 0.0)] {
            for buffer in [None, Some(&b)] {
                let (mo, wo) = ((mu > 0.0).then_some(mu), (wd > 0.0).then_some(wd));
                let (p1, b1) = crate::kernels::sgd_update(&p, &g, buffer, lr, mo, wo).unwrap();
                let mut gi = g.clone();
                if wd > 0.0 {
                    gi = gi + p.clone().mul_scalar(wd);
                }
                let d = match (mo, buffer) {
                    (Some(m), Some(v)) => v.clone().mul_scalar(m) + gi,
                    _ => gi,
                };
                let p2 = p.clone() - d.clone().mul_scalar(lr);
                assert_eq!(tensor_to_vec(&p1), tensor_to_vec(&p2), "μ {mu}, λ {wd}");
                if mo.is_some() {
                    assert_eq!(tensor_to_vec(&b1.unwrap()), tensor_to_vec(&d));
                } else {
                    assert!(b1.is_none());
                }
            }
        }
    }

    #[test]
    fn sam_step_by_hand() {
        // z = Wx + b on the single input x = 0, square loss ½‖b − t‖², t = (1, 0):
        // g = (0, 0 | b − t) = (0, 0 | −1, 0), ‖g‖ = 1, ε = ρ·g = (0, 0 | −ρ, 0);
        // at θ + ε: ∇_b = (−ρ − 1, 0), so b₁ = b₀ − η(−1 − ρ, 0) = (η(1 + ρ), 0).
        let mut t = zero_input_linear(OptimConfig {
            lr: 0.5,
            sam_rho: 0.5,
            ..Default::default()
        });
        let m = t.step().block().unwrap();
        assert!((m.loss - 0.5).abs() < 1e-7, "loss at θ: {}", m.loss);
        let host = t.model.to_host();
        assert_eq!(host[0], vec![1.0, -2.0]);
        for (got, want) in host[1].iter().zip([0.75f32, 0.0]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn schedule_sets_each_step_rate() {
        let optim = OptimConfig {
            lr: 0.2,
            schedule: crate::schedule::ScheduleConfig::large_then_decayed(0.5, 0.1),
            ..Default::default()
        };
        let dev = Device::flex();
        let arch = Architecture::Mlp(Mlp {
            input_dim: 5,
            hidden: vec![4],
            classes: 3,
            activation: Activation::Relu,
        });
        let model = Model::init(&arch, 0, &dev).unwrap();
        let mut t = Trainer::new(model, &data(12, 5, 3), LossConfig::default(), optim, 12, 0)
            .unwrap()
            .with_total_steps(4);
        let lrs: Vec<f64> = (0..4).map(|_| t.step().block().unwrap().lr).collect();
        for (got, want) in lrs.iter().zip([0.2, 0.2, 0.02, 0.02]) {
            assert!((got - want).abs() < 1e-12, "{lrs:?}");
        }
    }
}
