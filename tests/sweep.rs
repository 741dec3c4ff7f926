//! End-to-end tests of `curvlab sweep` and `curvlab report`: expansion is
//! deterministic and as specified, `--index` runs exactly one run, a re-run
//! skips finished runs, the Slurm script is complete, bad input is one error
//! line, and the report's figures and rank correlations (checked against
//! hand-computed values) come out of one command.

#[path = "common/cli.rs"]
mod cli;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cli::{cifar_dir, ok, one_line_error, rows, tmp};
use serde_json::{json, Value};

/// The binary, with no Slurm task id or data directory leaking in from the environment.
fn bin() -> Command {
    let mut c = cli::bin();
    c.env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("CURVLAB_DATA");
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("curvlab runs")
}

/// A sweep of tiny MLP runs on small synthetic data: 2 × 2 settings × 2 seeds.
const SWEEP: &str = r#"
name = "mini"
description = "test sweep"
trials = 2
[base]
steps = 12
measure_every = 6
[base.data]
kind = "synthetic"
n_train = 64
n_test = 64
[base.model]
hidden = [16]
[base.measure]
samples = 64
chunk = 64
gauss_newton = false
[axes]
"optim.lr" = [0.05, 0.2]
"loss.target_scale" = [1.0, 2.0]
[scales.tiny]
trials = 1
axes = { "loss.target_scale" = [1.0] }
"#;

fn write_sweep(dir: &Path) -> PathBuf {
    let p = dir.join("mini.toml");
    std::fs::write(&p, SWEEP).unwrap();
    p
}

fn plan_json(file: &Path, extra: &[&str]) -> Value {
    let out = run(bin()
        .args(["sweep", "plan"])
        .arg(file)
        .arg("--json")
        .args(extra));
    serde_json::from_str(&ok(&out)).unwrap()
}

