//! The real Slurm test: a private one-node Slurm cluster on this machine runs
//! the job array that `curvlab sweep slurm` writes, and `curvlab report`
//! merges the runs its tasks wrote.
//!
//! Setup (as Debian's slurm-wlm 22.05 allows as root, without systemd): a
//! private `munged --force` with its own key and socket; a `slurm.conf` in a
//! temporary directory, found through `SLURM_CONF`, describing this host with
//! its real CPU count and memory (`slurmd -C`), `proctrack/linuxproc`,
//! `task/none`, no cgroups, no accounting, `MailProg=/bin/true`, on free
//! ports; `slurmctld -D` and `slurmd -D` in the background; `sinfo` polled
//! until the node is idle. With no accounting there is no `sacct`, so the job
//! is followed with `squeue` and its outcome read with `scontrol`. The daemons
//! are stopped by the process ids this test started.
//!
//! Without Slurm (install: `scripts/slurm-setup.sh`) the test is skipped with
//! a printed reason, unless `CURVLAB_REQUIRE_SLURM=1` (set by scripts/test.sh),
//! when it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TOOLS: &[&str] = &[
    "munged",
    "slurmctld",
    "slurmd",
    "sbatch",
    "squeue",
    "sinfo",
    "scontrol",
];

/// A program in PATH or in the sbin directories (daemons live there).
fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{cmd:?} did not start: {e}"))
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// A free TCP port on localhost (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The private cluster; dropping it stops the daemons it started.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    /// (name, child) in start order.
    daemons: Vec<(&'static str, Child)>,
    tools: std::collections::HashMap<&'static str, PathBuf>,
}

impl Cluster {
    fn tool(&self, name: &str) -> Command {
        let mut c = Command::new(&self.tools[name]);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    fn spawn(&mut self, name: &'static str, args: &[&str]) {
        let log = std::fs::File::create(self.dir.join(format!("{name}.out"))).unwrap();
        let child = Command::new(&self.tools[name])
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} did not start: {e}"));
        self.daemons.push((name, child));
    }

