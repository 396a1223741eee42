"""Word deletion and the pointing game."""
import json
import subprocess
import sys

import numpy as np
import pytest

import lrp_lstm
from lrp_lstm import evaluate
from conftest import random_model, shared_path


def by_hand(model, xs, labels, method, steps, setting):
    """The deletion curve written out one sentence and one step at a time,
    with the NumPy oracle."""
    chosen = []
    for x, y in zip(xs, labels):
        correct = int(np.argmax(model.forward(x, backend="numpy"))) == y
        if correct == (setting == "correct"):
            chosen.append((x, y))
    acc = []
    for k in range(steps + 1):
        hits = 0
        for x, y in chosen:
            r = model.explain(x, method, target=y, backend="numpy").word_relevance
            order = sorted(range(len(r)), key=lambda t: -r[t] if setting == "correct" else r[t])
            z = x.copy()
            for t in order[:k]:
                z[t] = 0.0
            hits += int(np.argmax(model.forward(z, backend="numpy"))) == y
        acc.append(hits / len(chosen))
    return acc, len(chosen)


@pytest.mark.parametrize("method", ["lrp", "sa", "gi"])
@pytest.mark.parametrize("setting", ["correct", "incorrect"])
def test_deletion_curve_by_hand(method, setting):
    model = random_model(seed=12, e=3, d=4, C=3)
    rng = np.random.default_rng(13)
    xs = [rng.normal(0, 1.5, (int(rng.integers(3, 9)), 3)) for _ in range(40)]
    labels = rng.integers(0, 3, 40)
    acc, n = evaluate.deletion_curve(model, xs, labels, method, steps=4, setting=setting)
    expected, n_expected = by_hand(model, xs, labels, method, 4, setting)
    assert n == n_expected > 5
    np.testing.assert_allclose(acc, expected)
    assert acc[0] == (1.0 if setting == "correct" else 0.0)


def test_tiny_deletion_example():
    """One word decides: a model that reads only the first input feature."""
    w = {"Wxh_Left": np.zeros((4, 2)), "bxh_Left": np.zeros(4),
         "Whh_Left": np.zeros((4, 1)), "bhh_Left": np.zeros(4),
         "Why_Left": np.array([[-1.0], [1.0]])}
    w["Wxh_Left"][1, 0] = 4.0          # g reads feature 0
    w["bxh_Left"][[0, 2, 3]] = 5.0     # i, f, o gates open
    model = lrp_lstm.BiLSTM.from_dict(w)
    # class 1 iff the sum of feature 0 over the sentence is positive
    xs = [np.array([[0.1, 0], [2.0, 0], [-0.5, 0]]),    # class 1: "2.0" decides
          np.array([[-0.05, 0], [-0.1, 0], [1.5, 0]]),  # class 1: "1.5" decides
          np.array([[-1.0, 0], [0.1, 0], [0.05, 0]])]   # class 0: "-1.0" decides
    labels = [1, 1, 0]
    acc, n = evaluate.deletion_curve(model, xs, labels, "lrp", steps=2)
    assert n == 3
    # deleting each sentence's most relevant word flips all three
    np.testing.assert_allclose(acc, [1.0, 0.0, 0.0])
    acc, n = evaluate.deletion_curve(model, xs, labels, "random", steps=3, n_random=4)
    assert n == 3 and acc[0] == 1.0
    same, _ = evaluate.deletion_curve(model, xs, labels, "random", steps=3, n_random=4)
    np.testing.assert_array_equal(acc, same)


def test_bad_arguments():
    model = random_model()
    xs = [np.zeros((3, 7))]
    with pytest.raises(ValueError, match="setting"):
        evaluate.deletion_curve(model, xs, [0], "lrp", setting="both")
    with pytest.raises(ValueError, match="method"):
        evaluate.deletion_curve(model, xs, [0], "shap")
    with pytest.raises(ValueError, match="labels"):
        evaluate.deletion_curve(model, xs, [0, 1], "lrp")
    with pytest.raises(ValueError, match="not a class"):
        evaluate.deletion_curve(model, xs, [3], "lrp")


def test_pointing_game_on_a_toy_model():
    """Only inputs with feature 1 set can move the score: LRP must point there."""
    w = {"Wxh_Left": np.zeros((4, 2)), "bxh_Left": np.zeros(4),
         "Whh_Left": np.zeros((4, 1)), "bhh_Left": np.zeros(4),
         "Why_Left": np.array([[-1.0], [1.0]])}
    w["Wxh_Left"][1, 1] = 3.0
    w["bxh_Left"][[0, 2, 3]] = 5.0
    model = lrp_lstm.BiLSTM.from_dict(w)
    rng = np.random.default_rng(0)
    xs, deciding = [], []
    for _ in range(50):
        T = int(rng.integers(4, 12))
        x = np.zeros((T, 2))
        x[:, 0] = rng.normal(0, 1, T)          # noise the model ignores
        p = int(rng.integers(T))
        x[p, 1] = rng.choice([-1.0, 1.0])
        xs.append(x)
        deciding.append([p])
    for method in ("lrp", "gi"):
        assert evaluate.pointing_game(model, xs, deciding, method) == 1.0
    # SA measures sensitivity, not contribution: feature 1 is as sensitive
    # where it is zero, so SA points at the latest positions instead
    assert evaluate.pointing_game(model, xs, deciding, "sa") < 0.5
    assert 0 < evaluate.pointing_game(model, xs, deciding, "random") < 0.3


def test_cli_evaluate_on_sst(tmp_path):
    data = shared_path("sst", "test.txt")
    out = tmp_path / "ev.json"
    png = tmp_path / "ev.png"
    res = subprocess.run([sys.executable, "-m", "lrp_lstm", "evaluate", "--data", data,
                          "--min-length", "10", "--steps", "5", "--json", str(out),
                          "--png", str(png), "--random-runs", "3"],
                         capture_output=True, text=True, timeout=600, cwd="/")
    assert res.returncode == 0, res.stderr
    table = json.loads(out.read_text())
    assert set(table) == {"lrp", "sa", "gi", "random"}
    for row in table.values():
        assert len(row["correct"]) == len(row["incorrect"]) == 6
        assert row["correct"][0] == 1.0 and row["incorrect"][0] == 0.0
        # the SST test sentences of >= 10 tokens (README's word deletion table)
        assert row["n_correct"] + row["n_incorrect"] == 1849
    lrp, sa, rnd = table["lrp"], table["sa"], table["random"]
    # the paper's findings on our model
    for k in range(1, 6):
        assert lrp["correct"][k] < min(sa["correct"][k], table["gi"]["correct"][k],
                                       rnd["correct"][k])
        assert lrp["incorrect"][k] > max(sa["incorrect"][k], rnd["incorrect"][k])
    assert abs(sa["correct"][5] - rnd["correct"][5]) < 0.1
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "lrp" in res.stdout and "random" in res.stdout