#[test]
fn expansion_is_deterministic_and_as_specified() {
    let d = tmp("plan");
    let f = write_sweep(&d);
    let a = plan_json(&f, &[]);
    let b = plan_json(&f, &[]);
    assert_eq!(a, b, "two expansions differ");
    let runs = a["runs"].as_array().unwrap();
    // Grid in file order (first axis slowest), seeds fastest.
    let dirs: Vec<&str> = runs.iter().map(|r| r["dir"].as_str().unwrap()).collect();
    assert_eq!(
        dirs,
        [
            "optim.lr=0.05,loss.target_scale=1,seed=0",
            "optim.lr=0.05,loss.target_scale=1,seed=1",
            "optim.lr=0.05,loss.target_scale=2,seed=0",
            "optim.lr=0.05,loss.target_scale=2,seed=1",
            "optim.lr=0.2,loss.target_scale=1,seed=0",
            "optim.lr=0.2,loss.target_scale=1,seed=1",
            "optim.lr=0.2,loss.target_scale=2,seed=0",
            "optim.lr=0.2,loss.target_scale=2,seed=1",
        ]
    );
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(r["index"], i);
        let c = &r["config"];
        assert_eq!(c["optim"]["lr"], if i < 4 { 0.05 } else { 0.2 });
        assert_eq!(c["loss"]["target_scale"], if i % 4 < 2 { 1.0 } else { 2.0 });
        assert_eq!(c["seed"], i % 2);
        // The base reaches every run; the rest are RunConfig's defaults.
        assert_eq!(c["steps"], 12);
        assert_eq!(c["model"]["hidden"], json!([16]));
        assert_eq!(c["data"]["n_train"], 64);
        assert_eq!(c["measure"]["gauss_newton"], false);
    }
    assert_eq!(runs[5]["settings"][0]["path"], "optim.lr");
    assert_eq!(runs[5]["settings"][0]["level"], 1);

    // A scale replaces an axis's values and the trials; --set reaches every run.
    let t = plan_json(&f, &["--scale", "tiny", "--set", "measure.samples=32"]);
    let dirs: Vec<&str> = t["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dir"].as_str().unwrap())
        .collect();
    assert_eq!(
        dirs,
        [
            "optim.lr=0.05,loss.target_scale=1,seed=0",
            "optim.lr=0.2,loss.target_scale=1,seed=0"
        ]
    );
    assert_eq!(t["runs"][1]["config"]["measure"]["samples"], 32);

    // The table lists index, status and directory.
    let text = ok(&run(bin()
        .args(["sweep", "plan"])
        .arg(&f)
        .arg("--out")
        .arg(&d)));
    assert!(text.contains("8 runs, 0 finished"), "{text}");
    assert!(
        text.contains("7  -         optim.lr=0.2,loss.target_scale=2,seed=1"),
        "{text}"
    );
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn index_runs_one_run_and_reruns_skip_finished_runs() {
    let d = tmp("run");
    let f = write_sweep(&d);
    let out = d.join("out");
    let o = run(bin()
        .args(["sweep", "run"])
        .arg(&f)
        .arg("--out")
        .arg(&out)
        .args(["--index", "5", "--quiet"]));
    ok(&o);
    // Exactly one run directory, finished, with its configuration.
    let entries: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with('.'))
        .collect();
    let mut entries = entries;
    entries.sort();
    assert_eq!(
        entries,
        [
            "optim.lr=0.2,loss.target_scale=1,seed=1",
            "sweep.json",
            "sweep.toml"
        ]
    );
    let rd = out.join("optim.lr=0.2,loss.target_scale=1,seed=1");
    assert!(rd.join("summary.json").is_file());
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(rd.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["optim"]["lr"], 0.2);
    assert_eq!(cfg["seed"], 1);
    let rows = std::fs::read_to_string(rd.join("metrics.jsonl")).unwrap();
    assert_eq!(rows.lines().count(), 3, "steps 0, 6, 12");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(manifest["runs"].as_array().unwrap().len(), 8);

    // Again: skipped, nothing rewritten.
    let before = mtime(&rd.join("summary.json"));
    let o = run(bin()
        .args(["sweep", "run"])
        .arg(&f)
        .arg("--out")
        .arg(&out)
        .args(["--index", "5", "--quiet"]));
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("already finished"));
    assert_eq!(mtime(&rd.join("summary.json")), before);

    // The index from Slurm's environment.
    let o = run(bin()
        .args(["sweep", "run"])
        .arg(&f)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .env("SLURM_ARRAY_TASK_ID", "0"));
    ok(&o);
    assert!(out
        .join("optim.lr=0.05,loss.target_scale=1,seed=0/summary.json")
        .is_file());

    // --all does the six others and skips the two finished ones.
    let o = run(bin()
        .args(["sweep", "run"])
        .arg(&f)
        .arg("--out")
        .arg(&out)
        .args(["--all", "--quiet"]));
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("already finished").count(), 2, "{err}");
    assert_eq!(err.matches(" starting: ").count(), 6, "{err}");
    assert_eq!(mtime(&rd.join("summary.json")), before);
    let plan = ok(&run(bin()
        .args(["sweep", "plan"])
        .arg(&f)
        .arg("--out")
        .arg(&out)));
    assert!(plan.contains("8 runs, 8 finished"), "{plan}");

    // The same directory with another sweep is refused.
    let other = d.join("other.toml");
    std::fs::write(&other, SWEEP.replace("steps = 12", "steps = 13")).unwrap();
    let o = run(bin()
        .args(["sweep", "run"])
        .arg(&other)
        .arg("--out")
        .arg(&out)
        .args(["--index", "0"]));
    one_line_error(&o, &["choose another --out"]);

    // And the report of the whole sweep.
    let o = run(bin().arg("report").arg(&out));
    let text = ok(&o);
    assert!(text.contains("8 finished"), "{text}");
    for f in [
        "sweep.png",
        "sweep.svg",
        "timeseries.png",
        "timeseries.svg",
        "correlations.md",
        "correlations.csv",
        "runs.csv",
        "report.md",
    ] {
        let p = out.join("report").join(f);
        assert!(p.is_file(), "{} missing", p.display());
    }
    let png = std::fs::read(out.join("report/sweep.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let svg = std::fs::read_to_string(out.join("report/sweep.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("learning rate η"));
}

