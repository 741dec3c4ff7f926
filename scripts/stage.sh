# Sourced by scripts/test.sh and scripts/web-test.sh: `stage LABEL COMMAND…` runs one stage, prints
# its wall time, and records it; `stage_summary` prints every stage's time at the end (the CI log's
# table of where the time went).
STAGE_LOG="${STAGE_LOG:-$(mktemp)}"
export STAGE_LOG
stage() {
  local label=$1
  shift
  echo "== $label"
  local t0=$SECONDS
  "$@"
  local dt=$((SECONDS - t0))
  echo "   ($label: ${dt} s)"
  printf '%6d s  %s\n' "$dt" "$label" >>"$STAGE_LOG"
}
stage_summary() {
  echo "== stage times"
  cat "$STAGE_LOG"
}
