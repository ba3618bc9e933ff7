#!/usr/bin/env bash
# Rehearses CI on a fresh machine: clones this repository's HEAD into a temporary folder and runs
# `.ci/run` there with HOME, CARGO_HOME and the igcam cache pointed at an empty temporary folder,
# so every crate is downloaded and built, every tool installed and every npm package fetched
# afresh. Rustup's toolchains are kept (a fresh CI machine has them), and so are apt packages
# (system-wide). Prints the per-phase table and the total; exits with `.ci/run`'s status.
#
#   scripts/ci-cold.sh            # the whole cold run (about 57 min on 2 cores)
#   KEEP=1 scripts/ci-cold.sh     # keep the temporary folder afterwards (its path is printed)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/igcam-ci-cold.XXXXXX")"
cleanup() { if [ "${KEEP:-0}" != 1 ]; then rm -rf "$tmp"; else echo "kept $tmp"; fi; }
trap cleanup EXIT

git clone --quiet --no-hardlinks "$repo" "$tmp/clone"
mkdir -p "$tmp/home"
# rustup's proxies (cargo, rustc) live in the real ~/.cargo/bin; the toolchains in RUSTUP_HOME.
rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
cargo_bin="$(dirname "$(command -v cargo)")"
start=$SECONDS
rc=0
env -i \
  HOME="$tmp/home" \
  CARGO_HOME="$tmp/home/.cargo" \
  RUSTUP_HOME="$rustup_home" \
  PATH="$cargo_bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  TERM="${TERM:-dumb}" LANG="${LANG:-C.UTF-8}" TMPDIR="${TMPDIR:-/tmp}" \
  bash "$tmp/clone/.ci/run" || rc=$?
took=$((SECONDS - start))
echo "ci-cold: .ci/run exited $rc after $((took / 60)) min $((took % 60)) s (cold: empty HOME, CARGO_HOME and cache)"
exit "$rc"
