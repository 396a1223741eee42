"""The head of a recurrent model: pooling over the top layer's states, then
Linear layers (an MLP) to the scores.

A head is given as a list of Linear layers and activations, e.g.
``[(W1, b1), "relu", (W2, b2)]``: each Linear layer a (W (n_out, n_in),
b (n_out,)) pair or a mapping with "W" and "b" (b may be None), each
activation one of ACTIVATIONS between two Linear layers. The attention net
of attention pooling is given the same way and ends in one output, e.g.
``[(w, b)]`` or ``[(W1, b1), "tanh", (w2, b2)]``. The kernels' maths is in
cython/_kernels.pyx (head_forward), the oracle's in oracle.py.
"""
from __future__ import annotations

import numpy as np

from ._native import kernels as _kernels
from . import _layout
from . import _validation as V

POOLINGS = _kernels.POOLINGS          # ("last", "mean", "max", "attention", "none")
ACTIVATIONS = _kernels.ACTIVATIONS    # ("identity", "relu", "tanh")


def check_pooling(pooling):
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}: expected one of {POOLINGS}")
    return pooling


def check_layers(spec, name, n_in, n_out=None):
    """Validate a list of Linear layers and activations reading n_in
    features (n_out: the size the last layer must put out, if fixed).
    Returns [{"W": (n_out, n_in), "b": (n_out,), "activation": str}], each
    layer with the activation that follows it ("identity" for the last)."""
    if isinstance(spec, (str, bytes)) or not hasattr(spec, "__iter__"):
        raise TypeError(f"{name} must be a list of Linear layers ((W, b) pairs) and "
                        f"activation names, got {type(spec).__name__}")
    layers = []
    for k, item in enumerate(spec):
        where = f"{name}[{k}]"
        if isinstance(item, str):
            if item not in ACTIVATIONS:
                raise ValueError(f"{where}: unknown activation {item!r}: expected one of "
                                 f"{ACTIVATIONS}")
            if item == "identity":
                continue
            if not layers or layers[-1]["activation"] != "identity":
                raise ValueError(f"{where}: the activation {item!r} must follow a Linear layer")
            layers[-1]["activation"] = item
            continue
        if hasattr(item, "keys"):
            W, b = item["W"], item.get("b")
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            W, b = item
        else:
            raise TypeError(f"{where} must be a (W, b) pair, a mapping with W and b, or an "
                            f"activation name, got {type(item).__name__}")
        W = np.array(V.as_float_array(W, f"{where} W", 2), dtype=np.float64, order="C")
        rows = W.shape[0]
        b = (np.zeros(rows) if b is None
             else np.array(V.as_float_array(b, f"{where} b", 1), dtype=np.float64))
        V.check_shape(W, f"{where} W", (rows, n_in))
        V.check_shape(b, f"{where} b", (rows,))
        if rows < 1:
            raise ValueError(f"{where} W must have at least one row, got shape {W.shape}")
        for a in (W, b):
            a.setflags(write=False)
        layers.append({"W": W, "b": b, "activation": "identity"})
        n_in = rows
    if not layers:
        raise ValueError(f"{name} has no Linear layer")
    if layers[-1]["activation"] != "identity":
        raise ValueError(f"{name} ends with the activation {layers[-1]['activation']!r}: its "
                         "last Linear layer's outputs are the scores (the model's output "
                         "handles softmax or sigmoid)")
    if n_out is not None and n_in != n_out:
        raise ValueError(f"{name} must end in {n_out} output(s), got {n_in}")
    return layers


def pack(head, attention, dtype, width):
    """The head's parameters for the kernels: flat params (see
    _layout.place), and the tables of the head's and the attention net's
    layers (n, LAYER_ROW): n_in, n_out, the activation's number, and the
    offsets in params of W (n_out, n_in), b, W^T (n_in, n_out), W^T in
    panels of `width` columns (_layout.panels), for the products of one
    row and of several, |W| and |W|^T (the abs rule's)."""
    parts, tables = [], []
    for layers in (head, attention or []):
        table = []
        for layer in layers:
            W = layer["W"]
            table.append((W.shape[1], W.shape[0], ACTIVATIONS.index(layer["activation"]),
                          len(parts)))
            abs_W = np.abs(W)
            parts += [W, layer["b"], W.T, _layout.panels(W.T, width), abs_W, abs_W.T]
        tables.append(table)
    params, offsets = _layout.place(parts, dtype)
    return params, *(np.array([(n_in, n_out, act, *offsets[k:k + 6])
                               for n_in, n_out, act, k in table],
                              dtype=np.intp).reshape(-1, _kernels.LAYER_ROW)
                     for table in tables)
