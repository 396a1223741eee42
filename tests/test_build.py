"""What the build says about itself, and what a Debug build checks."""
import importlib.metadata

import numpy as np
import pytest

import lrp_lstm
from lrp_lstm import _kernels


def test_build_info_names_the_build():
    info = lrp_lstm.build_info()
    assert info["build_type"] in ("Release", "Debug", "RelWithDebInfo", "MinSizeRel")
    assert info["bounds_checks"] == (info["build_type"] == "Debug")


def test_plain_install_needs_no_matplotlib():
    plain = [r for r in importlib.metadata.requires("lrp-lstm") if "extra ==" not in r]
    assert plain and not any(r.startswith("matplotlib") for r in plain)
    assert any("matplotlib" in r and 'extra == "plot"' in r
               for r in importlib.metadata.requires("lrp-lstm"))


@pytest.mark.skipif(not lrp_lstm.build_info()["bounds_checks"],
                    reason="bounds checks exist in Debug builds only "
                           "(pip install -e . --no-build-isolation)")
def test_debug_build_catches_an_out_of_bounds_index():
    # no layer at all: the kernel's first index into layout is out of bounds
    with pytest.raises(IndexError):
        _kernels.workspace_size(np.zeros((0, 1, 8), np.intp), False, 1, 1)
