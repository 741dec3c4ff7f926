//! `curvlab sweep`: plan a sweep (file or preset), run one of its runs or all
//! of them, or write a Slurm job-array script that runs them, one per task.
//! Expansion lives in `crate::sweep`; a run is `run::run_to_dir`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use curvlab::backend::BackendKind;
use curvlab::experiment::RunConfig;

use crate::cli::Backend;
use crate::sweep::{self, ExpandOptions, Manifest, ManifestRun, SweepFile};

/// `println!` that ends the program quietly when stdout is a closed pipe
/// (`curvlab sweep plan … | head`), instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        match writeln!(std::io::stdout().lock(), $($arg)*) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
            r => r?,
        }
    }};
}
pub(crate) use say;

#[derive(Subcommand, Debug)]
pub enum SweepCommand {
    /// List the runs of a sweep: index, status (done, diverged, partial, -) and directory.
    Plan(PlanArgs),
    /// Run one run of a sweep (--index, default $SLURM_ARRAY_TASK_ID) or every unfinished one (--all); finished runs are skipped.
    Run(SweepRunArgs),
    /// Write an sbatch script that runs the sweep as a Slurm job array, one run per task.
    Slurm(SlurmArgs),
    /// List the presets, or print one as a sweep file to start from.
    Presets {
        /// Print this preset's sweep file.
        name: Option<String>,
    },
}

/// Which sweep, at which scale, where.
#[derive(Args, Debug, Clone)]
pub struct SweepSpec {
    /// A sweep file (TOML) or a preset: fig1, fig2, fig3, fig4, fig5, appc2.
    pub sweep: String,
    /// paper (the file as written) or a scale the file defines (presets: small, tiny).
    #[arg(long, default_value = sweep::DEFAULT_SCALE)]
    pub scale: String,
    /// Sweep directory: sweep.json and one directory per run [default: runs/<name>-<scale>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// CIFAR-10 directory for sweeps on CIFAR data [default: $CURVLAB_DATA].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Compute backend of every run (overrides the sweep file).
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Override a setting of every run, PATH=TOML value (repeatable), e.g. --set measure.samples=1000.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub spec: SweepSpec,
    /// Print the manifest (sweep.json: every run's settings and full configuration) instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SweepRunArgs {
    #[command(flatten)]
    pub spec: SweepSpec,
    /// The run to do [default: $SLURM_ARRAY_TASK_ID].
    #[arg(long, conflicts_with = "all")]
    pub index: Option<usize>,
    /// Do every unfinished run, one after another.
    #[arg(long)]
    pub all: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SlurmArgs {
    #[command(flatten)]
    pub spec: SweepSpec,
    /// GPUs per task (sbatch --gpus); 0 = a CPU job. With GPUs the runs use wgpu unless --backend says otherwise.
    #[arg(long, default_value_t = 0)]
    pub gpus: u32,
    /// CPU cores per task (sbatch --cpus-per-task).
    #[arg(long, default_value_t = 4)]
    pub cpus_per_task: u32,
    /// Memory per task (sbatch --mem), e.g. 16G.
    #[arg(long, default_value = "16G")]
    pub mem: String,
    /// Wall-time limit per task (sbatch --time), e.g. 1-00:00:00 or 12:00:00.
    #[arg(long, default_value = "24:00:00")]
    pub time: String,
    /// Partition (sbatch --partition).
    #[arg(long)]
    pub partition: Option<String>,
    /// Account to charge (sbatch --account).
    #[arg(long)]
    pub account: Option<String>,
    /// Run at most K tasks at once (the array's %K throttle).
    #[arg(long)]
    pub max_parallel: Option<usize>,
    /// An extra sbatch option, written as an #SBATCH line (repeatable), e.g. --sbatch=--qos=long.
    #[arg(long = "sbatch", value_name = "OPTION", allow_hyphen_values = true)]
    pub extra: Vec<String>,
    /// Job name [default: curvlab-<name>-<scale>].
    #[arg(long)]
    pub job_name: Option<String>,
    /// Where to write the script [default: <out>/slurm.sbatch].
    #[arg(long)]
    pub script: Option<PathBuf>,
}

/// Runs the parsed sweep command.
pub fn sweep(cmd: SweepCommand) -> Result<()> {
    match cmd {
        SweepCommand::Plan(a) => plan(a),
        SweepCommand::Run(a) => run(a),
        SweepCommand::Slurm(a) => slurm(a),
        SweepCommand::Presets { name } => presets(name),
    }
}

/// A sweep resolved from the command line.
struct Resolved {
    file: SweepFile,
    manifest: Manifest,
    out: PathBuf,
}

fn resolve(spec: &SweepSpec, require_data: bool, backend: Option<BackendKind>) -> Result<Resolved> {
    let file = sweep::load(&spec.sweep)?;
    let mut sets = Vec::new();
    if let Some(b) = spec.backend.map(BackendKind::from).or(backend) {
        let name = serde_json::to_value(b)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("backend name"))?;
        sets.push(("backend".to_string(), toml::Value::String(name)));
    }
    for s in &spec.sets {
        sets.push(sweep::parse_set(s)?);
    }
    let data_env = std::env::var_os(sweep::DATA_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(d) = spec.data.as_ref() {
        if !d.is_dir() {
            bail!("--data {}: no such directory", d.display());
        }
    }
    let opts = ExpandOptions {
        scale: spec.scale.clone(),
        data: spec.data.clone(),
        data_env,
        sets,
        require_data,
    };
    let manifest = file.expand(&opts)?;
    if require_data {
        check_data_dirs(&manifest)?;
    }
    let out = spec
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/{}-{}", file.name, spec.scale)));
    Ok(Resolved {
        file,
        manifest,
        out,
    })
}

/// Every CIFAR directory the runs name exists (one line, before any work).
fn check_data_dirs(m: &Manifest) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for r in &m.runs {
        if r.config["data"]["kind"] == "cifar" {
            if let Some(d) = r.config["data"]["dir"].as_str() {
                if seen.insert(d.to_string()) && !Path::new(d).is_dir() {
                    bail!(
                        "data directory {d} does not exist (pass --data DIR or set {})",
                        sweep::DATA_ENV
                    );
                }
            }
        }
    }
    Ok(())
}

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
            let diverged = std::fs::read_to_string(&summary)
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

