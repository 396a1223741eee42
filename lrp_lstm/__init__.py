"""Explain LSTM text classifiers: LRP, Sensitivity Analysis and Gradient x Input.

>>> import lrp_lstm
>>> model = lrp_lstm.BiLSTM.from_dict(weights)          # doctest: +SKIP
>>> model.explain(x, method="lrp", target=4).word_relevance  # doctest: +SKIP
"""
from .io import load_reference_model
from .model import BiLSTM, Explanation

__version__ = "0.1.0"
__all__ = ["BiLSTM", "Explanation", "load_reference_model"]
