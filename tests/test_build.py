"""What the build says about itself, and what a Debug build checks."""
import importlib.metadata
import os
import platform
import subprocess
import sys

import pytest

import lrp_lstm


def test_build_info_names_the_build():
    info = lrp_lstm.build_info()
    assert info["build_type"] in ("Release", "Debug", "RelWithDebInfo", "MinSizeRel")
    assert info["bounds_checks"] == (info["build_type"] == "Debug")


def test_plain_install_needs_no_matplotlib():
    plain = [r for r in importlib.metadata.requires("lrp-lstm") if "extra ==" not in r]
    assert plain and not any(r.startswith("matplotlib") for r in plain)
    assert any("matplotlib" in r and 'extra == "plot"' in r
               for r in importlib.metadata.requires("lrp-lstm"))


ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
# no layer at all: the kernel's first index into layout is out of bounds
OUT_OF_BOUNDS = """
import numpy as np
import lrp_lstm
from lrp_lstm import _kernels
assert lrp_lstm.build_info()["build_type"] == "Debug", lrp_lstm.build_info()
try:
    _kernels.workspace_size(np.zeros((0, 1, 8), np.intp), False, 1, 1)
except IndexError as exc:
    print("IndexError:", exc)
"""


def test_debug_build_catches_an_out_of_bounds_index(tmp_path):
    # an editable install is a Debug build; otherwise one is built here from
    # this checkout (pip, CMake and the C compiler of a normal install)
    env = None
    if not lrp_lstm.build_info()["bounds_checks"]:
        target = tmp_path / "debug"
        res = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
             str(target), "--config-settings=cmake.build-type=Debug",
             f"--config-settings=build-dir={tmp_path / 'build'}", ROOT],
            capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        env = dict(os.environ, PYTHONPATH=str(target))
    res = subprocess.run([sys.executable, "-c", OUT_OF_BOUNDS], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.startswith("IndexError:")


def test_build_info_names_the_widest_vectors_of_this_cpu():
    # the flags of an x86-64 Linux CPU: x86-64-v4 is AVX-512 F, BW, CD, DQ
    # and VL on top of x86-64-v3, which includes AVX2, FMA, BMI2 and MOVBE
    if platform.machine() != "x86_64" or not os.path.exists("/proc/cpuinfo"):
        pytest.skip("the vector paths are x86-64's; the flags are read from /proc/cpuinfo")
    with open("/proc/cpuinfo") as f:
        flags = set(next(line for line in f if line.startswith("flags")).split())
    v3 = {"avx2", "fma", "bmi2", "movbe"} <= flags
    v4 = v3 and {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags
    expected = "x86-64-v4 (AVX-512)" if v4 else "x86-64-v3 (AVX2, FMA)" if v3 else "baseline"
    assert lrp_lstm.build_info()["vectors"] == expected
