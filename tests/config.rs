//! Settings, checked in one place (issue 12: "settings validated in one
//! place", defects 3, 4, 5, 7, 9, 10 and the `--train-samples` parts of 12):
//! each test drives the `curvlab` binary as a user would and expects either
//! a run or exactly one error line, before anything is allocated or a run
//! directory is made.

#[path = "common/cli.rs"]
mod cli;

use std::path::Path;

use cli::{bin, cifar_dir, ok, one_line_error, rows, tmp};
use curvlab::experiment::RunConfig;

/// Flags of a run that takes a second: were a bad setting accepted, the
/// test would still end quickly (and fail).
const TINY: [&str; 14] = [
    "run",
    "--quiet",
    "--n-train",
    "32",
    "--n-test",
    "16",
    "--hidden",
    "4",
    "--steps",
    "2",
    "--measure-every",
    "1",
    "--samples",
    "16",
];

/// The same run as a TOML file's lines.
const TINY_TOML: &str = "steps = 2\nmeasure_every = 1\n[data]\nn_train = 32\nn_test = 16\n\
                         [model]\nhidden = [4]\n[measure]\nsamples = 16\n";

/// Defect 3: a misspelt field in any table of a `--config` file is an
/// error naming it, never silently ignored; no run directory is made.
#[test]
fn misspelt_fields_in_every_table_are_errors() {
    let d = tmp("typos");
    for (table, field) in [
        ("[loss]", "label_smothing = 0.3"),
        ("[data]", "n_trian = 100"),
        ("[measure.solver]", "seeed = 3"),
        ("[measure.solver.hvp]", "eps = 0.01"),
        ("[measure.solver.lanczos]", "tolerance = 0.01"),
        ("[optim.schedule]", "gama = 0.5"),
    ] {
        let f = d.join("typo.toml");
        std::fs::write(&f, format!("{table}\n{field}\n")).unwrap();
        let out = d.join("out");
        let wrong = field.split(' ').next().unwrap();
        let dotted = format!("{}.{wrong}", table.trim_matches(['[', ']']));
        one_line_error(
            &bin()
                .args(TINY)
                .arg("--config")
                .arg(&f)
                .arg("--out")
                .arg(&out)
                .output()
                .unwrap(),
            &["typo.toml", &dotted],
        );
        assert!(!out.exists(), "{table}: a run directory was made");
    }
}

