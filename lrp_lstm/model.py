"""The array-level model: an LSTM or GRU classifier and its explanations."""
from __future__ import annotations

import contextlib
import itertools
import math
import mmap
import os
import sys
import threading
import warnings
import weakref
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _layout
from . import _validation as V
from . import oracle
from ._native import kernels as _kernels
from . import head as heads

_DIRECTION_KEYS = ("Wxh", "bxh", "Whh", "bhh")


class AmplificationWarning(UserWarning):
    """LRP relevance far larger than the score it explains.

    Issued when an explanation's `amplification` (sum |R| + |rest|, over
    |score|) exceeds `AmplificationWarning.threshold`, which may be set.
    The epsilon rule's shares |term / sum| grow large where the terms of a
    sum nearly cancel, and they multiply along the recursion; beyond the
    default threshold the heatmap is dominated by that growth rather than by
    the input (see the README's section on long inputs).
    """

    threshold = 1e3
_SIDES = ("Left", "Right")


class Explanation:
    """One explanation of one input x (T, e).

    Attributes
    ----------
    method : "lrp", "sa" or "gi"
    target : int, the class whose score is explained
    step : int, for a per-step model the step whose score is explained;
        None for any other model
    scores : (C,) the model's output scores (at `step`, per-step)
    word_relevance : (T,) relevance.sum(1)
    relevance : (T, e) LRP relevance (relevance_fwd + relevance_bwd), SA
        relevance gradient**2, or GI relevance gradient * x
    relevance_fwd, relevance_bwd : (T, e) LRP only: relevance reaching x
        through the forward and the backward direction (of the first layer),
        both in sentence order (relevance_bwd is None for a unidirectional
        model)
    relevance_rest : float, LRP only: relevance left on the initial states
        (of every layer and direction)
    gradient : (T, e) SA and GI only: d scores[target] / d x
    gradient_fwd, gradient_bwd : (T, e) SA and GI only: the gradient through
        each direction (gradient_bwd is None for a unidirectional model)
    eps, bias_factor, gate_rule, sum_rule : the LRP parameters used (LRP only)
    amplification : float, LRP only: (sum |relevance| + |relevance_rest|) /
        |scores[target]|; 1 for relevance of one sign that is conserved,
        much larger where relevance of both signs grows and cancels (see
        AmplificationWarning); NaN for a zero score, which leaves every
        relevance zero (0 / 0)

    `relevance` and `gradient` are summed from the per-direction parts when
    first read.
    """

    __slots__ = ("method", "target", "step", "scores", "word_relevance", "relevance_fwd",
                 "relevance_bwd", "relevance_rest", "gradient_fwd", "gradient_bwd",
                 "eps", "bias_factor", "gate_rule", "sum_rule", "amplification", "_x",
                 "_relevance", "_gradient")

    def __init__(self, method, target, scores, word_relevance, fwd, bwd, x=None,
                 relevance_rest=None, lrp=None, amplification=None, step=None):
        # fwd, bwd: the per-direction parts (bwd None when unidirectional);
        # x: the input, which GI's relevance needs (None for the others)
        self.method = method
        self.target = target
        self.step = step
        self.scores = scores
        self.word_relevance = word_relevance
        if method == "lrp":
            self.relevance_fwd, self.relevance_bwd = fwd, bwd
            self.gradient_fwd = self.gradient_bwd = None
        else:
            self.gradient_fwd, self.gradient_bwd = fwd, bwd
            self.relevance_fwd = self.relevance_bwd = None
        self.relevance_rest = relevance_rest
        self.amplification = amplification
        self.eps, self.bias_factor, self.gate_rule, self.sum_rule = lrp or (None,) * 4
        self._x = x
        self._relevance = self._gradient = None

    @property
    def gradient(self):
        """(T, e) d scores[target] / d x (SA and GI only)."""
        if self._gradient is None and self.gradient_fwd is not None:
            self._gradient = (self.gradient_fwd if self.gradient_bwd is None
                              else self.gradient_fwd + self.gradient_bwd)
        return self._gradient

    @property
    def relevance(self):
        """(T, e) input-level relevance."""
        if self._relevance is None:
            if self.method == "lrp":
                self._relevance = (self.relevance_fwd if self.relevance_bwd is None
                                   else self.relevance_fwd + self.relevance_bwd)
            elif self.method == "sa":
                self._relevance = self.gradient ** 2
            else:
                self._relevance = self.gradient * self._x
        return self._relevance

    def __repr__(self):
        return (f"Explanation(method={self.method!r}, target={self.target}, "
                + (f"step={self.step}, " if self.step is not None else "") +
                f"T={len(self.word_relevance)}, word_relevance="
                f"{np.array2string(self.word_relevance, precision=4)})")


