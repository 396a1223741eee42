"""The compiled kernels (cython/_kernels.pyx), in the build for this CPU.

Every install has `_kernels`, compiled for the compiler's default target;
x86-64 builds also have `_kernels_v4`, the same source compiled for
x86-64-v4 (AVX-512), whose row loops between the matrix products use the
wider vectors. The products and activations choose their vectors at run time
in both. `kernels` is `_kernels_v4` where the CPU has AVX-512 and the
environment variable LRP_LSTM_VECTORS does not cap the vectors below it,
else `_kernels`.
"""
from . import _kernels as kernels

if kernels.build_info()["vectors"] == "x86-64-v4 (AVX-512)":
    try:
        from . import _kernels_v4 as kernels  # noqa: F811
    except ImportError:     # built without it (another compiler or CPU family)
        pass
