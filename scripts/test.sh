#!/usr/bin/env bash
# Runs every check and test of curvlab: formatting, clippy (warnings are
# errors), and the whole test suite in release mode (unit tests, the f64
# reference tests, the CPU-vs-wgpu agreement test, end-to-end CLI tests on
# real CIFAR-10 data). Installs what it needs first (see scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
scripts/slurm-setup.sh && export CURVLAB_REQUIRE_SLURM=1  # the real Slurm test (tests/slurm.rs) must run, not skip

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --release --workspace --all-targets -- -D warnings
echo "== cargo test --release"
cargo test --release --workspace
scripts/web-test.sh  # browser explainer: trunk build, wasm32-vs-native numbers, headless-Chromium e2e
