#!/usr/bin/env bash
# Builds the static site into dist/: the web crate for wasm32 (profile `wasm-release`) twice,
#   * igcam-web: single-threaded, WebGPU and the CPU (every page, and the only one where the page
#     is not cross-origin isolated);
#   * igcam-web-mt: the CPU path on a rayon pool of Web Workers (`--features threads`, built with
#     +atomics and its own std; no WebGPU), loaded by web/explain-worker.js;
# each through wasm-bindgen (`--target web`), the first also through wasm-opt -Oz, and the
# page's own files (index.html, web/*.js, style.css, the default model, its labels, the sample
# photos) copied beside them. The toolchain, the tools and their cache: scripts/wasm-env.sh. No
# Trunk here: the page imports the wasm-bindgen module itself, so the test build is one cargo
# build and two tool runs (Trunk is the developer's loop: Trunk.toml, scripts/trunk-build.sh).
# Arguments go to the single-threaded build's `cargo build` (e.g. `--features ...`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/phases.sh
source scripts/wasm-env.sh
# One build at a time per machine: a second call (CI's browser test, while `.ci/run`'s
# background build still runs) waits here, then finds dist/ cached.
exec 9>"$CACHE/web-build.lock"
flock 9
phase "web tool installs" install_tools
wasm_toolchain

# One wasm module into dist/: NAME TARGET_DIR RUSTFLAGS [cargo build args], and wasm-bindgen's
# JS glue. The function names section goes (three quarters of the single-threaded module's 61
# MB before wasm-opt; nothing reads it).
build_module() {
  local name="$1" target_dir="$2" flags="$3"
  shift 3
  CARGO_TARGET_DIR="$target_dir" RUSTFLAGS="$flags" cargo build --offline --lib \
    --manifest-path web/Cargo.toml --target wasm32-unknown-unknown --profile wasm-release "$@"
  wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section \
    --out-dir dist --out-name "$name" "$target_dir/wasm32-unknown-unknown/wasm-release/igcam_web.wasm"
}

# wasm-opt on module NAME in dist/: 15.8 → 12.3 MB for the single-threaded module, in 4.7 min on
# one core (binaryen's JavaScript build). The threaded module is left as wasm-bindgen writes it:
# -Oz took it from 6.3 to 5.6 MB in 3.3 min, at the end of the build, where nothing else runs
# beside it, which a cold CI run on 2 cores cannot afford.
optimise_module() {
  # The features rustc's wasm32 target emits (and simd128, atomics, from the flags).
  wasm-opt -Oz --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    --enable-threads "dist/${1}_bg.wasm" -o "dist/${1}_bg.wasm"
}

# dist/ from scratch: both wasm modules and their JS glue, then the page's files. The two modules
# have target dirs of their own, so they build side by side (one after the other, they were the
# critical path of a cold CI run on 2 cores); the single-threaded one's wasm-opt follows it.
build_dist() {
  rm -rf dist
  mkdir -p dist
  (build_module igcam-web "$CARGO_TARGET_DIR" "$RUSTFLAGS" "$@" && optimise_module igcam-web) &
  local first=$!
  # std itself must be built with atomics: always -Z build-std (with rustup, that needs the
  # rust-src component: `rustup component add rust-src`).
  RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD="std,panic_abort" \
    build_module igcam-web-mt "$MT_TARGET_DIR" "$MT_RUSTFLAGS" --no-default-features --features threads
  wait "$first"
  cp index.html web/app.js web/threads.js web/explain-worker.js web/sw.js web/style.css \
    models/efficientnet-lite0.onnx models/imagenet_labels.txt dist/
  cp -r assets/images dist/images
}

# A finished dist/ is kept per content of everything that goes into it (a CI rerun of the same
# commit, or a change that only touches docs, tests or scripts, skips the wasm build: ~4.5 min
# warm, ~30 cold).
inputs_key() {
  {
    find Cargo.toml Cargo.lock index.html src web models assets -path web/e2e -prune -o -type f -print \
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
