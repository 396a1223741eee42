"""Bad input gets a clear exception; unusual but valid input works."""
import os
import pickle

import numpy as np
import pytest

import lrp_lstm
from lrp_lstm.model import random_weights
from lrp_lstm.io import UnsafePickleError, safe_unpickle
from conftest import random_model


@pytest.fixture(scope="module")
def model():
    return random_model(seed=1, e=4, d=3, C=3)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(2).normal(0, 1, (6, 4))


@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("bad, error, message", [
    (np.zeros((6, 5)), ValueError, r"shape \(T, 4\)"),
    (np.zeros(4), ValueError, "2 dimension"),
    (np.zeros((1, 6, 4)), ValueError, "2 dimension"),
    (np.zeros((0, 4)), ValueError, "T = 0"),
    (np.full((6, 4), np.nan), ValueError, "NaN"),
    (np.full((6, 4), np.inf), ValueError, "NaN or infinity"),
    (np.zeros((6, 4), dtype=int), TypeError, "floating"),
    (np.zeros((6, 4), dtype=bool), TypeError, "floating"),
    (np.zeros((6, 4), dtype=complex), TypeError, "floating"),
    (np.empty((6, 4), dtype=object), TypeError, "floating"),
    ("some text", TypeError, "floating"),
    (None, ValueError, "missing"),
])
def test_bad_x(model, bad, error, message, backend):
    with pytest.raises(error, match=message):
        model.explain(bad, backend=backend)


@pytest.mark.parametrize("bad, error, message", [
    (np.zeros((6, 5)), ValueError, r"xs\[1\] must have shape \(T, 4\)"),
    (np.zeros((0, 4)), ValueError, r"xs\[1\] is empty"),
    (np.zeros((6, 4), dtype=int), TypeError, r"xs\[1\] must hold floating"),
    (np.zeros((1, 6, 4)), ValueError, r"xs\[1\] must have 2 dimension"),
    (np.full((6, 4), np.nan), ValueError, r"xs\[1\] contains NaN"),
])
def test_bad_input_in_a_batch_is_named(model, x, bad, error, message):
    with pytest.raises(error, match=message):
        model.explain_batch([x, bad, x])


@pytest.mark.parametrize("n_threads", [1, 2])
def test_the_first_non_finite_input_is_named_whichever_thread_finds_it(model, n_threads):
    # enough inputs for many chunks, each scanned by the thread that takes
    # it; chunks run longest first, so the bad inputs' chunks run in the
    # order 120, 250, 41
    rng = np.random.default_rng(3)
    xs = [rng.normal(0, 1, (int(T), 4)) for T in rng.integers(2, 12, 300)]
    xs[41] = np.full((1, 4), np.inf)
    xs[120] = rng.normal(0, 1, (30, 4))
    xs[120][7, 0] = -np.inf
    xs[250][-1, 2] = np.nan
    for dtype in (np.float64, np.float32):
        with pytest.raises(ValueError, match=r"^xs\[41\] contains NaN or infinity"):
            model.explain_batch(xs, "lrp", n_threads=n_threads, dtype=dtype)


def test_a_batch_of_mixed_inputs_equals_the_batch_converted_first(model, x):
    # inputs that need a conversion (a view, Fortran order, a list, another
    # dtype) and inputs that need none, in one batch
    wide = np.zeros((12, 8))
    wide[::2, ::2] = x
    xs = [x, wide[::2, ::2], np.asfortranarray(x), x.tolist(), x.astype(np.float32), x[:3]]
    for dtype in (np.float64, np.float32):
        converted = [np.ascontiguousarray(np.asarray(v), dtype) for v in xs]
        expected = model.explain_batch(converted, "lrp", dtype=dtype)
        for got, want in zip(model.explain_batch(xs, "lrp", dtype=dtype), expected):
            np.testing.assert_array_equal(got.relevance, want.relevance)


