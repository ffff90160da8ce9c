"""The optimizers of cydrop.MLP: each update rule, its learning-rate schedule and
the state it carries between steps.

As scikit-learn's ``_stochastic_optimizers.py``: an optimizer owns its state
(momentum's velocities, Adam's moments and step count) and its schedule,
laid out like the parameters it updates, and :meth:`Optimizer.update` makes
one fused in-place pass per parameter array through the kernels of
``src/_optim.pyx`` (the bodies of :mod:`cydrop.optim`'s public updates).

What the engines read and write (``cydrop.mlp.engines``), and nothing else:
``name``, ``learning_rate`` (the rate of the next step), ``momentum``,
``beta1``, ``beta2``, ``eps``, ``eps_hat``, ``t`` (steps taken; the compiled
engine advances it by an epoch's steps) and ``state``: ``state[j][k]`` is
state array j (momentum's velocity; Adam's m, then v) of parameter k, the
network's weights then biases. The training loop calls :meth:`epoch_ends`
and :meth:`plateau`.
"""

import numpy as np

from .. import _optim
from .._validation import check_bool, check_real, kernel_ready
from ..optim import ADAM_BETA1, ADAM_BETA2, ADAM_EPS

__all__ = ["OPTIMIZERS", "SCHEDULES", "Optimizer", "make_optimizer"]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
SCHEDULES = ("constant", "invscaling", "adaptive")
# "adaptive" stops once a plateau finds the rate at or below this (scikit-learn's SGDOptimizer)
ADAPTIVE_MIN_RATE = 1e-6


class Optimizer:
    """One update rule, its state and its learning-rate schedule, for the
    parameter arrays ``params`` (the network's weights then biases), which
    must keep their layout.

    The schedule is scikit-learn's (``SGDOptimizer``): "constant" keeps
    ``learning_rate_init``; "invscaling" sets the rate after every epoch to
    ``learning_rate_init / (samples + 1) ** power_t``, ``samples`` the rows
    trained on by this optimizer; "adaptive" divides the rate by 5 each time
    the stopping rule finds no improvement (:meth:`plateau`), and stops once
    the rate is at or below 1e-6."""

    name = None
    n_state = 0  # state arrays per parameter

    def __init__(self, params, learning_rate, momentum=0.9, *, beta1=ADAM_BETA1, beta2=ADAM_BETA2, eps=ADAM_EPS,
                 eps_hat=False, schedule="constant", power_t=0.5):
        self.learning_rate_init = check_real(learning_rate, "learning_rate", 0.0)
        self.momentum = check_real(momentum, "momentum", 0.0, 1.0, low_open=False)
        self.beta1 = check_real(beta1, "beta1", 0.0, 1.0, low_open=False)
        self.beta2 = check_real(beta2, "beta2", 0.0, 1.0, low_open=False)
        self.eps = check_real(eps, "eps", 0.0)
        self.eps_hat = check_bool(eps_hat, "eps_hat")  # eps added to sqrt(v), not sqrt(v_hat)
        if not isinstance(schedule, str) or schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
        self.schedule = schedule
        self.power_t = check_real(power_t, "power_t", 0.0, low_open=False)
        self.learning_rate = self.learning_rate_init  # the rate of the next step
        self.t = 0  # steps taken
        self.samples = 0  # rows trained on: invscaling's time
        self.state = [[np.zeros_like(p, order="C") for p in params] for _ in range(self.n_state)]

    def fits(self, params):
        """True if the state is laid out like ``params`` (else it must be rebuilt)."""
        return all(len(arrays) == len(params) and all(kernel_ready(a, p.dtype, p.shape, True)
                                                      for a, p in zip(arrays, params))
                   for arrays in self.state)

    def state_finite(self):
        """True if every state array is finite. Parameters can stay finite
        while their state is not: a gradient above about 1.8e19 in float32
        (1.3e154 in float64) makes Adam's second moment inf, and its steps 0."""
        return all(np.isfinite(a).all() for arrays in self.state for a in arrays)

    def configure(self, settings):
        """Take the hyperparameters of ``settings`` (a checked optimizer of
        this kind) for the next training call; the state, the step and
        sample counts stay. The rate restarts at ``learning_rate_init``, or
        where "invscaling" has brought it after the samples seen so far."""
        for name in ("learning_rate_init", "momentum", "beta1", "beta2", "eps", "eps_hat", "schedule", "power_t"):
            setattr(self, name, getattr(settings, name))
        self.learning_rate = self.learning_rate_init
        if self.schedule == "invscaling" and self.samples:
            self.learning_rate = self.learning_rate_init / (self.samples + 1) ** self.power_t

    def epoch_ends(self, n_rows):
        """An epoch over ``n_rows`` rows is done: count them; "invscaling" lowers the rate."""
        self.samples += n_rows
        if self.schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (self.samples + 1) ** self.power_t

    def plateau(self):
        """The stopping rule found no improvement: True to stop. "adaptive"
        divides the rate by 5 and goes on instead, until the rate is at or
        below 1e-6."""
        if self.schedule != "adaptive" or self.learning_rate <= ADAPTIVE_MIN_RATE:
            return True
        self.learning_rate /= 5.0
        return False

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
    nesterov = False

    def _step(self, p, g, state, decay):
        _optim.momentum(p, g, state[0], self.learning_rate, self.momentum, decay, self.nesterov)


class Nesterov(Momentum):
    """Momentum with Nesterov's look-ahead, as scikit-learn's ``nesterovs_momentum=True``
    (:func:`cydrop.optim.momentum_update`)."""

    name = "nesterov"
    nesterov = True


class Adam(Optimizer):
    """Bias-corrected Adam (Kingma & Ba 2015) on ``grad + l2 * param`` (:func:`cydrop.optim.adam_update`)."""

    name = "adam"
    n_state = 2  # first and second moments

    def _step(self, p, g, state, decay):
        _optim.adam(p, g, state[0], state[1], self.t, self.learning_rate, self.beta1, self.beta2, self.eps, decay,
                    self.eps_hat)


_CLASSES = {cls.name: cls for cls in (SGD, Momentum, Nesterov, Adam)}


def make_optimizer(name, params, learning_rate, momentum=0.9, **settings):
    """A fresh optimizer ``name`` for ``params`` (ValueError naming ``optimizer``);
    ``settings``: beta1, beta2, eps, eps_hat, schedule, power_t."""
    if not isinstance(name, str) or name not in _CLASSES:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {name!r}")
    return _CLASSES[name](params, learning_rate, momentum, **settings)
