//! Reliability (README "Reliability", issue 12): no lost or torn rows, one
//! writer per run directory, sweeps whose workers share the runs, full
//! disks that leave no half-written file, odd datasets read right, and one
//! clear line for each failure.
//!
//! A full disk is simulated without root: the run is started with a
//! file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored), so every write past the
//! limit fails with EFBIG, as writes to a full disk fail with ENOSPC.

#[path = "common/cli.rs"]
mod cli;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli::{bin, ok, one_line_error, rows, tmp, Reaped};
use curvlab::data::synthetic::SyntheticConfig;
use curvlab::experiment::{DataConfig, RunConfig};
use curvlab::record::MetricsRow;
use curvlab_lab::run_dir::{self, Observer, RunEnd, RunOptions, Silent};

/// Every line of metrics.jsonl is whole (ends in a newline) and reads as a row.
fn whole_rows(dir: &Path) -> usize {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "torn: {text:?}");
    for l in text.lines() {
        serde_json::from_str::<MetricsRow>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
    text.lines().count()
}

/// Names in `dir` that are atomic-write temporaries.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| curvlab::atomic::is_temporary(n))
        .map(|n| n.to_string_lossy().to_string())
        .collect()
}

/// Waits until `dir/metrics.jsonl` has `n` lines (the run holds its lock
/// by then); panics after five minutes.
fn wait_for_rows(dir: &Path, n: usize, child: &mut Child) {
    let t0 = Instant::now();
    while std::fs::read_to_string(dir.join("metrics.jsonl"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
        < n
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it wrote {n} rows"
        );
        assert!(t0.elapsed().as_secs() < 300, "no rows appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A run of many steps on small synthetic data, into `out` (killed when
/// dropped).
fn long_run(out: &Path) -> Reaped {
    let child = bin()
        .args([
            "run",
            "--quiet",
            "--n-train",
            "200",
            "--hidden",
            "32",
            "--steps",
            "1000000",
            "--measure-every",
            "2",
            "--no-jacobian",
        ])
        .arg("--out")
        .arg(out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Reaped::new(child)
}

/// Defect 1: two `curvlab run` with one `--out` corrupted each other. Now
/// the second is refused at once, in one line naming the holder's PID, and
/// the first one's rows stay whole.
#[test]
fn a_second_writer_of_a_run_directory_is_refused_naming_the_holder() {
    let d = tmp("busy");
    let out = d.join("run");
    let mut first = long_run(&out);
    wait_for_rows(&out, 1, &mut first);
    let pid = format!("pid {}", first.id());
    for resume in [false, true] {
        // A new run, and a resume with the stored configuration (a resume
        // that changed it would be refused for that first).
        let mut second = bin();
        second.args(["run", "--quiet"]);
        if resume {
            second.arg("--resume");
        } else {
            second.args(["--steps", "4", "--hidden", "8"]);
        }
        second.arg("--out").arg(&out);
        let line = one_line_error(&second.output().unwrap(), &[]);
        assert!(line.contains(&pid), "holder's PID not named: {line}");
        assert!(line.contains("run directory"), "{line}");
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(whole_rows(&out) >= 1);
    assert!(!out.join("summary.json").exists());
    // The lock died with its holder: the directory can be resumed.
    std::fs::remove_dir_all(&d).unwrap();
}

const SHARED_SWEEP: &str = r#"
name = "shared"
[base]
steps = 24
measure_every = 8
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
jacobian = false
[axes]
"optim.lr" = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]
"#;

/// Defect 2: two `sweep run --all` on one sweep directory both trained every
/// run and tore each other's rows. Now each run is trained once, by
/// whichever worker locks it first; every run finishes with whole rows.
#[test]
fn two_sweep_workers_share_the_runs_instead_of_repeating_them() {
    let d = tmp("share");
    let file = d.join("shared.toml");
    std::fs::write(&file, SHARED_SWEEP).unwrap();
    let out = d.join("out");
    let worker = || {
        bin()
            .args(["sweep", "run"])
            .arg(&file)
            .args(["--all", "--quiet", "--out"])
            .arg(&out)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (worker(), worker());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert!(a.status.success() && b.status.success(), "{log}");
    let trained = log
        .lines()
        .filter(|l| l.contains(" starting: ") || l.contains(" resuming: "))
        .count();
    assert_eq!(trained, 6, "each run trained exactly once:\n{log}");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    for r in m["runs"].as_array().unwrap() {
        let dir = out.join(r["dir"].as_str().unwrap());
        assert!(dir.join("summary.json").is_file(), "{}", dir.display());
        assert_eq!(whole_rows(&dir), 4, "{}", dir.display());
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// `cmd` with a file-size limit of `bytes`: a write past it fails with
/// EFBIG, as on a full disk.
fn with_file_size_limit(cmd: &mut Command, bytes: u64) -> &mut Command {
    // SAFETY: setrlimit(2) and signal(2) are async-signal-safe, as pre_exec
    // requires; nothing is allocated.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        })
    }
}

/// Defect 8: a full disk left half-written files (a torn metrics row, a PNG
/// without its end, a stray temporary) and a raw debug dump as the error.
/// Now the run stops with one readable line naming the file, the directory
/// holds whole files only, and `--resume` completes it.
#[test]
fn a_full_disk_leaves_whole_files_and_one_readable_line() {
    let d = tmp("full");
    let out = d.join("run");
    let args = [
        "run",
        "--quiet",
        "--n-train",
        "100",
        "--n-test",
        "50",
        "--hidden",
        "8",
        "--steps",
        "4",
        "--measure-every",
        "2",
    ];
    // Room for config.json and the rows, not for the figure.
    let mut cmd = bin();
    cmd.args(args).arg("--out").arg(&out);
    let line = one_line_error(
        &with_file_size_limit(&mut cmd, 16 * 1024).output().unwrap(),
        &[],
    );
    for dump in ["ImageError", "IoError", "Custom {", "kind:"] {
        assert!(!line.contains(dump), "a debug dump: {line}");
    }
    assert!(line.contains("plot.png"), "{line}");
    assert!(temporaries(&out).is_empty(), "{:?}", temporaries(&out));
    assert!(!out.join("plot.png").exists(), "a half-written figure");
    assert!(!out.join("summary.json").exists());
    assert_eq!(whole_rows(&out), 1);
    // With room again, the run resumes and finishes.
    ok(&bin()
        .args(args)
        .arg("--resume")
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    assert_eq!(whole_rows(&out), 3);
    let png = std::fs::read(out.join("plot.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.ends_with(b"IEND\xaeB`\x82"));
    assert!(temporaries(&out).is_empty());
    std::fs::remove_dir_all(&d).unwrap();
}

/// Collects the notices of a run; interrupts after `stop_after` steps.
#[derive(Default)]
struct Notes {
    steps: usize,
    stop_after: Option<usize>,
    notices: Vec<String>,
}

impl Observer for Notes {
    fn step(&mut self, _: u64, _: f64, _: f64, _: Option<f64>) {
        self.steps += 1;
    }
    fn notice(&mut self, msg: &str) {
        self.notices.push(msg.to_string());
    }
    fn interrupted(&self) -> bool {
        self.stop_after.is_some_and(|n| self.steps >= n)
    }
}

fn tiny() -> RunConfig {
    let mut cfg = RunConfig {
        data: DataConfig::Synthetic(SyntheticConfig {
            n_train: 64,
            n_test: 32,
            ..Default::default()
        }),
        steps: 8,
        measure_every: 2,
        ..Default::default()
    };
    cfg.model.hidden = vec![8];
    cfg.measure.samples = 32;
    cfg.measure.jacobian = false;
    cfg
}

/// The rows of a run directory without their timings.
fn untimed(dir: &Path) -> Vec<serde_json::Value> {
    rows(dir)
        .into_iter()
        .map(|mut v| {
            let o = v.as_object_mut().unwrap();
            o.remove("wall_s");
            o.remove("sharpness_wall_s");
            v
        })
        .collect()
}

/// Defect 8: a torn last line of metrics.jsonl (a crash mid-row) is cut on
/// resume and reported, and the resumed run equals an uninterrupted one.
#[test]
fn a_torn_last_row_is_cut_and_reported_on_resume() {
    let d = tmp("torn");
    let whole = d.join("whole");
    let RunEnd::Finished(_) =
        run_dir::run_to_dir(&tiny(), &whole, &RunOptions::default(), &mut Silent).unwrap()
    else {
        panic!("not finished")
    };
    let out = d.join("cut");
    let mut stop = Notes {
        stop_after: Some(5),
        ..Default::default()
    };
    assert!(run_dir::run_to_dir(&tiny(), &out, &RunOptions::default(), &mut stop).is_err());
    let metrics = out.join("metrics.jsonl");
    let mut text = std::fs::read(&metrics).unwrap();
    text.extend_from_slice(br#"{"step":6,"epoch":0.5,"lr":0.0"#);
    std::fs::write(&metrics, &text).unwrap();
    let mut notes = Notes::default();
    let end = run_dir::run_to_dir(&tiny(), &out, &RunOptions { resume: true }, &mut notes);
    assert!(matches!(end, Ok(RunEnd::Finished(_))), "{:?}", end.err());
    assert_eq!(notes.notices.len(), 1, "{:?}", notes.notices);
    assert!(
        notes.notices[0].contains("metrics.jsonl: cut a torn last line"),
        "{:?}",
        notes.notices
    );
    assert_eq!(untimed(&out), untimed(&whole));
    std::fs::remove_dir_all(&d).unwrap();
}

/// `n` CIFAR records of `labels.len() + 3072` bytes with the given labels.
fn cifar_records(n: usize, labels: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend(labels(i));
        out.extend((0..3072).map(|j| ((i * 31 + j * 7) % 256) as u8));
    }
    out
}

/// Defect 11: a valid CIFAR-100 train.bin of 3073 records (its size also
/// 3074 CIFAR-10 records) was read as CIFAR-10 ("label 12 out of range
/// 0..10"). Now it trains as CIFAR-100.
#[test]
fn a_cifar100_file_whose_size_fits_cifar10_too_is_read_as_cifar100() {
    let d = tmp("c100");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let labels = |i: usize| vec![(i % 20) as u8, ((12 + i) % 100) as u8];
    std::fs::write(data.join("train.bin"), cifar_records(3073, labels)).unwrap();
    std::fs::write(data.join("test.bin"), cifar_records(100, labels)).unwrap();
    let out = d.join("run");
    ok(&bin()
        .args(["run", "--quiet", "--data"])
        .arg(&data)
        .args([
            "--train-samples",
            "200",
            "--hidden",
            "8",
            "--steps",
            "2",
            "--measure-every",
            "2",
            "--samples",
            "50",
            "--no-jacobian",
            "--no-gn",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    let model = std::fs::read(out.join("model.safetensors")).unwrap();
    let contents = curvlab::weights::parse_bytes(&model, Path::new("model")).unwrap();
    assert_eq!(contents.0["layers.1.bias"].shape, vec![100], "100 classes");
    std::fs::remove_dir_all(&d).unwrap();
}

/// Defect 12, wording: the cause of an I/O error once, "file not found" only
/// for what is missing, and what a path is when it is the wrong kind.
#[test]
fn errors_name_the_cause_once_and_the_kind_of_path() {
    let d = tmp("wording");
    let bound = |data: &Path| {
        bin()
            .args(["bound", "data", "--samples", "10", "--data"])
            .arg(data)
            .output()
            .unwrap()
    };
    // An empty file: its cause once (it was repeated after a colon).
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("data_batch_1.bin"), b"").unwrap();
    std::fs::write(empty.join("test_batch.bin"), b"").unwrap();
    let line = one_line_error(&bound(&empty), &[]);
    assert_eq!(line.matches("empty file").count(), 1, "{line}");
    // A regular file where a directory belongs.
    let file = d.join("file.bin");
    std::fs::write(&file, b"x").unwrap();
    let line = one_line_error(&bound(&file), &[]);
    assert!(
        line.contains("is a regular file, not a directory"),
        "{line}"
    );
    assert!(!line.contains("not found"), "{line}");
    // A FIFO where a data file belongs (reading it would hang).
    let fifo_dir = d.join("fifo");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    let fifo = fifo_dir.join("data_batch_1.bin");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let line = one_line_error(&bound(&fifo_dir), &[]);
    assert!(line.contains("is a FIFO, not a regular file"), "{line}");
    assert!(!line.contains("not found"), "{line}");
    // Weights that are a directory.
    let line = one_line_error(
        &bin()
            .args(["measure", "--weights"])
            .arg(&d)
            .arg("--data")
            .arg(&empty)
            .output()
            .unwrap(),
        &[],
    );
    assert!(
        line.contains("is a directory, not a regular file"),
        "{line}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// Safetensors of an MLP 3072-8-10 whose first layer is small and whose
/// second layer's weights are `w2` (times a fixed pattern in [-1, 1]).
fn mlp_weights(path: &Path, w2: f32) {
    let mut header = serde_json::Map::new();
    let mut data: Vec<u8> = Vec::new();
    let mut put = |name: &str, shape: Vec<usize>, values: Vec<f32>| {
        let start = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.into(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    };
    let wave = |i: usize| ((i * 37 % 101) as f32 / 50.0) - 1.0;
    put(
        "layers.0.weight",
        vec![8, 3072],
        (0..8 * 3072).map(|i| 0.02 * wave(i)).collect(),
    );
    put("layers.0.bias", vec![8], vec![0.0; 8]);
    put(
        "layers.1.weight",
        vec![10, 8],
        (0..80).map(|i| w2 * wave(i)).collect(),
    );
    put("layers.1.bias", vec![10], vec![0.0; 10]);
    let h = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend(h);
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

fn measure(weights: &Path) -> serde_json::Value {
    let out = ok(&bin()
        .args(["measure", "--samples", "50", "--weights"])
        .arg(weights)
        .arg("--data")
        .arg(cli::cifar_dir())
        .output()
        .unwrap());
    serde_json::from_str(&out).unwrap()
}

/// Defect 12, numbers: NaN weights gave `diverged: true` with an accuracy;
/// weights of 1e30 gave `sharpness: null` beside `sharpness_residual: 0.0`
/// and `diverged: false`. A diverged row has no accuracy, and products that
/// overflow are a divergence without a residual.
#[test]
fn non_finite_weights_and_products_are_a_divergence() {
    let d = tmp("nonfinite");
    let nan = d.join("nan.safetensors");
    mlp_weights(&nan, f32::NAN);
    let v = measure(&nan);
    assert_eq!(v["diverged"], true, "{v}");
    assert!(v["accuracy"].is_null() && v["loss"].is_null(), "{v}");
    let huge = d.join("huge.safetensors");
    mlp_weights(&huge, 1e30);
    let v = measure(&huge);
    assert!(v["loss"].as_f64().is_some_and(f64::is_finite), "{v}");
    assert_eq!(v["diverged"], true, "{v}");
    assert!(v["sharpness"].is_null(), "{v}");
    assert!(v["sharpness_residual"].is_null(), "{v}");
    // Ordinary weights stay as they were: finite, not diverged.
    let fine = d.join("fine.safetensors");
    mlp_weights(&fine, 0.3);
    let v = measure(&fine);
    assert_eq!(v["diverged"], false, "{v}");
    assert!(v["sharpness"].as_f64().is_some_and(f64::is_finite), "{v}");
    assert!(v["accuracy"].as_f64().is_some(), "{v}");
    std::fs::remove_dir_all(&d).unwrap();
}