#[test]
fn slurm_script_is_complete() {
    let d = tmp("slurm");
    let f = write_sweep(&d);
    let out = d.join("out");
    let o = run(bin()
        .args(["sweep", "slurm"])
        .arg(&f)
        .arg("--out")
        .arg(&out)
        .args([
            "--gpus",
            "1",
            "--time",
            "02:00:00",
            "--mem",
            "8G",
            "--partition",
            "gpu",
            "--max-parallel",
            "3",
            "--sbatch=--qos=long",
        ]));
    let text = ok(&o);
    let script_path = out.join("slurm.sbatch");
    assert!(text.contains("sbatch"), "{text}");
    let s = std::fs::read_to_string(&script_path).unwrap();
    for line in [
        "#!/bin/bash",
        "#SBATCH --array=0-7%3",
        "#SBATCH --gpus=1",
        "#SBATCH --time=02:00:00",
        "#SBATCH --mem=8G",
        "#SBATCH --partition=gpu",
        "#SBATCH --qos=long",
        "#SBATCH --job-name=curvlab-mini-paper",
    ] {
        assert!(s.lines().any(|l| l == line), "no '{line}' in:\n{s}");
    }
    let log_dir = std::path::absolute(&out).unwrap().join("logs");
    assert!(s.contains(&format!("#SBATCH --output={}/%A_%a.log", log_dir.display())));
    assert!(log_dir.is_dir());
    let exec = s.lines().find(|l| l.starts_with("exec ")).unwrap();
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_curvlab")).unwrap();
    assert!(
        exec.starts_with(&format!("exec {} sweep run ", exe.display())),
        "{exec}"
    );
    assert!(exec.contains(&std::path::absolute(&f).unwrap().display().to_string()));
    assert!(
        exec.contains("--backend wgpu") && exec.contains("--scale paper"),
        "{exec}"
    );
    assert!(out.join("sweep.json").is_file());
}

#[test]
fn bad_input_is_one_error_line() {
    let d = tmp("errors");
    let f = write_sweep(&d);
    let bad = d.join("bad.toml");
    std::fs::write(
        &bad,
        SWEEP.replace("\"optim.lr\"", "\"optim.learning_rate\""),
    )
    .unwrap();
    one_line_error(
        &run(bin().args(["sweep", "plan"]).arg(&bad)),
        &["optim.learning_rate"],
    );
    std::fs::write(&bad, SWEEP.replace("[axes]", "[axes\n")).unwrap();
    one_line_error(&run(bin().args(["sweep", "plan"]).arg(&bad)), &["bad.toml"]);
    std::fs::write(&bad, SWEEP.replace("trials = 2", "trials = 0")).unwrap();
    one_line_error(&run(bin().args(["sweep", "plan"]).arg(&bad)), &["trials"]);
    one_line_error(
        &run(bin().args(["sweep", "plan", "nosuch"])),
        &["neither a sweep file nor a preset"],
    );
    one_line_error(
        &run(bin()
            .args(["sweep", "plan"])
            .arg(&f)
            .args(["--scale", "huge"])),
        &["no scale 'huge'"],
    );
    one_line_error(
        &run(bin()
            .args(["sweep", "run"])
            .arg(&f)
            .arg("--out")
            .arg(d.join("o"))),
        &["--index"],
    );
    one_line_error(
        &run(bin()
            .args(["sweep", "run"])
            .arg(&f)
            .arg("--out")
            .arg(d.join("o"))
            .args(["--index", "99"])),
        &["out of range"],
    );
    one_line_error(
        &run(bin()
            .args(["sweep", "run"])
            .arg(&f)
            .arg("--out")
            .arg(d.join("o"))
            .env("SLURM_ARRAY_TASK_ID", "x")),
        &["SLURM_ARRAY_TASK_ID"],
    );
    // A preset on CIFAR without a data directory.
    one_line_error(
        &run(bin().args(["sweep", "run", "fig1", "--scale", "tiny", "--index", "0"])),
        &["pass --data DIR or set CURVLAB_DATA"],
    );
    one_line_error(
        &run(bin().args([
            "sweep",
            "run",
            "fig1",
            "--index",
            "0",
            "--data",
            "/no/such/dir",
        ])),
        &["/no/such/dir"],
    );
    one_line_error(
        &run(bin()
            .args(["sweep", "plan"])
            .arg(&f)
            .args(["--set", "optim.lr=0.1"])),
        &["axis"],
    );
    one_line_error(
        &run(bin().arg("report").arg(d.join("nothing"))),
        &["no such directory"],
    );
    one_line_error(&run(bin().arg("report").arg(&d)), &["no sweep.json"]);
}

