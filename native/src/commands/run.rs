//! `curvlab run`: the configuration from defaults, a TOML file and flags,
//! then the run into its directory ([`curvlab_lab::run_dir`]: config.json,
//! metrics.jsonl appended and flushed per row, plot.png, checkpoints,
//! model.safetensors, summary.json), with a progress bar.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use curvlab::data::synthetic::SyntheticConfig;
use curvlab::experiment::{DataConfig, RunConfig};
use curvlab::models::BnMode;
use curvlab::schedule::ScheduleKind;
use curvlab_lab::lock::RunLock;
use curvlab_lab::run_config;
use curvlab_lab::run_dir::{self, RunEnd, RunOptions};
use serde_json::Value as Json;

use crate::cli::{flag_name, BnModeArg, RunArgs, Schedule, FLAG_PATHS};
use crate::progress::Bar;

/// Builds the run configuration: defaults, then the TOML file
/// ([`curvlab_lab::run_config`]), then flags; validated.
pub fn config_from_args(a: &RunArgs) -> Result<RunConfig> {
    let mut cfg = match &a.config {
        Some(path) => {
            let text = fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
            run_config::from_toml_str(&text, &path.display().to_string())?
        }
        None => RunConfig::default(),
    };
    apply_flags(a, &mut cfg)?;
    cfg.validate().map_err(|e| with_flag(e.to_string()))?;
    Ok(cfg)
}

/// A validation message with the flag that sets the setting it names
/// ("… got NaN (--tol)").
fn with_flag(msg: String) -> anyhow::Error {
    // The path as a whole word: `steps` is not named by `…max_steps must…`.
    let names = |path: &str| {
        msg.match_indices(path).any(|(i, _)| {
            let before = msg[..i].chars().next_back();
            let after = msg[i + path.len()..].chars().next();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
                && !after.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
        })
    };
    let flag = FLAG_PATHS
        .iter()
        .filter(|(_, path)| names(path))
        .max_by_key(|(_, path)| path.len());
    match flag {
        Some((flag, _)) => anyhow::anyhow!("{msg} ({})", flag_name(flag)),
        None => anyhow::anyhow!("{msg}"),
    }
}

