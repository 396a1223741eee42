"""Text in, explanations out: the tokenizer, the text classifier and heatmaps."""
from __future__ import annotations

import functools
import html
import json
import os
import re

import numpy as np

from . import _validation as V

UNK = "<unk>"
SST_CLASS_NAMES = ("very negative", "negative", "neutral", "positive", "very positive")

# abbreviations that keep their final period inside a sentence (PTB style)
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "inc", "co",
                  "bros", "no", "vol", "sept", "al", "ltd", "prof", "mt", "gen"}
_CONTRACTIONS = ("'s", "'re", "'ve", "'ll", "'d", "'m")
_UNICODE = {"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'", "\u2026": "...",
            "\u2013": "--", "\u2014": "--"}
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lrb-", "]": "-rrb-", "{": "-lrb-", "}": "-rrb-"}


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Split raw English text into SST/PTB-style tokens.

    Punctuation is split off (commas and colons inside numbers stay),
    clitics are separated (``isn't`` -> ``is n't``, ``can't`` -> ``ca n't``,
    ``film's`` -> ``film 's``), double quotes become `````` and ``''``,
    brackets ``-lrb-`` and ``-rrb-``, and ``/`` and ``*`` are escaped as in
    the treebank. A final period, and periods after words that are not
    abbreviations, are split off.

    Every rule looks at one whitespace-delimited word at a time (and at
    whether it is the last), so words are tokenized once and remembered.

    >>> tokenize("It isn't the film's best (sadly).")
    ['it', 'is', "n't", 'the', 'film', "'s", 'best', '-lrb-', 'sadly', '-rrb-', '.']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    words = text.split()
    last = len(words) - 1
    tokens = []
    for k, word in enumerate(words):
        tokens += _word_tokens(word, k == last, lowercase)
    return tokens


_TRANSLATE = str.maketrans(_UNICODE)
_OPENING_QUOTE = re.compile(r'(^|[(\[{])"')
_ELLIPSIS = re.compile(r"\.\.\.+")
_DASHES = re.compile(r"--+")
_PUNCTUATION = re.compile(r"[;@#$%&?!=+()\[\]{}]")
_COMMA = re.compile(r",(?!\d)|(?<!\d),")
_COLON = re.compile(r":(?!\d)|(?<!\d):")


@functools.lru_cache(maxsize=1 << 17)
def _word_tokens(word, is_last, lowercase):
    """The tokens (a tuple) of one whitespace-delimited word of a text; is_last:
    it ends the text."""
    word = word.translate(_TRANSLATE)
    word = _OPENING_QUOTE.sub(r"\1 `` ", word)
    word = word.replace('"', " '' ")
    word = _ELLIPSIS.sub(" ... ", word)
    word = _DASHES.sub(" -- ", word)
    word = _PUNCTUATION.sub(r" \g<0> ", word)
    word = _COMMA.sub(" , ", word)
    word = _COLON.sub(" : ", word)
    parts = word.split()
    tokens = []
    for k, part in enumerate(parts):
        tokens.extend(_split_word(part, is_last=is_last and k == len(parts) - 1))
    out = []
    for tok in tokens:
        tok = _BRACKETS.get(tok, tok).replace("/", "\\/").replace("*", "\\*")
        out.append(tok.lower() if lowercase else tok)
    return tuple(out)


def _split_word(word, is_last):
    """Clitics, quotes and periods of one whitespace-delimited word."""
    if word in ("``", "''", "`", "'"):
        return [word]
    before, after = [], []
    if word.endswith(".") and word != "..." and len(word) > 1:
        stem = word[:-1]
        if is_last or ("." not in stem and len(stem) > 1
                       and stem.lower() not in _ABBREVIATIONS):
            if not (is_last and "." in stem):
                word, after = stem, ["."]
    if len(word) > 1 and word.startswith("'") and word[1:2].isalpha() and \
            word.lower() not in ("'em", "'til", "'n'") and \
            not any(word.lower() == c for c in _CONTRACTIONS):
        before, word = ["`"], word[1:]
    if len(word) > 1 and word.endswith("'") and word.lower() != "'n'":
        word, after = word[:-1], ["'"] + after
    low = word.lower()
    if low.endswith("n't") and len(word) > 3:
        return before + [word[:-3], word[-3:]] + after
    for clitic in _CONTRACTIONS:
        if low.endswith(clitic) and len(word) > len(clitic):
            return before + [word[:-len(clitic)], word[-len(clitic):]] + after
    return before + ([word] if word else []) + after