def test_float32_overflow(model):
    with pytest.raises(ValueError, match="float32"):
        model.explain(np.full((2, 4), 1e300), dtype=np.float32)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inputs_that_would_overflow_the_first_layer_are_refused(model, x, backend, dtype):
    # |x| below max / (2 x the largest row sum of |Wxh|) keeps every
    # pre-activation within half the range; at 1e308 in float64 the
    # kernels' sums had saturated the gates while NumPy's turned to NaN
    Wxh = model.layers[0][0]["Wxh"], model.layers[0][1]["Wxh"]
    limit = np.finfo(dtype).max / (2 * max(np.abs(W).sum(axis=1).max() for W in Wxh))
    signs = np.sign(x)
    ok = model.explain_batch([x, 0.99 * limit * signs], ("lrp", "sa"), dtype=dtype,
                             backend=backend)
    assert np.isfinite(ok[1]["sa"].scores).all() and np.isfinite(ok[1]["sa"].gradient).all()
    for value in (1.01 * limit, np.finfo(dtype).max):
        xs = [x, x.copy(), x]
        xs[1][4, 2] = value
        for method in ("lrp", "sa"):
            with pytest.raises(ValueError, match=r"^xs\[1\] holds values up to .*too large "
                               f"for {np.dtype(dtype).name}.*inputs below"):
                model.explain_batch(xs, method, dtype=dtype, backend=backend)
        with pytest.raises(ValueError, match="too large"):
            model.forward(value * signs, dtype=dtype, backend=backend)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"target": 3}, ValueError, "not a class"),
    ({"target": -1}, ValueError, "not a class"),
    ({"target": 1.0}, TypeError, "integer"),
    ({"target": True}, TypeError, "integer"),
    ({"method": "shap"}, ValueError, "unknown method"),
    ({"method": ()}, ValueError, "empty"),
    ({"method": ("lrp", "lrp")}, ValueError, "twice"),
    ({"eps": 0.0}, ValueError, "eps"),
    ({"eps": float("nan")}, ValueError, "eps"),
    ({"eps": "1e-3"}, TypeError, "eps"),
    ({"bias_factor": float("inf")}, ValueError, "bias_factor"),
    ({"backend": "torch"}, ValueError, "backend"),
    ({"dtype": np.int32}, TypeError, "dtype"),
    ({"dtype": "float16"}, TypeError, "dtype"),
])
def test_bad_arguments(model, x, kwargs, error, message):
    with pytest.raises(error, match=message):
        model.explain(x, **kwargs)


def test_bad_batch_arguments(model, x):
    with pytest.raises(ValueError, match="targets has 1 entries for 2 inputs"):
        model.explain_batch([x, x], targets=[0])
    with pytest.raises(ValueError, match=r"xs\[1\] is empty"):
        model.explain_batch([x, x[:0]])
    with pytest.raises(ValueError, match="n_threads"):
        model.explain_batch([x], n_threads=0)
    with pytest.raises(ValueError, match=r"targets\[1\] 7 is not a class"):
        model.explain_batch([x, x], targets=[0, 7])
    assert model.explain_batch([]) == []


def weights():
    return random_weights(np.random.default_rng(0), 4, 3, 2)


@pytest.mark.parametrize("change, error, message", [
    (lambda w: w.pop("Whh_Left"), ValueError, "missing weight Whh_Left"),
    (lambda w: w.pop("Why_Right"), ValueError, "missing weight Why_Right"),
    (lambda w: w.pop("bxh_Right"), ValueError, "missing weight bxh_Right"),
    (lambda w: w.update(Wxh_left=w["Wxh_Left"]), ValueError, "unknown weight name"),
    (lambda w: w.update(Whh_Left=w["Whh_Left"][:, :2]), ValueError, "Whh"),
    (lambda w: w.update(Wxh_Left=w["Wxh_Left"][:10]), ValueError, "4d rows"),
    (lambda w: w.update(Wxh_Right=w["Wxh_Right"][:, :3]), ValueError, "Wxh"),
    (lambda w: w.update(bxh_Left=w["bxh_Left"][:5]), ValueError, "bxh"),
    (lambda w: w.update(Why_Right=w["Why_Right"][:1]), ValueError, "Why_bwd"),
    (lambda w: w.update(bhy=np.zeros(3)), ValueError, "bias"),
    (lambda w: w.update(Wxh_Left=w["Wxh_Left"].astype(int)), TypeError, "floating"),
    (lambda w: w.update(Whh_Left=w["Whh_Left"].astype(object)), TypeError, "floating"),
    (lambda w: w["Whh_Left"].__setitem__((0, 0), np.nan), ValueError, "NaN"),
    (lambda w: w["Why_Left"].__setitem__((0, 0), np.inf), ValueError, "NaN"),
])
def test_bad_weights(change, error, message):
    w = weights()
    change(w)
    with pytest.raises(error, match=message):
        lrp_lstm.BiLSTM.from_dict(w)


@pytest.mark.parametrize("order", ["igf", "igfx", "iigo", "", 4])
def test_bad_gate_order(order):
    with pytest.raises((ValueError, TypeError), match="gate"):
        lrp_lstm.BiLSTM.from_dict(weights(), gate_order=order)


def test_read_only_and_non_contiguous_inputs(model, x):
    expected = model.explain(x, ("lrp", "sa"), target=1)
    wide = np.zeros((12, 8))
    wide[::2, ::2] = x
    view = wide[::2, ::2]
    assert not view.flags.c_contiguous
    frozen = x.copy()
    frozen.setflags(write=False)
    fortran = np.asfortranarray(x)
    for variant in (view, frozen, fortran, x.tolist()):
        got = model.explain(variant, ("lrp", "sa"), target=1)
        for m in ("lrp", "sa"):
            np.testing.assert_array_equal(got[m].relevance, expected[m].relevance)
    w = weights()
    for k in w:
        w[k] = np.asfortranarray(w[k])
        w[k].setflags(write=False)
    lrp_lstm.BiLSTM.from_dict(w).explain(x)


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "model"
    with open(path, "wb") as f:
        pickle.dump({"Wxh_Left": Exploit()}, f)
    with pytest.raises(UnsafePickleError, match="system"):
        safe_unpickle(path)
    assert not marker.exists()
    (tmp_path / "vocab").write_bytes(pickle.dumps(["a"]))
    with pytest.raises(UnsafePickleError):
        lrp_lstm.load_reference_model(tmp_path)
    assert not marker.exists()


