"""Threaded calls keep working in processes forked after one (pre-forking
servers, multiprocessing with "fork")."""
import multiprocessing
import os
import signal

import numpy as np
import pytest

import lrp_lstm

TEXTS = ["good film", "a gorgeous , witty movie", "dull and boring", "not bad"] * 16


def _explain_in_child():
    clf = lrp_lstm.load_sst()
    return [e.word_relevance.tolist() for e in clf.explain_batch(TEXTS, n_threads=2)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_completes_a_threaded_call():
    clf = lrp_lstm.load_sst()
    parent = clf.explain_batch(TEXTS, n_threads=2)        # threads in the parent first
    x = clf.embeddings[clf.token_ids(clf.tokenize(TEXTS[1]))]
    clf.model.explain(x, n_threads=2)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:    # the child: threaded calls, then report and leave at once
        try:
            child = clf.explain_batch(TEXTS, n_threads=2)
            single = clf.model.explain(x, n_threads=2)
            ok = all(np.allclose(a.word_relevance, b.word_relevance, rtol=1e-12)
                     for a, b in zip(child, parent)) and np.isfinite(single.relevance).all()
            os.write(write, b"ok" if ok else b"differs")
        finally:
            os._exit(0)
    os.close(write)
    signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(TimeoutError()))
    signal.alarm(10)
    try:
        answer = os.read(read, 16)
        os.waitpid(pid, 0)
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child did not finish a threaded call within 10 s")
    finally:
        signal.alarm(0)
        os.close(read)
    assert answer == b"ok"


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="needs the fork start method")
def test_multiprocessing_fork_pool_after_a_threaded_call():
    clf = lrp_lstm.load_sst()
    expected = [e.word_relevance for e in clf.explain_batch(TEXTS, n_threads=2)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.apply_async(_explain_in_child).get(timeout=10)
    for got, want in zip(results, expected):
        np.testing.assert_allclose(got, want, rtol=1e-12)
