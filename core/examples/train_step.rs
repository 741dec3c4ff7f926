//! Times curvlab's own CPU workloads (flex backend): the SGD train step
//! (momentum 0.9, weight decay 5e-4, BatchNorm in train mode updating its
//! running statistics) of ResNet18 and VGG11-BN at width 8 on 3×32×32
//! images, 10 classes, batch 128; the gradient and the finite-difference
//! HVP over 500 examples (one chunk, BatchNorm batch statistics, as a
//! sharpness measurement computes them); and the MLP 3072-512-512-10 train
//! step at batch 256 (plain SGD, as `curvlab bench`) with its gradient and
//! HVP over those 256 examples.
//!
//! Inputs are the real CIFAR-10 subset when `--data DIR` (default
//! `../shared/data/cifar10-5k`) holds it, else seeded Gaussian images. Each
//! quantity is the median of `--repeats` runs (default 7) after two warm-up
//! runs; all workloads of a round run before the next round starts, so a
//! change in the machine's load spreads over all of them.
//!
//! `cargo run --release --example train_step -- [--data DIR] [--repeats R]
//! [--only resnet,vgg,mlp] [--filter TEXT]` (`--filter`: only the workloads
//! whose name contains TEXT, e.g. "train step", "HVP"). `--compare` runs
//! every workload twice per round, with burn's ops and with curvlab's
//! kernels ([`curvlab::kernels::set_enabled`]), and prints both.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use curvlab::backend::tensor_to_vec;
use curvlab::data::cifar::{load_train, CifarOptions};
use curvlab::data::Dataset;
use curvlab::hvp::{HessianOperator, HvpConfig};
use curvlab::loss::LossConfig;
use curvlab::models::{Activation, Architecture, Bn, BnMode, Mlp, Model, Resnet18, Vgg11};
use curvlab::objective::{loss_and_gradient_tensors, Sample};
use curvlab::rng::Rng;
use curvlab::train::{OptimConfig, Trainer};
use curvlab::Block;

/// A workload: a name and one timed run.
struct Workload {
    name: String,
    run: Box<dyn FnMut()>,
}

/// CPU time of the whole process (all threads), ms.
fn cpu_ms() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 * 1e-6
}

/// Wall-clock and CPU milliseconds of one variant's runs.
#[derive(Clone, Default)]
struct Times {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

fn gaussian(n: usize, d: usize, classes: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    Dataset {
        x: (0..n * d).map(|_| rng.normal() as f32).collect(),
        y: (0..n).map(|i| (i % classes) as u32).collect(),
        input_shape: vec![3, 32, 32],
        classes,
        name: "gaussian".into(),
    }
}

/// Forces every value of `ts` (flex is eager; this also reads them back, as
/// a consumer of the result would).
fn settle(ts: &[Tensor<1>]) {
    let s: Vec<Tensor<1>> = ts.iter().map(|t| t.clone().sum()).collect();
    let _ = tensor_to_vec(&Tensor::cat(s, 0));
}

fn sgd(batch: usize, momentum: f64, weight_decay: f64) -> OptimConfig {
    OptimConfig {
        lr: 0.01,
        momentum,
        weight_decay,
        batch_size: batch,
        ..OptimConfig::default()
    }
}

/// The train-step, gradient and HVP workloads of one model: the step at
/// batch `batch` with `optim`, the gradient and the HVP over the first
/// `measured` examples (one chunk).
fn workloads(
    label: &str,
    arch: Architecture,
    data: &Dataset,
    optim: OptimConfig,
    measured: usize,
    dev: &Device,
) -> Vec<Workload> {
    let loss = LossConfig::default();
    let model = Model::init(&arch, 0, dev).unwrap();
    println!("{label}: {} parameters", arch.num_params());
    let batch = optim.batch_size;
    let mut trainer = Trainer::new(model.clone(), data, loss.clone(), optim, 1000, 0).unwrap();
    let sample: &'static Sample = Box::leak(Box::new(
        Sample::new(&data.first(measured), &loss, 1000, dev).unwrap(),
    ));
    let model: &'static Model = Box::leak(Box::new(model));
    let loss: &'static LossConfig = Box::leak(Box::new(loss));
    let params = model.params.clone();
    let grad = {
        let params = params.clone();
        move || {
            let (l, g) =
                loss_and_gradient_tensors(&model.arch, &params, sample, loss, None, &mut Bn::Batch);
            settle(&g);
            let _ = tensor_to_vec(&l);
        }
    };
    let mut op = HessianOperator::new(model, BnMode::Train, sample, loss, &HvpConfig::default())
        .block()
        .unwrap();
    let mut rng = Rng::new(3);
    let v: Vec<Tensor<1>> = params
        .iter()
        .map(|p| {
            let n = p.dims()[0];
            let x: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
            Tensor::from_data(TensorData::new(x, [n]), dev)
        })
        .collect();
    let hvp = move || settle(&op.apply_tensors(&v));
    vec![
        Workload {
            name: format!("{label} train step (batch {batch})"),
            run: Box::new(move || {
                trainer.step().block().unwrap();
            }),
        },
        Workload {
            name: format!("{label} gradient ({measured})"),
            run: Box::new(grad),
        },
        Workload {
            name: format!("{label} HVP ({measured})"),
            run: Box::new(hvp),
        },
    ]
}

