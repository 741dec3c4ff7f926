//! VGG11 (±BatchNorm) and ResNet18: shapes and parameter counts against
//! torchvision's, PyTorch-layout weights, and every curvature / Jacobian
//! measurement against the independent float64 reference of
//! tests/common/deep.rs (hyper-dual numbers: exact directional derivatives),
//! in BatchNorm train mode (batch statistics of the chunk) and eval mode
//! (running statistics). Also: training updates running statistics as PyTorch
//! does, and measuring never does.

#[path = "common/deep.rs"]
mod deep;
#[path = "common/reference.rs"]
mod reference;

use burn::tensor::{Device, Tensor, TensorData};
use curvlab::backend::tensor_to_vec;
use curvlab::data::Dataset;
use curvlab::hvp::{HessianOperator, HvpConfig};
use curvlab::jacobian::jacobian_spectral_norms;
use curvlab::lanczos::LanczosConfig;
use curvlab::linalg::dot;
use curvlab::loss::LossConfig;
use curvlab::models::{Architecture, Bn, BnMode, Model, Resnet18, Vgg11};
use curvlab::objective::{flatten_to_host, loss_and_gradient, Sample};
use curvlab::rng::Rng;
use curvlab::sharpness::{top_gauss_newton_eigenvalues, top_hessian_eigenvalues, SharpnessConfig};
use curvlab::train::{OptimConfig, Trainer};
use curvlab::Block;
use deep::DeepProblem;
use reference::spectral_norm;

fn vgg(base: usize, batch_norm: bool) -> Architecture {
    Architecture::Vgg11(Vgg11 {
        in_channels: 3,
        height: 32,
        width: 32,
        classes: 3,
        base,
        batch_norm,
    })
}

fn resnet(base: usize, side: usize) -> Architecture {
    Architecture::Resnet18(Resnet18 {
        in_channels: 3,
        height: side,
        width: side,
        classes: 3,
        base,
    })
}

fn data(arch: &Architecture, n: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let d = arch.input_len();
    let c = arch.classes();
    Dataset {
        x: (0..n * d).map(|_| rng.normal() as f32).collect(),
        y: (0..n).map(|i| (i % c) as u32).collect(),
        input_shape: arch.image_shape().unwrap().to_vec(),
        classes: c,
        name: "random".into(),
    }
}

/// Random positive running statistics (eval mode), set on the model.
fn random_running(model: &mut Model, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = Rng::new(seed);
    let dev = model.device();
    let host: Vec<Vec<f64>> = model
        .arch
        .batch_norm_layers()
        .iter()
        .flat_map(|(_, c)| {
            let m: Vec<f64> = (0..*c).map(|_| 0.3 * rng.normal()).collect();
            let v: Vec<f64> = (0..*c).map(|_| 0.5 + rng.uniform()).collect();
            [m, v]
        })
        .collect();
    model.buffers = host
        .iter()
        .map(|b| {
            let f: Vec<f32> = b.iter().map(|&x| x as f32).collect();
            Tensor::<1>::from_data(TensorData::new(f.clone(), [f.len()]), &dev)
        })
        .collect();
    // the reference sees exactly the f32 values curvlab uses
    host.iter()
        .map(|b| b.iter().map(|&x| x as f32 as f64).collect())
        .collect()
}

fn rel(a: f64, b: f64, scale: f64) -> f64 {
    (a - b).abs() / scale.abs().max(1e-12)
}

