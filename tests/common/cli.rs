//! Helpers shared by the end-to-end tests of the `curvlab` binary.

#![allow(dead_code)]

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use serde_json::Value;

/// The `curvlab` binary built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_curvlab"))
}

/// A child process that is killed and reaped when dropped: a test that fails
/// while a long run is going never leaves that run behind.
pub struct Reaped(Option<Child>);

impl Reaped {
    pub fn new(child: Child) -> Self {
        Reaped(Some(child))
    }

    /// The child, no longer killed on drop (for `wait_with_output`).
    pub fn into_inner(mut self) -> Child {
        self.0.take().expect("a child")
    }
}

impl Deref for Reaped {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("a child")
    }
}

impl DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("a child")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The real CIFAR-10 subset beside the repository.
pub fn cifar_dir() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/cifar10-5k");
    assert!(
        p.join("data_batch_1.bin").is_file(),
        "real data missing at {}",
        p.display()
    );
    p
}

/// A fresh temporary directory for one test.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("curvlab-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Asserts success and returns stdout.
pub fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curvlab failed: {stderr}");
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Asserts that `out` is a failure reported in one line — `curvlab: …`,
/// exit code 1, no panic or internal error — containing each of `needles`,
/// and returns that line.
pub fn one_line_error(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected a failure: {stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr}");
    assert!(lines[0].starts_with("curvlab: "), "{stderr}");
    assert!(
        !lines[0].contains("panicked") && !lines[0].contains("internal error"),
        "{stderr}"
    );
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' not in: {stderr}");
    }
    lines[0].to_string()
}

/// The rows of a run's metrics.jsonl.
pub fn rows(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
