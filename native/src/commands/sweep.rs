//! `curvlab sweep`: plan a sweep (file or preset), run one of its runs or all
//! of them, or write a Slurm job-array script that runs them, one per task.
//! Expansion, manifests, presets and scripts live in the lab
//! ([`curvlab_lab::sweep`], [`curvlab_lab::slurm`]); a run is
//! [`super::run::run_to_dir`].

use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use curvlab::backend::BackendKind;
use curvlab::experiment::RunConfig;
use curvlab_lab::lock::{Busy, RunLock};
use curvlab_lab::manifest::ManifestRun;
use curvlab_lab::run_dir::RunStatus;
use curvlab_lab::slurm::{shell_quote, SlurmOptions};
use curvlab_lab::sweep::{self, Request, SweepFile};
use curvlab_lab::{presets, slurm};

use crate::cli::{PlanArgs, SlurmArgs, SweepCommand, SweepRunArgs, SweepSpec};

/// Runs the parsed sweep command.
pub fn sweep(cmd: SweepCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        SweepCommand::Plan(a) => plan(a, out),
        SweepCommand::Run(a) => run(a),
        SweepCommand::Slurm(a) => write_slurm(a, out),
        SweepCommand::Presets { name } => list_presets(name, out),
    }
}

fn request(spec: &SweepSpec) -> Request {
    Request {
        sweep: spec.sweep.clone(),
        scale: spec.scale.clone(),
        out: spec.out.clone(),
        data: spec.data.clone(),
        backend: spec.backend.map(BackendKind::from),
        sets: spec.sets.clone(),
    }
}

fn plan(a: PlanArgs, out: &mut dyn Write) -> Result<()> {
    let r = sweep::resolve(&request(&a.spec), false, None)?;
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&r.manifest)?)?;
        return Ok(());
    }
    let m = &r.manifest;
    let statuses: Vec<RunStatus> = m
        .runs
        .iter()
        .map(|run| RunStatus::of(&r.out.join(&run.dir)))
        .collect();
    let done = statuses.iter().filter(|s| s.finished()).count();
    writeln!(
        out,
        "{} at scale '{}' ({}): {} runs, {} finished; sweep directory {}",
        m.name,
        m.scale,
        m.source,
        m.runs.len(),
        done,
        r.out.display()
    )?;
    if !m.description.is_empty() {
        writeln!(out, "{}", m.description)?;
    }
    let scales: Vec<String> = r.file.scales().into_iter().map(|s| s.0).collect();
    writeln!(out, "scales: {}", scales.join(", "))?;
    if m.data_missing {
        writeln!(
            out,
            "data: not set: these runs read CIFAR-10; pass --data DIR or set {} to run them",
            sweep::DATA_ENV
        )?;
    }
    let width = m.runs.len().saturating_sub(1).to_string().len().max(5);
    writeln!(out, "{:>width$}  {:<8}  dir", "index", "status")?;
    for (run, s) in m.runs.iter().zip(&statuses) {
        writeln!(out, "{:>width$}  {:<8}  {}", run.index, s.name(), run.dir)?;
    }
    Ok(())
}

/// The index from `--index` or `$SLURM_ARRAY_TASK_ID`.
fn chosen_index(a: &SweepRunArgs) -> Result<usize> {
    if let Some(i) = a.index {
        return Ok(i);
    }
    match std::env::var("SLURM_ARRAY_TASK_ID") {
        Ok(v) => v.trim().parse().map_err(|_| {
            anyhow!("SLURM_ARRAY_TASK_ID is '{v}', not a run index; pass --index I")
        }),
        Err(_) => bail!(
            "no run chosen: pass --index I or --all (a Slurm array task gets its index from SLURM_ARRAY_TASK_ID)"
        ),
    }
}

