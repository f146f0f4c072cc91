"""``keras.saving.load_model`` finds labelwise's objects whatever is imported first.

Each order runs in a fresh interpreter, because what matters is which module triggers the
first ``import keras`` (the registration hook runs then). Before the fix, a first import of
``labelwise.blocks.layers`` left ``labelwise.blocks.models`` unimported (a circular import inside the hook)
and loading a ``build_model`` model failed with "Could not locate class 'ImagePreprocess'".
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from labelwise import LabelSchema  # noqa: E402

SCHEMA = LabelSchema(["a", "b"], {"view": ["PA", "AP"]}, none="none")

# What the child imports first; every order must end with `keras` and the model loader usable.
ORDERS = {
    "from_labelwise_import_layer_then_keras": "import labelwise\nfrom labelwise import SchemaHead\nimport keras",
    "from_labelwise_layers_import": "from labelwise.blocks.layers import SchemaHead, MultiImagePooling\nimport keras",
    "from_labelwise_import_pooling": "from labelwise import MultiImagePooling\nimport keras",
    "from_labelwise_models_import": "from labelwise.blocks.models import build_model\nimport keras",
    "keras_first": "import keras\nimport labelwise",
    "labelwise_only_then_keras": "import labelwise\nimport keras",
}

_CHILD = textwrap.dedent("""
    import sys, warnings
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
    {imports}
        import numpy as np
        data = np.load(sys.argv[1])
        for name in ("single", "case"):
            model = keras.saving.load_model(sys.argv[1].replace("data.npz", name + ".keras"))
            x = data["x"] if name == "single" else [data["images"], data["mask"]]
            np.save(sys.argv[1].replace("data.npz", name + ".child.npy"), model.predict(x, verbose=0))
            print(name, type(model.loss).__name__, model.get_layer("schema_head").schema.labels)
    bad = [str(w.message) for w in caught if "labelwise" in str(w.message)]
    assert not bad, bad
    print("CHILD OK")
""")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from labelwise.blocks.losses import SchemaLoss
    from labelwise.blocks.models import build_case_model, build_model

    root = tmp_path_factory.mktemp("import_order")
    r = np.random.default_rng(0)
    x = r.uniform(0, 255, (3, 12, 12, 1)).astype("float32")
    images = r.uniform(0, 255, (3, 2, 12, 12, 1)).astype("float32")
    mask = np.array([[1, 1], [1, 0], [1, 1]], "float32")
    preds = {}
    single = build_model(SCHEMA, "small_cnn", input_shape=(12, 12, 1), weights=None)
    single.compile(optimizer="adam", loss=SchemaLoss(SCHEMA, "focal"))
    single.save(root / "single.keras")
    preds["single"] = single.predict(x, verbose=0)
    case = build_case_model(SCHEMA, "small_cnn", n_images=2, image_shape=(12, 12, 1), weights=None,
                            case_pooling="attention", attention_units=4)
    case.compile(optimizer="adam", loss=SchemaLoss(SCHEMA))
    case.save(root / "case.keras")
    preds["case"] = case.predict([images, mask], verbose=0)
    np.savez(root / "data.npz", x=x, images=images, mask=mask)
    return root, preds


@pytest.mark.slow
@pytest.mark.parametrize("order", list(ORDERS))
def test_load_model_works_for_every_first_import(saved, order):
    root, preds = saved
    code = _CHILD.format(imports=textwrap.indent(ORDERS[order], "    "))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", code, str(root / "data.npz")], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0 and "CHILD OK" in proc.stdout, proc.stderr[-3000:]
    for name in ("single", "case"):
        assert f"{name} SchemaLoss" in proc.stdout
        np.testing.assert_allclose(np.load(root / f"{name}.child.npy"), preds[name], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- the top-level namespace
AUDITED_NAMES = {  # public names served at the top level, each with its home module
    "weighted_binary_crossentropy": "blocks.losses", "binary_focal_loss": "blocks.losses",
    "asymmetric_loss": "blocks.losses", "schema_loss": "blocks.losses", "ImagePreprocess": "blocks.models",
    "small_cnn": "blocks.models", "build_backbone": "blocks.models", "WeightsUnavailable": "blocks.models",
    "StackSet": "data.stacks", "masked_max": "blocks.layers", "masked_mean": "blocks.layers",
    "gated_attention": "blocks.layers", "powerset_scores_to_label_scores": "labels.powerset",
    "build_powerset_head": "blocks.layers", "PowersetHead": "blocks.layers",
}


def test_every_public_name_resolves_to_its_module():
    import importlib

    import labelwise

    for name, module in AUDITED_NAMES.items():
        assert name in labelwise.__all__
        assert getattr(labelwise, name) is getattr(importlib.import_module(f"labelwise.{module}"), name)
    for name in labelwise.__all__:
        obj = getattr(labelwise, name)  # an AttributeError here is a typo in _LAZY
        if name in labelwise._LAZY and hasattr(obj, "__module__") and callable(obj):
            assert obj.__module__.startswith(labelwise._LAZY[name]), name  # metrics re-exports its submodules
    from labelwise import ImagePreprocess, blocks  # the README's import, now from the top level

    assert ImagePreprocess is blocks.models.ImagePreprocess


def test_dir_lists_the_lazy_names_without_importing_them():
    code = textwrap.dedent("""
        import sys, labelwise
        names = dir(labelwise)
        missing = [n for n in labelwise.__all__ if n not in names]
        assert not missing, missing
        assert {"ImagePreprocess", "weighted_binary_crossentropy", "blocks", "training", "LabelSchema"} <= set(names)
        assert names == sorted(names)
        heavy = [m for m in ("keras", "tensorflow", "jax") if m in sys.modules]
        assert not heavy, heavy
        print("OK")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-2000:]
