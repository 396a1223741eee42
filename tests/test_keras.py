"""Models converted from Keras agree with Keras (skipped without TensorFlow)."""
import numpy as np
import pytest

import lrp_lstm

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
                            keras.layers.LSTM(4, return_sequences=True), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="return_sequences=False"):
        lrp_lstm.from_keras(net)
