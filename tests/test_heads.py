"""Heads: pooling (last, mean, max, attention, none) and Linear/MLP layers.

Each head is checked against a PyTorch module assembled here (scores and
input gradients), the kernels against the oracle, LRP's conservation, and
batches against one-by-one calls.
"""
import numpy as np
import pytest

import lrp_lstm

from conftest import REQUIRED

if "torch" in REQUIRED:     # .ci/run: a missing PyTorch fails the run
    import torch
else:
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")
from torch import nn  # noqa: E402

E, D_HIDDEN, C = 6, 5, 3
HEADS = ("linear", "relu", "tanh")
CASES = [(pooling, cell, bidirectional, n_layers)
         for pooling in lrp_lstm.POOLINGS for cell in ("LSTM", "GRU")
         for bidirectional in (True, False) for n_layers in (1, 2)]


def torch_parts(seed, pooling, cell, bidirectional, n_layers, kind, n_classes=C):
    """A PyTorch recurrent net, head and attention net (float64)."""
    torch.manual_seed(seed)
    rnn = getattr(nn, cell)(E, D_HIDDEN, num_layers=n_layers, bidirectional=bidirectional,
                            batch_first=True).double()
    D = (2 if bidirectional else 1) * D_HIDDEN
    if kind == "linear":
        head = nn.Linear(D, n_classes)
    else:
        head = nn.Sequential(nn.Linear(D, 8), nn.ReLU() if kind == "relu" else nn.Tanh(),
                             nn.Dropout(0.5), nn.Linear(8, n_classes))
    attention = None
    if pooling == "attention":
        attention = (nn.Linear(D, 1) if kind == "linear"
                     else nn.Sequential(nn.Linear(D, 4), nn.Tanh(), nn.Linear(4, 1)))
        attention = attention.double().eval()
    return rnn.eval(), head.double().eval(), attention


def torch_scores(rnn, head, attention, pooling, x):
    """The scores of the PyTorch model: (C,), or (T, C) per step."""
    out, h_n = rnn(x[None])
    if isinstance(h_n, tuple):
        h_n = h_n[0]
    H = out[0]
    n_dir = 2 if rnn.bidirectional else 1
    if pooling == "none":
        return head(H)
    if pooling == "last":      # h_n: the top layer's final states are last
        p = torch.cat([h_n[-n_dir + k, 0] for k in range(n_dir)])
    elif pooling == "mean":
        p = H.mean(dim=0)
    elif pooling == "max":
        p = H.max(dim=0).values
    else:
        alpha = torch.softmax(attention(H)[:, 0], dim=0)
        p = alpha @ H
    return head(p)


@pytest.mark.parametrize("pooling, cell, bidirectional, n_layers", CASES)
def test_head_matches_pytorch_oracle_and_conserves(pooling, cell, bidirectional, n_layers):
    seed = CASES.index((pooling, cell, bidirectional, n_layers))
    kind = HEADS[seed % 3]
    rnn, head, attention = torch_parts(seed, pooling, cell, bidirectional, n_layers, kind)
    model = lrp_lstm.from_torch(rnn, head, pooling=pooling, attention=attention)
    assert model.pooling == pooling and model.cell == cell.lower()
    rng = np.random.default_rng(seed)
    T = 7
    x = rng.normal(size=(T, E))
    xt = torch.tensor(x, requires_grad=True)
    theirs = torch_scores(rnn, head, attention, pooling, xt)
    step = 4 if pooling == "none" else None
    ours = model.forward(x)
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=0, atol=1e-10)
    score = theirs[step] if pooling == "none" else theirs
    target = int(score.argmax())
    score[target].backward()
    grads = model.explain(x, ("sa", "gi"), target=target, step=step)
    np.testing.assert_allclose(grads["sa"].gradient, xt.grad.numpy(), rtol=0, atol=1e-9)
    # the kernels equal the oracle, for every sum rule and method
    for sum_rule in lrp_lstm.SUM_RULES:
        kw = dict(target=target, step=step, bias_factor=1.0, sum_rule=sum_rule)
        fast = model.explain(x, ("lrp", "sa", "gi"), **kw)
        plain = model.explain(x, ("lrp", "sa", "gi"), backend="numpy", **kw)
        for m in ("lrp", "sa", "gi"):
            scale = np.abs(plain[m].relevance).max()
            np.testing.assert_allclose(fast[m].relevance, plain[m].relevance, rtol=0,
                                       atol=1e-10 * max(scale, 1))
        lrp = fast["lrp"]
        assert lrp.step == step and lrp.target == target
        # bias_factor = 1 and the signal rule: relevance is conserved
        total = lrp.relevance.sum() + lrp.relevance_rest
        assert total == pytest.approx(float(score[target]), abs=1e-10 * max(1, abs(total)))