/// Writes a sweep file into `d`, plans it, and lays out its sweep directory
/// (`d/out` with sweep.json) for hand-made runs; returns the plan and `d/out`.
fn planned(d: &Path, toml: &str) -> (Value, PathBuf) {
    let sweep = d.join("s.toml");
    std::fs::write(&sweep, toml).unwrap();
    let m = plan_json(&sweep, &[]);
    let out = d.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("sweep.json"), m.to_string()).unwrap();
    (m, out)
}

/// The comparison claim of the hand-made sweeps below.
const GAP_FOLLOWS_JAC: &str = r#"
[[claims]]
kind = "comparison"
claim = "gap follows jac"
target = "gen_gap"
better = "jac_softmax_max"
worse = "sharpness"
"#;

/// Writes a finished run directory by hand with the given final values.
fn hand_run(dir: &Path, cfg: &Value, finals: &[(f64, f64, f64)], status: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let mut text = String::new();
    for (i, (gap, sharp, jac)) in finals.iter().enumerate() {
        let row = json!({
            "step": 10 * i, "epoch": i as f64, "lr": 0.1, "two_over_lr": 20.0,
            "train_loss": 0.1, "train_loss_kl": 0.1 / (i + 1) as f64, "test_loss": 0.1 + gap,
            "test_loss_kl": 0.1 + gap, "gen_gap": gap, "sharpness": sharp,
            "jac_softmax_max": jac, "train_acc": 0.9, "test_acc": 0.8,
            "n": 10, "bn_mode": "none", "diverged": status == "diverged", "wall_s": 1.0,
        });
        text += &format!("{row}\n");
    }
    std::fs::write(dir.join("metrics.jsonl"), text).unwrap();
    if status != "unfinished" {
        std::fs::write(
            dir.join("summary.json"),
            json!({"diverged": status == "diverged"}).to_string(),
        )
        .unwrap();
    }
}

/// Report on hand-made runs whose final values give known rank correlations.
///
/// Five finished runs, final (gap, sharpness, jac):
/// gap = 0.1, 0.2, 0.3, 0.4, 0.5; sharpness = 1, 3, 2, 5, 4; jac = 5, 4, 3, 2, 1.
/// Sharpness: ranks d = 0, −1, 1, −1, 1, Σd² = 4, ρ = 1 − 6·4/(5·24) = 0.8;
/// of 10 pairs, 2 discordant ((2,3), (4,5)): τ = (8 − 2)/10 = 0.6.
/// Jacobian: reversed, ρ = τ = −1. A diverged, an unfinished and a missing run
/// are listed and left out (n = 5).
#[test]
fn report_correlations_match_hand_computed_values() {
    let d = tmp("report");
    let (m, out) = planned(
        &d,
        r#"
name = "hand"
[base]
steps = 20
[axes]
"optim.lr" = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5]
"#,
    );
    let runs = m["runs"].as_array().unwrap();
    let sharp = [1.0, 3.0, 2.0, 5.0, 4.0];
    let jac = [5.0, 4.0, 3.0, 2.0, 1.0];
    for i in 0..5 {
        let gap = 0.1 * (i + 1) as f64;
        // Earlier rows with other values: only the last row counts.
        hand_run(
            &out.join(runs[i]["dir"].as_str().unwrap()),
            &runs[i]["config"],
            &[(9.0, 9.0, 9.0), (gap, sharp[i], jac[i])],
            "finished",
        );
    }
    hand_run(
        &out.join(runs[5]["dir"].as_str().unwrap()),
        &runs[5]["config"],
        &[(100.0, 100.0, 100.0)],
        "diverged",
    );
    hand_run(
        &out.join(runs[6]["dir"].as_str().unwrap()),
        &runs[6]["config"],
        &[(-5.0, 100.0, 100.0)],
        "unfinished",
    );
    let text = ok(&run(bin().arg("report").arg(&out)));
    assert!(
        text.contains("5 finished") && text.contains("1 diverged") && text.contains("1 unfinished"),
        "{text}"
    );
    let csv = std::fs::read_to_string(out.join("report/correlations.csv")).unwrap();
    let row = |q: &str| -> (usize, f64, f64) {
        let l = csv
            .lines()
            .find(|l| l.starts_with(&format!("all runs,{q},")))
            .unwrap_or_else(|| panic!("no {q} row in {csv}"));
        let f: Vec<&str> = l.split(',').collect();
        (
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
            f[4].parse().unwrap(),
        )
    };
    let (n, rho, tau) = row("sharpness");
    assert_eq!(n, 5);
    assert!((rho - 0.8).abs() < 1e-12, "ρ = {rho}");
    assert!((tau - 0.6).abs() < 1e-12, "τ = {tau}");
    let (n, rho, tau) = row("jac_softmax_max");
    assert_eq!(n, 5);
    assert!((rho + 1.0).abs() < 1e-12 && (tau + 1.0).abs() < 1e-12);
    let md = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    assert!(
        md.contains("| all runs | sharpness λ_max (Hessian) | 5 | 0.800 | 0.600 |"),
        "{md}"
    );
    assert!(md.contains("diverged (last row at step 0)"), "{md}");
    assert!(md.contains("unfinished (1 rows, last at step 0)"), "{md}");
    assert!(md.contains("not started"), "{md}");
    for f in ["sweep.png", "sweep.svg", "timeseries.png", "timeseries.svg"] {
        assert!(out.join("report").join(f).is_file(), "{f}");
    }
    // lr spans a factor 50: a log axis.
    let svg = std::fs::read_to_string(out.join("report/sweep.svg")).unwrap();
    assert!(svg.contains("log scale"));
    let runs_csv = std::fs::read_to_string(out.join("report/runs.csv")).unwrap();
    assert_eq!(runs_csv.lines().count(), 9);
    assert!(runs_csv.contains(",not started,"));
}

