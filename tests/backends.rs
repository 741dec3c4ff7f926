//! The CPU (flex) and wgpu backends agree on every measured quantity.
//!
//! Tolerances (f32 on both; different reduction orders): loss 1e-5 relative,
//! gradient 1e-4 relative (norm of the difference), sharpness and Gauss–Newton
//! λ₁ 1e-3 relative, Jacobian norms 1e-4 relative, per example; for an MLP, a
//! CNN and a (narrow) ResNet18 with BatchNorm.
//!
//! The spectrum extras (one measurement with the same probes on both): trace,
//! density moments, per-layer, fold and Gauss–Newton-share values 1e-3
//! relative, the trace's standard error 1e-2, the density on its grid 1e-2
//! of its peak, cost curvature 1e-4, layer masses 1e-2 absolute; all of them
//! for the MLP and the CNN, trace, factors and folds for the ResNet18.
//!
//! Needs a wgpu adapter (here: Mesa's software Vulkan, installed by .ci/run).
//! Set CURVLAB_SKIP_WGPU=1 to skip on a machine without one; otherwise a
//! missing adapter fails the test.

use burn::tensor::Device;
use curvlab::backend::{device, BackendKind};
use curvlab::data::Dataset;
use curvlab::density::integrate;
use curvlab::jacobian::jacobian_spectral_norms;
use curvlab::lanczos::LanczosConfig;
use curvlab::loss::LossConfig;
use curvlab::measure::{MeasureConfig, Measurer};
use curvlab::models::{Activation, Architecture, Bn, Cnn, Mlp, Model, Resnet18};
use curvlab::objective::{flatten_to_host, loss_and_gradient, Sample};
use curvlab::record::{ByName, MetricsRow};
use curvlab::rng::Rng;
use curvlab::sharpness::{top_gauss_newton_eigenvalues, top_hessian_eigenvalues, SharpnessConfig};
use curvlab::train::{OptimConfig, Trainer};
use curvlab::Block;

struct Measured {
    loss: f64,
    grad: Vec<f64>,
    sharpness: f64,
    gn: f64,
    jac: Vec<f64>,
    trained_flat: Vec<f32>,
    trained_buffers: Vec<f32>,
}

fn measure_on(dev: &Device, arch: &Architecture, data: &Dataset, steps: usize) -> Measured {
    let loss = LossConfig {
        label_smoothing: 0.1,
        ..Default::default()
    };
    let model = Model::init(arch, 3, dev).unwrap();
    let sample = Sample::new(data, &loss, 32, dev).unwrap();
    let (l, g) = loss_and_gradient(
        &model.arch,
        &model.params,
        &sample,
        &loss,
        None,
        &mut Bn::Batch,
    )
    .block()
    .unwrap();
    let cfg = SharpnessConfig {
        lanczos: LanczosConfig {
            k: 1,
            tol: 1e-6,
            max_steps: 200,
            min_steps: 2,
        },
        ..Default::default()
    };
    let s = top_hessian_eigenvalues(&model, &sample, &loss, &cfg, None)
        .block()
        .unwrap();
    let gn = top_gauss_newton_eigenvalues(&model, &sample, &loss, &cfg, None)
        .block()
        .unwrap();
    let j = jacobian_spectral_norms(&model, &sample).block().unwrap();
    let mut tr = Trainer::new(
        model,
        data,
        loss,
        OptimConfig {
            lr: 0.1,
            momentum: 0.9,
            batch_size: 16,
            ..Default::default()
        },
        32,
        1,
    )
    .unwrap();
    for _ in 0..steps {
        tr.step().block().unwrap();
    }
    Measured {
        loss: l,
        grad: flatten_to_host(&g).block().unwrap(),
        sharpness: s.top(),
        gn: gn.top(),
        jac: j.softmax,
        trained_flat: tr.model.flat(),
        trained_buffers: tr.model.buffers_to_host().concat(),
    }
}

