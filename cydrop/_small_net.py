"""The compiled small-network path: one call per training epoch, one call for
all Monte Carlo dropout passes (kernels in ``src/_fused_net.pyx``).

``cydrop.MLP`` uses it for networks that qualify (:func:`qualifies`); it
gives the per-layer path's results to float round-off, with the same masks
(the kernels draw the same generator blocks in the same order).
"""
import numpy as np

from . import _fused_net
from ._blas_threads import single_threaded_blas
from .dense import ACTIVATIONS
from .optim import ADAM_BETA1, ADAM_BETA2, ADAM_EPS

__all__ = ["MAX_WIDTH", "mc_passes", "predict", "predictor", "qualifies", "train_epoch", "trainer"]

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


def trainer(weights, biases, keep_prob, activation, output, batch_size, optimizer, first, second,
            learning_rate, momentum, l2, max_norm):
    """A ``_fused_net.Net`` that trains these arrays in place, batch by batch.

    ``first`` and ``second`` are the optimizer state as cydrop.MLP keeps it
    (one array per weight, then per bias). ``l2`` is J's coefficient
    (weights decay by ``l2 / batch rows``); ``max_norm`` None for none.
    """
    return _fused_net.Net(list(weights), list(biases), list(keep_prob), ACTIVATIONS[activation],
                          OUTPUTS[output], batch_size, first=list(first), second=list(second),
                          optimizer=OPTIMIZERS[optimizer], lr=learning_rate, momentum=momentum,
                          beta1=ADAM_BETA1, beta2=ADAM_BETA2, eps=ADAM_EPS, l2=l2,
                          max_norm=0.0 if max_norm is None else max_norm)


def train_epoch(net, gen, X, Y, order, step):
    """One epoch of ``net`` (from :func:`trainer`) over the rows ``order`` of X, Y.

    Reserves the epoch's mask blocks from ``gen`` (a cydrop.Generator) in
    one go. Returns ``(loss_sum, step)``: the training loss summed over the
    rows, and the optimizer step count after the epoch.
    """
    order = np.ascontiguousarray(order, dtype=np.intp)
    key, block0 = _reserve(gen, net.blocks_per_epoch(order.shape[0]))
    with single_threaded_blas:
        return net.train_epoch(X, Y, order, key, block0, step)


def mc_passes(weights, biases, keep_prob, activation, output, X, n_passes, gen, *,
              samples=False, rows=1024):
    """``n_passes`` dropout passes of the network over the rows of X.

    The masks are those that ``n_passes`` calls of cydrop.MLP's per-layer
    prediction (in chunks of ``rows`` rows) would draw from ``gen``.

    Returns
    -------
    total, total_sq : ndarray (n_samples, n_outputs) of float64
        Sums of the outputs and of their squares over the passes.
    samples : ndarray (n_passes, n_samples, n_outputs) of the network dtype, or None
        Every pass's outputs, when ``samples`` is True.
    """
    n_samples = X.shape[0]
    net = _fused_net.Net(list(weights), list(biases), list(keep_prob), ACTIVATIONS[activation],
                         OUTPUTS[output], max(1, min(rows, n_samples)))
    n_out = net.layer_sizes[-1]
    total = np.zeros((n_samples, n_out))
    total_sq = np.zeros((n_samples, n_out))
    out = np.empty((n_passes, n_samples, n_out), dtype=net.dtype) if samples else None
    key, block0 = _reserve(gen, net.blocks_per_mc(n_samples, n_passes))
    with single_threaded_blas:
        net.mc_passes(X, n_passes, key, block0, total, total_sq, out)
    return total, total_sq, out


def predictor(weights, biases, activation, output, rows=1024):
    """A ``_fused_net.Net`` for plain (dropout off) passes of these arrays,
    in chunks of ``rows`` rows (:func:`predict`)."""
    return _fused_net.Net(list(weights), list(biases), [1.0] * len(weights), ACTIVATIONS[activation],
                          OUTPUTS[output], rows)


def predict(net, X):
    """The outputs of ``net`` (from :func:`predictor`) on the rows of X, in its dtype."""
    total = np.zeros((X.shape[0], net.layer_sizes[-1]))
    net.mc_passes(X, 1, 0, 0, total, np.empty_like(total))   # one pass, no mask: the outputs
    return total.astype(net.dtype)


def _reserve(gen, n_blocks):
    """(key, first block) of n_blocks generator blocks reserved from gen."""
    if n_blocks == 0:
        return 0, 0   # no mask drawn: the per-layer path reserves nothing either
    return gen._reserve(64 * n_blocks)
