//! The core's numbers on wasm32 equal the native ones.
//!
//! [`probe`] computes a set of numbers with the core: random streams, the
//! synthetic and toy data, CIFAR parsing, δ(N, ε), Lanczos on a fixed matrix,
//! the minimum inter-class distance, and two short runs (every measurement
//! row field: losses, accuracies, sharpness, Gauss–Newton, Jacobian norms,
//! bound) — GD with the square loss on synthetic data, and SGD with momentum,
//! weight decay, cross-entropy and label smoothing on the toy set — and a
//! third short run with every spectrum extra on (Hutch++ trace, SLQ density
//! moments, per-layer Hessian and Gauss–Newton λ_max, the mediating factors,
//! fold sharpness). All run on burn's CPU backend (`flex`).
//!
//! `tests/golden/core_numeric.json` holds the native results. Natively this
//! test checks that the native numbers still match them (after a deliberate
//! change to the core, regenerate with `CURVLAB_BLESS=1 cargo test --release
//! -p curvlab-web --test wasm_numeric`); on wasm32 (under node, through
//! wasm-bindgen-test-runner; see scripts/web-test.sh) it checks the wasm
//! numbers against the same file. The tolerance of each group is stated in
//! [`tolerance`].

use std::path::Path;

use burn::tensor::Device;
use curvlab::bound::{delta_cube, delta_sphere, ln_gamma, min_interclass_distance};
use curvlab::data::cifar::{parse_records, CifarOptions};
use curvlab::data::synthetic::{self, SyntheticConfig};
use curvlab::data::toy::{self, ToyConfig};
use curvlab::data::Dataset;
use curvlab::density::{integrate, DensityConfig};
use curvlab::experiment::{DataConfig, Event, ModelConfig, Run, RunConfig};
use curvlab::lanczos::{top_eigenpairs, LanczosConfig};
use curvlab::linalg::{matvec, symmetric_eigenvalues};
use curvlab::loss::{LossConfig, LossKind};
use curvlab::measure::MeasureConfig;
use curvlab::models::Activation;
use curvlab::record::{ByName, MetricsRow};
use curvlab::rng::Rng;
use curvlab::trace::TraceConfig;
use curvlab::train::OptimConfig;

/// One named group of numbers.
type Group = (String, Vec<f64>);

/// Allowed difference for a group: |a − b| ≤ abs + rel·|b|.
///
/// - host f64 arithmetic (rng, data, δ, Lanczos on a matrix): bitwise up to
///   libm differences between the native C library and Rust's wasm libm
///   (last-place errors of exp/ln/sin/cos/pow), so 1e-12 relative;
/// - f32 tensor work on flex (losses, Jacobian norms, distances, training):
///   SIMD widths and reduction orders differ between x86-64 and wasm, so
///   2e-4 relative (a few hundred f32 ulps after a few steps of training);
/// - eigenvalues from finite-difference HVPs: the same, plus the Lanczos
///   tolerance (1e-3 relative residual), so 2e-3 relative; residuals
///   themselves are near zero and compared in absolute terms (1e-2·λ-scale);
/// - the spectrum extras (estimates built from the same finite-difference
///   HVPs with the same seeded probes): 2e-3 relative, as eigenvalues; the
///   trace's standard error and the residual curvature uᵀ(H − G)u, which
///   are small differences of such numbers (each ≈ 0.5 here), 2e-3 absolute
///   plus 1e-2 relative.
fn tolerance(group: &str) -> (f64, f64) {
    if let Some(key) = group.strip_prefix("run.spectrum.") {
        if key == "step" {
            (0.0, 0.0)
        } else if key == "trace_se" || key == "residual_curvature" {
            (2e-3, 1e-2)
        } else {
            (1e-6, 2e-3)
        }
    } else if group.starts_with("run.") {
        if group.ends_with(".sharpness") || group.ends_with(".gn_sharpness") {
            (1e-6, 2e-3)
        } else if group.ends_with(".sharpness_residual") {
            (5e-2, 0.0)
        } else {
            (1e-6, 2e-4)
        }
    } else if group == "interclass" {
        (1e-6, 2e-5)
    } else {
        (1e-300, 1e-12)
    }
}

fn split_u64(x: u64) -> [f64; 2] {
    [(x >> 32) as f64, (x & 0xffff_ffff) as f64]
}

