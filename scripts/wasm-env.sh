#!/usr/bin/env bash
# Sourced by scripts/web-build.sh and scripts/trunk-build.sh: the cache, the wasm tools and
# the wasm32 toolchain they share (one target dir, the same flags, so each reuses the other's
# build). Two ways to get a wasm32 toolchain:
#   * a normal developer machine: rustup with `rustup target add wasm32-unknown-unknown`;
#   * a machine where rustup cannot add the target: Debian's Rust with its std sources
#     (`apt-get install rustc-web cargo-web rust-web-src lld-22`) and `-Z build-std`.
# Tools are installed once into $IGCAM_CACHE (default ~/.cache/igcam): wasm-bindgen-cli (the
# version in Cargo.lock) from crates.io, wasm-opt from npm's binaryen@132 (Debian's binaryen 108
# breaks wasm-bindgen's externref table), and Trunk for scripts/trunk-build.sh.
CACHE="${IGCAM_CACHE:-$HOME/.cache/igcam}"
TOOLS="$CACHE/tools"
# CI's clippy wrapper (.ci/run) belongs to rustup's toolchain: not to Debian's rustc, and not to
# the tools' installs.
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
mkdir -p "$CACHE"
BINDGEN_VERSION="$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"
# Trunk's last release that builds with rustc 1.95; without its default features (TLS for
# downloads, update checks): it takes its tools from PATH.
TRUNK_VERSION=0.21.14

# `cargo install` of a tool into the cache, in a temporary folder of its own, not in an inherited
# CARGO_TARGET_DIR: CI's native build uses that one at the same time and would wait for its lock.
# Unoptimised (opt-level 0, no LTO): the tools only drive other programs and rewrite a few files,
# so their compile time is what a cold CI run pays for them. Measured on 2 cores: Trunk 4.5
# CPU-min (about 10 with its own release profile, fat LTO in one codegen unit), wasm-bindgen-cli
# 1.8 (about 8 in release); wasm-bindgen then takes 13 s instead of 3 on the 60 MB
# single-threaded module.
install_tool() {
  env -u CARGO_TARGET_DIR -u RUSTFLAGS CARGO_PROFILE_RELEASE_OPT_LEVEL=0 \
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_DEBUG=false cargo install --root "$TOOLS" "$@"
}

# Tools are installed once per machine (into the cache, not the clone). Call before
# `wasm_toolchain`.
install_tools() {
  if [ ! -x "$TOOLS/bin/wasm-bindgen" ] || ! "$TOOLS/bin/wasm-bindgen" --version | grep -q "$BINDGEN_VERSION"; then
    install_tool wasm-bindgen-cli --version "$BINDGEN_VERSION"
  fi
  if [ ! -x web/e2e/node_modules/.bin/wasm-opt ] || [ ! -d web/e2e/node_modules/onnxruntime-web ]; then
    (cd web/e2e && npm ci --no-audit --no-fund)
  fi
}

# Under a lock: CI starts it early on its own (`trunk-build.sh --install-only`), and the Trunk
# build after the web build then waits for it instead of installing a second time.
install_trunk() {
  mkdir -p "$TOOLS"
  (
    flock 8
    if [ ! -x "$TOOLS/bin/trunk" ] || ! "$TOOLS/bin/trunk" --version | grep -q "$TRUNK_VERSION"; then
      install_tool trunk --version "$TRUNK_VERSION" --locked --no-default-features
    fi
  ) 8>"$TOOLS/.trunk-install.lock"
}

export PATH="$TOOLS/bin:$PWD/web/e2e/node_modules/.bin:$PATH"
export CARGO_TARGET_DIR="${IGCAM_WASM_TARGET_DIR:-$CACHE/wasm-target}"
# The threaded build has its own target dir: its flags differ, so sharing one would rebuild both
# every time.
MT_TARGET_DIR="${IGCAM_WASM_MT_TARGET_DIR:-$CACHE/wasm-target-mt}"
# simd128: 128-bit SIMD in the wasm CPU kernels (gemm, Burn's flex); every current browser has it.
# (.cargo/config.toml holds the same flags for a plain `trunk serve`.)
export RUSTFLAGS='--cfg getrandom_backend="wasm_js" -C target-feature=+simd128'
# The threaded build: atomics, bulk-memory and mutable-globals (what wasm-bindgen-rayon needs; the
# shared memory's link arguments are in web/build.rs).
MT_RUSTFLAGS="$RUSTFLAGS,+atomics,+bulk-memory,+mutable-globals"

# Switches to the wasm32 toolchain (after the tool installs, which build natively).
wasm_toolchain() {
  if rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
    echo "wasm: rustup's wasm32-unknown-unknown target"
  elif [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library ]; then
    echo "wasm: Debian's Rust with -Z build-std"
    export PATH="/usr/bin:$PATH"
    export RUSTC=/usr/bin/rustc
    export RUSTC_BOOTSTRAP=1
    export CARGO_UNSTABLE_BUILD_STD="std,panic_abort"
    if [ -x /usr/lib/llvm-22/bin/wasm-ld ]; then
      export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-22/bin/wasm-ld
    fi
  else
    echo "wasm: no wasm32 toolchain: run 'rustup target add wasm32-unknown-unknown'," >&2
    echo "  or on Debian 'apt-get install rustc-web cargo-web rust-web-src lld-22'" >&2
    exit 2
  fi
}

# Everything the builds need must be in the cargo home before they run offline. With
# -Z build-std that includes std's own dependencies for wasm32 (dlmalloc, ... from the rust-src
# Cargo.lock), which a machine that never built the web crate does not have: fetch them, without
# the network when they are all present already.
fetch_crates() {
  cargo fetch --offline --target wasm32-unknown-unknown --manifest-path web/Cargo.toml 2>/dev/null \
    || cargo fetch --target wasm32-unknown-unknown --manifest-path web/Cargo.toml
}
