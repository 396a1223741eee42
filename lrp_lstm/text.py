"""Text in, explanations out: the text classifier and its explanations
(tokenizer.py splits the text, heatmap.py draws the explanations)."""
from __future__ import annotations

import json
import os
from itertools import chain, repeat

import numpy as np

from . import _validation as V
from . import heatmap
from .tokenizer import tokenize

UNK = "<unk>"
SST_CLASS_NAMES = ("very negative", "negative", "neutral", "positive", "very positive")

class TextExplanation:
    """The explanation of one text.

    tokens : list of T tokens; word_relevance : (T,) one relevance per token
    scores : (C,) output scores; probabilities : their softmax (C,), or for a
    sigmoid output (one score, the logit) the two classes' (1 - p, p)
    predicted : the predicted class; target : the explained score's index
    (0 for a sigmoid output); target_name : its class name
    step : a per-step model's explained token (None for other models)
    method : "lrp", "sa" or "gi"; class_names : C names
    amplification : LRP only, (sum |R| + |rest|) / |score| (see Explanation)
    explanation : the array-level Explanation (relevance (T, e), ...)
    """

    def __init__(self, tokens, explanation, class_names, output="softmax", probs=None,
                 predicted=None):
        # probs, predicted: the probabilities and the predicted class when the
        # caller has them (a batch's, at once)
        self.tokens = list(tokens)
        self.explanation = explanation
        self.class_names = tuple(class_names)
        self.word_relevance = explanation.word_relevance
        self.scores = explanation.scores
        self.probabilities = probabilities(self.scores, output) if probs is None else probs
        self.predicted = (int(self.probabilities.argmax()) if predicted is None
                          else predicted)
        self.target = explanation.target
        self.step = explanation.step
        # a sigmoid output's one score is the logit of its second class
        self.target_name = (f"{self.class_names[1]} (logit)" if output == "sigmoid"
                            else self.class_names[self.target])
        self.method = explanation.method
        self.amplification = explanation.amplification

    def __repr__(self):
        words = " ".join(f"{t}({r:+.3f})" for t, r in zip(self.tokens, self.word_relevance))
        return (f"TextExplanation(method={self.method!r}, target={self.target}, "
                f"predicted={self.predicted}: {words})")

    def to_dict(self):
        """A JSON-ready dict: tokens, word_relevance, scores, probabilities,
        predicted, target, method, and for LRP amplification."""
        out = {"tokens": self.tokens,
               "word_relevance": [float(r) for r in self.word_relevance],
               "scores": [float(s) for s in self.scores],
               "probabilities": [float(p) for p in self.probabilities],
               "predicted": self.predicted, "target": self.target, "method": self.method}
        if self.step is not None:
            out["step"] = self.step
        if self.amplification is not None:
            out["amplification"] = self.amplification
        return out

    def to_html(self):
        """A self-contained HTML heatmap (see lrp_lstm.heatmap.to_html)."""
        return heatmap.to_html(self)

    def _repr_html_(self):
        return self.to_html()

    def plot(self, width=80):
        """A matplotlib figure of the heatmap, tokens wrapped into rows of at
        most `width` characters (see lrp_lstm.heatmap.plot)."""
        return heatmap.plot(self, width)


