"""labelwise: multi-label image classification in the Keras 3 style.

The light core (schema, tables, split, metrics, thresholds) imports neither Keras nor
TensorFlow, so ``import labelwise`` is fast and works where no framework is installed.
The Keras parts (``labelwise.layers``, ``labelwise.losses``, ``labelwise.models``, ...)
load on first use, and register themselves with ``keras.saving`` as soon as Keras is
imported, so ``keras.saving.load_model`` finds them without ``custom_objects``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from typing import Any

from .errors import InputError, LabelwiseError, SchemaError, SchemaViolation, TableError
from .schema import LabelSchema, load_schema

__version__ = "0.1.0"

# Modules that define Keras objects registered for ``keras.saving``.
_KERAS_MODULES = ("labelwise.layers", "labelwise.losses", "labelwise.models", "labelwise.powerset", "labelwise.artifact")

# Public names served lazily: name -> module. Light modules are here too so that
# ``import labelwise`` itself stays cheap.
_LAZY: dict[str, str] = {
    # data
    "read_table": "labelwise.tables",
    "LabelTable": "labelwise.tables",
    "read_mnist_idx": "labelwise.tables",
    "summarize": "labelwise.stats",
    "split_table": "labelwise.split",
    "check_split": "labelwise.split",
    "read_mrnet": "labelwise.stacks",
    "read_stack_table": "labelwise.stacks",
    "read_cases": "labelwise.stacks",
    "pad_stack": "labelwise.stacks",
    # decide and evaluate (numpy only)
    "bootstrap_ci": "labelwise.metrics",
    "tune_thresholds": "labelwise.thresholds",
    "Thresholds": "labelwise.thresholds",
    "decide": "labelwise.thresholds",
    "diagnose": "labelwise.diagnostics",
    "read_scores": "labelwise.scores",
    "EvaluationResult": "labelwise.evaluate",
    "ComparisonResult": "labelwise.evaluate",
    "paired_bootstrap": "labelwise.metrics",
    "LabelPowerset": "labelwise.powerset",
    # Keras building blocks
    "StackSet": "labelwise.stacks",
    "powerset_scores_to_label_scores": "labelwise.powerset",
    "build_powerset_head": "labelwise.powerset",
    # Keras building blocks (importing one of these loads Keras)
    "SchemaHead": "labelwise.layers",
    "schema_activation": "labelwise.layers",
    "PowersetHead": "labelwise.layers",
    "powerset_label_scores": "labelwise.layers",
    "MultiImagePooling": "labelwise.layers",
    "GatedAttentionPooling": "labelwise.layers",
    "masked_max": "labelwise.layers",
    "masked_mean": "labelwise.layers",
    "gated_attention": "labelwise.layers",
    "SchemaLoss": "labelwise.losses",
    "schema_loss": "labelwise.losses",
    "WeightedBinaryCrossentropy": "labelwise.losses",
    "weighted_binary_crossentropy": "labelwise.losses",
    "BinaryFocalLoss": "labelwise.losses",
    "binary_focal_loss": "labelwise.losses",
    "AsymmetricLoss": "labelwise.losses",
    "asymmetric_loss": "labelwise.losses",
    "balanced_weights": "labelwise.losses",
    "check_class_weight": "labelwise.losses",
    "build_model": "labelwise.models",
    "build_case_model": "labelwise.models",
    "build_backbone": "labelwise.models",
    "small_cnn": "labelwise.models",
    "ImagePreprocess": "labelwise.models",
    "BACKBONES": "labelwise.models",
    "WeightsUnavailable": "labelwise.models",
    "freeze_backbone": "labelwise.models",
    "unfreeze_top": "labelwise.models",
    # train and serve
    "make_dataset": "labelwise.pipeline",
    "TrainConfig": "labelwise.train",
    "run_demo": "labelwise.demo",
}
# Submodules reachable as attributes (``labelwise.metrics``); ``labelwise.evaluate`` is the module,
# so call ``labelwise.evaluate.evaluate(...)`` or ``from labelwise.evaluate import evaluate``.
_SUBMODULES = {
    "tables", "split", "stats", "metrics", "thresholds", "diagnostics", "evaluate", "scores", "report",
    "layers", "losses", "models", "powerset", "stacks", "pipeline", "train", "predict", "artifact",
    "distribute", "shards", "demo",
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
    (``from labelwise.layers import SchemaHead`` before Keras), that module is only half
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


class _RegisterWhenKerasLoads(importlib.abc.MetaPathFinder):
    """One-shot import hook: after the ``keras`` package finishes loading, import our Keras
    modules so that their ``@keras.saving.register_keras_serializable`` decorators run.

    Why a hook: importing Keras takes seconds (it loads the backend), which the light
    commands must not pay, yet a user who writes ``import labelwise`` and later calls
    ``keras.saving.load_model`` must find our layers and losses registered.
    """

    def find_spec(self, fullname, path, target=None):  # noqa: D401 - importlib protocol
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register_keras_objects()

        spec.loader.exec_module = exec_then_register
        return spec


if "keras" in sys.modules:
    _register_keras_objects()
elif not any(isinstance(f, _RegisterWhenKerasLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenKerasLoads())

__all__ = ["LabelSchema", "load_schema", "LabelwiseError", "SchemaError", "SchemaViolation", "TableError",
           "InputError", *_LAZY]
