"""Per-layer hidden sizes, masked steps and sigmoid outputs, without other
frameworks (test_keras.py and test_torch.py compare with them)."""
import warnings

import numpy as np
import pytest

import lrp_lstm
from lrp_lstm.model import random_weights
from conftest import random_model


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("sizes", [(7, 3), (4, 6, 2)])
def test_per_layer_sizes_cython_equals_oracle_and_conserves(cell, bidirectional, sizes):
    rng = np.random.default_rng(len(sizes))
    model = lrp_lstm.BiLSTM.from_dict(random_weights(rng, 5, sizes, 3, bidirectional, True,
                                                     cell=cell), cell=cell)
    assert model.hidden_sizes == sizes and model.hidden_size == sizes[-1]
    xs = [rng.normal(0, 1, (T, 5)) for T in (1, 6, 13)]
    for sum_rule in ("epsilon", "abs"):
        fast = model.explain_batch(xs, ("lrp", "gi"), bias_factor=1.0, sum_rule=sum_rule)
        plain = model.explain_batch(xs, ("lrp", "gi"), bias_factor=1.0, sum_rule=sum_rule,
                                    backend="numpy")
        for a, b in zip(fast, plain):
            score = a["lrp"].scores[a["lrp"].target]
            for m in ("lrp", "gi"):
                np.testing.assert_allclose(a[m].relevance, b[m].relevance, rtol=0,
                                           atol=1e-10 * np.abs(b[m].relevance).max())
            total = a["lrp"].relevance.sum() + a["lrp"].relevance_rest
            assert abs(total - score) <= 1e-10 * max(1.0, abs(score))
    back = lrp_lstm.BiLSTM.from_dict(model.to_dict(), cell=cell)
    np.testing.assert_array_equal(back.forward(xs[2]), model.forward(xs[2]))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padded_row_strides_equal_the_oracle(cell):
    # rows of a multiple of 4 KiB get a padded stride in the kernels' buffers
    # (row_stride in cython/_kernels.pyx); in float64 here x (e = 512), the
    # gates (G = 512 in the first LSTM layer, 1536 and 2048 in the second)
    # and h (d = 512), in float32 the second layer's gates; the abs rule's
    # sums read x and h, explain_steps' copies are made row by row
    rng = np.random.default_rng(9)
    w = random_weights(rng, 512, (128, 512), 3, True, True, cell=cell)
    lengths = (1, 4, 7, 7, 2)
    xs = [rng.normal(0, 1, (T, 512)) for T in lengths]
    for pooling in ("last", "none"):
        model = lrp_lstm.BiLSTM.from_dict(w, cell=cell, pooling=pooling)
        steps = [T - 1 for T in lengths] if pooling == "none" else None
        for sum_rule in ("epsilon", "abs"):
            kwargs = dict(bias_factor=1.0, sum_rule=sum_rule, steps=steps)
            fast = model.explain_batch(xs, ("lrp", "sa", "gi"), **kwargs)
            plain = model.explain_batch(xs, ("lrp", "sa", "gi"), backend="numpy", **kwargs)
            single = model.explain_batch(xs, ("lrp", "sa", "gi"), dtype=np.float32, **kwargs)
            for a, b, c in zip(fast, plain, single):
                for m in ("lrp", "sa", "gi"):
                    scale = np.abs(b[m].relevance).max()
                    np.testing.assert_allclose(a[m].relevance, b[m].relevance, rtol=0,
                                               atol=1e-10 * scale)
                    np.testing.assert_allclose(c[m].relevance, b[m].relevance, rtol=0,
                                               atol=1e-3 * scale)
    every = model.explain_steps(xs[2], ("lrp", "sa"))
    for t in (0, 3, 6):
        one = model.explain(xs[2], ("lrp", "sa"), step=t, backend="numpy")
        for m in ("lrp", "sa"):
            np.testing.assert_allclose(every[t][m].relevance, one[m].relevance, rtol=0,
                                       atol=1e-10 * np.abs(one[m].relevance).max())


def test_per_layer_sizes_are_checked_with_a_named_shape():
    w = random_weights(np.random.default_rng(0), 5, (4, 3), 2)
    w["Wxh_Left_l1"] = w["Wxh_Left_l1"][:, :6]
    with pytest.raises(ValueError, match=r"Wxh \(fwd, layer 1\) must have shape \(12, 8\)"):
        lrp_lstm.BiLSTM.from_dict(w)


