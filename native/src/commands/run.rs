//! `curvlab run`: train and measure; writes config.json, metrics.jsonl
//! (appended and flushed per row), plot.png and model.safetensors.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use curvlab::backend;
use curvlab::data::synthetic::SyntheticConfig;
use curvlab::experiment::{self, DataConfig, Event, Run, RunConfig};
use curvlab::models::BnMode;
use curvlab::record::MetricsRow;
use curvlab::schedule::ScheduleKind;
use curvlab::Block;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{BnModeArg, RunArgs, Schedule};
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
    set!(a.top_k, cfg.measure.solver.lanczos.k);
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

/// How [`run_to_dir`] behaves.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// No progress bar or summary line.
    pub quiet: bool,
    /// Continue from the directory's checkpoint if there is one (a finished
    /// run, one with summary.json, is left as it is).
    pub resume: bool,
}

/// `curvlab run`: the configuration from flags and file (with `--resume` and
/// no `--config`, from the output directory's config.json), then [`run_to_dir`].
pub fn run(a: RunArgs) -> Result<()> {
    let out = a.out.clone().unwrap_or_else(default_out);
    let cfg = if a.resume && a.config.is_none() && out.join("config.json").exists() {
        let cfg = read_run_config(&out.join("config.json"))?;
        cfg.validate()?;
        cfg
    } else {
        config_from_args(&a)?
    };
    run_to_dir(
        &cfg,
        &out,
        &RunOptions {
            quiet: a.quiet,
            resume: a.resume,
        },
    )
}

/// Reads a run's config.json (provenance fields dropped) back as a configuration.
pub fn read_run_config(path: &Path) -> Result<RunConfig> {
    let text = fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
    if let Some(o) = v.as_object_mut() {
        o.remove("curvlab_version");
        o.remove("git_revision");
    }
    serde_json::from_value(v).with_context(|| format!("{}", path.display()))
}

/// Writes `bytes` to `path` atomically: a temporary file, flushed, then renamed.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).with_context(|| format!("{}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .with_context(|| format!("{}", tmp.display()))?;
    }
    fs::rename(&tmp, path).with_context(|| format!("{}", path.display()))
}

/// Keeps the first `n` rows of metrics.jsonl (rewritten atomically) and returns them.
fn truncate_metrics(path: &Path, n: usize) -> Result<Vec<MetricsRow>> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .collect();
    if lines.len() < n {
        anyhow::bail!(
            "{}: {} rows, but the checkpoint follows {n}; start the run afresh",
            path.display(),
            lines.len()
        );
    }
    let rows = lines
        .iter()
        .map(|l| serde_json::from_str::<MetricsRow>(l))
        .collect::<std::result::Result<Vec<_>, _>>()
        .with_context(|| format!("{}", path.display()))?;
    let mut keep = lines.join("\n");
    if !keep.is_empty() {
        keep.push('\n');
    }
    write_atomic(path, keep.as_bytes())?;
    Ok(rows)
}