#[test]
fn cpu_and_wgpu_agree() {
    if std::env::var("CURVLAB_SKIP_WGPU").is_ok_and(|v| v == "1") {
        eprintln!("CURVLAB_SKIP_WGPU=1: skipped");
        return;
    }
    let gpu = device(BackendKind::Wgpu)
        .expect("a wgpu adapter (install mesa-vulkan-drivers, or set CURVLAB_SKIP_WGPU=1)");
    let cpu = device(BackendKind::Cpu).unwrap();
    let mut rng = Rng::new(8);
    let (n, c) = (64, 4);
    for arch in [
        Architecture::Mlp(Mlp {
            input_dim: 48,
            hidden: vec![32, 32],
            classes: c,
            activation: Activation::Relu,
        }),
        Architecture::Cnn(Cnn {
            in_channels: 3,
            height: 4,
            width: 4,
            channels: vec![4],
            classes: c,
            activation: Activation::Tanh,
        }),
        // BatchNorm (train mode over chunks for curvature, eval mode for Jacobians,
        // running statistics updated by the SGD steps), strided and 1×1 convolutions
        Architecture::Resnet18(Resnet18 {
            in_channels: 3,
            height: 8,
            width: 8,
            classes: c,
            base: 2,
        }),
    ] {
        let d = arch.input_len();
        let data = Dataset {
            x: (0..n * d).map(|_| rng.normal() as f32).collect(),
            y: (0..n).map(|i| (i % c) as u32).collect(),
            input_shape: arch.image_shape().map(|s| s.to_vec()).unwrap_or(vec![d]),
            classes: c,
            name: "random".into(),
        };
        // SGD steps compared: with BatchNorm over batches of 16 at η = 0.1, μ = 0.9 this tiny
        // ResNet amplifies f32 rounding differences ~5× per step from the third step on
        // (measured: 1e-5, 2e-2, 1e-1, 3e-1 after 2–5 steps), so it is compared after 2.
        let steps = if arch.has_batch_norm() { 2 } else { 5 };
        let a = measure_on(&cpu, &arch, &data, steps);
        let b = measure_on(&gpu, &arch, &data, steps);
        let rel = |x: f64, y: f64| (x - y).abs() / y.abs().max(1e-12);
        assert!(rel(a.loss, b.loss) < 1e-5, "loss {} vs {}", a.loss, b.loss);
        let gd: f64 = a
            .grad
            .iter()
            .zip(&b.grad)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            .sqrt();
        let gn: f64 = a.grad.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!(gd / gn < 1e-4, "gradient rel diff {}", gd / gn);
        assert!(
            rel(a.sharpness, b.sharpness) < 1e-3,
            "sharpness {} vs {}",
            a.sharpness,
            b.sharpness
        );
        assert!(rel(a.gn, b.gn) < 1e-3, "GN {} vs {}", a.gn, b.gn);
        for (x, y) in a.jac.iter().zip(&b.jac) {
            assert!(rel(*x, *y) < 1e-4, "jacobian {x} vs {y}");
        }
        // the SGD+momentum steps from the same seed agree too (1e-4 of the parameter scale)
        let md = a
            .trained_flat
            .iter()
            .zip(&b.trained_flat)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(md < 1e-4, "trained parameters differ by {md}");
        let bd = a
            .trained_buffers
            .iter()
            .zip(&b.trained_buffers)
            .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
            .fold(0f32, f32::max);
        assert!(bd < 1e-4, "running statistics differ by {bd}");
        println!(
            "{arch:?}: loss {:.3e} sharpness {:.3e}/{:.3e} ok",
            a.loss, a.sharpness, b.sharpness
        );
    }
}

/// One measurement with the extras on; `all`: also density and per-layer
/// (left out for the ResNet, whose 62 blocks would take minutes on a
/// software Vulkan driver).
fn extras_on(dev: &Device, arch: &Architecture, data: &Dataset, all: bool) -> MetricsRow {
    let loss = LossConfig {
        label_smoothing: 0.1,
        ..Default::default()
    };
    let model = Model::init(arch, 3, dev).unwrap();
    let mut cfg = MeasureConfig {
        samples: data.len(),
        chunk: 32,
        jacobian: false,
        bound: false,
        warm_start: false,
        trace: true,
        density: all,
        per_layer: all,
        factors: true,
        folds: true,
        ..Default::default()
    };
    cfg.solver.lanczos.tol = 1e-6;
    cfg.solver.lanczos.max_steps = 200;
    let mut m = Measurer::new(data, None, &loss, &cfg, dev).block().unwrap();
    let mut row = MetricsRow::default();
    m.measure(&model, &mut row).block().unwrap();
    row
}

fn rel(x: f64, y: f64, scale: f64) -> f64 {
    (x - y).abs() / scale.abs().max(1e-12)
}

/// Density moments and ρ of `b` at `a`'s grid points, against `a`'s.
fn compare_density(a: &MetricsRow, b: &MetricsRow, lam: f64) {
    let moments = |r: &MetricsRow| {
        let (g, p) = (
            r.density_grid.as_ref().unwrap(),
            r.density.as_ref().unwrap(),
        );
        (
            integrate(g, p, |t| t),
            integrate(g, p, |t| t * t),
            p.iter().cloned().fold(0.0, f64::max),
        )
    };
    let ((a1, a2, peak), (b1, b2, _)) = (moments(a), moments(b));
    assert!(rel(a1, b1, lam) < 1e-3, "∫λρ {a1} vs {b1}");
    assert!(rel(a2, b2, b2) < 1e-3, "∫λ²ρ {a2} vs {b2}");
    // the grids agree to the nodes' rounding: compare ρ at the first grid's points
    let (ga, pa) = (
        a.density_grid.as_ref().unwrap(),
        a.density.as_ref().unwrap(),
    );
    let (gb, pb) = (
        b.density_grid.as_ref().unwrap(),
        b.density.as_ref().unwrap(),
    );
    let at = |t: f64| {
        let i = gb.partition_point(|&x| x < t).clamp(1, gb.len() - 1);
        let w = ((t - gb[i - 1]) / (gb[i] - gb[i - 1])).clamp(0.0, 1.0);
        pb[i - 1] * (1.0 - w) + pb[i] * w
    };
    let worst = ga
        .iter()
        .zip(pa)
        .map(|(&t, &r)| (r - at(t)).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 1e-2 * peak,
        "density differs by {worst:.3e} (peak {peak:.3e})"
    );
}

