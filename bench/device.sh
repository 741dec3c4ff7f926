#!/usr/bin/env bash
# GPU timing on a machine with a GPU (e.g. NVIDIA via Vulkan). bench/README.md, section
# "GPU: ResNet18 epoch and sharpness", says what is measured and how.
#
#   bench/device.sh [CIFAR_DIR]        (default ../shared/data/cifar10-5k; pass the full CIFAR-10)
#
# 1. `curvlab bench` on wgpu and on the CPU (JSON in $OUT/device-bench.json); SKIP_BENCH=1 skips it.
# 2. ResNet18 (CIFAR stem) on CIFAR-10: one SGD epoch (batch 128, lr 0.1, momentum 0.9) and the
#    sharpness estimate after it, with curvlab on $BACKEND and, when `import torch` works in
#    $PYTHON, with bench/peer_torch_epoch.py; prints curvlab, PyTorch and their ratio.
#
# Environment (defaults are the GPU sizes):
#   BACKEND=wgpu          curvlab backend for part 2 (cpu to test the script without a GPU)
#   WIDTH=64              ResNet18 base width (64 = 11.17 M parameters)
#   TRAIN_SAMPLES=        training examples (class-balanced subset; empty = all in CIFAR_DIR)
#   MEASURE_SAMPLES=1000  examples in the sharpness estimate (the first of the training set)
#   CHUNK=1000            BatchNorm / memory chunk of the measurement (curvlab measure.chunk)
#   PYTHON=python3        the Python that runs the PyTorch peer
#   OUT=bench             where results go: device-bench.json, device-resnet18.json,
#                         device-curvlab-run/ (curvlab's run directory), device-torch.json
#   SKIP_BENCH=1, SKIP_TORCH=1   skip part 1 / the PyTorch peer
#   SKIP_BUILD=1          use the existing target/release/curvlab
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/cifar10-5k}"
out="${OUT:-bench}"
backend="${BACKEND:-wgpu}"
width="${WIDTH:-64}"
train_samples="${TRAIN_SAMPLES:-}"
measure_samples="${MEASURE_SAMPLES:-1000}"
chunk="${CHUNK:-1000}"
python="${PYTHON:-python3}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" "$out"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv || true
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --bin curvlab
curvlab=./target/release/curvlab

# ---- 1. curvlab bench, wgpu and cpu ----------------------------------------------------------
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  "$curvlab" bench --backends wgpu,cpu --data "$data" --repeats 10 --out "$out/device-bench.json"
fi

# ---- 2. ResNet18 epoch + sharpness: curvlab ----------------------------------------------------
# Number of training examples: the subset, or every record of the training files.
if [ -n "$train_samples" ]; then
  n="$train_samples"
else
  bytes=0
  for f in "$data"/data_batch_{1,2,3,4,5}.bin; do [ -f "$f" ] && bytes=$((bytes + $(stat -c %s "$f"))); done
  [ "$bytes" = 0 ] && [ -f "$data/train.bin" ] && bytes=$(stat -c %s "$data/train.bin")
  n=$((bytes / 3073))
fi
[ "$n" -gt 0 ] || { echo "device.sh: no CIFAR-10 training data in $data" >&2; exit 1; }
steps=$(( (n + 127) / 128 ))   # one epoch = ceil(N/B) steps, as curvlab counts them
run="$out/device-curvlab-run"
rm -rf "$run"
cat > "$out/device-resnet18.toml" <<EOF
[measure]
chunk = $chunk
EOF
args=(run --quiet --backend "$backend" --data "$data" --test-samples 100
  --model resnet18 --width "$width" --activation relu --loss ce
  --lr 0.1 --momentum 0.9 --batch-size 128 --epochs 1 --measure-every "$steps"
  --samples "$measure_samples" --no-gn --no-jacobian --no-bound
  --config "$out/device-resnet18.toml" --out "$run")
[ -n "$train_samples" ] && args+=(--train-samples "$train_samples")
echo "== curvlab ResNet18 width $width, $n examples ($steps steps), $measure_samples measured, $backend"
"$curvlab" "${args[@]}"

# ---- 2. the PyTorch peer ---------------------------------------------------------------------
torch_json="$out/device-torch.json"
rm -f "$torch_json"
if [ "${SKIP_TORCH:-0}" = 1 ]; then
  echo "== PyTorch peer skipped (SKIP_TORCH=1)"
