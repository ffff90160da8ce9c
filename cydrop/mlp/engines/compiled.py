"""The compiled engine: a training epoch, all MC passes or a prediction in one call
into ``src/_fused_net.pyx``, with no Python per layer or step.

It gives the reference engine's results to float round-off, with the same
masks (``tests/test_engines.py``). It takes networks of at most
``MAX_DENSE_LAYERS`` dense layers. Its mask passes run on cydrop's thread
pool, and its GEMMs take the dense layer's routes (``cydrop._threads.gemm_route``),
chosen per kind of call (a prediction, MC passes, an epoch, and its
network) from the largest GEMM of a step:

- in deterministic mode, on one thread, and while the pool runs them
  faster: cut into blocks on the pool, the BLAS held to one thread (a GEMM
  too small to cut is one block, on the calling thread);
- from ``POOL_GEMM_MAX_MULTIPLY_ADDS`` on, or when NumPy's BLAS threads
  were measured faster: whole, with the BLAS's own threads, as the
  reference engine's ``numpy.matmul``.

The BLAS is the one NumPy links (OpenBLAS's ILP64 ``?gemm``, found with
threadpoolctl: ``cydrop._threads.numpy_gemm``), or SciPy's where NumPy's
exports no such routine.
"""
import contextlib
import functools

import numpy as np

from ... import _fused_net
from ..._generator import reserve
from ..._threads import gemm_route, get_num_threads, numpy_gemm, single_threaded_blas
from ...dense import ACTIVATIONS
from . import interface
from .interface import Engine

__all__ = ["MAX_DENSE_LAYERS", "CompiledEngine", "numpy_gemm"]

# The most dense layers a compiled net holds (its C struct has one slot per layer).
MAX_DENSE_LAYERS = _fused_net.MAX_DENSE_LAYERS

_OUTPUTS = {"linear": _fused_net.Output.OUT_LINEAR, "sigmoid": _fused_net.Output.OUT_SIGMOID,
            "softmax": _fused_net.Output.OUT_SOFTMAX, "gaussian": _fused_net.Output.OUT_GAUSSIAN}
_OPTIMIZERS = {"sgd": _fused_net.Optimizer.OPT_SGD, "momentum": _fused_net.Optimizer.OPT_MOMENTUM,
               "nesterov": _fused_net.Optimizer.OPT_NESTEROV, "adam": _fused_net.Optimizer.OPT_ADAM}


@functools.lru_cache(maxsize=None)
def _register_numpy_gemm():
    """Hand the compiled module the routines found by numpy_gemm (once)."""
    _fused_net.set_numpy_gemm(numpy_gemm(np.float32), numpy_gemm(np.float64))


def takes(network):
    """True when the compiled engine can run ``network`` (at most MAX_DENSE_LAYERS layers)."""
    return network.n_layers <= MAX_DENSE_LAYERS


def prefers(network):
    """True when the compiled engine is the faster choice for ``network``:
    whenever it takes it (its GEMMs take the reference engine's routes)."""
    return takes(network)


