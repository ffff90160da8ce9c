"""Optimizers as state objects with an ``update``, for cydrop.MLP's training loop.

As scikit-learn's ``_stochastic_optimizers.py``: each optimizer owns its
state (velocities, Adam's moments and step count), laid out like the
parameters it updates, and ``update`` makes one fused in-place pass per
parameter array through :mod:`cydrop.optim`'s kernels.
"""

import numpy as np

from . import _optim
from ._validation import kernel_ready
from .optim import ADAM_BETA1, ADAM_BETA2, ADAM_EPS, _check_real

__all__ = ["OPTIMIZERS", "make_optimizer"]

OPTIMIZERS = ("sgd", "momentum", "adam")


class _Optimizer:
    """One update rule and its state; ``params`` is the network's list of
    parameter arrays (weights then biases), which must keep their layout."""

    name = None
    n_state = 0  # state arrays per parameter

    def __init__(self, params, learning_rate, momentum=0.9):
        self.learning_rate = _check_real(learning_rate, "learning_rate", 0.0)
        self.momentum = _check_real(momentum, "momentum", 0.0, 1.0, low_open=False)
        self.t = 0  # steps taken
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


class _SGD(_Optimizer):
    name = "sgd"

    def _step(self, p, g, state, decay):
        _optim.sgd(p, g, self.learning_rate, decay)


class _Momentum(_Optimizer):
    name = "momentum"
    n_state = 1  # the velocity

    def _step(self, p, g, state, decay):
        _optim.momentum(p, g, state[0], self.learning_rate, self.momentum, decay)


class _Adam(_Optimizer):
    name = "adam"
    n_state = 2  # first and second moments

    def _step(self, p, g, state, decay):
        _optim.adam(p, g, state[0], state[1], self.t, self.learning_rate, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, decay)


_CLASSES = {cls.name: cls for cls in (_SGD, _Momentum, _Adam)}


def make_optimizer(name, params, learning_rate, momentum=0.9):
    """A fresh optimizer ``name`` for ``params`` (ValueError naming ``optimizer``)."""
    if not isinstance(name, str) or name not in _CLASSES:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {name!r}")
    return _CLASSES[name](params, learning_rate, momentum)
