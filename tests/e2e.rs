//! End-to-end tests of the `curvlab` binary on real CIFAR-10 data
//! (`../shared/data/cifar10-5k`) and on the embedded synthetic data.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/reference.rs"]
mod reference;

use std::path::Path;

use cli::{bin, cifar_dir, ok, one_line_error, rows, tmp, Reaped};
use curvlab::lanczos::{top_eigenpairs, LanczosConfig};
use curvlab::loss::LossKind;
use curvlab::models::{Activation, Architecture, Mlp};
use curvlab::rng::Rng;
use serde_json::Value;

/// Writes safetensors bytes by hand (8-byte header length, JSON header, raw
/// little-endian data), independently of the safetensors crate.
fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(name.clone(), serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}));
    }
    let h = serde_json::to_vec(&Value::Object(header)).unwrap();
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend(h);
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

/// Reads the first n CIFAR-10 training records and normalises them as docs/measurements.md "Data and inputs" says,
/// independently of curvlab's loader.
fn cifar_first(n: usize) -> (Vec<f64>, Vec<u32>) {
    let bytes = std::fs::read(cifar_dir().join("data_batch_1.bin")).unwrap();
    let (m, s) = ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for r in 0..n {
        let rec = &bytes[r * 3073..(r + 1) * 3073];
        y.push(rec[0] as u32);
        for (k, &u) in rec[1..].iter().enumerate() {
            let c = k / 1024;
            x.push((u as f64 / 255.0 - m[c]) / s[c]);
        }
    }
    (x, y)
}

/// `curvlab measure` on MLP weights written without curvlab, on real CIFAR-10,
/// against an exact f64 reference: Lanczos on exact forward-over-reverse HVPs
/// (dual numbers) and closed-form Jacobians. Tolerances: sharpness 0.5 %
/// (issue), Jacobian norms 0.1 %; loss 1e-5 relative.
#[test]
fn measure_matches_exact_reference_on_real_cifar() {
    let dir = tmp("measure");
    let n = 200;
    for (act, act_name, seed) in [
        (Activation::Relu, "relu", 1u64),
        (Activation::Tanh, "tanh", 2),
    ] {
        let dims = [3072usize, 24, 16, 10];
        let mut rng = Rng::new(seed + 100);
        let mut tensors = Vec::new();
        let mut theta = Vec::new();
        for l in 0..3 {
            // PyTorch-like U(−1/√fan_in, 1/√fan_in), scaled up so that curvature is non-trivial
            let b = 2.5 / (dims[l] as f64).sqrt();
            let w: Vec<f32> = (0..dims[l + 1] * dims[l])
                .map(|_| rng.uniform_in(-b, b) as f32)
                .collect();
            let bias: Vec<f32> = (0..dims[l + 1])
                .map(|_| rng.uniform_in(-b, b) as f32)
                .collect();
            theta.extend(w.iter().map(|&v| v as f64));
            theta.extend(bias.iter().map(|&v| v as f64));
            tensors.push((format!("layers.{l}.weight"), vec![dims[l + 1], dims[l]], w));
            tensors.push((format!("layers.{l}.bias"), vec![dims[l + 1]], bias));
        }
        let wpath = dir.join(format!("{act_name}.safetensors"));
        write_safetensors(&wpath, &tensors);
        let out = ok(&bin()
            .args([
                "measure",
                "--weights",
                wpath.to_str().unwrap(),
                "--data",
                cifar_dir().to_str().unwrap(),
                "--samples",
                &n.to_string(),
                "--activation",
                act_name,
            ])
            .output()
            .unwrap());
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        for key in [
            "loss",
            "accuracy",
            "sharpness",
            "sharpness_residual",
            "hvps",
            "jac_softmax_max",
            "jac_softmax_mean",
            "jac_logit_max",
            "jac_logit_mean",
            "n",
            "bn_mode",
        ] {
            assert!(
                v.get(key).is_some_and(|x| !x.is_null()),
                "key {key} missing in {out}"
            );
        }
        assert_eq!(v["n"], n);

        let (x, y) = cifar_first(n);
        let t: Vec<f64> = y
            .iter()
            .flat_map(|&yi| (0..10).map(move |k| if k == yi as usize { 1.0 } else { 0.0 }))
            .collect();
        let arch = Architecture::Mlp(Mlp {
            input_dim: 3072,
            hidden: vec![24, 16],
            classes: 10,
            activation: act,
        });
        let prob = reference::Problem {
            arch,
            theta,
            x,
            t,
            n,
            kind: LossKind::CrossEntropy,
            target_scale: 1.0,
        };
        let loss = prob.loss();
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
        assert!(
            rel(v["loss"].as_f64().unwrap(), loss) < 1e-5,
            "loss {} vs {loss}",
            v["loss"]
        );

        let cfg = LanczosConfig {
            k: 1,
            tol: 1e-9,
            max_steps: 300,
            min_steps: 2,
        };
        let start = Rng::new(5).unit_vector(prob.theta.len());
        let exact = top_eigenpairs(|q| Ok::<_, ()>(prob.mlp_hvp(q)), start, &cfg).unwrap();
        let s = v["sharpness"].as_f64().unwrap();
        println!(
            "{act_name}: sharpness {s} exact {} (rel {:.2e}), hvps {}",
            exact.values[0],
            rel(s, exact.values[0]),
            v["hvps"]
        );
        assert!(
            rel(s, exact.values[0]) < 5e-3,
            "sharpness {s} vs exact {}",
            exact.values[0]
        );

        let mut sm = Vec::new();
        let mut lg = Vec::new();
        for i in 0..n {
            let (jl, js) = prob.mlp_input_jacobians(i);
            lg.push(reference::spectral_norm(&jl, 10, 3072));
            sm.push(reference::spectral_norm(&js, 10, 3072));
        }
        let max = |v: &[f64]| v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        for (key, exact) in [
            ("jac_softmax_max", max(&sm)),
            ("jac_softmax_mean", mean(&sm)),
            ("jac_logit_max", max(&lg)),
            ("jac_logit_mean", mean(&lg)),
        ] {
            let got = v[key].as_f64().unwrap();
            assert!(rel(got, exact) < 1e-3, "{key}: {got} vs exact {exact}");
        }
    }
}

