//! The benchmark behind `curvlab bench`: times the measurement workloads that
//! matter to users and returns one JSON object of timings (the CLI prints it,
//! or a table). The same workloads are implemented in JAX by
//! `bench/peer_jax.py` (the MLP and the CNN) and in PyTorch by
//! `bench/peer_torch.py` (all of them); `bench/compare.py` runs them
//! alternately.
//!
//! Workloads (softmax cross-entropy, ReLU, f32), on the first CIFAR-10 images
//! of `--data` (or seeded Gaussian CIFAR-shaped inputs when no data is given),
//! selected by name ([`BenchWorkload`]; the default is the quick pair):
//! - `mlp`: MLP 3072-512-512-10, batch 256;
//! - `cnn`: conv3×3(3→16)-ReLU-maxpool-conv3×3(16→32)-ReLU-maxpool-linear(2048→10), batch 128;
//! - `resnet18_wN`, `vgg11bn_wN`: the experiments' models (CIFAR ResNet18 and
//!   VGG11 with BatchNorm, base width N, e.g. 8 and 16).
//!
//! Per `mlp`/`cnn` workload: SGD train step, gradient, HVP (and
//! HVP/gradient), Lanczos to 1e-3 relative accuracy cold (random start,
//! after 50 GD steps at η = 0.02) and warm (previous top eigenvector, one GD
//! step later), exact softmax Jacobian norms of 1,000 examples and, for
//! scale, gradients of those 1,000 examples; then, at the same mid-training
//! point, the spectrum extras with their measurement defaults: the Hutch++
//! trace (30 products), the SLQ density (4 probes × 40 steps), per-layer
//! λ_max (one Lanczos per parameter block, warm from the top eigenvector) and
//! fold sharpness (4 folds, warm from the top eigenvector).
//!
//! Per experiment workload (as a run's training and measurements compute
//! them): the minibatch train step (batch 128, SGD with momentum 0.9 and
//! weight decay 5e-4, BatchNorm in train mode updating its running
//! statistics), the gradient and the HVP of the mean loss over the first 500
//! examples (one chunk, BatchNorm batch statistics), Lanczos to 1e-3 cold
//! (random start) at the point the timed train steps reached and warm (one
//! more step later, from the cold top eigenvector), and the exact softmax
//! Jacobian norms of those 500 examples (BatchNorm running statistics).
//!
//! Every workload also reports its peak resident memory (`_peak_rss_mb`:
//! the process's high-water mark, reset when the workload starts, so it
//! includes what earlier workloads left resident; one workload per process,
//! as `bench/compare.py` runs them, gives a clean figure).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use anyhow::Result;
use burn::tensor::Device;
use curvlab::backend::{self, BackendKind};
use curvlab::data::cifar::{self, CifarOptions};
use curvlab::data::Dataset;
use curvlab::density::{hessian_density, DensityConfig};
use curvlab::folds::{fold_sharpness, Folds};
use curvlab::hvp::{HessianOperator, HvpConfig};
use curvlab::jacobian::jacobian_spectral_norms;
use curvlab::lanczos::LanczosConfig;
use curvlab::layers::layer_sharpness;
use curvlab::loss::LossConfig;
use curvlab::models::{Activation, Architecture, Bn, BnMode, Cnn, Mlp, Model, Resnet18, Vgg11};
use curvlab::objective::{loss_and_gradient, Sample};
use curvlab::rng::Rng;
use curvlab::sharpness::{top_hessian_eigenvalues, SharpnessConfig};
use curvlab::trace::{hutchpp, TraceConfig};
use curvlab::train::{OptimConfig, Trainer};
use curvlab::Block;
use serde_json::{json, Map, Value};

/// One workload of the benchmark, by name: `mlp`, `cnn`, `resnet18_wN` or
/// `vgg11bn_wN` (N ≥ 1, the base width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchWorkload {
    /// The MLP 3072-512-512-10 at batch 256.
    Mlp,
    /// The two-conv CNN at batch 128.
    Cnn,
    /// CIFAR ResNet18 at this base width.
    Resnet18(usize),
    /// VGG11 with BatchNorm at this base width.
    Vgg11Bn(usize),
}

impl BenchWorkload {
    /// What `curvlab bench` runs without `--workloads`: the quick pair.
    pub const DEFAULT: [BenchWorkload; 2] = [BenchWorkload::Mlp, BenchWorkload::Cnn];

