"""The reference engine: the network layer by layer through the fused dense layer.

Readable first: each pass is the loop a reader would write with
:func:`cydrop.dense_forward` and :func:`cydrop.dense_backward` (here their
unchecked bodies, the arguments being checked once per call by the face and
the network), the output table of :mod:`cydrop.mlp.losses` and the
optimizers of :mod:`cydrop.mlp.optimizers`. The compiled engine must agree
with it (``tests/test_engines.py``), and it runs what the compiled one does
not take: networks of more than ``MAX_DENSE_LAYERS`` layers, and wide
networks in deterministic mode (their GEMMs then blocked on cydrop's threads).
"""
import math

import numpy as np

from ..._generator import reserve
from ...dense import ACTIVATIONS, dense_backward_unchecked, dense_forward_unchecked
from ...optim import max_norm_
from .. import losses
from . import interface
from .interface import Engine

__all__ = ["ReferenceEngine"]

_LINEAR = ACTIVATIONS["linear"]


class ReferenceEngine(Engine):
    """The per-layer engine (see the module docstring and :class:`Engine`)."""

    name = "reference"

    def predict(self, network, X):
        network.require_kernel_ready()
        return self._outputs(network, X, train=False)

    def mc_passes(self, network, X, n_passes, *, samples=False):
        network.require_kernel_ready()
        total = np.zeros((X.shape[0], network.layer_sizes[-1]), dtype=np.float64)
        total_sq = np.zeros_like(total)
        out = np.empty((n_passes,) + total.shape, dtype=network.dtype) if samples else None
        for t in range(n_passes):
            P = self._outputs(network, X, train=True)
            if out is not None:
                out[t] = P
            P = P.astype(np.float64)
            total += P
            total_sq += P * P
        return total, total_sq, out

    def train_epoch(self, network, optimizer, X, Y, sample_weight, order, batch_size, l2, max_norm):
        network.require_kernel_ready(writable=True)
        total, first_bad_step = 0.0, None
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            wb = None if sample_weight is None else sample_weight[idx]
            n = len(idx) if wb is None else float(np.sum(wb))
            if n == 0:
                # no sample: no update; the masks it would draw are passed over
                for i, kp in enumerate(network.keep_prob):
                    if kp < 1:
                        reserve(network.mask_gen, len(idx) * network.layer_sizes[i])
                continue
            loss = self._step(network, optimizer, X[idx], Y[idx], wb, l2, max_norm)
            if first_bad_step is None and not math.isfinite(loss):
                first_bad_step = optimizer.t
            total += loss * n
        return total, first_bad_step

    def gradients(self, network, X, Y):
        network.require_kernel_ready()
        P, caches = self._forward(network, X, train=False)
        dW, db = self._backward(network, losses.loss_grad(network.output, P, Y), caches)
        return losses.loss(network.output, P, Y), dW, db

    # ------------------------------------------------------------ passes

    def _forward(self, network, X, train):
        """(outputs, per-layer caches) of one forward pass, dropout on when ``train``."""
        h, caches = X, []
        hidden = ACTIVATIONS[network.activation]
        keep_prob = network.keep_prob
        for i, (W, b) in enumerate(zip(network.weights, network.biases)):
            kp = keep_prob[i] if train else 1.0
            code = _LINEAR if i == network.n_layers - 1 else hidden
            h, cache = dense_forward_unchecked(h, W, b, kp, code, network.mask_gen if kp < 1 else None)
            caches.append(cache)
        return losses.activate(network.output, h), caches

    def _backward(self, network, grad, caches):
        """(dW, db), lists over the layers, from dL/dz of the last layer."""
        dW, db = [], []
        for i in reversed(range(len(caches))):
            grad = np.ascontiguousarray(grad, dtype=network.dtype)
            grad, dW_i, db_i = dense_backward_unchecked(grad, caches[i], i > 0)
            dW.append(dW_i)
            db.append(db_i)
        return dW[::-1], db[::-1]

    def _outputs(self, network, X, train):
        """Outputs for all rows of X, in passes of interface.PREDICT_ROWS rows."""
        rows = interface.PREDICT_ROWS
        return np.concatenate([self._forward(network, X[s:s + rows], train)[0] for s in range(0, X.shape[0], rows)])

    def _step(self, network, optimizer, Xb, Yb, wb, l2, max_norm):
        """One training step on a batch; returns its mean loss under dropout."""
        P, caches = self._forward(network, Xb, train=True)
        loss = losses.loss(network.output, P, Yb, wb)
        dW, db = self._backward(network, losses.loss_grad(network.output, P, Yb, wb), caches)
        # J's penalty is l2 / (2 * batch weight) * ||W||^2; none on biases
        decay = l2 / (Xb.shape[0] if wb is None else float(np.sum(wb)))
        optimizer.update(network.params, dW + db, [decay] * len(dW) + [0.0] * len(db))
        if max_norm is not None:
            for W in network.weights:
                max_norm_(W, max_norm)
        return loss
