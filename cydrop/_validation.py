"""Argument checks shared by the public functions.

Everything that reaches compiled ``nogil`` code goes through here first, so
each error names the argument, what was expected and what was given.
"""
import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def unwrap_0d(value):
    """A 0-d array's one value (as NumPy treats it, e.g. ``np.float32(0.5)[()]``
    or ``np.array(0.5)``), anything else as it is: a keep_prob given that way
    is its number."""
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


def check_keep_prob(keep_prob, name="keep_prob"):
    """Return keep_prob as a Python float in (0, 1]; a 0-d array is its
    number (unwrap_0d), as cydrop.MLP and torch's modules read one."""
    keep_prob = unwrap_0d(keep_prob)
    if isinstance(keep_prob, (bool, np.bool_)) or not isinstance(keep_prob, numbers.Real):
        raise TypeError(
            f"{name} must be a real number in (0, 1], got {type(keep_prob).__name__} {keep_prob!r}"
        )
    value = float(keep_prob)
    if not (0.0 < value <= 1.0):  # also false for NaN
        raise ValueError(f"{name} must be in (0, 1] (1 means no dropout), got {value!r}")
    return value


def check_float_dtype(arr, name):
    """Refuse anything but a native-order float32/float64 ndarray."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of float32 or float64, got {type(arr).__name__}")
    # byte order first: '>f8' != float64, so it would fail the dtype test
    # with a misleading message
    if not arr.dtype.isnative:
        raise TypeError(f"{name} must be in native byte order, got {arr.dtype.str}")
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {arr.dtype}")


def check_float_array(x, name):
    """Return ``x`` as a C-contiguous, aligned float32/float64 ndarray.

    Non-contiguous or unaligned input is copied (results are then computed on
    the copy); other dtypes are refused rather than silently converted.
    """
    check_float_dtype(x, name)
    return as_c_array(x)


def as_c_array(x):
    """``x`` itself when C-contiguous and aligned, else a C-ordered copy.

    Aligned: the kernels read elements through typed pointers, and an address
    that is not a multiple of the item size is undefined behaviour in C
    (vectorized loads may fault). Keeps 0-d arrays 0-d, unlike ascontiguousarray.
    """
    if x.flags.c_contiguous and x.flags.aligned:
        return np.asarray(x)
    return np.array(x, order="C")


def flat(arr):
    """1-D view of a C-contiguous array's memory for a kernel, whatever its
    ndarray subclass (``np.matrix.reshape(-1)`` stays 2-D)."""
    return np.asarray(arr).reshape(-1)


def check_out(out, like, name="out", inputs=()):
    """Return a result buffer of ``like``'s shape and dtype.

    ``None`` allocates one. A given ``out`` must match shape and dtype exactly,
    be C-contiguous and writable, and may be one of ``inputs`` itself (in
    place) but must not partially overlap any of them.
    """
    if out is None:
        return np.empty_like(like, order="C")
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray or None, got {type(out).__name__}")
    if out.shape != like.shape:
        raise ValueError(f"{name} must have shape {like.shape}, got {out.shape}")
    if out.dtype != like.dtype:
        raise TypeError(f"{name} must have dtype {like.dtype}, got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not out.flags.aligned:
        raise ValueError(f"{name} must be aligned (its address a multiple of its item size)")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writable (got a read-only array)")
    for arr in inputs:
        same = arr.__array_interface__["data"][0] == out.__array_interface__["data"][0]
        # both are C-contiguous, so overlapping extents means overlapping data
        if np.may_share_memory(out, arr) and not (same and arr.shape == out.shape):
            raise ValueError(f"{name} overlaps an input without being that input (in place is allowed)")
    return out


def check_network_dtype(dtype, allow_none=False):
    """np.dtype of anything NumPy reads as float32 or float64 ("f8", np.float64, ...);
    None passes through when ``allow_none``. ValueError naming ``dtype`` otherwise."""
    if dtype is None and allow_none:
        return None
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    # resolved is None first: np.dtype(None) is float64, so None compares equal to it
    if isinstance(dtype, (bool, np.bool_)) or resolved is None or resolved not in FLOAT_DTYPES:
        allowed = "None, float32 or float64" if allow_none else "float32 or float64"
        raise ValueError(f"dtype must be {allowed} (anything numpy.dtype reads as one, e.g. 'float32', "
                         f"np.float64, 'f8'), got {dtype!r}")
    return resolved


def check_real(value, name, low, high=math.inf, *, low_open=True, high_open=True):
    """Return ``value`` as a Python float inside the interval low..high.

    The interval is open at an end whose ``*_open`` flag is set; an infinite
    end is always open, so the value is finite unless ``high`` says otherwise.
    """
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
    interval = f"{lo}{low}, {high}{hi}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in {interval}, "
                        f"got {type(value).__name__} {value!r}")
    x = float(value)
    above = x > low if low_open else x >= low
    below = x < high if high_open else x <= high
    if not (above and below):  # also refuses NaN
        raise ValueError(f"{name} must be in {interval}, got {x!r}")
    return x


def check_bool(value, name):
    """Refuse anything but a bool (1, "yes" and None are not flags)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_positive_int(value, name, minimum=1, maximum=None):
    """Return ``value`` as an int in [minimum, maximum] (no upper bound when
    maximum is None; give one when the value reaches a C int)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def kernel_ready(arr, dtype, shape, writable):
    """True if a kernel may take ``arr`` as an array of this dtype and shape
    without copying it: C-contiguous, aligned (and writable when written to)."""
    return (isinstance(arr, np.ndarray) and arr.dtype == dtype and arr.shape == shape
            and arr.flags.c_contiguous and arr.flags.aligned and (arr.flags.writeable or not writable))


def threshold_of(keep_prob):
    """T = round(keep_prob * 2^32): an element is kept iff its 32-bit uniform < T."""
    return int(round(keep_prob * 4294967296.0))
