//! The spectrum extras against exact float64 references
//! (tests/common/reference.rs: dense Hessians and Gauss–Newton matrices by
//! hyper-dual arithmetic, no finite differences, no burn): Hutch++ trace and
//! its standard error, SLQ density moments, per-layer block eigenvalues, the
//! Ansatz factors, fold sharpness, top-k = C, and `spectrum_every` in a run.
//! Tolerances are stated per test, with the errors observed.

#[path = "common/reference.rs"]
mod reference;

use burn::tensor::Device;
use curvlab::data::Dataset;
use curvlab::density::{hessian_density, integrate, DensityConfig};
use curvlab::experiment::{DataConfig, Event, ModelConfig, Run, RunConfig};
use curvlab::factors::softmax_curvature;
use curvlab::folds::assign;
use curvlab::hvp::HvpConfig;
use curvlab::lanczos::LanczosConfig;
use curvlab::layers::blocks;
use curvlab::linalg::{matvec, symmetric_eigen, symmetric_eigenvalues};
use curvlab::loss::{LossConfig, LossKind};
use curvlab::measure::{MeasureConfig, Measurer};
use curvlab::models::{Activation, Architecture, BnMode, Cnn, Mlp, Model};
use curvlab::record::MetricsRow;
use curvlab::rng::Rng;
use curvlab::sharpness::{SharpnessConfig, TopK};
use curvlab::trace::{hessian_trace, TraceConfig};
use curvlab::train::{OptimConfig, Trainer};
use curvlab::Block;
use reference::{forward, Problem};

fn mlp(act: Activation, hidden: Vec<usize>) -> Architecture {
    Architecture::Mlp(Mlp {
        input_dim: 6,
        hidden,
        classes: 3,
        activation: act,
    })
}

fn cnn() -> Architecture {
    Architecture::Cnn(Cnn {
        in_channels: 2,
        height: 4,
        width: 4,
        channels: vec![3],
        classes: 3,
        activation: Activation::Relu,
    })
}

/// A model trained `steps` GD steps on random data (so the curvature is not
/// that of the initialisation), its data and the exact reference.
struct Case {
    model: Model,
    data: Dataset,
    loss: LossConfig,
}

fn case(arch: Architecture, loss: LossConfig, n: usize, seed: u64, steps: usize) -> Case {
    let dev = Device::flex();
    let mut rng = Rng::new(seed);
    let (d, c) = (arch.input_len(), arch.classes());
    let data = Dataset {
        x: (0..n * d).map(|_| rng.normal() as f32).collect(),
        y: (0..n).map(|i| ((i * 7 + i / 3) % c) as u32).collect(),
        input_shape: vec![d],
        classes: c,
        name: "random".into(),
    };
    let mut model = Model::init(&arch, seed, &dev).unwrap();
    if steps > 0 {
        let optim = OptimConfig {
            lr: 0.5,
            ..Default::default()
        };
        let mut tr = Trainer::new(model, &data, loss.clone(), optim, 7, seed).unwrap();
        for _ in 0..steps {
            tr.step().block().unwrap();
        }
        model = tr.model;
    }
    Case { model, data, loss }
}

impl Case {
    /// The exact reference on the examples `idx` (all when None).
    fn reference(&self, idx: Option<&[usize]>) -> Problem {
        let all: Vec<usize> = (0..self.data.len()).collect();
        let idx = idx.unwrap_or(&all);
        let sub = self.data.subset(idx);
        let c = self.data.classes;
        Problem {
            arch: self.model.arch.clone(),
            theta: self.model.flat().into_iter().map(f64::from).collect(),
            x: sub.x.iter().map(|&v| f64::from(v)).collect(),
            t: self
                .loss
                .targets(&sub.y, c)
                .into_iter()
                .map(f64::from)
                .collect(),
            n: idx.len(),
            kind: self.loss.kind,
            target_scale: self.loss.target_scale,
        }
    }
}

