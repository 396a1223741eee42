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
