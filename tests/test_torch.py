"""Models converted from PyTorch agree with PyTorch (skipped without PyTorch)."""
import numpy as np
import pytest

import lrp_lstm

from conftest import REQUIRED

if "torch" in REQUIRED:     # .ci/run: a missing PyTorch fails the run
    import torch
else:
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("n_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("head_bias", [True, False])
def test_from_torch_matches_pytorch(cell, n_layers, bidirectional, batch_first, head_bias):
    torch.manual_seed(n_layers * 8 + int(bidirectional) * 4 + int(batch_first) * 2
                      + int(head_bias) + 32 * (cell == "GRU"))
    e, d, C, T, V = 7, 5, 4, 9, 30
    rnn = getattr(torch.nn, cell)(e, d, num_layers=n_layers, batch_first=batch_first,
                                  bidirectional=bidirectional).double()
    n_dir = 2 if bidirectional else 1
    head = torch.nn.Linear(n_dir * d, C, bias=head_bias).double()
    emb = torch.nn.Embedding(V, e).double()
    model, table = lrp_lstm.from_torch(rnn, head, emb)
    assert model.cell == cell.lower()
    ids = torch.randint(0, V, (T,))
    x = emb(ids).detach().requires_grad_()
    inp = x[None] if batch_first else x[:, None]
    _, h_n = rnn(inp)
    if cell == "LSTM":
        h_n = h_n[0]
    # h_n (n_layers * n_dir, 1, d): the top layer's final states are last
    scores = head(torch.cat([h_n[-n_dir + k, 0] for k in range(n_dir)]))
    np.testing.assert_allclose(model.forward(table[ids.numpy()]), scores.detach().numpy(),
                               rtol=0, atol=1e-10)
    target = int(scores.argmax())
    scores[target].backward()
    ours = model.explain(x.detach().numpy(), ("sa", "gi"), target=target)
    np.testing.assert_allclose(ours["sa"].gradient, x.grad.numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours["gi"].relevance, (x.grad * x).detach().numpy(),
                               rtol=0, atol=1e-9)
    lrp = model.explain(x.detach().numpy(), "lrp", target=target, bias_factor=1.0)
    assert lrp.relevance.sum() + lrp.relevance_rest == pytest.approx(float(scores[target].detach()),
                                                                     abs=1e-10)


def test_from_torch_refuses_what_it_cannot_convert():
    head = torch.nn.Linear(10, 2)
    with pytest.raises(ValueError, match="GRU's final states have 5"):
        lrp_lstm.from_torch(torch.nn.GRU(3, 5), head)
    with pytest.raises(TypeError, match="RNN"):
        lrp_lstm.from_torch(torch.nn.RNN(3, 5), head)
    with pytest.raises(ValueError, match="head takes 10 features"):
        lrp_lstm.from_torch(torch.nn.LSTM(3, 4), head)
    with pytest.raises(TypeError, match="Linear"):
        lrp_lstm.from_torch(torch.nn.LSTM(3, 5), torch.nn.Conv1d(5, 2, 1))


@pytest.mark.parametrize("spec", ["lstm 64-32", "bigru 6-4"])
def test_from_torch_chain_of_modules_with_their_own_sizes(spec):
    torch.manual_seed(7)
    if spec == "lstm 64-32":
        chain = [torch.nn.LSTM(7, 64, batch_first=True).double(),
                 torch.nn.LSTM(64, 32, batch_first=True).double()]
    else:
        chain = [torch.nn.GRU(7, 6, batch_first=True, bidirectional=True).double(),
                 torch.nn.GRU(12, 4, batch_first=True, bidirectional=True).double()]
    n_dir = 2 if chain[0].bidirectional else 1
    head = torch.nn.Linear(n_dir * chain[-1].hidden_size, 3).double()
    model = lrp_lstm.from_torch(chain, head)
    assert model.hidden_sizes == ((64, 32) if spec == "lstm 64-32" else (6, 4))
    x = torch.randn(1, 10, 7, dtype=torch.float64, requires_grad=True)
    h = x
    for module in chain:
        h, _ = module(h)
    d = chain[-1].hidden_size
    final = h[0, -1, :d] if n_dir == 1 else torch.cat([h[0, -1, :d], h[0, 0, d:]])
    scores = head(final)
    np.testing.assert_allclose(model.forward(x[0].detach().numpy()), scores.detach().numpy(),
                               rtol=0, atol=1e-10)
    scores[1].backward()
    ours = model.explain(x[0].detach().numpy(), "sa", target=1).gradient
    np.testing.assert_allclose(ours, x.grad[0].numpy(), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match=r"rnn\[1\] reads 12 features, but rnn\[0\] puts out 6"):
        lrp_lstm.from_torch([torch.nn.LSTM(7, 6), torch.nn.LSTM(12, 4)],
                            torch.nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"rnn\[1\]: every module of the chain must be an LSTM"):
        lrp_lstm.from_torch([torch.nn.LSTM(7, 6), torch.nn.GRU(6, 4)], torch.nn.Linear(4, 3))
