# Sourced by the CI and test scripts: `phase NAME CMD...` runs CMD, prints how long it took and
# records it; `phase_summary` prints every recorded phase. Durations are shared with child
# scripts through $IGCAM_PHASE_LOG, so the top-level summary lists nested phases too;
# $IGCAM_PHASE_PREFIX marks the phases of a script run in the background.
if [ -z "${IGCAM_PHASE_LOG:-}" ]; then
  IGCAM_PHASE_LOG="$(mktemp)"
  export IGCAM_PHASE_LOG
fi

phase() {
  local name="${IGCAM_PHASE_PREFIX:-}$1"
  shift
  local start=$SECONDS
  echo "=== phase: $name"
  local rc=0
  # In the background and waited for, not `"$@" || rc=$?`: on the left of `||` bash ignores
  # `set -e` in everything CMD runs, so a phase function would go on past a failing step.
  # (Call `phase` as a statement of its own, for the same reason.)
  "$@" &
  wait $! || rc=$?
  local took=$((SECONDS - start))
  printf '%s\t%d:%02d\t%s\n' "$name" $((took / 60)) $((took % 60)) \
    "$([ "$rc" = 0 ] && echo ok || echo "FAILED ($rc)")" >>"$IGCAM_PHASE_LOG"
  echo "=== phase: $name took $((took / 60)) min $((took % 60)) s$([ "$rc" = 0 ] || echo ", FAILED with exit code $rc")"
  return "$rc"
}

phase_summary() {
  echo "=== phases (min:s)"
  column -t -s $'\t' "$IGCAM_PHASE_LOG" 2>/dev/null || cat "$IGCAM_PHASE_LOG"
}
