//! End-to-end tests of the spectrum extras through the `curvlab` binary
//! (issue 14): the flags of `run` and `measure`, the same keys in TOML run
//! and sweep files, the figures of the run plot and of `report`, and one
//! error line for invalid combinations. Values are compared with the core
//! computing the same configuration on the same seed in this process (not
//! with numbers written here), and checked for what must hold whatever the
//! numbers: block eigenvalues below the whole matrix's (Cauchy interlacing),
//! a density that integrates to 1, masses that sum to 1.

#[path = "common/cli.rs"]
mod cli;

use std::path::Path;

use cli::{bin, cifar_dir, ok, one_line_error, rows, tmp};
use curvlab::backend::{device, BackendKind};
use curvlab::data::cifar::{self, CifarOptions};
use curvlab::density::integrate;
use curvlab::experiment::{Event, Run, RunConfig};
use curvlab::loss::LossConfig;
use curvlab::measure::{MeasureConfig, Measurer};
use curvlab::models::Activation;
use curvlab::record::MetricsRow;
use curvlab::rng::Rng;
use curvlab::sharpness::TopK;
use curvlab::Block;
use serde_json::Value;

/// The rows the core gives for `cfg` (CPU), run in this process.
fn core_rows(cfg: &RunConfig) -> Vec<MetricsRow> {
    let dev = device(BackendKind::Cpu).unwrap();
    let mut run = Run::new(cfg, &dev).block().unwrap();
    let mut out = Vec::new();
    while let Some(e) = run.next().block().unwrap() {
        if let Event::Row(r) = e {
            out.push(r);
        }
    }
    out
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

/// Every spectrum key of the CLI's row `got` equals the core's row `want`
/// (numbers to 1e-6 relative; the same code on the same seed and backend).
fn same_extras(got: &Value, want: &MetricsRow, what: &str) {
    let want = serde_json::to_value(want).unwrap();
    for key in MetricsRow::SPECTRUM_KEYS {
        if *key == "spectrum_wall_s" {
            assert_eq!(
                got.get(key).is_some(),
                want.get(key).is_some(),
                "{what}: {key}"
            );
            continue;
        }
        let (g, w) = (got.get(key), want.get(key));
        assert_eq!(
            g.is_some(),
            w.is_some(),
            "{what}: {key} present in one only"
        );
        let (Some(g), Some(w)) = (g, w) else { continue };
        close(g, w, &format!("{what}: {key}"));
    }
}

fn close(g: &Value, w: &Value, what: &str) {
    match (g, w) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!(rel(a, b) <= 1e-6, "{what}: {a} vs core {b}");
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{what}: length");
            for (x, y) in a.iter().zip(b) {
                close(x, y, what);
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            assert_eq!(
                a.keys().collect::<Vec<_>>(),
                b.keys().collect::<Vec<_>>(),
                "{what}: names"
            );
            for (k, x) in a {
                close(x, &b[k], &format!("{what}.{k}"));
            }
        }
        _ => assert_eq!(g, w, "{what}"),
    }
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// The names of an object field in the order the line writes them.
fn names_in_order(line: &str, key: &str) -> Vec<String> {
    let start = line.find(&format!("\"{key}\":{{")).unwrap() + key.len() + 4;
    let end = start + line[start..].find('}').unwrap();
    line[start..end]
        .split(',')
        .map(|kv| kv.split(':').next().unwrap().trim_matches('"').to_string())
        .collect()
}

/// PNG size from its IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert!(b.starts_with(b"\x89PNG"), "{}", path.display());
    (
        u32::from_be_bytes(b[16..20].try_into().unwrap()),
        u32::from_be_bytes(b[20..24].try_into().unwrap()),
    )
}

const RUN_FLAGS: &[&str] = &[
    "--quiet",
    "--seed",
    "3",
    "--n-train",
    "96",
    "--n-test",
    "32",
    "--samples",
    "96",
    "--hidden",
    "16,16",
    "--loss",
    "ce",
    "--lr",
    "0.5",
    "--steps",
    "6",
    "--measure-every",
    "2",
];

