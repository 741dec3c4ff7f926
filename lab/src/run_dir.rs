//! A run directory, shared by `curvlab run` and every run of a sweep:
//!
//! - `config.json`: the full configuration, the curvlab version and the git
//!   revision (written when the run starts);
//! - `metrics.jsonl`: one row per measurement, appended and flushed per row,
//!   so a killed run keeps every finished row;
//! - `plot.png`: the run figure ([`crate::plot`]), rewritten after every row;
//! - `checkpoint.safetensors`: every `checkpoint_every` steps, when the run
//!   is interrupted and when it stops;
//! - `model.safetensors`: the final weights;
//! - `summary.json`: written last; its presence marks the run finished;
//! - `run.lock`: the lock that keeps a second process out while a run
//!   writes ([`crate::lock`]).
//!
//! Every file but `metrics.jsonl` is replaced atomically
//! ([`curvlab::atomic`]); metrics.jsonl grows by whole rows only
//! ([`crate::metrics_log`]). With `resume`, a directory with a checkpoint
//! continues from it: metrics.jsonl is cut back to the rows the checkpoint
//! follows (and a torn last line from a crash is cut and reported), and the
//! rows after it are produced again, so none is lost or duplicated; a
//! finished run is left as it is.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use curvlab::backend;
use curvlab::experiment::{self, Event, Run, RunConfig};
use curvlab::record::MetricsRow;
use curvlab::Block;

use crate::lock::RunLock;
use crate::metrics_log::MetricsLog;
use crate::plot::plot_run;

/// How [`run_to_dir`] behaves.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Continue from the directory's checkpoint if there is one (a finished
    /// run, one with summary.json, is left as it is).
    pub resume: bool,
}

/// What a run reports while it runs (to a progress bar, say), and whether it
/// should stop. Every method has a default that does nothing.
pub trait Observer {
    /// The run is set up and about to train.
    fn started(&mut self, _info: &Started) {}
    /// An optimiser step finished: its step, batch loss and learning rate,
    /// and the sharpness of the last row so far (if it was measured).
    fn step(&mut self, _step: u64, _loss: f64, _lr: f64, _last_sharpness: Option<f64>) {}
    /// A row was appended to metrics.jsonl.
    fn row(&mut self, _row: &MetricsRow) {}
    /// The training loop stopped (done, failed or interrupted), before the
    /// final files are written or the error is returned.
    fn stopped(&mut self) {}
    /// Something the person running it should know that does not stop the
    /// run (a torn last row cut on resume, a file system without locks).
    fn notice(&mut self, _msg: &str) {}
    /// Asked between steps: true stops the run with a checkpoint and the
    /// [`Interrupted`] error.
    fn interrupted(&self) -> bool {
        false
    }
}

/// An observer that reports nothing and never interrupts.
pub struct Silent;

impl Observer for Silent {}

/// A run, set up.
#[derive(Clone, Debug)]
pub struct Started {
    pub params: usize,
    pub train: usize,
    pub test: usize,
    pub measure_n: usize,
    /// Optimiser steps of the whole run.
    pub steps: u64,
    /// The step it starts from (0, or where a resumed run continues).
    pub step: u64,
    pub resumed: bool,
    pub out: PathBuf,
}

/// How [`run_to_dir`] ended.
#[derive(Clone, Debug)]
pub enum RunEnd {
    /// `resume` and summary.json was there: nothing was done.
    AlreadyFinished,
    /// The run finished (its loss may have diverged); summary.json is written.
    Finished(Finished),
}

/// A finished run: what summary.json says, and every row of metrics.jsonl.
#[derive(Clone, Debug)]
pub struct Finished {
    pub steps: u64,
    pub rows: usize,
    pub diverged: bool,
    pub metrics: Vec<MetricsRow>,
}

/// The run stopped because [`Observer::interrupted`] said so; the checkpoint
/// it continues from is written.
#[derive(Clone, Debug)]
pub struct Interrupted {
    pub step: u64,
    pub out: PathBuf,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted at step {}; checkpoint written — continue with: curvlab run --resume --out {}",
            self.step,
            self.out.display()
        )
    }
}

