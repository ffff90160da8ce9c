"""The compiled engine: a training epoch, all MC passes or a prediction in one call
into ``src/_fused_net.pyx``, with no Python per layer or step.

It gives the reference engine's results to float round-off, with the same
masks (``tests/test_engines.py``). It takes networks of at most
``MAX_DENSE_LAYERS`` dense layers. Its GEMMs run:

- for layers of at most ``MAX_WIDTH`` units: on the calling thread, through
  SciPy's BLAS held to one thread (the layers are too small for threads to pay);
- for wider layers: through the BLAS NumPy links (OpenBLAS's ILP64 ``?gemm``,
  found with threadpoolctl), with NumPy's threads, the pool the reference
  engine's ``numpy.matmul`` uses. Where NumPy's BLAS exports no such routine,
  and in deterministic mode, on the calling thread through SciPy's BLAS.
"""
import contextlib
import ctypes
import functools
import os

import numpy as np

from ... import _fused_net
from ..._generator import reserve
from ..._threads import get_deterministic, single_threaded_blas
from ...dense import ACTIVATIONS
from . import interface
from .interface import Engine

__all__ = ["MAX_DENSE_LAYERS", "MAX_WIDTH", "CompiledEngine", "numpy_gemm"]

# The most dense layers a compiled net holds (its C struct has one slot per layer).
MAX_DENSE_LAYERS = _fused_net.MAX_DENSE_LAYERS

# The widest layer whose GEMMs run on one thread. Past it they want BLAS's
# threads: they go through NumPy's BLAS, the pool numpy.matmul uses.
MAX_WIDTH = 256

_OUTPUTS = {"linear": _fused_net.Output.OUT_LINEAR, "sigmoid": _fused_net.Output.OUT_SIGMOID,
            "softmax": _fused_net.Output.OUT_SOFTMAX, "gaussian": _fused_net.Output.OUT_GAUSSIAN}
_OPTIMIZERS = {"sgd": _fused_net.Optimizer.OPT_SGD, "momentum": _fused_net.Optimizer.OPT_MOMENTUM,
               "nesterov": _fused_net.Optimizer.OPT_NESTEROV, "adam": _fused_net.Optimizer.OPT_ADAM}