fn plan(a: PlanArgs) -> Result<()> {
    let r = resolve(&a.spec, false, None)?;
    if a.json {
        say!("{}", serde_json::to_string_pretty(&r.manifest)?);
        return Ok(());
    }
    let m = &r.manifest;
    let statuses: Vec<RunStatus> = m
        .runs
        .iter()
        .map(|run| RunStatus::of(&r.out.join(&run.dir)))
        .collect();
    let done = statuses.iter().filter(|s| s.finished()).count();
    say!(
        "{} at scale '{}' ({}): {} runs, {} finished; sweep directory {}",
        m.name,
        m.scale,
        m.source,
        m.runs.len(),
        done,
        r.out.display()
    );
    if !m.description.is_empty() {
        say!("{}", m.description);
    }
    let scales: Vec<String> = r.file.scales().into_iter().map(|s| s.0).collect();
    say!("scales: {}", scales.join(", "));
    if m.data_missing {
        say!(
            "data: not set: these runs read CIFAR-10; pass --data DIR or set {} to run them",
            sweep::DATA_ENV
        );
    }
    let width = m.runs.len().saturating_sub(1).to_string().len().max(5);
    say!("{:>width$}  {:<8}  dir", "index", "status");
    for (run, s) in m.runs.iter().zip(&statuses) {
        say!("{:>width$}  {:<8}  {}", run.index, s.name(), run.dir);
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
    let r = resolve(&a.spec, true, None)?;
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
    let mut ran = 0;
    for run in todo {
        let dir = r.out.join(&run.dir);
        let status = RunStatus::of(&dir);
        if status.finished() {
            eprintln!(
                "run {}/{n} {}: already finished ({}); skipped",
                run.index,
                run.dir,
                status.name()
            );
            continue;
        }
        eprintln!(
            "run {}/{n} {}: {} → {}",
            run.index,
            if status == RunStatus::Partial {
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
        if let Err(e) = run_to_dir(&cfg, &dir, a.quiet) {
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
    if a.all {
        eprintln!(
            "sweep {}: all {n} runs finished; report with: curvlab report {}",
            m.name,
            r.out.display()
        );
    }
    Ok(())
}

/// Runs one configuration into `dir`, resuming it if it was started.
fn run_to_dir(cfg: &RunConfig, dir: &Path, quiet: bool) -> Result<()> {
    super::run::run_to_dir(
        cfg,
        dir,
        &super::run::RunOptions {
            quiet,
            resume: true,
        },
    )
}

/// `'text'` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=,+:@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn slurm(a: SlurmArgs) -> Result<()> {
    if a.cpus_per_task == 0 {
        bail!("--cpus-per-task must be ≥ 1");
    }
    let backend = (a.gpus > 0).then_some(BackendKind::Wgpu);
    let r = resolve(&a.spec, true, backend)?;
    let m = &r.manifest;
    let n = m.runs.len();
    let out = absolute(&r.out);
    m.establish(&out, &r.file.text)?;
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("{}", logs.display()))?;
    let exe = std::env::current_exe().context("the path of this curvlab binary")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let cwd = std::env::current_dir().context("the current directory")?;

    // The exact command every task runs: this binary, this sweep, this scale.
    let mut argv: Vec<String> = vec![exe.display().to_string(), "sweep".into(), "run".into()];
    argv.push(if Path::new(&a.spec.sweep).is_file() {
        absolute(Path::new(&a.spec.sweep)).display().to_string()
    } else {
        a.spec.sweep.clone()
    });
    argv.extend(["--scale".into(), a.spec.scale.clone()]);
    argv.extend(["--out".into(), out.display().to_string()]);
    let data = a.spec.data.clone().or_else(|| {
        std::env::var_os(sweep::DATA_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let reads_cifar = m.runs.iter().any(|r| r.config["data"]["kind"] == "cifar");
    if let (Some(d), true) = (data, reads_cifar) {
        argv.extend(["--data".into(), absolute(&d).display().to_string()]);
    }
    if let Some(b) = a.spec.backend.map(BackendKind::from).or(backend) {
        argv.extend(["--backend".into(), b.to_string()]);
    }
    for s in &a.spec.sets {
        argv.extend(["--set".into(), s.clone()]);
    }
    argv.push("--quiet".into());
    let command = argv
        .iter()
        .map(|s| shell_quote(s))
        .collect::<Vec<_>>()
        .join(" ");

    let job_name = a
        .job_name
        .clone()
        .unwrap_or_else(|| format!("curvlab-{}-{}", m.name, m.scale));
    let mut array = format!("0-{}", n - 1);
    if let Some(k) = a.max_parallel {
        if k == 0 {
            bail!("--max-parallel must be ≥ 1");
        }
        array += &format!("%{k}");
    }
    let mut opts: Vec<String> = vec![
        format!("--job-name={job_name}"),
        format!("--array={array}"),
        format!("--output={}/%A_%a.log", logs.display()),
        format!("--chdir={}", cwd.display()),
        "--nodes=1".into(),
        "--ntasks=1".into(),
        format!("--cpus-per-task={}", a.cpus_per_task),
        format!("--mem={}", a.mem),
        format!("--time={}", a.time),
    ];
    if a.gpus > 0 {
        opts.push(format!("--gpus={}", a.gpus));
    }
    if let Some(p) = &a.partition {
        opts.push(format!("--partition={p}"));
    }
    if let Some(acc) = &a.account {
        opts.push(format!("--account={acc}"));
    }
    for e in &a.extra {
        if !e.starts_with('-') || e.contains('\n') {
            bail!("--sbatch {e:?}: expected one sbatch option such as --qos=long");
        }
        opts.push(e.clone());
    }
    let script_path = a
        .script
        .clone()
        .map(|p| absolute(&p))
        .unwrap_or_else(|| out.join("slurm.sbatch"));
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    for o in &opts {
        s.push_str(&format!("#SBATCH {o}\n"));
    }
    s.push_str(&format!(
        "#\n# curvlab {} sweep '{}' at scale '{}' ({}): {n} runs, one per array task.\n\
         # Submit with: sbatch {}\n\
         # Each task runs the run whose index is $SLURM_ARRAY_TASK_ID into its own\n\
         # directory under {}; a finished run (summary.json) is skipped, an unfinished\n\
         # one resumed, so the whole array can be submitted again after a failure.\n\
         # Progress: curvlab sweep plan with the same arguments; results: curvlab report {}\n\
         set -euo pipefail\n",
        env!("CARGO_PKG_VERSION"),
        m.name,
        m.scale,
        m.source,
        shell_quote(&script_path.display().to_string()),
        out.display(),
        shell_quote(&out.display().to_string()),
    ));
    // burn's CPU backend sizes its thread pool from this: the task's cores.
    s.push_str("export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"\n");
    s.push_str(&format!("exec {command}\n"));
    if let Some(parent) = script_path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
    }
    sweep::write_atomic(&script_path, &s)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&script_path, std::fs::Permissions::from_mode(0o755));
    }
    let unfinished = m
        .runs
        .iter()
        .filter(|run| !RunStatus::of(&out.join(&run.dir)).finished())
        .count();
    say!(
        "wrote {}: {n} runs as a job array ({unfinished} unfinished; finished ones are skipped)",
        script_path.display()
    );
    say!(
        "submit:   sbatch {}",
        shell_quote(&script_path.display().to_string())
    );
    say!("logs:     {}/<job>_<index>.log", logs.display());
    say!(
        "report:   curvlab report {}",
        shell_quote(&out.display().to_string())
    );
    Ok(())
}

fn presets(name: Option<String>) -> Result<()> {
    match name {
        Some(n) => {
            let (_, text) = sweep::PRESETS
                .iter()
                .find(|(p, _)| *p == n)
                .ok_or_else(|| anyhow!("no preset '{n}' (presets: {})", sweep::preset_names()))?;
            say!("{}", text.trim_end());
        }
        None => {
            for (n, text) in sweep::PRESETS {
                let f = SweepFile::parse(text, n)?;
                let scales: Vec<String> = f.scales().into_iter().map(|s| s.0).collect();
                say!("{n:<6} {}  [scales: {}]", f.description, scales.join(", "));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/a/b-c_d.toml"), "/a/b-c_d.toml");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
