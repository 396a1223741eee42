"""Shared fixtures: the data in ../shared (tests that need it skip without it)
and small random models."""
import os

import numpy as np
import pytest

import lrp_lstm

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
# what must not be missing: a comma-separated list of "shared", "keras",
# "torch", "chromium" (.ci/run requires them all); anything listed fails
# instead of skipping when it is absent
REQUIRED = set(filter(None, os.environ.get("LRP_LSTM_REQUIRE", "").split(",")))


def skip_unless_required(what, reason):
    """Skip the test for a missing dependency `what`, or fail it when
    LRP_LSTM_REQUIRE lists `what`."""
    if what in REQUIRED:
        pytest.fail(f"{reason}, and LRP_LSTM_REQUIRE requires {what!r}")
    pytest.skip(reason)


def shared_path(*parts):
    """Path inside ../shared/data, or skip the test when it is absent."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        skip_unless_required("shared", f"needs ../shared/data/{'/'.join(parts)} (the project's "
                             "shared data), which is not present beside this checkout")
    return path


@pytest.fixture(scope="session")
def seed_model():
    """The reference implementation's released BiLSTM (e = d = 60, C = 5)."""
    return lrp_lstm.load_reference_model(shared_path("seed-model")).model


@pytest.fixture(scope="session")
def golden():
    with np.load(shared_path("golden", "reference_cases.npz"), allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    return [{k[6:]: v for k, v in data.items() if k.startswith(f"c{i:04d}_")}
            for i in range(int(data["n_cases"]))]


def random_model(seed=0, e=7, d=5, C=3, bidirectional=True, bias=False, n_layers=1,
                 cell="lstm"):
    return lrp_lstm.RecurrentModel.random(e, d, C, seed, bidirectional=bidirectional,
                                          bias=bias, n_layers=n_layers, cell=cell)


def finite_differences(model, x, target, h=1e-6):
    """Central differences of model.forward(x)[target] with respect to x (T, e)."""
    fd = np.zeros_like(x)
    for t in range(x.shape[0]):
        for k in range(x.shape[1]):
            xp, xm = x.copy(), x.copy()
            xp[t, k] += h
            xm[t, k] -= h
            fd[t, k] = (model.forward(xp)[target] - model.forward(xm)[target]) / (2 * h)
    return fd