@functools.lru_cache(maxsize=None)
def numpy_gemm(dtype):
    """The address of the ILP64 Fortran-style ?gemm of the BLAS NumPy links
    (sgemm for float32, dgemm for float64), or 0 if it is not an OpenBLAS
    that exports one (a NumPy built on another BLAS)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return 0
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
    return 0


@functools.lru_cache(maxsize=None)
def _register_numpy_gemm():
    """Hand the compiled module the routines found by numpy_gemm (once)."""
    _fused_net.set_numpy_gemm(numpy_gemm(np.float32), numpy_gemm(np.float64))


def takes(network):
    """True when the compiled engine can run ``network`` (at most MAX_DENSE_LAYERS layers)."""
    return network.n_layers <= MAX_DENSE_LAYERS


def prefers(network):
    """True when the compiled engine is the faster choice for ``network``:
    small layers (one thread), or wide ones whose GEMMs can go to NumPy's
    BLAS outside deterministic mode (in deterministic mode the reference
    engine blocks them over cydrop's threads)."""
    return takes(network) and (max(network.layer_sizes) <= MAX_WIDTH or _numpy_blas(network))


def _numpy_blas(network):
    """Whether this network's GEMMs go to NumPy's BLAS and its threads."""
    return (max(network.layer_sizes) > MAX_WIDTH and not get_deterministic()
            and numpy_gemm(network.dtype) != 0)


class CompiledEngine(Engine):
    """The compiled engine (see the module docstring and :class:`Engine`).

    It keeps the compiled net of the last training epoch while nothing it
    was made from changes (a fit's epochs share it), and that of the last
    prediction."""

    name = "compiled"

    def __init__(self):
        self._trainer = None      # (settings, arrays, Net) of the last epoch
        self._predictor = None    # (settings, arrays, Net) of the last prediction

    def predict(self, network, X):
        network.require_kernel_ready()
        numpy_blas = _numpy_blas(network)
        rows = interface.PREDICT_ROWS
        settings = ("predict", tuple(network.layer_sizes), network.activation, network.output, rows, numpy_blas)
        compiled = self._kept("_predictor", settings, network.params, lambda: self._net(
            network, [1.0] * network.n_layers, rows, numpy_blas=numpy_blas))
        P = np.empty((X.shape[0], network.layer_sizes[-1]), dtype=network.dtype)
        with _blas_threads(numpy_blas):
            compiled.predict(X, P)
        return P

    def mc_passes(self, network, X, n_passes, *, samples=False):
        network.require_kernel_ready()
        numpy_blas = _numpy_blas(network)
        n_samples = X.shape[0]
        compiled = self._net(network, network.keep_prob, max(1, min(interface.PREDICT_ROWS, n_samples)), numpy_blas=numpy_blas)
        n_out = network.layer_sizes[-1]
        total = np.zeros((n_samples, n_out))
        total_sq = np.zeros((n_samples, n_out))
        out = np.empty((n_passes, n_samples, n_out), dtype=network.dtype) if samples else None
        key, block0 = _reserve_blocks(network.mask_gen, compiled.blocks_per_mc(n_samples, n_passes))
        with _blas_threads(numpy_blas):
            compiled.mc_passes(X, n_passes, key, block0, total, total_sq, out)
        return total, total_sq, out

    def train_epoch(self, network, optimizer, X, Y, sample_weight, order, batch_size, l2, max_norm):
        network.require_kernel_ready(writable=True)
        numpy_blas = _numpy_blas(network)
        rows = min(batch_size, len(order)) or 1
        # the learning rate is not among them: a schedule may change it
        # between epochs, and it is set on the kept Net before each
        settings = ("train", id(optimizer), optimizer.name, optimizer.momentum, optimizer.beta1, optimizer.beta2,
                    optimizer.eps, optimizer.eps_hat, rows, l2, max_norm, tuple(network.keep_prob),
                    network.activation, network.output, numpy_blas)
        # the Net holds these arrays, so their ids cannot be reused while it is kept
        arrays = network.params + [a for state in optimizer.state for a in state]
        compiled = self._kept("_trainer", settings, arrays, lambda: self._net(
            network, network.keep_prob, rows, optimizer=optimizer, l2=l2, max_norm=max_norm, numpy_blas=numpy_blas))
        compiled.lr = optimizer.learning_rate
        order = np.ascontiguousarray(order, dtype=np.intp)
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(sample_weight, dtype=np.float64)
        key, block0 = _reserve_blocks(network.mask_gen, compiled.blocks_per_epoch(order.shape[0]))
        with _blas_threads(numpy_blas):
            loss_sum, optimizer.t, first_bad_step = compiled.train_epoch(X, Y, order, key, block0, optimizer.t,
                                                                         sample_weight)
        return loss_sum, (first_bad_step if first_bad_step > 0 else None)

    def gradients(self, network, X, Y):
        network.require_kernel_ready()
        numpy_blas = _numpy_blas(network)
        compiled = self._net(network, [1.0] * network.n_layers, X.shape[0], numpy_blas=numpy_blas, backward=True)
        with _blas_threads(numpy_blas):
            loss_sum, dW, db = compiled.gradients(X, Y)
        return loss_sum / X.shape[0], dW, db

    def _kept(self, slot, settings, arrays, make):
        """The Net kept in ``slot`` when it was made with these settings over
        these very arrays, else a new one from ``make()``, kept there."""
        kept = getattr(self, slot)
        if (kept is not None and kept[0] == settings and len(kept[1]) == len(arrays)
                and all(a is b for a, b in zip(kept[1], arrays))):
            return kept[2]
        compiled = make()
        setattr(self, slot, (settings, list(arrays), compiled))
        return compiled

    @staticmethod
    def _net(network, keep_prob, rows, *, optimizer=None, l2=0.0, max_norm=None, numpy_blas=False,
             backward=False):
        """A compiled net over the network's arrays (and the optimizer's state)."""
        if numpy_blas:
            _register_numpy_gemm()
        train = {}
        if optimizer is not None:
            state = optimizer.state + [None] * (2 - len(optimizer.state))
            train = dict(first=state[0], second=state[1], optimizer=_OPTIMIZERS[optimizer.name],
                         lr=optimizer.learning_rate, momentum=optimizer.momentum, beta1=optimizer.beta1,
                         beta2=optimizer.beta2, eps=optimizer.eps, eps_hat=optimizer.eps_hat, l2=l2,
                         max_norm=0.0 if max_norm is None else max_norm)
        return _fused_net.Net(network.weights, network.biases, keep_prob, ACTIVATIONS[network.activation],
                              _OUTPUTS[network.output], rows, numpy_blas=numpy_blas, backward=backward, **train)

    # the compiled nets cannot be pickled (they hold raw pointers): a copy makes its own
    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()


def _blas_threads(numpy_blas):
    """SciPy's BLAS on one thread when the GEMMs go there; NumPy's as it is."""
    return contextlib.nullcontext() if numpy_blas else single_threaded_blas


def _reserve_blocks(gen, n_blocks):
    """(key, first block) of n_blocks generator blocks reserved from gen."""
    if n_blocks == 0:
        return 0, 0   # no mask drawn: the reference engine reserves nothing either
    return reserve(gen, 64 * n_blocks)