/// The claims of a sweep file, checked by `curvlab report` on hand-made runs.
///
/// Five finished runs over lr = 0.1 … 0.5 (one stratum), final (gap, sharpness,
/// jac) = (0.1·(i+1), [1, 3, 2, 5, 4], [5, 4, 3, 2, 1]) after a first row whose
/// jac 10 + i is each run's peak. By hand: ρ(lr, final sharpness) = 0.8;
/// ρ(lr, peak jac) = 1 (every resample too: holds, interval [1, 1]);
/// ρ(lr, final jac) = −1 (fails when claimed increasing); the comparison
/// |ρ(gap, jac)| − |ρ(gap, sharpness)| = 1 − 0.8 = 0.2. A second report
/// writes the same claims.json.
#[test]
fn report_checks_the_sweep_files_claims() {
    let d = tmp("claims");
    let trends = r#"
name = "claims"
[base]
steps = 20
[axes]
"optim.lr" = [0.1, 0.2, 0.3, 0.4, 0.5]
[[claims]]
kind = "trend"
claim = "sharpness rises with lr"
setting = "optim.lr"
quantity = "sharpness"
expect = "increasing"
[[claims]]
kind = "trend"
claim = "peak jac rises with lr"
setting = "optim.lr"
quantity = "jac_softmax_max"
at = "peak"
expect = "increasing"
[[claims]]
kind = "trend"
claim = "final jac rises with lr"
setting = "optim.lr"
quantity = "jac_softmax_max"
expect = "increasing"
"#;
    let (m, out) = planned(&d, &format!("{trends}{GAP_FOLLOWS_JAC}"));
    assert_eq!(m["claims"].as_array().unwrap().len(), 4);
    let runs = m["runs"].as_array().unwrap();
    let sharp = [1.0, 3.0, 2.0, 5.0, 4.0];
    for (i, r) in runs.iter().enumerate() {
        let gap = 0.1 * (i + 1) as f64;
        hand_run(
            &out.join(r["dir"].as_str().unwrap()),
            &r["config"],
            &[
                (gap, sharp[i], 10.0 + i as f64),
                (gap, sharp[i], 5.0 - i as f64),
            ],
            "finished",
        );
    }
    ok(&run(bin().arg("report").arg(&out)));
    let path = out.join("report/claims.json");
    let first = std::fs::read_to_string(&path).unwrap();
    let claims: Value = serde_json::from_str(&first).unwrap();
    let c = claims.as_array().unwrap();
    assert_eq!(c.len(), 4);
    for k in [
        "preset",
        "claim",
        "statistic",
        "value",
        "interval",
        "verdict",
        "n_runs",
    ] {
        assert!(c.iter().all(|x| x.get(k).is_some()), "{k}: {first}");
    }
    let val = |i: usize| c[i]["value"].as_f64().unwrap();
    let interval = |i: usize| -> (f64, f64) {
        let a = c[i]["interval"].as_array().unwrap();
        (a[0].as_f64().unwrap(), a[1].as_f64().unwrap())
    };
    assert_eq!(c[0]["preset"], "claims");
    assert_eq!(c[0]["n_runs"], 5);
    assert!((val(0) - 0.8).abs() < 1e-12, "{first}");
    let (lo, hi) = interval(0);
    assert!(lo <= 0.8 && 0.8 <= hi, "{first}");
    assert!((val(1) - 1.0).abs() < 1e-12, "{first}");
    let (lo, hi) = interval(1);
    assert!(
        (lo - 1.0).abs() < 1e-12 && (hi - 1.0).abs() < 1e-12,
        "{first}"
    );
    assert_eq!(c[1]["verdict"], "holds");
    assert!((val(2) + 1.0).abs() < 1e-12, "{first}");
    assert_eq!(c[2]["verdict"], "fails");
    assert!((val(3) - 0.2).abs() < 1e-12, "{first}");
    let md = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    assert!(md.contains("## The paper's claims"), "{md}");
    assert!(md.contains("| peak jac rises with lr | all runs |"), "{md}");
    // The same runs give the same claims.json.
    ok(&run(bin().arg("report").arg(&out)));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
}