fn summary(x: &[f32]) -> Vec<f64> {
    let sum: f64 = x.iter().map(|&v| v as f64).sum();
    let sq: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let mut out = vec![sum, sq];
    out.extend(x.iter().take(6).map(|&v| v as f64));
    out
}

fn labels(d: &Dataset) -> Vec<f64> {
    d.y.iter().map(|&y| y as f64).collect()
}

/// Fields of the measurement rows of a run, one group per field.
fn row_groups(prefix: &str, rows: &[MetricsRow]) -> Vec<Group> {
    type Get = fn(&MetricsRow) -> Option<f64>;
    let fields: [(&str, Get); 14] = [
        ("train_loss", |r| r.train_loss),
        ("train_loss_kl", |r| r.train_loss_kl),
        ("test_loss", |r| r.test_loss),
        ("train_acc", |r| r.train_acc),
        ("test_acc", |r| r.test_acc),
        ("sharpness", |r| r.sharpness),
        ("sharpness_residual", |r| r.sharpness_residual),
        ("gn_sharpness", |r| r.gn_sharpness),
        ("jac_softmax_max", |r| r.jac_softmax_max),
        ("jac_softmax_mean", |r| r.jac_softmax_mean),
        ("jac_logit_max", |r| r.jac_logit_max),
        ("jac_logit_mean", |r| r.jac_logit_mean),
        ("jac_logit_q90", |r| r.jac_logit_q90),
        ("bound_b", |r| r.bound_b),
    ];
    let mut out = vec![(
        format!("{prefix}.step"),
        rows.iter().map(|r| r.step as f64).collect(),
    )];
    for (name, get) in fields {
        out.push((
            format!("{prefix}.{name}"),
            rows.iter().map(|r| get(r).unwrap_or(f64::NAN)).collect(),
        ));
    }
    out
}

