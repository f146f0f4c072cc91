#!/usr/bin/env bash
# GPU benchmark in one command, for an air-gapped GPU machine with Python 3.12 and its own
# PyTorch / torchvision / JAX with CUDA, no TensorFlow and no package registry (README.md beside this).
#   benchmarks/gpu/run.sh            # the full run: under 8 minutes on one H100
#   benchmarks/gpu/run.sh --smoke    # tiny shapes on the CPU: proves the script runs (CI runs this)
# Writes benchmarks/gpu/gpu_results.json and gpu_results.md (the table), or under $OUT when set.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
py="${PYTHON:-python3}"
smoke=0
for a in "$@"; do [ "$a" = "--smoke" ] && smoke=1; done
outdir="${OUT:-$here}"
mkdir -p "$outdir"
results="$outdir/gpu_results.json"
rm -f "$results"
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}" TF_CPP_MIN_LOG_LEVEL=3 PIP_DISABLE_PIP_VERSION_CHECK=1

# 1. Keras and labelwise's small pure-Python dependencies, from wheels brought in .whl/ (no index):
#    only what this Python lacks. numpy and Pillow come with PyTorch images; the rest may not.
missing=()
for spec in keras:keras pandas:pandas matplotlib:matplotlib sklearn:scikit-learn h5py:h5py numpy:numpy PIL:pillow; do
  # find_spec, not import: importing keras needs a backend chosen first
  "$py" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('${spec%%:*}') is None)" \
    || missing+=("${spec##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ -d "$here/.whl" ]; then
    echo "run.sh: installing ${missing[*]} from $here/.whl (no index)"
    "$py" -m pip install --no-index --find-links "$here/.whl" --user "${missing[@]}" 2>&1 | tail -2 \
      || "$py" -m pip install --no-index --find-links "$here/.whl" "${missing[@]}" 2>&1 | tail -2
  else
    echo "run.sh: this Python lacks ${missing[*]} and $here/.whl does not exist; fetch the wheels (README.md)" >&2
    exit 2
  fi
fi

# 2. The real file pipeline's input: the NIH PNGs, copied into the ignored .data/ folder.
data="$here/.data/nih"
shared="${LABELWISE_SHARED_DATA:-$repo/../shared/data}"
mkdir -p "$data"
if ! ls "$data"/*.png >/dev/null 2>&1; then
  for src in "$shared/nih_chestxray14_images_tiny/images" "$repo/shared/data/nih_chestxray14_images_tiny/images"; do
    if ls "$src"/*.png >/dev/null 2>&1; then cp "$src"/*.png "$data"/; break; fi
  done
fi
ls "$data"/*.png >/dev/null 2>&1 || { echo "run.sh: no NIH PNGs found (set LABELWISE_SHARED_DATA)" >&2; exit 2; }

# 3. One process per Keras backend (Keras fixes it per process), then the hand-written torch loop.
#    Budgets (seconds) keep the whole run under 8 minutes; legs past a budget are recorded as skipped.
if [ "$smoke" = 1 ]; then
  # labelwise's small CNN at 32x32: compiling DenseNet-121 on a CPU alone takes minutes
  args=(--smoke --models small_cnn --precisions bfloat16)
  budgets=(600 600 600)
  export CUDA_VISIBLE_DEVICES="" JAX_PLATFORMS=cpu
else
  args=()
  budgets=(200 120 90)
  export JAX_COMPILATION_CACHE_DIR="$here/.data/jax-cache" XLA_PYTHON_CLIENT_PREALLOCATE=false
fi
i=0
for backend in jax torch; do
  if "$py" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$backend') is None)"; then
    echo "run.sh: Keras on $backend"
    KERAS_BACKEND=$backend timeout $((budgets[i] + 30)) "$py" "$here/bench.py" --part keras --out "$results" \
      --data "$data" --budget "${budgets[i]}" "${args[@]}" || echo "run.sh: the $backend process failed (rc $?)"
  else
    echo "run.sh: $backend is not installed; its legs are skipped"
  fi
  i=$((i + 1))
done
if "$py" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"; then
  KERAS_BACKEND=torch timeout $((budgets[2] + 30)) "$py" "$here/bench.py" --part torch --out "$results" \
    --data "$data" --budget "${budgets[2]}" "${args[@]}" || echo "run.sh: the torch loop failed (rc $?)"
fi
"$py" "$here/bench.py" --part table --out "$results"