/// Defect 10: a partial table keeps the defaults of the fields it leaves
/// out (any subset of fields is accepted, at any depth).
#[test]
fn partial_tables_are_filled_from_the_defaults() {
    let d = tmp("partial");
    let f = d.join("partial.toml");
    std::fs::write(
        &f,
        format!("{TINY_TOML}[measure.solver.lanczos]\ntol = 1e-4\n[loss]\nlabel_smoothing = 0.1\n"),
    )
    .unwrap();
    let out = d.join("run");
    ok(&bin()
        .args(["run", "--quiet", "--config"])
        .arg(&f)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    let cfg = curvlab_lab::run_dir::read_run_config(&out.join("config.json")).unwrap();
    let defaults = RunConfig::default();
    assert_eq!(cfg.measure.solver.lanczos.tol, 1e-4);
    assert_eq!(
        cfg.measure.solver.lanczos.k,
        defaults.measure.solver.lanczos.k
    );
    assert_eq!(
        cfg.measure.solver.lanczos.max_steps,
        defaults.measure.solver.lanczos.max_steps
    );
    // The run's loss kind, as `--label-smoothing 0.1` would give.
    assert_eq!(cfg.loss.kind, defaults.loss.kind);
    assert_eq!(cfg.loss.label_smoothing, 0.1);
    assert_eq!(rows(&out).len(), 3);
}

/// Defect 4: a tolerance that is NaN, negative or zero (and NaN anywhere
/// else, even in a switched-off feature, which config.json would store as
/// null and `--resume` could not read) is refused, in `run`, `--config`,
/// sweeps and `measure`.
#[test]
fn nan_infinite_and_out_of_range_numbers_are_refused() {
    let d = tmp("nan");
    for tol in ["nan", "-1", "0", "inf"] {
        let out = d.join("out");
        one_line_error(
            &bin()
                .args(TINY)
                .arg(format!("--tol={tol}"))
                .arg("--out")
                .arg(&out)
                .output()
                .unwrap(),
            &["measure.solver.lanczos.tol", "(--tol)"],
        );
        assert!(!out.exists());
    }
    for (flag, needle) in [
        ("--lr=nan", "learning rate"),
        ("--momentum=nan", "momentum"),
        ("--label-smoothing=nan", "label smoothing"),
        ("--input-scale=inf", "input_scale"),
        ("--gamma=nan", "gamma"),
        ("--mixup-alpha=inf", "mixup_alpha"),
    ] {
        one_line_error(&bin().args(TINY).arg(flag).output().unwrap(), &[needle]);
    }
    // A switched-off feature's settings are checked too.
    let f = d.join("slq.toml");
    std::fs::write(&f, format!("{TINY_TOML}[measure.slq]\nsigma = nan\n")).unwrap();
    one_line_error(
        &bin()
            .args(["run", "--quiet", "--config"])
            .arg(&f)
            .output()
            .unwrap(),
        &["slq.toml", "sigma"],
    );
    // measure: checked before the weights or the data are read.
    one_line_error(
        &bin()
            .args([
                "measure",
                "--weights",
                "/no/such.safetensors",
                "--data",
                "/no/dir",
            ])
            .arg("--tol=nan")
            .output()
            .unwrap(),
        &["tol", "(--tol)"],
    );
    // sweeps: the same check.
    let sweep = d.join("s.toml");
    let base = TINY_TOML
        .replace("[data]", "[base.data]")
        .replace("[model]", "[base.model]")
        .replace("[measure]", "[base.measure]");
    std::fs::write(
        &sweep,
        format!("name = \"s\"\n[base]\n{base}[axes]\n\"optim.lr\" = [0.06]\n"),
    )
    .unwrap();
    ok(&bin().args(["sweep", "plan"]).arg(&sweep).output().unwrap());
    one_line_error(
        &bin()
            .args(["sweep", "plan"])
            .arg(&sweep)
            .args(["--set", "measure.solver.lanczos.tol=nan"])
            .output()
            .unwrap(),
        &["measure.solver.lanczos.tol"],
    );
}

/// Defect 5: a model that cannot fit in memory is refused in one line with
/// the estimate and what to lower, before anything is allocated and before
/// the run directory is made (it used to abort with exit 134, or grow to
/// several GB first).
#[test]
fn a_run_that_cannot_fit_is_refused_before_it_starts() {
    let d = tmp("memory");
    for hidden in ["1000000000", "100000000"] {
        let out = d.join(format!("h{hidden}"));
        let line = one_line_error(
            &bin()
                .args(TINY)
                .args(["--hidden", hidden, "--out"])
                .arg(&out)
                .output()
                .unwrap(),
            &["needs about", "GiB", "available", "lower", "model.hidden"],
        );
        assert!(line.contains("parameters"), "{line}");
        assert!(!out.exists(), "{}: a run directory was made", out.display());
    }
    // The limit can be set: the tiny run needs more than 1 MiB.
    let out = d.join("limited");
    one_line_error(
        &bin()
            .args(TINY)
            .arg("--out")
            .arg(&out)
            .env("CURVLAB_MEMORY_LIMIT", "1M")
            .output()
            .unwrap(),
        &["needs about", "1.0 MiB available"],
    );
    assert!(!out.exists());
    one_line_error(
        &bin()
            .args(TINY)
            .env("CURVLAB_MEMORY_LIMIT", "lots")
            .output()
            .unwrap(),
        &["CURVLAB_MEMORY_LIMIT=lots"],
    );
    ok(&bin()
        .args(TINY)
        .arg("--out")
        .arg(&out)
        .env("CURVLAB_MEMORY_LIMIT", "off")
        .output()
        .unwrap());
}

/// Defect 7: a CNN with more conv blocks than its images can be halved is
/// refused by validation (64 and 65 entries used to pass and panic inside a
/// matmul); 32×32 images take at most 5.
#[test]
fn a_cnn_with_too_many_blocks_is_refused() {
    let data = cifar_dir();
    for blocks in [6usize, 64, 65] {
        let channels = vec!["2"; blocks].join(",");
        let d = tmp(&format!("cnn{blocks}"));
        let out = d.join("out");
        one_line_error(
            &bin()
                .args(["run", "--quiet", "--model", "cnn", "--data"])
                .arg(&data)
                .args(["--train-samples", "20", "--channels", &channels, "--out"])
                .arg(&out)
                .output()
                .unwrap(),
            &["CNN", "at most 5 conv blocks"],
        );
        assert!(!out.exists());
    }
}

/// Defect 12: `--train-samples 0` says what is wrong (not "the data bound
/// needs examples of at least two classes"), and more examples than the
/// data holds is an error (not silently all of them, with config.json
/// keeping the number asked for).
#[test]
fn train_samples_out_of_range_are_refused() {
    let data = cifar_dir();
    let d = tmp("train-samples");
    for (n, needles) in [
        (
            "0",
            &["data.train_samples must be ≥ 1", "(--train-samples)"][..],
        ),
        (
            "1000000000000",
            &["data.train_samples = 1000000000000", "only 5000"][..],
        ),
    ] {
        let out = d.join(format!("n{n}"));
        one_line_error(
            &bin()
                .args(["run", "--quiet", "--data"])
                .arg(&data)
                .args(["--train-samples", n, "--out"])
                .arg(&out)
                .output()
                .unwrap(),
            needles,
        );
        assert!(!out.exists());
    }
}

/// A run directory holding `cfg` as config.json and nothing else (as a run
/// killed after set-up, before its first checkpoint).
fn stored_run(dir: &Path, cfg: &RunConfig) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(cfg).unwrap(),
    )
    .unwrap();
}