impl std::error::Error for Interrupted {}

/// What a run directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// No directory yet.
    Pending,
    /// Started, not finished (resumable).
    Partial,
    /// Finished (`summary.json` written).
    Done,
    /// Finished, and the loss diverged.
    Diverged,
}

impl RunStatus {
    pub fn of(dir: &Path) -> RunStatus {
        let summary = dir.join("summary.json");
        if summary.is_file() {
            let diverged = fs::read_to_string(&summary)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v.get("diverged").and_then(|d| d.as_bool()))
                .unwrap_or(false);
            if diverged {
                RunStatus::Diverged
            } else {
                RunStatus::Done
            }
        } else if dir.is_dir() {
            RunStatus::Partial
        } else {
            RunStatus::Pending
        }
    }

    pub fn finished(self) -> bool {
        matches!(self, RunStatus::Done | RunStatus::Diverged)
    }

    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Pending => "-",
            RunStatus::Partial => "partial",
            RunStatus::Done => "done",
            RunStatus::Diverged => "diverged",
        }
    }
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
    let text = serde_json::to_string_pretty(&v)? + "\n";
    curvlab::atomic::write(&dir.join("config.json"), text.as_bytes())?;
    Ok(())
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

/// Removes the temporaries a crashed writer left in `dir` (its files only).
/// Called with the directory's lock held, so no live writer's temporary goes.
fn remove_stray_temporaries(dir: &Path) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if curvlab::atomic::is_temporary(&e.file_name()) && e.path().is_file() {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Runs `cfg`, writing config.json, metrics.jsonl (one row per measurement,
/// flushed), plot.png, a checkpoint every `checkpoint_every` steps and when the
/// run stops (checkpoint.safetensors), model.safetensors and finally
/// summary.json (its presence marks the run finished) into `out`. With
/// `resume`, a directory with a checkpoint continues from it; rows after the
/// checkpoint are dropped and produced again, so none is lost or duplicated.
/// `observer` hears of the progress and may interrupt the run.
///
/// The directory is locked for the life of the run ([`RunLock`]): while
/// another process runs in it, this fails at once with [`crate::lock::Busy`].
pub fn run_to_dir(
    cfg: &RunConfig,
    out: &Path,
    opts: &RunOptions,
    observer: &mut dyn Observer,
) -> Result<RunEnd> {
    if opts.resume && out.join("summary.json").exists() {
        return Ok(RunEnd::AlreadyFinished);
    }
    let lock = RunLock::acquire(out)?;
    run_locked(cfg, lock, opts, observer)
}

/// [`run_to_dir`] in the directory `lock` holds (a sweep worker locks a run
/// before it decides to run it).
pub fn run_locked(
    cfg: &RunConfig,
    lock: RunLock,
    opts: &RunOptions,
    observer: &mut dyn Observer,
) -> Result<RunEnd> {
    let cfg = cfg.clone();
    let out = lock.dir().to_path_buf();
    let ckpt_path = out.join("checkpoint.safetensors");
    // Another process may have finished the run before the lock was ours.
    if opts.resume && out.join("summary.json").exists() {
        return Ok(RunEnd::AlreadyFinished);
    }
    if let Some(why) = lock.unsupported() {
        observer.notice(&format!("warning: {why}"));
    }
    // The directory's files are written once the data and model are set
    // up; a run that fails before that leaves no half-made directory behind.
    let created = lock.created();
    let abandon = |lock: RunLock| {
        if created {
            let _ = fs::remove_dir_all(lock.dir());
        }
    };
    // Settings, the data's shape, the model for it and the memory estimate:
    // checked before anything is allocated.
    if let Err(e) = curvlab::memory::check(&cfg) {
        abandon(lock);
        return Err(e.into());
    }
    let device = match backend::device(cfg.backend) {
        Ok(d) => d,
        Err(e) => {
            abandon(lock);
            return Err(e.into());
        }
    };
    remove_stray_temporaries(&out);
    let metrics_path = out.join("metrics.jsonl");
    let plot_path = out.join("plot.png");
    let title = format!("curvlab run — {}", out.display());
    let resuming = opts.resume && ckpt_path.exists();
    let setup = if resuming {
        curvlab::paths::read(&ckpt_path, "checkpoint")
            .map_err(anyhow::Error::from)
            .and_then(|bytes| {
                Run::resume(&cfg, &device, &bytes)
                    .block()
                    .map(|(r, h)| (r, h.rows))
                    .map_err(|e| anyhow::anyhow!("{}: {e}", ckpt_path.display()))
            })
    } else {
        Run::new(&cfg, &device)
            .block()
            .map(|r| (r, 0))
            .map_err(Into::into)
    };
    let (mut run, resumed_rows) = match setup {
        Ok(r) => r,
        Err(e) => {
            abandon(lock);
            return Err(e);
        }
    };
    let mut rows: Vec<MetricsRow> = Vec::new();
    let mut metrics = if resuming {
        let r = MetricsLog::resume(&metrics_path, resumed_rows)?;
        if let Some((_, msg)) = &r.torn {
            observer.notice(&format!("note: {msg}"));
        }
        rows = r.rows;
        r.log
    } else {
        write_config(&out, &cfg)?;
        MetricsLog::create(&metrics_path)?
    };
    // The rows a checkpoint follows reach the disk before it does.
    let checkpoint = |run: &Run, metrics: &MetricsLog| -> Result<()> {
        metrics.sync()?;
        let bytes = run.checkpoint().block()?;
        curvlab::atomic::write(&ckpt_path, &bytes)?;
        Ok(())
    };
    loop {
        if observer.interrupted() {
            observer.stopped();
            checkpoint(&run, &metrics)?;
            return Err(Interrupted {
                step: run.step(),
                out,
            }
            .into());
        }
        let ev = match run.next().block() {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(e) => {
                observer.stopped();
                let _ = checkpoint(&run, &metrics);
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
            } => observer.started(&Started {
                params,
                train,
                test,
                measure_n,
                steps,
                step: run.step(),
                resumed: resuming,
                out: out.clone(),
            }),
            Event::Step { step, loss, lr } => {
                observer.step(step, loss, lr, rows.last().and_then(|r| r.sharpness));
                if cfg.checkpoint_every > 0
                    && step.is_multiple_of(cfg.checkpoint_every)
                    && !run.has_pending()
                {
                    checkpoint(&run, &metrics)?;
                }
            }
            Event::Row(row) => {
                metrics.append(&row)?;
                observer.row(&row);
                rows.push(row);
                plot_run(&rows, &title, &plot_path)?;
            }
        }
    }
    observer.stopped();
    checkpoint(&run, &metrics)?;
    let summary = run.summary();
    let weights = out.join("model.safetensors");
    curvlab::weights::save(&summary.model, &weights)?;
    write_summary(&out, &summary, &rows)?;
    drop(lock);
    Ok(RunEnd::Finished(Finished {
        steps: summary.steps,
        rows: summary.rows,
        diverged: summary.diverged,
        metrics: rows,
    }))
}

/// Writes summary.json (atomically): the marker of a finished run that
/// sweeps skip on re-submission.
fn write_summary(out: &Path, s: &experiment::RunSummary, rows: &[MetricsRow]) -> Result<()> {
    let last = rows.last();
    let v = serde_json::json!({
        "steps": s.steps,
        "rows": s.rows,
        "diverged": s.diverged,
        "final": last,
    });
    let text = serde_json::to_string_pretty(&v)? + "\n";
    curvlab::atomic::write(&out.join("summary.json"), text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use curvlab::data::synthetic::SyntheticConfig;
    use curvlab::experiment::DataConfig;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("curvlab-rundir-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    /// A run of a few steps on a small synthetic set.
    fn tiny() -> RunConfig {
        let mut cfg = RunConfig {
            data: DataConfig::Synthetic(SyntheticConfig {
                n_train: 64,
                n_test: 32,
                ..Default::default()
            }),
            steps: 6,
            measure_every: 3,
            ..Default::default()
        };
        cfg.model.hidden = vec![8];
        cfg.measure.samples = 32;
        cfg.measure.jacobian = false;
        cfg
    }

    /// Counts what it hears; interrupts after `stop_after` steps.
    #[derive(Default)]
    struct Count {
        started: usize,
        steps: usize,
        rows: usize,
        stopped: usize,
        stop_after: Option<usize>,
    }

    impl Observer for Count {
        fn started(&mut self, _: &Started) {
            self.started += 1;
        }
        fn step(&mut self, _: u64, _: f64, _: f64, _: Option<f64>) {
            self.steps += 1;
        }
        fn row(&mut self, _: &MetricsRow) {
            self.rows += 1;
        }
        fn stopped(&mut self) {
            self.stopped += 1;
        }
        fn interrupted(&self) -> bool {
            self.stop_after.is_some_and(|n| self.steps >= n)
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_run_writes_its_directory_and_reports_to_its_observer() {
        let out = scratch("whole");
        let mut seen = Count::default();
        let end = run_to_dir(&tiny(), &out, &RunOptions::default(), &mut seen).unwrap();
        let RunEnd::Finished(f) = end else {
            panic!("not finished")
        };
        assert_eq!((f.steps, f.rows, f.metrics.len()), (6, 3, 3));
        assert_eq!(
            (seen.started, seen.steps, seen.rows, seen.stopped),
            (1, 6, 3, 1)
        );
        assert_eq!(
            names(&out),
            [
                "checkpoint.safetensors",
                "config.json",
                "metrics.jsonl",
                "model.safetensors",
                "plot.png",
                "run.lock",
                "summary.json"
            ]
        );
        assert_eq!(RunStatus::of(&out), RunStatus::Done);
        let cfg = read_run_config(&out.join("config.json")).unwrap();
        assert_eq!(cfg.steps, 6);
        // Resuming a finished run does nothing.
        let again = run_to_dir(&tiny(), &out, &RunOptions { resume: true }, &mut Silent).unwrap();
        assert!(matches!(again, RunEnd::AlreadyFinished));
        fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn an_interrupted_run_resumes_to_the_same_rows_and_stray_temporaries_go() {
        let whole = scratch("ref");
        let RunEnd::Finished(expected) =
            run_to_dir(&tiny(), &whole, &RunOptions::default(), &mut Silent).unwrap()
        else {
            panic!("not finished")
        };
        let out = scratch("cut");
        let mut stop = Count {
            stop_after: Some(4),
            ..Default::default()
        };
        let e = run_to_dir(&tiny(), &out, &RunOptions::default(), &mut stop).unwrap_err();
        let i = e
            .downcast_ref::<Interrupted>()
            .expect("an Interrupted error");
        assert_eq!(i.step, 4);
        assert!(e.to_string().contains("curvlab run --resume --out"), "{e}");
        assert_eq!(RunStatus::of(&out), RunStatus::Partial);
        // A crash mid-write left a temporary: it is not a summary, and goes on resume.
        let stray = out.join(".summary.json.tmp-1-00000000");
        fs::write(&stray, "{\"diverged\": false}").unwrap();
        assert!(curvlab::atomic::is_temporary(stray.file_name().unwrap()));
        assert_eq!(RunStatus::of(&out), RunStatus::Partial);
        let RunEnd::Finished(got) =
            run_to_dir(&tiny(), &out, &RunOptions { resume: true }, &mut Silent).unwrap()
        else {
            panic!("not finished")
        };
        assert!(!stray.exists());
        assert_eq!(got.metrics.len(), expected.metrics.len());
        // The files hold the same rows, timing aside (as `curvlab run --resume` promises).
        let untimed = |dir: &Path| -> Vec<serde_json::Value> {
            fs::read_to_string(dir.join("metrics.jsonl"))
                .unwrap()
                .lines()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    let o = v.as_object_mut().unwrap();
                    o.remove("wall_s");
                    o.remove("sharpness_wall_s");
                    v
                })
                .collect()
        };
        assert_eq!(untimed(&out), untimed(&whole));
        fs::remove_dir_all(&whole).unwrap();
        fs::remove_dir_all(&out).unwrap();
    }
}
