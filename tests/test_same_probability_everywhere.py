"""The same image and artifact give the same calibrated probability and decision on every surface:
``labelwise predict`` (CLI), the Python API, ``serve`` (the app in-process), ``explain`` (its captions
and its predictions.csv) and ``evaluate`` on the predict file, for a model saved with a Platt
calibration, a set-level rule, a derived label, an exclusive group and a none label. The reference
is computed here by hand from the model's raw outputs and the stored Platt parameters. A model
saved without a policy decides at 0.5 per label, said once."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from labelwise.labels.schema import LabelSchema  # noqa: E402

SCHEMA = LabelSchema(("a", "b", "c"), {"view": ("PA", "AP")}, none="none", derived={"ab": ("a", "b")})
SIZE = 16
N_IMAGES = 6


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _truth_rows(rng, n):
    free = np.zeros((n, SCHEMA.n_free), np.uint8)
    free[:, :3] = rng.random((n, 3)) < 0.4
    free[np.arange(n), 3 + rng.integers(0, 2, n)] = 1
    return SCHEMA.enforce(free)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small_cnn saved with a policy fitted on its own validation scores: Platt + instance-f1."""
    from PIL import Image

    from labelwise.blocks.models import build_model
    from labelwise.decide import fit_policy
    from labelwise.training import artifact

    d = tmp_path_factory.mktemp("surfaces")
    keras.utils.set_random_seed(21)
    model = build_model(SCHEMA, "small_cnn", input_shape=(SIZE, SIZE, 1), weights=None)
    rng = np.random.default_rng(21)
    x_val = rng.uniform(0, 255, (120, SIZE, SIZE, 1)).astype("float32")
    x_val[:60] *= np.linspace(0.1, 1.0, 60)[:, None, None, None]  # spread the scores a little
    s_val = SCHEMA.complete_scores(model.predict(x_val, verbose=0))
    y_val = _truth_rows(rng, 120)
    policy = fit_policy(y_val, s_val, SCHEMA, rule="instance-f1", calibration="platt")
    path = artifact.save(model, d / "model.keras", SCHEMA, policy, artifact.Preprocessing((SIZE, SIZE), 1))
    policy.save(d / "decision.json")
    folder = d / "images"
    folder.mkdir()
    pixels = rng.integers(0, 256, (N_IMAGES, SIZE, SIZE), dtype=np.uint8)
    pixels[: N_IMAGES // 2] //= 4
    names = [f"img{i}.png" for i in range(N_IMAGES)]
    for name, p in zip(names, pixels):
        Image.fromarray(p).save(folder / name)
    with open(d / "truth.csv", "w") as f:
        f.write("id," + ",".join(SCHEMA.labels) + "\n")
        for name, row in zip(names, _truth_rows(rng, N_IMAGES)):
            f.write(name + "," + ",".join(map(str, row)) + "\n")
    # the reference, by hand: Platt on the logit of each independent label's raw output, the derived
    # label as noisy-OR of its calibrated sources, none as prod(1 - p), the view group softmax(log p / T)
    raw = np.asarray(model.predict(pixels[..., None].astype("float32"), verbose=0), dtype=np.float64)
    ref = np.zeros((N_IMAGES, SCHEMA.n_labels))
    for j, label in enumerate(("a", "b", "c")):
        spec = policy.calibration.independent[label]
        p = np.clip(raw[:, j], 1e-12, 1 - 1e-12)
        ref[:, j] = {"platt": lambda: _sigmoid(spec["a"] * np.log(p / (1 - p)) + spec["b"]),
                     # a label the fit could not rank: its prevalence, nudged along the logit to keep the order
                     "prior": lambda: _sigmoid(np.log(spec["p"] / (1 - spec["p"]))
                                               + spec.get("rank_slope", 0.0) * (np.log(p / (1 - p))
                                                                                - spec.get("rank_center", 0.0))),
                     "identity": lambda: raw[:, j]}[spec["kind"]]()
    group = policy.calibration.groups.get("view", {"kind": "identity"})  # one temperature for the group
    if group.get("kind") == "prior":
        ref[:, 3:5] = np.asarray(group["p"], dtype=np.float64)[None, :]
    else:
        t = float(group["T"]) if group.get("kind") == "temperature" else 1.0
        e = np.exp(np.log(raw[:, 3:5]) / t)
        ref[:, 3:5] = e / e.sum(axis=1, keepdims=True)
    ref[:, 5] = 1 - (1 - ref[:, 0]) * (1 - ref[:, 1])
    ref[:, 6] = np.prod(1 - ref[:, :3], axis=1)
    return d, path, folder, names, policy, ref


def _table(frame, names):
    frame = frame.set_index("id").loc[names]
    return (frame[[f"p_{x}" for x in SCHEMA.labels]].to_numpy(np.float64),
            frame[list(SCHEMA.labels)].to_numpy(np.uint8))


def test_predict_serve_explain_api_and_evaluate_agree(saved, tmp_path, capsys):
    import pandas as pd
    from starlette.testclient import TestClient

    from labelwise.commands.cli import main
    from labelwise.explain import explain_images
    from labelwise.serve.app import create_app
    from labelwise.serve.model import ServedModel
    from labelwise.training.predict import predict

    d, path, folder, names, policy, ref = saved
    assert policy.calibration.method == "platt" and policy.rule == "instance-f1"
    assert any(spec["kind"] == "platt" for spec in policy.calibration.independent.values())
    # the reference's decisions: the policy's rule on the hand-computed probabilities
    from labelwise.decide.rules import apply_rule

    ref_d = apply_rule(ref, SCHEMA, "instance-f1")

    # predict, CLI
    assert main(["predict", str(path), str(folder), "--out", str(tmp_path / "p.csv")]) == 0
    p_cli, d_cli = _table(pd.read_csv(tmp_path / "p.csv"), names)
    np.testing.assert_allclose(p_cli, ref, atol=1e-6)  # 9 digits in the CSV; float32 model outputs
    np.testing.assert_array_equal(d_cli, ref_d)

    # the Python API
    p_api, d_api = _table(predict(str(path), str(folder), verbose=0), names)
    np.testing.assert_allclose(p_api, ref, atol=1e-6)
    np.testing.assert_array_equal(d_api, ref_d)

    # serve, in-process
    served = ServedModel.open(path)
    with TestClient(create_app(served, warm_up=False)) as client:
        files = [("image", (n, (folder / n).read_bytes(), "image/png")) for n in names]
        got = client.post("/predict", files=files).json()["predictions"]
    p_srv = np.array([[g["probabilities"][x] for x in SCHEMA.labels] for g in got])
    d_srv = np.array([[g["decisions"][x] for x in SCHEMA.labels] for g in got])
    np.testing.assert_allclose(p_srv, ref, atol=1e-6)
    np.testing.assert_array_equal(d_srv, ref_d)

    # explain: the Python result, the CLI's predictions.csv and its captions; no "no thresholds" note
    e = explain_images(str(path), [str(folder / n) for n in names])
    assert e.threshold_note == ""
    np.testing.assert_allclose(e.all_probabilities, ref, atol=1e-6)
    np.testing.assert_array_equal(e.all_decisions, ref_d)
    capsys.readouterr()
    out = tmp_path / "explained"
    assert main(["explain", str(path), str(folder), "--labels", "a,ab", "--out", str(out)]) == 0
    assert "no thresholds" not in capsys.readouterr().out
    p_exp, d_exp = _table(pd.read_csv(out / "predictions.csv"), names)
    np.testing.assert_allclose(p_exp, ref, atol=1e-6)
    np.testing.assert_array_equal(d_exp, ref_d)
    page = (out / "index.html").read_text()
    for i in range(N_IMAGES):
        said = "positive" if ref_d[i, 0] else "negative"
        assert f"a: p = {ref[i, 0]:.3f}, {said}" in page

    # evaluate on predict's file with the decision file: calibrated once, the rule applied as predict did
    assert main(["evaluate", "--truth", str(d / "truth.csv"), "--scores", str(tmp_path / "p.csv"),
                 "--thresholds", str(d / "decision.json"), "--bootstrap", "0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["averages"]["labels_per_image_predicted"] == pytest.approx(ref_d.sum(axis=1).mean(), abs=1e-9)
    brier = np.mean((ref - pd.read_csv(d / "truth.csv").set_index("id").loc[names, list(SCHEMA.labels)].to_numpy())
                    ** 2, axis=0)
    assert doc["averages"]["brier_macro"] == pytest.approx(brier.mean(), abs=1e-6)


def test_predict_without_a_policy_decides_at_one_half_and_says_so_once(tmp_path):
    from PIL import Image

    from labelwise.blocks.models import build_model
    from labelwise.training import artifact
    from labelwise.training.predict import predict

    keras.utils.set_random_seed(5)
    model = build_model(SCHEMA, "small_cnn", input_shape=(SIZE, SIZE, 1), weights=None)
    path = artifact.save(model, tmp_path / "bare.keras", SCHEMA, None, artifact.Preprocessing((SIZE, SIZE), 1))
    _, _, policy, _ = artifact.load(path, policy=True)
    assert policy is not None and policy.is_default and policy.calibration is None
    folder = tmp_path / "images"
    folder.mkdir()
    pixels = np.random.default_rng(5).integers(0, 256, (4, SIZE, SIZE), dtype=np.uint8)
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(folder / f"x{i}.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = predict(str(path), str(folder), verbose=0)
    said = [w for w in caught if "0.5" in str(w.message)]
    assert len(said) == 1 and "no decision policy" in str(said[0].message)
    frame = frame.set_index("id").loc[[f"x{i}.png" for i in range(4)]]
    raw = SCHEMA.complete_scores(np.asarray(model.predict(pixels[..., None].astype("float32"), verbose=0), "float64"))
    probs = frame[[f"p_{x}" for x in SCHEMA.labels]].to_numpy(np.float64)
    np.testing.assert_allclose(probs, raw, atol=1e-6)  # no calibration
    decided = frame[list(SCHEMA.labels)].to_numpy()
    np.testing.assert_array_equal(decided[:, :3], raw[:, :3] >= 0.5)
    np.testing.assert_array_equal(decided[:, 3], raw[:, 3] >= raw[:, 4])  # the group's arg-max


def test_case_explanations_use_predicts_slices_and_policy(tmp_path):
    """A case artifact that samples 2 evenly spaced slices of 6 and calibrates: explain's case
    probabilities and decisions (captions and predictions.csv) are predict's for the same stacks."""
    import pandas as pd

    from labelwise.blocks.models import build_case_model
    from labelwise.commands.cli import main
    from labelwise.decide import Calibration, DecisionPolicy
    from labelwise.training import artifact

    schema = LabelSchema(("a", "b"))
    keras.utils.set_random_seed(13)
    case = build_case_model(schema, "small_cnn", image_shape=(12, 12, 1), weights=None)
    cal = Calibration(schema, "platt", {"a": {"kind": "platt", "a": 3.0, "b": 0.4},
                                        "b": {"kind": "platt", "a": 2.5, "b": -0.3}})
    policy = DecisionPolicy(schema, "hamming", calibration=cal)
    pre = artifact.Preprocessing((12, 12), 1, max_slices=2, extra={"unit": "case", "slice_sampling": "even"})
    path = artifact.save(case, tmp_path / "case.keras", schema, policy, pre)
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    rng = np.random.default_rng(14)
    for name in ("exam1", "exam2", "exam3"):
        st = rng.integers(0, 255, (6, 12, 12)).astype("uint8")
        st[2:4] //= 8  # the central slices differ from the evenly spaced ones (1 and 4)
        np.save(stacks / f"{name}.npy", st)
    assert main(["predict", str(path), str(stacks), "--out", str(tmp_path / "p.csv")]) == 0
    ref = pd.read_csv(tmp_path / "p.csv").set_index("id").sort_index()
    # the reference for the model's own view: the case model on slices 1 and 4, then Platt by hand
    st = np.load(stacks / "exam1.npy")[[1, 4]][..., None].astype("float32")
    raw = np.asarray(case.predict([st[None], np.ones((1, 2), "float32")], verbose=0), "float64")[0]
    z = np.log(raw / (1 - raw))
    hand = _sigmoid(np.array([3.0, 2.5]) * z + np.array([0.4, -0.3]))
    np.testing.assert_allclose(ref.loc["exam1", ["p_a", "p_b"]].to_numpy(np.float64), hand, atol=1e-5)
    out = tmp_path / "out"
    assert main(["explain", str(path), str(stacks), "--top-slices", "1", "--out", str(out)]) == 0
    got = pd.read_csv(out / "predictions.csv").set_index("id").sort_index()
    np.testing.assert_allclose(got[["p_a", "p_b"]].to_numpy(), ref[["p_a", "p_b"]].to_numpy(), atol=1e-6)
    np.testing.assert_array_equal(got[["a", "b"]].to_numpy(), ref[["a", "b"]].to_numpy())
    page = (out / "index.html").read_text()
    for case_id, row in ref.iterrows():
        assert f"<td>{case_id}</td><td>a</td><td>{row['p_a']:.3f}</td>" in page


def test_predict_raw_writes_the_models_own_probabilities_and_the_same_decisions(saved, tmp_path):
    import pandas as pd

    from labelwise.decide.scorefile import read_state
    from labelwise.training.predict import predict

    d, path, folder, names, policy, ref = saved
    cal = predict(str(path), str(folder), out=str(tmp_path / "cal.csv"), verbose=0)
    raw = predict(str(path), str(folder), out=str(tmp_path / "raw.csv"), verbose=0, raw=True)
    p_cal, d_cal = _table(cal, names)
    p_raw, d_raw = _table(raw, names)
    np.testing.assert_array_equal(d_raw, d_cal)  # the decisions stay the policy's
    np.testing.assert_allclose(p_cal, ref, atol=1e-6)
    # raw: the calibration undone is the model's output; the policy applied to it gives the calibrated numbers
    np.testing.assert_allclose(policy.probabilities(p_raw[:, :SCHEMA.n_outputs]), p_cal, atol=1e-6)
    assert not np.allclose(p_raw, p_cal, atol=1e-3)
    assert read_state(tmp_path / "raw.csv").values == "raw" and read_state(tmp_path / "cal.csv").values == "calibrated"
    on_disk, _ = _table(pd.read_csv(tmp_path / "raw.csv"), names)
    np.testing.assert_allclose(on_disk, p_raw, atol=1e-8)
