"""Models converted from Keras agree with Keras (skipped without TensorFlow)."""
import numpy as np
import pytest

import lrp_lstm

from conftest import REQUIRED

if "keras" in REQUIRED:     # .ci/run: a missing TensorFlow fails the run
    import keras
    import tensorflow as tf
else:
    keras = pytest.importorskip("keras", reason="TensorFlow/Keras is not installed")
    tf = pytest.importorskip("tensorflow", reason="TensorFlow is not installed")


def build(n_layers, bidirectional, dense_bias, cell="LSTM", V=40, e=6, d=5, C=4, seed=0):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input(shape=(None,), dtype="int32"), keras.layers.Embedding(V, e)]
    for k in range(n_layers):
        rnn = getattr(keras.layers, cell)(d, return_sequences=k < n_layers - 1,
                                          bias_initializer="random_normal")
        layers.append(keras.layers.Bidirectional(rnn) if bidirectional else rnn)
    layers.append(keras.layers.Dense(C, use_bias=dense_bias))
    return keras.Sequential(layers)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("dense_bias", [True, False])
def test_from_keras_matches_keras(cell, n_layers, bidirectional, dense_bias):
    net = build(n_layers, bidirectional, dense_bias, cell)
    model, table = lrp_lstm.from_keras(net)
    assert model.n_layers == n_layers and model.bidirectional == bidirectional
    assert model.cell == cell.lower()
    ids = np.random.default_rng(n_layers).integers(0, 40, 11)
    expected = net(ids[None]).numpy()[0]
    np.testing.assert_allclose(model.forward(table[ids]), expected, rtol=0, atol=1e-6)
    # input gradients through the layers after the embedding
    x = tf.Variable(table[ids][None].astype(np.float32))
    with tf.GradientTape() as tape:
        h = x
        for layer in net.layers[1:]:
            h = layer(h)
        target = int(np.argmax(expected))
        score = h[0, target]
    grad = tape.gradient(score, x).numpy()[0]
    ours = model.explain(table[ids], "sa", target=target).gradient
    np.testing.assert_allclose(ours, grad, rtol=0, atol=1e-5)


