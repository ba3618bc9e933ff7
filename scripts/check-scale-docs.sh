#!/usr/bin/env bash
# Checks the scheduler scripts of docs/scale.md: the Slurm batch script parses (`bash -n`) and
# calls `eval --shard auto`; the Kubernetes manifest validates against the Kubernetes schema
# (`kubernetes-validate --strict`, from PyPI, in a small venv cached under ~/.cache/igcam) and
# is an Indexed Job whose completions equal the N of its `--shard auto/N`.
set -euo pipefail
cd "$(dirname "$0")/.."
# A wheel pip builds from source must not meet CI's clippy wrapper (.ci/run).
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
venv="${IGCAM_DOCS_VENV:-$HOME/.cache/igcam/docs-venv}"
pin="kubernetes-validate==1.37.0"
if [ "$(cat "$venv/.pin" 2>/dev/null)" != "$pin" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  timeout 600 "$venv/bin/python" -m pip install -q --disable-pip-version-check "$pin"
  echo "$pin" >"$venv/.pin"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The fenced blocks: the first ```bash block is the batch script, the ```yaml block the Job.
awk -v dir="$work" '
  /^```bash$/ && !sbatch { sbatch = 1; out = dir "/eval.sbatch"; next }
  /^```yaml$/ { out = dir "/job.yaml"; next }
  /^```$/ { out = ""; next }
  out != "" { print > out }
' docs/scale.md
bash -n "$work/eval.sbatch"
grep -q -- "--shard auto " "$work/eval.sbatch" || { echo "docs/scale.md: the batch script does not use --shard auto" >&2; exit 1; }
grep -q "^#SBATCH --array=" "$work/eval.sbatch" || { echo "docs/scale.md: the batch script is not a job array" >&2; exit 1; }
"$venv/bin/kubernetes-validate" --strict --quiet "$work/job.yaml"
"$venv/bin/python" - "$work/job.yaml" <<'PY'
import re, sys, yaml
job = yaml.safe_load(open(sys.argv[1]))
spec = job["spec"]
assert spec["completionMode"] == "Indexed", "not an Indexed Job"
args = " ".join(spec["template"]["spec"]["containers"][0]["args"])
n = int(re.search(r"--shard auto/(\d+)", args).group(1))
assert n == spec["completions"], f"--shard auto/{n} but completions: {spec['completions']}"
PY
echo "docs/scale.md: the batch script and the Kubernetes manifest check out"
