#!/usr/bin/env bash
# Installs what the real Slurm test (tests/slurm.rs) needs on Debian/Ubuntu:
# Slurm (slurm-wlm: slurmctld, slurmd, sbatch, squeue, …) and MUNGE. Nothing
# is configured or started here: the test runs a private one-node cluster
# (its own munged, slurm.conf, slurmctld and slurmd) in a temporary directory
# and stops it when done. Safe to re-run; a no-op when both are installed.
set -euo pipefail

if command -v sbatch >/dev/null && { command -v slurmctld || [ -x /usr/sbin/slurmctld ]; } >/dev/null \
  && { command -v munged || [ -x /usr/sbin/munged ]; } >/dev/null; then
  exit 0
fi
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "== installing Slurm and MUNGE (for the Slurm job-array test)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
else
  echo "warning: Slurm not found and cannot apt-get install slurm-wlm munge; the Slurm test will fail under CURVLAB_REQUIRE_SLURM=1" >&2
fi