class TextExplanation:
    """The explanation of one text.

    tokens : list of T tokens; word_relevance : (T,) one relevance per token
    scores : (C,) output scores; probabilities : their softmax (C,), or for a
    sigmoid output (one score, the logit) the two classes' (1 - p, p)
    predicted : the predicted class; target : the explained score's index
    (0 for a sigmoid output); target_name : its class name
    method : "lrp", "sa" or "gi"; class_names : C names
    amplification : LRP only, (sum |R| + |rest|) / |score| (see Explanation)
    explanation : the array-level Explanation (relevance (T, e), ...)
    """

    def __init__(self, tokens, explanation, class_names, output="softmax"):
        self.tokens = list(tokens)
        self.explanation = explanation
        self.class_names = tuple(class_names)
        self.word_relevance = explanation.word_relevance
        self.scores = explanation.scores
        self.probabilities = probabilities(self.scores, output)
        self.predicted = int(np.argmax(self.probabilities))
        self.target = explanation.target
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
        if self.amplification is not None:
            out["amplification"] = self.amplification
        return out

    def to_html(self):
        """A self-contained HTML heatmap: each token on a background from blue
        (negative relevance) through white (zero) to red (positive), scaled
        by the largest absolute relevance."""
        scale = float(np.max(np.abs(self.word_relevance))) or 1.0
        spans = []
        for tok, r in zip(self.tokens, self.word_relevance):
            spans.append(
                f'<span class="lrp-token" data-relevance="{float(r):.6g}" '
                f'title="{html.escape(tok)}: {float(r):+.4g}" style="background-color:'
                f'{_rgb(float(r) / scale)};color:{"#fff" if abs(r) > 0.6 * scale else "#000"};'
                f'padding:2px 3px;margin:1px;'
                f'border-radius:3px;display:inline-block">{html.escape(tok)}</span>')
        name = self.target_name
        legend = (f'<div style="margin-top:6px;font-size:80%;color:#444">'
                  f'<span style="background:linear-gradient(to right,{_rgb(-1)},'
                  f'{_rgb(0)},{_rgb(1)});display:inline-block;width:120px;height:10px">'
                  f'</span> {-scale:.3g} &hellip; 0 &hellip; {scale:+.3g}</div>')
        return (f'<div class="lrp-lstm-heatmap" style="font-family:sans-serif;'
                f'line-height:1.8">'
                f'<div style="font-size:85%;color:#444">{html.escape(self.method.upper())} '
                f'relevance for class {self.target} ({html.escape(name)}); predicted '
                f'{self.predicted} ({html.escape(self.class_names[self.predicted])})</div>'
                f'<div>{" ".join(spans)}</div>{legend}</div>')

    def _repr_html_(self):
        return self.to_html()

    def plot(self, width=80):
        """A matplotlib figure of the heatmap (matplotlib is imported here):
        the tokens in reading order on boxes colored by their relevance (blue
        negative, white 0, red positive), wrapped into rows of at most
        `width` characters, so the figure's width stays bounded and no token
        overlaps another; a token longer than a row is cut with an ellipsis."""
        plt = _pyplot()
        from matplotlib.patches import Rectangle

        scale = float(np.max(np.abs(self.word_relevance))) or 1.0
        boxes = _wrap([len(t) for t in self.tokens], width)
        rows = boxes[-1][1] + 1 if boxes else 1
        # a monospaced font: one character is 0.6 em wide (a unit of x: 0.65 em,
        # for some room), a row 1.6 em high
        em = 9 / 72
        fig = plt.figure(figsize=(0.65 * em * (width + 2) + 0.4, 1.6 * em * rows + 0.7))
        ax = fig.add_axes((0.2 / fig.get_figwidth(), 0.15 / fig.get_figheight(),
                           1 - 0.4 / fig.get_figwidth(),
                           1 - 0.65 / fig.get_figheight()))
        for tok, r, (x, row, n) in zip(self.tokens, self.word_relevance, boxes):
            text = tok if len(tok) <= n else tok[:n - 1] + "\u2026"
            ax.add_patch(Rectangle((x, row + 0.1), n, 0.8, linewidth=0,
                                   color=[c / 255 for c in _color(float(r) / scale)]))
            ax.text(x + n / 2, row + 0.5, text, ha="center", va="center", fontsize=9,
                    family="monospace",
                    color="#fff" if abs(r) > 0.6 * scale else "#000")
        ax.set_xlim(-1, width + 1)
        ax.set_ylim(rows, 0)
        ax.axis("off")
        ax.set_title(f"{self.method.upper()}, class {self.target} ({self.target_name}); "
                     f"color scale \u00b1{scale:.3g}", fontsize=9)
        return fig