/// Runs `cfg`, writing config.json, metrics.jsonl (one row per measurement,
/// flushed), plot.png, a checkpoint every `checkpoint_every` steps and when the
/// run stops (checkpoint.safetensors, atomic), model.safetensors and finally
/// summary.json (its presence marks the run finished) into `out`. With
/// `resume`, a directory with a checkpoint continues from it; rows after the
/// checkpoint are dropped and produced again, so none is lost or duplicated.
pub fn run_to_dir(cfg: &RunConfig, out: &Path, opts: &RunOptions) -> Result<()> {
    let cfg = cfg.clone();
    let out = out.to_path_buf();
    let ckpt_path = out.join("checkpoint.safetensors");
    if opts.resume && out.join("summary.json").exists() {
        if !opts.quiet {
            eprintln!(
                "{}: already finished (summary.json); nothing to do",
                out.display()
            );
        }
        return Ok(());
    }
    let device = backend::device(cfg.backend)?;
    // The directory is made up front (a bad path fails before any work), and
    // its files once the data and model are set up; a run that fails before
    // that leaves no half-made directory behind.
    let created = !out.exists();
    fs::create_dir_all(&out)
        .with_context(|| format!("{}: cannot create output directory", out.display()))?;
    let metrics_path = out.join("metrics.jsonl");
    let plot_path = out.join("plot.png");
    let title = format!("curvlab run — {}", out.display());
    let resuming = opts.resume && ckpt_path.exists();
    let setup = if resuming {
        let bytes = fs::read(&ckpt_path).with_context(|| format!("{}", ckpt_path.display()))?;
        Run::resume(&cfg, &device, &bytes)
            .block()
            .map(|(r, h)| (r, h.rows))
            .map_err(|e| anyhow::anyhow!("{}: {e}", ckpt_path.display()))
    } else {
        Run::new(&cfg, &device)
            .block()
            .map(|r| (r, 0))
            .map_err(Into::into)
    };
    let (mut run, resumed_rows) = match setup {
        Ok(r) => r,
        Err(e) => {
            if created {
                let _ = fs::remove_dir_all(&out);
            }
            return Err(e);
        }
    };
    let mut rows: Vec<MetricsRow> = Vec::new();
    let mut metrics = if resuming {
        rows = truncate_metrics(&metrics_path, resumed_rows)?;
        OpenOptions::new()
            .append(true)
            .open(&metrics_path)
            .with_context(|| format!("{}", metrics_path.display()))?
    } else {
        open_outputs(&out, &cfg, &metrics_path)?
    };
    let bar = if opts.quiet {
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
    let checkpoint = |run: &Run| -> Result<()> {
        let bytes = run.checkpoint().block()?;
        write_atomic(&ckpt_path, &bytes)
    };
    crate::signals::install();
    loop {
        if crate::signals::interrupted() {
            bar.finish_and_clear();
            checkpoint(&run)?;
            anyhow::bail!(
                "interrupted at step {}; checkpoint written — continue with: curvlab run --resume --out {}",
                run.step(),
                out.display()
            );
        }
        let ev = match run.next().block() {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(e) => {
                bar.finish_and_clear();
                let _ = checkpoint(&run);
                return Err(e.into());
            }
        };
        match ev {
            Event::Started {
                params,
                train,
                test,
                measure_n,
                steps,
            } => {
                bar.set_length(steps);
                bar.set_position(run.step());
                bar.println(format!(
                    "{params} parameters; {train} train / {test} test examples; measuring on {measure_n}; {}writing to {}",
                    if resuming { format!("resumed at step {}; ", run.step()) } else { String::new() },
                    out.display()
                ));
            }
            Event::Step { step, loss, lr } => {
                bar.set_position(step);
                if step % 10 == 0 {
                    let s = rows
                        .last()
                        .and_then(|r| r.sharpness)
                        .map(|s| format!("{s:.3}"))
                        .unwrap_or("-".into());
                    bar.set_message(format!(
                        "loss {loss:.4}  sharpness {s}  2/η {:.3}",
                        2.0 / lr
                    ));
                }
                if cfg.checkpoint_every > 0
                    && step.is_multiple_of(cfg.checkpoint_every)
                    && !run.has_pending()
                {
                    checkpoint(&run)?;
                }
            }
            Event::Row(row) => {
                writeln!(metrics, "{}", row.to_json_line())
                    .and_then(|_| metrics.flush())
                    .with_context(|| format!("{}", metrics_path.display()))?;
                if row.diverged {
                    bar.println(format!(
                        "step {}: loss is not finite: the run diverged (recorded in metrics.jsonl)",
                        row.step
                    ));
                }
                rows.push(row);
                plot_run(&rows, &title, &plot_path)
                    .map_err(|e| e.context(format!("{}", plot_path.display())))?;
            }
        }
    }
    bar.finish_and_clear();
    checkpoint(&run)?;
    let summary = run.summary();
    let weights = out.join("model.safetensors");
    curvlab::weights::save(&summary.model, &weights)?;
    write_summary(&out, &summary, &rows)?;
    let last = rows.iter().rev().find(|r| r.sharpness.is_some());
    let first = rows.iter().find(|r| r.sharpness.is_some());
    if opts.quiet {
        return Ok(());
    }
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

/// Writes summary.json atomically (temporary file, then rename): the marker of
/// a finished run that sweeps skip on re-submission.
fn write_summary(out: &Path, s: &experiment::RunSummary, rows: &[MetricsRow]) -> Result<()> {
    let last = rows.last();
    let v = serde_json::json!({
        "steps": s.steps,
        "rows": s.rows,
        "diverged": s.diverged,
        "final": last,
    });
    let tmp = out.join("summary.json.tmp");
    let path = out.join("summary.json");
    fs::write(&tmp, serde_json::to_string_pretty(&v)? + "\n")
        .with_context(|| format!("{}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("{}", path.display()))
}