fn solver(tol: f64) -> SharpnessConfig {
    SharpnessConfig {
        lanczos: LanczosConfig {
            k: 1,
            tol,
            max_steps: 200,
            min_steps: 2,
        },
        hvp: HvpConfig::default(),
        seed: 1,
        bn_mode: BnMode::Train,
    }
}

fn top(m: &[f64], p: usize) -> f64 {
    symmetric_eigenvalues(m, p)[0]
}

fn quad(m: &[f64], p: usize, u: &[f64]) -> f64 {
    let mu = matvec(m, p, p, u);
    u.iter().zip(&mu).map(|(a, b)| a * b).sum::<f64>() / u.iter().map(|a| a * a).sum::<f64>()
}

/// Σ_i λ_i², Σ_i H_ii² of a dense matrix.
fn fro2_diag2(m: &[f64], p: usize) -> (f64, f64) {
    let fro2 = m.iter().map(|x| x * x).sum();
    let diag2 = (0..p).map(|i| m[i * p + i].powi(2)).sum();
    (fro2, diag2)
}

/// Every extra of one measurement (through [`Measurer`], as a run measures)
/// against the dense Hessian and Gauss–Newton matrices:
///
/// - per-layer λ_max(H_ll), λ_max(G_ll) against the dense diagonal blocks,
///   tolerance 1e-3 of the block's |λ| (the sharpness tests' tolerance);
/// - gn_share and the residual uᵀ(H − G)u against the dense matrices along
///   the reported u, 1e-3 (of 1 and of |uᵀHu|); ‖u_l‖² against the dense top
///   eigenvector's, 1e-2 absolute;
/// - cost curvature against λ_max(diag p − ppᵀ) of the f64 reference
///   probabilities (Jacobi, not the secular equation), 1e-5 relative;
/// - each fold's λ_max against its own dense Hessian, 1e-3;
/// - the trace within 4 standard errors plus the products' finite-difference
///   allowance, and ∫ρ = 1 on the grid to 1e-6;
/// - top_k = "classes" gives C eigenvalues, each within 1e-3 of the dense ones.
#[test]
fn one_measurement_of_every_extra_against_dense_matrices() {
    for (arch, kind) in [
        (mlp(Activation::Tanh, vec![8, 5]), LossKind::CrossEntropy),
        (mlp(Activation::Relu, vec![8, 5]), LossKind::Square),
        (cnn(), LossKind::CrossEntropy),
    ] {
        let loss = LossConfig {
            kind,
            label_smoothing: 0.1,
            ..Default::default()
        };
        let cs = case(arch.clone(), loss.clone(), 24, 11, 25);
        let cfg = MeasureConfig {
            samples: 24,
            chunk: 7,
            solver: solver(1e-6),
            gauss_newton: true,
            jacobian: false,
            bound: false,
            warm_start: false,
            top_k: Some(TopK::Classes),
            trace: true,
            density: true,
            per_layer: true,
            factors: true,
            folds: true,
            hutchpp: TraceConfig { products: 60 },
            fold_count: 3,
            ..Default::default()
        };
        let dev = Device::flex();
        let mut m = Measurer::new(&cs.data, None, &cs.loss, &cfg, &dev)
            .block()
            .unwrap();
        let mut row = MetricsRow::default();
        m.measure(&cs.model, &mut row).block().unwrap();

        let r = cs.reference(None);
        let p = r.theta.len();
        let (h, g) = (r.hessian(), r.gauss_newton());
        let (hvals, hvecs) = symmetric_eigen(&h, p);
        let lam = hvals[0];
        let label = format!("{arch:?} {kind:?}");

        // top-k = C
        assert_eq!(row.eigenvalues.len(), 3, "{label}: top_k = classes");
        for (i, (got, want)) in row.eigenvalues.iter().zip(&hvals).enumerate() {
            let err = (got - want).abs() / lam.abs();
            println!("{label}: λ{} {got:.6e} exact {want:.6e} ({err:.1e})", i + 1);
            assert!(err < 1e-3, "{label}: λ{} err {err:.1e}", i + 1);
        }

        // per-layer blocks
        let parts = blocks(&arch);
        let hl = row.layer_sharpness.clone().unwrap();
        let gl = row.gn_layer_sharpness.clone().unwrap();
        assert_eq!(hl.0.len(), parts.len());
        for b in &parts {
            let sub = |mat: &[f64]| -> Vec<f64> {
                b.range
                    .clone()
                    .flat_map(|i| b.range.clone().map(move |j| mat[i * p + j]))
                    .collect()
            };
            let n = b.range.len();
            let (eh, eg) = (top(&sub(&h), n), top(&sub(&g), n));
            let (gh, gg) = (hl.get(&b.name).unwrap(), gl.get(&b.name).unwrap());
            let (errh, errg) = ((gh - eh).abs() / eh.abs(), (gg - eg).abs() / eg.abs());
            println!(
                "{label}: block {}: λ(H_ll) {gh:.6e} exact {eh:.6e} ({errh:.1e}); λ(G_ll) {gg:.6e} exact {eg:.6e} ({errg:.1e})",
                b.name
            );
            assert!(errh < 1e-3, "{label} {}: H block err {errh:.1e}", b.name);
            assert!(errg < 1e-3, "{label} {}: G block err {errg:.1e}", b.name);
        }

        // factors along the reported u (the warm vector the measurement kept)
        let (u, _) = m.warm_vectors();
        let u = u.unwrap().to_vec();
        let (uhu, ugu) = (quad(&h, p, &u), quad(&g, p, &u));
        let share = row.gn_share.unwrap();
        let resid = row.residual_curvature.unwrap();
        let (es, er) = (
            (share - ugu / uhu).abs(),
            (resid - (uhu - ugu)).abs() / uhu.abs(),
        );
        println!(
            "{label}: gn_share {share:.6} exact {:.6} ({es:.1e}); residual {resid:.4e} exact {:.4e} ({er:.1e})",
            ugu / uhu,
            uhu - ugu
        );
        assert!(
            es < 1e-3 && er < 1e-3,
            "{label}: share {es:.1e} residual {er:.1e}"
        );
        let mass = row.top_eigvec_layer_mass.clone().unwrap();
        let total: f64 = mass.0.iter().map(|(_, v)| v).sum();
        assert!((total - 1.0).abs() < 1e-9, "{label}: mass sums to {total}");
        for b in &parts {
            let exact: f64 = hvecs[0][b.range.clone()].iter().map(|x| x * x).sum();
            let got = mass.get(&b.name).unwrap();
            assert!(
                (got - exact).abs() < 1e-2,
                "{label} {}: mass {got} vs {exact}",
                b.name
            );
        }

        // cost curvature from the f64 reference's probabilities
        let (d, c) = (arch.input_len(), arch.classes());
        let per: Vec<f64> = (0..r.n)
            .map(|i| match kind {
                LossKind::Square => 1.0,
                LossKind::CrossEntropy => {
                    let z = forward(&arch, &r.theta, &r.x[i * d..(i + 1) * d]);
                    let mx = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = z.iter().map(|v| (v - mx).exp()).collect();
                    let s: f64 = e.iter().sum();
                    let pr: Vec<f64> = e.iter().map(|v| v / s).collect();
                    let a: Vec<f64> = (0..c * c)
                        .map(|q| {
                            (if q / c == q % c { pr[q / c] } else { 0.0 }) - pr[q / c] * pr[q % c]
                        })
                        .collect();
                    symmetric_eigenvalues(&a, c)[0]
                }
            })
            .collect();
        let emax = per.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let emean = per.iter().sum::<f64>() / per.len() as f64;
        let (cm, cmean) = (
            row.cost_curvature_max.unwrap(),
            row.cost_curvature_mean.unwrap(),
        );
        println!("{label}: cost curvature max {cm:.6e} exact {emax:.6e}, mean {cmean:.6e} exact {emean:.6e}");
        assert!((cm - emax).abs() < 1e-5 * emax && (cmean - emean).abs() < 1e-5 * emean);

        // folds against each fold's own dense Hessian
        let folds = assign(&cs.data.y, 3);
        let fv = row.sharpness_folds.clone().unwrap();
        assert_eq!(fv.len(), 3);
        for (k, idx) in folds.iter().enumerate() {
            let rf = cs.reference(Some(idx));
            let exact = top(&rf.hessian(), p);
            let err = (fv[k] - exact).abs() / exact.abs();
            println!(
                "{label}: fold {k} ({} examples) λ {:.6e} exact {exact:.6e} ({err:.1e})",
                idx.len(),
                fv[k]
            );
            assert!(err < 1e-3, "{label}: fold {k} err {err:.1e}");
        }
        let mean = fv.iter().sum::<f64>() / 3.0;
        let sd = (fv.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert!((row.sharpness_fold_mean.unwrap() - mean).abs() < 1e-12);
        assert!((row.sharpness_fold_sd.unwrap() - sd).abs() < 1e-12);

        // trace and density, sanity at this probe count (the calibration tests are below)
        let exact_trace: f64 = (0..p).map(|i| h[i * p + i]).sum();
        let (t, se) = (row.trace.unwrap(), row.trace_se.unwrap());
        let nuclear: f64 = hvals.iter().map(|v| v.abs()).sum();
        println!(
            "{label}: trace {t:.5e} ± {se:.2e} exact {exact_trace:.5e} (err {:.2e}, {:.1} se)",
            t - exact_trace,
            (t - exact_trace).abs() / se
        );
        assert!((t - exact_trace).abs() <= 4.0 * se + 1e-3 * nuclear);
        assert_eq!(row.trace_products, Some(60));
        let (grid, rho) = (
            row.density_grid.clone().unwrap(),
            row.density.clone().unwrap(),
        );
        assert_eq!(grid.len(), rho.len());
        let mass = integrate(&grid, &rho, |_| 1.0);
        assert!((mass - 1.0).abs() < 1e-6, "{label}: ∫ρ = {mass}");
        assert!(row.density_products.unwrap() <= 4 * 40);
        let line = row.to_json_line();
        for key in [
            "\"trace\":",
            "\"density_grid\":",
            "\"layer_sharpness\":{",
            "\"gn_share\":",
            "\"sharpness_fold_sd\":",
        ] {
            assert!(line.contains(key), "{label}: {key} missing");
        }
        println!(
            "{label}: P = {p}: products: trace {}, density {}, layers {} HVP + {} GVP, folds {}, λ_max {} (wall {:.2} s)",
            row.trace_products.unwrap(),
            row.density_products.unwrap(),
            row.layer_hvps.unwrap(),
            row.layer_gvps.unwrap(),
            row.fold_hvps.unwrap(),
            row.hvps.unwrap(),
            row.spectrum_wall_s.unwrap()
        );
    }
}

/// Hutch++ against the exact trace over 12 probe seeds on a trained tanh MLP
/// and a ReLU CNN: every error within 4 reported standard errors (plus the
/// finite-difference allowance 1e-3·Σ|λ_i|); the errors' RMS in standard
/// errors in [0.3, 2] (the error bar is calibrated, neither several times too
/// wide nor too narrow); and both the RMS error and the mean reported se
/// below 0.6 of plain Hutchinson's exact standard deviation at the same 60
/// products, sqrt(2(‖H‖_F² − Σ H_ii²)/60) — what the deflation buys on these
/// small, flat spectra (observed ≈ 0.35; on spectra with outliers much more,
/// see core/src/trace.rs). Without the deflation (the low-rank part counted
/// again by the probes) the error would be ≈ tr(QᵀHQ), most of the trace.
#[test]
fn hutchpp_trace_is_calibrated_against_the_exact_trace() {
    for arch in [mlp(Activation::Tanh, vec![8, 5]), cnn()] {
        let cs = case(arch.clone(), LossConfig::default(), 21, 12, 30);
        let dev = Device::flex();
        let sample = curvlab::objective::Sample::new(&cs.data, &cs.loss, 7, &dev).unwrap();
        let r = cs.reference(None);
        let p = r.theta.len();
        let h = r.hessian();
        let exact: f64 = (0..p).map(|i| h[i * p + i]).sum();
        let vals = symmetric_eigenvalues(&h, p);
        let nuclear: f64 = vals.iter().map(|v| v.abs()).sum();
        let (fro2, diag2) = fro2_diag2(&h, p);
        let hutchinson_sd = (2.0 * (fro2 - diag2) / 60.0).sqrt();
        let (mut z2, mut e2, mut se_sum, seeds) = (0.0, 0.0, 0.0, 12u64);
        for seed in 0..seeds {
            let t = hessian_trace(
                &cs.model,
                &sample,
                &cs.loss,
                &solver(1e-6),
                &TraceConfig { products: 60 },
                &mut Rng::new(100 + seed),
            )
            .block()
            .unwrap();
            let err = t.trace - exact;
            println!(
                "{arch:?} seed {seed}: trace {:.6e} ± {:.2e} exact {exact:.6e} err {err:.2e} (rank {})",
                t.trace, t.se, t.rank
            );
            assert!(
                err.abs() <= 4.0 * t.se + 1e-3 * nuclear,
                "seed {seed}: err {err:.2e} se {:.2e}",
                t.se
            );
            z2 += (err / t.se).powi(2);
            e2 += err * err;
            se_sum += t.se;
        }
        let rms = (z2 / seeds as f64).sqrt();
        let rms_err = (e2 / seeds as f64).sqrt();
        let mean_se = se_sum / seeds as f64;
        println!(
            "{arch:?}: P = {p}, RMS err/se {rms:.2}, RMS err {rms_err:.2e}, mean se {mean_se:.2e}, Hutchinson sd {hutchinson_sd:.2e}, trace {exact:.4e}"
        );
        assert!((0.3..2.0).contains(&rms), "err/se RMS {rms}");
        assert!(
            rms_err < 0.6 * hutchinson_sd,
            "RMS err {rms_err:.2e} vs Hutchinson {hutchinson_sd:.2e}"
        );
        assert!(
            mean_se < 0.6 * hutchinson_sd,
            "mean se {mean_se:.2e} vs Hutchinson {hutchinson_sd:.2e}"
        );
    }
}

/// SLQ moments against the dense Hessian with n_v = 24 Rademacher probes of
/// m = 30 steps: ∫λ dρ against tr H / P and ∫λ² dρ − σ² against ‖H‖_F²/P,
/// each within 4 exact standard errors of its Hutchinson estimate,
/// sqrt(2(‖A‖_F² − Σ A_ii²)/n_v)/P with A = H and A = H² (plus a 1e-3
/// finite-difference allowance); ∫ρ = 1 on the grid to 1e-6; the quadrature's
/// largest node is λ_max to 1e-3. A missing 1/P (unnormalised probes) or
/// unsquared weights would miss by factors, far outside.
#[test]
fn slq_density_moments_match_the_dense_hessian() {
    for arch in [mlp(Activation::Tanh, vec![8, 5]), cnn()] {
        let cs = case(arch.clone(), LossConfig::default(), 21, 13, 30);
        let dev = Device::flex();
        let sample = curvlab::objective::Sample::new(&cs.data, &cs.loss, 7, &dev).unwrap();
        let r = cs.reference(None);
        let p = r.theta.len();
        let h = r.hessian();
        let h2: Vec<f64> = (0..p * p)
            .map(|q| (0..p).map(|k| h[(q / p) * p + k] * h[k * p + q % p]).sum())
            .collect();
        let nv = 24;
        let cfg = DensityConfig {
            probes: nv,
            steps: 30,
            ..Default::default()
        };
        let d = hessian_density(
            &cs.model,
            &sample,
            &cs.loss,
            &solver(1e-6),
            &cfg,
            &mut Rng::new(7),
        )
        .block()
        .unwrap();
        let m0 = integrate(&d.grid, &d.density, |_| 1.0);
        let m1 = integrate(&d.grid, &d.density, |t| t);
        let m2 = integrate(&d.grid, &d.density, |t| t * t) - d.sigma * d.sigma;
        let (fro2, diag2) = fro2_diag2(&h, p);
        let (fro2_h2, diag2_h2) = fro2_diag2(&h2, p);
        let e1: f64 = (0..p).map(|i| h[i * p + i]).sum::<f64>() / p as f64;
        let e2 = fro2 / p as f64;
        let sd1 = (2.0 * (fro2 - diag2) / nv as f64).sqrt() / p as f64;
        let sd2 = (2.0 * (fro2_h2 - diag2_h2) / nv as f64).sqrt() / p as f64;
        let lam = symmetric_eigenvalues(&h, p)[0];
        let top_node = d
            .nodes
            .iter()
            .flatten()
            .cloned()
            .fold(f64::NEG_INFINITY, f64::max);
        println!(
            "{arch:?}: P = {p}: ∫ρ−1 {:.1e}; ∫λρ {m1:.5e} vs {e1:.5e} ({:.2} sd); ∫λ²ρ−σ² {m2:.5e} vs {e2:.5e} ({:.2} sd); top node {top_node:.6e} vs λ_max {lam:.6e}; σ {:.2e}, {} products",
            m0 - 1.0,
            (m1 - e1).abs() / sd1,
            (m2 - e2).abs() / sd2,
            d.sigma,
            d.products
        );
        assert!((m0 - 1.0).abs() < 1e-6, "∫ρ = {m0}");
        assert!(
            (m1 - d.moment(1)).abs() < 1e-6 * lam,
            "grid vs quadrature first moment"
        );
        assert!(
            (m1 - e1).abs() < 4.0 * sd1 + 1e-3 * e1.abs(),
            "first moment {m1} vs {e1}"
        );
        assert!(
            (m2 - e2).abs() < 4.0 * sd2 + 1e-3 * e2,
            "second moment {m2} vs {e2}"
        );
        assert!(
            (top_node - lam).abs() < 1e-3 * lam,
            "top node {top_node} vs {lam}"
        );
        assert_eq!(d.products, nv * 30);
    }
}

/// In a run, the extras come at every `spectrum_every`-th measurement and only
/// there (λ_max at every one); with the extras off, rows carry none of their
/// keys and a run's rows are those of a run without the new settings.
#[test]
fn spectrum_every_selects_the_measurements() {
    let dev = Device::flex();
    let mut cfg = RunConfig {
        data: DataConfig::default(),
        model: ModelConfig {
            hidden: vec![6],
            ..ModelConfig::default()
        },
        steps: 4,
        measure_every: 1,
        ..RunConfig::default()
    };
    let cs = case(
        mlp(Activation::Tanh, vec![6]),
        LossConfig::default(),
        20,
        3,
        0,
    );
    cfg.measure.samples = 20;
    cfg.measure.jacobian = false;
    cfg.measure.bound = false;
    let rows = |cfg: &RunConfig| -> Vec<MetricsRow> {
        let mut run = Run::from_data(cfg, &cs.data, &cs.data, &dev)
            .block()
            .unwrap();
        let mut rows = Vec::new();
        while let Some(e) = run.next().block().unwrap() {
            if let Event::Row(r) = e {
                rows.push(r);
            }
        }
        rows
    };
    let plain = rows(&cfg);
    assert_eq!(plain.len(), 5);
    for r in &plain {
        let line = r.to_json_line();
        assert!(
            !line.contains("trace") && !line.contains("spectrum_wall_s"),
            "{line}"
        );
    }
    cfg.measure.trace = true;
    cfg.measure.hutchpp.products = 9;
    cfg.measure.spectrum_every = 2;
    let with = rows(&cfg);
    for (i, (a, b)) in with.iter().zip(&plain).enumerate() {
        assert_eq!(a.trace.is_some(), i % 2 == 0, "row {i}");
        assert_eq!(a.trace_products, (i % 2 == 0).then_some(9));
        assert_eq!(
            a.sharpness, b.sharpness,
            "row {i}: λ_max unchanged by the extras"
        );
        assert_eq!(a.train_loss, b.train_loss);
    }
    cfg.measure.factors = true;
    cfg.measure.sharpness = false;
    let e = Run::from_data(&cfg, &cs.data, &cs.data, &dev)
        .block()
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("measure.factors needs measure.sharpness"), "{e}");
}