def _pyplot():
    """matplotlib.pyplot, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("the PNG heatmap and plots need matplotlib: "
                          "pip install 'lrp-lstm[plot]'") from None
    return plt


def _wrap(lengths, width):
    """Boxes (x, row, length) for tokens of the given lengths in rows of
    `width` characters, one character of space between tokens; a token
    longer than a row gets a row of its own, cut to the width."""
    boxes, x, row = [], 0, 0
    for n in lengths:
        n = min(max(n, 1), width)
        if x and x + n > width:
            x, row = 0, row + 1
        boxes.append((x, row, n))
        x += n + 1
    return boxes


def probabilities(scores, output="softmax"):
    """Class probabilities from scores (C,): their softmax, or for a sigmoid
    output (C = 1, the logit s) (1 - sigmoid(s), sigmoid(s))."""
    if output == "sigmoid":
        p = 1 / (1 + np.exp(-scores[0]))
        return np.array([1 - p, p])
    z = np.exp(scores - scores.max())
    return z / z.sum()


def _color(s):
    """(r, g, b) in 0..255 of a relevance scaled to [-1, 1]: blue, white at
    0, red; the heatmaps' one color scale."""
    s = min(1.0, max(-1.0, s))
    v = round(255 * (1 - abs(s)))
    return (255, v, v) if s >= 0 else (v, v, 255)


def _rgb(s):
    """_color as CSS."""
    return "rgb({},{},{})".format(*_color(s))


