"""Model files: our own .npz format, and the reference implementation's
pickles, read safely.

The reference implementation stores its weights as a pickled dict of NumPy
arrays (`model`) and its vocabulary as a pickled list of str (`vocab`).
Unpickling can run arbitrary code, so these files are read by an unpickler
that resolves only the few names that rebuild a NumPy array, under any
pickle protocol (0 to 5), and refuses every other global before anything is
called; the loaded object must then be made of dicts, lists, str and
numeric NumPy arrays only.
"""
from __future__ import annotations

import io
import os
import pickle
import zipfile
from typing import TYPE_CHECKING

import numpy as np

from .model import RecurrentModel

if TYPE_CHECKING:
    from .text import TextClassifier


class UnsafePickleError(ValueError):
    """A pickle asked for something other than dicts, lists, str and arrays."""


def _latin1_encode(text, encoding="latin1"):
    """codecs.encode as pickle protocols 0-2 use it to rebuild bytes (an
    array's data): str to bytes in latin-1, nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("refusing _codecs.encode other than str to latin-1 bytes")
    return text.encode("latin1")


def _frombuffer(buffer, dtype, shape, order):
    """numpy's _frombuffer as pickle protocol 5 uses it, for numeric dtypes only."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "fiu":
        raise UnsafePickleError(f"refusing an array of dtype {dtype} from a buffer")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


# what an array needs, by pickle protocol: _reconstruct, ndarray and dtype
# (all), _codecs.encode (0-2: the data as latin-1 text), _frombuffer (5)
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): None,
    ("numpy._core.multiarray", "_reconstruct"): None,
    ("numpy", "ndarray"): None,
    ("numpy", "dtype"): None,
    ("_codecs", "encode"): _latin1_encode,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[module, name] or super().find_class(module, name)
        raise UnsafePickleError(
            f"refusing to load {module}.{name}: only dicts, lists, str and NumPy "
            "arrays are accepted in model files")

    def persistent_load(self, pid):
        raise UnsafePickleError("refusing a persistent id in a model file")


def _check_plain(obj, where):
    """Raise unless obj is built from dict, list, str and numeric arrays."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "fiu" or obj.dtype.hasobject:
            raise UnsafePickleError(f"{where}: array of dtype {obj.dtype} is not accepted")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise UnsafePickleError(f"{where}: dict key {k!r} is not a str")
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(obj, str):
        raise UnsafePickleError(f"{where}: {type(obj).__name__} is not accepted")


def safe_unpickle(path):
    """Load a pickle that may hold only dicts, lists, str and numeric NumPy arrays."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
        _check_plain(obj, os.path.basename(path))
    except UnsafePickleError:
        raise
    except RecursionError:
        raise UnsafePickleError(f"{path} is nested too deeply for a model file") from None
    except Exception as exc:
        raise ValueError(f"{path} is not a readable model pickle: "
                         f"{type(exc).__name__}: {exc}") from exc
    return obj


def load_reference_model(directory: str | os.PathLike, embeddings=None) -> TextClassifier:
    """Load a model saved in the reference implementation's format.

    directory holds `model` (pickled dict: Wxh_Left, bxh_Left, Whh_Left,
    bhh_Left, Why_Left and the same with _Right), `vocab` (pickled list of
    words, index = embedding row) and optionally `embeddings.npy` (V, e).
    `embeddings` (V, e) replaces or stands in for that file. Returns a
    TextClassifier; its text methods need embeddings.
    """
    from .text import TextClassifier

    arrays = safe_unpickle(os.path.join(directory, "model"))
    if not isinstance(arrays, dict):
        raise ValueError(f"{directory}/model must hold a dict of arrays")
    model = RecurrentModel.from_dict(arrays)
    vocab = safe_unpickle(os.path.join(directory, "vocab"))
    if not isinstance(vocab, list) or not all(isinstance(w, str) for w in vocab):
        raise ValueError(f"{directory}/vocab must hold a list of str")
    path = os.path.join(directory, "embeddings.npy")
    if embeddings is None and os.path.exists(path):
        embeddings = np.load(path, allow_pickle=False)
    return TextClassifier(model, vocab, embeddings)


FORMAT = "lrp-lstm/bilstm-1"
CLASSIFIER_FORMAT = "lrp-lstm/classifier-1"


class ModelFileError(ValueError):
    """A file that is not a readable lrp-lstm model file."""


def _model_arrays(model):
    """A model's arrays as the .npz formats store them."""
    return {"cell": np.array(model.cell), "output": np.array(model.output),
            "mask_zero": np.array(model.mask_zero), **model.to_dict()}