@pytest.mark.parametrize("pooling", lrp_lstm.POOLINGS)
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_head_batches_equal_one_by_one(pooling, cell):
    rnn, head, attention = torch_parts(7, pooling, cell, True, 2, "relu")
    model = lrp_lstm.from_torch(rnn, head, pooling=pooling, attention=attention)
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=(T, E)) for T in (1, 9, 4, 4, 12, 2, 7)]
    steps = [T - 1 - k % T for k, T in enumerate(len(x) for x in xs)] \
        if pooling == "none" else None
    batch = model.explain_batch(xs, ("lrp", "sa", "gi"), steps=steps, n_threads=2)
    for k, x in enumerate(xs):
        one = model.explain(x, ("lrp", "sa", "gi"), step=None if steps is None else steps[k])
        for m in ("lrp", "sa", "gi"):
            np.testing.assert_allclose(batch[k][m].relevance, one[m].relevance,
                                       rtol=1e-12, atol=1e-300)
            np.testing.assert_allclose(batch[k][m].scores, one[m].scores, rtol=1e-12)
    scores = model.forward_batch(xs)
    for x, s in zip(xs, scores):
        np.testing.assert_allclose(s, model.forward(x), rtol=1e-12)


def test_per_step_models():
    rnn, head, _ = torch_parts(1, "none", "LSTM", True, 1, "tanh")
    model = lrp_lstm.from_torch(rnn, head, pooling="none")
    assert model.per_step
    x = np.random.default_rng(0).normal(size=(6, E))
    assert model.forward(x).shape == (6, C)
    with pytest.raises(ValueError, match="give the step"):
        model.explain(x)
    with pytest.raises(ValueError, match="step = 6 is out of range"):
        model.explain(x, step=6)
    every = model.explain_steps(x, ("lrp", "gi"))
    assert len(every) == 6
    for t, expl in enumerate(every):
        one = model.explain(x, ("lrp", "gi"), step=t)
        assert expl["lrp"].target == int(model.forward(x)[t].argmax()) == one["lrp"].target
        np.testing.assert_allclose(expl["lrp"].relevance, one["lrp"].relevance, rtol=1e-12)
        np.testing.assert_allclose(expl["gi"].relevance, one["gi"].relevance, rtol=1e-12)
    # masked steps: no output there, and nothing to explain
    mask = np.array([True, True, False, True, True, False])
    scores = model.forward(x, mask=mask)
    assert np.isnan(scores[~mask]).all()
    np.testing.assert_allclose(scores[mask], model.forward(x[mask]), rtol=1e-12)
    with pytest.raises(ValueError, match="masked step"):
        model.explain(x, step=2, mask=mask)
    masked = model.explain_steps(x, "lrp", mask=mask)
    assert masked[2] is None and masked[5] is None
    np.testing.assert_allclose(masked[3].relevance[mask],
                               model.explain(x[mask], step=2).relevance, rtol=1e-12)
    assert masked[3].step == 3


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_explain_steps_equals_each_step_alone(cell, dtype):
    # explain_steps runs each chunk's forward pass once, for one copy of the
    # input, and copies its states to the chunk's other copies (two layers:
    # each layer's states and hidden block); every sum keeps its order, so
    # each step's explanation equals explain(step=t) bit for bit. Both skip
    # the top layer's rows that a step's relevance has not reached yet:
    # the oracle, which runs every row, checks that
    rnn, head, _ = torch_parts(4, "none", cell, True, 2, "relu")
    model = lrp_lstm.from_torch(rnn, head, pooling="none")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(41, E))
    mask = rng.random(41) < 0.8
    methods = ("lrp", "sa")
    for kwargs in ({}, {"mask": mask}, {"sum_rule": "abs"}):
        every = model.explain_steps(x, methods, dtype=dtype, n_threads=2, **kwargs)
        for t, expl in enumerate(every):
            if expl is None:
                assert not mask[t] and "mask" in kwargs
                continue
            alone = model.explain(x, methods, step=t, dtype=dtype, **kwargs)
            for m in methods:
                assert expl[m].target == alone[m].target and expl[m].step == t
                np.testing.assert_array_equal(expl[m].relevance, alone[m].relevance)
                np.testing.assert_array_equal(expl[m].scores, alone[m].scores)
            if dtype == np.float64 and t % 8 == 0:
                plain = model.explain(x, methods, step=t, backend="numpy", **kwargs)
                for m in methods:
                    scale = np.abs(plain[m].relevance).max()
                    np.testing.assert_allclose(expl[m].relevance, plain[m].relevance,
                                               rtol=0, atol=1e-10 * scale)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_unidirectional_tagger_explains_only_the_past(cell):
    # every layer skips the steps after the explained one: the oracle,
    # which runs them, checks that
    rnn, head, _ = torch_parts(2, "none", cell, False, 2, "relu")
    model = lrp_lstm.from_torch(rnn, head, pooling="none")
    x = np.random.default_rng(1).normal(size=(8, E))
    for expl in model.explain_steps(x, ("lrp", "sa"), n_threads=2):
        t = expl["lrp"].step
        assert not expl["lrp"].relevance[t + 1:].any()
        assert not expl["sa"].gradient[t + 1:].any()
        assert expl["sa"].gradient[t].any()
        plain = model.explain(x, ("lrp", "sa"), step=t, backend="numpy")
        for m in ("lrp", "sa"):
            np.testing.assert_allclose(expl[m].relevance, plain[m].relevance, rtol=0,
                                       atol=1e-10 * np.abs(plain[m].relevance).max())


