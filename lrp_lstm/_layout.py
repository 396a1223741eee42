"""The memory layout of the arrays the kernels read: aligned buffers, the
weight panels of the products, and flat parameter arrays with every part
on a vector boundary (the recurrent layers' in model.py, the head's in
head.py)."""
import numpy as np

ALIGN = 64      # bytes: the kernels' widest vector loads


def aligned_empty(shape, dtype):
    """An uninitialized array whose data starts at a multiple of ALIGN
    bytes: the kernels' parameters and workspaces, so that their vector
    loads of the arrays placed at multiples of ALIGN inside (the weights'
    panels, a step's rows of pre-activations) do not straddle cache lines."""
    itemsize = np.dtype(dtype).itemsize
    n = int(np.prod(shape))
    buf = np.empty(n + ALIGN // itemsize, dtype)
    start = -buf.ctypes.data % ALIGN // itemsize
    return buf[start:start + n].reshape(shape)


def aligned(a):
    """A copy of the 1-d array a in aligned_empty's memory."""
    out = aligned_empty(a.shape, a.dtype)
    out[:] = a
    return out


def panels(A, width):
    """A (K, n) in the panels of the kernels' products (src/lrp_linalg.h):
    (ceil(n / width), K, width), the columns p width .. p width + width - 1
    of A in panel p, the last one padded with zeros."""
    K, n = A.shape
    padded = np.zeros((K, -(-n // width) * width), A.dtype)
    padded[:, :n] = A
    return padded.reshape(K, -1, width).transpose(1, 0, 2)


def place(parts, dtype):
    """The arrays `parts`, each flattened, end to end in one aligned 1-d
    array of dtype, each starting at a multiple of ALIGN bytes (zeros in the
    gaps and after the last, up to a multiple of ALIGN bytes, so that a copy
    appended stays aligned). Returns the array and the offset of each part."""
    align = ALIGN // np.dtype(dtype).itemsize
    offsets, n = [], 0
    for a in parts:
        n += -n % align
        offsets.append(n)
        n += np.size(a)
    out = aligned_empty(n + -n % align, dtype)
    out[:] = 0
    for a, offset in zip(parts, offsets):
        out[offset:offset + np.size(a)] = np.ravel(a)
    return out, offsets
