"""The compiled kernels (cython/_kernels.pyx), in the build for this CPU.

Every install has `_kernels`, compiled for the compiler's default target;
x86-64 builds also have `_kernels_v3` and `_kernels_v4`, the same source
compiled for x86-64-v3 (AVX2, FMA) and x86-64-v4 (AVX-512), whose row loops
between the matrix products use the wider vectors. The products and
activations choose their vectors at run time in all three. `kernels` is
the build for the widest vectors the CPU has, as capped by the environment
variable LRP_LSTM_VECTORS (see `build_info()['vectors']`).
"""
import importlib

from . import _kernels as kernels

_BUILDS = {"x86-64-v4 (AVX-512)": "._kernels_v4", "x86-64-v3 (AVX2, FMA)": "._kernels_v3"}

_vectors = kernels.build_info()["vectors"]
if _vectors in _BUILDS:
    try:
        kernels = importlib.import_module(_BUILDS[_vectors], __package__)
    except ImportError:     # built without it (another compiler or CPU family)
        pass
