#!/usr/bin/env bash
# labelwise without TensorFlow, in two throwaway virtual environments: Keras + JAX (CPU) and
# Keras + PyTorch (the CPU build pinned in .ci/constraints.txt; an unpinned torch pulls GBs of CUDA). labelwise is
# installed with --no-deps plus what it needs (its pyproject lists tensorflow for the default
# install); the Python input pipeline feeds both. Each runs backend tests and a tiny
# `labelwise train` -> `predict` -> `evaluate` on the 24 real NIH PNGs.
# Usage: .ci/no_tensorflow.sh [jax] [torch]   (default both)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
shared="${LABELWISE_SHARED_DATA:-$repo/../shared/data}"
nih="$shared/nih_chestxray14_images_tiny"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 LABELWISE_SHARED_DATA="$shared"
deps=(keras numpy pandas pillow matplotlib scikit-learn pytest)

for backend in "${@:-jax torch}"; do
  for b in $backend; do
    t0=$SECONDS
    venv="$work/venv-$b"
    python3 -m venv "$venv"
    if [ "$b" = jax ]; then fw='jax[cpu]'; else fw='torch'; fi
    "$venv/bin/pip" install -q -c .ci/constraints.txt "$fw" "${deps[@]}"
    "$venv/bin/pip" install -q --no-deps -e "$repo"
    if "$venv/bin/python" -c "import tensorflow" 2>/dev/null; then
      echo "no-tensorflow ($b): TensorFlow got installed into the venv; this check needs it absent" >&2; exit 1
    fi
    export KERAS_BACKEND="$b"
    # the Python pipeline and the no-TensorFlow paths; on torch also the Keras core (layers, losses),
    # which the main CI step runs only on TensorFlow and JAX. (Every backend test passes on torch
    # too -- 118 of them -- but takes minutes: run `.ci/no_tensorflow.sh torch` with tests=(tests) for that.)
    tests=(tests/test_pypipeline.py tests/test_no_tensorflow.py)
    if [ "$b" = torch ]; then tests+=(tests/test_layers.py tests/test_losses.py); fi
    "$venv/bin/python" -m pytest -q -p no:cacheprovider -m backend "${tests[@]}"
    if [ -d "$nih" ]; then
      run="$work/run-$b"
      mkdir -p "$run"
      cat > "$run/train.toml" <<TOML
table = "$nih/labels.csv"
images = "$nih/images"
split_fractions = [0.5, 0.25, 0.25]
backbone = "small_cnn"
image_size = [32, 32]
channels = 1
epochs = 2
batch_size = 8
bootstrap = 0
plots = false
verbose = 0
out_dir = "$run/out"
TOML
      "$venv/bin/labelwise" train "$run/train.toml"
      grep -q '"pipeline": "python"' "$run/out/config.json"
      "$venv/bin/labelwise" predict "$run/out/model.keras" "$nih/images" --out "$run/pred.csv" --quiet
      # exit 1 = the report found problems (24 images, most labels without positives): not a failure here
      "$venv/bin/labelwise" evaluate --truth "$nih/labels.csv" --scores "$run/pred.csv" --bootstrap 0 --no-plots \
        --out "$run/eval" >/dev/null || [ $? -eq 1 ]
      test -s "$run/eval/metrics.json"
    else
      echo "no-tensorflow ($b): shared data not found at $nih; end-to-end run skipped"
    fi
    if [ "$b" = jax ]; then  # the GPU benchmark's --smoke: tiny shapes, CPU, whatever backend is here
      OUT="$work/gpu" PYTHON="$venv/bin/python" benchmarks/gpu/run.sh --smoke >/dev/null
      grep -q '"images_per_s"' "$work/gpu/gpu_results.json"
      if grep -q '"failed' "$work/gpu/gpu_results.json"; then cat "$work/gpu/gpu_results.md"; exit 1; fi
    fi
    echo "no-tensorflow ($b): passed in $((SECONDS - t0)) s"
  done
done
