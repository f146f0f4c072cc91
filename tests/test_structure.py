"""Schema structures: implications, derived labels, at-most-one groups, unknown cells.

Parse, round-trip and every refused declaration; the numpy rules (enforce, violations,
derived scores, known-mask propagation, policies) against hand-computed cases and brute force.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from labelwise import LabelSchema, SchemaError, SchemaViolation
from labelwise.labels.structure import (apply_policy, constrain_scores, derive_scores, enforce, implication_tree,
                                 propagate_known, violation_rate, violations)

ISSUE_TOML = """\
[labels]
independent = ["Pneumonia", "Viral", "Bacterial", "Effusion"]
none = "No Finding"

[labels.implies]                 # child = [parents]; must form no cycle
Viral = ["Pneumonia"]
Bacterial = ["Pneumonia"]

[labels.derived]                 # computed, never a free output
Infection = { any_of = ["Viral", "Bacterial"] }

[labels.at_most_one]             # softmax over members + an implicit "absent"
severity = ["mild", "moderate", "severe"]

[labels.unknown]                 # cell values that mean "not known"
values = ["", "-1", "uncertain"]
policy = { default = "ignore", Effusion = "positive" }   # ignore | positive | negative
"""


@pytest.fixture
def issue_schema(tmp_path):
    p = tmp_path / "schema.toml"
    p.write_text(ISSUE_TOML)
    return LabelSchema.from_toml(p)


def test_issue_toml_parses_with_documented_column_order(issue_schema):
    s = issue_schema
    assert s.labels == ("Pneumonia", "Viral", "Bacterial", "Effusion", "mild", "moderate", "severe", "Infection",
                        "No Finding")
    assert s.free_labels == s.labels[:7] and s.output_labels == s.labels[:8]
    assert (s.n_free, s.n_outputs, s.n_labels, s.none_index) == (7, 8, 9, 8)
    assert [(b.kind, b.start, b.stop) for b in s.layout] == [("sigmoid", 0, 4), ("at_most_one", 4, 7),
                                                             ("derived", 7, 8)]
    assert s.implies == {"Viral": ("Pneumonia",), "Bacterial": ("Pneumonia",)}
    assert s.derived == {"Infection": ("Viral", "Bacterial")}
    assert s.policy("Effusion") == "positive" and s.policy("Viral") == "ignore" and s.policy("mild") == "ignore"
    assert s.unknown_values == ("", "-1", "uncertain")
    assert implication_tree(s) == ["Pneumonia", "  - Viral", "  - Bacterial"]


def test_issue_toml_round_trips(issue_schema, tmp_path):
    path = issue_schema.save(tmp_path / "again.toml")
    again = LabelSchema.from_toml(path)
    assert again == issue_schema and again.labels == issue_schema.labels and hash(again) == hash(issue_schema)
    assert LabelSchema.from_dict(issue_schema.to_dict()) == issue_schema
    # a dict written before the structure keys existed still loads, and means the same as before
    old = {"independent": ["a", "b"], "exclusive": {"g": ["x", "y"]}, "none": "none"}
    s = LabelSchema.from_dict(old)
    assert s.to_dict() == old and not s.has_structure and s.labels == ("a", "b", "x", "y", "none")


@pytest.mark.parametrize("section, message", [
    ('[labels.implies]\nViral = ["Pneumonia"]\nPneumonia = ["Viral"]\n',
     "cycle: Viral -> Pneumonia -> Viral"),
    ('[labels.implies]\nViral = ["Viral"]\n', "cycle: Viral -> Viral"),
    ('[labels.implies]\nVirall = ["Pneumonia"]\n', "unknown label 'Virall'; did you mean 'Viral'?"),
    ('[labels.implies]\nViral = ["Pneumonai"]\n', "did you mean 'Pneumonia'?"),
    ('[labels.derived]\nInfection = { any_of = ["Viral", "Bacterail"] }\n', "did you mean 'Bacterial'?"),
    ('[labels.derived]\nViral = { any_of = ["Bacterial"] }\n', "both derived and independent"),
    ('[labels.derived]\nX = { any_of = ["Viral", "PA"] }\n', "mixes sources"),
    ('[labels.derived]\nX = { all_of = ["Viral"] }\n', "only any_of is supported"),
    ('[labels.derived]\nX = { any_of = ["Viral"] }\nY = { any_of = ["X"] }\n', "derived itself"),
    ('[labels.at_most_one]\nsev = ["PA", "mild"]\n', "may not share a member with an exactly-one"),
    ('[labels.unknown]\nvalues = ["-1"]\npolicy = { Efusion = "positive" }\n', "did you mean 'Effusion'?"),
    ('[labels.unknown]\nvalues = ["-1"]\npolicy = { PA = "positive" }\n', "only independent labels take"),
    ('[labels.unknown]\nvalues = ["-1"]\npolicy = { Viral = "maybe" }\n', "choose one of"),
    ('[labels.unknown]\nvalues = ["0"]\n', "known 0/1 value"),
    ('[labels.implies]\nViral = ["PA"]\n', "a parent must be an independent label"),
    ('[labels.implys]\nViral = ["Pneumonia"]\n', "did you mean 'implies'?"),
])
def test_bad_structure_is_refused_naming_the_label(tmp_path, section, message):
    p = tmp_path / "s.toml"
    p.write_text('[labels]\nindependent = ["Pneumonia", "Viral", "Bacterial", "Effusion"]\n'
                 '[labels.exclusive]\nview = ["PA", "AP"]\n' + section)
    with pytest.raises(SchemaError) as err:
        LabelSchema.from_toml(p)
    assert message in str(err.value)
    assert str(err.value).startswith(str(p))


def test_encode_fills_derived_and_refuses_contradictions(issue_schema):
    s = issue_schema
    y = s.encode(["Viral|Pneumonia|mild", "No Finding", "Effusion|severe", "Bacterial|Pneumonia|Infection"])
    assert y[:, s.index("Infection")].tolist() == [1, 0, 0, 1]
    assert y[:, s.index("No Finding")].tolist() == [0, 1, 0, 0]
    with pytest.raises(SchemaViolation, match=r"t\.csv, row 4: derived label 'Infection' is given but none"):
        s.encode(["Effusion|Infection"], row_names=[4], source="t.csv")
    with pytest.raises(SchemaViolation, match=r"row 2: 'Viral' is true but its parent 'Pneumonia' is not"):
        s.encode(["Pneumonia", "Viral"], row_names=[1, 2])
    with pytest.raises(SchemaViolation, match="2 members of at-most-one group 'severity' are true"):
        s.encode(["Effusion|mild|severe"])


def brute_enforce(d, s, scores):
    """Independent reference: the structure by loops over rows and labels."""
    out = np.zeros((len(d), s.n_labels), dtype=np.uint8)
    for r in range(len(d)):
        on = {x for j, x in enumerate(s.free_labels) if d[r, j]}
        for g, ms in s.at_most_one.items():
            hit = [m for m in ms if m in on]
            if len(hit) > 1:
                best = max(hit, key=lambda m: scores[r, s.labels.index(m)])
                on -= set(hit) - {best}
        changed = True
        while changed:
            changed = False
            for c, ps in s.implies.items():
                if c in on and not set(ps) <= on:
                    on |= set(ps)
                    changed = True
        for dname, srcs in s.derived.items():
            if on & set(srcs):
                on.add(dname)
        if s.none and not on & set(s.independent):
            on.add(s.none)
        out[r] = [x in on for x in s.labels]
    return out


def test_enforce_equals_brute_force_and_breaks_no_rule():
    s = LabelSchema(independent=("lung", "pneumonia", "viral", "other"), none="clear",
                    implies={"viral": ["pneumonia"], "pneumonia": ["lung"], "severe": ["lung"]},
                    at_most_one={"sev": ("mild", "severe")}, derived={"sick": {"any_of": ["pneumonia", "other"]}})
    rng = np.random.default_rng(1)
    scores = rng.random((400, s.n_free))
    d = (rng.random((400, s.n_free)) < 0.4).astype(np.uint8)
    got = enforce(d, s, scores)
    np.testing.assert_array_equal(got, brute_enforce(d, s, scores))
    assert not any(v.any() for v in violations(got, s).values())
    # the naive decisions broke rules, so the check can fail
    naive = s.complete(d)
    naive[:, s.n_free:s.n_outputs] = 0
    assert violations(naive, s)["implies"].any() and violations(naive, s)["at_most_one"].any()


def test_derived_scores_group_sum_and_noisy_or():
    s = LabelSchema(independent=("a", "b"), exclusive={"d": ("0", "1", "2")},
                    derived={"ab": {"any_of": ["a", "b"]}, "even": {"any_of": ["0", "2"]}})
    p = np.array([[0.5, 0.2, 0.1, 0.6, 0.3]])
    got = derive_scores(p, s)
    np.testing.assert_allclose(got, [[1 - 0.5 * 0.8, 0.1 + 0.3]])
    full = s.complete_scores(p)
    assert full.shape == (1, s.n_labels) and np.allclose(full[0, -2:], got[0])
    # brute force for the noisy-OR: P(a or b) summed over the joint of independent events
    pa, pb = 0.5, 0.2
    joint = sum((pa if x else 1 - pa) * (pb if y else 1 - pb) for x, y in itertools.product([0, 1], repeat=2) if x or y)
    assert got[0, 0] == pytest.approx(joint)


def test_constrain_scores_max_over_descendants():
    s = LabelSchema(independent=("lung", "pneumonia", "viral"),
                    implies={"viral": ["pneumonia"], "pneumonia": ["lung"]})
    p = np.array([[0.1, 0.2, 0.9], [0.8, 0.3, 0.1]])
    np.testing.assert_allclose(constrain_scores(p, s), [[0.9, 0.9, 0.9], [0.8, 0.3, 0.1]])


def test_violation_rate_counts_naive_decisions(issue_schema):
    s = issue_schema
    scores = np.array([
        [0.2, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.7, 0.1],   # Viral without Pneumonia
        [0.9, 0.7, 0.1, 0.1, 0.6, 0.6, 0.1, 0.7, 0.0],   # two severities
        [0.9, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.7, 0.0],   # fine
        [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9],   # fine
    ])
    r = violation_rate(scores, s)
    assert r["any"] == pytest.approx(0.5)
    assert r["by_rule"]["implies"] == pytest.approx(0.25) and r["by_rule"]["at_most_one"] == pytest.approx(0.25)


def test_propagate_known_and_policy(issue_schema):
    s = issue_schema
    L = s.labels
    y = np.zeros((3, s.n_labels), dtype=np.uint8)
    k = np.ones_like(y, dtype=bool)
    # row 0: Viral known 1, Pneumonia unknown -> Pneumonia known 1; Infection -> 1
    y[0, L.index("Viral")] = 1
    k[0, L.index("Pneumonia")] = False
    # row 1: Pneumonia, Effusion (policy positive), Bacterial unknown -> Infection unknown, none unknown
    # (a known-0 Pneumonia would have made Bacterial known 0)
    k[1, [L.index("Pneumonia"), L.index("Effusion"), L.index("Bacterial"), L.index("Infection"),
          L.index("No Finding")]] = False
    # row 2: mild 1 -> rest of severity known 0 even if marked unknown
    y[2, L.index("mild")] = 1
    k[2, L.index("severe")] = False
    y2, k2, filled = propagate_known(y, k, s)
    assert y2[0, L.index("Pneumonia")] == 1 and k2[0, L.index("Pneumonia")] and y2[0, L.index("Infection")] == 1
    assert not k2[1, L.index("Infection")] and not k2[1, L.index("No Finding")]
    assert k2[2, L.index("severe")] and y2[2, L.index("severe")] == 0
    assert filled == 2
    # a derived label given as known 0 makes its unknown sources known 0
    k3 = k.copy()
    k3[1, L.index("Infection")] = True
    y3, k3, _ = propagate_known(y, k3, s)
    assert k3[1, L.index("Bacterial")] and y3[1, L.index("Bacterial")] == 0
    t = apply_policy(y2, k2, s)
    assert t[1, L.index("Effusion")] == 1.0 and t[1, L.index("Bacterial")] == -1.0
    assert t[1, L.index("Infection")] == -1.0 and (t[k2] == y2[k2]).all()


def test_decide_obeys_every_structure_rule(issue_schema):
    from labelwise.decide.thresholds import decide

    s = issue_schema
    L = s.labels
    rng = np.random.default_rng(7)
    p = rng.random((500, s.n_free))
    p[:, 4:7] /= p[:, 4:7].sum(axis=1, keepdims=True) * rng.uniform(1.0, 2.0, (500, 1))  # a softmax with absent
    thr = {"Pneumonia": 0.8, "Viral": 0.3, "Bacterial": 0.5, "Effusion": 0.6}
    d = decide(p, s, thr)
    assert d.shape == (500, s.n_labels)
    assert not any(v.any() for v in violations(d, s).values())
    # brute force, row by row, from the rules in the docstring
    for r in range(500):
        viral, bact = p[r, 1] >= 0.3, p[r, 2] >= 0.5
        assert d[r, L.index("Viral")] == viral and d[r, L.index("Bacterial")] == bact
        assert d[r, L.index("Pneumonia")] == (p[r, 0] >= 0.8 or viral or bact)
        assert d[r, L.index("Infection")] == (viral or bact)
        sev = list(p[r, 4:7]) + [1 - p[r, 4:7].sum()]
        assert list(d[r, 4:7]) == [int(i == int(np.argmax(sev))) for i in range(3)]
        assert d[r, L.index("No Finding")] == (not d[r, :4].any())
    # head outputs (n_outputs, with derived scores) decide the same
    np.testing.assert_array_equal(decide(s.complete_scores(p)[:, : s.n_outputs], s, thr), d)
    # the schema's enforce is the same function that decide ends with
    np.testing.assert_array_equal(s.enforce(d[:, : s.n_free]), d)


def test_enforce_repairs_exclusive_groups_from_scores():
    s = LabelSchema(independent=("a",), exclusive={"g": ("x", "y", "z")})
    d = np.array([[1, 0, 0, 0], [0, 1, 1, 1], [0, 1, 0, 0]])
    scores = np.array([[0.9, 0.2, 0.7, 0.1], [0.1, 0.2, 0.5, 0.3], [0.1, 0.6, 0.3, 0.1]])
    got = enforce(d, s, scores)
    np.testing.assert_array_equal(got, [[1, 0, 1, 0], [0, 0, 1, 0], [0, 1, 0, 0]])
    assert not violations(got, s)["exclusive"].any()
