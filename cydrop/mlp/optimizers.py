"""The optimizers of cydrop.MLP: each update rule and the state it carries between steps.

As scikit-learn's ``_stochastic_optimizers.py``: an optimizer owns its state
(momentum's velocities, Adam's moments and step count), laid out like the
parameters it updates, and :meth:`Optimizer.update` makes one fused in-place
pass per parameter array through the kernels of ``src/_optim.pyx`` (the
bodies of :mod:`cydrop.optim`'s public updates).

What the engines read and write (``cydrop.mlp.engines``), and nothing else:
``name``, ``learning_rate``, ``momentum``, ``t`` (steps taken; the compiled
engine advances it by an epoch's steps) and ``state``: ``state[j][k]`` is
state array j (momentum's velocity; Adam's m, then v) of parameter k, the
network's weights then biases.
"""

import numpy as np

from .. import _optim
from .._validation import check_real, kernel_ready
from ..optim import ADAM_BETA1, ADAM_BETA2, ADAM_EPS

__all__ = ["OPTIMIZERS", "Optimizer", "make_optimizer"]

OPTIMIZERS = ("sgd", "momentum", "adam")


class Optimizer:
    """One update rule and its state, for the parameter arrays ``params``
    (the network's weights then biases), which must keep their layout."""

    name = None
    n_state = 0  # state arrays per parameter
    beta1, beta2, eps = ADAM_BETA1, ADAM_BETA2, ADAM_EPS

    def __init__(self, params, learning_rate, momentum=0.9):
        self.learning_rate = check_real(learning_rate, "learning_rate", 0.0)
        self.momentum = check_real(momentum, "momentum", 0.0, 1.0, low_open=False)
        self.t = 0
        self.state = [[np.zeros_like(p, order="C") for p in params] for _ in range(self.n_state)]

    def fits(self, params):
        """True if the state is laid out like ``params`` (else it must be rebuilt)."""
        return all(len(arrays) == len(params) and all(kernel_ready(a, p.dtype, p.shape, True)
                                                      for a, p in zip(arrays, params))
                   for arrays in self.state)

    def update(self, params, grads, l2):
        """One step on every parameter: ``params[k] -= step(grads[k] + l2[k] * params[k])``.

        The arrays are the network's own, checked once per pass by the
        network; the state arrays are laid out like them (:meth:`fits`), and
        the kernels check every length they are given."""
        self.t += 1
        for k, (p, g, decay) in enumerate(zip(params, grads, l2)):
            self._step(p.reshape(-1), g.reshape(-1), [state[k].reshape(-1) for state in self.state], decay)


class SGD(Optimizer):
    """``param -= lr * (grad + l2 * param)``."""

    name = "sgd"

    def _step(self, p, g, state, decay):
        _optim.sgd(p, g, self.learning_rate, decay)


class Momentum(Optimizer):
    """``velocity = momentum * velocity - lr * (grad + l2 * param)``; ``param += velocity``."""

    name = "momentum"
    n_state = 1  # the velocity

    def _step(self, p, g, state, decay):
        _optim.momentum(p, g, state[0], self.learning_rate, self.momentum, decay)


class Adam(Optimizer):
    """Bias-corrected Adam (Kingma & Ba 2015) on ``grad + l2 * param`` (:func:`cydrop.optim.adam_update`)."""

    name = "adam"
    n_state = 2  # first and second moments

    def _step(self, p, g, state, decay):
        _optim.adam(p, g, state[0], state[1], self.t, self.learning_rate, self.beta1, self.beta2, self.eps, decay)


_CLASSES = {cls.name: cls for cls in (SGD, Momentum, Adam)}


def make_optimizer(name, params, learning_rate, momentum=0.9):
    """A fresh optimizer ``name`` for ``params`` (ValueError naming ``optimizer``)."""
    if not isinstance(name, str) or name not in _CLASSES:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {name!r}")
    return _CLASSES[name](params, learning_rate, momentum)