/// `curvlab run` with every spectrum flag: the configuration records them,
/// the rows carry the keys at every second measurement only, the values are
/// the core's for the same configuration, and they are sane.
#[test]
fn run_flags_measure_the_extras_as_the_core_does() {
    let d = tmp("spectrum-run");
    let out = d.join("run");
    ok(&bin()
        .arg("run")
        .args(RUN_FLAGS)
        .args(["--top-k", "classes", "--trace", "--trace-products", "18"])
        .args([
            "--density",
            "--density-probes",
            "2",
            "--density-steps",
            "12",
        ])
        .args([
            "--per-layer",
            "--factors",
            "--folds",
            "3",
            "--spectrum-every",
            "2",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    let cfg = curvlab_lab::run_dir::read_run_config(&out.join("config.json")).unwrap();
    let m = &cfg.measure;
    assert_eq!(m.top_k, Some(TopK::Classes));
    assert!(m.trace && m.density && m.per_layer && m.factors && m.folds);
    assert_eq!(
        (
            m.hutchpp.products,
            m.slq.probes,
            m.slq.steps,
            m.fold_count,
            m.spectrum_every
        ),
        (18, 2, 12, 3, 2)
    );
    let got = rows(&out);
    let lines: Vec<String> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let want = core_rows(&cfg);
    assert_eq!(got.len(), 4, "steps 0, 2, 4, 6");
    assert_eq!(want.len(), got.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let what = format!("row {i} (step {})", g["step"]);
        same_extras(g, w, &what);
        assert_eq!(
            g["eigenvalues"].as_array().unwrap().len(),
            4,
            "{what}: k = C = 4"
        );
        let measured = i % 2 == 0;
        assert_eq!(
            g.get("trace").is_some(),
            measured,
            "{what}: spectrum_every = 2"
        );
        if !measured {
            for key in MetricsRow::SPECTRUM_KEYS {
                assert!(g.get(key).is_none(), "{what}: {key}");
            }
            continue;
        }
        let lmax = f(g, "sharpness");
        assert!(
            f(g, "trace_se") > 0.0 && g["trace_products"] == 18,
            "{what}"
        );
        // The density: a probability density on its grid, at most n_v·m products.
        let grid: Vec<f64> = serde_json::from_value(g["density_grid"].clone()).unwrap();
        let rho: Vec<f64> = serde_json::from_value(g["density"].clone()).unwrap();
        assert!(
            (integrate(&grid, &rho, |_| 1.0) - 1.0).abs() < 1e-6,
            "{what}"
        );
        assert!(g["density_products"].as_u64().unwrap() <= 2 * 12, "{what}");
        // Blocks in θ order, each below the whole matrix's λ_max (interlacing).
        let names = names_in_order(&lines[i], "layer_sharpness");
        assert_eq!(names, ["layers.0", "layers.1", "layers.2"], "{what}");
        for (key, whole) in [
            ("layer_sharpness", lmax),
            ("gn_layer_sharpness", f(g, "gn_sharpness")),
        ] {
            for (n, v) in g[key].as_object().unwrap() {
                let v = v.as_f64().unwrap();
                assert!(
                    v <= whole * (1.0 + 1e-3),
                    "{what}: {key}.{n} = {v} > {whole}"
                );
            }
        }
        let mass: f64 = g["top_eigvec_layer_mass"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((mass - 1.0).abs() < 1e-6, "{what}: mass sums to {mass}");
        // Cross-entropy: λ_max(diag p − ppᵀ) ∈ (0, 1/2].
        let (cmax, cmean) = (f(g, "cost_curvature_max"), f(g, "cost_curvature_mean"));
        assert!(0.0 < cmean && cmean <= cmax && cmax <= 0.5, "{what}");
        // Along u: uᵀHu = λ_max = uᵀGu + residual.
        let share = f(g, "gn_share");
        assert!(
            rel(lmax * share + f(g, "residual_curvature"), lmax) < 1e-2,
            "{what}"
        );
        let folds: Vec<f64> = serde_json::from_value(g["sharpness_folds"].clone()).unwrap();
        assert_eq!(folds.len(), 3);
        let mean = folds.iter().sum::<f64>() / 3.0;
        assert!(rel(f(g, "sharpness_fold_mean"), mean) < 1e-12, "{what}");
        assert!(f(g, "sharpness_fold_sd") >= 0.0);
    }
    // The run plot has the extras' panels: trace, factors, per-layer, density.
    assert_eq!(png_size(&out.join("plot.png")), (900, 44 + 7 * 318));
}

/// The same keys in a TOML run configuration, and `--spectrum-every` over it.
#[test]
fn toml_measure_keys_switch_the_extras_on() {
    let d = tmp("spectrum-toml");
    let toml = d.join("run.toml");
    std::fs::write(
        &toml,
        "steps = 4\nmeasure_every = 1\n[model]\nhidden = [8]\n[data]\nkind = \"synthetic\"\n\
         n_train = 48\nn_test = 16\n[measure]\nsamples = 48\ntop_k = \"classes\"\ntrace = true\n\
         folds = true\nfold_count = 2\n[measure.hutchpp]\nproducts = 12\n",
    )
    .unwrap();
    let out = d.join("run");
    ok(&bin()
        .args(["run", "--quiet", "--spectrum-every", "3", "--config"])
        .arg(&toml)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    let cfg = curvlab_lab::run_dir::read_run_config(&out.join("config.json")).unwrap();
    assert_eq!(cfg.measure.spectrum_every, 3, "the flag overrides the file");
    let got = rows(&out);
    let want = core_rows(&cfg);
    assert_eq!(got.len(), 5);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        same_extras(g, w, &format!("row {i}"));
        assert_eq!(g.get("trace").is_some(), i % 3 == 0, "row {i}");
        assert_eq!(g.get("sharpness_folds").is_some(), i % 3 == 0, "row {i}");
        assert!(g.get("density").is_none() && g.get("layer_sharpness").is_none());
    }
    // Two extras: the run plot adds the trace panel only (folds join sharpness).
    assert_eq!(png_size(&out.join("plot.png")), (900, 44 + 4 * 318));
}

/// Writes MLP weights 3072 → 8 → 10 (PyTorch layout) by hand.
fn write_mlp(path: &Path, seed: u64) {
    let dims = [3072usize, 8, 10];
    let mut rng = Rng::new(seed);
    let mut header = serde_json::Map::new();
    let mut data: Vec<u8> = Vec::new();
    for l in 0..2 {
        let b = 2.0 / (dims[l] as f64).sqrt();
        for (name, shape) in [
            (format!("layers.{l}.weight"), vec![dims[l + 1], dims[l]]),
            (format!("layers.{l}.bias"), vec![dims[l + 1]]),
        ] {
            let start = data.len();
            for _ in 0..shape.iter().product::<usize>() {
                data.extend_from_slice(&(rng.uniform_in(-b, b) as f32).to_le_bytes());
            }
            header.insert(
                name,
                serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
            );
        }
    }
    let h = serde_json::to_vec(&Value::Object(header)).unwrap();
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend(h);
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

/// `curvlab measure` prints every extra asked for, under the metrics rows'
/// keys, equal to the core's measurement of the same weights and data, and
/// draws the density; without the flags it prints none of them.
#[test]
fn measure_prints_the_extras_and_draws_the_density() {
    let d = tmp("spectrum-measure");
    let w = d.join("mlp.safetensors");
    write_mlp(&w, 11);
    let data = cifar_dir();
    let base = |extra: &[&str]| -> Value {
        let out = ok(&bin()
            .args(["measure", "--weights"])
            .arg(&w)
            .arg("--data")
            .arg(&data)
            .args(["--samples", "60", "--top-k", "classes"])
            .args(extra)
            .output()
            .unwrap());
        serde_json::from_str(out.trim()).unwrap()
    };
    let plain = base(&[]);
    for key in MetricsRow::SPECTRUM_KEYS {
        assert!(plain.get(key).is_none(), "{key} without its flag");
    }
    assert_eq!(plain["eigenvalues"].as_array().unwrap().len(), 10);
    let stem = d.join("density");
    let stem_s = stem.to_str().unwrap();
    let got = base(&[
        "--trace",
        "--trace-products",
        "12",
        "--density",
        "--density-probes",
        "2",
        "--density-steps",
        "10",
        "--per-layer",
        "--factors",
        "--folds",
        "--density-plot",
        stem_s,
    ]);
    // The core on the same weights, data and settings.
    let dev = device(BackendKind::Cpu).unwrap();
    let model = curvlab::weights::load(&w, Some(Activation::Relu), &dev).unwrap();
    let train = cifar::load_train(&data, &CifarOptions::default()).unwrap();
    let mut cfg = MeasureConfig {
        samples: 60,
        warm_start: false,
        top_k: Some(TopK::Classes),
        trace: true,
        density: true,
        per_layer: true,
        factors: true,
        folds: true,
        ..Default::default()
    };
    cfg.solver.lanczos.tol = 1e-4;
    cfg.hutchpp.products = 12;
    (cfg.slq.probes, cfg.slq.steps) = (2, 10);
    let mut m = Measurer::new(&train, None, &LossConfig::default(), &cfg, &dev)
        .block()
        .unwrap();
    let mut row = MetricsRow::default();
    m.measure(&model, &mut row).block().unwrap();
    same_extras(&got, &row, "measure");
    assert!(rel(f(&got, "sharpness"), row.sharpness.unwrap()) < 1e-6);
    for key in MetricsRow::SPECTRUM_KEYS {
        assert!(got.get(key).is_some(), "{key} missing");
    }
    assert_eq!(
        got["sharpness_folds"].as_array().unwrap().len(),
        4,
        "--folds alone: K = 4"
    );
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(
        svg.contains("eigenvalue t") && svg.contains("spectral density"),
        "{svg:.300}"
    );
    assert_eq!(png_size(&stem.with_extension("png")).0, 960);
    // A figure needs the density.
    one_line_error(
        &bin()
            .args(["measure", "--weights"])
            .arg(&w)
            .arg("--data")
            .arg(&data)
            .args(["--samples", "20", "--density-plot", stem_s])
            .output()
            .unwrap(),
        &["add --density"],
    );
}

/// Invalid combinations: one line each, naming what to change.
#[test]
fn invalid_combinations_give_one_line() {
    let d = tmp("spectrum-bad");
    let run = |args: &[&str]| {
        bin()
            .args(["run", "--quiet", "--steps", "1", "--out"])
            .arg(d.join("never"))
            .args(args)
            .output()
            .unwrap()
    };
    one_line_error(&run(&["--trace-products", "30"]), &["add --trace"]);
    one_line_error(&run(&["--density-probes", "3"]), &["add --density"]);
    one_line_error(&run(&["--spectrum-every", "5"]), &["none is on"]);
    one_line_error(&run(&["--folds", "1"]), &["measure.fold_count must be ≥ 2"]);
    one_line_error(
        &run(&["--trace", "--trace-products", "3"]),
        &["measure.hutchpp.products must be ≥ 6"],
    );
    one_line_error(
        &run(&["--density", "--density-steps", "1"]),
        &["measure.slq.steps must be ≥ 2"],
    );
    one_line_error(
        &run(&["--spectrum-every", "0", "--trace"]),
        &["spectrum_every must be ≥ 1"],
    );
    let toml = d.join("bad.toml");
    std::fs::write(&toml, "[measure]\nfactors = true\nsharpness = false\n").unwrap();
    one_line_error(
        &run(&["--config", toml.to_str().unwrap()]),
        &["measure.factors needs measure.sharpness"],
    );
    std::fs::write(&toml, "[measure]\ntop_k = 0\n").unwrap();
    one_line_error(
        &run(&["--config", toml.to_str().unwrap()]),
        &["top_k must be a positive integer"],
    );
    assert!(!d.join("never").exists(), "a refused run writes nothing");
}

/// The same keys in a sweep file's `[base.measure]`, and `curvlab report`'s
/// figures of them: spectrum (trace, folds, factors), layers and density,
/// listed in report.md, with the trace in runs.csv and the correlations.
#[test]
fn sweep_keys_and_report_figures() {
    let d = tmp("spectrum-sweep");
    let sweep = d.join("s.toml");
    std::fs::write(
        &sweep,
        r#"
name = "spec"
trials = 2
[base]
steps = 4
measure_every = 2
[base.model]
hidden = [8]
[base.data]
kind = "synthetic"
n_train = 40
n_test = 16
[base.measure]
samples = 40
trace = true
density = true
per_layer = true
factors = true
folds = true
fold_count = 2
[base.measure.hutchpp]
products = 12
[base.measure.slq]
probes = 2
steps = 8
[axes]
"optim.lr" = [0.05, 0.1]
"#,
    )
    .unwrap();
    let out = d.join("out");
    ok(&bin()
        .args(["sweep", "run", "--all", "--quiet", "--out"])
        .arg(&out)
        .arg(&sweep)
        .output()
        .unwrap());
    let text = ok(&bin()
        .arg("report")
        .arg(&out)
        .args(["--density-at", "0,4"])
        .output()
        .unwrap());
    assert!(text.contains("4 finished"), "{text}");
    let rep = out.join("report");
    for f in [
        "spectrum.png",
        "spectrum.svg",
        "layers.png",
        "layers.svg",
        "density.png",
        "density.svg",
    ] {
        assert!(rep.join(f).is_file(), "{f} missing; wrote: {text}");
    }
    let svg = |f: &str| std::fs::read_to_string(rep.join(f)).unwrap();
    let s = svg("spectrum.svg");
    for want in [
        "Hessian trace (Hutch++)",
        "mean ± sd over the folds",
        "uᵀGu / uᵀHu",
        "cost curvature",
        "lr=0.05",
        "lr=0.1",
    ] {
        assert!(s.contains(want), "spectrum.svg lacks {want}");
    }
    let l = svg("layers.svg");
    for want in [
        "layers.0",
        "layers.1",
        "mass per layer",
        "Gauss–Newton block",
    ] {
        assert!(l.contains(want), "layers.svg lacks {want}");
    }
    let dens = svg("density.svg");
    assert!(
        dens.contains("step 0") && dens.contains("step 4"),
        "--density-at 0,4"
    );
    assert!(!dens.contains("step 2<"), "only the chosen steps");
    let md = std::fs::read_to_string(rep.join("report.md")).unwrap();
    assert!(
        md.contains("spectrum.png") && md.contains("density.png"),
        "{md}"
    );
    let csv = std::fs::read_to_string(rep.join("runs.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "trace").unwrap();
    for line in csv.lines().skip(1) {
        let v: f64 = line.split(',').nth(col).unwrap().parse().unwrap();
        assert!(v.is_finite(), "{line}");
    }
    // The manifest's configurations carry the keys (sweep TOML → run config).
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(m["runs"][0]["config"]["measure"]["per_layer"], true);
    // A sweep without extras writes none of these figures (tested in tests/sweep.rs
    // by the figure lists); here: an extra's figure is absent when nothing measured it.
    let csv_corr = std::fs::read_to_string(rep.join("correlations.csv")).unwrap();
    assert!(csv_corr.contains(",trace,"), "{csv_corr}");
}
