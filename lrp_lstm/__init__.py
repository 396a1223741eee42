"""Explain LSTM text classifiers: LRP, Sensitivity Analysis and Gradient x Input.

>>> import lrp_lstm
>>> clf = lrp_lstm.load_sst()
>>> expl = clf.explain("neither funny nor suspenseful nor particularly well-drawn .")
>>> len(expl.tokens), expl.word_relevance.shape
(8, (8,))
"""
from . import _native, evaluate  # noqa: F401  (lrp_lstm.evaluate after a plain import)
from .convert import from_keras, from_torch
from .io import (load_classifier, load_model, load_reference_model, save_classifier,
                 save_model)
from ._validation import GATE_RULES, SUM_RULES
from .head import POOLINGS
from .model import (AmplificationWarning, BiLSTM, Explanation, RecurrentModel,
                    release_memory)
from .text import TextClassifier, TextExplanation, load_sst
from .tokenizer import tokenize

build_info = _native.kernels.build_info
__version__ = "0.1.0"     # the one place of the version: pyproject.toml reads it here
__all__ = ["AmplificationWarning", "BiLSTM", "Explanation", "GATE_RULES", "POOLINGS",
           "RecurrentModel", "SUM_RULES",
           "TextClassifier", "TextExplanation", "build_info", "from_keras", "from_torch",
           "load_classifier", "load_model", "load_reference_model", "load_sst",
           "release_memory", "save_classifier", "save_model", "tokenize"]