    /// Everything `all` selects: the quick pair and the experiments' models
    /// at widths 8 and 16.
    pub const ALL: [BenchWorkload; 6] = [
        BenchWorkload::Mlp,
        BenchWorkload::Cnn,
        BenchWorkload::Resnet18(8),
        BenchWorkload::Vgg11Bn(8),
        BenchWorkload::Resnet18(16),
        BenchWorkload::Vgg11Bn(16),
    ];

    /// Workloads from names (each a workload's name, or `all`), in order,
    /// without repeats.
    pub fn parse_list(names: &[String]) -> Result<Vec<BenchWorkload>> {
        let mut out: Vec<BenchWorkload> = Vec::new();
        for name in names {
            let add: Vec<BenchWorkload> = if name.trim() == "all" {
                Self::ALL.to_vec()
            } else {
                vec![name.parse()?]
            };
            for w in add {
                if !out.contains(&w) {
                    out.push(w);
                }
            }
        }
        if out.is_empty() {
            anyhow::bail!("--workloads is empty (names: mlp, cnn, resnet18_wN, vgg11bn_wN, all)");
        }
        Ok(out)
    }

    /// The architecture on 3×32×32 images with 10 classes.
    pub fn arch(self) -> Architecture {
        match self {
            BenchWorkload::Mlp => Architecture::Mlp(Mlp {
                input_dim: 3072,
                hidden: vec![512, 512],
                classes: 10,
                activation: Activation::Relu,
            }),
            BenchWorkload::Cnn => Architecture::Cnn(Cnn {
                in_channels: 3,
                height: 32,
                width: 32,
                channels: vec![16, 32],
                classes: 10,
                activation: Activation::Relu,
            }),
            BenchWorkload::Resnet18(base) => Architecture::Resnet18(Resnet18 {
                in_channels: 3,
                height: 32,
                width: 32,
                classes: 10,
                base,
            }),
            BenchWorkload::Vgg11Bn(base) => Architecture::Vgg11(Vgg11 {
                in_channels: 3,
                height: 32,
                width: 32,
                classes: 10,
                base,
                batch_norm: true,
            }),
        }
    }
}

impl fmt::Display for BenchWorkload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchWorkload::Mlp => write!(f, "mlp"),
            BenchWorkload::Cnn => write!(f, "cnn"),
            BenchWorkload::Resnet18(w) => write!(f, "resnet18_w{w}"),
            BenchWorkload::Vgg11Bn(w) => write!(f, "vgg11bn_w{w}"),
        }
    }
}

impl FromStr for BenchWorkload {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let width = |rest: &str| -> Option<usize> { rest.parse().ok().filter(|&w| w >= 1) };
        let w = match s {
            "mlp" => Some(BenchWorkload::Mlp),
            "cnn" => Some(BenchWorkload::Cnn),
            _ => {
                if let Some(rest) = s.strip_prefix("resnet18_w") {
                    width(rest).map(BenchWorkload::Resnet18)
                } else if let Some(rest) = s.strip_prefix("vgg11bn_w") {
                    width(rest).map(BenchWorkload::Vgg11Bn)
                } else {
                    None
                }
            }
        };
        w.ok_or_else(|| {
            anyhow::anyhow!(
                "unknown bench workload {s:?} (names: mlp, cnn, resnet18_wN, vgg11bn_wN with a width N ≥ 1, e.g. resnet18_w8, or all)"
            )
        })
    }
}

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
    /// Workloads to time, in order.
    pub workloads: Vec<BenchWorkload>,
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

/// Wall time of one run of `f` in milliseconds, and its result.
fn once_ms<T>(device: &Device, f: impl FnOnce() -> curvlab::Result<T>) -> Result<(T, f64)> {
    let t0 = Instant::now();
    let r = f()?;
    backend::sync(device)?;
    Ok((r, t0.elapsed().as_secs_f64() * 1e3))
}

/// The process's peak resident memory (VmHWM), MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resets the peak resident memory to the current one (Linux ≥ 4.0:
/// `5` to `/proc/self/clear_refs`); false where that is not possible, and
/// the peak then counts from the start of the process.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
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

/// Lanczos for the top eigenvalue to 1e-3 relative residual (2 to 100
/// steps), BatchNorm batch statistics, the default finite differences.
fn top_eigenvalue_config() -> SharpnessConfig {
    SharpnessConfig {
        lanczos: LanczosConfig {
            k: 1,
            tol: 1e-3,
            max_steps: 100,
            min_steps: 2,
        },
        hvp: HvpConfig::default(),
        seed: 0,
        bn_mode: BnMode::Train,
    }
}

