"""GRU models: Cython against the oracle, conservation, gradients, by hand."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lrp_lstm
from lrp_lstm.model import random_weights
from conftest import finite_differences, random_model


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(e=st.integers(1, 60), d=st.integers(1, 60), C=st.integers(1, 10),
       T=st.integers(1, 80), n_layers=st.integers(1, 3), bidirectional=st.booleans(),
       bias=st.booleans(), seed=st.integers(0, 2**32 - 1),
       bias_factor=st.sampled_from([0.0, 1.0]))
def test_gru_cython_equals_oracle_and_conserves(e, d, C, T, n_layers, bidirectional, bias,
                                                seed, bias_factor):
    rng = np.random.default_rng(seed)
    model = lrp_lstm.BiLSTM.from_dict(random_weights(rng, e, d, C, bidirectional, bias,
                                                     n_layers, "gru"), cell="gru")
    x = rng.normal(0, 1, (T, e))
    target = int(rng.integers(C))
    kw = {"target": target, "bias_factor": bias_factor}
    fast = model.explain(x, ("lrp", "sa", "gi"), **kw)
    plain = model.explain(x, ("lrp", "sa", "gi"), backend="numpy", **kw)
    for m in ("lrp", "sa", "gi"):
        assert fast[m].target == plain[m].target == target
        np.testing.assert_allclose(fast[m].scores, plain[m].scores, rtol=1e-12, atol=1e-12)
        scale = max(np.abs(plain[m].relevance).max(), 1e-300)
        assert np.abs(fast[m].relevance - plain[m].relevance).max() <= 1e-9 * scale
    lrp = fast["lrp"]
    rest = plain["lrp"].relevance_rest
    assert abs(lrp.relevance_rest - rest) <= 1e-9 * max(1.0, abs(rest))
    if bias_factor == 1.0:
        total = lrp.relevance.sum() + lrp.relevance_rest
        assert abs(total - lrp.scores[target]) <= 1e-10 * max(1.0, abs(lrp.scores[target]))


@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_gru_gradient_matches_finite_differences(n_layers, bidirectional, backend):
    model = random_model(seed=40, e=5, d=4, C=3, bidirectional=bidirectional, bias=True,
                         n_layers=n_layers, cell="gru")
    x = np.random.default_rng(41).normal(0, 1, (6, 5))
    grad = model.explain(x, "sa", target=2, backend=backend).gradient
    np.testing.assert_allclose(grad, finite_differences(model, x, 2), rtol=1e-6, atol=1e-8)


# e = d = C = 1, unidirectional; gates r, z, n
TINY = {"Wxh_Left": np.array([[0.5], [-0.4], [1.5]]),
        "bxh_Left": np.array([0.1, 0.2, -0.3]),
        "Whh_Left": np.array([[0.4], [0.7], [-0.6]]),
        "bhh_Left": np.array([0.05, -0.1, 0.25]),
        "Why_Left": np.array([[2.0]])}


def test_tiny_gru_by_hand():
    """T = 2, e = d = C = 1: the forward pass and LRP written out."""
    model = lrp_lstm.BiLSTM.from_dict(TINY, cell="gru")
    xs, eps = (0.9, -0.7), 1e-3
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    steps, h = [], 0.0
    for x in xs:
        r = sig(0.5 * x + 0.1 + 0.4 * h + 0.05)
        z = sig(-0.4 * x + 0.2 + 0.7 * h - 0.1)
        u = -0.6 * h + 0.25
        a = 1.5 * x - 0.3 + r * u
        n = np.tanh(a)
        steps.append((x, h, r, z, u, a, n))
        h = (1 - z) * n + z * h
    s = 2.0 * h
    R_h = 2.0 * h * s / (s + eps)
    R_x = []
    for x, h_prev, r, z, u, a, n in reversed(steps):
        h_t = (1 - z) * n + z * h_prev
        R_n = (1 - z) * n * R_h / (h_t + eps * np.sign(h_t))
        R_prev = z * h_prev * R_h / (h_t + eps * np.sign(h_t))
        R_x.append(x * 1.5 * R_n / (a + eps * np.sign(a)))
        R_u = r * u * R_n / (a + eps * np.sign(a))
        R_h = R_prev + h_prev * -0.6 * R_u / (u + eps * np.sign(u))
    expl = model.explain(np.array([[x] for x in xs]), "lrp", target=0, eps=eps)
    assert expl.scores[0] == pytest.approx(s, rel=1e-14)
    np.testing.assert_allclose(expl.relevance[:, 0], R_x[::-1], rtol=1e-12)
    assert expl.relevance_rest == pytest.approx(R_h, abs=1e-15)


def test_gru_refuses_lstm_gate_rules_and_shapes():
    model = random_model(seed=42, cell="gru")
    x = np.zeros((3, 7))
    with pytest.raises(ValueError, match="GRU"):
        model.explain(x, gate_rule="half")
    w = random_weights(np.random.default_rng(43), 7, 5, 3, cell="gru")
    with pytest.raises(ValueError, match="4d rows for an LSTM"):
        lrp_lstm.BiLSTM.from_dict(w)
    with pytest.raises(ValueError, match="permutation of 'rzn'"):
        lrp_lstm.BiLSTM.from_dict(w, cell="gru", gate_order="igf")
    with pytest.raises(ValueError, match="unknown cell"):
        lrp_lstm.BiLSTM.from_dict(w, cell="rnn")


def test_gru_gate_order_batches_and_round_trips(tmp_path):
    w = random_weights(np.random.default_rng(44), 6, 4, 3, bias=True, n_layers=2, cell="gru")
    model = lrp_lstm.BiLSTM.from_dict(w, cell="gru")
    assert model.cell == "gru" and "cell=gru" in repr(model)
    # the same weights given in Keras's order z, r, n
    perm = np.r_[4:8, 0:4, 8:12]
    permuted = {k: (v[perm] if k[:3] in ("Wxh", "bxh", "Whh", "bhh") else v)
                for k, v in w.items()}
    other = lrp_lstm.BiLSTM.from_dict(permuted, cell="gru", gate_order="zrn")
    rng = np.random.default_rng(45)
    xs = [rng.normal(0, 1, (T, 6)) for T in (1, 9, 4)]
    batch = model.explain_batch(xs, ("lrp", "gi"), n_threads=2)
    for x, res in zip(xs, batch):    # batches sum in another order: equal to rounding
        np.testing.assert_allclose(other.explain(x, "lrp").relevance, res["lrp"].relevance,
                                   rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(model.explain(x, "gi", n_threads=2).relevance,
                                   res["gi"].relevance, rtol=1e-12, atol=1e-15)
    path = tmp_path / "gru.npz"
    lrp_lstm.save_model(model, path)
    back = lrp_lstm.load_model(path)
    assert back.cell == "gru"
    np.testing.assert_array_equal(back.explain(xs[1]).relevance, model.explain(xs[1]).relevance)
    import pickle
    again = pickle.loads(pickle.dumps(model))
    assert again.cell == "gru"
    np.testing.assert_array_equal(again.forward(xs[2]), model.forward(xs[2]))
    f32 = model.explain(xs[1], "lrp", dtype=np.float32).relevance
    np.testing.assert_allclose(f32, batch[1]["lrp"].relevance, rtol=0, atol=1e-4)
