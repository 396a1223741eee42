"""The model object: construction, conversion, loading, batching."""
import pickle
import platform

import numpy as np
import pytest

import lrp_lstm
from lrp_lstm.model import random_weights
from conftest import random_model, shared_path


def test_to_dict_inverts_from_dict():
    w = random_weights(np.random.default_rng(0), 5, 4, 3, bias=True)
    back = lrp_lstm.BiLSTM.from_dict(w).to_dict()
    assert set(back) == set(w)
    for k in w:
        np.testing.assert_array_equal(back[k], w[k])


@pytest.mark.parametrize("order", ["ifgo", "ifco", "IFCO", "oifg"])
def test_gate_order(order):
    """Weights given in another gate order give the same model."""
    rng = np.random.default_rng(1)
    w = random_weights(rng, 5, 4, 3)
    d = 4
    canonical = "igfo"
    permuted = {}
    for k, a in w.items():
        if k[:3] in ("Wxh", "bxh", "Whh", "bhh"):
            blocks = {g: a[canonical.index(g) * d:(canonical.index(g) + 1) * d] for g in canonical}
            permuted[k] = np.concatenate([blocks[g.lower().replace("c", "g")] for g in order])
        else:
            permuted[k] = a
    a = lrp_lstm.BiLSTM.from_dict(w)
    b = lrp_lstm.BiLSTM.from_dict(permuted, gate_order=order)
    x = rng.normal(0, 1, (6, 5))
    np.testing.assert_array_equal(a.explain(x).relevance, b.explain(x).relevance)
    for k, v in b.to_dict().items():
        np.testing.assert_array_equal(v, w[k])


def test_unidirectional_model():
    model = random_model(seed=2, bidirectional=False)
    assert not model.bidirectional
    assert set(model.to_dict()) == {"Wxh_Left", "bxh_Left", "Whh_Left", "bhh_Left", "Why_Left"}
    x = np.random.default_rng(3).normal(0, 1, (4, 7))
    res = model.explain(x, ("lrp", "gi"), bias_factor=1.0)
    assert res["lrp"].relevance_bwd is None and res["gi"].gradient_bwd is None
    total = res["lrp"].relevance.sum() + res["lrp"].relevance_rest
    assert total == pytest.approx(res["lrp"].scores[res["lrp"].target], rel=1e-12)


def test_target_none_explains_the_predicted_class():
    model = random_model(seed=4, C=6)
    x = np.random.default_rng(5).normal(0, 1, (9, 7))
    for backend in ("cython", "numpy"):
        expl = model.explain(x, backend=backend)
        assert expl.target == int(np.argmax(expl.scores))
        np.testing.assert_array_equal(expl.scores, model.forward(x, backend=backend))