/// The image models' workloads: SGD with momentum 0.9 and weight decay
/// 5e-4 at batch 128; gradient and HVP over 500 examples.
fn image_workloads(label: &str, arch: Architecture, data: &Dataset, dev: &Device) -> Vec<Workload> {
    workloads(label, arch, data, sgd(128, 0.9, 5e-4), 500, dev)
}

/// The benchmark MLP's (as `curvlab bench`): plain SGD at batch 256;
/// gradient and HVP over the same 256 examples.
fn mlp_workloads(data: &Dataset, dev: &Device) -> Vec<Workload> {
    let arch = Architecture::Mlp(Mlp {
        input_dim: 3072,
        hidden: vec![512, 512],
        classes: 10,
        activation: Activation::Relu,
    });
    let mut data = data.first(256);
    data.input_shape = vec![3072];
    workloads("MLP", arch, &data, sgd(256, 0.0, 0.0), 256, dev)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut data_dir = PathBuf::from("../shared/data/cifar10-5k");
    let mut repeats = 7;
    let mut only = "resnet,vgg,mlp".to_string();
    let mut filter = String::new();
    let mut compare = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => data_dir = args.next().expect("--data DIR").into(),
            "--repeats" => repeats = args.next().expect("--repeats R").parse().unwrap(),
            "--only" => only = args.next().expect("--only LIST"),
            "--filter" => filter = args.next().expect("--filter TEXT"),
            "--compare" => compare = true,
            o => panic!("unknown argument {o}"),
        }
    }
    let dev = Device::flex();
    let data = match load_train(&data_dir, &CifarOptions::default()) {
        Ok(d) => {
            println!("data: {} ({} examples)", data_dir.display(), d.len());
            d
        }
        Err(e) => {
            println!("data: Gaussian images ({e})");
            gaussian(1024, 3072, 10, 1)
        }
    };
    let image = |base: usize, vgg: bool| {
        if vgg {
            Architecture::Vgg11(Vgg11 {
                in_channels: 3,
                height: 32,
                width: 32,
                classes: 10,
                base,
                batch_norm: true,
            })
        } else {
            Architecture::Resnet18(Resnet18 {
                in_channels: 3,
                height: 32,
                width: 32,
                classes: 10,
                base,
            })
        }
    };
    let mut work = Vec::new();
    for what in only.split(',') {
        match what {
            "resnet" => work.extend(image_workloads("ResNet18-w8", image(8, false), &data, &dev)),
            "vgg" => work.extend(image_workloads("VGG11-BN-w8", image(8, true), &data, &dev)),
            "mlp" => work.extend(mlp_workloads(&data, &dev)),
            o => panic!("unknown workload {o} (resnet, vgg, mlp)"),
        }
    }
    work.retain(|w| w.name.contains(&filter));
    // with --compare, each workload runs with burn's ops, then the kernels
    let variants: &[bool] = if compare { &[false, true] } else { &[true] };
    let mut times = vec![[Times::default(), Times::default()]; work.len()];
    for round in 0..repeats + 2 {
        for (i, w) in work.iter_mut().enumerate() {
            for &on in variants {
                curvlab::kernels::set_enabled(on);
                let (t, c) = (Instant::now(), cpu_ms());
                (w.run)();
                let (wall, cpu) = (t.elapsed().as_secs_f64() * 1e3, cpu_ms() - c);
                if round >= 2 {
                    times[i][usize::from(on)].wall.push(wall);
                    times[i][usize::from(on)].cpu.push(cpu);
                }
            }
        }
    }
    let show = |t: &Times| {
        let (lo, hi) = t
            .wall
            .iter()
            .fold((f64::MAX, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
        format!(
            "{:>8.1} ({lo:.1}–{hi:.1}) cpu {:>8.1}",
            median(&t.wall),
            median(&t.cpu)
        )
    };
    println!("median of {repeats} runs, ms: wall (min–max), process CPU time");
    if compare {
        println!(
            "  {:<36} {:<36} {:<36} new/old wall, cpu",
            "", "burn ops", "kernels"
        );
    }
    for (w, [off, on]) in work.iter().zip(&times) {
        if compare {
            println!(
                "  {:<36} {:<36} {:<36} {:.2}, {:.2}",
                w.name,
                show(off),
                show(on),
                median(&on.wall) / median(&off.wall),
                median(&on.cpu) / median(&off.cpu)
            );
        } else {
            println!("  {:<36} {}", w.name, show(on));
        }
    }
}