class RecurrentModel:
    """A recurrent model: LSTM (or GRU) layers, bidirectional or
    unidirectional, and a head that pools their states and maps them to the
    scores (a classifier, a regressor for C = 1, or a per-step tagger or
    forecaster).

    The top layer's states H (T, D), D = n_dir d (the forward direction's
    h_t, then the backward direction's, which runs over the input reversed;
    in sentence order, as in PyTorch's output tensor), are pooled into one
    vector p (D,) and the head's Linear layers map p to the scores (C,). By
    default (pooling "last", the head one Linear layer given by Why_fwd,
    Why_bwd and bias) that is s = Why_fwd h_fwd[T-1] + Why_bwd
    h_bwd[0] + bias, the model of Arras et al. A layer above the first reads
    the hidden states of the layer below, both directions concatenated
    (forward first), so its input size is n_dir d.

    Parameters
    ----------
    fwd : mapping with Wxh (G, e), bxh (G,), Whh (G, d), bhh (G,): the
        forward direction of the first layer; G = 4d for an LSTM, 3d for a
        GRU
    Why_fwd : (C, d), the output layer's columns for the forward
        direction's part of p; or None when `head` is given
    bwd : mapping like `fwd` for the backward direction, or None for a
        unidirectional model
    Why_bwd : (C, d), required with `bwd` and Why_fwd
    bias : (C,) output bias, or None
    pooling : how H becomes p (see lrp_lstm.head): "last" (each direction's
        final state), "mean" or "max" (over the sequence's own steps),
        "attention" (p = sum_t alpha_t H_t, alpha = softmax of the scores
        that `attention` gives each H_t) or "none" (no pooling: the head
        runs on every H_t, and the model puts out scores (T, C), one row
        per step)
    head : instead of Why_fwd, Why_bwd and bias, the head's layers: a list
        of Linear layers, (W (n_out, n_in), b (n_out,)) pairs, with
        activations "relu", "tanh" or "identity" between them, e.g.
        [(W1, b1), "relu", (W2, b2)]; the first reads D features, the last
        puts out the C scores
    attention : for pooling "attention", its net in the same form, from D
        features to one score per step: [(w (1, D), b)] or [(W1 (A, D),
        b1), "tanh", (w2 (1, A), b2)]
    gate_order : order of the gate blocks along the G axis of Wxh, bxh,
        Whh, bhh. LSTM: a permutation of "igfo" (i input, g cell candidate,
        f forget, o output; "c" may stand for "g"), default "igfo"; PyTorch
        uses "ifgo", Keras "ifco". GRU: a permutation of "rzn" (r reset,
        z update, n candidate), default "rzn" as in PyTorch.
    upper_layers : for a stacked model, one (fwd, bwd) pair of mappings
        per layer above the first (bwd None when unidirectional), whose
        Wxh are (G, n_dir d)
    cell : "lstm" or "gru". The GRU follows PyTorch's equations:
        r = sigmoid(a_r), z = sigmoid(a_z) with a = Wxh x + bxh + Whh h + bhh,
        n = tanh(Wxh_n x + bxh_n + r * (Whh_n h + bhh_n)),
        h' = (1 - z) * n + z * h.
    output : how the scores become probabilities: "softmax" (default) or
        "sigmoid" (C = 1: one logit, the probability of class 1). The
        explanations are always of the scores (logits).
    mask_zero : the inputs come from an embedding whose token id 0 is
        padding, to be skipped (Keras's mask_zero): the text classifier
        then builds each input's mask, and array inputs need `mask`.

    Each layer k may have its own hidden size d_k (the same in both
    directions); layer k > 0 reads the n_dir d_{k-1} features of the layer
    below, and Why_* are (C, d) for the top layer's d.
    """

    def __init__(self, fwd, Why_fwd=None, bwd=None, Why_bwd=None, bias=None,
                 gate_order=None, upper_layers=(), cell="lstm", output="softmax",
                 mask_zero=False, *, pooling="last", head=None, attention=None):
        self.cell = V.check_cell(cell)
        if output not in ("softmax", "sigmoid"):
            raise ValueError(f"unknown output {output!r}: expected 'softmax' or 'sigmoid'")
        self.output = output
        self.mask_zero = bool(mask_zero)
        self.pooling = heads.check_pooling(pooling)
        order = V.check_gate_order(gate_order, cell)
        if head is not None and (Why_fwd is not None or Why_bwd is not None
                                 or bias is not None):
            raise ValueError("give the output layer either as Why_fwd, Why_bwd and bias, "
                             "or as head, not both")
        if head is None and Why_fwd is None:
            raise ValueError("the model needs an output layer: Why_fwd (and Why_bwd), "
                             "or head")
        if head is None and (bwd is None) != (Why_bwd is None):
            raise ValueError("a bidirectional model needs both bwd and Why_bwd")
        if pooling == "attention" and attention is None:
            raise ValueError("pooling='attention' needs attention, the net that scores "
                             "each step")
        if attention is not None and pooling != "attention":
            raise ValueError(f"attention is given, but pooling is {pooling!r}: use "
                             "pooling='attention'")
        sides = ("fwd", "bwd") if bwd is not None else ("fwd",)
        self.layers = [[self._check_direction(w, side, order, cell)
                        for side, w in zip(sides, (fwd, bwd))]]
        for k, pair in enumerate(upper_layers, start=1):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"upper_layers[{k - 1}] must be a (fwd, bwd) pair")
            if (pair[1] is not None) != (bwd is not None):
                raise ValueError(f"layer {k} must have as many directions as layer 0")
            self.layers.append([self._check_direction(w, f"{side}, layer {k}", order, cell)
                                for side, w in zip(sides, pair)])
        # each layer has its own hidden size d_k, the same in both directions;
        # layer k > 0 reads n_dir d_{k-1} features
        n_dir, n_in = len(sides), self.input_size
        for k, layer in enumerate(self.layers):
            d_k = layer[0]["Whh"].shape[1]
            for side, w in zip(sides, layer):
                where = f"{side}" + (f", layer {k}" if k else "")
                V.check_shape(w["Wxh"], f"Wxh ({where})", (len(order) * d_k, n_in))
                V.check_shape(w["Whh"], f"Whh ({where})", (len(order) * d_k, d_k))
            n_in = n_dir * d_k
        d = self.hidden_size
        self.has_bias = head is not None or bias is not None
        if head is None:
            Whys = [V.as_float_array(Why, f"Why_{side}", 2)
                    for side, Why in zip(sides, (Why_fwd, Why_bwd))]
            C = Whys[0].shape[0]
            if C < 1:
                raise ValueError("Why_fwd must have at least one class row")
            for side, Why in zip(sides, Whys):
                V.check_shape(Why, f"Why_{side}", (C, d))
            if bias is not None:
                V.check_shape(V.as_float_array(bias, "bias", 1), "bias", (C,))
            head = [(np.concatenate(Whys, axis=1), bias)]
        self.head = heads.check_layers(head, "head", n_dir * d)
        self.attention = (None if attention is None
                          else heads.check_layers(attention, "attention", n_dir * d, 1))
        C = self.n_classes
        if output == "sigmoid" and C != 1:
            raise ValueError(f"a sigmoid output has one score (C = 1), got C = {C}")
        for arr in (a for layer in self.layers for w in layer for a in w.values()):
            arr.setflags(write=False)
        # inputs x with every |x| below max / _input_scale (max: the dtype's
        # largest number) keep the first layer's pre-activations, and every
        # partial sum of them, within half the floating-point range: |z| is
        # at most max |x| times the largest row sum of |Wxh|, plus the
        # biases' and Whh's parts (|h| <= 1). Larger inputs are refused
        # (_input_error), as NaN and infinity are.
        self._input_scale = 2 * max(float(np.abs(w["Wxh"]).sum(axis=1).max())
                                    for w in self.layers[0])
        # multiply-adds of one direction's forward pass per token
        self._work_per_token = sum(layer[0]["Wxh"].shape[0] * (layer[0]["Wxh"].shape[1] + d_l)
                                   for layer, d_l in zip(self.layers, self.hidden_sizes))
        self._packed = {}

    @staticmethod
    def _check_direction(weights, side, order, cell):
        """Check one direction's weights; return them in the cell's canonical
        gate order (i, g, f, o or r, z, n)."""
        if not hasattr(weights, "__getitem__"):
            raise TypeError(f"{side} must be a mapping of Wxh, bxh, Whh, bhh")
        arrays = {}
        for key in _DIRECTION_KEYS:
            if key not in weights:
                raise ValueError(f"{side} direction is missing the weight {key}")
            arrays[key] = V.as_float_array(weights[key], f"{key} ({side})",
                                           2 if key[0] == "W" else 1)
        G, n_gates = arrays["Wxh"].shape[0], len(order)
        if G == 0 or G % n_gates:
            raise ValueError(f"Wxh ({side}) must have {n_gates}d rows for "
                             f"{'an LSTM' if cell == 'lstm' else 'a GRU'}, "
                             f"got shape {arrays['Wxh'].shape}")
        d = G // n_gates
        if arrays["Wxh"].shape[1] < 1:
            raise ValueError(f"Wxh ({side}) must have e >= 1 columns, got {arrays['Wxh'].shape}")
        V.check_shape(arrays["Whh"], f"Whh ({side})", (G, d))
        V.check_shape(arrays["bxh"], f"bxh ({side})", (G,))
        V.check_shape(arrays["bhh"], f"bhh ({side})", (G,))
        rows = np.concatenate([np.arange(order.index(g) * d, (order.index(g) + 1) * d)
                               for g in V.CELLS[cell]])
        return {k: np.ascontiguousarray(a[rows], dtype=np.float64) for k, a in arrays.items()}

    # -- construction and export ------------------------------------------------

    @classmethod
    def random(cls, e: int, d: int | Sequence[int], C: int, seed: int = 0,
               **kwargs) -> RecurrentModel:
        """A model with random weights (see random_weights for kwargs:
        bidirectional, bias, n_layers, cell, bias_std)."""
        return cls.from_dict(random_weights(np.random.default_rng(seed), e, d, C, **kwargs),
                             cell=kwargs.get("cell", "lstm"))

    @classmethod
    def from_dict(cls, arrays: Mapping[str, ArrayLike], gate_order: str | None = None,
                  cell: str = "lstm", output: str = "softmax", mask_zero: bool = False, *,
                  pooling: str | None = None, head=None, attention=None) -> RecurrentModel:
        """Build a model from the reference's key names.

        arrays: mapping with Wxh_Left, bxh_Left, Whh_Left, bhh_Left, Why_Left,
        for a bidirectional model the same five with _Right, optionally bhy
        (C,), an output bias, and for a stacked model the four weights of
        each layer k >= 1 with the suffix _l{k} (Wxh_Left_l1, ...). Any
        other head (see to_dict) replaces Why_* and bhy by pooling (a str),
        head_W{i}, head_b{i} and head_activations (one str per layer), and
        attention_W{i}, attention_b{i}, attention_activations.
        gate_order, cell, output and mask_zero as for the constructor;
        pooling, head and attention, when given, as for the constructor,
        in place of those in arrays.
        """
        if not hasattr(arrays, "keys") or not hasattr(arrays, "__getitem__"):
            raise TypeError(f"arrays must be a mapping of weight names to arrays (e.g. a "
                            f"dict or an .npz file), got {type(arrays).__name__}")
        n_layers = 1
        while f"Wxh_Left_l{n_layers}" in arrays:
            n_layers += 1
        suffixes = [""] + [f"_l{k}" for k in range(1, n_layers)]
        bidirectional = any(k.startswith(tuple(f"{w}_Right" for w in (*_DIRECTION_KEYS, "Why")))
                            for k in arrays)
        sides = _SIDES if bidirectional else _SIDES[:1]
        nets = {net: _head_from_dict(arrays, net) for net in ("head", "attention")}
        known = ({f"{k}_{s}{x}" for k in _DIRECTION_KEYS for s in _SIDES for x in suffixes}
                 | {f"Why_{s}" for s in _SIDES} | {"bhy", "pooling"}
                 | {k for _, keys in nets.values() for k in keys})
        unknown = sorted(set(arrays) - known)
        if unknown:
            raise ValueError(f"unknown weight name(s) {unknown}: expected names like "
                             f"{sorted(known)[:12]}")
        layers = []
        for x in suffixes:
            layer = []
            for s in sides:
                for k in _DIRECTION_KEYS:
                    if f"{k}_{s}{x}" not in arrays:
                        raise ValueError(f"missing weight {k}_{s}{x}")
                layer.append({k: arrays[f"{k}_{s}{x}"] for k in _DIRECTION_KEYS})
            layers.append(layer + [None] * (2 - len(layer)))
        if pooling is None:
            pooling = str(arrays["pooling"]) if "pooling" in arrays else "last"
        head = nets["head"][0] if head is None else head
        common = dict(gate_order=gate_order, upper_layers=[tuple(layer) for layer in layers[1:]],
                      cell=cell, output=output, mask_zero=mask_zero, pooling=pooling,
                      attention=nets["attention"][0] if attention is None else attention)
        if head is not None:
            return cls(layers[0][0], bwd=layers[0][1], head=head, **common)
        for s in sides:
            if f"Why_{s}" not in arrays:
                raise ValueError(f"missing weight Why_{s}")
        return cls(layers[0][0], arrays["Why_Left"], layers[0][1], arrays.get("Why_Right"),
                   bias=arrays.get("bhy"), **common)

    def to_dict(self):
        """The weights under the reference's key names (layers above the first
        with the suffix _l{k}), gates in the canonical order (i, g, f, o for
        an LSTM, r, z, n for a GRU; see `cell`). The reference's head (last
        states, one Linear layer) is Why_Left, Why_Right and bhy; any other
        is described by the keys that from_dict lists."""
        out = {}
        for k, layer in enumerate(self.layers):
            for side, w in zip(_SIDES, layer):
                for key in _DIRECTION_KEYS:
                    out[f"{key}_{side}" + (f"_l{k}" if k else "")] = w[key].copy()
        if self.pooling == "last" and len(self.head) == 1:
            d = self.hidden_size
            for k, side in enumerate(_SIDES[:len(self.layers[0])]):
                out[f"Why_{side}"] = self.head[0]["W"][:, k * d:(k + 1) * d].copy()
            if self.has_bias:
                out["bhy"] = self.head[0]["b"].copy()
            return out
        out["pooling"] = np.array(self.pooling)
        for net, layers in (("head", self.head), ("attention", self.attention or ())):
            for i, layer in enumerate(layers):
                out[f"{net}_W{i}"] = layer["W"].copy()
                out[f"{net}_b{i}"] = layer["b"].copy()
            if layers:
                out[f"{net}_activations"] = np.array([la["activation"] for la in layers])
        return out

    def __getstate__(self):
        return {"arrays": self.to_dict(), "cell": self.cell, "output": self.output,
                "mask_zero": self.mask_zero}

    def __setstate__(self, state):
        other = RecurrentModel.from_dict(state["arrays"], cell=state.get("cell", "lstm"),
                                         output=state.get("output", "softmax"),
                                         mask_zero=state.get("mask_zero", False))
        self.__dict__.update(other.__dict__)

    # -- shape ---------------------------------------------------------------

    @property
    def bidirectional(self):
        return len(self.layers[0]) == 2

    @property
    def n_layers(self):
        return len(self.layers)

    @property
    def input_size(self):
        """e, the size of one input vector."""
        return self.layers[0][0]["Wxh"].shape[1]

    @property
    def hidden_sizes(self):
        """(d_0, d_1, ...), the hidden size of one direction of each layer."""
        return tuple(layer[0]["Whh"].shape[1] for layer in self.layers)

    @property
    def hidden_size(self):
        """d, the hidden size of one direction of the top layer (the one the
        output layer reads)."""
        return self.hidden_sizes[-1]

    @property
    def n_classes(self):
        """C, the number of output scores (per step, for a per-step model)."""
        return self.head[-1]["W"].shape[0]

    @property
    def per_step(self):
        """Whether the model puts out scores at every step (pooling "none")."""
        return self.pooling == "none"

    def __repr__(self):
        kind = "bidirectional" if self.bidirectional else "unidirectional"
        sizes = self.hidden_sizes
        d = sizes[0] if len(set(sizes)) == 1 else sizes
        sizes = " -> ".join(str(la["W"].shape[0]) for la in self.head)
        return (f"RecurrentModel({kind}, cell={self.cell}, layers={self.n_layers}, "
                f"e={self.input_size}, d={d}, pooling={self.pooling}, head={sizes}, "
                f"C={self.n_classes})")

    # -- computation ---------------------------------------------------------

    def _kernel_arrays(self, dtype, absolute=False):
        """The model in the kernels' layout: params (flat), layout (n_layers,
        n_dir, 12), and the head's flat parameters with the tables of its
        Linear layers and of the attention net's (see head.pack). In params
        each direction of each layer is the block Wx (G, e_l) | WxT (e_l, G)
        | Wh (G, d_l) | WhT (d_l, G) | bx (G,) | bh (G,), then Wx, WxT, Wh,
        WhT again in panels (see _layout.panels), each on a vector boundary,
        and its row of layout holds e_l, d_l and the offsets of those ten
        arrays (an LSTM's bh is folded into bx: the two biases act as one).
        absolute: params followed by their absolute values, for the abs sum
        rule."""
        if absolute:
            key = (dtype, "abs")
            if key not in self._packed:
                params, *rest = self._kernel_arrays(dtype)
                self._packed[key] = (_layout.aligned(np.concatenate((params, np.abs(params)))),
                                     *rest)
            return self._packed[key]
        if dtype not in self._packed:
            width = _kernels.panel_width(np.dtype(dtype) == np.float64)
            parts, rows = [], []
            for layer in self.layers:
                for w in layer:
                    bx = w["bxh"] + w["bhh"] if self.cell == "lstm" else w["bxh"]
                    matrices = (w["Wxh"], w["Wxh"].T, w["Whh"], w["Whh"].T)
                    parts += [*matrices, bx, w["bhh"], *(_layout.panels(a, width)
                                                         for a in matrices)]
                    rows.append([w["Wxh"].shape[1], w["Whh"].shape[1]])
            params, offsets = _layout.place(parts, dtype)
            layout = [row + offsets[10 * k:10 * k + 10] for k, row in enumerate(rows)]
            self._packed[dtype] = (params, np.array(layout, dtype=np.intp).reshape(
                                       len(self.layers), len(self.layers[0]), -1),
                                   *heads.pack(self.head, self.attention, dtype, width))
        return self._packed[dtype]

    def forward(self, x: ArrayLike, mask: ArrayLike | None = None, backend: str = "cython",
                dtype: DTypeLike = np.float64) -> np.ndarray:
        """The scores (C,) for one input x (T, e), or for a per-step model
        (T, C); mask (T,) bool as for explain (a per-step model's masked
        steps get rows of NaN)."""
        return self.forward_batch([x], None if mask is None else [mask], n_threads=1,
                                  backend=backend, dtype=dtype, _name="x")[0]

    def forward_batch(self, xs: Sequence[ArrayLike], masks: Sequence[ArrayLike] | None = None,
                      n_threads: int | None = None, backend: str = "cython",
                      dtype: DTypeLike = np.float64,
                      _name=None) -> np.ndarray | list[np.ndarray]:
        """The scores (B, C) of a list of inputs, xs[k] of shape (T_k, e);
        for a per-step model a list of (T_k, C). masks: None or one (T_k,)
        bool mask per input, as for explain."""
        dtype = V.check_dtype(dtype)
        n_threads = V.check_n_threads(n_threads)
        xs, masks = self._check_inputs(xs, masks, dtype, _name)
        if not xs:
            return [] if self.per_step else np.zeros((0, self.n_classes), dtype)
        B = len(xs)
        out = self._compute(xs, np.full(B, -1, np.intp), np.zeros(B, np.intp),
                            (1.0, 0.0, 0, 0), False, False, n_threads, dtype, backend, _name)
        if not self.per_step:
            return out["scores"]
        steps = np.split(out["step_scores"], out["offsets"][1:-1])
        if masks is None:
            return steps
        result = []
        for m, rows in zip(masks, steps):
            scores = np.full((len(m), self.n_classes), np.nan, dtype)
            scores[m] = rows
            result.append(scores)
        return result

    def _check_inputs(self, xs, masks, dtype, name):
        """Validated inputs (C-contiguous, dtype) with their masked steps
        removed, and the validated masks (None without masks)."""
        if isinstance(xs, np.ndarray) and xs.ndim != 3:
            raise ValueError(f"xs must be a list of (T, e) arrays, got an array of shape "
                             f"{xs.shape}")
        xs = V.check_inputs(xs, self.input_size, dtype, name)
        if masks is None:
            if self.mask_zero and xs:
                warnings.warn("this model's inputs come from an embedding whose token 0 is "
                              "padding (mask_zero), but no mask was given: every step is "
                              "used; pass mask= (masks=) to skip the padded steps, as Keras "
                              "does", UserWarning, stacklevel=3)
            return xs, None
        if len(masks) != len(xs):
            raise ValueError(f"masks has {len(masks)} entries for {len(xs)} inputs")
        masks = [V.check_mask(m, len(x), "mask" if name else f"masks[{k}]")
                 for k, (m, x) in enumerate(zip(masks, xs))]
        return [x if m.all() else np.ascontiguousarray(x[m]) for x, m in zip(xs, masks)], masks

    def explain(self, x: ArrayLike, method: str | Sequence[str] = "lrp",
                target: int | None = None, eps: float = 1e-3, bias_factor: float = 0.0,
                gate_rule: str = "signal", sum_rule: str = "epsilon",
                mask: ArrayLike | None = None, backend: str = "cython",
                dtype: DTypeLike = np.float64, n_threads: int | None = 1,
                step: int | None = None) -> Explanation | dict[str, Explanation]:
        """Explain the score of `target` for one input x (T, e) (at `step`,
        for a per-step model).

        method : "lrp" (Layer-wise Relevance Propagation), "sa" (Sensitivity
            Analysis, relevance gradient**2) or "gi" (Gradient x Input), or a
            tuple of them, which shares one forward pass and returns a dict
            {method: Explanation}
        target : class index, or None for the predicted class
        step : per-step models only (pooling "none"; required): the step
            (0 <= step < T) whose score is explained
        eps : LRP stabilizer (> 0), bias_factor : 1.0 redistributes the bias
            and stabilizer shares so relevance is conserved, 0.0 drops them
        gate_rule : how LRP splits the relevance of a product gate * signal
            (i * g, f * c_{t-1}, o * tanh(c_t)); with a = gate, b = signal:
            "signal" (all to the signal; the reference's rule), "half"
            (half each) or "abs" (|a|/(|a|+|b|) to the gate). A gate's
            relevance goes on through its pre-activation to x and h; with
            the epsilon sum rule that amplifies relevance through
            pre-activations near 0 (use sum_rule="abs" with these rules).
            GRU models take "signal" only (their gates get no relevance).
        sum_rule : how LRP splits the relevance of a sum (the cell state
            c_t = f c_{t-1} + i g, the gates' pre-activations, the head's
            Linear layers and pooling) among its terms: "epsilon" (term / (sum + eps sgn(sum)),
            the reference's rule) or "abs" (|term| / (sum of |term| +
            |bias|): shares in [0, 1], so relevance cannot grow along the
            sequence; it takes the sign of the score)
        mask : None, or (T,) bool, True on the steps to use: the others are
            skipped as Keras skips masked steps (the state carried over
            them, padding before or after the text alike), and get
            relevance and gradient exactly 0
        backend : "cython" (compiled kernels) or "numpy" (the plain oracle)
        dtype : np.float64 or np.float32, the precision of the computation
        n_threads : 2 runs the two directions of a bidirectional model on
            two threads (lower latency, same results); None for every core

        x must be finite, each |x| below dtype's largest number divided by
        twice the largest row sum of the first layer's |Wxh| (so that no
        pre-activation can overflow: about 1e306 in float64 and 5e36 in
        float32 for the paper's model); ValueError names an input that is
        not.
        """
        return self.explain_batch((x,), method, None if target is None else (target,),
                                  eps, bias_factor, gate_rule, sum_rule,
                                  None if mask is None else (mask,), n_threads=n_threads,
                                  dtype=dtype, backend=backend,
                                  steps=None if step is None else (step,), _name="x")[0]

    def explain_steps(self, x: ArrayLike, method: str | Sequence[str] = "lrp",
                      mask: ArrayLike | None = None,
                      **kwargs) -> list[Explanation | dict[str, Explanation] | None]:
        """A per-step model's explanation of every step of one input x (T, e),
        each of that step's predicted class, in one batched call: a list of
        T explanations (None at masked steps). kwargs as for explain_batch
        (eps, bias_factor, gate_rule, sum_rule, n_threads, dtype, backend)."""
        if not self.per_step:
            raise ValueError("explain_steps is for per-step models (pooling 'none'); this "
                             f"model pools with {self.pooling!r}: use explain")
        x = V.check_input(x, self.input_size, np.float64, "x")
        T = x.shape[0]
        if mask is None:
            steps = list(range(T))
        else:
            mask = V.check_mask(mask, T, "mask")
            steps = [int(t) for t in np.flatnonzero(mask)]
        results = self.explain_batch([x] * len(steps), method, steps=steps,
                                     masks=None if mask is None else [mask] * len(steps),
                                     _replicas=True, **kwargs)
        out = [None] * T
        for t, result in zip(steps, results):
            out[t] = result
        return out

    def explain_batch(self, xs: Sequence[ArrayLike], method: str | Sequence[str] = "lrp",
                      targets: Sequence[int | None] | None = None, eps: float = 1e-3,
                      bias_factor: float = 0.0, gate_rule: str = "signal",
                      sum_rule: str = "epsilon", masks: Sequence[ArrayLike] | None = None,
                      n_threads: int | None = None, dtype: DTypeLike = np.float64,
                      backend: str = "cython", steps: Sequence[int] | None = None,
                      _name=None, _replicas=False) -> list[Explanation | dict[str, Explanation]]:
        """Explain a list of inputs of any lengths, xs[k] of shape (T_k, e).

        targets: None (each input's predicted class) or one class (or None)
        per input. masks: None or one (T_k,) bool mask per input (see
        explain). steps: per-step models only, one step per input (see
        explain). n_threads: threads across inputs, None for every core.
        Returns a list with one Explanation per input (a dict {method:
        Explanation} per input when `method` is a tuple). The results equal
        one-by-one `explain` calls.
        """
        methods, single = V.check_methods(method)
        dtype = V.check_dtype(dtype)
        eps = V.check_eps(eps)
        bias_factor = V.check_bias_factor(bias_factor)
        rule = V.check_gate_rule(gate_rule)
        sums = V.check_sum_rule(sum_rule)
        if rule and self.cell == "gru":
            raise ValueError(f"gate_rule={gate_rule!r} is defined for LSTM cells; a GRU's "
                             "gates take no relevance (gate_rule='signal')")
        n_threads = V.check_n_threads(n_threads)
        full = xs
        xs, masks = self._check_inputs(xs, masks, dtype, _name)
        B = len(xs)
        if targets is None:
            targets = np.full(B, -1, dtype=np.intp)
        else:
            if len(targets) != B:
                raise ValueError(f"targets has {len(targets)} entries for {B} inputs")
            targets = np.array([V.check_target(t, self.n_classes,
                                               "target" if _name else f"targets[{k}]")
                                for k, t in enumerate(targets)], dtype=np.intp)
        kernel_steps = self._check_steps(steps, xs, masks, _name)
        if B == 0:
            return []
        out = self._compute(xs, targets, kernel_steps, (eps, bias_factor, rule, sums),
                            "lrp" in methods, "sa" in methods or "gi" in methods, n_threads,
                            dtype, backend, _name, _replicas)
        if out["lrp_overflow"]:
            raise FloatingPointError(
                f"LRP relevance overflowed ({np.dtype(dtype).name}) with gate_rule="
                f"{gate_rule!r} and sum_rule={sum_rule!r}: the epsilon rule's shares grow "
                "where the terms of a sum nearly cancel, and multiply along the sequence; "
                "sum_rule='abs' keeps every share within [0, 1]")
        if out["grad_overflow"]:
            raise FloatingPointError(
                f"the gradient overflowed ({np.dtype(dtype).name}): the model's derivative "
                "is larger than the floating-point range"
                + (" (try dtype=np.float64)" if np.dtype(dtype) == np.float32 else ""))
        if "lrp" in methods:
            _warn_amplification(out["amplification"], _name)
        if masks is not None:
            out = _unmask(out, [np.asarray(x, dtype=dtype) for x in full], masks)
        out["steps"] = [int(t) for t in steps] if self.per_step else None
        return _explanations(out, methods, single, (eps, bias_factor, gate_rule, sum_rule))

    def _check_steps(self, steps, xs, masks, name):
        """The validated steps (B,) of a per-step model, counted among the
        unmasked steps (zeros for any other model, which takes none)."""
        B = len(xs)
        if not self.per_step:
            if steps is not None:
                raise ValueError(f"step is for per-step models (pooling 'none'); this model "
                                 f"pools with {self.pooling!r} and has one score per class")
            return np.zeros(B, np.intp)
        if steps is None:
            raise ValueError("this model puts out scores at every step (pooling 'none'): "
                             "give the step to explain (step=t), or use explain_steps")
        if len(steps) != B:
            raise ValueError(f"steps has {len(steps)} entries for {B} inputs")
        out = np.empty(B, np.intp)
        for k, t in enumerate(steps):
            where = "step" if name else f"steps[{k}]"
            T = len(masks[k]) if masks is not None else len(xs[k])
            if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
                raise TypeError(f"{where} must be an int, got {type(t).__name__}")
            if not 0 <= t < T:
                raise ValueError(f"{where} = {t} is out of range for an input of {T} steps")
            if masks is not None:
                if not masks[k][t]:
                    raise ValueError(f"{where} = {t} is a masked step; it has no output")
                t = int(masks[k][:t].sum())
            out[k] = t
        return out

    def _compute(self, xs, targets, steps, lrp, do_lrp, do_grad, n_threads, dtype, backend,
                 name, replicas=False):
        """Run a backend on validated inputs; return its stacked outputs:
        scores (B, C) (of each input's explained step, per-step),
        step_scores (N, C) per-step (else None), targets (B,), offsets
        (B+1,) (xs[k] is row offsets[k] on of the N token rows), xs the
        inputs, relevance and gradient (n_dir, N, e) or None, rest (B,),
        words (3, N), and lrp_overflow, grad_overflow: whether an
        infinity or NaN reached the LRP relevance or the gradient. steps
        (B,): per-step, the step explained; lrp is (eps, bias_factor, gate
        rule number, sum rule number); replicas: every input is a copy of one
        (explain_steps), whose forward pass the kernels then run once a chunk."""
        if backend == "cython":
            out = self._run_kernels(xs, targets, steps, lrp, do_lrp, do_grad, n_threads,
                                    dtype, name, replicas)
        elif backend == "numpy":
            out = self._run_oracle(xs, targets, steps, lrp, do_lrp, do_grad, name)
        else:
            raise ValueError(f"unknown backend {backend!r}: expected 'cython' or 'numpy'")
        if self.per_step:
            out["step_scores"] = out["scores"]
            out["scores"] = out["scores"][out["offsets"][:-1] + steps]
        else:
            out["step_scores"] = None
        out["amplification"] = _amplification(out.pop("mass"), out["rest"], out["scores"],
                                               out["targets"])
        return out

    def _run_kernels(self, xs, targets, steps, lrp, do_lrp, do_grad, n_threads, dtype, name,
                     replicas):
        sum_abs = do_lrp and V.SUM_RULES[lrp[3]] == "abs"
        # the abs rule reads the absolute weights behind the weights
        params, layout, head, linear, attention = self._kernel_arrays(dtype, absolute=sum_abs)
        B = len(xs)
        offsets = _offsets(xs)
        n_dir, e, N = len(self.layers[0]), self.input_size, int(offsets[-1])
        scores = np.empty((N if self.per_step else B, self.n_classes), dtype)
        relevance = _output((n_dir, N, e) if do_lrp else (1, 1, 1), dtype)
        gradient = _output((n_dir, N, e) if do_grad else (1, 1, 1), dtype)
        rest = np.zeros(B, dtype)
        words = np.empty((len(_WORD_ROW), N), dtype)
        mass = np.zeros(B, dtype)
        gru = self.cell == "gru"
        itemsize = np.dtype(dtype).itemsize
        if B == 1:      # one input: one chunk, its directions on up to n_threads threads
            order, chunks = _ONE_CHUNK
            # a thread started per layer pass pays only for enough work
            if N * self._work_per_token < _THREAD_MIN_WORK:
                n_threads = 1
            n_threads = min(n_threads, n_dir)
            work = _workspace(1, _kernels.workspace_size(layout, gru, 1, N, itemsize), dtype)
        else:
            order, chunks, tokens = _chunks(np.diff(offsets), _CHUNK_SIZE,
                                            self._chunk_tokens(layout, dtype))
            n_threads = min(n_threads, len(chunks) - 1)
            size = max(_kernels.workspace_size(layout, gru, int(b - a), int(n), itemsize)
                       for a, b, n in zip(chunks[:-1], chunks[1:], tokens))
            work = _workspace(n_threads, size, dtype)
        try:
            with _blas_single_threaded(N if sum_abs else 0):
                _kernels.explain(params=params, layout=layout, gru=gru, head=head,
                                 linear=linear, attention=attention,
                                 pooling=heads.POOLINGS.index(self.pooling), xs=xs,
                                 input_scale=self._scale(dtype), offsets=offsets,
                                 order=order, chunks=chunks, targets=targets, steps=steps,
                                 eps=lrp[0], bias_factor=lrp[1],
                                 gate_rule=lrp[2], sum_abs=sum_abs, do_lrp=do_lrp,
                                 do_grad=do_grad, replicas=replicas, scores=scores,
                                 relevance=relevance, rest=rest, gradient=gradient,
                                 words=words, mass=mass, work=work, n_threads=n_threads)
        except _kernels.NonFiniteInput as err:
            k = int(np.searchsorted(offsets, err.row, side="right")) - 1
            raise _input_error(xs[k], name or f"xs[{k}]", self._scale(dtype)) from None
        return {"scores": scores, "targets": targets, "offsets": offsets, "xs": xs,
                "relevance": relevance if do_lrp else None, "rest": rest,
                "gradient": gradient if do_grad else None, "words": words, "mass": mass,
                "lrp_overflow": do_lrp and not (np.isfinite(mass).all()
                                                and np.isfinite(rest).all()),
                "grad_overflow": do_grad and not np.isfinite(words[_WORD_ROW["sa"]]).all()}

    def _chunk_tokens(self, layout, dtype):
        """The most tokens a chunk of this model holds in dtype (see _chunks)."""
        itemsize = np.dtype(dtype).itemsize
        per_token = (_kernels.workspace_size(layout, self.cell == "gru", 1, 1, itemsize)
                     * itemsize)
        return max(1, min(_CHUNK_TOKENS, _CHUNK_BYTES // per_token))

    def _scale(self, dtype):
        """_input_scale in dtype's range."""
        return min(self._input_scale, float(np.finfo(dtype).max))

    def _run_oracle(self, xs, targets, steps, lrp, do_lrp, do_grad, name):
        dtype = xs[0].dtype
        scale = dtype.type(self._scale(dtype))
        for k, x in enumerate(xs):
            with np.errstate(over="ignore", invalid="ignore"):
                refused = not np.isfinite(scale * x).all()
            if refused:
                raise _input_error(x, name or f"xs[{k}]", scale)
        layers = [[{k: a.astype(dtype) for k, a in w.items()} for w in layer]
                  for layer in self.layers]
        nets = [None if net is None else
                [dict(la, W=la["W"].astype(dtype), b=la["b"].astype(dtype)) for la in net]
                for net in (self.head, self.attention)]
        eps, bias_factor, rule, sums = lrp
        results = [oracle.explain(layers, oracle.Head(self.pooling, *nets), x, int(t),
                                  dtype.type(eps), dtype.type(bias_factor), V.GATE_RULES[rule],
                                  do_lrp, do_grad, self.cell, V.SUM_RULES[sums], int(step))
                   for x, t, step in zip(xs, targets, steps)]
        offsets = _offsets(xs)
        out = {"scores": np.concatenate([np.atleast_2d(r["scores"]) for r in results]),
               "targets": np.array([r["target"] for r in results], dtype=np.intp),
               "offsets": offsets, "xs": xs,
               "relevance": (np.concatenate([r["relevance"] for r in results], axis=1)
                             if do_lrp else None),
               "rest": np.array([r.get("rest", 0) for r in results], dtype=dtype),
               "gradient": (np.concatenate([r["gradient"] for r in results], axis=1)
                            if do_grad else None),
               "words": np.zeros((len(_WORD_ROW), offsets[-1]), dtype),
               "mass": np.array([r.get("mass", 0) for r in results], dtype=dtype)}
        for m, row in _WORD_ROW.items():
            if m in results[0]["words"]:
                out["words"][row] = np.concatenate([r["words"][m] for r in results])
        # an infinity or NaN anywhere in the relevance or gradient reaches these sums
        out["lrp_overflow"] = do_lrp and not np.isfinite(
            out["rest"].sum() + out["words"][_WORD_ROW["lrp"]].sum())
        out["grad_overflow"] = do_grad and not np.isfinite(out["words"][_WORD_ROW["sa"]]).all()
        return out


BiLSTM = RecurrentModel     # the name of earlier versions


def random_weights(rng, e, d, C, bidirectional=True, bias=False, n_layers=1, cell="lstm",
                   bias_std=0.5):
    """The from_dict weights of a random model (for tests, benchmarks and
    trying things out): weights ~ N(0, 1/fan_in), biases ~ N(0, bias_std),
    drawn from the NumPy Generator rng; d: one hidden size for every layer,
    or one per layer; bias: an output bias bhy."""
    sizes = [d] * n_layers if np.ndim(d) == 0 else list(d)
    arrays = {}
    sides = _SIDES if bidirectional else _SIDES[:1]
    for layer, d_l in enumerate(sizes):
        G = len(V.CELLS[cell]) * d_l
        e_l = e if layer == 0 else len(sides) * sizes[layer - 1]
        suffix = f"_l{layer}" if layer else ""
        for side in sides:
            arrays[f"Wxh_{side}{suffix}"] = rng.normal(0, 1 / np.sqrt(e_l), (G, e_l))
            arrays[f"bxh_{side}{suffix}"] = rng.normal(0, bias_std, G)
            arrays[f"Whh_{side}{suffix}"] = rng.normal(0, 1 / np.sqrt(d_l), (G, d_l))
            arrays[f"bhh_{side}{suffix}"] = rng.normal(0, bias_std, G)
    for side in sides:
        arrays[f"Why_{side}"] = rng.normal(0, 1 / np.sqrt(sizes[-1]), (C, sizes[-1]))
    if bias:
        arrays["bhy"] = rng.normal(0, bias_std, C)
    return arrays


def _head_from_dict(arrays, net):
    """The layers of `net` ("head" or "attention") as to_dict stores them,
    as the constructor takes them (None when absent), and the keys used."""
    n = 0
    while f"{net}_W{n}" in arrays:
        n += 1
    if not n:
        return None, set()
    key = f"{net}_activations"
    activations = [str(a) for a in np.atleast_1d(arrays.get(key, ()))]
    if len(activations) != n:
        raise ValueError(f"{key} must name one activation for each of the {n} layers "
                         f"{net}_W0 ...")
    spec = []
    for i, activation in enumerate(activations):
        spec.append((arrays[f"{net}_W{i}"], arrays.get(f"{net}_b{i}")))
        spec.append(activation)
    return spec, ({f"{net}_W{i}" for i in range(n)} | {f"{net}_b{i}" for i in range(n)}
                  | {key})


def _offsets(xs):
    """(B+1,): where each input's rows begin among all N, end to end."""
    return np.fromiter(itertools.accumulate(map(len, xs), initial=0), np.intp, len(xs) + 1)


# the lockstep plan: chunks of _CHUNK_SIZE sequences on average, at most
# _CHUNK_TOKENS tokens and about _CHUNK_BYTES of workspace (so that the
# workspaces of two threads stay within _CACHED_WORKSPACE and are reused,
# not allocated and zeroed by the OS on every call); at least _MIN_CHUNKS
# of them while there are enough sequences, and an even number, so that
# threads have equal work. Smaller chunks keep the states that the backward
# passes read back closer to the core, and let threads balance the load;
# larger ones read the weights from cache fewer times per row. Measured in
# benchmarks/README.md.
_CHUNK_SIZE = 16
_CHUNK_TOKENS = 8192
_CHUNK_BYTES = 96 << 20
_MIN_CHUNKS = 2


_ONE_CHUNK = (np.zeros(1, np.intp), np.array((0, 1), np.intp))
# multiply-adds of one direction's forward pass below which one input's two
# directions stay on one thread (starting a thread costs tens of microseconds)
_THREAD_MIN_WORK = 2_000_000


def _chunks(lengths, size, max_tokens):
    """The kernels' lockstep plan for sequences of the given lengths (B,):
    order (B,), the sequences longest first (ties in input order); bounds
    (n_chunks+1,), chunk i being order[bounds[i]:bounds[i+1]], cut where the
    chunks hold about equal numbers of tokens; and each chunk's tokens
    (n_chunks,). There are enough chunks for `size` sequences a chunk on
    average and at most about `max_tokens` tokens each (more only for a
    longer sequence), so chunks of short sequences hold more of them. It
    depends on the lengths and the model alone, never on the number of
    threads, so results do not either."""
    B = len(lengths)
    order = np.argsort(-lengths, kind="stable").astype(np.intp)
    tokens = np.cumsum(lengths[order])
    n_chunks = max(-(-B // size), -(-int(tokens[-1]) // max_tokens),
                   min(B, _MIN_CHUNKS))
    n_chunks = min(n_chunks + n_chunks % 2, B)      # even: two threads get equal shares
    cuts = np.searchsorted(tokens, tokens[-1] * np.arange(1, n_chunks) / n_chunks) + 1
    bounds = np.concatenate(([0], cuts, [B]))
    # every chunk non-empty
    bounds = np.maximum(bounds, np.arange(n_chunks + 1))
    bounds = np.minimum(bounds, B - n_chunks + np.arange(n_chunks + 1))
    return order, bounds.astype(np.intp), np.diff(np.concatenate(([0], tokens))[bounds])


_workspaces = threading.local()
_CACHED_WORKSPACE = 256 << 20     # bytes a calling thread keeps between calls


def _workspace(n_rows, size, dtype):
    """An uninitialized (n_rows, size) workspace; up to _CACHED_WORKSPACE bytes
    are kept per calling thread for its next call (fresh pages cost more
    than the explanation of a short batch)."""
    cached = getattr(_workspaces, "array", None)
    if (cached is not None and cached.dtype == dtype and cached.shape[0] >= n_rows
            and cached.shape[1] >= size):
        return cached
    work = _layout.aligned_empty((n_rows, size), dtype)     # size: a multiple of 16 entries
    if work.nbytes <= _CACHED_WORKSPACE:
        _workspaces.array = work
    return work


# Large outputs (LRP's relevance and the gradient, of which a float64 SST
# test set has 40 MB each) are placed in anonymous memory that the pool
# keeps for later calls once every array viewing it is gone: fresh memory
# comes from the OS, which zeroes each page at its first touch (2.5 % of
# that test set's LRP time). The pool keeps at most _POOL_BYTES.
_POOLED_OUTPUT = 1 << 19      # entries from which an output is pooled (4 MiB of float64)
_POOL_BYTES = 256 << 20
_pool = []


def _output(shape, dtype):
    """An uninitialized C-contiguous array for one of a call's outputs."""
    n = math.prod(shape)
    if n < _POOLED_OUTPUT:
        return np.empty(shape, dtype)
    nbytes = n * np.dtype(dtype).itemsize
    fits = [m for m in _pool if nbytes <= len(m) <= 2 * nbytes]
    memory = min(fits, key=len) if fits else None
    if memory is not None:
        try:
            _pool.remove(memory)
        except ValueError:      # another thread took it
            memory = None
    if memory is None:          # private: a forked process writes to its own copy
        memory = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE)
    # the memory returns to the pool when out dies, which its views keep
    # alive: numpy's views refer to out, the last array before a base that
    # is not an array
    out = np.ndarray(shape, dtype, buffer=memory)
    weakref.finalize(out, _recycle, memory).atexit = False
    return out


def _recycle(memory):
    """Keep the memory of a dead output for a later _output, within _POOL_BYTES."""
    if sum(map(len, _pool)) + len(memory) <= _POOL_BYTES:
        _pool.append(memory)


def release_memory() -> None:
    """Give back the memory that calls keep for later ones: the pool's
    output memory that no array uses any more (up to 256 MiB) and the
    calling thread's workspace (up to 256 MiB; other threads keep theirs
    until they call this or end). Arrays still in use are untouched; the
    next call allocates afresh."""
    _pool.clear()
    _workspaces.__dict__.pop("array", None)


_blas_limiter = None


def _blas_single_threaded(n_rows):
    """A context in which SciPy's BLAS runs on the calling thread only (our
    threads split the work); a no-op for inputs too small to reach BLAS.
    Only the abs sum rule's products reach it (pass 0 otherwise): leaving
    the context gives BLAS back its threads, which then spin for a while,
    on the cores our threads need."""
    global _blas_limiter
    if n_rows < _kernels.blas_min_rows:
        return contextlib.nullcontext()
    if _blas_limiter is None:
        import threadpoolctl
        _kernels.load_blas()    # (SciPy's BLAS, loaded first: the controller lists it)
        _blas_limiter = threadpoolctl.ThreadpoolController()
    return _blas_limiter.limit(limits=1, user_api="blas")


def _unmask(out, xs, masks):
    """A backend's outputs for inputs with masked steps removed, put back
    at full length: the masked steps' rows of relevance, gradient and the
    word-level sums are 0; xs are the full inputs."""
    keep = np.concatenate(masks)
    full = dict(out, xs=xs, offsets=_offsets(xs))
    for key in ("relevance", "gradient"):
        if out[key] is not None:
            full[key] = np.zeros((out[key].shape[0], len(keep), out[key].shape[2]),
                                 out[key].dtype)
            full[key][:, keep] = out[key]
    full["words"] = np.zeros((3, len(keep)), out["words"].dtype)
    full["words"][:, keep] = out["words"]
    return full


def _input_error(x, where, scale):
    """The ValueError for an input x (T, e) that the backends refuse, named
    `where`: one holding NaN or infinity (in x's dtype, after any
    conversion), or values whose product with scale overflows (see
    RecurrentModel._input_scale)."""
    converted = " (after conversion to float32)" if x.dtype == np.float32 else ""
    if not np.isfinite(x).all():
        return ValueError(f"{where} contains NaN or infinity{converted}")
    return ValueError(f"{where} holds values up to {float(np.abs(x).max()):.3g}, too large "
                      f"for {x.dtype.name}: the model's first layer could overflow (it takes "
                      f"inputs below {float(np.finfo(x.dtype).max) / float(scale):.3g})")


def _amplification(mass, rest, scores, targets):
    """(B,) (sum |R| + |rest|) / |score of the target| of each input (a zero
    score: inf, or NaN for 0 / 0, in both branches)."""
    if len(targets) == 1:
        score = abs(float(scores[0, targets[0]]))
        total = float(mass[0]) + abs(float(rest[0]))
        return np.array([total / score if score else
                         (float("inf") if total else float("nan"))])
    score = np.abs(scores[np.arange(len(targets)), targets]).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (mass + np.abs(rest)) / score


def _warn_amplification(amplification, name):
    """One AmplificationWarning for the inputs above the threshold."""
    if not amplification.max() > AmplificationWarning.threshold:
        return
    over = np.flatnonzero(amplification > AmplificationWarning.threshold)
    worst = float(amplification[over].max())
    what = (name or "the input") if len(amplification) == 1 else (
        f"{len(over)} of {len(amplification)} inputs (xs[{', '.join(map(str, over[:10]))}"
        + (", ...]" if len(over) > 10 else "]") + ")")
    # point the warning at the first caller outside this package
    level, frame = 1, sys._getframe(0)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(f"LRP relevance of {what} is amplified up to {worst:.3g}x its score "
                  f"(AmplificationWarning.threshold = {AmplificationWarning.threshold:g}); "
                  "see the README on long inputs", AmplificationWarning, stacklevel=level)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_WORD_ROW = {m: k for k, m in enumerate(_kernels.WORD_ROWS)}


def _explanations(out, methods, single, lrp):
    """Split a backend's stacked outputs into Explanations (a few numpy
    slices each: per input, this is most of the Python time of a batch)."""
    offsets = out["offsets"].tolist()
    spans = [slice(a, b) for a, b in zip(offsets, offsets[1:])]

    def split(a):
        """Each input's rows of a (N, ...), or a None for each when a is None."""
        return [None] * len(spans) if a is None else [a[span] for span in spans]

    scores, targets = list(out["scores"]), out["targets"].tolist()
    steps = [None] * len(targets) if out["steps"] is None else out["steps"]
    # each direction's (N, e) parts, split once: LRP's relevance, SA's and GI's gradient
    parts = {}
    for key in {"relevance" if m == "lrp" else "gradient" for m in methods}:
        fwd, *bwd = out[key]
        parts[key] = split(fwd), split(bwd[0] if bwd else None)
    columns = []
    for m in methods:
        common = zip(targets, scores, split(out["words"][_WORD_ROW[m]]),
                     *parts["relevance" if m == "lrp" else "gradient"])
        if m == "lrp":
            columns.append([
                Explanation(m, *c, relevance_rest=r, lrp=lrp, amplification=a, step=t)
                for c, r, a, t in zip(common, out["rest"].tolist(),
                                      out["amplification"].tolist(), steps)])
        else:
            # GI's relevance, gradient * x, is computed when asked for: from a copy
            xs = split(np.concatenate(out["xs"]) if m == "gi" else None)
            columns.append([Explanation(m, *c, x, step=t)
                            for c, x, t in zip(common, xs, steps)])
    if single:
        return columns[0]
    return [dict(zip(methods, expls)) for expls in zip(*columns)]