@pytest.mark.parametrize("padding", ["pre", "post", "inside"])
def test_masked_steps_are_skipped_and_get_exactly_zero(padding):
    model = random_model(seed=1, e=5, d=4, C=3, bias=True, n_layers=2)
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (9, 5))
    mask = np.ones(9, bool)
    mask[{"pre": slice(0, 3), "post": slice(6, 9), "inside": slice(3, 5)}[padding]] = False
    kept = x[mask]
    assert not np.allclose(model.forward(x), model.forward(kept))
    np.testing.assert_array_equal(model.forward(x, mask=mask), model.forward(kept))
    for backend in ("cython", "numpy"):
        res = model.explain(x, ("lrp", "sa", "gi"), mask=mask, backend=backend)
        alone = model.explain(kept, ("lrp", "sa", "gi"), backend=backend)
        for m in ("lrp", "sa", "gi"):
            assert res[m].relevance.shape == x.shape
            assert np.all(res[m].relevance[~mask] == 0)
            assert np.all(res[m].word_relevance[~mask] == 0)
            np.testing.assert_array_equal(res[m].relevance[mask], alone[m].relevance)
        assert np.all(res["sa"].gradient[~mask] == 0)
    batch = model.explain_batch([x, x[:4], x], masks=[mask, np.ones(4, bool), mask])
    np.testing.assert_allclose(batch[2].relevance, res["lrp"].relevance, rtol=1e-12,
                               atol=1e-15)
    np.testing.assert_allclose(model.forward_batch([x, x], masks=[mask, mask])[0],
                               model.forward(kept), rtol=1e-12)


def test_bad_masks_are_named():
    model = random_model(seed=3, e=4, d=3, C=2)
    x = np.zeros((5, 4))
    with pytest.raises(TypeError, match="mask must be a bool array"):
        model.explain(x, mask=np.ones(5))
    with pytest.raises(ValueError, match=r"mask must have shape \(5,\)"):
        model.explain(x, mask=np.ones(4, bool))
    with pytest.raises(ValueError, match="masks\\[1\\] selects no step"):
        model.explain_batch([x, x], masks=[np.ones(5, bool), np.zeros(5, bool)])
    with pytest.raises(ValueError, match="masks has 1 entries for 2 inputs"):
        model.forward_batch([x, x], masks=[np.ones(5, bool)])


def test_mask_zero_model_warns_without_a_mask_and_text_builds_it():
    rng = np.random.default_rng(4)
    w = random_weights(rng, 4, 3, 2)
    model = lrp_lstm.BiLSTM.from_dict(w, mask_zero=True)
    x = rng.normal(0, 1, (5, 4))
    with pytest.warns(UserWarning, match="mask_zero"):
        model.forward(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.forward(x, mask=np.ones(5, bool))
    vocab = ["<pad>", "<unk>", "good", "film"]
    clf = lrp_lstm.TextClassifier(model, vocab, rng.normal(0, 1, (4, 4)),
                                  unknown_token="<unk>")
    expl = clf.explain("<pad> <pad> good film")
    assert np.all(expl.word_relevance[:2] == 0) and np.any(expl.word_relevance[2:] != 0)
    np.testing.assert_array_equal(expl.scores, clf.explain("good film").scores)
    with pytest.raises(ValueError, match="only padding"):
        clf.explain("<pad>")


def test_sigmoid_output_is_explained_on_its_logit(tmp_path):
    rng = np.random.default_rng(5)
    w = random_weights(rng, 4, 3, 1, bias=True)
    model = lrp_lstm.BiLSTM.from_dict(w, output="sigmoid")
    with pytest.raises(ValueError, match="one score"):
        lrp_lstm.BiLSTM.from_dict(random_weights(rng, 4, 3, 2), output="sigmoid")
    vocab = ["<unk>", "good", "film", "dull"]
    clf = lrp_lstm.TextClassifier(model, vocab, rng.normal(0, 1, (4, 4)),
                                  class_names=("negative", "positive"))
    expl = clf.explain("good film", bias_factor=1.0)
    logit = expl.scores[0]
    p = 1 / (1 + np.exp(-logit))
    np.testing.assert_allclose(expl.probabilities, [1 - p, p])
    assert expl.predicted == int(logit > 0) == clf.predict("good film")
    assert expl.target == 0 and expl.target_name == "positive (logit)"
    assert expl.explanation.relevance.sum() + expl.explanation.relevance_rest == (
        pytest.approx(logit, abs=1e-12))
    with pytest.raises(ValueError, match="sigmoid output names its two classes"):
        lrp_lstm.TextClassifier(model, vocab, rng.normal(0, 1, (4, 4)), class_names=("a",))
    path = tmp_path / "m.npz"
    lrp_lstm.save_model(lrp_lstm.BiLSTM.from_dict(w, output="sigmoid", mask_zero=True), path)
    back = lrp_lstm.load_model(path)
    assert back.output == "sigmoid" and back.mask_zero