/// Sets the fields the flags of `a` name (the `--config` file and
/// `--resume` are the caller's).
fn apply_flags(a: &RunArgs, cfg: &mut RunConfig) -> Result<()> {
    macro_rules! set {
        ($flag:expr, $field:expr) => {
            if let Some(v) = $flag.clone() {
                $field = v.into();
            }
        };
    }
    set!(a.backend, cfg.backend);
    set!(a.seed, cfg.seed);
    if let Some(d) = &a.data {
        if d == "synthetic" {
            if !matches!(cfg.data, DataConfig::Synthetic(_)) {
                cfg.data = DataConfig::Synthetic(SyntheticConfig::default());
            }
        } else if let DataConfig::Cifar { dir, .. } = &mut cfg.data {
            // A CIFAR configuration keeps its subset sizes and input scale: the
            // flag moves it to another copy of the data.
            *dir = d.into();
        } else {
            // The CIFAR table's own defaults for everything but the directory.
            cfg.data = serde_json::from_value(serde_json::json!({"kind": "cifar", "dir": d}))?;
        }
    }
    match &mut cfg.data {
        DataConfig::Synthetic(s) => {
            set!(a.intrinsic_dim, s.intrinsic_dim);
            set!(a.ambient_dim, s.ambient_dim);
            set!(a.classes, s.classes);
            set!(a.n_train, s.n_train);
            set!(a.n_test, s.n_test);
            set!(a.input_scale, s.input_scale);
            if a.train_samples.is_some() || a.test_samples.is_some() {
                anyhow::bail!("--train-samples/--test-samples apply to CIFAR data; use --n-train/--n-test for synthetic data");
            }
        }
        DataConfig::Toy(_) => {
            if a.train_samples.is_some()
                || a.test_samples.is_some()
                || a.intrinsic_dim.is_some()
                || a.ambient_dim.is_some()
                || a.classes.is_some()
                || a.n_train.is_some()
                || a.n_test.is_some()
                || a.input_scale.is_some()
            {
                anyhow::bail!(
                    "toy data is configured in the [data] table of --config, not by data flags"
                );
            }
        }
        DataConfig::Cifar {
            train_samples,
            test_samples,
            input_scale,
            ..
        } => {
            if a.train_samples.is_some() {
                *train_samples = a.train_samples;
            }
            if a.test_samples.is_some() {
                *test_samples = a.test_samples;
            }
            set!(a.input_scale, *input_scale);
            if a.intrinsic_dim.is_some()
                || a.ambient_dim.is_some()
                || a.classes.is_some()
                || a.n_train.is_some()
                || a.n_test.is_some()
            {
                anyhow::bail!("--intrinsic-dim/--ambient-dim/--classes/--n-train/--n-test apply to synthetic data only");
            }
        }
    }
    set!(a.model, cfg.model.kind);
    set!(a.hidden, cfg.model.hidden);
    set!(a.channels, cfg.model.channels);
    set!(a.width, cfg.model.width);
    set!(a.activation, cfg.model.activation);
    set!(a.loss, cfg.loss.kind);
    set!(a.label_smoothing, cfg.loss.label_smoothing);
    set!(a.target_scale, cfg.loss.target_scale);
    set!(a.lr, cfg.optim.lr);
    set!(a.batch_size, cfg.optim.batch_size);
    set!(a.momentum, cfg.optim.momentum);
    set!(a.weight_decay, cfg.optim.weight_decay);
    set!(a.steps, cfg.steps);
    if a.steps.is_some() && a.epochs.is_none() {
        // --steps on the command line wins over a --config file's epochs
        // (which would otherwise override it); --epochs still wins over both.
        cfg.epochs = None;
    }
    set!(a.measure_every, cfg.measure_every);
    set!(a.samples, cfg.measure.samples);
    if a.top_k.is_some() {
        cfg.measure.top_k = a.top_k;
    }
    set!(a.tol, cfg.measure.solver.lanczos.tol);
    if a.epochs.is_some() {
        cfg.epochs = a.epochs;
    }
    set!(a.checkpoint_every, cfg.checkpoint_every);
    if let Some(k) = a.schedule {
        cfg.optim.schedule.kind = match k {
            Schedule::Constant => ScheduleKind::Constant,
            Schedule::Step => ScheduleKind::Step,
            Schedule::Cosine => ScheduleKind::Cosine,
        };
    }
    set!(a.milestones, cfg.optim.schedule.milestones);
    set!(a.gamma, cfg.optim.schedule.gamma);
    set!(a.warmup, cfg.optim.schedule.warmup);
    set!(a.sam_rho, cfg.optim.sam_rho);
    set!(a.crop, cfg.augment.crop);
    cfg.augment.flip |= a.flip;
    set!(a.mixup_alpha, cfg.augment.mixup_alpha);
    if let Some(m) = a.bn_mode {
        cfg.measure.solver.bn_mode = match m {
            BnModeArg::Train => BnMode::Train,
            BnModeArg::Eval => BnMode::Eval,
        };
    }
    cfg.measure.gauss_newton &= !a.no_gn;
    cfg.measure.jacobian &= !a.no_jacobian;
    cfg.measure.bound &= !a.no_bound;
    super::spectrum::apply_run(&a.spectrum, &mut cfg.measure)?;
    Ok(())
}

/// The configuration `--resume` continues: the one stored in `out`'s
/// config.json. Flags (or a `--config` file) that would change it are an
/// error naming them; ones that repeat it are accepted.
fn resume_config(a: &RunArgs, out: &Path) -> Result<RunConfig> {
    let stored_path = out.join("config.json");
    if !stored_path.is_file() {
        anyhow::bail!(
            "{}: nothing to resume (no config.json: the run stopped before it started, or this is not a run directory); start it again without --resume",
            out.display()
        );
    }
    let stored = run_dir::read_run_config(&stored_path)?;
    stored
        .validate()
        .with_context(|| format!("{}", stored_path.display()))?;
    let asked = match &a.config {
        Some(_) => config_from_args(a)?,
        None => {
            let mut cfg = stored.clone();
            apply_flags(a, &mut cfg)?;
            cfg
        }
    };
    let before = serde_json::to_value(&stored)?;
    let changes = differences(&before, &serde_json::to_value(&asked)?);
    if changes.is_empty() {
        return Ok(stored);
    }
    // What the flags alone change; the rest comes from the --config file.
    let mut flagged = stored.clone();
    apply_flags(a, &mut flagged)?;
    let by_flags = differences(&before, &serde_json::to_value(&flagged)?);
    let named: Vec<String> = changes
        .iter()
        .map(|(path, old, new)| {
            let flag = FLAG_PATHS
                .iter()
                .find(|(_, p)| p == path)
                .filter(|_| by_flags.iter().any(|(p, _, _)| p == path))
                .map(|(flag, _)| flag_name(flag));
            let by = flag.unwrap_or_else(|| format!("--config's {path}"));
            format!("{by} ({old} → {new})")
        })
        .collect();
    anyhow::bail!(
        "--resume continues the run as {} says, but {} would change it; drop them, or start a new run with another --out",
        stored_path.display(),
        named.join(", ")
    )
}

