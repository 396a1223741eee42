"""Our LSTM and GRU kernels against numbers computed by PyTorch 2.13
(data/torch_reference.npz, made by data/make_torch_reference.py), so that
this agreement is checked where PyTorch is not installed."""
import os

import numpy as np
import pytest

import lrp_lstm
from lrp_lstm.convert import torch_names

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                    "torch_reference.npz")


def cases():
    with np.load(PATH, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    return [{k.split("__", 1)[1]: v for k, v in data.items() if k.startswith(f"c{i}__")}
            for i in range(int(data["n_cases"]))]


def as_model(case):
    """The case's PyTorch weights under our names (lrp_lstm.convert.torch_names)."""
    cell, n_dir = str(case["cell"]), 2 if case["bidirectional"] else 1
    d = case["weight_hh_l0"].shape[1]
    arrays = torch_names(case, int(case["n_layers"]), bool(case["bidirectional"]))
    arrays["Why_Left"] = case["head_weight"][:, :d]
    if n_dir == 2:
        arrays["Why_Right"] = case["head_weight"][:, d:]
    arrays["bhy"] = case["head_bias"]
    return lrp_lstm.BiLSTM.from_dict(arrays, gate_order="ifgo" if cell == "lstm" else "rzn",
                                     cell=cell)


@pytest.mark.parametrize("case", cases(), ids=lambda c: (
    f"{c['cell']}-{int(c['n_layers'])}layers-{'bi' if c['bidirectional'] else 'uni'}"))
@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_matches_pytorch(case, backend):
    model = as_model(case)
    assert model.cell == str(case["cell"])
    x, target = case["x"], int(case["target"])
    res = model.explain(x, ("lrp", "sa", "gi"), target=target, bias_factor=1.0,
                        backend=backend)
    np.testing.assert_allclose(res["sa"].scores, case["scores"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(res["sa"].gradient, case["gradient"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(res["gi"].relevance, case["gradient"] * x, rtol=0, atol=1e-9)
    lrp = res["lrp"]
    assert lrp.relevance.sum() + lrp.relevance_rest == pytest.approx(case["scores"][target],
                                                                     abs=1e-10)