/// Median times of the gradient and the HVP of the mean loss over `sample`
/// at `model`'s parameters (BatchNorm batch statistics).
fn time_grad_and_hvp(
    model: &Model,
    sample: &Sample,
    loss: &LossConfig,
    repeats: usize,
    device: &Device,
) -> Result<(f64, f64)> {
    let grad_ms = time_ms(device, repeats, || {
        loss_and_gradient(
            &model.arch,
            &model.params,
            sample,
            loss,
            None,
            &mut Bn::Batch,
        )
        .block()
        .map(|_| ())
    })?;
    let mut op =
        HessianOperator::new(model, BnMode::Train, sample, loss, &HvpConfig::default()).block()?;
    let v = curvlab::objective::unflatten_from_host(
        &Rng::new(1).unit_vector(model.arch.num_params()),
        &model.params,
    );
    let hvp_ms = time_ms(device, repeats, || {
        let _ = op.apply_tensors(&v);
        Ok(())
    })?;
    Ok((grad_ms, hvp_ms))
}

/// Where the keys of one workload go.
struct Keys<'a> {
    out: &'a mut Map<String, Value>,
    prefix: String,
}

impl Keys<'_> {
    fn put(&mut self, k: &str, v: Value) {
        self.out.insert(format!("{}_{k}", self.prefix), v);
    }
}

