#!/usr/bin/env bash
# The library type-checks for 64-bit ARM (Apple silicon, Graviton): `cargo check --lib` for
# aarch64-unknown-linux-gnu, so an x86-only path (an `std::arch::x86_64` call outside its
# `cfg`) cannot land. Checking needs no ARM linker; the binary is left out (mimalloc's build
# script would need an ARM C compiler). With rustup's aarch64 target where it is installed,
# otherwise Debian's Rust with its std sources (`apt-get install rustc-web cargo-web
# rust-web-src`) and `-Z build-std`, as the wasm build does. Nothing here runs ARM code: what
# the kernels do on ARM is unmeasured (see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${IGCAM_CACHE:-$HOME/.cache/igcam}"
export CARGO_TARGET_DIR="${IGCAM_ARM_TARGET_DIR:-$CACHE/aarch64-target}"
# Debian's rustc may check this, and CI's clippy wrapper (.ci/run) is rustup's.
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
# Warnings fail it (a path that only ARM compiles is checked nowhere else); lints in
# dependencies are capped by cargo as always.
export RUSTFLAGS="-D warnings"
target=aarch64-unknown-linux-gnu
if rustup target list --installed 2>/dev/null | grep -q "^$target\$"; then
  cargo check --target "$target" --lib --no-default-features
elif [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library ]; then
  PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
    /usr/bin/cargo check -Z build-std=std --target "$target" --lib --no-default-features
else
  echo "check-arm: no $target toolchain: 'rustup target add $target', or on Debian" >&2
  echo "  'apt-get install rustc-web cargo-web rust-web-src'" >&2
  exit 2
fi
echo "check-arm: the library type-checks for $target"
