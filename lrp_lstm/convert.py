"""Models from other frameworks, and our own file format.

PyTorch and Keras are imported only by the functions that need them.
"""
import numpy as np

from .model import BiLSTM

FORMAT = "lrp-lstm/bilstm-1"


def save_model(model, path):
    """Write a BiLSTM (LSTM or GRU) to an .npz file (no pickle): its
    to_dict() arrays (canonical gate order), its cell type, output and
    mask_zero, and a format tag."""
    np.savez(path, lrp_lstm_format=np.array(FORMAT), cell=np.array(model.cell),
             output=np.array(model.output), mask_zero=np.array(model.mask_zero),
             **model.to_dict())


def load_model(path):
    """Read a BiLSTM written by save_model (loaded with allow_pickle=False)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    tag = arrays.pop("lrp_lstm_format", None)
    if tag is None or str(tag) != FORMAT:
        raise ValueError(f"{path} is not an lrp-lstm model file (format {FORMAT!r})")
    cell = arrays.pop("cell", None)
    output = arrays.pop("output", None)
    mask_zero = arrays.pop("mask_zero", None)
    return BiLSTM.from_dict(arrays, cell="lstm" if cell is None else str(cell),
                            output="softmax" if output is None else str(output),
                            mask_zero=False if mask_zero is None else bool(mask_zero))


def from_torch(rnn, head, embedding=None):
    """A BiLSTM from a PyTorch `nn.LSTM` or `nn.GRU` and the `nn.Linear` on
    its final states.

    rnn: an nn.LSTM or nn.GRU (any number of layers, bidirectional or not,
    batch_first either way, with or without biases; its dropout between
    layers is ignored, as in evaluation mode); head: nn.Linear whose input is the final
    hidden state of the forward direction, followed by the backward
    direction's when bidirectional; embedding: optional nn.Embedding.
    Returns the BiLSTM (float64; cell "gru" for an nn.GRU), or (BiLSTM,
    embeddings (V, e)) when an embedding is given. PyTorch's LSTM gate
    order i, f, g, o is converted; its GRU order r, z, n is ours.
    """
    import torch
    from torch import nn

    if not isinstance(rnn, (nn.LSTM, nn.GRU)):
        raise TypeError(f"rnn must be a torch.nn.LSTM or torch.nn.GRU, "
                        f"got {type(rnn).__name__}")
    cell = "gru" if isinstance(rnn, nn.GRU) else "lstm"
    name = type(rnn).__name__
    if getattr(rnn, "proj_size", 0):
        raise ValueError("nn.LSTM with proj_size > 0 is not supported")
    if not isinstance(head, nn.Linear):
        raise TypeError(f"head must be a torch.nn.Linear, got {type(head).__name__}")
    d = rnn.hidden_size
    n_dir = 2 if rnn.bidirectional else 1
    if head.in_features != n_dir * d:
        raise ValueError(f"head takes {head.in_features} features, but the {name}'s final "
                         f"states have {n_dir * d}")

    def array(t):
        return t.detach().to(torch.float64).cpu().numpy()

    arrays = {}
    for layer in range(rnn.num_layers):
        ours_suffix = f"_l{layer}" if layer else ""
        for side, suffix in zip(("Left", "Right")[:n_dir], ("", "_reverse")):
            theirs = f"_l{layer}{suffix}"
            arrays[f"Wxh_{side}{ours_suffix}"] = array(getattr(rnn, f"weight_ih{theirs}"))
            arrays[f"Whh_{side}{ours_suffix}"] = array(getattr(rnn, f"weight_hh{theirs}"))
            for ours, bias in (("bxh", "bias_ih"), ("bhh", "bias_hh")):
                arrays[f"{ours}_{side}{ours_suffix}"] = (
                    array(getattr(rnn, f"{bias}{theirs}")) if rnn.bias
                    else np.zeros(rnn.weight_hh_l0.shape[0]))
    weight = array(head.weight)
    arrays["Why_Left"] = weight[:, :d]
    if n_dir == 2:
        arrays["Why_Right"] = weight[:, d:]
    if head.bias is not None:
        arrays["bhy"] = array(head.bias)
    model = BiLSTM.from_dict(arrays, gate_order="ifgo" if cell == "lstm" else "rzn",
                             cell=cell)
    if embedding is None:
        return model
    if not isinstance(embedding, nn.Embedding):
        raise TypeError(f"embedding must be a torch.nn.Embedding, got {type(embedding).__name__}")
    if embedding.embedding_dim != model.input_size:
        raise ValueError(f"embedding has dimension {embedding.embedding_dim}, the {name} "
                         f"reads {model.input_size}")
    return model, array(embedding.weight)


def from_keras(model):
    """A BiLSTM from a Keras `Sequential` of Embedding (optional), LSTM or
    GRU layers (each possibly wrapped in Bidirectional), and a final Dense
    layer.

    Every recurrent layer below the last must return sequences, and all
    must be of one kind; Bidirectional layers must concatenate (merge_mode
    "concat"); the cells must use the standard activations (tanh,
    sigmoid); a GRU must use reset_after=True (the Keras 3 default, and
    PyTorch's equations). The Dense layer may be linear or softmax: the
    model explains its pre-activation scores. Keras's gate orders (i, f, c,
    o; z, r, h) and bias layout are converted. Returns the BiLSTM (float64),
    or (BiLSTM, embeddings (V, e)) when the model starts with an Embedding.
    Any other layer is refused with a ValueError naming it.
    """
    import keras

    layers = list(model.layers)
    if not layers:
        raise ValueError("the Keras model has no layers")
    embeddings = None
    if isinstance(layers[0], keras.layers.Embedding):
        embeddings = np.asarray(layers[0].get_weights()[0], dtype=np.float64)
        layers = layers[1:]
    if len(layers) < 2 or not isinstance(layers[-1], keras.layers.Dense):
        raise ValueError("expected (Bidirectional) LSTM or GRU layers followed by a Dense "
                         "layer")
    dense, recurrent = layers[-1], layers[:-1]
    if dense.activation.__name__ not in ("linear", "softmax"):
        raise ValueError(f"Dense activation {dense.activation.__name__!r} is not supported: "
                         "use 'linear' or 'softmax'")

    def cell_of(layer):
        inner = layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
        for kind, cls in (("lstm", keras.layers.LSTM), ("gru", keras.layers.GRU)):
            if isinstance(inner, cls):
                return kind
        raise ValueError(f"layer {layer.name!r} ({type(inner).__name__}) is not supported: "
                         "only LSTM, GRU and Bidirectional of them")

    cell = cell_of(recurrent[0])

    def rnn_arrays(layer):
        if layer.activation.__name__ != "tanh" or \
                layer.recurrent_activation.__name__ != "sigmoid":
            raise ValueError(f"layer {layer.name!r} must use tanh and sigmoid activations")
        if layer.stateful:
            raise ValueError(f"layer {layer.name!r} is stateful")
        if cell == "gru" and not layer.reset_after:
            raise ValueError(f"layer {layer.name!r}: a GRU needs reset_after=True")
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
            raise ValueError(f"layer {layer.name!r}: all recurrent layers must be "
                             f"{cell.upper()}s, like the first")
        if isinstance(layer, keras.layers.Bidirectional) != bidirectional:
            raise ValueError("all recurrent layers must be Bidirectional, or none")
        if bidirectional:
            if layer.merge_mode != "concat":
                raise ValueError(f"layer {layer.name!r}: merge_mode must be 'concat', "
                                 f"got {layer.merge_mode!r}")
            pairs = (("Left", layer.forward_layer), ("Right", layer.backward_layer))
        else:
            if getattr(layer, "go_backwards", False):
                raise ValueError(f"layer {layer.name!r} reads the sequence backwards")
            pairs = (("Left", layer),)
        for side, rnn in pairs:
            if rnn.return_sequences == last:
                raise ValueError(f"layer {layer.name!r}: " + (
                    "the last recurrent layer must return its final state "
                    "(return_sequences=False)" if last
                    else "recurrent layers below the last must return sequences"))
            for key, value in rnn_arrays(rnn).items():
                arrays[f"{key}_{side}{suffix}"] = value
    kernel, *bias = dense.get_weights()
    d = arrays["Whh_Left"].shape[1]
    arrays["Why_Left"] = kernel[:d].T.astype(np.float64)
    if bidirectional:
        arrays["Why_Right"] = kernel[d:].T.astype(np.float64)
    if bias:
        arrays["bhy"] = bias[0].astype(np.float64)
    result = BiLSTM.from_dict(arrays, gate_order="ifco" if cell == "lstm" else "zrn",
                              cell=cell)
    return result if embeddings is None else (result, embeddings)