fn run(a: SweepRunArgs) -> Result<()> {
    let r = sweep::resolve(&request(&a.spec), true, None)?;
    let m = &r.manifest;
    let n = m.runs.len();
    let todo: Vec<&ManifestRun> = if a.all {
        m.runs.iter().collect()
    } else {
        let i = chosen_index(&a)?;
        let run = m.runs.get(i).ok_or_else(|| {
            anyhow!(
                "run index {i} is out of range: sweep '{}' at scale '{}' has {n} runs (0–{})",
                m.name,
                m.scale,
                n.saturating_sub(1)
            )
        })?;
        vec![run]
    };
    m.establish(&r.out, &r.file.text)?;
    let mut failed = Vec::new();
    let mut busy = Vec::new();
    let mut ran = 0;
    for run in todo {
        let dir = r.out.join(&run.dir);
        if RunStatus::of(&dir).finished() {
            skip_finished(run, n, &dir);
            continue;
        }
        // One worker per run: a run another process holds is its work, and
        // one it finished meanwhile is done.
        let lock = match RunLock::acquire(&dir) {
            Ok(lock) => lock,
            Err(e) => match e.downcast_ref::<Busy>() {
                Some(b) if a.all => {
                    let who = if b.holder.is_empty() {
                        "another process".to_string()
                    } else {
                        b.holder.clone()
                    };
                    eprintln!(
                        "run {}/{n} {}: being run by {who}; skipped",
                        run.index, run.dir
                    );
                    busy.push(run.index);
                    continue;
                }
                _ => return Err(e.context(format!("run {} ({})", run.index, run.dir))),
            },
        };
        let status = RunStatus::of(&dir);
        if status.finished() {
            skip_finished(run, n, &dir);
            continue;
        }
        eprintln!(
            "run {}/{n} {}: {} → {}",
            run.index,
            if status == RunStatus::Partial && !lock.created() {
                "resuming"
            } else {
                "starting"
            },
            run.describe(),
            dir.display()
        );
        let cfg: RunConfig = serde_json::from_value(run.config.clone())
            .map_err(|e| anyhow!("run {}: configuration: {e}", run.index))?;
        ran += 1;
        // Started runs resume from their checkpoints.
        if let Err(e) = super::run::run_to_dir(&cfg, &dir, a.quiet, true, Some(lock)) {
            if !a.all {
                return Err(e.context(format!("run {} ({})", run.index, run.dir)));
            }
            eprintln!("run {} ({}) failed: {e:#}", run.index, run.dir);
            failed.push(run.index);
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {ran} runs failed (indices {:?}); rerun to retry them",
            failed.len(),
            failed
        );
    }
    if a.all && busy.is_empty() {
        eprintln!(
            "sweep {}: all {n} runs finished; report with: curvlab report {}",
            m.name,
            r.out.display()
        );
    } else if a.all {
        eprintln!(
            "sweep {}: {ran} runs done here; {} being run by other processes (indices {:?}); report when they finish: curvlab report {}",
            m.name,
            busy.len(),
            busy,
            r.out.display()
        );
    }
    Ok(())
}

/// Says that a finished run is skipped.
fn skip_finished(run: &ManifestRun, n: usize, dir: &std::path::Path) {
    eprintln!(
        "run {}/{n} {}: already finished ({}); skipped",
        run.index,
        run.dir,
        RunStatus::of(dir).name()
    );
}

fn write_slurm(a: SlurmArgs, out: &mut dyn Write) -> Result<()> {
    let opts = SlurmOptions {
        gpus: a.gpus,
        cpus_per_task: a.cpus_per_task,
        mem: a.mem,
        time: a.time,
        partition: a.partition,
        account: a.account,
        max_parallel: a.max_parallel,
        extra: a.extra,
        job_name: a.job_name,
        script: a.script,
    };
    let exe = std::env::current_exe().context("the path of this curvlab binary")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let cwd = std::env::current_dir().context("the current directory")?;
    let s = slurm::write_script(&request(&a.spec), &opts, &exe, &cwd)?;
    let script = shell_quote(&s.path.display().to_string());
    writeln!(
        out,
        "wrote {}: {} runs as a job array ({} unfinished; finished ones are skipped)",
        s.path.display(),
        s.runs,
        s.unfinished
    )?;
    writeln!(out, "submit:   sbatch {script}")?;
    writeln!(out, "logs:     {}/<job>_<index>.log", s.logs.display())?;
    writeln!(
        out,
        "report:   curvlab report {}",
        shell_quote(&s.out.display().to_string())
    )?;
    Ok(())
}

fn list_presets(name: Option<String>, out: &mut dyn Write) -> Result<()> {
    match name {
        Some(n) => {
            let text = presets::get(&n)
                .ok_or_else(|| anyhow!("no preset '{n}' (presets: {})", presets::names()))?;
            writeln!(out, "{}", text.trim_end())?;
        }
        None => {
            for (n, text) in presets::PRESETS {
                let f = SweepFile::parse(text, n)?;
                let scales: Vec<String> = f.scales().into_iter().map(|s| s.0).collect();
                writeln!(
                    out,
                    "{n:<6} {}  [scales: {}]",
                    f.description,
                    scales.join(", ")
                )?;
            }
        }
    }
    Ok(())
}
