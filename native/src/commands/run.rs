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
use curvlab_lab::run_dir::{self, RunEnd, RunOptions};

use crate::cli::{BnModeArg, RunArgs, Schedule};
use crate::progress::Bar;

/// Builds the run configuration: defaults, then the TOML file, then flags.
pub fn config_from_args(a: &RunArgs) -> Result<RunConfig> {
    let mut cfg = match &a.config {
        Some(path) => {
            let text = fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
            toml::from_str::<RunConfig>(&text)
                .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?
        }
        None => RunConfig::default(),
    };
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
        } else {
            cfg.data = DataConfig::Cifar {
                dir: PathBuf::from(d),
                train_samples: None,
                test_samples: None,
                input_scale: 1.0,
                coarse: false,
            };
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
    cfg.validate()?;
    Ok(cfg)
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
    let out = a.out.clone().unwrap_or_else(default_out);
    let cfg = if a.resume && a.config.is_none() && out.join("config.json").exists() {
        let cfg = run_dir::read_run_config(&out.join("config.json"))?;
        cfg.validate()?;
        cfg
    } else {
        config_from_args(&a)?
    };
    run_to_dir(&cfg, &out, a.quiet, a.resume)
}

/// Runs `cfg` into `out` with a progress bar (none when `quiet`) and, unless
/// quiet, a closing line on stderr. `resume`: continue from the directory's
/// checkpoint; a finished run is left as it is.
pub fn run_to_dir(cfg: &RunConfig, out: &Path, quiet: bool, resume: bool) -> Result<()> {
    let mut bar = Bar::new(quiet, cfg.steps);
    let end = run_dir::run_to_dir(cfg, out, &RunOptions { resume }, &mut bar)?;
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