/// A comparison claim in a grouped sweep whose groups share a baseline run (as
/// Fig. 5's do): each group is evaluated on its own runs, and the pooled scope
/// counts the shared configuration once.
///
/// Group a sweeps lr ∈ {0.1, 0.2, 0.3}, group b momentum ∈ {0, 0.5, 0.9}; lr =
/// 0.1 with momentum 0 is in both. Final (gap, sharpness, jac): a = (0.1, 1, 5),
/// (0.2, 3, 4), (0.3, 2, 3); b = the baseline again, (0.4, 5, 2), (0.5, 4, 1).
/// By hand, in each group ρ(gap, jac) = −1 and ρ(gap, sharpness) = 0.5, so the
/// advantage is 0.5; pooled over the 5 distinct runs it is 1 − 0.8 = 0.2 (with
/// the baseline counted twice it would be 0.118).
#[test]
fn pooled_comparison_counts_a_shared_baseline_once() {
    let d = tmp("pooled");
    let groups = r#"
name = "pooled"
[base]
steps = 20
[base.optim]
lr = 0.1
momentum = 0.0
[groups.a]
axes = { "optim.lr" = [0.1, 0.2, 0.3] }
[groups.b]
axes = { "optim.momentum" = [0.0, 0.5, 0.9] }
"#;
    let (m, out) = planned(&d, &format!("{groups}{GAP_FOLLOWS_JAC}"));
    let runs = m["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    assert_eq!(runs[0]["config"], runs[3]["config"], "the shared baseline");
    let finals = [
        (0.1, 1.0, 5.0),
        (0.2, 3.0, 4.0),
        (0.3, 2.0, 3.0),
        (0.1, 1.0, 5.0),
        (0.4, 5.0, 2.0),
        (0.5, 4.0, 1.0),
    ];
    for (r, f) in runs.iter().zip(finals) {
        hand_run(
            &out.join(r["dir"].as_str().unwrap()),
            &r["config"],
            &[f],
            "finished",
        );
    }
    ok(&run(bin().arg("report").arg(&out)));
    let text = std::fs::read_to_string(out.join("report/claims.json")).unwrap();
    let c: Value = serde_json::from_str(&text).unwrap();
    let c = c.as_array().unwrap();
    let scopes: Vec<&str> = c.iter().map(|x| x["scope"].as_str().unwrap()).collect();
    assert_eq!(scopes, ["group a", "group b", "pooled"], "{text}");
    for (i, (want, n)) in [(0.5, 3), (0.5, 3), (0.2, 5)].iter().enumerate() {
        let v = c[i]["value"].as_f64().unwrap();
        assert!(
            (v - want).abs() < 1e-12,
            "{}: {v} ≠ {want}\n{text}",
            scopes[i]
        );
        assert_eq!(c[i]["n_runs"], *n, "{text}");
    }
    assert!(
        c[2]["statistic"]
            .as_str()
            .unwrap()
            .contains("each distinct run configuration once"),
        "{text}"
    );
    // The statistic's own pipes are escaped in report.md's table.
    let md = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    let row = md
        .lines()
        .find(|l| l.contains("| pooled |"))
        .expect("pooled row");
    assert!(
        row.starts_with("| gap follows jac | pooled | \\|ρ("),
        "{row}"
    );
    assert_eq!(row.matches(" | ").count(), 6, "{row}");
}

/// Every sweep committed under docs/reproduction/ regenerates its committed
/// claims.json, byte for byte, when `curvlab report` reads it again: the
/// README's claims table comes from data a reader can check.
#[test]
fn committed_reproductions_regenerate_their_claims() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reproduction");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&root).expect("docs/reproduction exists") {
        let dir = entry.unwrap().path();
        let committed = dir.join("report/claims.json");
        if !committed.is_file() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let out = tmp(&format!("regen-{name}"));
        ok(&run(bin().arg("report").arg(&dir).arg("--out").arg(&out)));
        let want = std::fs::read_to_string(&committed).unwrap();
        let got = std::fs::read_to_string(out.join("claims.json")).unwrap();
        assert_eq!(
            got, want,
            "{name}: claims.json differs from the committed one"
        );
        let claims: Value = serde_json::from_str(&got).unwrap();
        assert!(!claims.as_array().unwrap().is_empty(), "{name}: no claims");
        checked.push(name);
    }
    checked.sort();
    assert_eq!(
        checked,
        ["appc2", "fig1", "fig2", "fig3", "fig4", "fig5"],
        "every preset's reproduction is committed"
    );
}

