"""Our .npz model files, and models converted from PyTorch."""
import numpy as np
import pytest

import lrp_lstm
from conftest import random_model


def test_save_load_round_trip(tmp_path):
    for bidirectional, bias in ((True, True), (False, False)):
        model = random_model(seed=20, bidirectional=bidirectional, bias=bias)
        path = tmp_path / "m.npz"
        lrp_lstm.save_model(model, path)
        back = lrp_lstm.load_model(path)
        for k, v in model.to_dict().items():
            np.testing.assert_array_equal(back.to_dict()[k], v)
        assert set(back.to_dict()) == set(model.to_dict())
        x = np.random.default_rng(21).normal(0, 1, (5, 7))
        np.testing.assert_array_equal(back.explain(x).relevance, model.explain(x).relevance)


def test_load_rejects_other_files(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not an lrp-lstm model file"):
        lrp_lstm.load_model(tmp_path / "other.npz")
    np.save(tmp_path / "obj.npy", np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        lrp_lstm.load_model(tmp_path / "obj.npy")
