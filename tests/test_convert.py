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


torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("head_bias", [True, False])
def test_from_torch_matches_pytorch(bidirectional, batch_first, head_bias):
    torch.manual_seed(int(bidirectional) * 4 + int(batch_first) * 2 + int(head_bias))
    e, d, C, T, V = 7, 5, 4, 9, 30
    rnn = torch.nn.LSTM(e, d, batch_first=batch_first, bidirectional=bidirectional).double()
    n_dir = 2 if bidirectional else 1
    head = torch.nn.Linear(n_dir * d, C, bias=head_bias).double()
    emb = torch.nn.Embedding(V, e).double()
    model, table = lrp_lstm.from_torch(rnn, head, emb)
    ids = torch.randint(0, V, (T,))
    x = emb(ids).detach().requires_grad_()
    inp = x[None] if batch_first else x[:, None]
    _, (h_n, _) = rnn(inp)
    scores = head(torch.cat([h_n[k, 0] for k in range(n_dir)]))
    np.testing.assert_allclose(model.forward(table[ids.numpy()]), scores.detach().numpy(),
                               rtol=0, atol=1e-10)
    target = int(scores.argmax())
    scores[target].backward()
    ours = model.explain(x.detach().numpy(), ("sa", "gi"), target=target)
    np.testing.assert_allclose(ours["sa"].gradient, x.grad.numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours["gi"].relevance, (x.grad * x).detach().numpy(),
                               rtol=0, atol=1e-9)


def test_from_torch_refuses_what_it_cannot_convert():
    head = torch.nn.Linear(10, 2)
    with pytest.raises(ValueError, match="GRU"):
        lrp_lstm.from_torch(torch.nn.GRU(3, 5), head)
    with pytest.raises(ValueError, match="num_layers"):
        lrp_lstm.from_torch(torch.nn.LSTM(3, 5, num_layers=2), torch.nn.Linear(5, 2))
    with pytest.raises(TypeError, match="RNN"):
        lrp_lstm.from_torch(torch.nn.RNN(3, 5), head)
    with pytest.raises(ValueError, match="head takes 10 features"):
        lrp_lstm.from_torch(torch.nn.LSTM(3, 4), head)
    with pytest.raises(TypeError, match="Linear"):
        lrp_lstm.from_torch(torch.nn.LSTM(3, 5), torch.nn.Conv1d(5, 2, 1))
