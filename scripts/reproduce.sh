#!/usr/bin/env bash
# Runs the paper's presets at one scale, resumably, writes each sweep's report
# (figures, runs.csv, report.md, claims.json) and copies what the report reads
# (configs, metrics, summaries; no weights or checkpoints) with the report into
# docs/reproduction/<preset>/. Run it again after an interruption: finished
# runs are skipped and an interrupted one resumes from its checkpoint.
#
# Usage: scripts/reproduce.sh [--scale small] [--work DIR] [--data DIR] [--bin CURVLAB]
#                             [--partial] [--from-export] [PRESET...]
#   defaults: --scale small, --work runs/reproduction, --data ../shared/data/cifar10-5k
#   (or $CURVLAB_DATA), --bin target/release/curvlab, presets: fig2 fig1 fig3 appc2 fig4 fig5
#   --partial: run nothing; report and export each sweep as it stands (its finished runs),
#     to commit the progress of a sweep that spans sessions. The report says how many of
#     the sweep's runs finished, and so does scripts/claims_table.py.
#   --from-export: before running, copy the finished runs of a partial export
#     (docs/reproduction/<preset>/) that the work directory lacks, so a sweep begun on
#     another machine goes on from there.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=small
work=runs/reproduction
data=${CURVLAB_DATA:-../shared/data/cifar10-5k}
bin=target/release/curvlab
partial=0
from_export=0
presets=()
while [ $# -gt 0 ]; do
  case $1 in
    --scale) scale=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --partial) partial=1; shift ;;
    --from-export) from_export=1; shift ;;
    -h|--help) sed -n 2,19p "$0"; exit 0 ;;
    -*) echo "reproduce.sh: unknown option $1" >&2; exit 2 ;;
    *) presets+=("$1"); shift ;;
  esac
done
[ ${#presets[@]} -gt 0 ] || presets=(fig2 fig1 fig3 appc2 fig4 fig5)
[ -x "$bin" ] || { echo "reproduce.sh: $bin not found; build with cargo build --release" >&2; exit 2; }

for p in "${presets[@]}"; do
  dir=$work/$p-$scale
  dest=docs/reproduction/$p
  start=$(date +%s)
  if [ $from_export = 1 ] && [ -f "$dest/sweep.json" ]; then
    # The sweep's manifest, and the finished runs (summary.json is written last) the work
    # directory does not have yet.
    mkdir -p "$dir"
    for f in sweep.json sweep.toml; do
      [ -e "$dir/$f" ] || cp -p "$dest/$f" "$dir/$f"
    done
    (cd "$dest" && find . -name summary.json -printf '%h\n') | while read -r run; do
      if [ ! -e "$dir/$run/summary.json" ]; then
        rm -rf "${dir:?}/$run" && mkdir -p "$dir/$run" && cp -p "$dest/$run"/* "$dir/$run"/
        echo "== $p: $run from the export"
      fi
    done
  fi
  if [ $partial = 0 ]; then
    echo "== $p ($scale) -> $dir  $(date -u +%FT%TZ)"
    "$bin" sweep run "$p" --scale "$scale" --data "$data" --out "$dir" --all --quiet
  else
    [ -d "$dir" ] || { echo "reproduce.sh: --partial: $dir does not exist" >&2; exit 2; }
  fi
  "$bin" report "$dir" --out "$dir/report"
  echo "== $p done in $(( $(date +%s) - start )) s (this invocation)"
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  tar -C "$dir" --exclude='*.safetensors' --exclude='checkpoint*' --exclude='*.tmp' \
    --exclude=run.lock -cf - . | tar -C "$dest.tmp" -xf -
  # Only finished runs: an interrupted one is resumed from its checkpoint, not from here.
  (cd "$dest.tmp" && find . -name metrics.jsonl -printf '%h\n') | while read -r run; do
    [ -e "$dest.tmp/$run/summary.json" ] || rm -rf "${dest:?}.tmp/$run"
  done
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
done