/// Every preset expands at every scale (on the real CIFAR-10 directory).
#[test]
fn presets_expand_at_every_scale() {
    let data = cifar_dir();
    let list = ok(&run(bin().args(["sweep", "presets"])));
    for p in ["fig1", "fig2", "fig3", "fig4", "fig5", "appc2"] {
        assert!(list.contains(p), "{list}");
        for scale in ["paper", "small", "tiny"] {
            let out = run(bin()
                .args(["sweep", "plan", p, "--json", "--scale", scale, "--data"])
                .arg(&data));
            let m: Value = serde_json::from_str(&ok(&out)).unwrap();
            let runs = m["runs"].as_array().unwrap();
            assert!(!runs.is_empty());
            if scale == "paper" {
                assert_eq!(m["seeds"].as_array().unwrap().len(), 5, "{p}");
            }
            for r in runs {
                assert_eq!(r["config"]["data"]["kind"], "cifar", "{p}");
            }
        }
    }
    // The paper's numbers: Fig. 1 is VGG11, full-batch GD at η = 0.08.
    let m = plan_json(Path::new("fig1"), &["--data", data.to_str().unwrap()]);
    let c = &m["runs"][0]["config"];
    assert_eq!(c["model"]["kind"], "vgg11");
    assert_eq!(c["optim"]["lr"], 0.08);
    assert_eq!(c["optim"]["batch_size"], 0);
    assert_eq!(c["loss"]["kind"], "crossentropy");
    // The printed preset is a sweep file that plans the same runs.
    let d = tmp("presets");
    let text = ok(&run(bin().args(["sweep", "presets", "fig5"])));
    std::fs::write(d.join("fig5.toml"), text).unwrap();
    let a = plan_json(&d.join("fig5.toml"), &["--data", data.to_str().unwrap()]);
    let b = plan_json(Path::new("fig5"), &["--data", data.to_str().unwrap()]);
    assert_eq!(a["runs"], b["runs"]);
}

