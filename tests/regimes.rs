//! End-to-end tests of issue 3's training regimes and long-run machinery on the
//! `curvlab` binary: VGG11-BN / ResNet18 on real CIFAR-10 with schedules,
//! augmentation, mixup and SAM; checkpoints, kill -9 and `--resume` giving the
//! same rows as an uninterrupted run; Ctrl-C writing a checkpoint.

#[path = "common/cli.rs"]
mod cli;

use std::path::Path;
use std::time::{Duration, Instant};

use cli::{bin, cifar_dir, ok, rows, tmp, Reaped};
use serde_json::Value;

/// A row without its timing fields (which differ between runs by nature).
fn untimed(mut r: Value) -> Value {
    let o = r.as_object_mut().unwrap();
    o.remove("wall_s");
    o.remove("sharpness_wall_s");
    r
}

/// ResNet18 (narrow) on real CIFAR-10 with SGD + momentum, weight decay, a
/// cosine schedule with warm-up, crop + flip, mixup and SAM: it trains, every
/// row carries the BatchNorm mode and the scheduled learning rate.
#[test]
fn resnet18_trains_with_every_regime_on_cifar() {
    let out = tmp("resnet");
    let o = bin()
        .args(["run", "--quiet", "--data"])
        .arg(cifar_dir())
        .args([
            "--model",
            "resnet18",
            "--width",
            "4",
            "--train-samples",
            "200",
            "--test-samples",
            "100",
            "--loss",
            "ce",
            "--label-smoothing",
            "0.1",
            "--lr",
            "0.05",
            "--batch-size",
            "50",
            "--momentum",
            "0.9",
            "--weight-decay",
            "5e-4",
            "--schedule",
            "cosine",
            "--warmup",
            "0.25",
            "--sam-rho",
            "0.05",
            "--crop",
            "4",
            "--flip",
            "--mixup-alpha",
            "0.2",
            "--epochs",
            "2",
            "--measure-every",
            "4",
            "--samples",
            "100",
            "--top-k",
            "1",
            "--tol",
            "1e-2",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    ok(&o);
    let rs = rows(&out);
    // 2 epochs of 200/50 = 8 steps, measured at 0, 4, 8
    let steps: Vec<u64> = rs.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [0, 4, 8]);
    for r in &rs {
        assert_eq!(r["bn_mode"], "train");
        assert!(r["sharpness"].as_f64().unwrap().is_finite());
        assert!(r["jac_softmax_max"].as_f64().unwrap() > 0.0);
    }
    // warm-up over 2 steps then cosine over 6: step 4 is 1 step into the decay
    let lr4 = rs[1]["lr"].as_f64().unwrap();
    assert!(lr4 < 0.05 && lr4 > 0.03, "lr at step 4: {lr4}");
    assert!((rs[1]["two_over_lr"].as_f64().unwrap() - 2.0 / lr4).abs() < 1e-9);
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["steps"], 8);
    // weights in PyTorch layout, running statistics included
    let st = std::fs::read(out.join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&st[8..8 + header_len]).unwrap();
    assert_eq!(
        header["layer4.1.bn2.running_var"]["shape"],
        serde_json::json!([32])
    );
    assert_eq!(header["layer4.1.bn2.num_batches_tracked"]["dtype"], "I64");
    assert_eq!(header["fc.weight"]["shape"], serde_json::json!([10, 32]));
}

/// VGG11-BN, full-batch GD, measured in eval mode on request.
#[test]
fn vgg11_bn_gd_with_eval_mode_hessian() {
    let out = tmp("vgg");
    let o = bin()
        .args(["run", "--quiet", "--data"])
        .arg(cifar_dir())
        .args([
            "--model",
            "vgg11_bn",
            "--width",
            "4",
            "--train-samples",
            "100",
            "--test-samples",
            "50",
            "--loss",
            "ce",
            "--lr",
            "0.05",
            "--steps",
            "3",
            "--measure-every",
            "3",
            "--bn-mode",
            "eval",
            "--samples",
            "100",
            "--top-k",
            "2",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    ok(&o);
    let rs = rows(&out);
    assert_eq!(rs.len(), 2);
    for r in &rs {
        assert_eq!(r["bn_mode"], "eval");
        assert_eq!(r["eigenvalues"].as_array().unwrap().len(), 2);
    }
}

fn resumable_args(out: &Path, steps: &str) -> Vec<String> {
    [
        "run",
        "--quiet",
        "--n-train",
        "300",
        "--hidden",
        "64,64",
        "--activation",
        "relu",
        "--loss",
        "ce",
        "--lr",
        "0.1",
        "--batch-size",
        "32",
        "--momentum",
        "0.9",
        "--weight-decay",
        "1e-3",
        "--schedule",
        "step",
        "--milestones",
        "0.5",
        "--mixup-alpha",
        "0.4",
        "--steps",
        steps,
        "--measure-every",
        "10",
        "--checkpoint-every",
        "7",
        "--top-k",
        "2",
        "--samples",
        "200",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.to_str().unwrap().to_string()])
    .collect()
}

/// kill -9 mid-run, then `--resume`: the rows equal an uninterrupted run's
/// (bit for bit on this backend, timing fields aside), none lost or duplicated.
#[test]
fn killed_and_resumed_run_equals_uninterrupted_run() {
    let steps = "400";
    let whole = tmp("whole");
    ok(&bin().args(resumable_args(&whole, steps)).output().unwrap());
    let expected: Vec<Value> = rows(&whole).into_iter().map(untimed).collect();
    assert_eq!(expected.len(), 41);

    let cut = tmp("cut");
    let mut child = Reaped::new(bin().args(resumable_args(&cut, steps)).spawn().unwrap());
    let t0 = Instant::now();
    // wait for a checkpoint past the first few measurements, then kill -9
    loop {
        let n = std::fs::read_to_string(cut.join("metrics.jsonl"))
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if n >= 4 && cut.join("checkpoint.safetensors").exists() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !cut.join("summary.json").exists(),
        "the run finished before it was killed: the test proves nothing; make it longer"
    );
    let before = rows(&cut).len();
    assert!(before < expected.len());
    // resume from the directory alone (its config.json)
    ok(&bin()
        .args(["run", "--quiet", "--resume", "--out"])
        .arg(&cut)
        .output()
        .unwrap());
    let got: Vec<Value> = rows(&cut).into_iter().map(untimed).collect();
    assert_eq!(got.len(), expected.len(), "rows lost or duplicated");
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e, "resumed row differs");
    }
    // resuming a finished run does nothing
    ok(&bin()
        .args(["run", "--quiet", "--resume", "--out"])
        .arg(&cut)
        .output()
        .unwrap());
    assert_eq!(rows(&cut).len(), expected.len());
}

/// Ctrl-C (SIGINT) stops the run with one line and a checkpoint to resume from.
#[cfg(unix)]
#[test]
fn interrupt_writes_a_checkpoint() {
    let out = tmp("int");
    let child = Reaped::new(
        bin()
            .args(resumable_args(&out, "100000"))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while rows_len(&out) < 2 {
        assert!(t0.elapsed() < Duration::from_secs(300), "no rows appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on a child this test spawned and has not yet reaped.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let o = child.into_inner().wait_with_output().unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("interrupted at step") && lines[0].contains("--resume"),
        "{stderr}"
    );
    assert!(out.join("checkpoint.safetensors").exists());
}

fn rows_len(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}
