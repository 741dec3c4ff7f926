//! Slurm: an sbatch script that runs a sweep as a job array, one run per
//! task. Each task runs `curvlab sweep run` with the same sweep, scale and
//! directories; its index comes from `SLURM_ARRAY_TASK_ID`; finished runs are
//! skipped and unfinished ones resumed, so the array can be submitted again.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use curvlab::backend::BackendKind;

use crate::run_dir::RunStatus;
use crate::sweep::{self, Request};

/// The resources and options of the job array.
#[derive(Clone, Debug)]
pub struct SlurmOptions {
    /// GPUs per task (`--gpus`); 0 = a CPU job. With GPUs the runs use wgpu
    /// unless the request names a backend.
    pub gpus: u32,
    /// CPU cores per task (`--cpus-per-task`).
    pub cpus_per_task: u32,
    /// Memory per task (`--mem`), e.g. 16G.
    pub mem: String,
    /// Wall-time limit per task (`--time`).
    pub time: String,
    pub partition: Option<String>,
    pub account: Option<String>,
    /// At most K tasks at once (the array's `%K`).
    pub max_parallel: Option<usize>,
    /// Extra sbatch options, one `#SBATCH` line each.
    pub extra: Vec<String>,
    /// Job name [default: `curvlab-<name>-<scale>`].
    pub job_name: Option<String>,
    /// Where to write the script [default: `<out>/slurm.sbatch`].
    pub script: Option<PathBuf>,
}

/// What [`write_script`] wrote.
#[derive(Clone, Debug)]
pub struct SlurmScript {
    /// The script.
    pub path: PathBuf,
    /// The sweep directory (absolute) and its log directory.
    pub out: PathBuf,
    pub logs: PathBuf,
    /// Runs of the sweep (array tasks), and how many are not finished.
    pub runs: usize,
    pub unfinished: usize,
}

/// `'text'` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
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

/// Resolves the sweep `req` names, writes its manifest into the sweep
/// directory and an sbatch script whose tasks run `exe` (this curvlab binary)
/// from `cwd` (the submission directory).
pub fn write_script(
    req: &Request,
    o: &SlurmOptions,
    exe: &Path,
    cwd: &Path,
) -> Result<SlurmScript> {
    if o.cpus_per_task == 0 {
        bail!("--cpus-per-task must be ≥ 1");
    }
    let backend = (o.gpus > 0).then_some(BackendKind::Wgpu);
    let r = sweep::resolve(req, true, backend)?;
    let m = &r.manifest;
    let n = m.runs.len();
    let out = absolute(&r.out);
    m.establish(&out, &r.file.text)?;
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("{}", logs.display()))?;

    // The exact command every task runs: this binary, this sweep, this scale.
    let mut argv: Vec<String> = vec![exe.display().to_string(), "sweep".into(), "run".into()];
    argv.push(if Path::new(&req.sweep).is_file() {
        absolute(Path::new(&req.sweep)).display().to_string()
    } else {
        req.sweep.clone()
    });
    argv.extend(["--scale".into(), req.scale.clone()]);
    argv.extend(["--out".into(), out.display().to_string()]);
    let data = req.data.clone().or_else(sweep::data_env);
    let reads_cifar = m.runs.iter().any(|r| r.config["data"]["kind"] == "cifar");
    if let (Some(d), true) = (data, reads_cifar) {
        argv.extend(["--data".into(), absolute(&d).display().to_string()]);
    }
    if let Some(b) = req.backend.or(backend) {
        argv.extend(["--backend".into(), b.to_string()]);
    }
    for s in &req.sets {
        argv.extend(["--set".into(), s.clone()]);
    }
    argv.push("--quiet".into());
    let command = argv
        .iter()
        .map(|s| shell_quote(s))
        .collect::<Vec<_>>()
        .join(" ");

    let job_name = o
        .job_name
        .clone()
        .unwrap_or_else(|| format!("curvlab-{}-{}", m.name, m.scale));
    let mut array = format!("0-{}", n - 1);
    if let Some(k) = o.max_parallel {
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
        format!("--cpus-per-task={}", o.cpus_per_task),
        format!("--mem={}", o.mem),
        format!("--time={}", o.time),
    ];
    if o.gpus > 0 {
        opts.push(format!("--gpus={}", o.gpus));
    }
    if let Some(p) = &o.partition {
        opts.push(format!("--partition={p}"));
    }
    if let Some(acc) = &o.account {
        opts.push(format!("--account={acc}"));
    }
    for e in &o.extra {
        if !e.starts_with('-') || e.contains('\n') {
            bail!("--sbatch {e:?}: expected one sbatch option such as --qos=long");
        }
        opts.push(e.clone());
    }
    let script_path = o
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
    curvlab::atomic::write(&script_path, s.as_bytes())?;
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
    Ok(SlurmScript {
        path: script_path,
        out,
        logs,
        runs: n,
        unfinished,
    })
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
