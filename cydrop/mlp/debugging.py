"""The debugging recipe of dropout nets: J must fall with dropout off, and backprop must match
central differences. Both run on a float64 copy of the network with dropout off
(``Network.float64_copy``), on the engine the network trains on."""
from dataclasses import dataclass, field

import numpy as np

from ..concrete import prior_terms
from .optimizers import make_optimizer
from .training import cost

__all__ = ["CheckReport", "check", "gradient_check"]


@dataclass
class CheckReport:
    """What :meth:`cydrop.MLP.check` found.

    Attributes
    ----------
    costs : list of float
        J (dropout off) before each of the ``iterations`` steps of full-batch
        gradient descent, and after the last.
    monotonic : bool
        Whether J fell on every iteration.
    gradient_error : float
        :meth:`cydrop.MLP.gradient_check`'s relative difference (below 1e-7 is right).
    learning_rate : float
    iterations : int
    """

    costs: list = field(repr=False)
    monotonic: bool
    gradient_error: float
    learning_rate: float
    iterations: int

    def __str__(self):
        rises = [i + 1 for i, (a, b) in enumerate(zip(self.costs, self.costs[1:])) if not b < a]
        verdict = ("fell on every iteration" if self.monotonic else
                   f"did not fall at iterations {rises[:10]} (with a right gradient: try a smaller learning_rate)")
        grad = "right" if self.gradient_error < 1e-7 else "WRONG (above 1e-7)"
        return (f"J with dropout off, {self.iterations} iterations of full-batch gradient descent at "
                f"learning_rate {self.learning_rate:g}: {self.costs[0]:.6g} -> {self.costs[-1]:.6g}, {verdict}\n"
                f"gradient check: relative difference {self.gradient_error:.3g} ({grad})")


def check(twin, engine, X, Y, *, l2, prior, iterations, learning_rate, eps, max_checks):
    """CheckReport of ``twin`` (a float64 network with dropout off) on checked
    data X, encoded targets Y, trained with J's penalty ``l2`` (and the
    learned layers' ``prior``, their rates held fixed)."""
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    error = gradient_check(twin, engine, X, Y, l2=l2, prior=prior, eps=eps, max_checks=max_checks, seed=0)
    n = X.shape[0]
    sgd = make_optimizer("sgd", twin.params, learning_rate)
    order = np.arange(n)
    costs = [cost(twin, engine, X, Y, l2, prior=prior)]
    for _ in range(iterations):
        # one full batch through the training step itself: what is checked is what trains
        engine.train_epoch(twin, sgd, X, Y, None, order, n, l2, None, prior)
        costs.append(cost(twin, engine, X, Y, l2, prior=prior))
    monotonic = all(b < a for a, b in zip(costs, costs[1:]))
    return CheckReport(costs, monotonic, error, learning_rate, iterations)


def gradient_check(twin, engine, X, Y, *, l2, prior, eps, max_checks, seed):
    """``||num - grad|| / (||num|| + ||grad||)`` over ``max_checks`` random
    parameters of ``twin`` (a float64 network with dropout off, whose
    parameters are put back as they were); J's terms are the data loss,
    the L2 term and the prior of the layers whose rates were learned (held
    fixed in the twin)."""
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    n = X.shape[0]
    _, dW, db = engine.gradients(twin, X, Y)
    params = twin.params
    decay = [l2 / n] * twin.n_layers
    if prior is not None:
        for i, a in twin.prior_logits().items():
            decay[i] += prior_terms(float(np.square(twin.weights[i]).sum()), twin.layer_sizes[i], a, *prior)[2]
    analytic = [g + d * W for g, d, W in zip(dW, decay, twin.weights)] + db
    slots = [(k, i) for k, p in enumerate(params) for i in range(p.size)]
    rng = np.random.default_rng(seed)
    if len(slots) > max_checks:
        slots = [slots[j] for j in rng.choice(len(slots), max_checks, replace=False)]
    num, ana = [], []
    for k, i in slots:
        flat = params[k].reshape(-1)
        old = flat[i]
        flat[i] = old + eps
        plus = cost(twin, engine, X, Y, l2, prior=prior)
        flat[i] = old - eps
        minus = cost(twin, engine, X, Y, l2, prior=prior)
        flat[i] = old
        num.append((plus - minus) / (2 * eps))
        ana.append(analytic[k].reshape(-1)[i])
    num, ana = np.array(num), np.array(ana)
    denom = np.linalg.norm(num) + np.linalg.norm(ana)
    return float(np.linalg.norm(num - ana) / denom) if denom else 0.0
