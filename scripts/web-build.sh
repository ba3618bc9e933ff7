#!/usr/bin/env bash
# Builds the static site into dist/: the web crate for wasm32 (profile `wasm-release`) twice,
#   * igcam-web: single-threaded, WebGPU and the CPU (every page, and the only one where the page
#     is not cross-origin isolated);
#   * igcam-web-mt: the CPU path on a rayon pool of Web Workers (`--features threads`, built with
#     +atomics and its own std; no WebGPU), loaded by web/explain-worker.js;
# each through wasm-bindgen (`--target web`) and wasm-opt -Oz, and the page's own files (web/*.html,
# *.js, style.css, the default model, its labels, the sample photos) copied beside them. Works two ways:
#   * a normal developer machine: rustup with `rustup target add wasm32-unknown-unknown`;
#   * a machine where rustup cannot add the target: Debian's Rust with its std sources
#     (`apt-get install rustc-web cargo-web rust-web-src lld-22`) and `-Z build-std`.
# Tools are installed once into $IGCAM_CACHE (default ~/.cache/igcam): wasm-bindgen-cli (the
# version in Cargo.lock) from crates.io, wasm-opt from npm's binaryen@132 (Debian's binaryen 108
# breaks wasm-bindgen's externref table). No Trunk: the page imports the wasm-bindgen module
# itself, so the build is one cargo build and two tool runs, and a fresh machine (a new CI
# runner) skips compiling Trunk's ~400 crates.
# Arguments go to the single-threaded build's `cargo build` (e.g. `--features ...`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/phases.sh
CACHE="${IGCAM_CACHE:-$HOME/.cache/igcam}"
TOOLS="$CACHE/tools"
# One build at a time per machine: a second call (CI's browser test, while `.ci/run`'s
# background build still runs) waits here, then finds dist/ cached.
mkdir -p "$CACHE"
exec 9>"$CACHE/web-build.lock"
flock 9
BINDGEN_VERSION="$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"

# Tools are installed once per machine (into the cache, not the clone). `cargo install` builds in
# a temporary folder of its own, not in an inherited CARGO_TARGET_DIR: CI's native build uses that
# one at the same time and would wait for its lock.
install_tools() {
  if [ ! -x "$TOOLS/bin/wasm-bindgen" ] || ! "$TOOLS/bin/wasm-bindgen" --version | grep -q "$BINDGEN_VERSION"; then
    env -u CARGO_TARGET_DIR cargo install wasm-bindgen-cli --version "$BINDGEN_VERSION" --root "$TOOLS"
  fi
  if [ ! -x web/e2e/node_modules/.bin/wasm-opt ]; then
    (cd web/e2e && npm ci --no-audit --no-fund)
  fi
}
phase "web tool installs" install_tools

export PATH="$TOOLS/bin:$PWD/web/e2e/node_modules/.bin:$PATH"
export CARGO_TARGET_DIR="${IGCAM_WASM_TARGET_DIR:-$CACHE/wasm-target}"
# The threaded build has its own target dir: its flags differ, so sharing one would rebuild both
# every time.
MT_TARGET_DIR="${IGCAM_WASM_MT_TARGET_DIR:-$CACHE/wasm-target-mt}"
# simd128: 128-bit SIMD in the wasm CPU kernels (gemm, Burn's flex); every current browser has it.
export RUSTFLAGS='--cfg getrandom_backend="wasm_js" -C target-feature=+simd128'
# The threaded build: atomics, bulk-memory and mutable-globals (what wasm-bindgen-rayon needs; the
# shared memory's link arguments are in web/build.rs).
MT_RUSTFLAGS="$RUSTFLAGS,+atomics,+bulk-memory,+mutable-globals"

if rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
  echo "web-build: rustup's wasm32-unknown-unknown target"
