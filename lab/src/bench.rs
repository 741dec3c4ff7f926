//! The benchmark behind `curvlab bench`: times the measurement workloads that
//! matter to users and returns one JSON object of timings (the CLI prints it,
//! or a table). The same workloads are implemented in JAX by
//! `bench/peer_jax.py`; `bench/compare.py` runs both.
//!
//! Workloads (softmax cross-entropy, ReLU, f32), on the first CIFAR-10 images
//! of `--data` (or seeded Gaussian CIFAR-shaped inputs when no data is given):
//! - `mlp`: MLP 3072-512-512-10, batch 256;
//! - `cnn`: conv3×3(3→16)-ReLU-maxpool-conv3×3(16→32)-ReLU-maxpool-linear(2048→10), batch 128.
//!
//! Per workload: SGD train step, gradient, HVP (and HVP/gradient), Lanczos to
//! 1e-3 relative accuracy cold (random start, after 50 GD steps at η = 0.02)
//! and warm (previous top eigenvector, one GD step later), exact softmax
//! Jacobian norms of 1,000 examples and, for scale, gradients of those 1,000
//! examples; peak resident memory of the process.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use burn::tensor::Device;
use curvlab::backend::{self, BackendKind};
use curvlab::data::cifar::{self, CifarOptions};
use curvlab::data::Dataset;
use curvlab::hvp::{HessianOperator, HvpConfig};
use curvlab::jacobian::jacobian_spectral_norms;
use curvlab::lanczos::LanczosConfig;
use curvlab::loss::LossConfig;
use curvlab::models::{Activation, Architecture, Bn, BnMode, Cnn, Mlp, Model};
use curvlab::objective::{loss_and_gradient, Sample};
use curvlab::rng::Rng;
use curvlab::sharpness::{top_hessian_eigenvalues, SharpnessConfig};
use curvlab::train::{OptimConfig, Trainer};
use curvlab::Block;
use serde_json::{json, Map, Value};

/// What to time, where.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// CIFAR-10 directory whose first images are the inputs; `None`: seeded
    /// Gaussian CIFAR-shaped inputs.
    pub data: Option<PathBuf>,
    /// Backends to time, in order (keys of the CPU backend are unprefixed,
    /// the others' carry the backend name).
    pub backends: Vec<BackendKind>,
    /// Timed repeats per quantity (the median is reported).
    pub repeats: usize,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// Median wall time of `f` in milliseconds over `repeats` runs after one warm-up.
fn time_ms(
    device: &Device,
    repeats: usize,
    mut f: impl FnMut() -> curvlab::Result<()>,
) -> Result<f64> {
    f()?;
    backend::sync(device)?;
    let mut ts = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t0 = Instant::now();
        f()?;
        backend::sync(device)?;
        ts.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(ts))
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn images(data: &Option<PathBuf>, n: usize) -> Result<Dataset> {
    match data {
        Some(dir) => {
            let train = cifar::load_train(dir, &CifarOptions::default())?;
            if train.len() < n {
                anyhow::bail!(
                    "{}: the benchmark needs {n} training images, found {}",
                    dir.display(),
                    train.len()
                );
            }
            Ok(train.first(n))
        }
        None => {
            let mut rng = Rng::derived(0, "bench");
            Ok(Dataset {
                x: (0..n * 3072).map(|_| rng.normal() as f32).collect(),
                y: (0..n).map(|_| rng.below(10) as u32).collect(),
                input_shape: vec![3, 32, 32],
                classes: 10,
                name: "gaussian".into(),
            })
        }
    }
}