/// The `mlp` or `cnn` workload (see the module docs).
fn quick_workload(
    arch: &Architecture,
    batch: usize,
    args: &BenchOptions,
    device: &Device,
    keys: &mut Keys,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let loss = LossConfig::default();
    let name = keys.prefix.clone();
    let data = images(&args.data, 1000.max(batch))?;
    let batch_data = data.first(batch);
    let model = Model::init(arch, 0, device)?;
    let sample = Sample::new(&batch_data, &loss, batch, device)?;
    let r = args.repeats;
    progress(&format!("[{name}] timing train step, gradient, HVP"));

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
    let (grad_ms, hvp_ms) = time_grad_and_hvp(&model, &sample, &loss, r, device)?;
    keys.put("train_step_ms", json!(train_ms));
    keys.put("grad_ms", json!(grad_ms));
    keys.put("hvp_ms", json!(hvp_ms));
    keys.put("hvp_grad_ratio", json!(hvp_ms / grad_ms));

    progress(&format!(
        "[{name}] Lanczos cold and warm (after 50 GD steps)"
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
    let cfg = top_eigenvalue_config();
    let (cold, cold_ms) = once_ms(device, || {
        top_hessian_eigenvalues(&gd.model, &sample, &loss, &cfg, None).block()
    })?;
    // the spectrum extras run at θ₅₀, warm-started where a run warm-starts them
    spectrum_extras(
        &gd.model,
        &batch_data,
        &sample,
        &loss,
        &cfg,
        &cold.vectors[0],
        device,
        keys,
        progress,
    )?;
    gd.step().block()?;
    let (warm, warm_ms) = once_ms(device, || {
        top_hessian_eigenvalues(&gd.model, &sample, &loss, &cfg, Some(&cold.vectors[0])).block()
    })?;
    keys.put("lanczos_cold_hvps", json!(cold.products));
    keys.put("lanczos_cold_ms", json!(cold_ms));
    keys.put("lanczos_warm_hvps", json!(warm.products));
    keys.put("lanczos_warm_ms", json!(warm_ms));
    keys.put("sharpness", json!(cold.top()));

    progress(&format!("[{name}] Jacobian norms of 1000 examples"));
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
    keys.put("jacobian_ms_per_1000", json!(jac_ms));
    keys.put("jacobian_max", json!(jmax));
    keys.put("grad_ms_per_1000", json!(grad1000_ms));
    keys.put(
        "jacobian_vs_c_grads",
        json!(jac_ms / (arch.classes() as f64 * grad1000_ms)),
    );
    Ok(())
}

/// Times the spectrum extras once each at `model` on `sample` (`subset`'s
/// examples): Hutch++ trace, SLQ density, per-layer λ_max and fold
/// sharpness, with their measurement defaults; `top` is the whole
/// Hessian's top eigenvector (the per-layer and fold runs start from it,
/// as a run's measurement does).
#[allow(clippy::too_many_arguments)] // one call site
fn spectrum_extras(
    model: &Model,
    subset: &Dataset,
    sample: &Sample,
    loss: &LossConfig,
    cfg: &SharpnessConfig,
    top: &[f64],
    device: &Device,
    keys: &mut Keys,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let name = keys.prefix.clone();
    let p = model.arch.num_params();
    progress(&format!(
        "[{name}] spectrum extras: Hutch++ trace, SLQ density, per-layer, folds"
    ));
    let (trace, trace_ms) = once_ms(device, || {
        let mut op = HessianOperator::new(model, cfg.bn_mode, sample, loss, &cfg.hvp).block()?;
        let mut rng = Rng::derived(cfg.seed, "bench-trace");
        hutchpp(
            |v| op.apply_flat(v),
            p,
            &TraceConfig::default(),
            &mut rng,
            device,
        )
        .block()
    })?;
    keys.put("hutchpp_trace_ms", json!(trace_ms));
    keys.put("hutchpp_trace_products", json!(trace.products));
    keys.put("hutchpp_trace", json!(trace.trace));

    let (density, density_ms) = once_ms(device, || {
        let mut rng = Rng::derived(cfg.seed, "bench-density");
        hessian_density(
            model,
            sample,
            loss,
            cfg,
            &DensityConfig::default(),
            &mut rng,
        )
        .block()
    })?;
    keys.put("slq_density_ms", json!(density_ms));
    keys.put("slq_density_products", json!(density.products));

    let (layers, layers_ms) = once_ms(device, || {
        layer_sharpness(model, sample, loss, cfg, Some(top)).block()
    })?;
    keys.put("layer_sharpness_ms", json!(layers_ms));
    keys.put(
        "layer_sharpness_hvps",
        json!(layers.iter().map(|(_, s)| s.products).sum::<usize>()),
    );
    keys.put("layer_sharpness_blocks", json!(layers.len()));

    let folds = Folds::new(subset, loss, 4, subset.len(), device)?;
    let (f, folds_ms) = once_ms(device, || {
        fold_sharpness(model, &folds, loss, cfg, Some(top)).block()
    })?;
    keys.put("fold_sharpness_ms", json!(folds_ms));
    keys.put("fold_sharpness_hvps", json!(f.products));
    keys.put("fold_sharpness_mean", json!(f.mean));
    Ok(())
}

/// Examples of an experiment workload's gradient, HVP and Jacobians.
const MEASURED: usize = 500;

/// A `resnet18_wN` or `vgg11bn_wN` workload (see the module docs).
fn experiment_workload(
    arch: &Architecture,
    args: &BenchOptions,
    device: &Device,
    keys: &mut Keys,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let loss = LossConfig::default();
    let name = keys.prefix.clone();
    let r = args.repeats;
    let data = images(&args.data, MEASURED)?;
    let model = Model::init(arch, 0, device)?;
    let sample = Sample::new(&data, &loss, MEASURED, device)?;
    keys.put("params", json!(arch.num_params()));
    progress(&format!(
        "[{name}] {} parameters: timing train step (batch 128), gradient and HVP ({MEASURED})",
        arch.num_params()
    ));
    let mut trainer = Trainer::new(
        model.clone(),
        &data,
        loss.clone(),
        OptimConfig {
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            batch_size: 128,
            ..Default::default()
        },
        MEASURED,
        0,
    )?;
    let train_ms = time_ms(device, r, || trainer.step().block().map(|_| ()))?;
    let (grad_ms, hvp_ms) = time_grad_and_hvp(&model, &sample, &loss, r, device)?;
    keys.put("train_step_ms", json!(train_ms));
    keys.put("grad_ms", json!(grad_ms));
    keys.put("hvp_ms", json!(hvp_ms));
    keys.put("hvp_grad_ratio", json!(hvp_ms / grad_ms));

    progress(&format!(
        "[{name}] Lanczos cold (after the {} timed steps) and warm (one step later)",
        r + 1
    ));
    let cfg = top_eigenvalue_config();
    let (cold, cold_ms) = once_ms(device, || {
        top_hessian_eigenvalues(&trainer.model, &sample, &loss, &cfg, None).block()
    })?;
    trainer.step().block()?;
    let (warm, warm_ms) = once_ms(device, || {
        top_hessian_eigenvalues(&trainer.model, &sample, &loss, &cfg, Some(&cold.vectors[0]))
            .block()
    })?;
    keys.put("lanczos_cold_hvps", json!(cold.products));
    keys.put("lanczos_cold_ms", json!(cold_ms));
    keys.put("lanczos_warm_hvps", json!(warm.products));
    keys.put("lanczos_warm_ms", json!(warm_ms));
    keys.put("sharpness", json!(cold.top()));

    progress(&format!("[{name}] Jacobian norms of {MEASURED} examples"));
    let mut jmax = 0.0;
    let jac_ms = time_ms(device, r.clamp(1, 3), || {
        let j = jacobian_spectral_norms(&trainer.model, &sample).block()?;
        jmax = j.softmax.iter().cloned().fold(0.0, f64::max);
        Ok(())
    })?;
    keys.put("jacobian_ms_per_500", json!(jac_ms));
    keys.put("jacobian_max", json!(jmax));
    Ok(())
}

/// Times every workload on every backend: one JSON object of timings (ms),
/// eigenvalue and Jacobian results, peak memory and the setup. `progress`
/// hears what is being timed.
pub fn bench(args: &BenchOptions, progress: &mut dyn FnMut(&str)) -> Result<Value> {
    if args.repeats == 0 {
        anyhow::bail!("--repeats must be ≥ 1");
    }
    if args.workloads.is_empty() {
        anyhow::bail!("no workload to time");
    }
    let mut out = Map::new();
    let resettable = reset_peak_rss();
    for &kind in &args.backends {
        let device = backend::device(kind)?;
        // keys for the default CPU backend are unprefixed; others carry the backend name
        let prefix = if kind == BackendKind::Cpu {
            String::new()
        } else {
            format!("{kind}_")
        };
        for &w in &args.workloads {
            reset_peak_rss();
            let t0 = Instant::now();
            let mut keys = Keys {
                out: &mut out,
                prefix: format!("{prefix}{w}"),
            };
            match w {
                BenchWorkload::Mlp => {
                    quick_workload(&w.arch(), 256, args, &device, &mut keys, progress)?
                }
                BenchWorkload::Cnn => {
                    quick_workload(&w.arch(), 128, args, &device, &mut keys, progress)?
                }
                BenchWorkload::Resnet18(_) | BenchWorkload::Vgg11Bn(_) => {
                    experiment_workload(&w.arch(), args, &device, &mut keys, progress)?
                }
            }
            keys.put("peak_rss_mb", json!(peak_rss_mb()));
            keys.put("wall_s", json!(t0.elapsed().as_secs_f64()));
        }
    }
    out.insert("peak_rss_mb".into(), json!(peak_rss_mb()));
    out.insert("peak_rss_reset_per_workload".into(), json!(resettable));
    out.insert(
        "workloads".into(),
        json!(args
            .workloads
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()),
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_names_round_trip_and_bad_names_are_refused() {
        for w in BenchWorkload::ALL {
            assert_eq!(w.to_string().parse::<BenchWorkload>().unwrap(), w);
        }
        assert_eq!(
            "resnet18_w4".parse::<BenchWorkload>().unwrap(),
            BenchWorkload::Resnet18(4)
        );
        for bad in [
            "resnet18_w0",
            "resnet18_w",
            "vgg11_w8",
            "MLP",
            "",
            "vgg11bn_w-1",
        ] {
            let e = bad.parse::<BenchWorkload>().unwrap_err().to_string();
            assert!(e.contains("unknown bench workload"), "{bad}: {e}");
        }
        let l = BenchWorkload::parse_list(&["cnn".into(), "all".into()]).unwrap();
        assert_eq!(l[0], BenchWorkload::Cnn);
        assert_eq!(l.len(), BenchWorkload::ALL.len());
        assert!(BenchWorkload::parse_list(&[]).is_err());
    }

    #[test]
    fn experiment_workload_reports_every_key() {
        // width 1: the same code path as width 8 at a fraction of the cost
        let args = BenchOptions {
            data: None,
            backends: vec![BackendKind::Cpu],
            repeats: 1,
            workloads: vec![BenchWorkload::Vgg11Bn(1)],
        };
        let obj = bench(&args, &mut |_| {}).unwrap();
        for k in [
            "train_step_ms",
            "grad_ms",
            "hvp_ms",
            "hvp_grad_ratio",
            "lanczos_cold_ms",
            "lanczos_warm_ms",
            "jacobian_ms_per_500",
            "peak_rss_mb",
        ] {
            let v = obj[format!("vgg11bn_w1_{k}")].as_f64().unwrap();
            assert!(v.is_finite() && v > 0.0, "{k} = {v}");
        }
        for k in ["lanczos_cold_hvps", "lanczos_warm_hvps"] {
            let n = obj[format!("vgg11bn_w1_{k}")].as_u64().unwrap();
            assert!((2..=100).contains(&n), "{k} = {n}");
        }
        assert_eq!(
            obj["vgg11bn_w1_params"].as_u64().unwrap() as usize,
            BenchWorkload::Vgg11Bn(1).arch().num_params()
        );
        assert_eq!(obj["workloads"], json!(["vgg11bn_w1"]));
    }
}
