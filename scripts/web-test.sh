#!/usr/bin/env bash
# Builds and tests the browser explainer (issue 4): installs its tools
# (scripts/web-setup.sh), builds the static site with `trunk build --release`,
# runs the wasm-bindgen test that compares the core's numbers on wasm32 with
# the native ones, and the end-to-end tests in headless Chromium
# (tests/browser: WebGPU through SwiftShader and the CPU fallback, each checked
# against the native CLI; URL state; a bad file; embed mode; exports).
# Screenshots and exported files land in target/browser-artifacts/.
#
# Needs the release curvlab binary ($CARGO_TARGET_DIR or target/, release/curvlab;
# scripts/test.sh builds it first; this script builds it when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
step_start=$SECONDS
source scripts/stage.sh
stage "web setup (wasm32 target, trunk, wasm-bindgen, Chromium, npm)" source scripts/web-setup.sh
target_dir="$(realpath -m "${CARGO_TARGET_DIR:-target}")" # absolute: the e2e tests run from tests/browser
export CURVLAB_BIN="${CURVLAB_BIN:-$target_dir/release/curvlab}"
export CURVLAB_ARTIFACTS="${CURVLAB_ARTIFACTS:-$target_dir/browser-artifacts}"

stage "trunk build --release" trunk build --release

# The wasm-release profile (index.html's data-cargo-profile) shares the wasm32 build of burn
# with the trunk build above.
stage "wasm32: core numbers vs native (wasm-bindgen-test under node)" \
  env CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --profile wasm-release --target wasm32-unknown-unknown -p curvlab-web --test wasm_numeric

if [ ! -x "$CURVLAB_BIN" ]; then
  stage "native CLI" cargo build --release -p curvlab-native
fi

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
stage "browser end-to-end tests (headless Chromium)" \
  bash -c 'cd tests/browser && node --test --test-concurrency=1 e2e.test.mjs'

echo "== web tests done in $((SECONDS - step_start)) s; artifacts in $CURVLAB_ARTIFACTS"
