#!/usr/bin/env bash
# Installs what curvlab's build and tests need on a fresh Debian/Ubuntu
# machine with a Rust toolchain: rustfmt/clippy, and Mesa's software Vulkan
# driver so the wgpu backend is tested even without a GPU. Safe to re-run.
# Sourced by scripts/test.sh; can also be run on its own.
set -euo pipefail

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

if ! command -v cargo >/dev/null; then
  echo "curvlab needs a Rust toolchain (https://rustup.rs): cargo not found" >&2
  exit 1
fi
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

have_vulkan_icd() {
  ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1
}
if ! have_vulkan_icd || ! ldconfig -p | grep 'libvulkan.so.1' >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "== installing Mesa's Vulkan drivers (software Vulkan for the wgpu tests)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
  else
    echo "warning: no Vulkan driver found and cannot apt-get install mesa-vulkan-drivers; set CURVLAB_SKIP_WGPU=1 to skip the wgpu test" >&2
  fi
fi
