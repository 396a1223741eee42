"""Explanations through a real two-process Dask cluster equal in-process ones."""
import os
import pickle

import numpy as np
import pytest

import lrp_lstm

dask = pytest.importorskip("dask", reason="needs the dask extra")
distributed = pytest.importorskip("dask.distributed")
import dask.bag as db  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import pandas as pd  # noqa: E402

from lrp_lstm.dask import explain_bag, explain_dataframe  # noqa: E402
from conftest import SHARED  # noqa: E402


@pytest.fixture(scope="module")
def texts():
    path = os.path.join(SHARED, "sst", "test.txt")
    if os.path.exists(path):
        from lrp_lstm.datasets import read_sst
        return [" ".join(s.tokens) for s in read_sst(path)]
    rng = np.random.default_rng(0)
    words = ["good", "bad", "not", "a", "film", "boring", "great", ",", "the", "plot", "."]
    return [" ".join(rng.choice(words, int(rng.integers(1, 30)))) for _ in range(500)]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def test_classifier_pickles_compactly():
    clf = lrp_lstm.load_sst()
    data = pickle.dumps(clf)
    weights = clf.embeddings.nbytes + sum(a.nbytes for a in clf.model.to_dict().values())
    assert len(data) < weights + 50 * len(clf.vocab)
    copy = pickle.loads(data)
    text = "a gorgeous , witty , seductive movie ."
    np.testing.assert_array_equal(copy.explain(text).word_relevance,
                                  clf.explain(text).word_relevance)


@pytest.mark.parametrize("method", ["lrp", "gi"])
def test_bag_equals_explain_batch(client, texts, method):
    clf = lrp_lstm.load_sst()
    bag = db.from_sequence(texts, npartitions=6)
    rows = explain_bag(clf, bag, method=method).compute()
    local = clf.explain_batch(texts, method=method, n_threads=2)
    assert len(rows) == len(local)
    for row, expl in zip(rows, local):
        assert row["tokens"] == expl.tokens
        assert row["predicted"] == expl.predicted
        # partitions run as smaller batches, which give the same bits (see
        # test_batch_equals_one_by_one)
        np.testing.assert_array_equal(row["word_relevance"], expl.word_relevance)
        np.testing.assert_array_equal(row["scores"], expl.scores)


def test_dataframe_equals_explain_batch(client, texts):
    clf = lrp_lstm.load_sst()
    frame = pd.DataFrame({"id": range(len(texts)), "review": texts})
    ddf = dd.from_pandas(frame, npartitions=4)
    out = explain_dataframe(clf, ddf, "review").compute()
    assert list(out.columns) == ["id", "review", "tokens", "word_relevance", "predicted",
                                 "scores"]
    local = clf.explain_batch(texts, n_threads=2)
    assert out["id"].tolist() == list(range(len(texts)))
    for (_, row), expl in zip(out.iterrows(), local):
        np.testing.assert_array_equal(row["word_relevance"], expl.word_relevance)
        assert row["predicted"] == expl.predicted
    with pytest.raises(ValueError, match="no column"):
        explain_dataframe(clf, ddf, "text")