/// softmax_curvature against the closed form 2p(1 − p) (C = 2) and, through
/// the measurement above, against dense eigenvalues; here: a near-one-hot p
/// keeps full relative accuracy (the curvature of a confidently fitted
/// example, which bisection on [p₂, p₁] resolves where a dense eigen-solver
/// loses it in cancellation).
#[test]
fn cost_curvature_of_confident_predictions() {
    for eps in [1e-3, 1e-6, 1e-9] {
        let l = softmax_curvature(&[1.0 - eps, eps]);
        let want = 2.0 * eps * (1.0 - eps);
        assert!((l - want).abs() <= 1e-12 * want, "{eps}: {l} vs {want}");
    }
}

/// A run with every extra on, checkpointed after its second measurement and
/// resumed, gives the same rows as the uninterrupted run: the extras'
/// probes come from the seed and the step, their start vectors from this
/// measurement's eigenvectors, and `spectrum_every` counts the rows the
/// checkpoint keeps.
#[test]
fn resumed_run_gives_the_same_extras() {
    let dev = Device::flex();
    let mut cfg = RunConfig {
        model: ModelConfig {
            hidden: vec![8],
            ..ModelConfig::default()
        },
        steps: 5,
        measure_every: 1,
        ..RunConfig::default()
    };
    if let DataConfig::Synthetic(s) = &mut cfg.data {
        s.n_train = 60;
        s.n_test = 20;
    }
    let m = &mut cfg.measure;
    m.samples = 40;
    m.jacobian = false;
    m.spectrum_every = 2;
    m.top_k = Some(TopK::Classes);
    (m.trace, m.density, m.per_layer, m.factors, m.folds) = (true, true, true, true, true);
    m.hutchpp.products = 12;
    m.slq.probes = 2;
    m.slq.steps = 8;
    let drain = |run: &mut Run, until: Option<usize>, rows: &mut Vec<MetricsRow>| loop {
        if until.is_some_and(|n| rows.len() >= n) && !run.has_pending() {
            return;
        }
        match run.next().block().unwrap() {
            Some(Event::Row(r)) => rows.push(r),
            Some(_) => {}
            None => return,
        }
    };
    let mut whole = Vec::new();
    drain(&mut Run::new(&cfg, &dev).block().unwrap(), None, &mut whole);
    assert_eq!(whole.len(), 6);
    let mut first = Vec::new();
    let mut run = Run::new(&cfg, &dev).block().unwrap();
    drain(&mut run, Some(2), &mut first);
    let bytes = run.checkpoint().block().unwrap();
    let (mut resumed, header) = Run::resume(&cfg, &dev, &bytes).block().unwrap();
    assert_eq!(header.rows, 2);
    let mut rest = Vec::new();
    drain(&mut resumed, None, &mut rest);
    let strip = |r: &MetricsRow| {
        let mut r = r.clone();
        (r.wall_s, r.sharpness_wall_s, r.spectrum_wall_s) =
            (0.0, None, r.spectrum_wall_s.map(|_| 0.0));
        r
    };
    for (i, (a, b)) in whole.iter().zip(first.iter().chain(&rest)).enumerate() {
        assert_eq!(strip(a), strip(b), "row {i}");
        assert_eq!(a.trace.is_some(), i % 2 == 0, "row {i}");
        assert_eq!(a.eigenvalues.len(), 4, "top_k = classes: C = 4");
    }
}
