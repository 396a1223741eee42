"""Train the models of the two known-answer tasks with PyTorch, ship their
weights, and measure the explanations on them.

    pip install ".[train]"
    python data/train_tasks.py

Writes data/spike_lstm.npz (the time series with a planted spike),
data/arithmetic_add_lstm.npz and data/arithmetic_subtract_lstm.npz (the toy
arithmetic task of Arras et al. 2019), all lrp_lstm.save_model files, and
docs/known_answer.json with the figures the README reports (computed again
by tests/test_tasks.py from the shipped weights).
"""
import json
import os

import warnings

import numpy as np

import lrp_lstm
from lrp_lstm import datasets, evaluate

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(HERE, "..", "docs")
# the test sets: generated from these seeds (the training sets from others)
SPIKE_TEST = dict(n=1000, seed=1)
ARITHMETIC_TEST = dict(n=2000, seed=1)
METHODS = ("lrp", "lrp-half", "lrp-abs", "lrp+abs", "sa", "gi")


def train_spike():
    """An LSTM with attention pooling and an MLP head, trained on 4000 series."""
    import torch
    from torch import nn

    class SpikeNet(nn.Module):
        def __init__(self, channels=3, d=16):
            super().__init__()
            self.rnn = nn.LSTM(channels, d, batch_first=True)
            self.attention = nn.Sequential(nn.Linear(d, 8), nn.Tanh(), nn.Linear(8, 1))
            self.head = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, channels))

        def forward(self, x):
            H, _ = self.rnn(x)
            alpha = torch.softmax(self.attention(H)[..., 0], dim=1)
            return self.head((alpha[..., None] * H).sum(dim=1))

    torch.manual_seed(0)
    x, labels, _ = datasets.spike_series(4000, seed=0)
    x, labels = torch.tensor(x, dtype=torch.float32), torch.tensor(labels)
    net = SpikeNet()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for epoch in range(30):
        for batch in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[batch]), labels[batch]).backward()
            opt.step()
    net.double().eval()
    return lrp_lstm.from_torch(net.rnn, net.head, pooling="attention",
                               attention=net.attention)


def train_arithmetic(task):
    """A unidirectional LSTM (d = 32) and a Linear layer on its final state,
    a regressor trained on 20,000 sequences."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    xs, targets, _ = datasets.arithmetic_sequences(20000, task, seed=0)
    xs = [torch.tensor(x, dtype=torch.float32) for x in xs]
    targets = torch.tensor(targets, dtype=torch.float32)
    rnn, head = nn.LSTM(2, 32, batch_first=True), nn.Linear(32, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=3e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, 20, 0.3)
    for epoch in range(60):
        for batch in torch.randperm(len(xs)).split(128):
            opt.zero_grad()
            seqs = [xs[i] for i in batch]
            packed = nn.utils.rnn.pack_sequence(seqs, enforce_sorted=False)
            _, (h_n, _) = rnn(packed)
            nn.functional.mse_loss(head(h_n[-1])[:, 0], targets[batch]).backward()
            opt.step()
        sched.step()
    return lrp_lstm.from_torch(rnn.double().eval(), head.double().eval())


def spike_figures(model):
    """Accuracy and, per method, how often the highest step relevance is the
    planted step (the test set of SPIKE_TEST)."""
    x, labels, steps = datasets.spike_series(**SPIKE_TEST)
    xs = list(x)
    accuracy = float(np.mean(model.forward_batch(xs).argmax(1) == labels))
    hits = {m: evaluate.pointing_game(model, xs, [[s] for s in steps], m)
            for m in METHODS + ("random",)}
    return {"accuracy": accuracy, "planted_step_hits": hits}


def arithmetic_figures(model, task):
    """Mean absolute error and, per method, operand_relevance (the test set
    of ARITHMETIC_TEST)."""
    xs, targets, operands = datasets.arithmetic_sequences(task=task, **ARITHMETIC_TEST)
    error = float(np.mean(np.abs(model.forward_batch(xs)[:, 0] - targets)))
    return {"mean_abs_error": error,
            "methods": {m: evaluate.operand_relevance(model, xs, operands, task, m)
                        for m in METHODS}}


def main():
    warnings.simplefilter("ignore", lrp_lstm.AmplificationWarning)
    figures = {}
    model = train_spike()
    lrp_lstm.save_model(model, os.path.join(HERE, "spike_lstm.npz"))
    figures["spike"] = spike_figures(model)
    print("spike", figures["spike"])
    for task in datasets.ARITHMETIC_TASKS:
        model = train_arithmetic(task)
        lrp_lstm.save_model(model, os.path.join(HERE, f"arithmetic_{task}_lstm.npz"))
        figures[task] = arithmetic_figures(model, task)
        print(task, figures[task])
    with open(os.path.join(DOCS, "known_answer.json"), "w") as f:
        json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
