"""A user's own text classifier: save_classifier / load_classifier and the
CLI's --model."""
import json

import numpy as np
import pytest

import lrp_lstm

from test_text import run_cli

VOCAB = ["<pad>", "<unk>", "good", "bad", "film", "plot", "the", "was", "not", "great"]


def classifier(pooling="mean", seed=0, C=3, mask_zero=True):
    """A small classifier with an MLP head on a GRU, random weights."""
    rng = np.random.default_rng(seed)
    e, d = 4, 3

    def direction():
        return {"Wxh": rng.normal(0, 0.5, (3 * d, e)), "bxh": rng.normal(0, 0.1, 3 * d),
                "Whh": rng.normal(0, 0.5, (3 * d, d)), "bhh": rng.normal(0, 0.1, 3 * d)}

    head = [(rng.normal(0, 0.5, (5, 2 * d)), rng.normal(0, 0.1, 5)), "tanh",
            (rng.normal(0, 0.5, (C, 5)), None)]
    attention = ([(rng.normal(0, 0.5, (1, 2 * d)), None)] if pooling == "attention" else None)
    model = lrp_lstm.RecurrentModel(direction(), bwd=direction(), cell="gru", head=head,
                                    pooling=pooling, attention=attention, mask_zero=mask_zero)
    return lrp_lstm.TextClassifier(model, VOCAB, rng.normal(0, 1, (len(VOCAB), e)),
                                   class_names=[f"class {k}" for k in range(C)],
                                   lowercase=True)


@pytest.mark.parametrize("pooling", ["mean", "attention", "none"])
def test_classifier_round_trip(tmp_path, pooling):
    clf = classifier(pooling)
    path = tmp_path / "clf.npz"
    lrp_lstm.save_classifier(clf, path)
    back = lrp_lstm.load_classifier(path)
    assert back.vocab == clf.vocab and back.class_names == clf.class_names
    assert back.unknown_token == clf.unknown_token and back.lowercase
    assert back.model.pooling == pooling and back.model.mask_zero
    text = "The film was NOT great , the plot"
    step = 4 if pooling == "none" else None
    a, b = clf.explain(text, step=step), back.explain(text, step=step)
    assert a.tokens == b.tokens
    np.testing.assert_array_equal(a.word_relevance, b.word_relevance)
    # a model file is not a classifier file, and the error says which it is
    lrp_lstm.save_model(clf.model, tmp_path / "model.npz")
    with pytest.raises(lrp_lstm.io.ModelFileError, match="use load_model"):
        lrp_lstm.load_classifier(tmp_path / "model.npz")
    with pytest.raises(lrp_lstm.io.ModelFileError, match="use load_classifier"):
        lrp_lstm.load_model(path)


def test_cli_uses_your_own_classifier(tmp_path):
    clf = classifier("attention")
    path = tmp_path / "clf.npz"
    lrp_lstm.save_classifier(clf, path)
    text = "the plot was not good"
    res = run_cli("explain", text, "--model", str(path), "--json")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    expl = clf.explain(text)
    assert got["tokens"] == expl.tokens
    np.testing.assert_allclose(got["word_relevance"], expl.word_relevance, rtol=1e-12)
    res = run_cli("predict", text, "--model", str(path))
    assert res.returncode == 0 and res.stdout.startswith(
        f"{clf.predict(text)} ({clf.class_names[clf.predict(text)]})")
    res = run_cli("predict", "-", "--model", str(path), stdin="good film\n\nbad plot\n")
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [row["line"] for row in lines] == [1, 2, 3] and "error" in lines[1]
    assert lines[2]["predicted"] == clf.predict("bad plot")
    # word deletion on label-text lines, labels by index or class name
    data = tmp_path / "data.tsv"
    data.write_text("0\tthe film was good\nclass 2\tthe plot was not great at all\n"
                    "1\tbad\n")
    res = run_cli("evaluate", "--data", str(data), "--model", str(path), "--min-length", "2",
                  "--steps", "1", "--methods", "lrp", "--random-runs", "1")
    assert res.returncode == 0, res.stderr
    assert "Word deletion, 2 texts" in res.stdout
    data.write_text("7\tthe film\n")
    res = run_cli("evaluate", "--data", str(data), "--model", str(path))
    assert res.returncode == 1 and "unknown class '7'" in res.stderr
    res = run_cli("explain", "x", "--model", str(tmp_path / "missing.npz"))
    assert res.returncode == 1 and "missing.npz" in res.stderr


def test_cli_explains_a_tagger_at_a_token(tmp_path):
    clf = classifier("none", seed=1)
    path = tmp_path / "tagger.npz"
    lrp_lstm.save_classifier(clf, path)
    text = "the film was great"
    res = run_cli("explain", text, "--model", str(path), "--step", "3", "--json")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["step"] == 3
    np.testing.assert_allclose(got["word_relevance"], clf.explain(text, step=3).word_relevance,
                               rtol=1e-12)
    res = run_cli("explain", text, "--model", str(path))
    assert res.returncode == 1 and "give the step" in res.stderr
    # predict: one class per token
    classes = clf.predict(text)
    assert classes.shape == (4,)
    res = run_cli("predict", text, "--model", str(path), "--json")
    assert json.loads(res.stdout)["predicted"] == classes.tolist()
    res = run_cli("predict", text, "--model", str(path))
    assert [line.split()[1] for line in res.stdout.splitlines()] == [str(k) for k in classes]
    res = run_cli("predict", "-", "--model", str(path), stdin="the film\n")
    assert json.loads(res.stdout)["predicted"] == clf.predict("the film").tolist()
    res = run_cli("explain", text, "--model", str(path), "--step", "4")
    assert res.returncode == 1 and "step = 4 is out of range" in res.stderr
    data = tmp_path / "data.tsv"
    data.write_text("0\tthe film was great\n")
    res = run_cli("evaluate", "--data", str(data), "--model", str(path), "--min-length", "1")
    assert res.returncode == 1 and "one per step" in res.stderr


def test_text_tagger_explains_every_token():
    clf = classifier("none", seed=2)
    text = "the <pad> film was great"        # <pad> is token id 0: masked
    every = clf.explain_steps(text, ("lrp", "sa"))
    assert len(every) == 5 and every[1] is None
    classes = clf.predict(text)
    for t, expl in enumerate(every):
        if expl is None:
            continue
        assert expl["lrp"].step == t and expl["lrp"].tokens[t] == text.split()[t]
        assert expl["lrp"].predicted == classes[t] == expl["lrp"].target
        one = clf.explain(text, "lrp", step=t)
        np.testing.assert_allclose(expl["lrp"].word_relevance, one.word_relevance, rtol=1e-12)
        assert expl["sa"].word_relevance[1] == 0        # the padding token
    with pytest.raises(ValueError, match="explain_steps is for per-step models"):
        classifier("mean").explain_steps(text)
