"""Train the embedded SST model and write its files and model card.

    pip install ".[train]"
    python model/train.py --sst ../shared/data/sst --out model

The architecture is the one of Arras et al. (2017): word embeddings e = 60,
a bidirectional single-layer LSTM with d = 60 per direction and two biases
per gate, and a linear output layer without bias over the two directions'
final hidden states, five classes. It is trained with PyTorch on every
labelled phrase of the training trees and selected on the development
sentences only; the test sentences are scored once, for the model card.

Writes to --out: sst_bilstm.npz (weights in gate order i, g, f, o and the
embedding matrix), vocab.txt (one token per line, line k = embedding row
k), tokenizer.json, and README.md (the model card).
"""
import argparse
import json
import os
import time

import numpy as np
import torch
from torch import nn

import lrp_lstm
from lrp_lstm.datasets import read_sst
from lrp_lstm.evaluate import sst_accuracies
from lrp_lstm.text import UNK

SEED = 20170907


class SSTBiLSTM(nn.Module):
    def __init__(self, vocab_size, e=60, d=60, n_classes=5, dropout=0.5):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, e)
        nn.init.normal_(self.embedding.weight, std=0.5)
        self.lstm = nn.LSTM(e, d, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * d, n_classes, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids, lengths):
        """ids (B, T) padded token ids, lengths (B,) -> scores (B, C)."""
        x = self.dropout(self.embedding(ids))
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                   enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        # h_n (2, B, d): the forward direction after the last token, the
        # backward direction after the first
        return self.head(self.dropout(torch.cat([h_n[0], h_n[1]], dim=1)))


def batches(examples, batch_size, rng):
    """Batches of similar lengths, in random order."""
    order = np.argsort([len(ids) + rng.random() for ids, _ in examples], kind="stable")
    chunks = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
    rng.shuffle(chunks)
    return chunks


def to_tensors(examples, idx, unk_id=None, unk_prob=0.0, singletons=None, rng=None):
    seqs = [examples[k][0] for k in idx]
    lengths = torch.tensor([len(s) for s in seqs])
    ids = torch.zeros((len(seqs), int(lengths.max())), dtype=torch.long)
    for row, s in enumerate(seqs):
        s = np.array(s)
        if unk_prob > 0:
            drop = singletons[s] & (rng.random(len(s)) < unk_prob)
            s = np.where(drop, unk_id, s)
        ids[row, :len(s)] = torch.from_numpy(s)
    labels = torch.tensor([examples[k][1] for k in idx])
    return ids, lengths, labels


def predict_scores(net, sentences, batch_size=256):
    net.eval()
    out = []
    with torch.no_grad():
        for k in range(0, len(sentences), batch_size):
            ids, lengths, _ = to_tensors(sentences, range(k, min(k + batch_size, len(sentences))))
            out.append(net(ids, lengths))
    return torch.cat(out).double().numpy()