#[allow(clippy::too_many_arguments)] // two call sites, one per workload
fn workload(
    name: &str,
    arch: &Architecture,
    batch: usize,
    args: &BenchOptions,
    device: &Device,
    out: &mut Map<String, Value>,
    prefix: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let loss = LossConfig::default();
    let key = |k: &str| format!("{prefix}{name}_{k}");
    let data = images(&args.data, 1000.max(batch))?;
    let batch_data = data.first(batch);
    let model = Model::init(arch, 0, device)?;
    let sample = Sample::new(&batch_data, &loss, batch, device)?;
    let r = args.repeats;
    progress(&format!(
        "[{prefix}{name}] timing train step, gradient, HVP"
    ));

    let mut trainer = Trainer::new(
        model.clone(),
        &batch_data,
        loss.clone(),
        OptimConfig {
            lr: 0.01,
            batch_size: batch,
            ..Default::default()
        },
        batch,
        0,
    )?;
    let train_ms = time_ms(device, r, || trainer.step().block().map(|_| ()))?;
    let grad_ms = time_ms(device, r, || {
        loss_and_gradient(
            &model.arch,
            &model.params,
            &sample,
            &loss,
            None,
            &mut Bn::Batch,
        )
        .block()
        .map(|_| ())
    })?;
    let hvp_cfg = HvpConfig::default();
    let mut op = HessianOperator::new(&model, BnMode::Train, &sample, &loss, &hvp_cfg).block()?;
    let v = curvlab::objective::unflatten_from_host(
        &Rng::new(1).unit_vector(arch.num_params()),
        &model.params,
    );
    let hvp_ms = time_ms(device, r, || {
        let _ = op.apply_tensors(&v);
        Ok(())
    })?;
    out.insert(key("train_step_ms"), json!(train_ms));
    out.insert(key("grad_ms"), json!(grad_ms));
    out.insert(key("hvp_ms"), json!(hvp_ms));
    out.insert(key("hvp_grad_ratio"), json!(hvp_ms / grad_ms));

    progress(&format!(
        "[{prefix}{name}] Lanczos cold and warm (after 50 GD steps)"
    ));
    let mut gd = Trainer::new(
        model.clone(),
        &batch_data,
        loss.clone(),
        OptimConfig {
            lr: 0.02,
            ..Default::default()
        },
        batch,
        0,
    )?;
    for _ in 0..50 {
        gd.step().block()?;
    }
    let cfg = SharpnessConfig {
        lanczos: LanczosConfig {
            k: 1,
            tol: 1e-3,
            max_steps: 100,
            min_steps: 2,
        },
        hvp: hvp_cfg,
        seed: 0,
        bn_mode: BnMode::Train,
    };
    let t0 = Instant::now();
    let cold = top_hessian_eigenvalues(&gd.model, &sample, &loss, &cfg, None).block()?;
    let cold_ms = t0.elapsed().as_secs_f64() * 1e3;
    gd.step().block()?;
    let t0 = Instant::now();
    let warm =
        top_hessian_eigenvalues(&gd.model, &sample, &loss, &cfg, Some(&cold.vectors[0])).block()?;
    let warm_ms = t0.elapsed().as_secs_f64() * 1e3;
    out.insert(key("lanczos_cold_hvps"), json!(cold.products));
    out.insert(key("lanczos_cold_ms"), json!(cold_ms));
    out.insert(key("lanczos_warm_hvps"), json!(warm.products));
    out.insert(key("lanczos_warm_ms"), json!(warm_ms));
    out.insert(key("sharpness"), json!(cold.top()));

    progress(&format!("[{prefix}{name}] Jacobian norms of 1000 examples"));
    let big = Sample::new(&data.first(1000), &loss, 1000, device)?;
    let mut jmax = 0.0;
    let jac_ms = time_ms(device, r.clamp(1, 3), || {
        let j = jacobian_spectral_norms(&model, &big).block()?;
        jmax = j.softmax.iter().cloned().fold(0.0, f64::max);
        Ok(())
    })?;
    let grad1000_ms = time_ms(device, r.clamp(1, 3), || {
        loss_and_gradient(
            &model.arch,
            &model.params,
            &big,
            &loss,
            None,
            &mut Bn::Batch,
        )
        .block()
        .map(|_| ())
    })?;
    out.insert(key("jacobian_ms_per_1000"), json!(jac_ms));
    out.insert(key("jacobian_max"), json!(jmax));
    out.insert(key("grad_ms_per_1000"), json!(grad1000_ms));
    out.insert(
        key("jacobian_vs_c_grads"),
        json!(jac_ms / (arch.classes() as f64 * grad1000_ms)),
    );
    Ok(())
}

/// Times every workload on every backend: one JSON object of timings (ms),
/// eigenvalue and Jacobian results, peak memory and the setup. `progress`
/// hears what is being timed.
pub fn bench(args: &BenchOptions, progress: &mut dyn FnMut(&str)) -> Result<Value> {
    if args.repeats == 0 {
        anyhow::bail!("--repeats must be ≥ 1");
    }
    let mlp = Architecture::Mlp(Mlp {
        input_dim: 3072,
        hidden: vec![512, 512],
        classes: 10,
        activation: Activation::Relu,
    });
    let cnn = Architecture::Cnn(Cnn {
        in_channels: 3,
        height: 32,
        width: 32,
        channels: vec![16, 32],
        classes: 10,
        activation: Activation::Relu,
    });
    let mut out = Map::new();
    for &kind in &args.backends {
        let device = backend::device(kind)?;
        // keys for the default CPU backend are unprefixed; others carry the backend name
        let prefix = if kind == BackendKind::Cpu {
            String::new()
        } else {
            format!("{kind}_")
        };
        workload("mlp", &mlp, 256, args, &device, &mut out, &prefix, progress)?;
        workload("cnn", &cnn, 128, args, &device, &mut out, &prefix, progress)?;
    }
    out.insert("peak_rss_mb".into(), json!(peak_rss_mb()));
    out.insert(
        "threads".into(),
        json!(std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)),
    );
    out.insert(
        "backend".into(),
        json!(args
            .backends
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(",")),
    );
    out.insert(
        "data".into(),
        json!(args
            .data
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or("gaussian".into())),
    );
    Ok(Value::Object(out))
}
