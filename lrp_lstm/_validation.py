"""Input checks shared by every backend.

The compiled kernels run without bounds checks, so these checks are all that
stands between a bad shape and corrupted memory: every array that reaches a
kernel has passed through here.
"""
import numbers
import os

import numpy as np

from ._native import kernels

# the methods, in the order of the kernels' word-level rows
METHODS = kernels.WORD_ROWS
# LRP rules for the products gate * signal, numbered as in the kernels
GATE_RULES = kernels.GATE_RULES
# LRP rules for the sums (the cell state and the pre-activations): the
# reference's epsilon rule, and shares |term| / sum |term|
SUM_RULES = ("epsilon", "abs")
# recurrent cells and their gates in the kernels' order (see cython/_kernels.pyx)
CELLS = {"lstm": "igfo", "gru": "rzn"}
DTYPES = (np.float32, np.float64)


def as_float_array(value, name, ndim, check_finite=True):
    """Return `value` as a floating-point ndarray of rank `ndim`.

    Raises TypeError for non-floating dtypes (bool, integer, complex, object,
    strings) and ValueError for a wrong rank or (with check_finite) for
    NaN/infinity.
    """
    if value is None:
        raise ValueError(f"{name} is missing")
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must hold floating-point numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if check_finite and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def check_shape(arr, name, shape):
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")


def check_dtype(dtype):
    """Return np.float32 or np.float64 for a dtype-like, else raise TypeError."""
    try:
        dt = np.dtype(dtype).type
    except TypeError:
        dt = None
    if dt not in DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def check_input(x, input_size, dtype, name="x"):
    """Validate one input sequence; return it C-contiguous in `dtype`, shape (T, e).

    NaN and infinity are left for the backends to detect (the kernels scan
    each chunk's input before computing it).
    """
    arr = as_float_array(x, name, 2, check_finite=False)
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (T = 0): need at least one time step")
    if arr.shape[1] != input_size:
        raise ValueError(
            f"{name} must have shape (T, {input_size}), got {arr.shape}")
    if arr.dtype == dtype and arr.flags.c_contiguous:
        return arr
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(arr, dtype=dtype)


def check_inputs(xs, input_size, dtype, name=None):
    """check_input of each input of a batch, named xs[k] (or `name`). Those
    that need no conversion, C-contiguous (T, input_size) ndarrays of
    `dtype` with T > 0, pass a quick test; the others, and every input with
    a problem, go through check_input."""
    return [x if (type(x) is np.ndarray and x.dtype == dtype and x.ndim == 2
                  and x.shape[0] and x.shape[1] == input_size and x.flags.c_contiguous)
            else check_input(x, input_size, dtype, name or f"xs[{k}]")
            for k, x in enumerate(xs)]


def check_mask(mask, T, name="mask"):
    """Return mask as a (T,) bool array with at least one True step."""
    arr = np.asarray(mask)
    if arr.dtype != np.bool_:
        raise TypeError(f"{name} must be a bool array (True on the steps to use), "
                        f"got dtype {arr.dtype}")
    if arr.shape != (T,):
        raise ValueError(f"{name} must have shape ({T},) like its input, got {arr.shape}")
    if not arr.any():
        raise ValueError(f"{name} selects no step: at least one must be True")
    return arr


def check_target(target, n_classes, name="target"):
    """Return target as an int in 0..C-1, or -1 for None (the predicted class)."""
    if target is None:
        return -1
    if isinstance(target, (bool, np.bool_)) or not isinstance(target, numbers.Integral):
        raise TypeError(f"{name} must be an integer class index or None, got {target!r}")
    if not 0 <= target < n_classes:
        raise ValueError(f"{name} {target} is not a class: expected 0..{n_classes - 1}")
    return int(target)


def check_methods(method):
    """Return (tuple of methods, whether a single method was asked for)."""
    single = isinstance(method, str)
    if not single and not isinstance(method, (tuple, list)):
        raise TypeError(f"method must be one of {METHODS} or a tuple of them, got {method!r}")
    methods = (method,) if single else tuple(method)
    if not methods:
        raise ValueError("method is empty: give one of 'lrp', 'sa', 'gi'")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}: expected one of {METHODS}")
    if len(set(methods)) != len(methods):
        raise ValueError(f"method lists a method twice: {methods}")
    return methods, single


