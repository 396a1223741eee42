"""The tokenizer: raw English text to SST/PTB-style tokens."""
from __future__ import annotations

import re
from itertools import chain

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
    whether it is the last), so each word's tokens are remembered (_MEMO).

    >>> tokenize("It isn't the film's best (sadly).")
    ['it', 'is', "n't", 'the', 'film', "'s", 'best', '-lrb-', 'sadly', '-rrb-', '.']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    words = text.split()
    if not words:
        return []
    lowercase = bool(lowercase)
    # each word's tuple from its memo, joined in C loops (map, chain)
    tokens = list(chain.from_iterable(map(_MEMO[lowercase, False].__getitem__, words[:-1])))
    tokens += _MEMO[lowercase, True][words[-1]]
    return tokens


class _Memo(dict):
    """The tokens (a tuple) of each word seen, for one (lowercase, is_last):
    a word's are computed when first asked for; emptied when it holds
    _MEMO_SIZE words, so that it stays bounded."""

    def __init__(self, lowercase, is_last):
        super().__init__()
        self.lowercase, self.is_last = lowercase, is_last

    def __missing__(self, word):
        if len(self) >= _MEMO_SIZE:
            self.clear()
        tokens = self[word] = _word_tokens(word, self.is_last, self.lowercase)
        return tokens


_MEMO = {(lowercase, is_last): _Memo(lowercase, is_last)
         for lowercase in (False, True) for is_last in (False, True)}
_MEMO_SIZE = 1 << 17


_TRANSLATE = str.maketrans(_UNICODE)
_OPENING_QUOTE = re.compile(r'(^|[(\[{])"')
_ELLIPSIS = re.compile(r"\.\.\.+")
_DASHES = re.compile(r"--+")
_PUNCTUATION = re.compile(r"[;@#$%&?!=+()\[\]{}]")
_COMMA = re.compile(r",(?!\d)|(?<!\d),")
_COLON = re.compile(r":(?!\d)|(?<!\d):")


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
