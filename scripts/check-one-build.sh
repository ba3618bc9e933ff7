#!/usr/bin/env bash
# The README's two commands share one build: after `cargo build --release` (what `cargo run
# --release` builds), the test build (`cargo test --release --all-targets`) must compile only
# this workspace's own crates and the crates only the tests use. A dependency compiled again
# means the dev-dependencies resolved it with other features (Cargo unifies features per
# build), which rebuilds everything above it (bitflags' `std` once rebuilt wgpu, naga, cubecl
# and Burn): the check names each such crate and the features that differ. Fix it by asking for
# those features in Cargo.toml's own [dependencies].
set -euo pipefail
cd "$(dirname "$0")/.."
build_log="$(mktemp)"
test_log="$(mktemp)"
trap 'rm -f "$build_log" "$test_log"' EXIT
cargo build --release --message-format=json-render-diagnostics >"$build_log"
cargo test --release --all-targets --no-run --message-format=json-render-diagnostics >"$test_log"
python3 - "$build_log" "$test_log" <<'PY'
import json, sys

def artifacts(path):
    """(name, version, target kind) -> (features, fresh) of every non-workspace unit built."""
    out = {}
    for line in open(path):
        if not line.startswith("{"):
            continue
        m = json.loads(line)
        if m.get("reason") != "compiler-artifact":
            continue
        pid = m["package_id"]
        if pid.startswith("path+file://"):  # this workspace's crates
            continue
        name, version = m["target"]["name"], pid.rsplit("@", 1)[-1]
        # The optimisation level tells a build script's dependency (`build-override`: opt-level
        # 0) from the same crate as a dev-dependency (tempfile, under onnx-ir's build script
        # and under the tests): two units, each built once, not a rebuild.
        opt = m.get("profile", {}).get("opt_level", "?")
        key = (name, version, tuple(m["target"]["kind"]), opt)
        out[key] = (sorted(m["features"]), m["fresh"])
    return out

build, test = artifacts(sys.argv[1]), artifacts(sys.argv[2])
again = [(k, f) for k, (f, fresh) in test.items() if not fresh and k in build]
if again:
    print("check-one-build: the test build compiled again what `cargo build --release` had built:", file=sys.stderr)
    for (name, version, kind, opt), features in sorted(again):
        before = build[(name, version, kind, opt)][0]
        diff = sorted(set(features) ^ set(before))
        why = f"features differ: {', '.join(diff)}" if diff else "same features (a dependency of it differs)"
        print(f"  {name} {version} ({'/'.join(kind)}): {why}", file=sys.stderr)
    print("ask for those features in Cargo.toml's [dependencies] (see the bitflags entry)", file=sys.stderr)
    sys.exit(1)
new = sorted(f"{n} {v}" for (n, v, _k, _o), (_f, fresh) in test.items() if not fresh)
only = f"only the {len(new)} crates the tests alone use: {', '.join(new)}" if new else "(the crates the tests alone use were built already)"
print(f"check-one-build: the test build compiled no dependency of the binary again {only}")
PY