elif "$python" -c "import torch" 2>/dev/null; then
  echo "== PyTorch peer ($("$python" -c 'import torch; print(torch.__version__)'))"
  targs=(--data "$data" --width "$width" --measure-samples "$measure_samples" --chunk "$chunk")
  [ -n "$train_samples" ] && targs+=(--train-samples "$train_samples")
  "$python" bench/peer_torch_epoch.py "${targs[@]}" > "$torch_json"
else
  echo "== PyTorch is not installed for $python (set PYTHON=...); curvlab alone"
fi

# ---- 2. the table ------------------------------------------------------------------------------
# metrics.jsonl has two rows: step 0 (before training) and step $steps (after the epoch). Each
# row's wall_s is taken when the row is finished; a row's work is the train-subset and test loss
# evaluations, then the sharpness estimate (sharpness_wall_s). So
#   epoch_s = wall_s[end] - wall_s[0] - sharpness_wall_s[end] - eval_s,
#   eval_s  = wall_s[0] - sharpness_wall_s[0]   (row 0's loss evaluations, plus the moments
#             between the clock's start and row 0: an upper bound on the end row's evaluations)
# which leaves the SGD steps of the epoch (their forward, backward and update; on wgpu also the
# first compilation of the training step's kernels, as PyTorch's first steps pay cuDNN's).
"$python" - "$run/metrics.jsonl" "$torch_json" "$out/device-resnet18.json" "$backend" "$width" "$n" "$steps" <<'EOF'
import json, os, sys
rows_path, torch_path, out_path, backend, width, n, steps = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
r0, r1 = rows[0], rows[-1]
assert r0["step"] == 0 and r1["step"] == int(steps), (r0["step"], r1["step"])
eval_s = r0["wall_s"] - r0["sharpness_wall_s"]
c = {
    "program": "curvlab", "backend": backend, "width": int(width), "train_samples": int(n),
    "steps": int(steps), "measure_samples": r1["n"],
    "epoch_s": r1["wall_s"] - r0["wall_s"] - r1["sharpness_wall_s"] - eval_s,
    "eval_s": eval_s,
    "sharpness_init": r0["sharpness"], "hvps_init": r0["hvps"], "sharpness_init_s": r0["sharpness_wall_s"],
    "sharpness": r1["sharpness"], "sharpness_residual": r1["sharpness_residual"],
    "hvps": r1["hvps"], "sharpness_s": r1["sharpness_wall_s"],
    "hvp_ms": 1000.0 * r1["sharpness_wall_s"] / r1["hvps"],
    "train_loss_end": r1["train_loss"],
}
t = json.load(open(torch_path)) if os.path.exists(torch_path) and os.path.getsize(torch_path) else None
json.dump({"curvlab": c, "pytorch": t}, open(out_path, "w"), indent=2)
def f(v):
    if v is None: return "–"
    return f"{v:,}" if isinstance(v, int) else f"{v:.4g}"
keys = [("epoch_s", "one epoch, s"), ("sharpness_s", "sharpness estimate after it, s"),
        ("hvps", "HVPs (Lanczos, tol 1e-3)"), ("hvp_ms", "time per HVP, ms"),
        ("sharpness", "sharpness after the epoch"), ("sharpness_init", "sharpness at init"),
        ("hvps_init", "HVPs at init"), ("sharpness_init_s", "sharpness at init, s")]
print(f"\nResNet18 width {width}, {n} examples ({steps} steps of 128), "
      f"{c['measure_samples']} measured; curvlab on {backend}"
      + (f", PyTorch {t['torch']} on {t['device']}" if t else ""))
print(f"| | curvlab | PyTorch | curvlab/PyTorch |\n|---|---|---|---|")
for k, label in keys:
    a, b = c.get(k), (t or {}).get(k)
    ratio = f"{a / b:.3g}" if t and b and k not in ("sharpness", "sharpness_init") else "–"
    print(f"| {label} | {f(a)} | {f(b)} | {ratio} |")
print(f"\n(curvlab's loss evaluations subtracted from its epoch: {eval_s:.3g} s; results in {out_path})")
EOF
