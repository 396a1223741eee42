"""The compiled kernels (cython/_kernels.pyx), in the build for this CPU.

Every install has `_kernels`, compiled for the compiler's default target;
x86-64 builds also have `_kernels_v3` and `_kernels_v4`, the same source
compiled for x86-64-v3 (AVX2, FMA) and x86-64-v4 (AVX-512), whose row loops
between the matrix products use the wider vectors. The products and
activations choose their vectors at run time in all three. `kernels` is
the build for the widest vectors the CPU has, as capped by the environment
variable LRP_LSTM_VECTORS (`vector_level()`).
"""
import importlib

from . import _kernels as kernels

# the build for each vector level above the baseline
_BUILDS = {4: "._kernels_v4", 3: "._kernels_v3"}

_build = _BUILDS.get(kernels.vector_level())
if _build is not None:
    try:
        kernels = importlib.import_module(_build, __package__)
    except ImportError:     # built without it (another compiler or CPU family)
        pass
