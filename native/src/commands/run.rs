//! `curvlab run`: train and measure; writes config.json, metrics.jsonl
//! (appended and flushed per row), plot.png and model.safetensors.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use curvlab::backend;
use curvlab::data::synthetic::SyntheticConfig;
use curvlab::experiment::{self, DataConfig, Event, ModelKind, RunConfig};
use curvlab::record::MetricsRow;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{ModelFamily, RunArgs};
use crate::plot::plot_run;

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
    if let Some(m) = a.model {
        cfg.model.kind = match m {
            ModelFamily::Mlp => ModelKind::Mlp,
            ModelFamily::Cnn => ModelKind::Cnn,
        };
    }
    set!(a.hidden, cfg.model.hidden);
    set!(a.channels, cfg.model.channels);
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
    set!(a.top_k, cfg.measure.solver.lanczos.k);
    set!(a.tol, cfg.measure.solver.lanczos.tol);
    cfg.measure.gauss_newton &= !a.no_gn;
    cfg.measure.jacobian &= !a.no_jacobian;
    cfg.measure.bound &= !a.no_bound;
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

fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Writes config.json: the full configuration plus provenance.
fn write_config(dir: &Path, cfg: &RunConfig) -> Result<()> {
    let mut v = serde_json::to_value(cfg)?;
    v["curvlab_version"] = env!("CARGO_PKG_VERSION").into();
    v["git_revision"] = git_revision().into();
    let path = dir.join("config.json");
    fs::write(&path, serde_json::to_string_pretty(&v)? + "\n")
        .with_context(|| format!("{}", path.display()))
}

/// Writes config.json and opens metrics.jsonl (truncated) in `out`.
fn open_outputs(out: &Path, cfg: &RunConfig, metrics_path: &Path) -> Result<File> {
    write_config(out, cfg)?;
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(metrics_path)
        .with_context(|| format!("{}", metrics_path.display()))
}

pub fn run(a: RunArgs) -> Result<()> {
    let cfg = config_from_args(&a)?;
    let out = a.out.clone().unwrap_or_else(default_out);
    let device = backend::device(cfg.backend)?;
    // The directory is made up front (a bad path fails before any work), and
    // its files once the data and model are set up; a run that fails before
    // that leaves no half-made directory behind.
    let created = !out.exists();
    fs::create_dir_all(&out)
        .with_context(|| format!("{}: cannot create output directory", out.display()))?;
    let metrics_path = out.join("metrics.jsonl");
    let mut metrics: Option<File> = None;
    let plot_path = out.join("plot.png");
    let title = format!("curvlab run — {}", out.display());

    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(cfg.steps)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}",
        )
        .expect("valid template"),
    );
    let mut rows: Vec<MetricsRow> = Vec::new();
    let mut write_err: Option<anyhow::Error> = None;
    let summary = experiment::run(&cfg, &device, |ev| match ev {
        Event::Started {
            params,
            train,
            test,
            measure_n,
        } => {
            bar.println(format!("{params} parameters; {train} train / {test} test examples; measuring on {measure_n}; writing to {}", out.display()));
            match open_outputs(&out, &cfg, &metrics_path) {
                Ok(f) => metrics = Some(f),
                Err(e) => {
                    write_err.get_or_insert(e);
                }
            }
        }
        Event::Step { step, loss } => {
            bar.set_position(step);
            if step % 10 == 0 {
                let s = rows
                    .last()
                    .and_then(|r| r.sharpness)
                    .map(|s| format!("{s:.3}"))
                    .unwrap_or("-".into());
                bar.set_message(format!(
                    "loss {loss:.4}  sharpness {s}  2/η {:.3}",
                    2.0 / cfg.optim.lr
                ));
            }
        }
        Event::Row(row) => {
            let line = row.to_json_line();
            let written = match metrics.as_mut() {
                Some(f) => writeln!(f, "{line}").and_then(|_| f.flush()),
                None => Ok(()),
            };
            if let Err(e) = written {
                write_err.get_or_insert(
                    anyhow::Error::new(e).context(format!("{}", metrics_path.display())),
                );
            }
            rows.push(row.clone());
            if let Err(e) = plot_run(&rows, &title, &plot_path) {
                write_err.get_or_insert(e.context(format!("{}", plot_path.display())));
            }
            if row.diverged {
                bar.println(format!(
                    "step {}: loss is not finite: the run diverged (recorded in metrics.jsonl)",
                    row.step
                ));
            }
        }
    });
    bar.finish_and_clear();
    let summary = match summary {
        Ok(s) => s,
        Err(e) => {
            if created && metrics.is_none() {
                let _ = fs::remove_dir_all(&out);
            }
            return Err(e.into());
        }
    };
    if let Some(e) = write_err {
        return Err(e);
    }
    let weights = out.join("model.safetensors");
    curvlab::weights::save(&summary.model, &weights)?;
    let last = rows.iter().rev().find(|r| r.sharpness.is_some());
    let first = rows.iter().find(|r| r.sharpness.is_some());
    eprintln!(
        "{} {} steps, {} measurements{}; results in {}",
        if summary.diverged {
            "diverged after"
        } else {
            "done:"
        },
        summary.steps,
        summary.rows,
        match (first, last) {
            (Some(f), Some(l)) => format!(
                "; sharpness {:.3} → {:.3} (2/η = {:.3}), max ‖J‖ {:.3} → {:.3}",
                f.sharpness.unwrap_or(f64::NAN),
                l.sharpness.unwrap_or(f64::NAN),
                2.0 / cfg.optim.lr,
                f.jac_softmax_max.unwrap_or(f64::NAN),
                l.jac_softmax_max.unwrap_or(f64::NAN)
            ),
            _ => String::new(),
        },
        out.display()
    );
    Ok(())
}