def test_output_bias_enters_scores():
    w = random_weights(np.random.default_rng(6), 3, 2, 4, bias=True)
    x = np.random.default_rng(7).normal(0, 1, (5, 3))
    with_bias = lrp_lstm.BiLSTM.from_dict(w).forward(x)
    bias = w.pop("bhy")
    np.testing.assert_allclose(with_bias, lrp_lstm.BiLSTM.from_dict(w).forward(x) + bias,
                               rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_equals_one_by_one(dtype):
    # a lockstep chunk's products take each sum in the one-row product's
    # order, with the same fused multiply-adds, whatever the rows around it:
    # a batch equals one-by-one calls bit for bit (only the abs rule's sums
    # of 32 rows or more, which BLAS takes, are equal to rounding alone)
    model = random_model(seed=8, e=9, d=40, C=4, bias=True)
    rng = np.random.default_rng(9)
    lengths = (1, 7, 30, 2, 15, 3, 64, 5) * 5
    xs = [rng.normal(0, 1, (T, 9)) for T in lengths]
    targets = [None, 1, 2, None, 3, 0, None, 1] * 5
    methods = ("lrp", "sa", "gi")
    batch = model.explain_batch(xs, methods, targets, bias_factor=1.0, n_threads=2,
                                dtype=dtype)
    for x, t, res in zip(xs, targets, batch):
        one = model.explain(x, methods, target=t, bias_factor=1.0, dtype=dtype)
        for m in methods:
            assert res[m].target == one[m].target
            np.testing.assert_array_equal(res[m].scores, one[m].scores)
            np.testing.assert_array_equal(res[m].relevance, one[m].relevance)
        assert res["lrp"].relevance_rest == one["lrp"].relevance_rest
    single = model.explain_batch(xs, "sa", n_threads=2)
    assert all(isinstance(r, lrp_lstm.Explanation) and r.method == "sa" for r in single)


def test_inputs_are_read_in_place_and_gi_keeps_its_own_x():
    # the kernels read each input where it lies: views into one buffer (at
    # offsets that are not a row's start), non-contiguous views (converted
    # first) and copies give the same results bit for bit
    model = random_model(seed=14, e=7, d=20, C=3)
    rng = np.random.default_rng(15)
    lengths = (5, 1, 12, 3, 8)
    buffer = rng.normal(0, 1, 3 + 7 * sum(lengths))
    ends = 3 + 7 * np.cumsum((0,) + lengths)
    views = [buffer[a:b].reshape(-1, 7) for a, b in zip(ends[:-1], ends[1:])]
    wide = rng.normal(0, 1, (20, 14))
    strided = [wide[:T, ::2] for T in lengths]
    for xs in (views, strided):
        copies = [np.array(x) for x in xs]
        got = model.explain_batch(xs, ("lrp", "gi"), n_threads=2)
        want = model.explain_batch(copies, ("lrp", "gi"), n_threads=2)
        for a, b in zip(got, want):
            for m in ("lrp", "gi"):
                np.testing.assert_array_equal(a[m].relevance, b[m].relevance)
                np.testing.assert_array_equal(a[m].word_relevance, b[m].word_relevance)
    # GI's relevance (gradient * x), computed when first read, uses the
    # inputs as they were when explained
    xs = [rng.normal(0, 1, (T, 7)) for T in lengths]
    before = [e.relevance.copy() for e in model.explain_batch(xs, "gi")]
    later = model.explain_batch(xs, "gi")
    for x in xs:
        x[:] = 0
    for e, want in zip(later, before):
        np.testing.assert_array_equal(e.relevance, want)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_results_do_not_depend_on_threads(cell):
    # chunks of many rows (the panel products); the plan depends on the inputs alone
    model = random_model(seed=12, e=30, d=50, C=3, cell=cell, n_layers=2)
    rng = np.random.default_rng(13)
    xs = [rng.normal(0, 1, (int(T), 30)) for T in rng.integers(1, 40, 300)]
    runs = [model.explain_batch(xs, ("lrp", "gi"), n_threads=n) for n in (1, 2, 3)]
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            for m in ("lrp", "gi"):
                np.testing.assert_array_equal(a[m].relevance, b[m].relevance)
                np.testing.assert_array_equal(a[m].scores, b[m].scores)
            assert a["lrp"].relevance_rest == b["lrp"].relevance_rest
    # one input long enough for its directions to run on two threads
    x = rng.normal(0, 1, (400, 30))
    for method in ("lrp", "gi"):
        np.testing.assert_array_equal(model.explain(x, method, n_threads=2).relevance,
                                      model.explain(x, method).relevance)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_tiles_equal_the_one_row_product(cell, dtype):
    # B copies of one input step in lockstep chunks of about B / 2 rows, so
    # their products take every tiling of rows (blocks of 12 or 6, of 4, and
    # the last 1 to 3 rows across several panels at once) over matrices of
    # several panels and a narrow last one (d = 40 and 13: the one-row
    # product's last columns, one at a time); every sum is still taken in
    # the one-row product's order, with the same fused multiply-adds, so
    # each copy equals the input alone, bit for bit
    for d in (40, 13):
        model = random_model(seed=14, e=70, d=d, C=3, cell=cell)
        x = np.random.default_rng(15).normal(0, 1, (9, 70))
        one = model.explain(x, ("lrp", "sa"), dtype=dtype, n_threads=1)
        for B in range(2, 31):
            for res in model.explain_batch([x] * B, ("lrp", "sa"), dtype=dtype,
                                           n_threads=2):
                for m in ("lrp", "sa"):
                    np.testing.assert_array_equal(res[m].relevance, one[m].relevance)
                    np.testing.assert_array_equal(res[m].scores, one[m].scores)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_tiles_of_matrices_larger_than_the_caches(dtype):
    # a recurrent matrix of more than 4 MiB (d = 1024: 16 MiB in float32)
    # takes the panel product's tiles that prefetch its rows
    # (LRP_STREAMED in src/lrp_linalg.c), forward and backward; 32 copies
    # run in two chunks of 16 rows, tiles of 12 and of 4 rows; each equals
    # the input alone (the one-row product), bit for bit
    model = lrp_lstm.RecurrentModel.random(8, 1024, 2, 5, bidirectional=False)
    x = np.random.default_rng(17).normal(0, 1, (5, 8))
    one = model.explain(x, ("lrp", "sa"), dtype=dtype)
    for res in model.explain_batch([x] * 32, ("lrp", "sa"), dtype=dtype, n_threads=1):
        for m in ("lrp", "sa"):
            np.testing.assert_array_equal(res[m].relevance, one[m].relevance)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_row_product_for_every_width(cell, dtype):
    # one input's recurrent steps run the one-row product: blocks of 8
    # vectors, then one tile of the remaining vectors, the columns beyond
    # the last full vector masked (AVX-512, AVX2) or one at a time; four
    # copies run in two chunks of two rows, through the panel product.
    # Hidden sizes 1 to 128 give the steps' widths (d, 3d, 4d) every count
    # of remaining vectors at every vector width (this CPU's widest here,
    # the narrower ones in tests/test_build.py); each input equals its
    # copies bit for bit
    x = np.random.default_rng(16).normal(0, 1, (4, 5))
    for d in range(1, 129, 3):
        model = random_model(seed=d, e=5, d=d, C=2, cell=cell)
        one = model.explain(x, ("lrp", "sa"), dtype=dtype)
        for res in model.explain_batch([x] * 4, ("lrp", "sa"), dtype=dtype, n_threads=1):
            for m in ("lrp", "sa"):
                np.testing.assert_array_equal(res[m].relevance, one[m].relevance,
                                              err_msg=f"d = {d}, {m}")


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="the kernels flush subnormals on x86-64 only")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_flush_subnormals_and_restore_the_callers_mode(dtype):
    """A gradient that fades over a long input reaches the subnormal range
    (which costs the core ~100 cycles an operation): the kernels, on every
    thread, flush it to zero, and leave the caller's arithmetic as it was."""
    model = random_model(seed=5, e=8, d=8, C=2)
    rng = np.random.default_rng(6)
    xs = [rng.normal(0, 1, (T, 8)) for T in (3000, 2500, 2000, 1500)]
    tiny = np.finfo(dtype).tiny
    plain = model.explain(xs[0], "sa", backend="numpy").gradient_fwd
    assert ((np.abs(plain) < tiny) & (plain != 0)).any()     # the oracle has them
    for n_threads in (1, 2):   # two threads: two chunks, each on a thread of its own
        batch = model.explain_batch(xs, "sa", n_threads=n_threads, dtype=dtype)
        for expl in batch:
            for g in (expl.gradient_fwd, expl.gradient_bwd):
                assert not ((np.abs(g) < tiny) & (g != 0)).any() and np.isfinite(g).all()
        # (where the exact value is far below the normal range)
        assert (batch[0].gradient_fwd[np.abs(plain) < tiny / 1000] == 0).all()
    np.testing.assert_allclose(model.explain(xs[0], "sa", dtype=dtype).gradient_fwd, plain,
                               rtol=0, atol=1e-6 if dtype == np.float32 else 1e-15)
    assert dtype(tiny) / dtype(4) != 0      # the caller's mode: subnormals kept
    assert lrp_lstm.build_info()["subnormals"].startswith("flushed to zero during a call")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunk_plan_bounds_the_workspace_and_evens_the_threads(dtype):
    from lrp_lstm import _kernels, model as M
    model = random_model(seed=3, e=300, d=256, C=3, n_layers=2)
    params, layout, *_ = model._kernel_arrays(dtype)
    # long enough that the workspace bound, not _CHUNK_SIZE, sets the number of chunks
    lengths = np.random.default_rng(4).integers(1, 800, 256)
    order, bounds, tokens = M._chunks(lengths, M._CHUNK_SIZE,
                                      model._chunk_tokens(layout, dtype))
    assert sorted(order) == list(range(256)) and bounds[0] == 0 and bounds[-1] == 256
    assert len(bounds) > 2 and (len(bounds) - 1) % 2 == 0
    assert len(bounds) - 1 > 256 // M._CHUNK_SIZE
    assert (tokens == [lengths[order[a:b]].sum() for a, b in zip(bounds, bounds[1:])]).all()
    largest = max(_kernels.workspace_size(layout, False, int(b - a), int(n),
                                           np.dtype(dtype).itemsize)
                  for a, b, n in zip(bounds, bounds[1:], tokens))
    # about _CHUNK_BYTES: the cuts fall between sequences
    assert largest * np.dtype(dtype).itemsize <= 1.2 * M._CHUNK_BYTES


