"""The compiled path of a network: one call per training epoch, one call for
all Monte Carlo dropout passes (kernels in ``src/_fused_net.pyx``).

Why: on a features-50-1 network with batch 128 the arithmetic of a layer
is about a microsecond, less than the Python calls of one layer's forward,
backward and update. :class:`cydrop._network.Network` uses this path for
the networks that qualify (:func:`qualifies`) and the calls it covers (no
sample weights). It gives the per-layer path's results to float round-off,
with the same masks: the kernels draw the same generator blocks in the same
order (tests/test_small_net.py).
"""
import numpy as np

from . import _fused_net
from ._blas_threads import single_threaded_blas
from .dense import ACTIVATIONS
from .optim import ADAM_BETA1, ADAM_BETA2, ADAM_EPS

__all__ = ["MAX_WIDTH", "mc_passes", "qualifies", "train_epoch"]

# The widest layer the compiled path takes. Past it a layer's GEMMs cost more
# than the per-layer path's Python calls, and the per-layer path spreads
# them over BLAS's or cydrop's threads; the compiled path runs on one thread.
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


def train_epoch(net, optimizer, X, Y, sample_weight, order, batch_size, l2, max_norm):
    """One epoch of ``net`` (a Network) over the rows ``order`` of X, Y
    (sample weights float64 or None), trained in place with ``optimizer``
    (cydrop._optimizers), whose step count advances by the epoch's batches.

    Reserves the epoch's mask blocks from the network's generator in one go.
    Returns the training loss summed over the rows with their weights.
    """
    state = optimizer.state + [None] * (2 - len(optimizer.state))
    compiled = _fused_net.Net(
        net.weights, net.biases, net.keep_prob, ACTIVATIONS[net.activation], OUTPUTS[net.output],
        min(batch_size, len(order)) or 1, first=state[0], second=state[1],
        optimizer=OPTIMIZERS[optimizer.name], lr=optimizer.learning_rate, momentum=optimizer.momentum,
        beta1=ADAM_BETA1, beta2=ADAM_BETA2, eps=ADAM_EPS, l2=l2, max_norm=0.0 if max_norm is None else max_norm)
    order = np.ascontiguousarray(order, dtype=np.intp)
    if sample_weight is not None:
        sample_weight = np.ascontiguousarray(sample_weight, dtype=np.float64)
    key, block0 = _reserve(net._gen, compiled.blocks_per_epoch(order.shape[0]))
    with single_threaded_blas:
        loss_sum, optimizer.t = compiled.train_epoch(X, Y, order, key, block0, optimizer.t,
                                                          sample_weight)
    return loss_sum


def mc_passes(net, X, n_passes, *, samples=False, rows=1024):
    """``n_passes`` dropout passes of ``net`` (a Network) over the rows of X.

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
                              OUTPUTS[net.output], max(1, min(rows, n_samples)))
    n_out = compiled.layer_sizes[-1]
    total = np.zeros((n_samples, n_out))
    total_sq = np.zeros((n_samples, n_out))
    out = np.empty((n_passes, n_samples, n_out), dtype=compiled.dtype) if samples else None
    key, block0 = _reserve(net._gen, compiled.blocks_per_mc(n_samples, n_passes))
    with single_threaded_blas:
        compiled.mc_passes(X, n_passes, key, block0, total, total_sq, out)
    return total, total_sq, out


def _reserve(gen, n_blocks):
    """(key, first block) of n_blocks generator blocks reserved from gen."""
    if n_blocks == 0:
        return 0, 0   # no mask drawn: the per-layer path reserves nothing either
    return gen._reserve(64 * n_blocks)
