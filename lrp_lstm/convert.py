"""Models from other frameworks: PyTorch and Keras (each imported only by
the function that needs it)."""
from __future__ import annotations

import numpy as np

from .model import RecurrentModel


def torch_names(params, n_layers, bidirectional, first_layer=0):
    """Our from_dict names for the parameters of one PyTorch nn.LSTM or nn.GRU.

    params: {PyTorch name: array}, as module.named_parameters() names them
    (weight_ih_l0, bias_hh_l1_reverse, ...); missing biases (bias=False)
    become zeros. Its layers become ours from first_layer on (a chain of
    modules). The gate order stays PyTorch's (LSTM "ifgo", GRU "rzn").
    """
    arrays = {}
    for layer in range(n_layers):
        ours = first_layer + layer
        suffix = f"_l{ours}" if ours else ""
        for side, reverse in zip(("Left", "Right")[:2 if bidirectional else 1],
                                 ("", "_reverse")):
            theirs = f"_l{layer}{reverse}"
            arrays[f"Wxh_{side}{suffix}"] = params[f"weight_ih{theirs}"]
            arrays[f"Whh_{side}{suffix}"] = params[f"weight_hh{theirs}"]
            rows = params[f"weight_hh{theirs}"].shape[0]
            for key, bias in (("bxh", "bias_ih"), ("bhh", "bias_hh")):
                arrays[f"{key}_{side}{suffix}"] = params.get(f"{bias}{theirs}", np.zeros(rows))
    return arrays


def from_torch(rnn, head, embedding=None, pooling="last",
               attention=None) -> RecurrentModel | tuple[RecurrentModel, np.ndarray]:
    """A RecurrentModel from a PyTorch `nn.LSTM` or `nn.GRU` (or a chain of
    them) and the head on its states.

    rnn: an nn.LSTM or nn.GRU (any number of layers, bidirectional or not,
    batch_first either way, with or without biases; its dropout between
    layers is ignored, as in evaluation mode), or a list or tuple of them
    where each reads the output sequence of the one before (each may have
    its own hidden size; all of one cell and direction count).
    pooling: how the top layer's output sequence (T, n_dir d) becomes the
    head's input (see RecurrentModel): "last" (the final hidden state of
    the forward direction, followed by the backward direction's, as h_n
    holds them), "mean", "max", "attention" or "none" (the head at every
    step, as for a tagger).
    head: an nn.Linear, or an nn.Sequential of Linear, ReLU, Tanh, Dropout
    and Identity (Dropout ignored, as in evaluation mode).
    attention: for pooling "attention", the net that scores each step, in
    the same form, ending in one output: nn.Linear(D, 1) or
    nn.Sequential(nn.Linear(D, A), nn.Tanh(), nn.Linear(A, 1)).
    embedding: optional nn.Embedding.
    Returns the model (float64; cell "gru" for nn.GRU), or (model,
    embeddings (V, e)) when an embedding is given. PyTorch's LSTM gate
    order i, f, g, o is converted; its GRU order r, z, n is ours.
    """
    import torch
    from torch import nn

    chain = list(rnn) if isinstance(rnn, (list, tuple)) else [rnn]
    if not chain:
        raise ValueError("rnn is an empty chain: give an nn.LSTM or nn.GRU")
    for k, module in enumerate(chain):
        where = "rnn" if len(chain) == 1 else f"rnn[{k}]"
        if not isinstance(module, (nn.LSTM, nn.GRU)):
            raise TypeError(f"{where} must be a torch.nn.LSTM or torch.nn.GRU, "
                            f"got {type(module).__name__}")
        if getattr(module, "proj_size", 0):
            raise ValueError(f"{where}: nn.LSTM with proj_size > 0 is not supported")
        if type(module) is not type(chain[0]) or module.bidirectional != chain[0].bidirectional:
            raise ValueError(f"{where}: every module of the chain must be an "
                             f"{type(chain[0]).__name__} with bidirectional="
                             f"{chain[0].bidirectional}, like rnn[0]")
        below = (2 if module.bidirectional else 1) * chain[k - 1].hidden_size if k else None
        if k and module.input_size != below:
            raise ValueError(f"{where} reads {module.input_size} features, but rnn[{k - 1}] "
                             f"puts out {below}")
    cell = "gru" if isinstance(chain[0], nn.GRU) else "lstm"
    name = type(chain[0]).__name__

    def array(t):
        return t.detach().to(torch.float64).cpu().numpy()

    def layers_of(net, what):
        """A Linear or Sequential as the list RecurrentModel takes."""
        modules = list(net) if isinstance(net, nn.Sequential) else [net]
        spec = []
        for k, module in enumerate(modules):
            if isinstance(module, nn.Linear):
                spec.append((array(module.weight),
                             None if module.bias is None else array(module.bias)))
            elif isinstance(module, (nn.ReLU, nn.Tanh)):
                spec.append("relu" if isinstance(module, nn.ReLU) else "tanh")
            elif not isinstance(module, (nn.Dropout, nn.Identity)):
                where = what if net is module else f"{what}[{k}]"
                raise TypeError(f"{where} is a {type(module).__name__}: {what} must be an "
                                "nn.Linear or an nn.Sequential of Linear, ReLU, Tanh, "
                                "Dropout and Identity")
        if not any(isinstance(m, nn.Linear) for m in modules):
            raise TypeError(f"{what} must be an nn.Linear or an nn.Sequential with at least "
                            f"one Linear, got {type(net).__name__}")
        return spec

    D = (2 if chain[0].bidirectional else 1) * chain[-1].hidden_size
    spec = layers_of(head, "head")
    if spec[0][0].shape[1] != D:
        source = "final states have" if pooling == "last" else "output sequence has"
        raise ValueError(f"head takes {spec[0][0].shape[1]} features, but the {name}'s "
                         f"{source} {D}")
    arrays = {}
    for k, module in enumerate(chain):
        params = {name: array(p) for name, p in module.named_parameters()}
        arrays |= torch_names(params, module.num_layers, module.bidirectional,
                              first_layer=sum(m.num_layers for m in chain[:k]))
    model = RecurrentModel.from_dict(arrays, gate_order="ifgo" if cell == "lstm" else "rzn",
                                     cell=cell, pooling=pooling, head=spec,
                                     attention=None if attention is None
                                     else layers_of(attention, "attention"))
    if embedding is None:
        return model
    if not isinstance(embedding, nn.Embedding):
        raise TypeError(f"embedding must be a torch.nn.Embedding, got {type(embedding).__name__}")
    if embedding.embedding_dim != model.input_size:
        raise ValueError(f"embedding has dimension {embedding.embedding_dim}, the {name} "
                         f"reads {model.input_size}")
    return model, array(embedding.weight)