def _model_from_arrays(arrays):
    """The model stored by _model_arrays (arrays: the rest of the archive)."""
    cell = arrays.pop("cell", None)
    output = arrays.pop("output", None)
    mask_zero = arrays.pop("mask_zero", None)
    return RecurrentModel.from_dict(arrays, cell="lstm" if cell is None else str(cell),
                                    output="softmax" if output is None else str(output),
                                    mask_zero=False if mask_zero is None else bool(mask_zero))


def _read_archive(path, tag, kind, writer):
    """The arrays of an .npz archive with the format tag `tag` (loaded with
    allow_pickle=False), the tag removed; ModelFileError for anything else
    (kind: "model" or "classifier", as the messages name it)."""
    try:
        with open(path, "rb") as f:
            data = np.load(f, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ModelFileError(f"{path} holds a single array, not an lrp-lstm {kind} "
                                     f"file ({writer} writes an .npz archive)")
            with data:
                arrays = {k: data[k] for k in data.files}
    except ModelFileError:
        raise
    except (ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelFileError(f"{path} is not a readable lrp-lstm {kind} file: "
                             f"{type(exc).__name__}: {exc}") from None
    found = arrays.pop("lrp_lstm_format", None)
    if found is None or str(found) != tag:
        hint = {FORMAT: " (a model: use load_model)",
                CLASSIFIER_FORMAT: " (a text classifier: use load_classifier)"}.get(
                    None if found is None else str(found), "")
        raise ModelFileError(f"{path} is not an lrp-lstm {kind} file (format {tag!r})"
                             + hint)
    return arrays


def save_model(model: RecurrentModel, path: str | os.PathLike) -> None:
    """Write a model (LSTM or GRU, any head) to the file `path`, exactly as
    named (an .npz archive, no pickle): its to_dict() arrays (canonical gate
    order), its cell type, output and mask_zero, and a format tag."""
    with open(path, "wb") as f:
        np.savez(f, lrp_lstm_format=np.array(FORMAT), **_model_arrays(model))


def load_model(path: str | os.PathLike) -> RecurrentModel:
    """Read a model written by save_model (loaded with allow_pickle=False).
    Raises ModelFileError (a ValueError) for anything else: a truncated
    file, a .npy array, text, another archive."""
    return _model_from_arrays(_read_archive(path, FORMAT, "model", "save_model"))


_CLASSIFIER_KEYS = ("vocab", "embeddings", "unknown_token", "lowercase", "class_names")


def save_classifier(clf: TextClassifier, path: str | os.PathLike) -> None:
    """Write a TextClassifier to the file `path`, exactly as named: one .npz
    archive (no pickle) with its model (weights and head, as save_model),
    vocabulary, embeddings, tokenizer settings (lowercase, unknown token)
    and class names. `lrp-lstm explain --model PATH` uses it."""
    if clf.embeddings is None:
        raise ValueError("the classifier has no embeddings to save")
    extra = {"vocab": np.array(clf.vocab, dtype=str), "embeddings": clf.embeddings,
             "lowercase": np.array(clf.lowercase),
             "class_names": np.array(clf.class_names, dtype=str)}
    if clf.unknown_token is not None:
        extra["unknown_token"] = np.array(clf.unknown_token)
    with open(path, "wb") as f:
        np.savez(f, lrp_lstm_format=np.array(CLASSIFIER_FORMAT), **extra,
                 **_model_arrays(clf.model))


def load_classifier(path: str | os.PathLike) -> TextClassifier:
    """Read a TextClassifier written by save_classifier (no pickle).
    Raises ModelFileError (a ValueError) for anything else."""
    from .text import TextClassifier

    arrays = _read_archive(path, CLASSIFIER_FORMAT, "classifier", "save_classifier")
    missing = [k for k in ("vocab", "embeddings", "lowercase", "class_names")
               if k not in arrays]
    if missing:
        raise ModelFileError(f"{path} lacks {', '.join(missing)}")
    extra = {k: arrays.pop(k) for k in _CLASSIFIER_KEYS if k in arrays}
    return TextClassifier(_model_from_arrays(arrays), [str(w) for w in extra["vocab"]],
                          extra["embeddings"],
                          unknown_token=(str(extra["unknown_token"])
                                         if "unknown_token" in extra else None),
                          class_names=[str(c) for c in extra["class_names"]],
                          lowercase=bool(extra["lowercase"]))