def probabilities(scores, output="softmax"):
    """Class probabilities from scores (..., C), along the last axis: their
    softmax, or for a sigmoid output (C = 1, the logit s) (1 - sigmoid(s),
    sigmoid(s))."""
    if output == "sigmoid":
        p = 1 / (1 + np.exp(-scores[..., :1]))
        return np.concatenate([1 - p, p], axis=-1)
    z = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class TextClassifier:
    """An array-level model with its vocabulary, embeddings and tokenizer.

    model : the RecurrentModel; vocab : list of V tokens (index = embedding row);
    embeddings : (V, e) or None; unknown_token : the token that unknown words
    map to (must be in vocab); class_names : one name per class.
    """

    def __init__(self, model, vocab, embeddings=None, unknown_token=UNK,
                 class_names=None, lowercase=True):
        self.model = model
        self.vocab = list(vocab)
        self.index = {w: k for k, w in enumerate(self.vocab)}
        if len(self.index) != len(self.vocab):
            raise ValueError("vocab holds a token twice")
        if embeddings is not None:
            embeddings = V.as_float_array(embeddings, "embeddings", 2)
            V.check_shape(embeddings, "embeddings", (len(self.vocab), model.input_size))
        self.embeddings = embeddings
        self.unknown_token = unknown_token
        self.lowercase = lowercase
        n_classes = 2 if model.output == "sigmoid" else model.n_classes
        if class_names is None:
            class_names = (SST_CLASS_NAMES if n_classes == 5
                           else tuple(str(k) for k in range(n_classes)))
        if len(class_names) != n_classes:
            raise ValueError(f"{len(class_names)} class names for {n_classes} classes"
                             + (" (a sigmoid output names its two classes)"
                                if model.output == "sigmoid" else ""))
        self.class_names = tuple(class_names)

    def __repr__(self):
        return f"TextClassifier({self.model!r}, vocab={len(self.vocab)} tokens)"

    def __getstate__(self):
        # the weights, vocabulary and settings; the token index is rebuilt
        return {"model": self.model, "vocab": self.vocab, "embeddings": self.embeddings,
                "unknown_token": self.unknown_token, "class_names": self.class_names,
                "lowercase": self.lowercase}

    def __setstate__(self, state):
        self.__init__(**state)

    def tokenize(self, text):
        """The tokens of `text` (see lrp_lstm.tokenizer.tokenize)."""
        return tokenize(text, self.lowercase)

    def token_ids(self, tokens):
        """Embedding rows of tokens; unknown tokens map to the unknown token."""
        unk = self.index.get(self.unknown_token)
        ids = list(map(self.index.get, tokens, repeat(unk)))
        if unk is None and None in ids:
            missing = [t for t, i in zip(tokens, ids) if i is None]
            raise ValueError(f"tokens not in the vocabulary and no unknown token: {missing[:5]}")
        return np.fromiter(ids, np.intp, len(ids))

    def embed(self, text):
        """(tokens, x (T, e), mask) for one text; mask (T,) is None unless the
        model skips token id 0 (mask_zero), then False on those tokens."""
        token_lists, xs, masks = self._embed_all([text], named=False)
        return token_lists[0], xs[0], None if masks is None else masks[0]

    def _embed_all(self, texts, named=True):
        """embed() of each text as (token lists, inputs, masks), masks None
        unless the model has mask_zero; the vocabulary is looked up once for
        all tokens, and the inputs are views of one array. An error names
        the text's index (named)."""
        if self.embeddings is None:
            raise ValueError("this classifier has no embeddings: pass embeddings= when loading it")

        def fail(k, exc):
            raise (type(exc)(f"texts[{k}]: {exc}") if named else exc) from None

        token_lists = []
        for k, text in enumerate(texts):
            try:
                tokens = self.tokenize(text)
            except TypeError as exc:
                fail(k, exc)
            if not tokens:
                fail(k, ValueError("text is empty: it has no tokens"))
            token_lists.append(tokens)
        try:
            ids = self.token_ids(list(chain.from_iterable(token_lists)))
        except ValueError:      # an unknown token without an unknown token: whose?
            for k, tokens in enumerate(token_lists):
                try:
                    self.token_ids(tokens)
                except ValueError as exc:
                    fail(k, exc)
            raise
        ends = np.cumsum([len(tokens) for tokens in token_lists]).tolist()
        rows = list(zip([0] + ends[:-1], ends))
        x = self.embeddings[ids]
        xs = [x[a:b] for a, b in rows]
        if not self.model.mask_zero:
            return token_lists, xs, None
        kept = ids != 0
        masks = [kept[a:b] for a, b in rows]
        for k, mask in enumerate(masks):
            if not mask.any():
                fail(k, ValueError("text has only padding tokens (token id 0)"))
        return token_lists, xs, masks

    def _scores(self, texts, n_threads=1, named=True):
        _, xs, masks = self._embed_all(texts, named)
        return self.model.forward_batch(xs, masks, n_threads=n_threads)

    def predict_proba(self, text: str) -> np.ndarray:
        """Class probabilities of one text: the softmax of the scores (C,),
        or (1 - p, p) for a sigmoid output; for a per-step model one row
        per token (T, classes)."""
        return probabilities(self._scores([text], named=False)[0], self.model.output)

    def predict(self, text: str) -> int | np.ndarray:
        """The predicted class of one text (for a per-step model, (T,): one
        per token)."""
        probs = self.predict_proba(text)
        return probs.argmax(axis=-1) if self.model.per_step else int(np.argmax(probs))

    def predict_proba_batch(self, texts: list[str],
                            n_threads: int | None = None) -> np.ndarray | list[np.ndarray]:
        """Class probabilities (B, classes) of many texts, in one kernel call
        (a per-step model: a list of (T_k, classes))."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of str; use predict_proba() for one text")
        scores = self._scores(texts, n_threads)
        if self.model.per_step:
            return [probabilities(s, self.model.output) for s in scores]
        return probabilities(scores, self.model.output)

    def predict_batch(self, texts: list[str],
                      n_threads: int | None = None) -> np.ndarray | list[np.ndarray]:
        """Predicted classes (B,) of many texts (a per-step model: a list
        of (T_k,))."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of str; use predict() for one text")
        probs = self.predict_proba_batch(texts, n_threads)
        if self.model.per_step:
            return [p.argmax(axis=-1) for p in probs]
        return probs.argmax(axis=1)

    def explain(self, text: str, method: str | tuple[str, ...] = "lrp",
                target: int | None = None, eps: float = 1e-3, bias_factor: float = 0.0,
                gate_rule: str = "signal", sum_rule: str = "epsilon", dtype=np.float64,
                n_threads: int | None = 1,
                step: int | None = None) -> TextExplanation | dict[str, TextExplanation]:
        """Explain one text; see RecurrentModel.explain for the parameters
        (step: the token whose output a per-step model explains).

        Returns a TextExplanation (a dict of them for a tuple of methods).
        """
        return self.explain_batch([text], method, None if target is None else [target],
                                  eps, bias_factor, gate_rule, sum_rule, n_threads=n_threads,
                                  dtype=dtype, steps=None if step is None else [step],
                                  _named=False)[0]

    def explain_steps(self, text: str, method: str | tuple[str, ...] = "lrp",
                      **kwargs) -> list[TextExplanation | dict[str, TextExplanation] | None]:
        """A per-step model's explanation of every token of one text, each
        of that token's predicted class, in one batched call: a list with
        one TextExplanation per token (None on padding tokens); kwargs as
        for RecurrentModel.explain_steps."""
        tokens, x, mask = self.embed(text)
        results = self.model.explain_steps(x, method, mask=mask, **kwargs)
        return [None if res is None else self._text_explanation(tokens, res)
                for res in results]

    def _text_explanation(self, tokens, res, probs=None, predicted=None):
        """The TextExplanation (or a dict of them) of an array-level result;
        probs, predicted: its class probabilities and predicted class, if
        known."""
        if isinstance(res, dict):
            return {m: TextExplanation(tokens, r, self.class_names, self.model.output, probs,
                                       predicted)
                    for m, r in res.items()}
        return TextExplanation(tokens, res, self.class_names, self.model.output, probs,
                               predicted)

    def explain_batch(self, texts: list[str], method: str | tuple[str, ...] = "lrp",
                      targets: list[int | None] | None = None, eps: float = 1e-3,
                      bias_factor: float = 0.0, gate_rule: str = "signal",
                      sum_rule: str = "epsilon", n_threads: int | None = None,
                      dtype=np.float64, steps: list[int] | None = None,
                      _named=True) -> list[TextExplanation | dict[str, TextExplanation]]:
        """Explain many texts in one kernel call; one TextExplanation per text
        (steps: per-step models, one token index per text)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of str; use explain() for one text")
        token_lists, xs, masks = self._embed_all(texts, _named)
        results = self.model.explain_batch(xs, method, targets, eps, bias_factor, gate_rule,
                                           sum_rule, masks, n_threads=n_threads, dtype=dtype,
                                           steps=steps, _name=None if _named else "x")
        if not results:
            return []
        first = [next(iter(res.values())) if isinstance(res, dict) else res for res in results]
        probs = probabilities(np.array([r.scores for r in first]), self.model.output)
        return [self._text_explanation(tokens, res, p, c)
                for tokens, res, p, c in zip(token_lists, results, probs,
                                             probs.argmax(axis=1).tolist())]


def _model_dir():
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "sst_model")


def load_sst() -> TextClassifier:
    """The embedded SST model: a TextClassifier for five sentiment classes.

    Trained by model/train.py on the Stanford Sentiment Treebank; see the
    model card (model/README.md) for its data and accuracy.
    """
    from .model import RecurrentModel

    folder = _model_dir()
    with np.load(os.path.join(folder, "sst_bilstm.npz"), allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    with open(os.path.join(folder, "vocab.txt"), encoding="utf-8") as f:
        vocab = f.read().split("\n")[:-1]
    with open(os.path.join(folder, "tokenizer.json")) as f:
        settings = json.load(f)
    embeddings = arrays.pop("embeddings")
    return TextClassifier(RecurrentModel.from_dict(arrays), vocab, embeddings,
                          unknown_token=settings["unknown_token"],
                          lowercase=settings["lowercase"])