def from_keras(model) -> RecurrentModel | tuple[RecurrentModel, np.ndarray]:
    """A RecurrentModel from a Keras `Sequential` (or a functional Model that
    is a chain of layers).

    The chain: an Embedding (optional, first); LSTM or GRU layers, each
    possibly wrapped in Bidirectional; then, when the last of them returns
    sequences, GlobalAveragePooling1D (pooling "mean"), GlobalMaxPooling1D
    ("max") or nothing (a per-step model, pooling "none"); then Dense
    layers (TimeDistributed(Dense) alike). Dropout layers are ignored, as in
    inference.

    Every recurrent layer below the last must return sequences, and all
    must be of one kind; each may have its own size. Bidirectional layers
    must concatenate (merge_mode "concat"); the cells must use the standard
    activations (tanh, sigmoid); a GRU must use reset_after=True (the Keras
    3 default, and PyTorch's equations). Dense layers before the last may
    use relu, tanh or linear; the last may be linear, softmax, or sigmoid
    with one unit (output="sigmoid"): the model explains its pre-activation
    scores (logits). An Embedding with mask_zero=True gives a model with
    mask_zero, which skips token id 0 as Keras does. Keras's gate orders
    (i, f, c, o; z, r, h) and bias layout are converted. Returns the model
    (float64), or (model, embeddings (V, e)) when the chain starts with an
    Embedding. Anything else is refused with a ValueError naming the layer
    and what is supported.
    """
    import keras

    def named(layer):
        return f"layer {layer.name!r} ({type(layer).__name__})"

    supported = ("from_keras reads a Sequential of Embedding (first), LSTM, GRU or "
                 "Bidirectional(LSTM or GRU) layers, then GlobalAveragePooling1D or "
                 "GlobalMaxPooling1D (optional), then Dense or TimeDistributed(Dense) "
                 "layers, with Dropout anywhere")
    poolings = {keras.layers.GlobalAveragePooling1D: "mean",
                keras.layers.GlobalMaxPooling1D: "max"}
    # the input layer of a functional chain, and Dropout, do nothing at inference
    layers = [layer for layer in model.layers
              if not isinstance(layer, (keras.layers.Dropout, keras.layers.InputLayer))]
    if not layers:
        raise ValueError("the Keras model has no layers: " + supported)
    embedding = layers[0] if isinstance(layers[0], keras.layers.Embedding) else None
    if embedding is not None:
        layers = layers[1:]

    def cell_of(layer):
        inner = layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
        for kind, cls in (("lstm", keras.layers.LSTM), ("gru", keras.layers.GRU)):
            if isinstance(inner, cls):
                return kind
        return None

    def dense_of(layer):
        if isinstance(layer, keras.layers.TimeDistributed):
            layer = layer.layer
        return layer if isinstance(layer, keras.layers.Dense) else None

    # the chain's parts: recurrent layers, a pooling layer, Dense layers
    n_rnn = 0
    while n_rnn < len(layers) and cell_of(layers[n_rnn]) is not None:
        n_rnn += 1
    recurrent, top = layers[:n_rnn], layers[n_rnn:]
    pool_layer = top[0] if top and type(top[0]) in poolings else None
    denses = top[1:] if pool_layer is not None else top
    for layer in denses:
        if dense_of(layer) is None:
            where = ("an Embedding must come first"
                     if isinstance(layer, keras.layers.Embedding)
                     else "a pooling layer must follow the last recurrent layer"
                     if type(layer) in poolings
                     else "recurrent layers must come before pooling and Dense layers"
                     if cell_of(layer) else "it is not supported")
            raise ValueError(f"{named(layer)}: {where}; {supported}")
    if not recurrent:
        first = layers[0] if layers else None
        raise ValueError(f"no LSTM or GRU layer before {named(first)}; {supported}"
                         if dense_of(first) is not None or type(first) in poolings
                         else "there is no recurrent layer; " + supported)
    if not denses:
        raise ValueError(f"the last {named(layers[-1])} is not a Dense layer; {supported}")
    cell = cell_of(recurrent[0])
    last_rnn = recurrent[-1].forward_layer if isinstance(
        recurrent[-1], keras.layers.Bidirectional) else recurrent[-1]
    if pool_layer is not None:
        pooling = poolings[type(pool_layer)]
    else:
        pooling = "none" if last_rnn.return_sequences else "last"
    head = []
    for k, layer in enumerate(denses):
        dense = dense_of(layer)
        activation = dense.activation.__name__
        last = k == len(denses) - 1
        allowed = ("linear", "softmax", "sigmoid") if last else ("linear", "relu", "tanh")
        if activation not in allowed:
            raise ValueError(
                f"{named(layer)}: activation {activation!r} is not supported "
                + ("on the last Dense layer: use 'linear', 'softmax' or 'sigmoid' (one unit)"
                   if last else "before the last Dense layer: use 'relu', 'tanh' or "
                   "'linear'"))
        if activation == "sigmoid" and dense.units != 1:
            raise ValueError(f"{named(layer)}: a sigmoid output must have one unit, got "
                             f"{dense.units} (use softmax for several classes)")
        kernel, *bias = dense.get_weights()
        head.append((kernel.T.astype(np.float64),
                     bias[0].astype(np.float64) if bias else None))
        if not last and activation != "linear":
            head.append(activation)
    output = "sigmoid" if activation == "sigmoid" else "softmax"

    def rnn_arrays(layer):
        if layer.activation.__name__ != "tanh" or \
                layer.recurrent_activation.__name__ != "sigmoid":
            raise ValueError(f"{named(layer)} must use tanh and sigmoid activations")
        if layer.stateful:
            raise ValueError(f"{named(layer)} is stateful; only stateless layers are supported")
        if cell == "gru" and not layer.reset_after:
            raise ValueError(f"{named(layer)}: a GRU needs reset_after=True (PyTorch's "
                             "equations, the Keras 3 default)")
        weights = layer.get_weights()
        G = weights[1].shape[1]
        bias = weights[2] if layer.use_bias else np.zeros((2, G) if cell == "gru" else G)
        if cell == "gru":   # (2, 3d): input bias, recurrent bias
            bxh, bhh = bias
        else:
            bxh, bhh = bias, np.zeros(G)
        return {"Wxh": weights[0].T.astype(np.float64),
                "Whh": weights[1].T.astype(np.float64),
                "bxh": np.asarray(bxh, dtype=np.float64),
                "bhh": np.asarray(bhh, dtype=np.float64)}

    arrays = {}
    bidirectional = isinstance(recurrent[0], keras.layers.Bidirectional)
    for k, layer in enumerate(recurrent):
        last = k == len(recurrent) - 1
        suffix = f"_l{k}" if k else ""
        if cell_of(layer) != cell:
            raise ValueError(f"{named(layer)}: all recurrent layers must be "
                             f"{cell.upper()}s, like the first")
        if isinstance(layer, keras.layers.Bidirectional) != bidirectional:
            raise ValueError(f"{named(layer)}: all recurrent layers must be Bidirectional, "
                             "or none")
        if bidirectional:
            if layer.merge_mode != "concat":
                raise ValueError(f"{named(layer)}: merge_mode must be 'concat', "
                                 f"got {layer.merge_mode!r}")
            pairs = (("Left", layer.forward_layer), ("Right", layer.backward_layer))
        else:
            if getattr(layer, "go_backwards", False):
                raise ValueError(f"{named(layer)} reads the sequence backwards; only "
                                 "Bidirectional layers may")
            pairs = (("Left", layer),)
        for side, rnn in pairs:
            if not last and not rnn.return_sequences:
                raise ValueError(f"{named(layer)}: recurrent layers below the last must "
                                 "return sequences")
            for key, value in rnn_arrays(rnn).items():
                arrays[f"{key}_{side}{suffix}"] = value
    result = RecurrentModel.from_dict(arrays, gate_order="ifco" if cell == "lstm" else "zrn",
                                      cell=cell, output=output, pooling=pooling, head=head,
                                      mask_zero=embedding is not None and embedding.mask_zero)
    if embedding is None:
        return result
    return result, np.asarray(embedding.get_weights()[0], dtype=np.float64)