/// The leaf paths where `a` and `b` differ, with both values (a missing
/// value is `null`).
fn differences(a: &Json, b: &Json) -> Vec<(String, String, String)> {
    fn walk(a: &Json, b: &Json, path: &str, out: &mut Vec<(String, String, String)>) {
        match (a, b) {
            (Json::Object(x), Json::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(
                        x.get(k).unwrap_or(&Json::Null),
                        y.get(k).unwrap_or(&Json::Null),
                        &p,
                        out,
                    );
                }
            }
            _ if a != b => out.push((path.to_string(), a.to_string(), b.to_string())),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(a, b, "", &mut out);
    out
}

fn default_out() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from(format!("runs/run-{secs}"))
}

/// `curvlab run`: the configuration from flags and file (with `--resume` and
/// no `--config`, from the output directory's config.json), then the run.
pub fn run(a: RunArgs) -> Result<()> {
    if a.resume {
        let Some(out) = &a.out else {
            anyhow::bail!("--resume needs --out DIR: the directory of the run to continue");
        };
        let cfg = resume_config(&a, out)?;
        return run_to_dir(&cfg, out, a.quiet, true, None);
    }
    let out = a.out.clone().unwrap_or_else(default_out);
    let cfg = config_from_args(&a)?;
    run_to_dir(&cfg, &out, a.quiet, false, None)
}