def test_pickle_of_other_types_is_refused(tmp_path):
    path = tmp_path / "p"
    for obj in ({"a": 1.5}, {"a": np.array([object()])}, {1: np.zeros(2)}, (1, 2), {"s": {1, 2}}):
        with open(path, "wb") as f:
            pickle.dump(obj, f)
        with pytest.raises(UnsafePickleError):
            safe_unpickle(path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a readable model pickle"):
        safe_unpickle(path)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_weight_dicts_of_every_pickle_protocol_load(tmp_path, protocol):
    rng = np.random.default_rng(protocol)
    obj = {"Wxh_Left": rng.normal(0, 1, (8, 3)), "ids": np.arange(5, dtype=np.int32),
           "f32": rng.normal(0, 1, 4).astype(np.float32), "nested": [np.eye(2), "word"]}
    path = tmp_path / "model"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    back = safe_unpickle(path)
    for k in ("Wxh_Left", "ids", "f32"):
        np.testing.assert_array_equal(back[k], obj[k])
        assert back[k].dtype == obj[k].dtype
    np.testing.assert_array_equal(back["nested"][0], np.eye(2))
    # an exploit under the same protocol still runs nothing
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path.write_bytes(pickle.dumps({"a": Exploit()}, protocol=protocol))
    with pytest.raises(UnsafePickleError):
        safe_unpickle(path)
    assert not marker.exists()


def test_hostile_pickles_get_the_loaders_own_error(tmp_path):
    path = tmp_path / "model"
    # 200,000 nested empty lists: deeper than Python's recursion limit
    path.write_bytes(b"(" * 200_000 + b"l" * 200_000 + b".")
    with pytest.raises(UnsafePickleError, match="nested too deeply"):
        safe_unpickle(path)
    # codecs.encode with another codec, numpy's _frombuffer with an object dtype
    path.write_bytes(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")
    with pytest.raises(UnsafePickleError, match="latin-1"):
        safe_unpickle(path)
    path.write_bytes(pickle.dumps({"x": np.zeros(3)}, protocol=5)[:-5])
    with pytest.raises(ValueError, match="not a readable model pickle"):
        safe_unpickle(path)


def test_errors_name_the_problem(tmp_path):
    model = random_model(seed=20, e=4, d=3, C=2)
    x = np.random.default_rng(21).normal(0, 1, (5, 4))
    with pytest.raises(TypeError, match="method must be one of"):
        model.explain(x, method=None)
    with pytest.raises(TypeError, match="arrays must be a mapping"):
        lrp_lstm.BiLSTM.from_dict(None)
    with pytest.raises(ValueError, match=r"bias_factor must lie in \[0, 1\]"):
        model.explain(x, bias_factor=1e10)
    for call in (lambda: model.explain(x, n_threads=True),
                 lambda: model.explain_batch([x], n_threads=True),
                 lambda: model.forward_batch([x], n_threads=True)):
        with pytest.raises(TypeError, match="n_threads must be a positive integer"):
            call()
    with pytest.raises(ValueError, match="more than 4 per core"):
        model.explain_batch([x], n_threads=100_000)
    clf = lrp_lstm.load_sst()
    with pytest.raises(ValueError, match=r"texts\[1\]: text is empty"):
        clf.explain_batch(["good", "   ", "bad"])


def test_gradient_overflow_raises_like_lrp():
    model = random_model(seed=22, e=4, d=3, C=2)
    w = model.to_dict()
    w["Why_Left"] = w["Why_Left"] * 1e30       # float32 gradients overflow
    big = lrp_lstm.BiLSTM.from_dict(w)
    x = np.random.default_rng(23).normal(0, 1, (5, 4))
    with pytest.raises(FloatingPointError, match="gradient overflowed"):
        big.explain(x, "sa", dtype=np.float32)


def test_model_files_get_the_loaders_own_error(tmp_path):
    model = random_model(seed=24, e=4, d=3, C=2)
    path = tmp_path / "noext"
    lrp_lstm.save_model(model, path)                   # written as named
    np.testing.assert_array_equal(lrp_lstm.load_model(path).forward(np.ones((2, 4))),
                                  model.forward(np.ones((2, 4))))
    data = path.read_bytes()
    cases = {"truncated.npz": data[: len(data) // 2], "text.npz": b"Wxh_Left = 1\n"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    np.save(tmp_path / "array.npy", np.zeros(3))
    for name, message in (("truncated.npz", "not a readable lrp-lstm model file"),
                          ("text.npz", "not a readable lrp-lstm model file"),
                          ("array.npy", "holds a single array")):
        with pytest.raises(lrp_lstm.io.ModelFileError, match=message):
            lrp_lstm.load_model(tmp_path / name)