fn same_by_name(x: &ByName, y: &ByName, lam: f64, what: &str) {
    assert_eq!(x.0.len(), y.0.len());
    for ((n, u), (_, v)) in x.0.iter().zip(&y.0) {
        assert!(
            rel(*u, *v, v.abs().max(1e-3 * lam)) < 1e-3,
            "{what} {n}: {u} vs {v}"
        );
    }
}

#[test]
fn spectrum_extras_agree_on_cpu_and_wgpu() {
    if std::env::var("CURVLAB_SKIP_WGPU").is_ok_and(|v| v == "1") {
        eprintln!("CURVLAB_SKIP_WGPU=1: skipped");
        return;
    }
    let gpu = device(BackendKind::Wgpu)
        .expect("a wgpu adapter (install mesa-vulkan-drivers, or set CURVLAB_SKIP_WGPU=1)");
    let cpu = device(BackendKind::Cpu).unwrap();
    let mut rng = Rng::new(9);
    let (n, c) = (64, 4);
    for arch in [
        Architecture::Mlp(Mlp {
            input_dim: 48,
            hidden: vec![32, 32],
            classes: c,
            activation: Activation::Relu,
        }),
        Architecture::Cnn(Cnn {
            in_channels: 3,
            height: 4,
            width: 4,
            channels: vec![4],
            classes: c,
            activation: Activation::Tanh,
        }),
        // BatchNorm: train-mode statistics per chunk of the subset and of each fold
        Architecture::Resnet18(Resnet18 {
            in_channels: 3,
            height: 8,
            width: 8,
            classes: c,
            base: 2,
        }),
    ] {
        let d = arch.input_len();
        let data = Dataset {
            x: (0..n * d).map(|_| rng.normal() as f32).collect(),
            y: (0..n).map(|i| (i % c) as u32).collect(),
            input_shape: arch.image_shape().map(|s| s.to_vec()).unwrap_or(vec![d]),
            classes: c,
            name: "random".into(),
        };
        let all = !arch.has_batch_norm();
        let a = extras_on(&cpu, &arch, &data, all);
        let b = extras_on(&gpu, &arch, &data, all);
        let lam = a.sharpness.unwrap();
        let (ta, tb) = (a.trace.unwrap(), b.trace.unwrap());
        assert!(rel(ta, tb, tb) < 1e-3, "trace {ta} vs {tb}");
        let (sa, sb) = (a.trace_se.unwrap(), b.trace_se.unwrap());
        assert!(rel(sa, sb, sb) < 1e-2, "trace se {sa} vs {sb}");
        assert!((a.gn_share.unwrap() - b.gn_share.unwrap()).abs() < 1e-3);
        assert!(
            rel(
                a.residual_curvature.unwrap(),
                b.residual_curvature.unwrap(),
                lam
            ) < 1e-3
        );
        for (x, y) in [
            (a.cost_curvature_max, b.cost_curvature_max),
            (a.cost_curvature_mean, b.cost_curvature_mean),
        ] {
            let (x, y) = (x.unwrap(), y.unwrap());
            assert!(rel(x, y, y) < 1e-4, "cost curvature {x} vs {y}");
        }
        let (fa, fb) = (
            a.sharpness_folds.as_ref().unwrap(),
            b.sharpness_folds.as_ref().unwrap(),
        );
        for (x, y) in fa.iter().zip(fb) {
            assert!(rel(*x, *y, *y) < 1e-3, "fold {x} vs {y}");
        }
        let (ma, mb) = (
            a.top_eigvec_layer_mass.as_ref().unwrap(),
            b.top_eigvec_layer_mass.as_ref().unwrap(),
        );
        for ((n, u), (_, v)) in ma.0.iter().zip(&mb.0) {
            assert!((u - v).abs() < 1e-2, "mass {n}: {u} vs {v}");
        }
        if all {
            compare_density(&a, &b, lam);
            same_by_name(
                a.layer_sharpness.as_ref().unwrap(),
                b.layer_sharpness.as_ref().unwrap(),
                lam,
                "layer",
            );
            same_by_name(
                a.gn_layer_sharpness.as_ref().unwrap(),
                b.gn_layer_sharpness.as_ref().unwrap(),
                lam,
                "GN layer",
            );
        }
        println!(
            "{arch:?}: trace {ta:.4e}/{tb:.4e} (se {sa:.2e}/{sb:.2e}), folds {fa:?}, gn_share {:.4}/{:.4}",
            a.gn_share.unwrap(),
            b.gn_share.unwrap()
        );
    }
}