    /// The daemons' own logs, for a failure message.
    fn logs(&self) -> String {
        let mut s = String::new();
        for f in [
            "munged.out",
            "slurmctld.out",
            "slurmd.out",
            "slurmctld.log",
            "slurmd.log",
        ] {
            if let Ok(t) = std::fs::read_to_string(self.dir.join(f)) {
                let tail: Vec<&str> = t.lines().rev().take(15).collect();
                s += &format!(
                    "--- {f}\n{}\n",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        s
    }

    fn start(tools: std::collections::HashMap<&'static str, PathBuf>) -> Cluster {
        // Short path: the MUNGE socket path must fit a sockaddr_un (108 bytes).
        let dir = PathBuf::from(format!("/tmp/curvlab-slurm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["", "munge", "state", "spool"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        set_mode(&dir, 0o755);
        set_mode(&dir.join("munge"), 0o700);
        let mut c = Cluster {
            conf: dir.join("slurm.conf"),
            dir,
            daemons: vec![],
            tools,
        };
        let d = c.dir.clone();

        // MUNGE with its own key (1 KiB of random bytes) and socket.
        let key = d.join("munge/munge.key");
        let mut bytes = vec![0u8; 1024];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut bytes)
            .unwrap();
        std::fs::write(&key, bytes).unwrap();
        set_mode(&key, 0o600);
        let socket = d.join("munge/munge.socket");
        let p = |x: &Path| x.display().to_string();
        c.spawn(
            "munged",
            &[
                "--foreground",
                "--force",
                &format!("--key-file={}", p(&key)),
                &format!("--socket={}", p(&socket)),
                &format!("--pid-file={}", p(&d.join("munge/munged.pid"))),
                &format!("--log-file={}", p(&d.join("munge/munged.log"))),
                &format!("--seed-file={}", p(&d.join("munge/munged.seed"))),
            ],
        );
        wait_for(Duration::from_secs(20), || socket.exists())
            .unwrap_or_else(|_| panic!("munged did not create its socket\n{}", c.logs()));

        // This host as slurmd sees it: "NodeName=… CPUs=… RealMemory=…".
        let probe = output(Command::new(&c.tools["slurmd"]).arg("-C"));
        let node = text(&probe)
            .lines()
            .find(|l| l.starts_with("NodeName="))
            .unwrap_or_else(|| panic!("slurmd -C printed no NodeName line: {}", text(&probe)))
            .to_string();
        let host = node
            .split_whitespace()
            .next()
            .and_then(|f| f.strip_prefix("NodeName="))
            .unwrap()
            .to_string();
        let (ctld_port, d_port) = (free_port(), free_port());
        let conf = format!(
            "ClusterName=curvlab{pid}\n\
             SlurmctldHost={host}(127.0.0.1)\n\
             SlurmctldPort={ctld_port}\n\
             SlurmdPort={d_port}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={socket}\n\
             StateSaveLocation={state}\n\
             SlurmdSpoolDir={spool}\n\
             SlurmctldPidFile={dir}/slurmctld.pid\n\
             SlurmdPidFile={dir}/slurmd.pid\n\
             SlurmctldLogFile={dir}/slurmctld.log\n\
             SlurmdLogFile={dir}/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             JobCompType=jobcomp/none\n\
             SchedulerType=sched/backfill\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\n\
             ReturnToService=2\n\
             MpiDefault=none\n\
             MailProg=/bin/true\n\
             {node} NodeAddr=127.0.0.1 State=UNKNOWN\n\
             PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
            pid = std::process::id(),
            socket = p(&socket),
            state = p(&d.join("state")),
            spool = p(&d.join("spool")),
            dir = p(&d),
        );
        std::fs::write(&c.conf, conf).unwrap();
        c.spawn("slurmctld", &["-D"]);
        c.spawn("slurmd", &["-D"]);
        let idle = wait_for(Duration::from_secs(60), || {
            let o = output(c.tool("sinfo").args(["-h", "-o", "%t"]));
            o.status.success() && text(&o).trim() == "idle"
        });
        if idle.is_err() {
            panic!("the Slurm node did not become idle in 60 s\n{}", c.logs());
        }
        c
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Stop the daemons by the ids we started, newest first: SIGTERM, then
        // SIGKILL after 10 s.
        for (name, child) in self.daemons.iter_mut().rev() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > deadline => {
                        eprintln!("{name} (pid {pid}) ignored SIGTERM; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("Slurm test files kept in {}", self.dir.display());
        }
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn wait_for(limit: Duration, mut ready: impl FnMut() -> bool) -> Result<(), ()> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(())
}

/// Submits `script`, waits until the job leaves the queue, and returns the
/// job id and its tasks' states (from `scontrol show job`).
fn submit_and_wait(c: &Cluster, script: &Path, limit: Duration) -> (String, Vec<String>) {
    let o = output(c.tool("sbatch").arg("--parsable").arg(script));
    assert!(
        o.status.success(),
        "sbatch failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        c.logs()
    );
    let id = text(&o).trim().split(';').next().unwrap().to_string();
    let done = wait_for(limit, || {
        let q = output(c.tool("squeue").args(["-h", "-j", &id]));
        q.status.success() && text(&q).trim().is_empty()
    });
    if done.is_err() {
        let q = output(c.tool("squeue").args(["-j", &id]));
        panic!(
            "job {id} still queued after {limit:?}:\n{}\n{}",
            text(&q),
            c.logs()
        );
    }
    let s = output(c.tool("scontrol").args(["show", "job", &id]));
    let states = text(&s)
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("JobState="))
        .map(str::to_string)
        .collect();
    (id, states)
}

/// Two tiny MLP runs on synthetic data: seconds each.
const SWEEP: &str = r#"
name = "slurmtest"
trials = 1
[base]
steps = 10
measure_every = 5
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
"#;

#[test]
fn job_array_runs_the_sweep_and_the_report_merges_it() {
    let required = std::env::var("CURVLAB_REQUIRE_SLURM").is_ok_and(|v| v == "1");
    let mut tools = std::collections::HashMap::new();
    let mut missing = vec![];
    for t in TOOLS {
        match find(t) {
            Some(p) => {
                tools.insert(*t, p);
            }
            None => missing.push(*t),
        }
    }
    let root = output(Command::new("id").arg("-u")).stdout == b"0\n";
    let reason = if !missing.is_empty() {
        Some(format!(
            "Slurm/MUNGE programs not found: {} (install with scripts/slurm-setup.sh)",
            missing.join(", ")
        ))
    } else if !root {
        Some("the private slurmd/munged need root".to_string())
    } else {
        None
    };
    if let Some(reason) = reason {
        if required {
            panic!("CURVLAB_REQUIRE_SLURM=1 but {reason}");
        }
        eprintln!("skipping the Slurm test: {reason}");
        return;
    }

    let cluster = Cluster::start(tools);
    let work = cluster.dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let sweep = work.join("slurmtest.toml");
    std::fs::write(&sweep, SWEEP).unwrap();
    let out = work.join("out");

    // The script as a user would make it.
    let o = output(
        Command::new(env!("CARGO_BIN_EXE_curvlab"))
            .args(["sweep", "slurm"])
            .arg(&sweep)
            .arg("--out")
            .arg(&out)
            .args([
                "--cpus-per-task",
                "1",
                "--mem",
                "500M",
                "--time",
                "00:10:00",
            ])
            .current_dir(&work),
    );
    assert!(
        o.status.success(),
        "curvlab sweep slurm: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let script = out.join("slurm.sbatch");
    assert!(text(&o).contains(&format!("sbatch {}", script.display())));
    let s = std::fs::read_to_string(&script).unwrap();
    assert!(s.contains("#SBATCH --array=0-1\n"), "{s}");

    let t = Instant::now();
    let (id, states) = submit_and_wait(&cluster, &script, Duration::from_secs(300));
    eprintln!(
        "job array {id}: {states:?} in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let logs: Vec<String> = (0..2)
        .map(|i| {
            std::fs::read_to_string(out.join(format!("logs/{id}_{i}.log"))).unwrap_or_default()
        })
        .collect();
    assert_eq!(
        states,
        ["COMPLETED", "COMPLETED"],
        "task logs:\n{}\n{}",
        logs.join("\n---\n"),
        cluster.logs()
    );
    for (i, dir) in ["optim.lr=0.05,seed=0", "optim.lr=0.2,seed=0"]
        .iter()
        .enumerate()
    {
        assert!(
            out.join(dir).join("summary.json").is_file(),
            "{dir} not finished; log of task {i}:\n{}",
            logs[i]
        );
        assert!(logs[i].contains(&format!("run {i}/2")), "{}", logs[i]);
    }

    // Re-submitting the same script skips both finished runs.
    let (id2, states) = submit_and_wait(&cluster, &script, Duration::from_secs(120));
    assert_eq!(states, ["COMPLETED", "COMPLETED"]);
    for i in 0..2 {
        let log = std::fs::read_to_string(out.join(format!("logs/{id2}_{i}.log"))).unwrap();
        assert!(log.contains("already finished"), "{log}");
    }

    // The report merges the two tasks' runs.
    let o = output(
        Command::new(env!("CARGO_BIN_EXE_curvlab"))
            .arg("report")
            .arg(&out),
    );
    assert!(
        o.status.success(),
        "curvlab report: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text(&o).contains("2 runs: 2 finished"), "{}", text(&o));
    for f in [
        "sweep.png",
        "sweep.svg",
        "timeseries.png",
        "correlations.csv",
    ] {
        assert!(out.join("report").join(f).is_file(), "{f}");
    }
    let runs = std::fs::read_to_string(out.join("report/runs.csv")).unwrap();
    assert_eq!(runs.matches(",finished,").count(), 2, "{runs}");
}