elif [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library ]; then
  echo "web-build: Debian's Rust with -Z build-std"
  export PATH="/usr/bin:$PATH"
  export RUSTC=/usr/bin/rustc
  export RUSTC_BOOTSTRAP=1
  export CARGO_UNSTABLE_BUILD_STD="std,panic_abort"
  if [ -x /usr/lib/llvm-22/bin/wasm-ld ]; then
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-22/bin/wasm-ld
  fi
else
  echo "web-build: no wasm32 toolchain: run 'rustup target add wasm32-unknown-unknown'," >&2
  echo "  or on Debian 'apt-get install rustc-web cargo-web rust-web-src lld-22'" >&2
  exit 2
fi

# The build runs cargo offline, so everything it needs must be in the cargo home first. With
# -Z build-std that includes std's own dependencies for wasm32 (dlmalloc, ... from the rust-src
# Cargo.lock), which a machine that never built the web crate does not have: fetch them, without
# the network when they are all present already.
fetch_crates() {
  cargo fetch --offline --target wasm32-unknown-unknown --manifest-path web/Cargo.toml 2>/dev/null \
    || cargo fetch --target wasm32-unknown-unknown --manifest-path web/Cargo.toml
}

# One wasm module into dist/: NAME TARGET_DIR RUSTFLAGS [cargo build args], then wasm-bindgen's
# JS glue and wasm-opt.
build_module() {
  local name="$1" target_dir="$2" flags="$3"
  shift 3
  CARGO_TARGET_DIR="$target_dir" RUSTFLAGS="$flags" cargo build --offline --lib \
    --manifest-path web/Cargo.toml --target wasm32-unknown-unknown --profile wasm-release "$@"
  wasm-bindgen --target web --no-typescript --out-dir dist --out-name "$name" \
    "$target_dir/wasm32-unknown-unknown/wasm-release/igcam_web.wasm"
  # The features rustc's wasm32 target emits (and simd128, atomics, from the flags).
  wasm-opt -Oz --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    --enable-threads "dist/${name}_bg.wasm" -o "dist/${name}_bg.wasm"
}

# dist/ from scratch: both wasm modules and their JS glue, then the page's files.
build_dist() {
  rm -rf dist
  mkdir -p dist
  build_module igcam-web "$CARGO_TARGET_DIR" "$RUSTFLAGS" "$@"
  # std itself must be built with atomics: always -Z build-std (with rustup, that needs the
  # rust-src component: `rustup component add rust-src`).
  RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD="std,panic_abort" \
    build_module igcam-web-mt "$MT_TARGET_DIR" "$MT_RUSTFLAGS" --no-default-features --features threads
  cp web/index.html web/app.js web/threads.js web/explain-worker.js web/sw.js web/style.css \
    models/efficientnet-lite0.onnx models/imagenet_labels.txt dist/
  cp -r assets/images dist/images
}

# A finished dist/ is kept per content of everything that goes into it (a CI rerun of the same
# commit, or a change that only touches docs, tests or scripts, skips the wasm build: ~4.5 min
# warm, ~30 cold).
inputs_key() {
  {
    find Cargo.toml Cargo.lock src web models assets -path web/e2e -prune -o -type f -print \
      | LC_ALL=C sort | xargs sha256sum
    echo "$RUSTFLAGS | $MT_RUSTFLAGS $* $(rustc --version) $(wasm-bindgen --version) $(wasm-opt --version)"
  } | sha256sum | cut -c1-16
}
key="$(inputs_key "$@")"
saved="$CACHE/dist/$key"
if [ -f "$saved/.complete" ]; then
  echo "web-build: dist/ unchanged since the build cached as $saved"
  rm -rf dist && cp -r "$saved" dist && rm -f dist/.complete
else
  phase "web crate fetch" fetch_crates
  phase "wasm build" build_dist "$@"
  # Keep only the newest few builds.
  mkdir -p "$CACHE/dist"
  rm -rf "$saved" && cp -r dist "$saved" && touch "$saved/.complete"
  ls -dt "$CACHE"/dist/*/ | tail -n +4 | xargs -r rm -rf
fi
ls -l dist/*.wasm