/// Runs `cfg` into `out` with a progress bar (none when `quiet`) and, unless
/// quiet, a closing line on stderr. `resume`: continue from the directory's
/// checkpoint; a finished run is left as it is. `lock`: the directory's lock,
/// when the caller took it already (a sweep worker); otherwise it is taken
/// here, and a directory another process is writing is an error.
pub fn run_to_dir(
    cfg: &RunConfig,
    out: &Path,
    quiet: bool,
    resume: bool,
    lock: Option<RunLock>,
) -> Result<()> {
    let mut bar = Bar::new(quiet, cfg.steps);
    let opts = RunOptions { resume };
    let end = match lock {
        Some(lock) => run_dir::run_locked(cfg, lock, &opts, &mut bar)?,
        None => run_dir::run_to_dir(cfg, out, &opts, &mut bar)?,
    };
    if quiet {
        return Ok(());
    }
    let f = match end {
        RunEnd::AlreadyFinished => {
            eprintln!(
                "{}: already finished (summary.json); nothing to do",
                out.display()
            );
            return Ok(());
        }
        RunEnd::Finished(f) => f,
    };
    let last = f.metrics.iter().rev().find(|r| r.sharpness.is_some());
    let first = f.metrics.iter().find(|r| r.sharpness.is_some());
    eprintln!(
        "{} {} steps, {} measurements{}; results in {}",
        if f.diverged {
            "diverged after"
        } else {
            "done:"
        },
        f.steps,
        f.rows,
        match (first, last) {
            (Some(f), Some(l)) => format!(
                "; sharpness {:.3} → {:.3} (2/η = {:.3}), max ‖J‖ {:.3} → {:.3}",
                f.sharpness.unwrap_or(f64::NAN),
                l.sharpness.unwrap_or(f64::NAN),
                l.two_over_lr,
                f.jac_softmax_max.unwrap_or(f64::NAN),
                l.jac_softmax_max.unwrap_or(f64::NAN)
            ),
            _ => String::new(),
        },
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{command, Cli, Command};
    use clap::FromArgMatches;

    fn args(flags: &[&str]) -> RunArgs {
        let argv = ["curvlab", "run"].into_iter().chain(flags.iter().copied());
        let m = command().try_get_matches_from(argv).unwrap();
        match Cli::from_arg_matches(&m).unwrap().command {
            Command::Run(a) => *a,
            other => panic!("parsed {other:?}"),
        }
    }

    /// Each flag sets the one setting FLAG_PATHS names for it (so the help's
    /// default and `--resume`'s message name the right flag).
    #[test]
    fn each_flag_sets_the_setting_it_is_listed_with() {
        let defaults = serde_json::to_value(RunConfig::default()).unwrap();
        let cases: &[&[&str]] = &[
            &["--backend", "wgpu"],
            &["--seed", "3"],
            &["--input-scale", "2"],
            &["--intrinsic-dim", "5"],
            &["--ambient-dim", "16"],
            &["--classes", "3"],
            &["--n-train", "10"],
            &["--n-test", "5"],
            &["--model", "cnn"],
            &["--hidden", "8"],
            &["--channels", "4"],
            &["--width", "8"],
            &["--activation", "relu"],
            &["--loss", "ce"],
            &["--label-smoothing", "0.1"],
            &["--target-scale", "2"],
            &["--lr", "0.1"],
            &["--batch-size", "8"],
            &["--momentum", "0.9"],
            &["--weight-decay", "0.001"],
            &["--steps", "7"],
            &["--measure-every", "3"],
            &["--samples", "9"],
            &["--top-k", "2"],
            &["--tol", "0.01"],
            &["--no-gn"],
            &["--no-jacobian"],
            &["--no-bound"],
            &["--epochs", "2"],
            &["--checkpoint-every", "5"],
            &["--schedule", "cosine"],
            &["--milestones", "0.5"],
            &["--gamma", "0.5"],
            &["--warmup", "0.1"],
            &["--sam-rho", "0.05"],
            &["--crop", "4"],
            &["--flip"],
            &["--mixup-alpha", "0.2"],
            &["--bn-mode", "eval"],
        ];
        for flags in cases {
            let cfg = config_from_args(&args(flags)).unwrap();
            let changed = differences(&defaults, &serde_json::to_value(&cfg).unwrap());
            let id = flags[0].trim_start_matches("--").replace('-', "_");
            let listed: Vec<&str> = FLAG_PATHS
                .iter()
                .filter(|(f, _)| *f == id)
                .map(|(_, p)| *p)
                .collect();
            assert_eq!(changed.len(), 1, "{flags:?} changed {changed:?}");
            assert_eq!(listed, [changed[0].0.as_str()], "{flags:?}");
        }
    }

    /// The configuration of `curvlab run --config FILE FLAGS…`, FILE holding
    /// `toml` (in a directory of its own, removed again).
    fn with_config(name: &str, toml: &str, flags: &[&str]) -> RunConfig {
        let dir = std::env::temp_dir().join(format!("curvlab-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("run.toml");
        std::fs::write(&file, toml).unwrap();
        let mut argv = vec!["--config", file.to_str().unwrap()];
        argv.extend_from_slice(flags);
        let cfg = config_from_args(&args(&argv)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        cfg
    }

    /// `--data DIR` on a CIFAR `--config` moves it to DIR and keeps the rest
    /// of its data table (subset sizes, input scale), so a committed run's
    /// configuration reruns on another machine's copy of the data.
    #[test]
    fn data_flag_keeps_a_cifar_configs_table() {
        let toml = "[data]\nkind = \"cifar\"\ndir = \"/elsewhere\"\ntrain_samples = 500\ntest_samples = 200\ninput_scale = 2.0\n";
        let cfg = with_config("data-flag", toml, &["--data", "/here/cifar"]);
        let data = serde_json::to_value(&cfg.data).unwrap();
        let want = serde_json::json!({"kind": "cifar", "dir": "/here/cifar", "train_samples": 500,
            "test_samples": 200, "input_scale": 2.0, "coarse": false});
        assert_eq!(data, want);
        // Without a CIFAR table, --data DIR starts from the CIFAR defaults.
        let cfg = config_from_args(&args(&["--data", "/here/cifar"])).unwrap();
        assert!(matches!(
            cfg.data,
            DataConfig::Cifar {
                train_samples: None,
                test_samples: None,
                ..
            }
        ));
    }

    /// `--steps` overrides a `--config` file's `epochs`; `--epochs` overrides
    /// `--steps`.
    #[test]
    fn steps_flag_wins_over_a_configs_epochs() {
        let epochs = "epochs = 72\n";
        let cfg = with_config("steps-flag", epochs, &["--steps", "3"]);
        assert_eq!((cfg.steps, cfg.epochs), (3, None));
        let cfg = with_config("steps-flag", epochs, &[]);
        assert_eq!(cfg.epochs, Some(72));
        let cfg = with_config("steps-flag", epochs, &["--steps", "3", "--epochs", "2"]);
        assert_eq!(cfg.epochs, Some(2));
    }

    /// A validation error names the flag of the setting, as a whole word.
    #[test]
    fn errors_name_the_flag() {
        let e = config_from_args(&args(&["--tol", "nan"]))
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("got NaN (--tol)"), "{e}");
        let msg = "config error: measure.solver.lanczos.max_steps must be ≥ 1, got 0";
        assert_eq!(with_flag(msg.into()).to_string(), msg);
    }
}