def test_from_keras_refuses_what_it_cannot_convert():
    net = keras.Sequential([keras.Input(shape=(None, 3)), keras.layers.SimpleRNN(4),
                            keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="SimpleRNN"):
        lrp_lstm.from_keras(net)
    net = keras.Sequential([keras.Input(shape=(None, 3)),
                            keras.layers.GRU(4, reset_after=False), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="reset_after"):
        lrp_lstm.from_keras(net)
    net = keras.Sequential([keras.Input(shape=(None, 3)),
                            keras.layers.LSTM(4, return_sequences=True), keras.layers.GRU(4),
                            keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="all recurrent layers must be LSTMs"):
        lrp_lstm.from_keras(net)
    net = keras.Sequential([keras.Input(shape=(None, 3)), keras.layers.LSTM(4),
                            keras.layers.Dense(2, activation="relu")])
    with pytest.raises(ValueError, match="relu"):
        lrp_lstm.from_keras(net)
    net = keras.Sequential([keras.Input(shape=(None, 3)),
                            keras.layers.Bidirectional(keras.layers.LSTM(4), merge_mode="sum"),
                            keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="merge_mode"):
        lrp_lstm.from_keras(net)
    net = keras.Sequential([keras.Input(shape=(None, 3)),
                            keras.layers.LSTM(4, return_sequences=True),
                            keras.layers.Dense(3), keras.layers.LSTM(4), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="recurrent layers must come before pooling"):
        lrp_lstm.from_keras(net)


def logits_and_gradient(net, x, mask):
    """The final Dense layer's pre-activation (logits) and their gradient
    with respect to the embedded input x (T, e), by running the layers
    after the embedding by hand with the embedding's mask."""
    layers = [layer for layer in net.layers if not isinstance(
        layer, (keras.layers.Dropout, keras.layers.InputLayer, keras.layers.Embedding))]
    xv = tf.Variable(x[None])
    with tf.GradientTape() as tape:
        h = xv
        for layer in layers[:-1]:
            h = layer(h, mask=tf.constant(mask[None]))
        dense = layers[-1]
        logits = tf.matmul(h, dense.kernel) + dense.bias
        score = logits[0, 0]
    return logits.numpy()[0], tape.gradient(score, xv).numpy()[0]


def imdb_model(V=20000):
    """The official Keras example "Bidirectional LSTM on IMDB", as written,
    with mask_zero added to its Embedding as users often do."""
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(V, 128, mask_zero=True)(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True))(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64))(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


class precision:
    """Keras layers built inside compute in this float type."""

    def __init__(self, floatx):
        self.floatx = floatx

    def __enter__(self):
        self.old = keras.config.floatx(), keras.config.dtype_policy().name
        keras.config.set_floatx(self.floatx)
        keras.config.set_dtype_policy(self.floatx)

    def __exit__(self, *exc):
        keras.config.set_floatx(self.old[0])
        keras.config.set_dtype_policy(self.old[1])


@pytest.mark.parametrize("floatx", ["float32", "float64"])
def test_keras_imdb_example_converts_unedited(floatx):
    with precision(floatx):
        keras.utils.set_random_seed(3)
        net = imdb_model()
        model, table = lrp_lstm.from_keras(net)
    assert model.output == "sigmoid" and model.mask_zero and model.n_classes == 1
    dtype = np.dtype(floatx).type
    rng = np.random.default_rng(4)
    words = rng.integers(1, 20000, 12)
    for padded in (np.r_[np.zeros(4, int), words], np.r_[words, np.zeros(4, int)]):
        mask = padded != 0
        x = table[padded].astype(dtype)
        logits, grad = logits_and_gradient(net, x, mask)
        assert logits.dtype == dtype
        ours = model.explain(x, "sa", mask=mask, dtype=dtype)
        np.testing.assert_allclose(ours.scores, logits, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(ours.gradient, grad, rtol=0,
                                   atol=1e-5 * np.abs(grad).max())
        assert np.all(ours.gradient[~mask] == 0)
        lrp = model.explain(x, mask=mask, dtype=dtype)
        assert np.all(lrp.relevance[~mask] == 0) and np.all(lrp.word_relevance[~mask] == 0)
        # Keras's own output is the sigmoid of that logit
        p = net(padded[None]).numpy()[0, 0]
        assert p == pytest.approx(1 / (1 + np.exp(-float(logits[0]))), rel=1e-5)


@pytest.mark.parametrize("spec", ["lstm 64-32", "bigru 6-4"])
def test_per_layer_sizes_match_keras_in_float64(spec):
    with precision("float64"):
        keras.utils.set_random_seed(5)
        if spec == "lstm 64-32":
            rnns = [keras.layers.LSTM(64, return_sequences=True,
                                      bias_initializer="random_normal"),
                    keras.layers.LSTM(32, bias_initializer="random_normal")]
        else:
            rnns = [keras.layers.Bidirectional(keras.layers.GRU(
                        6, return_sequences=True, bias_initializer="random_normal")),
                    keras.layers.Bidirectional(keras.layers.GRU(
                        4, bias_initializer="random_normal"))]
        net = keras.Sequential([keras.Input(shape=(None, 7)), *rnns,
                                keras.layers.Dropout(0.5), keras.layers.Dense(3)])
        model = lrp_lstm.from_keras(net)
    assert model.hidden_sizes == ((64, 32) if spec == "lstm 64-32" else (6, 4))
    x = np.random.default_rng(6).normal(0, 1, (10, 7))
    logits, grad = logits_and_gradient(net, x, np.ones(10, bool))
    np.testing.assert_allclose(model.forward(x), logits, rtol=0, atol=1e-10)
    target = 0
    np.testing.assert_allclose(model.explain(x, "sa", target=target).gradient, grad,
                               rtol=0, atol=1e-10)
    lrp = model.explain(x, target=target, bias_factor=1.0)
    plain = model.explain(x, target=target, bias_factor=1.0, backend="numpy")
    np.testing.assert_allclose(lrp.relevance, plain.relevance, rtol=0,
                               atol=1e-10 * np.abs(plain.relevance).max())
    assert lrp.relevance.sum() + lrp.relevance_rest == pytest.approx(logits[0], abs=1e-10)


def sequential(*layers, inputs=(None, 3)):
    return keras.Sequential([keras.Input(shape=inputs), *layers])


@pytest.mark.parametrize("net, message", [
    (lambda: sequential(keras.layers.LSTM(4), keras.layers.Dense(8, activation="softmax"),
                        keras.layers.Dense(2)),
     r"layer 'dense\w*' \(Dense\): activation 'softmax' is not supported before the last"),
    (lambda: sequential(keras.layers.LSTM(4, return_sequences=True), keras.layers.Dense(2),
                        keras.layers.GlobalMaxPooling1D(), keras.layers.Dense(2)),
     r"\(GlobalMaxPooling1D\): a pooling layer must follow the last recurrent layer"),
    (lambda: sequential(keras.layers.Conv1D(4, 2), keras.layers.LSTM(4), keras.layers.Dense(2)),
     r"layer 'conv1d\w*' \(Conv1D\): it is not supported; from_keras reads"),
    (lambda: sequential(keras.layers.LSTM(4, return_sequences=True),
                        keras.layers.Embedding(5, 3), keras.layers.Dense(2)),
     r"\(Embedding\): an Embedding must come first"),
    (lambda: sequential(keras.layers.LSTM(4)),
     r"the last layer 'lstm\w*' \(LSTM\) is not a Dense layer"),
    (lambda: sequential(keras.layers.Dense(2)), r"no LSTM or GRU layer before layer 'dense"),
    (lambda: sequential(keras.layers.LSTM(4), keras.layers.Dense(2, activation="sigmoid")),
     r"\(Dense\): a sigmoid output must have one unit, got 2"),
    (lambda: sequential(keras.layers.LSTM(4, activation="relu"), keras.layers.Dense(2)),
     r"\(LSTM\) must use tanh and sigmoid activations"),
    (lambda: sequential(keras.layers.LSTM(4, go_backwards=True), keras.layers.Dense(2)),
     r"\(LSTM\) reads the sequence backwards"),
    (lambda: sequential(keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True)),
                        keras.layers.LSTM(4), keras.layers.Dense(2)),
     r"\(LSTM\): all recurrent layers must be Bidirectional, or none"),
])
def test_each_refusal_names_the_layer(net, message):
    with pytest.raises(ValueError, match=message):
        lrp_lstm.from_keras(net())


def keras_head_model(pooling, cell, bidirectional, hidden):
    """Embedding (mask_zero), two recurrent layers, a pooling (or none: per
    step), Dense layers; float64."""
    inputs = keras.Input(shape=(None,), dtype="int32")
    h = keras.layers.Embedding(30, 6, mask_zero=True)(inputs)
    for k in range(2):
        rnn = getattr(keras.layers, cell)(5, return_sequences=k == 0 or pooling != "last",
                                          bias_initializer="random_normal")
        h = (keras.layers.Bidirectional(rnn) if bidirectional else rnn)(h)
    if pooling in ("mean", "max"):
        h = {"mean": keras.layers.GlobalAveragePooling1D,
             "max": keras.layers.GlobalMaxPooling1D}[pooling]()(h)
    if hidden:
        h = keras.layers.Dense(8, activation=hidden)(h)
        h = keras.layers.Dropout(0.3)(h)
    dense = keras.layers.Dense(3, activation="softmax")
    h = (keras.layers.TimeDistributed(dense) if pooling == "none" else dense)(h)
    return keras.Model(inputs, h)


@pytest.mark.parametrize("pooling, cell, bidirectional, hidden", [
    ("mean", "LSTM", True, "relu"), ("max", "GRU", False, "tanh"),
    ("none", "GRU", True, None), ("none", "LSTM", False, "relu"),
    ("last", "LSTM", True, "tanh"), ("mean", "GRU", False, None)])
def test_keras_pooling_and_dense_heads_match_keras(pooling, cell, bidirectional, hidden):
    with precision("float64"):
        keras.utils.set_random_seed(7)
        net = keras_head_model(pooling, cell, bidirectional, hidden)
        model, table = lrp_lstm.from_keras(net)
    assert model.pooling == pooling and len(model.head) == (2 if hidden else 1)
    ids = np.random.default_rng(1).integers(1, 30, 9)
    expected = net(ids[None]).numpy()[0]
    x = table[ids]
    probs = lrp_lstm.text.probabilities(model.forward(x))
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-10)
    # the logits' gradient through the layers after the embedding
    step = 5 if pooling == "none" else None
    xv = tf.Variable(x[None])
    with tf.GradientTape() as tape:
        h = xv
        for layer in net.layers[2:-1]:
            h = layer(h)
        last = net.layers[-1]
        dense = last.layer if pooling == "none" else last
        logits = tf.matmul(h, dense.kernel) + dense.bias
        score = logits[0, step, 1] if pooling == "none" else logits[0, 1]
    grad = tape.gradient(score, xv).numpy()[0]
    ours = model.explain(x, "sa", target=1, step=step)
    np.testing.assert_allclose(ours.gradient, grad, rtol=0, atol=1e-10)
    # padded with token 0: Keras skips those steps (its mask), and so do we
    padded = np.r_[ids, [0, 0, 0]]
    expected = net(padded[None]).numpy()[0]
    got = lrp_lstm.text.probabilities(model.forward(table[padded], mask=padded != 0))
    if pooling == "none":
        got, expected = got[:len(ids)], expected[:len(ids)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