/// HVPs, the gradient, the loss, and the top Hessian and Gauss–Newton
/// eigenpairs, against exact hyper-dual values, in both BatchNorm modes.
fn check_curvature(arch: Architecture, n: usize, seed: u64) {
    let dev = Device::flex();
    let ds = data(&arch, n, seed);
    let loss = LossConfig::default();
    let mut model = Model::init(&arch, seed, &dev).unwrap();
    let running = random_running(&mut model, seed + 100);
    // one chunk: train-mode BatchNorm statistics over the whole sample, as the reference
    let sample = Sample::new(&ds, &loss, n, &dev).unwrap();
    let theta: Vec<f64> = model.flat().into_iter().map(f64::from).collect();
    let p = theta.len();
    for mode in [BnMode::Train, BnMode::Eval] {
        let reference = DeepProblem {
            arch: arch.clone(),
            theta: theta.clone(),
            running: (mode == BnMode::Eval).then(|| running.clone()),
            x: ds.x.iter().map(|&v| v as f64).collect(),
            t: loss.targets(&ds.y, 3).into_iter().map(f64::from).collect(),
            n,
            kind: loss.kind,
        };
        let buffers = model.buffers.clone();
        let mut bn = match mode {
            BnMode::Train => Bn::Batch,
            BnMode::Eval => Bn::Running(&buffers),
        };
        let (l, g) = loss_and_gradient(&model.arch, &model.params, &sample, &loss, None, &mut bn)
            .block()
            .unwrap();
        let g = flatten_to_host(&g).block().unwrap();
        let exact_loss = reference.loss();
        assert!(
            rel(l, exact_loss, exact_loss) < 1e-5,
            "{mode:?} loss {l} vs {exact_loss}"
        );
        let mut rng = Rng::new(seed + 7);
        let gnorm = dot(&g, &g).sqrt();
        for _ in 0..2 {
            let u = rng.unit_vector(p);
            let (_, gu) = reference.bilinear(&u, &u);
            let err = (dot(&g, &u) - gu).abs() / gnorm;
            println!("{arch:?} {mode:?}: ∇ℓ·u rel err {err:.2e}");
            assert!(err < 1e-4, "{mode:?} gradient: {err}");
        }
        let mut op = HessianOperator::new(&model, mode, &sample, &loss, &HvpConfig::default())
            .block()
            .unwrap();
        let v = rng.unit_vector(p);
        let hv = op.apply(&v).block().unwrap();
        let hv_norm = dot(&hv, &hv).sqrt();
        for _ in 0..3 {
            let u = rng.unit_vector(p);
            let (exact, _) = reference.bilinear(&u, &v);
            let err = (dot(&u, &hv) - exact).abs() / hv_norm;
            println!(
                "{arch:?} {mode:?}: uᵀHv {:.6e} exact {exact:.6e} err/‖Hv‖ {err:.2e}",
                dot(&u, &hv)
            );
            assert!(err < 2e-3, "{mode:?} HVP: {err}");
        }
        let (vhv, _) = reference.bilinear(&v, &v);
        assert!((dot(&v, &hv) - vhv).abs() / hv_norm < 2e-3, "{mode:?} vᵀHv");

        let cfg = SharpnessConfig {
            lanczos: LanczosConfig {
                k: 1,
                tol: 1e-4,
                max_steps: 120,
                min_steps: 2,
            },
            bn_mode: mode,
            ..Default::default()
        };
        let s = top_hessian_eigenvalues(&model, &sample, &loss, &cfg, None)
            .block()
            .unwrap();
        let u = &s.vectors[0];
        let (rayleigh, _) = reference.bilinear(u, u);
        println!(
            "{arch:?} {mode:?}: λ_max {:.6e} (residual {:.1e}, {} HVPs), exact uᵀHu {rayleigh:.6e}",
            s.top(),
            s.residuals[0],
            s.products
        );
        assert!(s.residuals[0] < 1e-2 * s.top().abs(), "{mode:?} residual");
        assert!(
            rel(s.top(), rayleigh, s.top()) < 2e-3,
            "{mode:?} sharpness vs exact Rayleigh quotient"
        );
        let gn = top_gauss_newton_eigenvalues(&model, &sample, &loss, &cfg, None)
            .block()
            .unwrap();
        assert!(
            gn.top() > 0.0 && gn.residuals[0] < 1e-2 * gn.top(),
            "{mode:?} GN"
        );
    }
    // nothing measured above touched the running statistics
    let after: Vec<Vec<f64>> = model
        .buffers_to_host()
        .iter()
        .map(|b| b.iter().map(|&x| x as f64).collect())
        .collect();
    assert_eq!(
        after, running,
        "a measurement changed the running statistics"
    );
}

