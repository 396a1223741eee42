"""The known-answer tasks: the shipped models (data/*.npz, trained by
data/train_tasks.py) reproduce the figures in docs/known_answer.json, which
the README reports."""
import importlib.util
import json
import os
import warnings

import numpy as np
import pytest

import lrp_lstm
from lrp_lstm import datasets

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def train_tasks():
    spec = importlib.util.spec_from_file_location(
        "train_tasks", os.path.join(ROOT, "data", "train_tasks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reported():
    with open(os.path.join(ROOT, "docs", "known_answer.json")) as f:
        return json.load(f)


def test_spike_task(reported):
    model = lrp_lstm.load_model(os.path.join(ROOT, "data", "spike_lstm.npz"))
    assert model.pooling == "attention" and len(model.head) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lrp_lstm.AmplificationWarning)
        figures = train_tasks().spike_figures(model)
    want = reported["spike"]
    assert figures["accuracy"] == pytest.approx(want["accuracy"], abs=1e-9)
    assert figures["accuracy"] > 0.95
    for method, hits in want["planted_step_hits"].items():
        # a borderline series may flip between CPUs' rounding: 2 in 1000
        assert figures["planted_step_hits"][method] == pytest.approx(hits, abs=0.002), method
    # the known answer: LRP and GI find the planted step almost always
    assert figures["planted_step_hits"]["lrp"] > 0.95
    assert figures["planted_step_hits"]["gi"] > 0.95


@pytest.mark.parametrize("task", datasets.ARITHMETIC_TASKS)
def test_arithmetic_task(reported, task):
    model = lrp_lstm.load_model(os.path.join(ROOT, "data", f"arithmetic_{task}_lstm.npz"))
    assert model.n_classes == 1 and not model.bidirectional
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lrp_lstm.AmplificationWarning)
        figures = train_tasks().arithmetic_figures(model, task)
    want = reported[task]
    assert figures["mean_abs_error"] == pytest.approx(want["mean_abs_error"], rel=1e-6)
    assert figures["mean_abs_error"] < 0.02
    for method, row in want["methods"].items():
        for key, value in row.items():
            assert figures["methods"][method][key] == pytest.approx(value, abs=1e-6), \
                (method, key)
    # GI and LRP recover the operands' values; SA's squares cannot have their sign
    for method in ("lrp", "gi"):
        assert figures["methods"][method]["corr_a"] > 0.8
    assert figures["methods"]["sa"]["corr_a"] < 0.2


def test_arithmetic_sequences_know_their_answer():
    xs, targets, operands = datasets.arithmetic_sequences(50, "subtract", seed=3)
    for x, y, (a, b) in zip(xs, targets, operands):
        assert 4 <= len(x) <= 20 and a < b
        assert np.flatnonzero(x[:, 1]).tolist() == [a, b]
        assert y == x[a, 0] - x[b, 0]
    with pytest.raises(ValueError, match="unknown task 'multiply'"):
        datasets.arithmetic_sequences(1, "multiply")