/// Defect 9: `--resume` of a directory with nothing to resume (killed
/// during set-up: empty, or absent) fails in one line instead of starting
/// the default run; flags that would change the stored run fail in one line
/// naming them; flags that repeat it are accepted, and the stored
/// configuration is the one run.
#[test]
fn resume_takes_the_stored_configuration() {
    let d = tmp("resume");
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for dir in [&empty, &d.join("absent")] {
        one_line_error(
            &bin()
                .args(["run", "--quiet", "--resume", "--out"])
                .arg(dir)
                .output()
                .unwrap(),
            &["nothing to resume", "without --resume"],
        );
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    }
    one_line_error(
        &bin().args(["run", "--quiet", "--resume"]).output().unwrap(),
        &["--resume needs --out"],
    );

    let stored = d.join("stored");
    let mut cfg = RunConfig {
        steps: 2,
        measure_every: 1,
        ..Default::default()
    };
    cfg.model.hidden = vec![4];
    cfg.measure.samples = 16;
    if let curvlab::experiment::DataConfig::Synthetic(s) = &mut cfg.data {
        s.n_train = 32;
        s.n_test = 16;
    }
    stored_run(&stored, &cfg);
    let line = one_line_error(
        &bin()
            .args(["run", "--quiet", "--resume", "--out"])
            .arg(&stored)
            .args(["--steps", "400", "--lr", "0.5", "--hidden", "8"])
            .output()
            .unwrap(),
        &[
            "--steps (2 → 400)",
            "--lr (0.06 → 0.5)",
            "--hidden ([4] → [8])",
        ],
    );
    assert!(line.contains("config.json"), "{line}");
    assert!(!stored.join("metrics.jsonl").exists());
    // A --config file that differs names its settings.
    let f = d.join("other.toml");
    std::fs::write(&f, format!("seed = 7\n{TINY_TOML}")).unwrap();
    one_line_error(
        &bin()
            .args(["run", "--quiet", "--resume", "--out"])
            .arg(&stored)
            .arg("--config")
            .arg(&f)
            .output()
            .unwrap(),
        &["--config's seed (0 → 7)"],
    );
    // Repeating the stored values is no change: the stored run goes on.
    ok(&bin()
        .args(["run", "--quiet", "--resume", "--out"])
        .arg(&stored)
        .args(["--steps", "2", "--hidden", "4"])
        .output()
        .unwrap());
    assert_eq!(rows(&stored).len(), 3);
    assert!(stored.join("summary.json").is_file());
}

/// The help shows each run flag's default, read from the configuration's
/// declared defaults.
#[test]
fn run_help_shows_the_declared_defaults() {
    let help = ok(&bin().args(["run", "--help"]).output().unwrap());
    let d = RunConfig::default();
    for needle in [
        format!("[default: {}]", d.optim.lr),
        format!("[default: {}]", d.steps),
        format!("[default: {}]", d.measure.solver.lanczos.tol),
        format!("[default: {}]", d.optim.schedule.gamma),
        "[default: 256,256]".to_string(),
        "[default: square]".to_string(),
        "[default: cpu]".to_string(),
    ] {
        assert!(help.contains(&needle), "{needle} not in:\n{help}");
    }
}
