"""The compiled path of a network: one call per training epoch, one call for
all Monte Carlo dropout passes (kernels in ``src/_fused_net.pyx``).

Why: the per-layer path (cydrop._network) makes a dozen Python calls per
layer and step. On a features-50-1 network with batch 128 a layer's
arithmetic is about a microsecond, less than those calls; on the demo
network (40-512-512-10, batch 100) they kept an epoch above 1.3x its GEMMs
(docs: user_guide/performance.rst). :class:`cydrop._network.Network` takes this path for every network
:func:`route` admits. It gives the per-layer path's results to float
round-off, with the same masks: the kernels draw the same generator blocks
in the same order (tests/test_compiled_net.py).
"""
import contextlib
import ctypes
import functools
import os

import numpy as np

from . import _fused_net
from ._blas_threads import single_threaded_blas
from ._threads import get_deterministic
from .dense import ACTIVATIONS
from .optim import ADAM_BETA1, ADAM_BETA2, ADAM_EPS

__all__ = ["MAX_WIDTH", "mc_passes", "numpy_gemm", "qualifies", "route", "train_epoch"]

# The widest layer the compiled path runs on one thread with SciPy's BLAS.
# Past it a layer's GEMMs want BLAS's threads: they go through NumPy's BLAS
# (blas.pxd: gemm64), the pool numpy.matmul uses, when it can be found.
MAX_WIDTH = 256

OUTPUTS = {"linear": _fused_net.Output.OUT_LINEAR, "sigmoid": _fused_net.Output.OUT_SIGMOID,
           "softmax": _fused_net.Output.OUT_SOFTMAX}
OPTIMIZERS = {"sgd": _fused_net.Optimizer.OPT_SGD, "momentum": _fused_net.Optimizer.OPT_MOMENTUM,
              "adam": _fused_net.Optimizer.OPT_ADAM}


def qualifies(layer_sizes):
    """True if a network of these layer sizes runs on the compiled path:
    at most ``_fused_net.MAX_DENSE_LAYERS`` dense layers, none wider than
    :data:`MAX_WIDTH` units."""
    return len(layer_sizes) - 1 <= _fused_net.MAX_DENSE_LAYERS and max(layer_sizes) <= MAX_WIDTH


def route(net):
    """How ``net`` (a Network) runs its epochs and MC passes: None for the
    per-layer path (cydrop._network), 0 for the compiled path on this thread
    with SciPy's BLAS (a small network, :func:`qualifies`), or the address of
    NumPy's ?gemm for the compiled path with NumPy's BLAS threads (a wider
    network, outside deterministic mode, whose per-layer GEMMs go through
    numpy.matmul too)."""
    if len(net.layer_sizes) - 1 > _fused_net.MAX_DENSE_LAYERS:
        return None
    if qualifies(net.layer_sizes):
        return 0
    if get_deterministic():
        return None   # blocked GEMMs on cydrop's threads: the per-layer path's
    return numpy_gemm(net.dtype)


