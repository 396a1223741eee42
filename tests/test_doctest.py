"""The examples in the package's docstrings run as written."""
import doctest

import pytest

import lrp_lstm
from lrp_lstm import tokenizer


@pytest.mark.parametrize("module", [lrp_lstm, tokenizer])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_readme_python_examples_run_as_written():
    import re
    from pathlib import Path

    import matplotlib
    matplotlib.use("Agg")
    readme = Path(__file__).parent.parent / "README.md"
    if not readme.exists():
        pytest.skip("README.md is not beside the tests")
    section = readme.read_text().split("## From Python")[1].split("\n## ")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 2
    namespace = {}
    for block in blocks:    # in order, in one namespace, as a reader would
        exec(compile(block, str(readme), "exec"), namespace)
