"""Models from other frameworks, and our own file format.

PyTorch is imported only by the functions that need it.
"""
import numpy as np

from .model import BiLSTM

FORMAT = "lrp-lstm/bilstm-1"


def save_model(model, path):
    """Write a BiLSTM to an .npz file (no pickle): its to_dict() arrays
    (gates in order i, g, f, o) and a format tag."""
    np.savez(path, lrp_lstm_format=np.array(FORMAT), **model.to_dict())


def load_model(path):
    """Read a BiLSTM written by save_model (loaded with allow_pickle=False)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    tag = arrays.pop("lrp_lstm_format", None)
    if tag is None or str(tag) != FORMAT:
        raise ValueError(f"{path} is not an lrp-lstm model file (format {FORMAT!r})")
    return BiLSTM.from_dict(arrays)


def from_torch(rnn, head, embedding=None):
    """A BiLSTM from a PyTorch `nn.LSTM` and the `nn.Linear` on its final states.

    rnn: an nn.LSTM (any number of layers, bidirectional or not,
    batch_first either way, with or without biases; its dropout between
    layers is ignored, as in evaluation mode); head: nn.Linear whose input is the final
    hidden state of the forward direction, followed by the backward
    direction's when bidirectional; embedding: optional nn.Embedding.
    Returns the BiLSTM (float64), or (BiLSTM, embeddings (V, e)) when an
    embedding is given. PyTorch's gate order i, f, g, o is converted.
    """
    import torch
    from torch import nn

    if isinstance(rnn, nn.GRU):
        raise ValueError("nn.GRU is not supported yet: only nn.LSTM converts")
    if not isinstance(rnn, nn.LSTM):
        raise TypeError(f"rnn must be a torch.nn.LSTM, got {type(rnn).__name__}")
    if getattr(rnn, "proj_size", 0):
        raise ValueError("nn.LSTM with proj_size > 0 is not supported")
    if not isinstance(head, nn.Linear):
        raise TypeError(f"head must be a torch.nn.Linear, got {type(head).__name__}")
    d = rnn.hidden_size
    n_dir = 2 if rnn.bidirectional else 1
    if head.in_features != n_dir * d:
        raise ValueError(f"head takes {head.in_features} features, but the LSTM's final "
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
            for ours, name in (("bxh", "bias_ih"), ("bhh", "bias_hh")):
                arrays[f"{ours}_{side}{ours_suffix}"] = (
                    array(getattr(rnn, f"{name}{theirs}")) if rnn.bias else np.zeros(4 * d))
    weight = array(head.weight)
    arrays["Why_Left"] = weight[:, :d]
    if n_dir == 2:
        arrays["Why_Right"] = weight[:, d:]
    if head.bias is not None:
        arrays["bhy"] = array(head.bias)
    model = BiLSTM.from_dict(arrays, gate_order="ifgo")
    if embedding is None:
        return model
    if not isinstance(embedding, nn.Embedding):
        raise TypeError(f"embedding must be a torch.nn.Embedding, got {type(embedding).__name__}")
    if embedding.embedding_dim != model.input_size:
        raise ValueError(f"embedding has dimension {embedding.embedding_dim}, the LSTM "
                         f"reads {model.input_size}")
    return model, array(embedding.weight)


def from_keras(model):
    """A BiLSTM from a Keras `Sequential` of Embedding (optional), LSTM or
    Bidirectional(LSTM) layers, and a final Dense layer.

    Every LSTM below the last must return sequences; Bidirectional layers
    must concatenate (merge_mode "concat"); LSTMs must use the standard
    activations (tanh, sigmoid). The Dense layer may be linear or softmax:
    the model explains its pre-activation scores. Keras's gate order
    i, f, c, o and single bias are converted. Returns the BiLSTM (float64),
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
        raise ValueError("expected (Bidirectional) LSTM layers followed by a Dense layer")
    dense, recurrent = layers[-1], layers[:-1]
    if dense.activation.__name__ not in ("linear", "softmax"):
        raise ValueError(f"Dense activation {dense.activation.__name__!r} is not supported: "
                         "use 'linear' or 'softmax'")

    def lstm_arrays(layer, where):
        if not isinstance(layer, keras.layers.LSTM):
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) is not "
                             "supported: only LSTM and Bidirectional(LSTM)")
        if layer.activation.__name__ != "tanh" or \
                layer.recurrent_activation.__name__ != "sigmoid":
            raise ValueError(f"layer {layer.name!r} must use tanh and sigmoid activations")
        if layer.stateful:
            raise ValueError(f"layer {layer.name!r} is stateful")
        weights = layer.get_weights()
        d = weights[1].shape[0]
        return {"Wxh": weights[0].T.astype(np.float64),
                "Whh": weights[1].T.astype(np.float64),
                "bxh": (weights[2] if layer.use_bias else np.zeros(4 * d)).astype(np.float64),
                "bhh": np.zeros(4 * d)}

    arrays = {}
    bidirectional = isinstance(recurrent[0], keras.layers.Bidirectional)
    for k, layer in enumerate(recurrent):
        last = k == len(recurrent) - 1
        suffix = f"_l{k}" if k else ""
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
        for side, lstm in pairs:
            if lstm.return_sequences == last:
                raise ValueError(f"layer {layer.name!r}: " + (
                    "the last LSTM must return its final state (return_sequences=False)"
                    if last else "LSTMs below the last must return sequences"))
            for key, value in lstm_arrays(lstm, layer.name).items():
                arrays[f"{key}_{side}{suffix}"] = value
    kernel, *bias = dense.get_weights()
    d = arrays["Whh_Left"].shape[1]
    arrays["Why_Left"] = kernel[:d].T.astype(np.float64)
    if bidirectional:
        arrays["Why_Right"] = kernel[d:].T.astype(np.float64)
    if bias:
        arrays["bhy"] = bias[0].astype(np.float64)
    result = BiLSTM.from_dict(arrays, gate_order="ifco")
    return result if embeddings is None else (result, embeddings)