def test_pickle_round_trip():
    model = random_model(seed=10, bias=True)
    x = np.random.default_rng(11).normal(0, 1, (4, 7))
    model.explain(x)   # fills the kernels' cache, which is not pickled
    data = pickle.dumps(model)
    assert len(data) < 2 * sum(a.nbytes for a in model.to_dict().values()) + 2000
    copy = pickle.loads(data)
    np.testing.assert_array_equal(copy.explain(x).relevance, model.explain(x).relevance)


def test_load_reference_model(seed_model):
    clf = lrp_lstm.load_reference_model(shared_path("seed-model"))
    assert clf.model.bidirectional
    assert (clf.model.input_size, clf.model.hidden_size, clf.model.n_classes) == (60, 60, 5)
    # the reference vocabulary's size, as ../shared/data/README.md gives it
    assert len(clf.vocab) == 19538 and "film" in clf.vocab
    assert clf.embeddings is None
    with pytest.raises(ValueError, match="no embeddings"):
        clf.explain("a fine film")
    emb = np.random.default_rng(0).normal(0, 0.5, (19538, 60))
    clf = lrp_lstm.load_reference_model(shared_path("seed-model"), embeddings=emb)
    expl = clf.explain("a fine film .")
    ids = clf.token_ids(["a", "fine", "film", "."])
    np.testing.assert_array_equal(expl.word_relevance,
                                  clf.model.explain(emb[ids]).word_relevance)