@functools.lru_cache(maxsize=None)
def numpy_gemm(dtype):
    """The address of the ILP64 Fortran-style ?gemm of the BLAS NumPy links
    (sgemm for float32, dgemm for float64), or None if it is not an OpenBLAS
    that exports one (a NumPy built on another BLAS: the per-layer path)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    letter = "s" if np.dtype(dtype) == np.float32 else "d"
    numpy_dir = os.path.dirname(os.path.dirname(np.__file__))
    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        # NumPy's own copy (numpy.libs, numpy/.dylibs), not SciPy's
        if lib.internal_api != "openblas" or "numpy" not in os.path.relpath(lib.filepath, numpy_dir).split(os.sep)[0]:
            continue
        handle = ctypes.CDLL(lib.filepath)
        for name in (f"scipy_{letter}gemm_64_", f"{letter}gemm_64_", f"{letter}gemm64_"):
            routine = getattr(handle, name, None)
            if routine is not None:
                return ctypes.cast(routine, ctypes.c_void_p).value
    return None


def train_epoch(net, routine, optimizer, X, Y, sample_weight, order, batch_size, l2, max_norm):
    """One epoch of ``net`` (a Network) over the rows ``order`` of X, Y
    (sample weights float64 or None), trained in place with ``optimizer``
    (cydrop._optimizers), whose step count advances by the epoch's batches;
    ``routine`` is what :func:`route` said for the network.

    Reserves the epoch's mask blocks from the network's generator in one go.
    Returns the training loss summed over the rows with their weights.
    """
    compiled = _trainer(net, optimizer, min(batch_size, len(order)) or 1, l2, max_norm, routine)
    order = np.ascontiguousarray(order, dtype=np.intp)
    if sample_weight is not None:
        sample_weight = np.ascontiguousarray(sample_weight, dtype=np.float64)
    key, block0 = _reserve(net._gen, compiled.blocks_per_epoch(order.shape[0]))
    with _blas_threads(routine):
        loss_sum, optimizer.t = compiled.train_epoch(X, Y, order, key, block0, optimizer.t, sample_weight)
    return loss_sum


def _blas_threads(routine):
    """SciPy's BLAS on one thread for the one-thread route; NumPy's as it is."""
    return single_threaded_blas if routine == 0 else contextlib.nullcontext()


def _trainer(net, optimizer, rows, l2, max_norm, routine):
    """The compiled Net that trains ``net`` with ``optimizer``: the one made
    for the previous epoch when nothing it was made from has changed (a
    fit's epochs share it), else a new one, kept on the network."""
    settings = (id(optimizer), optimizer.learning_rate, optimizer.momentum, rows, l2, max_norm,
                tuple(net.keep_prob), routine)
    # the Net holds these arrays, so their ids cannot be reused while it is kept
    arrays = net.params + [a for state in optimizer.state for a in state]
    kept = net.__dict__.get("_compiled")
    if (kept is not None and kept[0] == settings and len(kept[1]) == len(arrays)
            and all(a is b for a, b in zip(kept[1], arrays))):
        return kept[2]
    state = optimizer.state + [None] * (2 - len(optimizer.state))
    compiled = _fused_net.Net(
        net.weights, net.biases, net.keep_prob, ACTIVATIONS[net.activation], OUTPUTS[net.output], rows,
        first=state[0], second=state[1], optimizer=OPTIMIZERS[optimizer.name], lr=optimizer.learning_rate,
        momentum=optimizer.momentum, beta1=ADAM_BETA1, beta2=ADAM_BETA2, eps=ADAM_EPS, l2=l2,
        max_norm=0.0 if max_norm is None else max_norm, gemm_routine=routine)
    net._compiled = (settings, arrays, compiled)
    return compiled


def mc_passes(net, routine, X, n_passes, *, samples=False, rows=1024):
    """``n_passes`` dropout passes of ``net`` (a Network, taking ``routine``
    from :func:`route`) over the rows of X.

    The masks are those that ``n_passes`` per-layer predictions (in chunks
    of ``rows`` rows) would draw from the network's generator.

    Returns
    -------
    total, total_sq : ndarray (n_samples, n_outputs) of float64
        Sums of the outputs and of their squares over the passes.
    samples : ndarray (n_passes, n_samples, n_outputs) of the network dtype, or None
        Every pass's outputs, when ``samples`` is True.
    """
    n_samples = X.shape[0]
    compiled = _fused_net.Net(net.weights, net.biases, net.keep_prob, ACTIVATIONS[net.activation],
                              OUTPUTS[net.output], max(1, min(rows, n_samples)), gemm_routine=routine)
    n_out = compiled.layer_sizes[-1]
    total = np.zeros((n_samples, n_out))
    total_sq = np.zeros((n_samples, n_out))
    out = np.empty((n_passes, n_samples, n_out), dtype=compiled.dtype) if samples else None
    key, block0 = _reserve(net._gen, compiled.blocks_per_mc(n_samples, n_passes))
    with _blas_threads(routine):
        compiled.mc_passes(X, n_passes, key, block0, total, total_sq, out)
    return total, total_sq, out


def _reserve(gen, n_blocks):
    """(key, first block) of n_blocks generator blocks reserved from gen."""
    if n_blocks == 0:
        return 0, 0   # no mask drawn: the per-layer path reserves nothing either
    return gen._reserve(64 * n_blocks)
