"""labelwise: multi-label image classification in the Keras 3 style.

The package reads as the pipeline: ``labels`` -> ``metrics`` -> ``decide`` -> ``evaluation``
(numpy core: neither Keras nor TensorFlow, so ``import labelwise`` is fast and works where no
framework is installed), then ``blocks`` (Keras layers, losses, models), ``data`` (input
pipelines), ``training`` (train, artifact, predict) and ``commands`` (the CLI). The Keras parts
load on first use, and register themselves with ``keras.saving`` as soon as Keras is
imported, so ``keras.saving.load_model`` finds them without ``custom_objects``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import re
import sys
import warnings
from typing import Any

from .errors import InputError, LabelwiseError, SchemaError, SchemaViolation, TableError
from .labels.schema import LabelSchema, load_schema

__version__ = "0.1.0"


def _default_keras_backend() -> None:
    """Where no Keras backend is chosen (no KERAS_BACKEND; keras.json absent or holding the
    "tensorflow" Keras writes there itself) and TensorFlow is not installed, use JAX, else
    PyTorch, instead of failing on the first Keras import."""
    import json
    import os

    if os.environ.get("KERAS_BACKEND") or "keras" in sys.modules or importlib.util.find_spec("tensorflow"):
        return
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as f:
            if json.load(f).get("backend", "tensorflow") != "tensorflow":
                return  # a backend chosen there: Keras says so if it is missing
    except (OSError, ValueError, AttributeError):
        pass
    for name in ("jax", "torch"):
        if importlib.util.find_spec(name) is not None:
            os.environ["KERAS_BACKEND"] = name
            return


_default_keras_backend()

# TensorFlow's native (C++/abseil) log lines: "I0000 00:00:... cudart_stub.cc:31] Could not find cuda
# drivers", oneDNN and CPU-feature notes. Some are printed while TensorFlow loads, before its log
# level applies, so they are filtered out of file descriptor 2 during that import.
_NATIVE_LOG = re.compile(r"^[IWE]\d{4} [\d:. ]+\s+\d+ [\w./-]+:\d+\] ")
_NATIVE_NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "To enable the following instructions:",
    "oneDNN custom operations are on",
)


def is_native_log_noise(line: str) -> bool:
    """Whether a line of stderr is TensorFlow/abseil native logging (info, warning, error levels;
    fatal lines are kept) rather than a message for the user."""
    return bool(_NATIVE_LOG.match(line)) or any(line.startswith(t) for t in _NATIVE_NOISE)


class _OneShotImportHook(importlib.abc.MetaPathFinder):
    """An import hook that fires once, for the package ``name``: it removes itself from
    ``sys.meta_path``, finds the real spec and wraps its loader's ``exec_module`` with
    :meth:`wrap` (``wrap(exec_module) -> exec_module``)."""

    name = ""

    def find_spec(self, fullname, path, target=None):  # noqa: D401 - importlib protocol
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(self.name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader.exec_module = self.wrap(spec.loader.exec_module)
        return spec

    def wrap(self, exec_module):
        raise NotImplementedError


class _QuietTensorFlowImport(_OneShotImportHook):
    """While the ``tensorflow`` package loads, file descriptor 2 goes to a temporary file;
    afterwards the lines that are not native log noise are written back.

    Installed only when the user has not set ``TF_CPP_MIN_LOG_LEVEL`` (setting it, to any value,
    brings every line back), so ``import labelwise, keras`` prints nothing on stderr.
    """

    name = "tensorflow"

    def wrap(self, exec_module):
        def exec_quietly(module):
            import os
            import tempfile

            try:
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError, AttributeError):  # no descriptor 2 to redirect
                exec_module(module)
                return
            with tempfile.TemporaryFile(mode="w+b") as log:
                os.dup2(log.fileno(), 2)
                try:
                    exec_module(module)
                finally:
                    os.dup2(saved, 2)
                    os.close(saved)
                    log.seek(0)
                    kept = [ln for ln in log.read().decode("utf-8", "replace").splitlines()
                            if ln.strip() and not is_native_log_noise(ln)]
                    if kept:
                        print("\n".join(kept), file=sys.stderr)

        return exec_quietly


_TF_LOGS = {"quieted": False}  # whether labelwise (not the user) set TF_CPP_MIN_LOG_LEVEL


def tensorflow_logs_quieted_by_labelwise() -> bool:
    """True when ``TF_CPP_MIN_LOG_LEVEL`` was set by ``import labelwise``, not by the user."""
    import os

    return _TF_LOGS["quieted"] and "TF_CPP_MIN_LOG_LEVEL" in os.environ


def restore_tensorflow_logs() -> None:
    """Undo the quieting (``labelwise CMD --verbose 2``): unset the log level labelwise set and
    drop the import filter, when TensorFlow is not loaded yet."""
    import os

    if _TF_LOGS["quieted"] and "tensorflow" not in sys.modules:
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietTensorFlowImport)]
        _TF_LOGS["quieted"] = False


def _quiet_tensorflow_logs() -> None:
    """Unless the user set ``TF_CPP_MIN_LOG_LEVEL``, set it to 2 (errors only) and filter the lines
    printed while TensorFlow loads; a no-op once TensorFlow is imported."""
    import os

    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    _TF_LOGS["quieted"] = True
    if not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


_quiet_tensorflow_logs()

# Modules that define Keras objects registered for ``keras.saving``.
_KERAS_MODULES = ("labelwise.blocks.layers", "labelwise.blocks.losses", "labelwise.blocks.models", "labelwise.training.artifact")

# Public names served lazily: name -> module. Light modules are here too so that
# ``import labelwise`` itself stays cheap.
_LAZY: dict[str, str] = {
    # data
    "read_table": "labelwise.labels.tables",
    "LabelTable": "labelwise.labels.spec",
    "read_mnist_idx": "labelwise.labels.tables",
    "summarize": "labelwise.labels.stats",
    "split_table": "labelwise.labels.split",
    "check_split": "labelwise.labels.split",
    "read_mrnet": "labelwise.data.stacks",
    "read_stack_table": "labelwise.data.stacks",
    "read_cases": "labelwise.data.stacks",
    "pad_stack": "labelwise.data.stacks",
    # decide and evaluate (numpy only)
    "bootstrap_ci": "labelwise.metrics",
    "tune_thresholds": "labelwise.decide.thresholds",
    "Thresholds": "labelwise.decide.thresholds",
    "diagnose": "labelwise.evaluation.diagnostics",
    "read_scores": "labelwise.labels.scores",
    "evaluate": "labelwise.evaluation",
    "compare": "labelwise.evaluation",
    "EvaluationResult": "labelwise.evaluation",
    "ComparisonResult": "labelwise.evaluation",
    "paired_bootstrap": "labelwise.metrics",
    "LabelPowerset": "labelwise.labels.powerset",
    "fit_calibration": "labelwise.decide",
    "Calibration": "labelwise.decide",
    "DecisionPolicy": "labelwise.decide",
    "fit_policy": "labelwise.decide",
    "compare_rules": "labelwise.decide",
    # Keras building blocks
    "StackSet": "labelwise.data.stacks",
    "powerset_scores_to_label_scores": "labelwise.labels.powerset",
    "build_powerset_head": "labelwise.blocks.layers",
    # Keras building blocks (importing one of these loads Keras)
    "SchemaHead": "labelwise.blocks.layers",
    "schema_activation": "labelwise.blocks.layers",
    "structured_logits": "labelwise.blocks.layers",
    "PowersetHead": "labelwise.blocks.layers",
    "powerset_label_scores": "labelwise.blocks.layers",
    "MultiImagePooling": "labelwise.blocks.layers",
    "GatedAttentionPooling": "labelwise.blocks.layers",
    "masked_max": "labelwise.blocks.layers",
    "masked_mean": "labelwise.blocks.layers",
    "gated_attention": "labelwise.blocks.layers",
    "SchemaLoss": "labelwise.blocks.losses",
    "schema_loss": "labelwise.blocks.losses",
    "WeightedBinaryCrossentropy": "labelwise.blocks.losses",
    "weighted_binary_crossentropy": "labelwise.blocks.losses",
    "BinaryFocalLoss": "labelwise.blocks.losses",
    "binary_focal_loss": "labelwise.blocks.losses",
    "AsymmetricLoss": "labelwise.blocks.losses",
    "asymmetric_loss": "labelwise.blocks.losses",
    "balanced_weights": "labelwise.blocks.loss_weights",
    "check_class_weight": "labelwise.blocks.loss_weights",
    "build_model": "labelwise.blocks.models",
    "build_case_model": "labelwise.blocks.models",
    "build_backbone": "labelwise.blocks.models",
    "small_cnn": "labelwise.blocks.models",
    "ImagePreprocess": "labelwise.blocks.models",
    "BACKBONES": "labelwise.blocks.models",
    "WeightsUnavailable": "labelwise.blocks.models",
    "freeze_backbone": "labelwise.blocks.models",
    "unfreeze_top": "labelwise.blocks.models",
    # train and serve
    "make_dataset": "labelwise.data.pipeline",
    "TrainConfig": "labelwise.training",
    "train": "labelwise.training",
    "run_demo": "labelwise.training.demo",
}
# The parts of the pipeline, reachable as attributes (``labelwise.metrics.roc_auc_score``) and
# loaded on first use; see docs/architecture.md for what each holds and who may import whom.
_SUBMODULES = {
    "io", "labels", "metrics", "decide", "evaluation", "blocks", "data", "training",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"labelwise.{name}")
    raise AttributeError(f"module 'labelwise' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy names are not module globals until first used; list them so that dir() and tab
    # completion show the whole public API without importing anything.
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)


_registration = {"done": False, "running": False}


def _initializing(module: str) -> bool:
    """True while ``module`` is half-way through its own first import."""
    mod = sys.modules.get(module)
    return mod is not None and bool(getattr(getattr(mod, "__spec__", None), "_initializing", False))


def _register_keras_objects() -> None:
    """Import every module of ``_KERAS_MODULES`` so that its ``register_keras_serializable``
    decorators run. Called when Keras finishes loading, and again at the end of each of our
    Keras modules.

    Why the second call: when the first ``import keras`` comes from one of our own modules
    (``from labelwise.blocks.layers import SchemaHead`` before Keras), that module is only half
    initialised while the hook runs, so a module importing names from it (``models`` needs
    ``layers.MultiImagePooling``) fails with a circular ImportError. Such a failure is deferred
    silently: the half-initialised module calls this again once its names exist.
    """
    if _registration["done"] or _registration["running"]:
        return  # a nested call (a module imported below finishing) changes nothing: the loop goes on
    _registration["running"] = True
    try:
        complete = True
        for module in _KERAS_MODULES:
            if _initializing(module):
                complete = False  # its decorators run as it loads; it calls us again at its end
                continue
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as e:
                if e.name != module:  # a real missing dependency, not a module we do not ship yet
                    warnings.warn(f"labelwise could not register its Keras objects from {module}: {e}")
            except ImportError as e:
                complete = False
                if not any(_initializing(m) for m in _KERAS_MODULES):
                    warnings.warn(f"labelwise could not register its Keras objects from {module}: {e}")
                # else: a circular import through a half-initialised module; retried when it finishes
            except Exception as e:  # never break the user's `import keras`
                warnings.warn(f"labelwise could not register its Keras objects from {module}: {e}")
        _registration["done"] = complete
    finally:
        _registration["running"] = False


class _RegisterWhenKerasLoads(_OneShotImportHook):
    """After the ``keras`` package finishes loading, import our Keras modules so that their
    ``@keras.saving.register_keras_serializable`` decorators run.

    Why a hook: importing Keras takes seconds (it loads the backend), which the light
    commands must not pay, yet a user who writes ``import labelwise`` and later calls
    ``keras.saving.load_model`` must find our layers and losses registered.
    """

    name = "keras"

    def wrap(self, exec_module):
        def exec_then_register(module):
            exec_module(module)
            _register_keras_objects()

        return exec_then_register


if "keras" in sys.modules:
    _register_keras_objects()
elif not any(isinstance(f, _RegisterWhenKerasLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenKerasLoads())

__all__ = ["LabelSchema", "load_schema", "LabelwiseError", "SchemaError", "SchemaViolation", "TableError",
           "InputError", *_LAZY]
