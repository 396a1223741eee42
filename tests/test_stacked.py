"""Stacked (multi-layer) LSTMs: Cython against the oracle, conservation, gradients."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lrp_lstm
from lrp_lstm.model import random_weights
from conftest import finite_differences, random_model


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(e=st.integers(1, 40), d=st.integers(1, 40), C=st.integers(1, 10),
       T=st.integers(1, 60), n_layers=st.integers(2, 3), bidirectional=st.booleans(),
       bias=st.booleans(), seed=st.integers(0, 2**32 - 1),
       gate_rule=st.sampled_from(["signal", "half", "abs"]))
def test_stacked_cython_equals_oracle_and_conserves(e, d, C, T, n_layers, bidirectional,
                                                    bias, seed, gate_rule):
    rng = np.random.default_rng(seed)
    model = lrp_lstm.BiLSTM.from_dict(random_weights(rng, e, d, C, bidirectional, bias,
                                                     n_layers))
    assert model.n_layers == n_layers
    x = rng.normal(0, 1, (T, e))
    target = int(rng.integers(C))
    kw = {"target": target, "bias_factor": 1.0, "gate_rule": gate_rule}
    fast = model.explain(x, ("lrp", "sa", "gi"), **kw)
    plain = model.explain(x, ("lrp", "sa", "gi"), backend="numpy", **kw)
    for m in ("lrp", "sa", "gi"):
        np.testing.assert_allclose(fast[m].scores, plain[m].scores, rtol=1e-12, atol=1e-12)
        scale = max(np.abs(plain[m].relevance).max(), 1e-300)
        assert np.abs(fast[m].relevance - plain[m].relevance).max() <= 1e-9 * scale
    lrp = fast["lrp"]
    total = lrp.relevance.sum() + lrp.relevance_rest
    mass = max(1.0, abs(lrp.scores[target]), np.abs(lrp.relevance).sum()
               + abs(lrp.relevance_rest))
    assert abs(total - lrp.scores[target]) <= 1e-10 * mass
    if gate_rule == "signal":
        assert abs(total - lrp.scores[target]) <= 1e-10 * max(1.0, abs(lrp.scores[target]))


@pytest.mark.parametrize("bidirectional", [True, False])
def test_stacked_gradient_matches_finite_differences(bidirectional):
    model = random_model(seed=30, e=4, d=3, C=2, bidirectional=bidirectional, bias=True,
                         n_layers=3)
    x = np.random.default_rng(31).normal(0, 1, (5, 4))
    grad = model.explain(x, "sa", target=1).gradient
    np.testing.assert_allclose(grad, finite_differences(model, x, 1), rtol=1e-6, atol=1e-8)


def test_stacked_dict_round_trip_and_batches():
    w = random_weights(np.random.default_rng(32), 5, 4, 3, True, True, n_layers=3)
    model = lrp_lstm.BiLSTM.from_dict(w)
    assert set(model.to_dict()) == set(w) and "Wxh_Right_l2" in w
    rng = np.random.default_rng(33)
    xs = [rng.normal(0, 1, (T, 5)) for T in (1, 6, 13, 2)]
    batch = model.explain_batch(xs, ("lrp", "gi"), n_threads=2)
    for k, (x, res) in enumerate(zip(xs, batch)):
        one = model.explain(x, ("lrp", "gi"), n_threads=1 + k % 2)
        for m in ("lrp", "gi"):
            # a batch sums in another order than one input: equal to rounding
            np.testing.assert_allclose(res[m].relevance, one[m].relevance, rtol=1e-12,
                                       atol=1e-15)
    with pytest.raises(ValueError, match="Wxh"):
        bad = dict(w)
        bad["Wxh_Left_l1"] = bad["Wxh_Left_l1"][:, :4]
        lrp_lstm.BiLSTM.from_dict(bad)
    with pytest.raises(ValueError, match="missing weight bhh_Right_l2"):
        bad = dict(w)
        del bad["bhh_Right_l2"]
        lrp_lstm.BiLSTM.from_dict(bad)
