"""Datasets: labelled texts (the Stanford Sentiment Treebank, Socher et al.
2013, and plain lines of label and text), and the generators of two
known-answer tasks (a time series with a planted spike, and the toy
arithmetic task of Arras et al. 2019).

Each line of an SST file is a binary parse tree in PTB bracket form whose
nodes all carry a sentiment label 0..4, e.g. ``(3 (2 It) (4 (2 's) ...))``.
Tokens are separated by ASCII spaces only; a few tokens hold a
non-breaking space (``8\\xa01\\/2``), which stays inside the token.
"""
import re
from typing import List, NamedTuple, Tuple

import numpy as np

_TREE_TOKEN = re.compile(r"\(|\)|[^ ()\n]+")


class SSTSentence(NamedTuple):
    """One SST tree.

    tokens: the leaves in order (lowercased unless asked otherwise)
    label: the root label 0..4
    phrases: (start, end, label) for every node, tokens[start:end] being
        the phrase; the root is (0, len(tokens), label)
    """

    tokens: List[str]
    label: int
    phrases: List[Tuple[int, int, int]]


def parse_tree(line, lowercase=True):
    """Parse one PTB-bracketed SST line into an SSTSentence."""
    items = _TREE_TOKEN.findall(line)
    tokens, phrases, stack = [], [], []
    k = 0
    while k < len(items):
        item = items[k]
        if item == "(":
            if k + 1 >= len(items) or not items[k + 1].isdigit():
                raise ValueError(f"expected a label after '(' in tree: {line[:80]!r}")
            stack.append((int(items[k + 1]), len(tokens)))
            k += 2
            if k < len(items) and items[k] not in "()":
                tokens.append(items[k].lower() if lowercase else items[k])
                k += 1
        elif item == ")":
            if not stack:
                raise ValueError(f"unbalanced ')' in tree: {line[:80]!r}")
            label, start = stack.pop()
            phrases.append((start, len(tokens), label))
            k += 1
        else:
            raise ValueError(f"unexpected token {item!r} in tree: {line[:80]!r}")
    if stack or not phrases:
        raise ValueError(f"incomplete tree: {line[:80]!r}")
    root = phrases[-1]
    if root[:2] != (0, len(tokens)):
        raise ValueError(f"tree has more than one root: {line[:80]!r}")
    return SSTSentence(tokens, root[2], phrases)


def read_sst(path, lowercase=True):
    """Read an SST file (train.txt, dev.txt, test.txt) into a list of SSTSentence."""
    with open(path, encoding="utf-8") as f:
        return [parse_tree(line, lowercase) for line in f if line.strip()]


def read_labelled(path, class_names):
    """Read lines of "label<TAB>text" (blank lines skipped) into (label,
    text) pairs; a label is a class index or one of class_names."""
    index = {name: k for k, name in enumerate(class_names)}
    out = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            label, tab, text = line.rstrip("\n").partition("\t")
            label = label.strip()
            if not tab:
                raise ValueError(f"{path}, line {number}: expected 'label<TAB>text'")
            if label in index:
                out.append((index[label], text))
            elif label.isdigit() and int(label) < len(class_names):
                out.append((int(label), text))
            else:
                raise ValueError(f"{path}, line {number}: unknown class {label!r}: expected "
                                 f"0..{len(class_names) - 1} or one of {list(class_names)}")
    return out


def spike_series(n, seed=0, T=40, channels=3, height=5.0):
    """A known-answer time-series task: n series (n, T, channels) of
    standard Gaussian noise, each with one spike of `height` added to
    channel c at a random step; the class is c.

    Returns (x (n, T, channels), labels (n,), steps (n,): the planted steps).
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, T, channels))
    labels = rng.integers(0, channels, n)
    steps = rng.integers(0, T, n)
    x[np.arange(n), steps, labels] += height
    return x, labels, steps


ARITHMETIC_TASKS = ("add", "subtract")


def arithmetic_sequences(n, task="add", seed=0, min_length=4, max_length=20):
    """The toy arithmetic task of Arras et al. ("Evaluating Recurrent Neural
    Network Explanations", BlackboxNLP 2019): each step holds a number drawn
    uniformly from [-1, 1] and a marker, 1 at two random positions a < b
    and 0 elsewhere; the target is n_a + n_b ("add") or n_a - n_b
    ("subtract"). Lengths are uniform in [min_length, max_length].

    Returns (xs: n arrays (T_k, 2), targets (n,), operands (n, 2): the
    positions a and b).
    """
    if task not in ARITHMETIC_TASKS:
        raise ValueError(f"unknown task {task!r}: expected one of {ARITHMETIC_TASKS}")
    rng = np.random.default_rng(seed)
    xs, targets, operands = [], np.empty(n), np.empty((n, 2), np.intp)
    for k in range(n):
        T = int(rng.integers(min_length, max_length + 1))
        x = np.zeros((T, 2))
        x[:, 0] = rng.uniform(-1, 1, T)
        a, b = np.sort(rng.choice(T, 2, replace=False))
        x[[a, b], 1] = 1
        xs.append(x)
        targets[k] = x[a, 0] + (x[b, 0] if task == "add" else -x[b, 0])
        operands[k] = a, b
    return xs, targets, operands