def check_eps(eps):
    if type(eps) is float and eps > 0 and eps != float("inf"):
        return eps
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a real number, got {eps!r}")
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be positive and finite, got {eps!r}")
    return float(eps)


def check_bias_factor(bias_factor):
    """Return bias_factor as a float in [0, 1] (the share of the bias and
    stabilizer relevance that is redistributed)."""
    if type(bias_factor) is float and 0.0 <= bias_factor <= 1.0:
        return bias_factor
    if isinstance(bias_factor, bool) or not isinstance(bias_factor, numbers.Real):
        raise TypeError(f"bias_factor must be a real number, got {bias_factor!r}")
    if not 0 <= bias_factor <= 1:
        raise ValueError(f"bias_factor must lie in [0, 1] (0 drops the bias's share, 1 "
                         f"conserves relevance), got {bias_factor!r}")
    return float(bias_factor)


def cores():
    """The number of cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


# more threads than this many per core only cost memory (each has a workspace)
MAX_THREADS_PER_CORE = 4


def check_n_threads(n_threads):
    """Return a thread count from 1 to MAX_THREADS_PER_CORE times the cores;
    None means every core."""
    if n_threads is None:
        return cores()
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    if n_threads < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}")
    # (every process has a core: asking for the cores is left to large counts)
    if n_threads > MAX_THREADS_PER_CORE and n_threads > MAX_THREADS_PER_CORE * cores():
        raise ValueError(f"n_threads={n_threads} is more than {MAX_THREADS_PER_CORE} per core "
                         f"({cores()} cores here): each thread costs a workspace and gains "
                         "nothing; use None for one per core")
    return int(n_threads)


def check_cell(cell):
    """Return the recurrent cell type, "lstm" or "gru"."""
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}: expected one of {tuple(CELLS)}")
    return cell


def check_gate_order(gate_order, cell="lstm"):
    """Return the gate order as a permutation of the cell's gates: 'igfo'
    for an LSTM ('c' is accepted for 'g'), 'rzn' for a GRU; None gives the
    canonical order."""
    canonical = CELLS[cell]
    if gate_order is None:
        return canonical
    if not isinstance(gate_order, str):
        raise TypeError(f"gate_order must be a string such as {canonical!r}, "
                        f"got {gate_order!r}")
    order = gate_order.lower()
    if cell == "lstm":
        order = order.replace("c", "g")
    if sorted(order) != sorted(canonical):
        raise ValueError(
            f"unknown gate order {gate_order!r} for a {cell.upper()}: expected a "
            + ("permutation of 'igfo' (i input, g or c cell candidate, f forget, "
               "o output), e.g. 'ifgo' or 'ifco'" if cell == "lstm" else
               "permutation of 'rzn' (r reset, z update, n candidate), e.g. 'rzn' "
               "(PyTorch) or 'zrn' (Keras)"))
    return order


def check_sum_rule(sum_rule):
    """Return the sum rule's number in SUM_RULES, else raise ValueError."""
    if sum_rule not in SUM_RULES:
        raise ValueError(f"unknown sum_rule {sum_rule!r}: expected one of {SUM_RULES}")
    return SUM_RULES.index(sum_rule)


def check_gate_rule(gate_rule):
    """Return the gate rule's number in GATE_RULES, else raise ValueError."""
    if gate_rule == "prop":
        raise ValueError(
            "gate_rule='prop' is not offered: its share a / (a + b) is unbounded where gate "
            "+ signal is near 0, and the relevance explodes on almost every input (median "
            "amplification 1e28 on SST test sentences, overflow on 200-token documents, "
            "with either sum rule); use gate_rule='abs' (|a| / (|a| + |b|)) with "
            "sum_rule='abs'")
    if gate_rule not in GATE_RULES:
        raise ValueError(f"unknown gate_rule {gate_rule!r}: expected one of {GATE_RULES}")
    return GATE_RULES.index(gate_rule)