def test_step_is_refused_for_pooled_models():
    rnn, head, _ = torch_parts(3, "mean", "LSTM", True, 1, "linear")
    model = lrp_lstm.from_torch(rnn, head, pooling="mean")
    x = np.zeros((3, E))
    with pytest.raises(ValueError, match="step is for per-step models"):
        model.explain(x, step=1)
    with pytest.raises(ValueError, match="explain_steps is for per-step models"):
        model.explain_steps(x)


def test_regression_explains_the_raw_output():
    rnn, head, attention = torch_parts(4, "attention", "LSTM", True, 1, "relu", n_classes=1)
    model = lrp_lstm.from_torch(rnn, head, pooling="attention", attention=attention)
    x = np.random.default_rng(2).normal(size=(5, E))
    y = float(torch_scores(rnn, head, attention, "attention", torch.tensor(x))[0])
    expl = model.explain(x, bias_factor=1.0)
    assert expl.target == 0 and expl.scores[0] == pytest.approx(y, abs=1e-12)
    assert expl.relevance.sum() + expl.relevance_rest == pytest.approx(y, abs=1e-10)


@pytest.mark.parametrize("pooling", lrp_lstm.POOLINGS)
def test_heads_survive_save_and_load(tmp_path, pooling):
    rnn, head, attention = torch_parts(5, pooling, "GRU", True, 1, "tanh")
    model = lrp_lstm.from_torch(rnn, head, pooling=pooling, attention=attention)
    path = tmp_path / "model.npz"
    lrp_lstm.save_model(model, path)
    again = lrp_lstm.load_model(path)
    assert again.pooling == pooling and len(again.head) == len(model.head)
    x = np.random.default_rng(0).normal(size=(4, E))
    np.testing.assert_array_equal(again.forward(x), model.forward(x))


