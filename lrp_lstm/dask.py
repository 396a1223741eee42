"""Explanations of text collections on Dask (`pip install "lrp-lstm[dask]"`).

The classifier enters the task graph once, as a single key, so every
worker fetches it once and each partition is explained by one call of the
batched kernels. Kernel calls use one thread by default: on a cluster the
parallelism comes from Dask's workers and threads, and more threads per
call would oversubscribe the cores.

    from dask.distributed import Client
    import dask.bag as db
    import lrp_lstm
    from lrp_lstm.dask import explain_bag

    client = Client("tcp://scheduler:8786")        # or a LocalCluster
    texts = db.read_text("reviews-*.txt").map(str.strip)
    explain_bag(lrp_lstm.load_sst(), texts, method="lrp").to_textfiles("out-*.json")
"""
import dask

from . import _validation as V
from .text import TextClassifier

COLUMNS = ("tokens", "word_relevance", "predicted", "scores")


def _shared(classifier):
    """The classifier as one key of the task graph (a Delayed or a Future
    that already stands for it is used as it is)."""
    if isinstance(classifier, TextClassifier):
        return dask.delayed(classifier, pure=True)
    return classifier


def _explain_texts(texts, classifier, method, eps, bias_factor, n_threads, dtype):
    """One dict (tokens, word_relevance, predicted, scores) per text."""
    texts = list(texts)
    if not texts:
        return []
    explanations = classifier.explain_batch(texts, method, eps=eps, bias_factor=bias_factor,
                                            n_threads=n_threads, dtype=dtype)
    return [{"tokens": e.tokens, "word_relevance": e.word_relevance.tolist(),
             "predicted": e.predicted, "scores": e.scores.tolist()} for e in explanations]


def explain_bag(classifier, bag, method="lrp", eps=1e-3, bias_factor=0.0, n_threads=1,
                dtype="float64"):
    """A dask.bag of dicts (tokens, word_relevance, predicted, scores), one per text.

    classifier: a TextClassifier (e.g. lrp_lstm.load_sst()), or a Future of
    one already on every worker (`client.scatter(clf, broadcast=True)`), so
    that repeated calls do not send it again; bag: a dask.bag of str; method:
    "lrp", "sa" or "gi"; each text's predicted class is explained.
    """
    if not isinstance(method, str):
        raise TypeError("explain_bag takes one method; call it once per method")
    return bag.map_partitions(_explain_texts, _shared(classifier), method, eps, bias_factor,
                              n_threads, V.check_dtype(dtype))


def _explain_frame(frame, classifier, column, method, eps, bias_factor, n_threads, dtype):
    rows = _explain_texts(frame[column].tolist(), classifier, method, eps, bias_factor,
                          n_threads, dtype)
    out = frame.copy()
    for name in COLUMNS:
        out[name] = [row[name] for row in rows]
    return out


def explain_dataframe(classifier, ddf, column, method="lrp", eps=1e-3, bias_factor=0.0,
                      n_threads=1, dtype="float64"):
    """ddf with the columns tokens, word_relevance, predicted and scores added,
    explaining the texts of `column` partition by partition (classifier as
    in explain_bag)."""
    import pandas as pd

    if column not in ddf.columns:
        raise ValueError(f"no column {column!r} in the dataframe: {list(ddf.columns)}")
    if not isinstance(method, str):
        raise TypeError("explain_dataframe takes one method; call it once per method")
    meta = ddf._meta.copy()
    for name in COLUMNS:
        meta[name] = pd.Series([], dtype="int64" if name == "predicted" else object)
    return ddf.map_partitions(_explain_frame, _shared(classifier), column, method, eps,
                              bias_factor, n_threads, V.check_dtype(dtype), meta=meta)