def test_pooled_outputs_are_reused_only_once_no_view_is_left(monkeypatch):
    """Large outputs' memory returns to the pool when the last array viewing
    it dies (an Explanation's slice keeps it), and a later call reuses it."""
    import gc
    from lrp_lstm import model as M
    model = random_model(seed=5)
    rng = np.random.default_rng(6)
    xs = [rng.normal(0, 1, (n, 7)) for n in (5, 3, 7)]
    ys = [rng.normal(0, 1, (n, 7)) for n in (5, 3, 7)]
    expected = [e.relevance for e in model.explain_batch(ys)]
    monkeypatch.setattr(M, "_POOLED_OUTPUT", 8)     # pool this small model's relevance, gradient
    monkeypatch.setattr(M, "_pool", [])
    kept = model.explain_batch(xs)[1].relevance_bwd     # a view: the whole output stays
    first = kept.copy()
    assert M._pool == []
    second = model.explain_batch(ys, ("lrp", "sa"))
    np.testing.assert_array_equal(kept, first)          # its memory was not handed out
    assert M._pool == []
    del kept, second
    gc.collect()
    assert len(M._pool) == 3        # the first call's relevance, the second's and its gradient
    third = model.explain_batch(ys)
    assert len(M._pool) == 2        # one reused
    for got, want in zip(third, expected):
        np.testing.assert_array_equal(got.relevance, want)
    monkeypatch.setattr(M, "_POOL_BYTES", 0)
    del third
    assert len(M._pool) == 2        # a full pool keeps no more


def test_release_memory_gives_back_the_pool_and_the_workspace(monkeypatch):
    """release_memory drops the pooled memory (the mappings themselves die)
    and the calling thread's workspace, leaves arrays in use alone, and the
    next call allocates afresh with the same results."""
    import gc
    import weakref
    from lrp_lstm import model as M
    model = random_model(seed=7)
    xs = [np.random.default_rng(8).normal(0, 1, (n, 7)) for n in (6, 4)]
    monkeypatch.setattr(M, "_POOLED_OUTPUT", 8)
    monkeypatch.setattr(M, "_pool", [])
    kept = model.explain_batch(xs)[0].relevance_fwd
    want = kept.copy()
    model.explain_batch(xs, ("lrp", "sa"))
    gc.collect()
    assert len(M._pool) == 2 and M._workspaces.array is not None
    pooled = [weakref.ref(m) for m in M._pool]
    workspace = weakref.ref(M._workspaces.array)
    lrp_lstm.release_memory()
    gc.collect()
    assert M._pool == [] and not hasattr(M._workspaces, "array")
    assert all(ref() is None for ref in pooled + [workspace])
    again = model.explain_batch(xs)
    np.testing.assert_array_equal(kept, want)       # still its own memory
    np.testing.assert_array_equal(again[0].relevance_fwd, want)
