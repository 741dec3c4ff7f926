#!/usr/bin/env bash
# Runs the paper's presets at one scale, resumably, writes each sweep's report
# (figures, runs.csv, report.md, claims.json) and copies what the report reads
# (configs, metrics, summaries; no weights or checkpoints) with the report into
# docs/reproduction/<preset>/. Run it again after an interruption: finished
# runs are skipped and an interrupted one resumes from its checkpoint.
#
# Usage: scripts/reproduce.sh [--scale small] [--work DIR] [--data DIR] [--bin CURVLAB] [PRESET...]
#   defaults: --scale small, --work runs/reproduction, --data ../shared/data/cifar10-5k
#   (or $CURVLAB_DATA), --bin target/release/curvlab, presets: fig2 fig1 fig3 appc2 fig4 fig5
set -euo pipefail
cd "$(dirname "$0")/.."
scale=small
work=runs/reproduction
data=${CURVLAB_DATA:-../shared/data/cifar10-5k}
bin=target/release/curvlab
presets=()
while [ $# -gt 0 ]; do
  case $1 in
    --scale) scale=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    -*) echo "reproduce.sh: unknown option $1" >&2; exit 2 ;;
    *) presets+=("$1"); shift ;;
  esac
done
[ ${#presets[@]} -gt 0 ] || presets=(fig2 fig1 fig3 appc2 fig4 fig5)
[ -x "$bin" ] || { echo "reproduce.sh: $bin not found; build with cargo build --release" >&2; exit 2; }

for p in "${presets[@]}"; do
  dir=$work/$p-$scale
  start=$(date +%s)
  echo "== $p ($scale) -> $dir  $(date -u +%FT%TZ)"
  "$bin" sweep run "$p" --scale "$scale" --data "$data" --out "$dir" --all --quiet
  "$bin" report "$dir" --out "$dir/report"
  echo "== $p done in $(( $(date +%s) - start )) s (this invocation)"
  dest=docs/reproduction/$p
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  tar -C "$dir" --exclude='*.safetensors' --exclude='checkpoint*' --exclude='*.tmp' -cf - . | tar -C "$dest.tmp" -xf -
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
done
