#!/usr/bin/env bash
# Installs what the browser explainer's build and tests need, skipping what is
# already there (safe to re-run): the wasm32 Rust target, trunk, wasm-bindgen-cli
# (the version in Cargo.lock, with its test runner), Debian's Chromium, and the
# npm packages of tests/browser (playwright-core, which drives that Chromium).
# Sourced by scripts/web-test.sh; can also be run on its own. Sourcing it also
# puts tests/browser/node_modules/.bin on PATH: trunk runs binaryen's wasm-opt
# from there (npm's binaryen; Debian's binaryen 108 breaks burn's module).
#
# The two cargo tools are built with a quick profile (opt-level 1, no debug
# info): they are build tools, and this halves their build time on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TRUNK_VERSION=0.21.14 # trunk 0.22 needs a newer rustc than the workspace's
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ -z "$WASM_BINDGEN_VERSION" ]; then
  echo "web-setup: no wasm-bindgen in Cargo.lock" >&2
  exit 1
fi
if ! grep -q "wasm_bindgen = \"$WASM_BINDGEN_VERSION\"" Trunk.toml; then
  echo "web-setup: Trunk.toml [tools] wasm_bindgen must equal Cargo.lock's wasm-bindgen $WASM_BINDGEN_VERSION" >&2
  exit 1
fi

export PATH="$HOME/.cargo/bin:$PATH"

quick_install() { # crate version [cargo install flags...]
  local crate=$1 version=$2
  shift 2
  local tmp
  tmp=$(mktemp -d)
  echo "== installing $crate $version (cargo install, quick profile)"
  local t0=$SECONDS
  CARGO_TARGET_DIR="$tmp" CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_INCREMENTAL=false \
    cargo install --quiet "$crate" --version "$version" "$@"
  rm -rf "$tmp"
  echo "   $crate $version built in $((SECONDS - t0)) s"
}

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "== rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
  # No TLS or update check: trunk never downloads here (the tools are on PATH).
  quick_install trunk "$TRUNK_VERSION" --locked --no-default-features
fi

if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ] \
  || [ "$(wasm-bindgen-test-runner --version 2>/dev/null)" != "wasm-bindgen-test-runner $WASM_BINDGEN_VERSION" ]; then
  quick_install wasm-bindgen-cli "$WASM_BINDGEN_VERSION" --force
fi

if ! command -v chromium >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "== installing Debian's chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "web-setup: chromium not found and cannot apt-get install it (need root on Debian/Ubuntu)" >&2
    exit 1
  fi
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "== installing node and npm"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "web-setup: node/npm not found" >&2
    exit 1
  fi
fi

if [ ! -d tests/browser/node_modules/playwright-core ] \
  || [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  echo "== npm ci (tests/browser)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
export PATH="$PWD/tests/browser/node_modules/.bin:$PATH"
if [ "$(wasm-opt --version 2>/dev/null)" != "wasm-opt version 132 (version_132)" ]; then
  echo "web-setup: wasm-opt from npm's binaryen 132 not found in tests/browser/node_modules/.bin" >&2
  exit 1
fi
