"""Properties of the explanations on random models, Cython against the oracle."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lrp_lstm
from lrp_lstm.model import random_weights
from conftest import finite_differences, random_model

dims = st.integers(1, 200)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(e=dims, d=dims, C=dims, T=dims, bidirectional=st.booleans(), bias=st.booleans(),
       seed=st.integers(0, 2**32 - 1), bias_factor=st.sampled_from([0.0, 1.0]),
       gate_rule=st.sampled_from(["signal", "half", "abs"]))
def test_conservation_and_cython_equals_oracle(e, d, C, T, bidirectional, bias, seed,
                                               bias_factor, gate_rule):
    rng = np.random.default_rng(seed)
    model = lrp_lstm.BiLSTM.from_dict(random_weights(rng, e, d, C, bidirectional, bias))
    x = rng.normal(0, 1, (T, e))
    target = int(rng.integers(C))
    kw = {"target": target, "bias_factor": bias_factor, "gate_rule": gate_rule}
    fast = model.explain(x, ("lrp", "sa", "gi"), **kw)
    plain = model.explain(x, ("lrp", "sa", "gi"), backend="numpy", **kw)
    assert fast["lrp"].gate_rule == gate_rule
    lrp = fast["lrp"]
    if bias_factor == 1.0:
        total = lrp.relevance_fwd.sum() + lrp.relevance_rest
        if bidirectional:
            total += lrp.relevance_bwd.sum()
        # relative to the relevance mass: rules that feed the gates can
        # amplify relevance (through gate pre-activations near 0) and then
        # cancel it
        mass = max(1.0, abs(lrp.scores[target]), np.abs(lrp.relevance).sum()
                   + abs(lrp.relevance_rest))
        assert abs(total - lrp.scores[target]) <= 1e-10 * mass
        if gate_rule == "signal":
            assert abs(total - lrp.scores[target]) <= 1e-10 * max(1.0, abs(lrp.scores[target]))
    for m in ("lrp", "sa", "gi"):
        a, b = fast[m], plain[m]
        assert a.target == b.target == target
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-12, atol=1e-12)
        scale = max(np.abs(b.relevance).max(), 1e-300)
        assert np.abs(a.relevance - b.relevance).max() <= 1e-9 * scale
    # relative to the relevance mass, which the gate-feeding rules can amplify
    rest = plain["lrp"].relevance_rest
    mass = max(1.0, abs(rest), np.abs(plain["lrp"].relevance).sum())
    assert abs(fast["lrp"].relevance_rest - rest) <= 1e-9 * mass
    if gate_rule == "signal":
        assert abs(fast["lrp"].relevance_rest - rest) <= 1e-9 * max(1.0, abs(rest))


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_gradient_matches_finite_differences(bidirectional, backend):
    model = random_model(seed=3, e=6, d=4, C=3, bidirectional=bidirectional, bias=True)
    x = np.random.default_rng(4).normal(0, 1, (5, 6))
    target = 2
    grad = model.explain(x, "sa", target=target, backend=backend).gradient
    np.testing.assert_allclose(grad, finite_differences(model, x, target), rtol=1e-6,
                               atol=1e-8)


def test_method_definitions():
    model = random_model(seed=5, e=4, d=3, C=2)
    x = np.random.default_rng(6).normal(0, 1, (7, 4))
    res = model.explain(x, ("lrp", "sa", "gi"), target=1)
    # the kernel's word-level sums against the arrays they sum
    g = res["sa"].gradient_fwd + res["sa"].gradient_bwd
    np.testing.assert_allclose(res["sa"].word_relevance, (g ** 2).sum(1), rtol=1e-12)
    np.testing.assert_allclose(res["gi"].word_relevance, (g * x).sum(1), rtol=1e-12,
                               atol=1e-14)
    lrp = res["lrp"]
    np.testing.assert_allclose(lrp.word_relevance,
                               (lrp.relevance_fwd + lrp.relevance_bwd).sum(1), rtol=1e-12,
                               atol=1e-14)


# e = d = C = 1, unidirectional; gates i, g, f, o
TINY = {"Wxh_Left": np.array([[0.5], [1.5], [-0.3], [0.8]]),
        "bxh_Left": np.array([0.1, 0.2, 0.0, -0.1]),
        "Whh_Left": np.array([[0.4], [0.7], [0.2], [-0.5]]),
        "bhh_Left": np.array([0.0, 0.1, 0.3, 0.2]),
        "Why_Left": np.array([[2.0]])}


def test_tiny_lrp_by_hand():
    """e = d = C = 1, T = 1, unidirectional: every step written out."""
    model = lrp_lstm.BiLSTM.from_dict(TINY)
    x, eps = 0.9, 1e-3
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    zi, zg, zo = 0.5 * x + 0.1, 1.5 * x + 0.3, 0.8 * x + 0.1
    c = sig(zi) * np.tanh(zg)
    h = sig(zo) * np.tanh(c)
    s = 2.0 * h
    R_h = 2.0 * h * s / (s + eps)                 # output layer, one unit
    R_g = sig(zi) * np.tanh(zg) * R_h / (c + eps)  # c = f*0 + i*g
    R_x = x * 1.5 * R_g / (zg + eps)               # g's pre-activation
    expl = model.explain(np.array([[x]]), "lrp", target=0, eps=eps)
    assert expl.scores[0] == pytest.approx(s, rel=1e-14)
    assert expl.relevance[0, 0] == pytest.approx(R_x, rel=1e-13)
    assert expl.relevance_bwd is None and expl.relevance_rest == 0.0
    # with bias_factor = 1 the shares of bias and stabilizer come back
    expl1 = model.explain(np.array([[x]]), "lrp", target=0, eps=eps, bias_factor=1.0)
    assert expl1.relevance.sum() + expl1.relevance_rest == pytest.approx(s, rel=1e-13)


def test_tiny_half_rule_by_hand():
    """T = 1, e = d = 1: the half rule gives each gate half of its product."""
    model = lrp_lstm.BiLSTM.from_dict(TINY)
    x, eps = 0.9, 1e-3
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    z = {"i": 0.5 * x + 0.1, "g": 1.5 * x + 0.3, "f": -0.3 * x + 0.3, "o": 0.8 * x + 0.1}
    c = sig(z["i"]) * np.tanh(z["g"])
    h = sig(z["o"]) * np.tanh(c)
    s = 2.0 * h
    R_h = 2.0 * h * s / (s + eps)
    R_c = R_o = R_h / 2                                   # o * tanh(c)
    R_ig = c * R_c / (c + eps)                            # c = f * 0 + i * g
    R = {"i": R_ig / 2, "g": R_ig / 2, "f": 0.0, "o": R_o}
    Wx = {"i": 0.5, "g": 1.5, "f": -0.3, "o": 0.8}
    R_x = sum(x * Wx[q] * R[q] / (z[q] + eps * np.sign(z[q])) for q in "igfo")
    for backend in ("cython", "numpy"):
        expl = model.explain(np.array([[x]]), "lrp", target=0, eps=eps, gate_rule="half",
                             backend=backend)
        assert expl.relevance[0, 0] == pytest.approx(R_x, rel=1e-12)
    with pytest.raises(ValueError, match="gate_rule"):
        model.explain(np.array([[x]]), gate_rule="gate-take-all")


@settings(max_examples=50, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(e=st.integers(1, 60), d=st.integers(1, 60), C=st.integers(1, 8), T=st.integers(1, 120),
       n_layers=st.integers(1, 3), bidirectional=st.booleans(), bias=st.booleans(),
       cell=st.sampled_from(["lstm", "gru"]), seed=st.integers(0, 2**32 - 1),
       bias_factor=st.sampled_from([0.0, 1.0]),
       gate_rule=st.sampled_from(["signal", "half", "abs"]))
def test_abs_sum_rule_conserves_bounds_and_equals_oracle(e, d, C, T, n_layers, bidirectional,
                                                         bias, cell, seed, bias_factor,
                                                         gate_rule):
    if cell == "gru":
        gate_rule = "signal"
    rng = np.random.default_rng(seed)
    model = lrp_lstm.BiLSTM.from_dict(random_weights(rng, e, d, C, bidirectional, bias,
                                                     n_layers, cell), cell=cell)
    x = rng.normal(0, 1, (T, e))
    kw = {"target": int(rng.integers(C)), "bias_factor": bias_factor, "gate_rule": gate_rule,
          "sum_rule": "abs"}
    fast = model.explain(x, **kw)
    plain = model.explain(x, backend="numpy", **kw)
    assert fast.sum_rule == "abs"
    score = abs(fast.scores[kw["target"]])
    # every share lies in [0, 1]: relevance never exceeds the score, and with
    # bias_factor = 1 it is all of it
    assert fast.amplification <= 1 + 1e-10
    if bias_factor == 1.0:
        total = fast.relevance.sum() + fast.relevance_rest
        assert abs(total - fast.scores[kw["target"]]) <= 1e-10 * max(score, 1e-300)
        assert fast.amplification == pytest.approx(1, abs=1e-10)
    np.testing.assert_allclose(fast.relevance, plain.relevance, rtol=0,
                               atol=1e-10 * max(score, 1e-300))
    assert abs(fast.relevance_rest - plain.relevance_rest) <= 1e-10 * max(score, 1e-300)