def test_head_validation_names_what_is_wrong():
    rnn, head, _ = torch_parts(6, "mean", "LSTM", True, 1, "linear")
    model = lrp_lstm.from_torch(rnn, head, pooling="mean")
    w = {k: v for k, v in zip(("fwd", "bwd"), model.layers[0])}
    D = 2 * D_HIDDEN
    with pytest.raises(ValueError, match=r"head\[0\] W must have shape \(4, 10\)"):
        lrp_lstm.RecurrentModel(w["fwd"], bwd=w["bwd"], head=[(np.ones((4, 9)), None)])
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        lrp_lstm.RecurrentModel(w["fwd"], bwd=w["bwd"],
                                head=[(np.ones((4, D)), None), "gelu", (np.ones((2, 4)), None)])
    with pytest.raises(ValueError, match="ends with the activation 'relu'"):
        lrp_lstm.RecurrentModel(w["fwd"], bwd=w["bwd"], head=[(np.ones((4, D)), None),
                                                                    "relu"])
    with pytest.raises(ValueError, match="needs attention"):
        lrp_lstm.RecurrentModel(w["fwd"], bwd=w["bwd"], head=[(np.ones((2, D)), None)],
                                pooling="attention")
    with pytest.raises(ValueError, match="attention must end in 1 output"):
        lrp_lstm.RecurrentModel(w["fwd"], bwd=w["bwd"], head=[(np.ones((2, D)), None)],
                                pooling="attention", attention=[(np.ones((2, D)), None)])
    with pytest.raises(ValueError, match="unknown pooling 'sum'"):
        lrp_lstm.RecurrentModel(w["fwd"], bwd=w["bwd"], head=[(np.ones((2, D)), None)],
                                pooling="sum")
    with pytest.raises(ValueError, match="either as Why_fwd"):
        lrp_lstm.RecurrentModel(w["fwd"], np.ones((2, D_HIDDEN)), bwd=w["bwd"],
                                Why_bwd=np.ones((2, D_HIDDEN)), head=[(np.ones((2, D)), None)])
    with pytest.raises(TypeError, match=r"head\[1\] is a GELU"):
        lrp_lstm.from_torch(rnn, nn.Sequential(nn.Linear(D, 3), nn.GELU(), nn.Linear(3, 2)),
                            pooling="mean")
    with pytest.raises(ValueError, match="output sequence has 10"):
        lrp_lstm.from_torch(rnn, nn.Linear(7, 2), pooling="max")


def test_max_pooling_routes_to_the_winning_step():
    rnn, head, _ = torch_parts(8, "max", "LSTM", False, 1, "linear")
    model = lrp_lstm.from_torch(rnn, head, pooling="max")
    x = np.random.default_rng(4).normal(size=(6, E))
    out, _ = rnn(torch.tensor(x)[None])
    winners = set(out[0].argmax(dim=0).tolist())
    expl = model.explain(x, "lrp")
    # relevance reaches x only at or before a winning step (unidirectional)
    assert not expl.relevance[max(winners) + 1:].any()


@pytest.mark.parametrize("pooling", ["attention", "none", "mean"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_head_layers_take_rows_in_blocks(pooling, dtype):
    """The kernels run the head's Linear layers on up to 32 rows at once:
    more pooled vectors, steps and tokens than that in one chunk (wide
    models chunk 64 or 128 sequences), and layers wider than a panel of
    columns, give the oracle's scores, LRP and gradients in both sum rules."""
    rng = np.random.default_rng(11)
    e, d = 3, 128
    arrays = lrp_lstm.model.random_weights(rng, e, d, 4, bias_std=0.1)

    def linear(n_out, n_in):
        return rng.normal(0, n_in ** -0.5, (n_out, n_in)), rng.normal(0, 0.1, n_out)

    attention = [linear(35, 2 * d), "relu", linear(1, 35)] if pooling == "attention" else None
    model = lrp_lstm.RecurrentModel.from_dict(
        arrays, pooling=pooling, head=[linear(37, 2 * d), "tanh", linear(4, 37)],
        attention=attention)
    lengths = rng.integers(1, 12, 80)
    lengths[5] = 45
    xs = [rng.normal(size=(T, e)) for T in lengths]
    steps = [int(rng.integers(T)) for T in lengths] if pooling == "none" else None
    scores = model.forward_batch(xs, dtype=dtype)
    plain_scores = model.forward_batch(xs, backend="numpy")
    for ours, theirs in zip(scores, plain_scores):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10 if dtype == np.float64
                                   else 1e-4)
    if dtype == np.float32:
        return
    for sum_rule in lrp_lstm.SUM_RULES:
        kw = dict(steps=steps, bias_factor=1.0, sum_rule=sum_rule)
        fast = model.explain_batch(xs, ("lrp", "sa", "gi"), n_threads=2, **kw)
        plain = model.explain_batch(xs, ("lrp", "sa", "gi"), backend="numpy", **kw)
        for ours, theirs in zip(fast, plain):
            for m in ("lrp", "sa", "gi"):
                scale = np.abs(theirs[m].relevance).max()
                np.testing.assert_allclose(ours[m].relevance, theirs[m].relevance, rtol=0,
                                           atol=1e-10 * max(scale, 1))