/// A preset at `tiny` scale runs on the CPU and its report has the figures
/// and the correlation table.
#[test]
fn tiny_preset_runs_and_reports() {
    let data = cifar_dir();
    let d = tmp("tiny");
    let out = d.join("fig1");
    let t = std::time::Instant::now();
    ok(&run(bin()
        .args([
            "sweep", "run", "fig1", "--scale", "tiny", "--all", "--quiet", "--out",
        ])
        .arg(&out)
        .env("CURVLAB_DATA", &data)));
    eprintln!("fig1 at tiny scale: {:.0} s", t.elapsed().as_secs_f64());
    let text = ok(&run(bin().arg("report").arg(&out)));
    assert!(text.contains("3 finished"), "{text}");
    // Three settings: the rank correlations are numbers.
    let csv = std::fs::read_to_string(out.join("report/correlations.csv")).unwrap();
    let sharp = csv
        .lines()
        .find(|l| l.starts_with("all runs,sharpness,3,"))
        .unwrap_or_else(|| panic!("{csv}"));
    let rho: f64 = sharp.split(',').nth(3).unwrap().parse().unwrap();
    assert!((-1.0..=1.0).contains(&rho), "{sharp}");
    for f in [
        "sweep.png",
        "sweep.svg",
        "timeseries.png",
        "timeseries.svg",
        "correlations.md",
        "correlations.csv",
    ] {
        assert!(out.join("report").join(f).is_file(), "{f}");
    }
}

/// Every other preset runs at `tiny` scale on the CPU: in each preset (and in
/// each group of a grouped one) the last run of the tiny expansion — the
/// largest setting of every axis, so the regulariser is on — trains, is
/// measured and finishes, and the report reads the partial sweep. (fig1 runs
/// its whole tiny sweep above; the full tiny sweeps take minutes each, which
/// CI cannot spend on all five.)
#[test]
fn every_preset_runs_at_tiny_scale() {
    let data = cifar_dir();
    let d = tmp("every-tiny");
    for preset in ["fig2", "fig3", "fig4", "fig5", "appc2"] {
        let plan = plan_json(
            Path::new(preset),
            &["--scale", "tiny", "--data", data.to_str().unwrap()],
        );
        let runs = plan["runs"].as_array().unwrap();
        // The last run of every group (an ungrouped sweep is one group).
        let mut last: Vec<&Value> = Vec::new();
        for r in runs {
            match last.last_mut() {
                Some(l) if l["group"] == r["group"] => *l = r,
                _ => last.push(r),
            }
        }
        let out = d.join(preset);
        for r in &last {
            let index = r["index"].as_u64().unwrap().to_string();
            let t = std::time::Instant::now();
            ok(&run(bin()
                .args(["sweep", "run", preset, "--scale", "tiny", "--quiet"])
                .args(["--index", &index, "--out"])
                .arg(&out)
                .env("CURVLAB_DATA", &data)));
            let dir = out.join(r["dir"].as_str().unwrap());
            eprintln!(
                "{preset} tiny run {index} ({}): {:.0} s",
                r["dir"],
                t.elapsed().as_secs_f64()
            );
            let summary: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
                    .unwrap();
            assert_eq!(summary["diverged"], false, "{preset} {index}: {summary}");
            let rows = rows(&dir);
            assert!(rows.len() >= 2, "{preset} {index}: {} rows", rows.len());
            for row in &rows {
                for k in ["train_loss", "test_loss", "sharpness", "jac_softmax_max"] {
                    let v = row[k].as_f64().unwrap_or(f64::NAN);
                    assert!(v.is_finite() && v >= 0.0, "{preset} {index}: {k} = {v}");
                }
            }
            // The run is the preset's: its configuration is the planned one.
            let cfg: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                    .unwrap();
            assert_eq!(cfg["model"], r["config"]["model"], "{preset} {index}");
            assert_eq!(cfg["optim"], r["config"]["optim"], "{preset} {index}");
        }
        let text = ok(&run(bin().arg("report").arg(&out)));
        assert!(
            text.contains(&format!("{} finished", last.len())),
            "{preset}: {text}"
        );
        // One sweep figure, or one per group (sweep-GROUP.svg) in a grouped preset.
        let figures = std::fs::read_dir(out.join("report"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|f| f.starts_with("sweep") && f.ends_with(".svg"))
            .count();
        let groups = last.iter().filter(|r| !r["group"].is_null()).count();
        assert_eq!(figures, groups.max(1), "{preset}");
        assert!(out.join("report/correlations.csv").is_file(), "{preset}");
    }
}
