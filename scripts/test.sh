#!/usr/bin/env bash
# Runs every check and test of curvlab: formatting, clippy (warnings are
# errors), and the whole test suite in release mode (unit tests, the f64
# reference tests, the CPU-vs-wgpu agreement test, end-to-end CLI tests on
# real CIFAR-10 data), then the browser explainer's build and tests
# (scripts/web-test.sh). Installs what it needs first (see scripts/setup.sh).
# Prints each stage's wall time, and a table of them at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
t_start=$SECONDS
source scripts/stage.sh
stage "setup (toolchain components, Vulkan driver)" source scripts/setup.sh
stage "setup (Slurm)" scripts/slurm-setup.sh
export CURVLAB_REQUIRE_SLURM=1 # the real Slurm test (tests/slurm.rs) must run, not skip

stage "cargo fmt --check" cargo fmt --all -- --check
stage "cargo clippy -D warnings" cargo clippy --release --workspace --all-targets -- -D warnings
stage "cargo test --release (build)" cargo test --release --workspace --no-run
stage "cargo test --release (run)" cargo test --release --workspace
# browser explainer: trunk build, wasm32-vs-native numbers, headless-Chromium e2e
stage "web tests (scripts/web-test.sh)" scripts/web-test.sh
stage_summary
echo "== all checks passed in $((SECONDS - t_start)) s"
