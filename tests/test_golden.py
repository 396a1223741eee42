"""Both backends against the reference implementation's outputs (184 cases)."""
import numpy as np
import pytest


def close(actual, expected, rtol):
    """Max abs difference within rtol of the reference array's largest entry."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(np.abs(expected).max(), 1e-300)
    err = np.abs(actual - expected).max() / scale
    assert err <= rtol, f"relative error {err:.2e} > {rtol:.0e}"


def explain_case(model, case, backend, dtype=np.float64):
    return model.explain(case["x"], method=("lrp", "sa", "gi"), target=int(case["target"]),
                         eps=float(case["eps"]), bias_factor=float(case["bias_factor"]),
                         backend=backend, dtype=dtype)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_matches_reference(seed_model, golden, backend):
    assert len(golden) == 184      # the cases ../shared/data/README.md lists
    for case in golden:
        res = explain_case(seed_model, case, backend)
        lrp, sa, gi = res["lrp"], res["sa"], res["gi"]
        for expl in res.values():
            assert expl.target == case["target"]
            close(expl.scores, case["scores"], 1e-10)
        close(lrp.relevance_fwd, case["Rx"], 1e-10)
        close(lrp.relevance_bwd, case["Rx_rev"], 1e-10)
        close(lrp.relevance_rest, case["R_rest"], 1e-10)
        close(sa.gradient_fwd, case["Gx"], 1e-10)
        close(sa.gradient_bwd, case["Gx_rev"], 1e-10)
        close(gi.gradient, case["Gx"] + case["Gx_rev"], 1e-10)
        close(lrp.word_relevance, case["R_words"], 1e-10)
        close(sa.word_relevance, case["SA_words"], 1e-10)
        close(gi.word_relevance, case["GI_words"], 1e-10)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_float32_close_to_float64(seed_model, golden, backend):
    for case in golden[::4]:
        r64 = explain_case(seed_model, case, backend)
        r32 = explain_case(seed_model, case, backend, np.float32)
        for m in ("lrp", "sa", "gi"):
            assert r32[m].relevance.dtype == np.float32
            close(r32[m].scores, r64[m].scores, 1e-4)
            close(r32[m].word_relevance, r64[m].word_relevance, 1e-4)
            close(r32[m].relevance, r64[m].relevance, 1e-4)
