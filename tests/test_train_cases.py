"""`labelwise train` with unit = "case": a tiny run end to end (train -> predict -> evaluate), an
exact resume, the slice-selection rules, and every bad case input named in the case-training checks.

References: a case's score from ``predict`` equals the model run on that case alone (batch of
one, all-ones mask) on slices chosen here by the documented formula; evaluate's AUC equals
scikit-learn's on the same rows; a resumed run's weights equal the uninterrupted run's exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from labelwise.commands.cli import main  # noqa: E402
from labelwise.data.casepipe import pad_cases  # noqa: E402
from labelwise.data.cases import CaseSet, check_cases, even_slices, load_case, select_slices  # noqa: E402
from labelwise.errors import InputError  # noqa: E402
from labelwise.training import TrainConfig, train  # noqa: E402

SIZE = 8
N_CASES = 20


def _write_cases(root, n=N_CASES, seed=0):
    """Cases of 2-6 slices, 8x8: label a = one slice has a bright square, b = every slice has a
    square in the other corner. Every fifth case is a folder of PNG slices, the rest .npy."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    stacks = root / "stacks"
    stacks.mkdir(parents=True, exist_ok=True)
    rows = ["case,patient,a,b"]
    for i in range(n):
        k = int(rng.integers(2, 7))
        a, b = i % 2, (i // 2) % 2
        st = rng.integers(0, 60, size=(k, SIZE, SIZE)).astype(np.uint8)
        if a:
            st[rng.integers(k), 1:4, 1:4] = 250
        if b:
            st[:, 5:8, 5:8] = 200
        cid = f"c{i:02d}"
        if i % 5 == 0:
            (stacks / cid).mkdir()
            for s in range(k):
                Image.fromarray(st[s]).save(stacks / cid / f"s{s:02d}.png")
        else:
            np.save(stacks / f"{cid}.npy", st)
        rows.append(f"{cid},p{i // 2},{a},{b}")
    (root / "cases.csv").write_text("\n".join(rows) + "\n")
    return root


def _config_text(**extra):
    base = dict(unit='"case"', table='"cases.csv"', images='"stacks"', group_column='"patient"', pooling='"max"',
                max_slices=3, backbone='"small_cnn"', image_size=f"[{SIZE}, {SIZE}]", channels=1, epochs=2,
                batch_size=4, bootstrap=20, plots="false", weights='"none"', split_fractions="[0.5, 0.25, 0.25]",
                verbose=0, early_stopping_patience='"none"')
    base.update(extra)
    return "".join(f"{k} = {v}\n" for k, v in base.items())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = _write_cases(tmp_path_factory.mktemp("cases"))
    (root / "run.toml").write_text(_config_text())
    assert main(["train", str(root / "run.toml"), "--out-dir", str(root / "out")]) == 0
    return root


def test_case_run_writes_a_report_in_cases_and_predictions_per_case(run):
    out = run / "out"
    preds = pd.read_csv(out / "test_predictions.csv", dtype={"id": str})
    table = pd.read_csv(run / "cases.csv", dtype=str)
    assert set(preds["id"]) <= set(table["case"]) and len(preds) == len(set(preds["id"])) > 0
    html = (out / "report" / "report.html").read_text()
    assert f"{len(preds)} cases" in html and "slices per case" in html and "slice count distribution" in html
    # patients (two cases each) never straddle splits: the test cases' patients are whole
    test_patients = set(table.set_index("case").loc[preds["id"], "patient"])
    assert set(table[table["patient"].isin(test_patients)]["case"]) == set(preds["id"])


def test_predict_on_the_case_model_equals_the_model_on_each_case_alone(run, tmp_path):
    from labelwise.training import artifact

    out_csv = tmp_path / "pred.csv"
    assert main(["predict", str(run / "out" / "model.keras"), str(run / "cases.csv"), "--images",
                 str(run / "stacks"), "--out", str(out_csv), "--quiet"]) == 0
    pred = pd.read_csv(out_csv, dtype={"id": str}).set_index("id")
    assert len(pred) == N_CASES  # one row per case, .npy and folder cases alike
    model, schema, policy, pre = artifact.load(run / "out" / "model.keras", policy=True)
    assert pre.max_slices == 3 and pre.extra["slice_sampling"] == "even"
    from PIL import Image

    for cid in ("c00", "c01", "c03", "c05"):
        folder = run / "stacks" / cid
        st = (np.stack([np.asarray(Image.open(p)) for p in sorted(folder.iterdir())]) if folder.is_dir()
              else np.load(run / "stacks" / f"{cid}.npy"))
        n = len(st)
        pick = [int((j + 0.5) * n / 3) for j in range(3)] if n > 3 else list(range(n))  # evenly spaced, by hand
        x = st[pick][None, ..., None].astype("float32")
        p = keras.ops.convert_to_numpy(model([x, np.ones((1, len(pick)), "float32")], training=False))
        # p_ columns are the artifact's calibrated probabilities of the model's outputs (the
        # calibration itself is checked by hand in test_train_decisions)
        p = policy.probabilities(schema.complete_scores(np.asarray(p, "float64")))[0]
        np.testing.assert_allclose(pred.loc[cid, ["p_a", "p_b"]].to_numpy(float), p[:2], atol=1e-5)  # float32 outputs


def test_evaluate_at_the_case_level_matches_sklearn(run, tmp_path, capsys):
    from sklearn.metrics import roc_auc_score

    preds = pd.read_csv(run / "out" / "test_predictions.csv", dtype={"id": str})
    truth = pd.read_csv(run / "cases.csv", dtype={"case": str}).set_index("case").loc[preds["id"]]
    truth.reset_index()[["case", "a", "b"]].to_csv(tmp_path / "truth.csv", index=False)
    assert main(["evaluate", "--truth", str(tmp_path / "truth.csv"), "--scores", str(run / "out" / "test_predictions.csv"),
                 "--bootstrap", "0", "--json"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    for row in doc["per_label"]:
        y = truth[row["label"]].to_numpy()
        if 0 < y.sum() < len(y):
            assert row["auc"] == pytest.approx(roc_auc_score(y, preds[f"p_{row['label']}"]), abs=1e-6)


@pytest.mark.slow
def test_resume_repeats_the_uninterrupted_case_run_exactly(tmp_path):
    root = _write_cases(tmp_path / "data", n=12, seed=3)
    (root / "run.toml").write_text(_config_text(epochs=2, bootstrap=0, split_fractions="[0.5, 0.25, 0.25]"))
    cfg = root / "run.toml"
    full = train(TrainConfig.from_toml(cfg, out_dir=str(tmp_path / "full")))
    train(TrainConfig.from_toml(cfg, out_dir=str(tmp_path / "part"), epochs=1))
    resumed = train(TrainConfig.from_toml(cfg, out_dir=str(tmp_path / "part"), resume=True))
    assert resumed.resumed_from == 1
    assert [r["loss"] for r in full.history] == [r["loss"] for r in resumed.history]
    for a, b in zip(full.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ slice selection and padding
def test_slice_selection_rules():
    assert even_slices(10, 4).tolist() == [1, 3, 6, 8]  # floor((j + .5) * 10 / 4)
    assert even_slices(9, 1).tolist() == [4] and even_slices(3, 5).tolist() == [0, 1, 2]
    a = select_slices(20, 5, train=True, seed=1, epoch=2, index=7)
    assert a.tolist() == select_slices(20, 5, train=True, seed=1, epoch=2, index=7).tolist()  # resumable
    assert len(set(a.tolist())) == 5 and a.tolist() == sorted(a.tolist())
    draws = {tuple(select_slices(20, 5, train=True, seed=1, epoch=e, index=7)) for e in range(6)}
    assert len(draws) > 1  # a new subset each epoch
    assert select_slices(20, 5, train=False).tolist() == even_slices(20, 5).tolist()


def test_pad_cases_masks_and_repeats_the_cases_own_slices():
    s1 = np.arange(2 * 2 * 2, dtype="float32").reshape(2, 2, 2, 1)
    s2 = np.ones((3, 2, 2, 1), "float32") * 7
    images, mask = pad_cases([s1, s2])
    assert images.shape == (2, 3, 2, 2, 1) and mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    np.testing.assert_array_equal(images[0, 2], s1[0])  # padding slot = slice 2 mod 2 of its own case


# ------------------------------------------------------------------ bad input
def _bad(tmp_path, setup, match):
    root = _write_cases(tmp_path, n=8)
    setup(root / "stacks")
    cases = CaseSet(np.array([p.stem for p in sorted((root / "stacks").iterdir())]),
                    sorted((root / "stacks").iterdir()))
    with pytest.raises(InputError, match=match):
        check_cases(cases)


def test_case_with_no_slices(tmp_path):
    _bad(tmp_path, lambda s: np.save(s / "c01.npy", np.zeros((0, SIZE, SIZE), np.uint8)), r"c01.*no slices")
    empty = tmp_path / "stacks" / "c00"
    for f in empty.iterdir():
        f.unlink()
    with pytest.raises(InputError, match=r"c00.*no slices"):
        load_case(empty, "c00")


def test_slices_of_different_shapes(tmp_path):
    from PIL import Image

    _bad(tmp_path, lambda s: Image.fromarray(np.zeros((5, 9), np.uint8)).save(s / "c00" / "s99.png"),
         r"c00.*differ in shape.*s99.png")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_or_inf_in_a_stack(tmp_path, value):
    def put(s):
        a = np.ones((3, SIZE, SIZE), np.float32)
        a[2, 1, 1] = value
        np.save(s / "c02.npy", a)
    _bad(tmp_path, put, r"c02.*(NaN|inf).*slice 2")


def test_a_2d_npy_is_refused_not_read_as_one_slice(tmp_path):
    _bad(tmp_path, lambda s: np.save(s / "c03.npy", np.zeros((SIZE, SIZE), np.uint8)), r"c03.*2-D.*NOT read as one slice")


def test_case_folder_with_non_images(tmp_path):
    _bad(tmp_path, lambda s: (s / "c05" / "notes.txt").write_text("x"), r"c05.*not images.*notes.txt")


def test_case_id_without_stack_or_folder_exits_2(tmp_path, capsys):
    root = _write_cases(tmp_path, n=8)
    (root / "stacks" / "c04.npy").unlink()
    (root / "run.toml").write_text(_config_text())
    assert main(["train", str(root / "run.toml"), "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "c04" in err and "no stack" in err and "no folder" in err


@pytest.mark.parametrize("value", [0, -1])
def test_max_slices_below_one(value):
    with pytest.raises(InputError, match="max_slices must be a whole number >= 1"):
        TrainConfig(unit="case", max_slices=value)


def test_case_keys_on_an_image_run_are_refused():
    with pytest.raises(InputError, match="unit = 'case'"):
        TrainConfig(max_slices=4)