/// GD on an MLP on a few hundred real CIFAR-10 images lowers the loss and
/// raises sharpness; metrics.jsonl parses and holds every field of docs/measurements.md "Interfaces".
#[test]
fn run_on_real_cifar_sharpens() {
    let out = tmp("cifar-run");
    ok(&bin()
        .args([
            "run",
            "--quiet",
            "--data",
            cifar_dir().to_str().unwrap(),
            "--train-samples",
            "300",
            "--test-samples",
            "200",
        ])
        .args([
            "--model",
            "mlp",
            "--hidden",
            "64",
            "--activation",
            "tanh",
            "--loss",
            "ce",
            "--lr",
            "0.02",
            "--steps",
            "150",
            "--measure-every",
            "50",
        ])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap());
    let rs = rows(&out);
    assert_eq!(
        rs.iter()
            .map(|r| r["step"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![0, 50, 100, 150]
    );
    let spec = [
        "step",
        "epoch",
        "lr",
        "train_loss",
        "train_loss_kl",
        "train_acc",
        "test_loss",
        "test_acc",
        "gen_gap",
        "acc_gap",
        "sharpness",
        "sharpness_residual",
        "hvps",
        "gn_sharpness",
        "jac_softmax_max",
        "jac_softmax_mean",
        "jac_softmax_q50",
        "jac_softmax_q90",
        "jac_softmax_q99",
        "jac_softmax_argmax",
        "jac_logit_max",
        "jac_logit_mean",
        "bound_b",
        "n",
        "bn_mode",
        "wall_s",
    ];
    for r in &rs {
        for k in spec {
            assert!(
                r.get(k).is_some_and(|v| !v.is_null()),
                "field {k} missing in {r}"
            );
        }
        assert_eq!(r["n"], 300);
    }
    let first = &rs[0];
    let last = rs.last().unwrap();
    assert!(
        last["train_loss"].as_f64() < first["train_loss"].as_f64(),
        "loss did not fall"
    );
    assert!(
        last["sharpness"].as_f64().unwrap() > first["sharpness"].as_f64().unwrap(),
        "sharpness did not rise"
    );
    assert!(
        last["jac_softmax_max"].as_f64().unwrap() > first["jac_softmax_max"].as_f64().unwrap(),
        "Jacobian norm did not rise"
    );
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["optim"]["lr"], 0.02);
    assert!(out.join("plot.png").is_file() && out.join("model.safetensors").is_file());
}

/// A diverging run is recorded (a `diverged` row), not a crash; exit code 0.
#[test]
fn divergence_is_recorded() {
    let out = tmp("diverge");
    ok(&bin()
        .args([
            "run",
            "--quiet",
            "--n-train",
            "100",
            "--n-test",
            "50",
            "--hidden",
            "32",
            "--lr",
            "1e4",
            "--steps",
            "50",
            "--measure-every",
            "5",
        ])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap());
    let rs = rows(&out);
    let last = rs.last().unwrap();
    assert_eq!(last["diverged"], true, "{last}");
    assert!(rs[..rs.len() - 1].iter().all(|r| r["diverged"] == false));
}

#[test]
fn bad_input_gives_one_line() {
    let d = tmp("bad");
    // missing directory; the failed run leaves no output directory behind
    let out = d.join("out-nope");
    one_line_error(
        &bin()
            .args(["run", "--data", d.join("nope").to_str().unwrap()])
            .args(["--out", out.to_str().unwrap()])
            .output()
            .unwrap(),
        &["nope"],
    );
    assert!(!out.exists(), "a failed run left {}", out.display());
    // truncated training file
    let trunc = d.join("trunc");
    std::fs::create_dir_all(&trunc).unwrap();
    let raw = std::fs::read(cifar_dir().join("data_batch_1.bin")).unwrap();
    std::fs::write(trunc.join("data_batch_1.bin"), &raw[..3073 * 10 + 100]).unwrap();
    std::fs::write(trunc.join("test_batch.bin"), &raw[..3073 * 10]).unwrap();
    one_line_error(
        &bin()
            .args(["run", "--data", trunc.to_str().unwrap()])
            .output()
            .unwrap(),
        &["data_batch_1.bin"],
    );
    // missing test batch
    let notest = d.join("notest");
    std::fs::create_dir_all(&notest).unwrap();
    std::fs::write(notest.join("data_batch_1.bin"), &raw[..3073 * 10]).unwrap();
    one_line_error(
        &bin()
            .args(["run", "--data", notest.to_str().unwrap()])
            .output()
            .unwrap(),
        &["test_batch.bin"],
    );
    // label out of range
    let badlabel = d.join("badlabel");
    std::fs::create_dir_all(&badlabel).unwrap();
    let mut b = raw[..3073 * 10].to_vec();
    b[3073 * 3] = 12;
    std::fs::write(badlabel.join("data_batch_1.bin"), &b).unwrap();
    std::fs::write(badlabel.join("test_batch.bin"), &raw[..3073 * 10]).unwrap();
    one_line_error(
        &bin()
            .args(["run", "--data", badlabel.to_str().unwrap()])
            .output()
            .unwrap(),
        &["label 12"],
    );
    // bad config: unknown field, negative learning rate
    let cfg = d.join("bad.toml");
    std::fs::write(&cfg, "stepz = 3\n").unwrap();
    one_line_error(
        &bin()
            .args(["run", "--config", cfg.to_str().unwrap()])
            .output()
            .unwrap(),
        &["stepz"],
    );
    one_line_error(
        &bin().args(["run", "--lr=-1"]).output().unwrap(),
        &["learning rate"],
    );
    // a CNN on vector data cannot work
    one_line_error(
        &bin().args(["run", "--model", "cnn"]).output().unwrap(),
        &["CNN"],
    );
    // a bench workload that does not exist is refused before anything is timed
    one_line_error(
        &bin()
            .args(["bench", "--workloads", "mlp,resnet18_w0"])
            .output()
            .unwrap(),
        &["unknown bench workload"],
    );
    // weights that are not safetensors; weights that do not fit the data
    std::fs::write(d.join("w.safetensors"), b"not a model").unwrap();
    one_line_error(
        &bin()
            .args([
                "measure",
                "--weights",
                d.join("w.safetensors").to_str().unwrap(),
                "--data",
                cifar_dir().to_str().unwrap(),
            ])
            .output()
            .unwrap(),
        &["safetensors"],
    );
    write_safetensors(
        &d.join("small.safetensors"),
        &[
            ("layers.0.weight".into(), vec![10, 5], vec![0.0; 50]),
            ("layers.0.bias".into(), vec![10], vec![0.0; 10]),
        ],
    );
    one_line_error(
        &bin()
            .args([
                "measure",
                "--weights",
                d.join("small.safetensors").to_str().unwrap(),
                "--data",
                cifar_dir().to_str().unwrap(),
            ])
            .output()
            .unwrap(),
        &["inputs"],
    );
}

/// A run killed mid-way keeps every finished row (appended and flushed per row).
#[test]
fn killed_run_keeps_its_rows() {
    let out = tmp("kill");
    let mut child = Reaped::new(
        bin()
            .args([
                "run",
                "--quiet",
                "--n-train",
                "200",
                "--hidden",
                "32",
                "--steps",
                "100000",
                "--measure-every",
                "2",
                "--out",
                out.to_str().unwrap(),
            ])
            .spawn()
            .unwrap(),
    );
    let path = out.join("metrics.jsonl");
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(&path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
        < 3
    {
        assert!(t0.elapsed().as_secs() < 300, "no rows appeared");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let rs = rows(&out);
    assert!(rs.len() >= 3);
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(r["step"].as_u64().unwrap(), 2 * i as u64);
    }
}

#[test]
fn bound_commands() {
    let v: Value = serde_json::from_str(
        ok(&bin()
            .args([
                "bound", "delta", "--domain", "cube", "--dim", "2", "--n", "1000", "--eps", "0.01",
            ])
            .output()
            .unwrap())
        .trim(),
    )
    .unwrap();
    let e = 4.0 / std::f64::consts::PI.sqrt() * ((1000f64 / 0.01).ln() / 1000.0).sqrt();
    assert!((v["delta"].as_f64().unwrap() - e).abs() < 1e-12);
    let v: Value = serde_json::from_str(
        ok(&bin()
            .args([
                "bound", "delta", "--domain", "sphere", "--dim", "1", "--n", "500", "--eps", "0.1",
                "--gamma", "0.75", "--lip", "2",
            ])
            .output()
            .unwrap())
        .trim(),
    )
    .unwrap();
    assert!((v["delta"].as_f64().unwrap() - 2.0 * 8.0 * 5000f64.ln() / 500.0).abs() < 1e-12);
    one_line_error(
        &bin()
            .args([
                "bound", "delta", "--domain", "cube", "--dim", "0", "--n", "10", "--eps", "0.1",
            ])
            .output()
            .unwrap(),
        &["dim"],
    );

    // data bound on 300 real images against a brute-force f64 minimum
    let n = 300;
    let v: Value = serde_json::from_str(
        ok(&bin()
            .args([
                "bound",
                "data",
                "--data",
                cifar_dir().to_str().unwrap(),
                "--samples",
                &n.to_string(),
            ])
            .output()
            .unwrap())
        .trim(),
    )
    .unwrap();
    let (x, y) = cifar_first(n);
    let mut best = f64::INFINITY;
    for i in 0..n {
        for j in i + 1..n {
            if y[i] != y[j] {
                let d: f64 = (0..3072)
                    .map(|k| (x[i * 3072 + k] - x[j * 3072 + k]).powi(2))
                    .sum::<f64>()
                    .sqrt();
                best = best.min(d);
            }
        }
    }
    let got = v["min_interclass_distance"].as_f64().unwrap();
    // curvlab reads f32 inputs: agreement to f32 input rounding
    assert!((got - best).abs() < 1e-5 * best, "{got} vs {best}");
    assert!((v["bound_b"].as_f64().unwrap() - 2f64.sqrt() / got).abs() < 1e-12);
}

/// The default job (no flags) shows progressive sharpening: sharpness rises
/// several-fold towards 2/η without blowing past it, the Jacobian norm rises with it.
#[test]
fn default_run_shows_progressive_sharpening() {
    let out = tmp("default");
    ok(&bin()
        .args(["run", "--quiet", "--out", out.to_str().unwrap()])
        .output()
        .unwrap());
    let rs = rows(&out);
    let s: Vec<f64> = rs
        .iter()
        .map(|r| r["sharpness"].as_f64().unwrap())
        .collect();
    let j: Vec<f64> = rs
        .iter()
        .map(|r| r["jac_softmax_max"].as_f64().unwrap())
        .collect();
    let two_over_lr = rs[0]["two_over_lr"].as_f64().unwrap();
    println!(
        "sharpness {:.2} → {:.2} (2/η = {two_over_lr:.2}), ‖J‖ {:.3} → {:.3}",
        s[0],
        s[s.len() - 1],
        j[0],
        j[j.len() - 1]
    );
    assert!(
        s[s.len() - 1] >= 3.0 * s[0],
        "sharpness rose only {:.2}×",
        s[s.len() - 1] / s[0]
    );
    assert!(
        s.iter().all(|&v| v <= 1.2 * two_over_lr),
        "sharpness far above 2/η: {s:?}"
    );
    assert!(
        s[s.len() - 1] >= 0.8 * two_over_lr,
        "sharpness did not approach 2/η"
    );
    assert!(
        j[j.len() - 1] >= 3.0 * j[0],
        "Jacobian norm rose only {:.2}×",
        j[j.len() - 1] / j[0]
    );
    assert!(rs.iter().all(|r| r["diverged"] == false));
}