class TextClassifier:
    """An array-level model with its vocabulary, embeddings and tokenizer.

    model : the BiLSTM; vocab : list of V tokens (index = embedding row);
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
        """The tokens of `text` (see lrp_lstm.text.tokenize)."""
        return tokenize(text, self.lowercase)

    def token_ids(self, tokens):
        """Embedding rows of tokens; unknown tokens map to the unknown token."""
        unk = self.index.get(self.unknown_token)
        ids = [self.index.get(t, unk) for t in tokens]
        if unk is None and None in ids:
            missing = [t for t, i in zip(tokens, ids) if i is None]
            raise ValueError(f"tokens not in the vocabulary and no unknown token: {missing[:5]}")
        return np.array(ids, dtype=np.intp)

    def embed(self, text):
        """(tokens, x (T, e), mask) for one text; mask (T,) is None unless the
        model skips token id 0 (mask_zero), then False on those tokens."""
        if self.embeddings is None:
            raise ValueError("this classifier has no embeddings: pass embeddings= when loading it")
        tokens = self.tokenize(text)
        if not tokens:
            raise ValueError("text is empty: it has no tokens")
        ids = self.token_ids(tokens)
        mask = ids != 0 if self.model.mask_zero else None
        if mask is not None and not mask.any():
            raise ValueError("text has only padding tokens (token id 0)")
        return tokens, self.embeddings[ids], mask

    def _embed_all(self, texts, named=True):
        """embed() of each text; an error names the text's index (named)."""
        out = []
        for k, text in enumerate(texts):
            try:
                out.append(self.embed(text))
            except (ValueError, TypeError) as exc:
                if not named:
                    raise
                raise type(exc)(f"texts[{k}]: {exc}") from None
        return out

    def _scores(self, texts, n_threads=1, named=True):
        embedded = self._embed_all(texts, named)
        masks = [m for _, _, m in embedded] if self.model.mask_zero else None
        return self.model.forward_batch([x for _, x, _ in embedded], masks,
                                        n_threads=n_threads)

    def predict_proba(self, text: str) -> np.ndarray:
        """Class probabilities of one text: the softmax of the scores (C,),
        or (1 - p, p) for a sigmoid output."""
        return probabilities(self._scores([text], named=False)[0], self.model.output)

    def predict(self, text: str) -> int:
        """The predicted class of one text."""
        return int(np.argmax(self.predict_proba(text)))

    def predict_batch(self, texts: list[str], n_threads: int | None = None) -> np.ndarray:
        """Predicted classes (B,) of many texts."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of str; use predict() for one text")
        scores = self._scores(texts, n_threads)
        if self.model.output == "sigmoid":
            return (scores[:, 0] > 0).astype(np.intp)
        return scores.argmax(axis=1)

    def explain(self, text: str, method: str | tuple[str, ...] = "lrp",
                target: int | None = None, eps: float = 1e-3, bias_factor: float = 0.0,
                gate_rule: str = "signal", sum_rule: str = "epsilon", dtype=np.float64,
                n_threads: int | None = 1) -> TextExplanation | dict[str, TextExplanation]:
        """Explain one text; see BiLSTM.explain for the parameters.

        Returns a TextExplanation (a dict of them for a tuple of methods).
        """
        return self.explain_batch([text], method, None if target is None else [target],
                                  eps, bias_factor, gate_rule, sum_rule, n_threads=n_threads,
                                  dtype=dtype, _named=False)[0]

    def explain_batch(self, texts: list[str], method: str | tuple[str, ...] = "lrp",
                      targets: list[int | None] | None = None, eps: float = 1e-3,
                      bias_factor: float = 0.0, gate_rule: str = "signal",
                      sum_rule: str = "epsilon", n_threads: int | None = None,
                      dtype=np.float64,
                      _named=True) -> list[TextExplanation | dict[str, TextExplanation]]:
        """Explain many texts in one kernel call; one TextExplanation per text."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of str; use explain() for one text")
        embedded = self._embed_all(texts, _named)
        masks = [m for _, _, m in embedded] if self.model.mask_zero else None
        results = self.model.explain_batch([x for _, x, _ in embedded], method, targets, eps,
                                           bias_factor, gate_rule, sum_rule, masks,
                                           n_threads=n_threads, dtype=dtype)
        out = []
        for (tokens, _, _), res in zip(embedded, results):
            if isinstance(res, dict):
                out.append({m: TextExplanation(tokens, r, self.class_names, self.model.output)
                            for m, r in res.items()})
            else:
                out.append(TextExplanation(tokens, res, self.class_names, self.model.output))
        return out


def _model_dir():
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "sst_model")


def load_sst() -> TextClassifier:
    """The embedded SST model: a TextClassifier for five sentiment classes.

    Trained by model/train.py on the Stanford Sentiment Treebank; see the
    model card (model/README.md) for its data and accuracy.
    """
    from .model import BiLSTM

    folder = _model_dir()
    with np.load(os.path.join(folder, "sst_bilstm.npz"), allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    with open(os.path.join(folder, "vocab.txt"), encoding="utf-8") as f:
        vocab = f.read().split("\n")[:-1]
    with open(os.path.join(folder, "tokenizer.json")) as f:
        settings = json.load(f)
    embeddings = arrays.pop("embeddings")
    return TextClassifier(BiLSTM.from_dict(arrays), vocab, embeddings,
                          unknown_token=settings["unknown_token"],
                          lowercase=settings["lowercase"])