/// The spectrum extras of a run's measurement rows: one group per scalar
/// key, per named block (`layer_sharpness.NAME`), the fold eigenvalues, and
/// the density's first three moments ∫λᵏρ(λ)dλ, k = 0, 1, 2 (the density on
/// its grid is compared through them: its grid follows the extreme Ritz
/// values, so points move with them).
fn spectrum_groups(prefix: &str, rows: &[MetricsRow]) -> Vec<Group> {
    type Get = fn(&MetricsRow) -> Option<f64>;
    let scalars: [(&str, Get); 8] = [
        ("trace", |r| r.trace),
        ("trace_se", |r| r.trace_se),
        ("cost_curvature_max", |r| r.cost_curvature_max),
        ("cost_curvature_mean", |r| r.cost_curvature_mean),
        ("gn_share", |r| r.gn_share),
        ("residual_curvature", |r| r.residual_curvature),
        ("sharpness_fold_mean", |r| r.sharpness_fold_mean),
        ("sharpness_fold_sd", |r| r.sharpness_fold_sd),
    ];
    let mut out = vec![(
        format!("{prefix}.step"),
        rows.iter().map(|r| r.step as f64).collect(),
    )];
    for (name, get) in scalars {
        out.push((
            format!("{prefix}.{name}"),
            rows.iter().map(|r| get(r).unwrap_or(f64::NAN)).collect(),
        ));
    }
    type Named = fn(&MetricsRow) -> Option<&ByName>;
    let named: [(&str, Named); 3] = [
        ("layer_sharpness", |r| r.layer_sharpness.as_ref()),
        ("gn_layer_sharpness", |r| r.gn_layer_sharpness.as_ref()),
        ("top_eigvec_layer_mass", |r| {
            r.top_eigvec_layer_mass.as_ref()
        }),
    ];
    for (key, get) in named {
        let names: Vec<String> = rows
            .iter()
            .find_map(get)
            .map(|b| b.0.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        assert!(!names.is_empty(), "{prefix}: no {key} measured");
        for name in names {
            out.push((
                format!("{prefix}.{key}.{name}"),
                rows.iter()
                    .map(|r| get(r).and_then(|b| b.get(&name)).unwrap_or(f64::NAN))
                    .collect(),
            ));
        }
    }
    out.push((
        format!("{prefix}.sharpness_folds"),
        rows.iter()
            .flat_map(|r| r.sharpness_folds.clone().unwrap_or_default())
            .collect(),
    ));
    out.push((
        format!("{prefix}.density_moments"),
        rows.iter()
            .flat_map(|r| match (&r.density_grid, &r.density) {
                (Some(t), Some(p)) => (0..3)
                    .map(|k| integrate(t, p, |x| x.powi(k)))
                    .collect::<Vec<_>>(),
                _ => vec![f64::NAN; 3],
            })
            .collect(),
    ));
    out
}

async fn train(
    cfg: &RunConfig,
    train: &Dataset,
    test: &Dataset,
    device: &Device,
) -> Vec<MetricsRow> {
    let mut run = Run::from_data(cfg, train, test, device)
        .await
        .expect("run builds");
    let mut rows = Vec::new();
    while let Some(e) = run.next().await.expect("run steps") {
        if let Event::Row(r) = e {
            rows.push(r);
        }
    }
    rows
}

/// Every number compared, in a fixed order.
pub async fn probe() -> Vec<Group> {
    let mut g: Vec<Group> = Vec::new();
    let mut rng = Rng::new(7);
    g.push((
        "rng.u64".into(),
        (0..4).flat_map(|_| split_u64(rng.next_u64())).collect(),
    ));
    g.push(("rng.normal".into(), (0..4).map(|_| rng.normal()).collect()));

    let syn_cfg = SyntheticConfig {
        intrinsic_dim: 2,
        ambient_dim: 8,
        classes: 3,
        n_train: 64,
        n_test: 32,
        ..SyntheticConfig::default()
    };
    let syn = synthetic::generate(&syn_cfg).expect("synthetic data");
    g.push(("synthetic.x".into(), summary(&syn.train.x)));
    g.push(("synthetic.y".into(), labels(&syn.train)));
    g.push(("synthetic.lipschitz".into(), vec![syn.generator_lipschitz]));

    let toy_cfg = ToyConfig {
        n_train: 96,
        n_test: 48,
        ..ToyConfig::default()
    };
    let (toy_train, toy_test) = toy::generate(&toy_cfg).expect("toy data");
    g.push(("toy.x".into(), summary(&toy_train.x)));
    g.push(("toy.test_x".into(), summary(&toy_test.x)));

    let bytes: Vec<u8> = (0..3 * 3073)
        .map(|i| {
            if i % 3073 == 0 {
                (i / 3073) as u8
            } else {
                (i * 7 % 256) as u8
            }
        })
        .collect();
    let cifar = parse_records(
        &bytes,
        Path::new("probe.bin"),
        &CifarOptions {
            input_scale: 1.5,
            ..CifarOptions::default()
        },
    )
    .expect("CIFAR records");
    g.push(("cifar.x".into(), summary(&cifar.x)));

    g.push((
        "delta".into(),
        vec![
            delta_cube(4, 1000, 0.01).unwrap(),
            delta_sphere(3, 1000, 0.01, 0.5).unwrap(),
            ln_gamma(4.5),
            ln_gamma(0.3),
        ],
    ));

    let n = 24;
    let mut m = vec![0.0; n * n];
    let mut r = Rng::new(11);
    for i in 0..n {
        for j in 0..=i {
            let x = r.normal();
            m[i * n + j] = x;
            m[j * n + i] = x;
        }
    }
    let cfg = LanczosConfig {
        k: 3,
        tol: 1e-10,
        max_steps: n,
        min_steps: 2,
    };
    let start: Vec<f64> = (0..n).map(|i| 1.0 + i as f64 * 0.01).collect();
    let pairs = top_eigenpairs(|v| Ok::<_, ()>(matvec(&m, n, n, v)), start, &cfg).unwrap();
    g.push(("lanczos.values".into(), pairs.values.clone()));
    let mut exact = symmetric_eigenvalues(&m, n);
    exact.sort_by(|a, b| b.total_cmp(a));
    g.push(("linalg.eigenvalues".into(), exact[..3].to_vec()));

    let device = Device::flex();
    let d = min_interclass_distance(&syn.train, &device)
        .await
        .expect("distance");
    g.push((
        "interclass".into(),
        vec![d.distance, d.i as f64, d.j as f64],
    ));

    let measure = MeasureConfig {
        samples: 48,
        chunk: 32,
        ..MeasureConfig::default()
    };
    let gd = RunConfig {
        seed: 3,
        data: DataConfig::Synthetic(syn_cfg.clone()),
        model: ModelConfig {
            hidden: vec![16, 16],
            activation: Activation::Tanh,
            ..ModelConfig::default()
        },
        loss: LossConfig {
            kind: LossKind::Square,
            label_smoothing: 0.0,
            target_scale: 1.0,
        },
        optim: OptimConfig {
            lr: 0.2,
            ..RunConfig::default().optim
        },
        steps: 6,
        measure_every: 3,
        measure: measure.clone(),
        ..RunConfig::default()
    };
    g.extend(row_groups(
        "run.gd",
        &train(&gd, &syn.train, &syn.test, &device).await,
    ));

    let sgd = RunConfig {
        seed: 5,
        model: ModelConfig {
            hidden: vec![12],
            activation: Activation::Gelu,
            ..ModelConfig::default()
        },
        loss: LossConfig {
            kind: LossKind::CrossEntropy,
            label_smoothing: 0.1,
            target_scale: 1.0,
        },
        optim: OptimConfig {
            lr: 0.3,
            momentum: 0.9,
            weight_decay: 1e-3,
            batch_size: 16,
            ..RunConfig::default().optim
        },
        steps: 8,
        measure_every: 4,
        measure,
        ..gd
    };
    g.extend(row_groups(
        "run.sgd",
        &train(&sgd, &toy_train, &toy_test, &device).await,
    ));

    let spectrum = RunConfig {
        steps: 3,
        measure_every: 3,
        measure: MeasureConfig {
            trace: true,
            density: true,
            per_layer: true,
            factors: true,
            folds: true,
            fold_count: 3,
            hutchpp: TraceConfig { products: 12 },
            slq: DensityConfig {
                probes: 2,
                steps: 12,
                ..DensityConfig::default()
            },
            ..sgd.measure.clone()
        },
        ..sgd
    };
    g.extend(spectrum_groups(
        "run.spectrum",
        &train(&spectrum, &toy_train, &toy_test, &device).await,
    ));
    g
}

fn golden() -> Vec<Group> {
    serde_json::from_str(include_str!("golden/core_numeric.json")).expect("golden file parses")
}

/// Every mismatch between `got` and `want`, one line each.
fn compare(got: &[Group], want: &[Group]) -> Vec<String> {
    let mut bad = Vec::new();
    if got.len() != want.len() {
        bad.push(format!(
            "{} groups computed, {} in the golden file",
            got.len(),
            want.len()
        ));
    }
    for ((gn, gv), (wn, wv)) in got.iter().zip(want) {
        if gn != wn {
            bad.push(format!("group {gn} where the golden file has {wn}"));
            continue;
        }
        if gv.len() != wv.len() {
            bad.push(format!("{gn}: {} values, golden {}", gv.len(), wv.len()));
            continue;
        }
        let (abs, rel) = tolerance(gn);
        for (i, (a, b)) in gv.iter().zip(wv).enumerate() {
            let ok = (a.is_nan() && b.is_nan()) || (a - b).abs() <= abs + rel * b.abs();
            if !ok {
                bad.push(format!(
                    "{gn}[{i}]: {a} vs golden {b} (tolerance {abs} + {rel}·|golden|)"
                ));
            }
        }
    }
    bad
}

/// Largest relative difference per group (printed, for the record).
fn report(got: &[Group], want: &[Group]) -> String {
    let mut s = String::new();
    for ((name, gv), (_, wv)) in got.iter().zip(want) {
        let worst = gv
            .iter()
            .zip(wv)
            .filter(|(a, b)| !(a.is_nan() && b.is_nan()))
            .map(|(a, b)| (a - b).abs() / b.abs().max(1e-30))
            .fold(0.0f64, f64::max);
        s.push_str(&format!("{name}: max rel diff {worst:.2e}\n"));
    }
    s
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn native_numbers_match_the_golden_file() {
    let got = curvlab::block_on(probe());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/core_numeric.json");
    if std::env::var_os("CURVLAB_BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap()).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let want = golden();
    print!("{}", report(&got, &want));
    let bad = compare(&got, &want);
    assert!(
        bad.is_empty(),
        "native numbers differ from {}:\n{}",
        path.display(),
        bad.join("\n")
    );
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    async fn wasm_numbers_match_native() {
        let got = probe().await;
        let want = golden();
        // Printed through the runner: the agreement actually measured.
        wasm_bindgen_test::console_log!("{}", report(&got, &want));
        let bad = compare(&got, &want);
        assert!(
            bad.is_empty(),
            "wasm32 numbers differ from the native ones:\n{}",
            bad.join("\n")
        );
    }
}
