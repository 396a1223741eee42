"""The amplification diagnostic of LRP and its warning."""
import warnings

import numpy as np
import pytest

import lrp_lstm
from conftest import random_model, shared_path
from lrp_lstm.datasets import read_sst


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_amplification_is_the_relevance_mass_over_the_score(backend):
    model = random_model(seed=3, e=6, d=5, C=3, bias=True)
    x = np.random.default_rng(4).normal(0, 1, (9, 6))
    for bias_factor in (0.0, 1.0):
        e = model.explain(x, target=1, bias_factor=bias_factor, backend=backend)
        expected = ((np.abs(e.relevance_fwd).sum() + np.abs(e.relevance_bwd).sum()
                     + abs(e.relevance_rest)) / abs(e.scores[1]))
        assert e.amplification == pytest.approx(expected, rel=1e-12)
        if bias_factor == 1.0:   # conserved relevance: at least the score
            assert e.amplification >= 1 - 1e-12
    assert model.explain(x, "sa").amplification is None


def test_warning_fires_above_the_threshold_and_names_the_inputs(monkeypatch):
    model = random_model(seed=5, e=6, d=5, C=3)
    rng = np.random.default_rng(6)
    xs = [rng.normal(0, 1, (T, 6)) for T in (3, 12, 5, 30)]
    amps = np.array([e.amplification for e in model.explain_batch(xs)])
    # a threshold between the inputs' amplifications: exactly those above it are named
    threshold = float(np.sort(amps)[1])
    monkeypatch.setattr(lrp_lstm.AmplificationWarning, "threshold", threshold)
    over = np.flatnonzero(amps > threshold)
    with pytest.warns(lrp_lstm.AmplificationWarning) as record:
        model.explain_batch(xs)
    assert len(record) == 1
    assert record[0].filename == __file__     # points at the caller
    message = str(record[0].message)
    assert f"{len(over)} of 4 inputs" in message
    assert f"xs[{', '.join(map(str, over))}]" in message
    # no warning for a method without relevance, nor below the threshold
    monkeypatch.setattr(lrp_lstm.AmplificationWarning, "threshold", float(amps.max()))
    with warnings.catch_warnings():
        warnings.simplefilter("error", lrp_lstm.AmplificationWarning)
        model.explain_batch(xs)
        model.explain_batch(xs, "gi")


def test_default_threshold_separates_sst_sentences_from_long_random_inputs():
    sst_test = read_sst(shared_path("sst", "test.txt"))
    # the measurements behind the default (README): the embedded model's
    # largest amplification on the SST test set is about 700 (signal rule),
    # a 2000-word input of random vocabulary words is amplified beyond 1e10
    clf = lrp_lstm.load_sst()
    xs = [clf.embeddings[clf.token_ids(s.tokens)] for s in sst_test]
    with warnings.catch_warnings():
        warnings.simplefilter("error", lrp_lstm.AmplificationWarning)
        clf.model.explain_batch(xs, n_threads=2)
    rng = np.random.default_rng(0)
    x = clf.embeddings[rng.integers(1, len(clf.vocab), 2000)]
    with pytest.warns(lrp_lstm.AmplificationWarning, match="amplified up to"):
        clf.model.explain(x, bias_factor=1.0)
    # every gate rule: no amplification above 1e6 on a test sentence without
    # the warning naming that sentence
    for gate_rule in lrp_lstm.GATE_RULES:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", lrp_lstm.AmplificationWarning)
            amps = np.array([e.amplification for e in clf.model.explain_batch(
                xs, gate_rule=gate_rule, n_threads=2)])
        named = set()
        for w in caught:
            listed = str(w.message).split("xs[")[1].split("]")[0]
            named |= {int(k) for k in listed.replace(", ...", "").split(", ")}
        over = np.flatnonzero(amps > 1e6)
        assert len(caught) == (1 if (amps > lrp_lstm.AmplificationWarning.threshold).any()
                               else 0)
        # the message lists up to ten inputs: those it lists are above the threshold
        assert all(amps[k] > lrp_lstm.AmplificationWarning.threshold for k in named)
        assert gate_rule == "signal" or len(over) > 0    # the gate-feeding rules explode
        if len(over):
            assert f"{(amps > lrp_lstm.AmplificationWarning.threshold).sum()} of" in str(
                caught[0].message)


def test_rule_names_and_refusals():
    assert lrp_lstm.SUM_RULES == ("epsilon", "abs")
    assert lrp_lstm.GATE_RULES == ("signal", "half", "abs")
    model = random_model(seed=7, e=4, d=3, C=2)
    x = np.random.default_rng(8).normal(0, 1, (5, 4))
    with pytest.raises(ValueError, match="'prop' is not offered.*sum_rule='abs'"):
        model.explain(x, gate_rule="prop")
    with pytest.raises(ValueError, match=r"unknown sum_rule 'alpha'.*\('epsilon', 'abs'\)"):
        model.explain(x, sum_rule="alpha")


@pytest.mark.parametrize("T", [20, 2000, 10000])
def test_abs_sum_rule_stays_bounded_on_long_random_word_inputs(T):
    # the epsilon rule's amplification grows exponentially with T here
    # (median 3.7e12 at T = 2000); the abs rule's cannot exceed 1
    clf = lrp_lstm.load_sst()
    x = clf.embeddings[np.random.default_rng(T).integers(1, len(clf.vocab), T)]
    e = clf.model.explain(x, bias_factor=1.0, sum_rule="abs")
    score = e.scores[e.target]
    assert e.amplification <= 1 + 1e-10
    assert abs(e.relevance.sum() + e.relevance_rest - score) <= 1e-10 * abs(score)
    assert np.all(e.relevance * np.sign(score) >= 0)    # one sign: that of the score


def test_zero_score_gives_the_same_amplification_one_by_one_and_batched():
    """A zero score leaves every relevance zero: NaN (0 / 0), one input and
    a batch alike (they differed: inf and NaN), and no warning."""
    weights = random_model(seed=7, e=4, d=3, C=2).to_dict()
    for key in weights:
        if key.startswith("Why"):
            weights[key] = np.zeros_like(weights[key])
    model = lrp_lstm.RecurrentModel.from_dict(weights)
    x = np.random.default_rng(8).normal(0, 1, (5, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", lrp_lstm.AmplificationWarning)
        one = model.explain(x)
        batch = model.explain_batch([x, x[:3]])
    assert one.scores[one.target] == 0 and np.isnan(one.amplification)
    assert all(np.isnan(e.amplification) for e in batch)
