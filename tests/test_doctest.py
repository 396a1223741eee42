"""The examples in the package's docstrings run as written."""
import doctest

import pytest

import lrp_lstm
from lrp_lstm import text


@pytest.mark.parametrize("module", [lrp_lstm, text])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