#[test]
fn vgg11_bn_curvature_matches_exact_reference() {
    check_curvature(vgg(2, true), 6, 1);
}

#[test]
fn vgg11_curvature_matches_exact_reference() {
    check_curvature(vgg(2, false), 5, 2);
}

#[test]
fn resnet18_curvature_matches_exact_reference() {
    check_curvature(resnet(2, 16), 8, 3);
}

/// Exact input Jacobians in eval mode (running statistics), every example.
#[test]
fn deep_jacobian_norms_match_exact_reference() {
    let dev = Device::flex();
    for (arch, seed) in [(resnet(2, 8), 4u64), (vgg(1, true), 5)] {
        let n = 3;
        let ds = data(&arch, n, seed);
        let mut model = Model::init(&arch, seed, &dev).unwrap();
        let running = random_running(&mut model, seed);
        let sample = Sample::new(&ds, &LossConfig::default(), n, &dev).unwrap();
        let j = jacobian_spectral_norms(&model, &sample).block().unwrap();
        let reference = DeepProblem {
            arch: arch.clone(),
            theta: model.flat().into_iter().map(f64::from).collect(),
            running: Some(running),
            x: ds.x.iter().map(|&v| v as f64).collect(),
            t: vec![0.0; n * 3],
            n,
            kind: LossConfig::default().kind,
        };
        for i in 0..n {
            let exact = spectral_norm(&reference.logit_jacobian(i), 3, arch.input_len());
            println!(
                "{arch:?} example {i}: ‖J‖ {:.6e} exact {exact:.6e}",
                j.logit[i]
            );
            assert!(rel(j.logit[i], exact, exact) < 1e-4, "example {i}");
        }
    }
}

/// One GD step on one chunk updates the running statistics as PyTorch's
/// BatchNorm2d (momentum 0.1, unbiased batch variance) and counts the update.
#[test]
fn training_updates_running_statistics_like_pytorch() {
    let dev = Device::flex();
    let arch = resnet(1, 8);
    let n = 4;
    let ds = data(&arch, n, 9);
    let model = Model::init(&arch, 9, &dev).unwrap();
    // stem conv output by hand (f64): conv1 has no bias, 3×3, padding 1
    let w = tensor_to_vec(&model.params[0]);
    let (side, ci) = (8usize, 3usize);
    let mut out = Vec::new();
    for b in 0..n {
        for i in 0..side {
            for j in 0..side {
                let mut s = 0.0f64;
                for c in 0..ci {
                    for di in 0..3 {
                        for dj in 0..3 {
                            let (ii, jj) =
                                (i as isize + di as isize - 1, j as isize + dj as isize - 1);
                            if ii >= 0 && jj >= 0 && ii < side as isize && jj < side as isize {
                                s += w[(c * 3 + di) * 3 + dj] as f64
                                    * ds.x[((b * ci + c) * side + ii as usize) * side + jj as usize]
                                        as f64;
                            }
                        }
                    }
                }
                out.push(s);
            }
        }
    }
    let m = out.len() as f64;
    let mean = out.iter().sum::<f64>() / m;
    let var_unbiased = out.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1.0);
    let mut tr = Trainer::new(
        model,
        &ds,
        LossConfig::default(),
        OptimConfig {
            lr: 0.1,
            ..Default::default()
        },
        n,
        0,
    )
    .unwrap();
    tr.step().block().unwrap();
    let buf = tr.model.buffers_to_host();
    assert!(
        (buf[0][0] as f64 - 0.1 * mean).abs() < 1e-5,
        "running mean {} vs {}",
        buf[0][0],
        0.1 * mean
    );
    assert!(
        (buf[1][0] as f64 - (0.9 + 0.1 * var_unbiased)).abs() < 1e-4,
        "running var {} vs {}",
        buf[1][0],
        0.9 + 0.1 * var_unbiased
    );
    assert_eq!(tr.model.bn_updates, 1);
}
