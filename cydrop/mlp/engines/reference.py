"""The reference engine: the network layer by layer through the fused dense layer.

Readable first: each pass is the loop a reader would write with
:func:`cydrop.dense_forward` and :func:`cydrop.dense_backward` (here their
unchecked bodies, the arguments being checked once per call by the face and
the network), the output table of :mod:`cydrop.mlp.losses` and the
optimizers of :mod:`cydrop.mlp.optimizers`; a layer whose keep_prob is
learned drops its input with :func:`cydrop.concrete_dropout` before a
dense layer without dropout. The compiled engine must agree
with it (``tests/test_engines.py``), and it runs what the compiled one does
not take: networks of more than ``MAX_DENSE_LAYERS`` layers, and wide
networks in deterministic mode (their GEMMs then blocked on cydrop's threads).
"""
import math

import numpy as np

from ... import _concrete
from ..._generator import reserve
from ...concrete import concrete_dropout, concrete_dropout_backward, prior_terms
from ...dense import ACTIVATIONS, dense_backward_unchecked, dense_forward_unchecked
from ...optim import max_norm_
from .. import losses
from . import interface
from ..network import LEARN
from .interface import Engine

__all__ = ["ReferenceEngine"]

_LINEAR = ACTIVATIONS["linear"]


def _relaxed(h, layer, p_logit, network):
    """concrete_dropout of layer ``layer``'s input h; interface.diverged_keep_prob
    if the learned p_logit has left the range the relaxed mask computes in."""
    try:
        _concrete.scalars(p_logit, network.concrete.temperature, network.dtype.name)
    except ValueError:
        raise interface.diverged_keep_prob(layer, p_logit) from None
    return concrete_dropout(h, p_logit, temperature=network.concrete.temperature, seed=network.mask_gen)


class ReferenceEngine(Engine):
    """The per-layer engine (see the module docstring and :class:`Engine`)."""

    name = "reference"

    def predict(self, network, X):
        network.require_kernel_ready()
        return self._outputs(network, X, masks=None)

    def mc_passes(self, network, X, n_passes, *, samples=False, relaxed=True):
        network.require_kernel_ready()
        total = np.zeros((X.shape[0], network.layer_sizes[-1]), dtype=np.float64)
        total_sq = np.zeros_like(total)
        out = np.empty((n_passes,) + total.shape, dtype=network.dtype) if samples else None
        masks = "relaxed" if relaxed else "bernoulli"
        for t in range(n_passes):
            P = self._outputs(network, X, masks)
            if out is not None:
                out[t] = P
            P = P.astype(np.float64)
            total += P
            total_sq += P * P
        return total, total_sq, out

    def train_epoch(self, network, optimizer, X, Y, sample_weight, order, batch_size, l2, max_norm, prior=None):
        network.require_kernel_ready(writable=True)
        total, first_bad_step = 0.0, None
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            wb = None if sample_weight is None else sample_weight[idx]
            n = len(idx) if wb is None else float(np.sum(wb))
            if n == 0:
                # no sample: no update; the masks it would draw are passed over
                for i, kp in enumerate(network.keep_prob):
                    if kp == LEARN or kp < 1:
                        reserve(network.mask_gen, len(idx) * network.layer_sizes[i])
                continue
            loss = self._step(network, optimizer, X[idx], Y[idx], wb, l2, max_norm, prior)
            if first_bad_step is None and not math.isfinite(loss):
                first_bad_step = optimizer.t
            total += loss * n
        return total, first_bad_step

    def gradients(self, network, X, Y):
        network.require_kernel_ready()
        P, layers = self._forward(network, X, masks=None)
        dW, db, _ = self._backward(network, losses.loss_grad(network.output, P, Y), layers)
        return losses.loss(network.output, P, Y), dW, db

    # ------------------------------------------------------------ passes

    def _forward(self, network, X, masks):
        """(outputs, per-layer records) of one forward pass: no dropout
        (``masks`` None), dropout as in training ("relaxed": learned layers
        draw Concrete noise), or with the learned layers' keep
        probabilities as Bernoulli masks ("bernoulli"). A record is the
        dense layer's cache, and for a Concrete layer its input and state."""
        h, layers = X, []
        hidden = ACTIVATIONS[network.activation]
        keep_prob = network.keep_prob
        learned = dict(zip(network.learned_layers, network.p_logits))
        values = network.keep_prob_values() if masks == "bernoulli" else None
        for i, (W, b) in enumerate(zip(network.weights, network.biases)):
            code = _LINEAR if i == network.n_layers - 1 else hidden
            concrete = None
            if masks is None:
                kp = 1.0
            elif i in learned and masks == "relaxed":
                x_tilde, state = _relaxed(h, i, float(learned[i][0]), network)
                concrete, h, kp = (h, state), x_tilde, 1.0
            else:
                kp = values[i] if i in learned else keep_prob[i]
            h, cache = dense_forward_unchecked(h, W, b, kp, code, network.mask_gen if kp < 1 else None)
            layers.append((cache, concrete))
        return losses.activate(network.output, h), layers

    def _backward(self, network, grad, layers):
        """(dW, db, da): lists over the layers of the gradients from dL/dz
        of the last layer, da over the Concrete layers (their p_logits)."""
        dW, db, da = [], [], []
        for i in reversed(range(len(layers))):
            cache, concrete = layers[i]
            grad = np.ascontiguousarray(grad, dtype=network.dtype)
            grad, dW_i, db_i = dense_backward_unchecked(grad, cache, i > 0 or concrete is not None)
            if concrete is not None:
                # through the Concrete pass: dx, and the data term of dL/dp_logit
                h, state = concrete
                grad, da_i = concrete_dropout_backward(grad, h, state, out=grad)
                da.append(np.full(1, da_i, dtype=network.dtype))
            dW.append(dW_i)
            db.append(db_i)
        return dW[::-1], db[::-1], da[::-1]

    def _outputs(self, network, X, masks):
        """Outputs for all rows of X, in passes of interface.PREDICT_ROWS rows."""
        rows = interface.PREDICT_ROWS
        return np.concatenate([self._forward(network, X[s:s + rows], masks)[0] for s in range(0, X.shape[0], rows)])

    def _step(self, network, optimizer, Xb, Yb, wb, l2, max_norm, prior):
        """One training step on a batch; returns its mean loss under dropout."""
        P, layers = self._forward(network, Xb, masks="relaxed")
        loss = losses.loss(network.output, P, Yb, wb)
        dW, db, da = self._backward(network, losses.loss_grad(network.output, P, Yb, wb), layers)
        # J's penalty is l2 / (2 * batch weight) * ||W||^2; none on biases
        decay = [l2 / (Xb.shape[0] if wb is None else float(np.sum(wb)))] * len(dW)
        if prior is not None:
            # Concrete dropout's prior: its weight term decays W, both terms
            # move a learned p_logit (a fixed one, the checks' twin's, stays)
            learned = network.learned_layers
            for i, a in network.prior_logits().items():
                _, da_prior, decay_prior = prior_terms(float(np.square(network.weights[i], dtype=np.float64).sum()),
                                                       network.layer_sizes[i], a, *prior)
                decay[i] += decay_prior
                if i in learned:
                    da[learned.index(i)] += network.dtype.type(da_prior)
        optimizer.update(network.params, dW + db + da, decay + [0.0] * (len(db) + len(da)))
        if max_norm is not None:
            for W in network.weights:
                max_norm_(W, max_norm)
        return loss