def _largest_gemm(network, rows):
    """Multiply-adds of the largest GEMM of a step on batches of ``rows`` rows."""
    sizes = network.layer_sizes
    return rows * max(n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def _numpy_blas(network):
    """Whether the GEMMs go through NumPy's BLAS (else SciPy's): when it exports an ILP64 ?gemm."""
    return numpy_gemm(network.dtype) != 0


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
        rows = interface.PREDICT_ROWS
        numpy_blas = _numpy_blas(network)
        settings = ("predict", tuple(network.layer_sizes), network.activation, network.output, rows, numpy_blas)
        compiled = self._kept("_predictor", settings, network.params, lambda: self._net(
            network, rows, masks=None, numpy_blas=numpy_blas))
        P = np.empty((X.shape[0], network.layer_sizes[-1]), dtype=network.dtype)
        with _threads(compiled, "predict", network, rows):
            compiled.predict(X, P)
        return P

    def mc_passes(self, network, X, n_passes, *, samples=False, relaxed=True):
        network.require_kernel_ready()
        n_samples = X.shape[0]
        rows = max(1, min(interface.PREDICT_ROWS, n_samples))
        numpy_blas = _numpy_blas(network)
        compiled = self._net(network, rows, masks="relaxed" if relaxed else "bernoulli", numpy_blas=numpy_blas)
        n_out = network.layer_sizes[-1]
        total = np.zeros((n_samples, n_out))
        total_sq = np.zeros((n_samples, n_out))
        out = np.empty((n_passes, n_samples, n_out), dtype=network.dtype) if samples else None
        key, block0 = _reserve_blocks(network.mask_gen, compiled.blocks_per_mc(n_samples, n_passes))
        with _threads(compiled, "mc_passes", network, rows):
            compiled.mc_passes(X, n_passes, key, block0, total, total_sq, out)
        _raise_diverged(compiled)
        return total, total_sq, out

    def train_epoch(self, network, optimizer, X, Y, sample_weight, order, batch_size, l2, max_norm, prior=None):
        network.require_kernel_ready(writable=True)
        rows = min(batch_size, len(order)) or 1
        numpy_blas = _numpy_blas(network)
        # the learning rate is not among them: a schedule may change it
        # between epochs, and it is set on the kept Net before each
        settings = ("train", id(optimizer), optimizer.name, optimizer.momentum, optimizer.beta1, optimizer.beta2,
                    optimizer.eps, optimizer.eps_hat, rows, l2, max_norm, tuple(network.keep_prob), prior,
                    tuple(network.fixed_p_logits.items()), network.concrete.temperature, network.activation,
                    network.output, numpy_blas)
        # the Net holds these arrays, so their ids cannot be reused while it is kept
        arrays = network.params + [a for state in optimizer.state for a in state]
        compiled = self._kept("_trainer", settings, arrays, lambda: self._net(
            network, rows, masks="relaxed", optimizer=optimizer, l2=l2, max_norm=max_norm, prior=prior,
            numpy_blas=numpy_blas))
        compiled.lr = optimizer.learning_rate
        order = np.ascontiguousarray(order, dtype=np.intp)
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(sample_weight, dtype=np.float64)
        key, block0 = _reserve_blocks(network.mask_gen, compiled.blocks_per_epoch(order.shape[0]))
        with _threads(compiled, "train_epoch", network, rows):
            result = compiled.train_epoch(X, Y, order, key, block0, optimizer.t, sample_weight)
        _raise_diverged(compiled)
        loss_sum, optimizer.t, first_bad_step = result
        return loss_sum, (first_bad_step if first_bad_step > 0 else None)

    def gradients(self, network, X, Y):
        network.require_kernel_ready()
        numpy_blas = _numpy_blas(network)
        compiled = self._net(network, X.shape[0], masks=None, numpy_blas=numpy_blas, backward=True)
        with _threads(compiled, "gradients", network, X.shape[0]):
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
    def _net(network, rows, *, masks, optimizer=None, l2=0.0, max_norm=None, prior=None, numpy_blas=False,
             backward=False):
        """A compiled net over the network's arrays (and the optimizer's
        state), for passes with ``masks``: None (dropout off), "relaxed" (as
        in training: a learned layer's relaxed mask) or "bernoulli" (a
        learned layer's keep probability as a Bernoulli mask)."""
        if numpy_blas:
            _register_numpy_gemm()
        learned = dict(zip(network.learned_layers, network.p_logits))
        if masks is None:
            keep_prob = [1.0] * network.n_layers
        elif masks == "bernoulli":
            keep_prob, learned = network.keep_prob_values(), {}
        else:
            keep_prob = [1.0 if i in learned else kp for i, kp in enumerate(network.keep_prob)]
        train = {}
        if optimizer is not None:
            state = optimizer.state + [None] * (2 - len(optimizer.state))
            train = dict(first=state[0], second=state[1], optimizer=_OPTIMIZERS[optimizer.name],
                         lr=optimizer.learning_rate, momentum=optimizer.momentum, beta1=optimizer.beta1,
                         beta2=optimizer.beta2, eps=optimizer.eps, eps_hat=optimizer.eps_hat, l2=l2,
                         max_norm=0.0 if max_norm is None else max_norm, prior=prior)
        return _fused_net.Net(network.weights, network.biases, keep_prob, ACTIVATIONS[network.activation],
                              _OUTPUTS[network.output], rows, numpy_blas=numpy_blas, backward=backward,
                              p_logits=[learned.get(i) for i in range(network.n_layers)],
                              temperature=network.concrete.temperature,
                              fixed_p_logits=[network.fixed_p_logits.get(i) for i in range(network.n_layers)],
                              **train)

    # the compiled nets cannot be pickled (they hold raw pointers): a copy makes its own
    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()


@contextlib.contextmanager
def _threads(compiled, kind, network, rows):
    """The thread settings of a call of this kind: the pool's thread count
    for the Net's passes; its GEMMs on the route measured faster (gemm_route),
    the BLAS held to one thread while the pool runs GEMM blocks."""
    kind = (kind, tuple(network.layer_sizes), rows, np.dtype(network.dtype).name)
    with gemm_route(kind, _largest_gemm(network, rows)) as on_pool:
        compiled.set_threads(get_num_threads(), not on_pool)
        with single_threaded_blas if on_pool else contextlib.nullcontext():
            yield


def _raise_diverged(compiled):
    """interface.diverged_keep_prob if the compiled net's last pass stopped at a learned p_logit out of range."""
    bad = compiled.take_bad_p_logit()
    if bad is not None:
        raise interface.diverged_keep_prob(*bad)


def _reserve_blocks(gen, n_blocks):
    """(key, first block) of n_blocks generator blocks reserved from gen."""
    if n_blocks == 0:
        return 0, 0   # no mask drawn: the reference engine reserves nothing either
    return reserve(gen, 64 * n_blocks)
