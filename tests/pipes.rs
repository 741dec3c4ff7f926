//! A closed stdout (`curvlab measure … | head -c 0`) ends every command that
//! prints quietly, with status 0 and nothing on stderr, as ripgrep does;
//! never "internal error" (a panic in `println!`).
//!
//! Each command's stdout is a pipe whose read end is closed before the
//! command starts, so its first write fails with EPIPE, deterministically.

#[path = "common/cli.rs"]
mod cli;

use std::path::Path;
use std::process::{Command, Output};

use cli::{bin, cifar_dir, tmp};
use curvlab::backend::{self, BackendKind};
use curvlab::models::{Activation, Architecture, Mlp, Model};

/// Runs `cmd` with stdout a pipe nobody reads (read end already closed).
fn with_closed_stdout(cmd: &mut Command) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdout(writer).output().unwrap()
}

/// Exit status 0 and an empty stderr.
fn quiet_success(o: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !stderr.contains("internal error") && !stderr.contains("panicked"),
        "{what}: {stderr}"
    );
    assert!(o.status.success(), "{what}: {:?}: {stderr}", o.status);
    assert_eq!(stderr.trim(), "", "{what}");
}

/// An MLP 3072-8-10 in safetensors, for `curvlab measure`.
fn mlp_weights(path: &Path) {
    let device = backend::device(BackendKind::Cpu).unwrap();
    let arch = Architecture::Mlp(Mlp {
        input_dim: 3072,
        hidden: vec![8],
        classes: 10,
        activation: Activation::Relu,
    });
    curvlab::weights::save(&Model::init(&arch, 0, &device).unwrap(), path).unwrap();
}

#[test]
fn measure_into_a_closed_pipe_exits_cleanly() {
    let dir = tmp("pipe-measure");
    let w = dir.join("mlp.safetensors");
    mlp_weights(&w);
    let args = |c: &mut Command| {
        c.arg("measure")
            .arg("--weights")
            .arg(&w)
            .arg("--data")
            .arg(cifar_dir())
            .args(["--samples", "20", "--no-gn"]);
    };
    // The same command into an open pipe prints its JSON object.
    let mut open = bin();
    args(&mut open);
    let o = open.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"sharpness\""));
    let mut closed = bin();
    args(&mut closed);
    quiet_success(&with_closed_stdout(&mut closed), "measure");
}

#[test]
fn bound_delta_and_data_into_a_closed_pipe_exit_cleanly() {
    let o = with_closed_stdout(bin().args([
        "bound", "delta", "--domain", "cube", "--dim", "2", "--n", "1000", "--eps", "0.01",
    ]));
    quiet_success(&o, "bound delta");
    let o = with_closed_stdout(bin().args([
        "bound",
        "data",
        "--data",
        "synthetic",
        "--samples",
        "200",
    ]));
    quiet_success(&o, "bound data (synthetic)");
    let o = with_closed_stdout(
        bin()
            .args(["bound", "data", "--samples", "100", "--data"])
            .arg(cifar_dir()),
    );
    quiet_success(&o, "bound data (CIFAR)");
}

#[test]
fn sweep_and_report_output_into_a_closed_pipe_exit_cleanly() {
    for args in [
        &["sweep", "presets"][..],
        &["sweep", "presets", "fig1"],
        &["sweep", "plan", "fig1", "--scale", "tiny"],
        &["sweep", "plan", "fig1", "--scale", "tiny", "--json"],
    ] {
        quiet_success(&with_closed_stdout(bin().args(args)), &args.join(" "));
    }
}

#[test]
fn errors_still_fail_with_a_closed_stdout() {
    // A closed pipe is not an excuse: a real error still says so and fails.
    let o = with_closed_stdout(bin().args([
        "bound", "delta", "--domain", "cube", "--dim", "0", "--n", "10", "--eps", "0.1",
    ]));
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.starts_with("curvlab: "), "{stderr}");
}
