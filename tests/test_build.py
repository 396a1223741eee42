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


def test_the_version_is_the_distributions():
    # pyproject.toml takes the version from lrp_lstm/__init__.py
    assert lrp_lstm.__version__ == importlib.metadata.version("lrp-lstm")


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
    _kernels.workspace_size(np.zeros((0, 1, 12), np.intp), False, 1, 1, 8)
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


VECTOR_NAMES = {4: "x86-64-v4 (AVX-512)", 3: "x86-64-v3 (AVX2, FMA)", 1: "baseline"}


def cpu_vector_level():
    """4, 3 or 1: the widest vector paths this CPU runs, from its flags."""
    # the flags of an x86-64 Linux CPU: x86-64-v4 is AVX-512 F, BW, CD, DQ
    # and VL on top of x86-64-v3, which includes AVX2, FMA, BMI2 and MOVBE
    if platform.machine() != "x86_64" or not os.path.exists("/proc/cpuinfo"):
        pytest.skip("the vector paths are x86-64's; the flags are read from /proc/cpuinfo")
    with open("/proc/cpuinfo") as f:
        flags = set(next(line for line in f if line.startswith("flags")).split())
    v3 = {"avx2", "fma", "bmi2", "movbe"} <= flags
    v4 = v3 and {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags
    return 4 if v4 else 3 if v3 else 1


def test_build_info_names_the_widest_vectors_of_this_cpu():
    assert lrp_lstm.build_info()["vectors"] == VECTOR_NAMES[cpu_vector_level()]


KERNEL_BUILDS = {4: "x86-64-v4", 3: "x86-64-v3", 1: "baseline"}


def test_the_kernels_built_for_this_cpu_run():
    # an x86-64 build has the kernels built for each level; the package
    # calls the one for the widest vectors the CPU has
    level = cpu_vector_level()
    from lrp_lstm import _kernels, _kernels_v3, _kernels_v4, _native
    builds = {4: _kernels_v4, 3: _kernels_v3, 1: _kernels}
    for k, module in builds.items():
        assert module.build_info()["kernels"] == KERNEL_BUILDS[k]
    assert _native.kernels is builds[level]
    assert lrp_lstm.build_info()["kernels"] == KERNEL_BUILDS[level]


# SciPy's BLAS, which only the abs sum rule's products use, is imported on
# that rule's first call, not with the package (scipy.linalg took 70 % of
# the import's time); its products then agree with the oracle, and its
# threads are limited around the kernels' call like the others'. The other
# products never reach it, once loaded: the gradient through an attention
# net of 600 units, 32 steps at a time, is the same bit for bit before and
# after (BLAS blocks a sum over 600 terms, which changes its rounding).
LAZY_BLAS = """
import sys
import numpy as np
import lrp_lstm
from lrp_lstm.model import random_weights
print("scipy.linalg" in sys.modules)
clf = lrp_lstm.load_sst()
clf.explain_batch(["a fine film"] * 40, ("lrp", "sa"))
print("scipy.linalg" in sys.modules)
rng = np.random.default_rng(0)
attention = [(rng.normal(0, 0.1, (600, 64)), np.zeros(600)), "tanh",
             (rng.normal(0, 0.1, (1, 600)), np.zeros(1))]
pooled = lrp_lstm.RecurrentModel.from_dict(random_weights(rng, 8, 32, 3), pooling="attention",
                                          attention=attention)
x = rng.normal(0, 1, (40, 8))
before = pooled.explain(x, "sa").gradient
xs = [np.random.default_rng(k).normal(0, 1, (40, 60)) for k in range(64)]
fast = clf.model.explain_batch(xs, "lrp", sum_rule="abs")
print("scipy.linalg" in sys.modules)
plain = clf.model.explain_batch(xs, "lrp", sum_rule="abs", backend="numpy")
print(max(float(np.abs(a.relevance - b.relevance).max() / np.abs(b.relevance).max())
          for a, b in zip(fast, plain)) < 1e-12)
print(np.array_equal(pooled.explain(x, "sa").gradient, before))
# the BLAS thread limit, set around the kernels' call, reaches every BLAS loaded
import threadpoolctl
from lrp_lstm import model
limited = {c.filepath for c in model._blas_limiter.lib_controllers}
print({i["filepath"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}
      <= limited)
"""


def test_scipy_blas_is_imported_on_the_abs_rules_first_call(tmp_path):
    res = subprocess.run([sys.executable, "-c", LAZY_BLAS], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split() == ["False", "False", "True", "True", "True", "True"]


# an install without the x86-64-v3 and v4 builds (another compiler, another
# CPU family): the package falls back to the baseline build
WITHOUT_WIDE_BUILDS = """
import sys
import numpy as np

class NoWideBuilds:
    def find_spec(self, name, path=None, target=None):
        if name in ("lrp_lstm._kernels_v3", "lrp_lstm._kernels_v4"):
            raise ImportError(name + " is not built here")
        return None

sys.meta_path.insert(0, NoWideBuilds())
import lrp_lstm
print(lrp_lstm.build_info()["kernels"])
clf = lrp_lstm.load_sst()
print(clf.explain("a fine film").tokens)
"""


def test_without_the_wide_builds_the_baseline_build_runs(tmp_path):
    res = subprocess.run([sys.executable, "-c", WITHOUT_WIDE_BUILDS], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.splitlines() == ["baseline", "['a', 'fine', 'film']"]


# every product path on odd sizes: panels with a narrow last one, row
# blocks with tails, one-row steps, a matrix larger than the caches; LSTM
# and GRU, both sum rules, float64 against the oracle and float32 against
# float64
NARROWER_PATHS = """
import numpy as np
import lrp_lstm
from lrp_lstm.model import random_weights
print(lrp_lstm.build_info()["vectors"], lrp_lstm.build_info()["kernels"])
rng = np.random.default_rng(3)
xs = [rng.normal(0, 1, (T, 37)) for T in rng.integers(1, 30, 45)]
for cell in ("lstm", "gru"):
    model = lrp_lstm.BiLSTM.from_dict(random_weights(rng, 37, (21, 13), 3, True, True,
                                                     cell=cell), cell=cell)
    for sum_rule in ("epsilon", "abs"):
        methods = ("lrp", "sa", "gi")
        fast = model.explain_batch(xs, methods, sum_rule=sum_rule)
        plain = model.explain_batch(xs, methods, sum_rule=sum_rule, backend="numpy")
        single = model.explain_batch(xs, methods, sum_rule=sum_rule, dtype=np.float32)
        for a, b, c in zip(fast, plain, single):
            for m in ("lrp", "sa", "gi"):
                scale = np.abs(b[m].relevance).max()
                assert np.abs(a[m].relevance - b[m].relevance).max() <= 1e-10 * scale, m
                assert np.abs(c[m].relevance - b[m].relevance).max() <= 1e-3 * scale, m
# the one-row product's tiles at this width equal the panel product's
# (four copies: two chunks of two rows)
x = rng.normal(0, 1, (4, 5))
for d in range(1, 129, 3):
    model = lrp_lstm.RecurrentModel.random(5, d, 2, d)
    for dtype in (np.float64, np.float32):
        one = model.explain(x, "lrp", dtype=dtype).relevance
        for res in model.explain_batch([x] * 4, "lrp", dtype=dtype, n_threads=1):
            assert np.array_equal(res.relevance, one), d
# and the panel product's tiles that prefetch, for matrices of more than 4 MiB
model = lrp_lstm.RecurrentModel.random(8, 1024, 2, 5, bidirectional=False)
x = rng.normal(0, 1, (5, 8))
for dtype in (np.float64, np.float32):
    one = model.explain(x, "sa", dtype=dtype).relevance
    for res in model.explain_batch([x] * 32, "sa", dtype=dtype, n_threads=1):
        assert np.array_equal(res.relevance, one)
print("ok")
"""


@pytest.mark.parametrize("level", [3, 1])
def test_narrower_vector_paths_equal_the_oracle(level, tmp_path):
    if cpu_vector_level() < level:
        pytest.skip(f"this CPU has no {VECTOR_NAMES[level]} instructions")
    env = dict(os.environ, LRP_LSTM_VECTORS=str(level))
    # run outside the checkout, whose lrp_lstm/ has no compiled kernels
    res = subprocess.run([sys.executable, "-c", NARROWER_PATHS], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    # capped, the kernels' build for that level runs
    assert res.stdout.splitlines() == [f"{VECTOR_NAMES[level]} {KERNEL_BUILDS[level]}", "ok"]