def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sst", default="../shared/data/sst", help="folder with train/dev/test.txt")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--unk-prob", type=float, default=0.25,
                    help="probability of replacing a training singleton by the unknown token")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(SEED)
    t_start = time.time()

    train = read_sst(os.path.join(args.sst, "train.txt"))
    dev = read_sst(os.path.join(args.sst, "dev.txt"))
    test = read_sst(os.path.join(args.sst, "test.txt"))

    counts = {}
    for s in train:
        for w in s.tokens:
            counts[w] = counts.get(w, 0) + 1
    vocab = [UNK] + sorted(counts, key=lambda w: (-counts[w], w))
    index = {w: k for k, w in enumerate(vocab)}
    singletons = np.array([False] + [counts[w] == 1 for w in vocab[1:]])

    def ids_of(tokens):
        return [index.get(w, 0) for w in tokens]

    phrases = {}
    for s in train:
        for a, b, label in s.phrases:
            phrases[(tuple(s.tokens[a:b]), label)] = None
    examples = [(ids_of(p), label) for p, label in phrases]
    dev_set = [(ids_of(s.tokens), s.label) for s in dev]
    test_set = [(ids_of(s.tokens), s.label) for s in test]
    print(f"{len(examples)} training phrases, {len(vocab)} words, "
          f"{len(dev_set)} dev, {len(test_set)} test sentences")

    net = SSTBiLSTM(len(vocab), dropout=args.dropout)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    best = (-1.0, None, 0)
    for epoch in range(1, args.epochs + 1):
        net.train()
        t0 = time.time()
        total = 0.0
        for idx in batches(examples, args.batch_size, rng):
            ids, lengths, labels = to_tensors(examples, idx, 0, args.unk_prob, singletons, rng)
            opt.zero_grad()
            loss = loss_fn(net(ids, lengths), labels)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            total += loss.item() * len(idx)
        dev_five, dev_binary = sst_accuracies(predict_scores(net, dev_set), [l for _, l in dev_set])
        print(f"epoch {epoch}: loss {total / len(examples):.4f}, dev five-class "
              f"{dev_five:.4f}, binary {dev_binary:.4f} ({time.time() - t0:.0f} s)", flush=True)
        if dev_five > best[0]:
            best = (dev_five, {k: v.clone() for k, v in net.state_dict().items()}, epoch)
    net.load_state_dict(best[1])
    train_time = time.time() - t_start

    dev_scores = predict_scores(net, dev_set)
    test_scores = predict_scores(net, test_set)
    dev_acc = sst_accuracies(dev_scores, [l for _, l in dev_set])
    test_acc = sst_accuracies(test_scores, [l for _, l in test_set])

    # the package's forward pass against PyTorch's, float64, on the dev set
    model, embeddings = lrp_lstm.from_torch(net.lstm, net.head, net.embedding)
    net.double()
    torch_dev = predict_scores(net, dev_set)
    ours = np.stack([model.forward(embeddings[ids]) for ids, _ in dev_set])
    max_diff = float(np.abs(ours - torch_dev).max())
    print(f"dev five-class {dev_acc[0]:.4f} binary {dev_acc[1]:.4f}; test five-class "
          f"{test_acc[0]:.4f} binary {test_acc[1]:.4f}; max |lrp_lstm - torch| on dev "
          f"(float64) = {max_diff:.2e}")
    if max_diff > 1e-10:
        raise SystemExit("the package's forward pass disagrees with PyTorch's")

    os.makedirs(args.out, exist_ok=True)
    np.savez_compressed(os.path.join(args.out, "sst_bilstm.npz"),
                        embeddings=embeddings, **model.to_dict())
    with open(os.path.join(args.out, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    settings = {"lowercase": True, "unknown_token": UNK, "style": "ptb"}
    with open(os.path.join(args.out, "tokenizer.json"), "w") as f:
        json.dump(settings, f, indent=2)
    write_card(args, os.path.join(args.out, "README.md"), len(train), len(examples), vocab, best[2],
               train_time, dev_acc, test_acc, max_diff, len(dev_set), len(test_set))


def write_card(args, path, n_train, n_phrases, vocab, epoch, train_time, dev_acc, test_acc,
               max_diff, n_dev, n_test):
    card = f"""# The embedded SST model

`lrp_lstm.load_sst()` loads this model. It was trained by `model/train.py`
(`python model/train.py --sst ../shared/data/sst --out model`, seed {SEED}).

## Architecture
The model of Arras et al. (2017): word embeddings e = 60, a bidirectional
single-layer LSTM with hidden size d = 60 per direction and two biases per
gate (gate order i, g, f, o in `sst_bilstm.npz`), and a linear output layer
without bias over the concatenated final hidden states of the two
directions, giving scores for five classes (0 very negative, 1 negative,
2 neutral, 3 positive, 4 very positive).

## Data
Stanford Sentiment Treebank (Socher et al., 2013), standard split. Training
used every labelled phrase of the {n_train} training trees ({n_phrases} distinct
(phrase, label) pairs), lowercased PTB tokens. Model selection (the epoch)
used the five-class accuracy on the {n_dev} development sentences only; the
{n_test} test sentences were scored once, after selection.

## Vocabulary and unknown words
`vocab.txt`: {len(vocab)} tokens, one per line, line k is row k of the
embedding matrix: every token of the training sentences plus `{UNK}` (row 0).
Raw text is split by `lrp_lstm.tokenize` into the same PTB-style
lowercase tokens (`isn't` -> `is n't`, `film's` -> `film 's`, brackets as
`-lrb-`/`-rrb-`); any token not in the vocabulary maps to `{UNK}`, whose
embedding was learned by replacing words seen once in training by `{UNK}`
with probability {args.unk_prob} during training.

## Training
PyTorch {torch.__version__} on the CPU ({args.threads} thread), Adam (learning
rate {args.lr}), batch size {args.batch_size}, dropout {args.dropout} on the
embeddings and on the final hidden states, gradient norm clipped at 5,
{args.epochs} epochs; selected epoch: {epoch}. Training time: {train_time / 60:.1f}
minutes. Embeddings initialised from N(0, 0.5^2) (no pretrained vectors).

## Accuracy
| set | sentences | five-class | binary (non-neutral) |
|---|---|---|---|
| dev | {n_dev} | {100 * dev_acc[0]:.1f} % | {100 * dev_acc[1]:.1f} % |
| test | {n_test} | {100 * test_acc[0]:.1f} % | {100 * test_acc[1]:.1f} % |

Binary: sentences whose label is not 2, counted positive when the softmax
probabilities of classes 3 + 4 exceed those of 0 + 1.

## Check of the package's forward pass
The float64 scores of `lrp_lstm` equal PyTorch's on the dev set to a
maximum absolute difference of {max_diff:.1e}.
"""
    with open(path, "w") as f:
        f.write(card)


if __name__ == "__main__":
    main()
