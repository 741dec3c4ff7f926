#!/usr/bin/env bash
# GPU timing on a machine with a GPU (e.g. NVIDIA via Vulkan): builds curvlab
# with its wgpu backend and runs `curvlab bench` on wgpu and on the CPU, with
# JSON results written under $OUT (or bench/) for comparison.
#
#   bench/device.sh [CIFAR_DIR]
#
# Not yet covered (needs issue 3's ResNet18): the ResNet18 CIFAR-10 epoch and
# its sharpness estimate, and the PyTorch comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/cifar10-5k}"
out="${OUT:-bench}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" "$out"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv || true
cargo build --release --bin curvlab
./target/release/curvlab bench --backends wgpu,cpu --data "$data" --repeats 10 --out "$out/device-bench.json"
