"""The one training loop of cydrop: epochs, shuffling, evaluation, stopping, history.

``MLP.fit``, ``MLP.partial_fit`` and both scikit-learn estimators train
through :func:`run`, on either engine; nothing else implements a stopping rule.

The stopping rule never reads the training loss under dropout: while dropout
is on, that loss is not a well-defined function of the weights (each batch
sees another thinned network), so it jumps from epoch to epoch. The rule
watches a cost measured with dropout off, every ``eval_every`` epochs: the
validation loss when there is validation data, else J on the training set.
It stops after ``patience`` evaluations in a row that did not improve on the
best by more than ``tol``, and puts back the weights of the best evaluation;
under the "adaptive" learning-rate schedule (``optimizers.py``) such a
plateau divides the rate by 5 instead, until it is at or below 1e-6.

Shuffling permutes the row order of the previous epoch (the first epoch's of
``arange(n)``) with ``rng.permutation(n)``, as scikit-learn's MLP permutes its
index array: given scikit-learn's ``RandomState``, the same epochs. A SciPy
sparse X is trained a densified batch at a time (:func:`data.dense_rows`).
"""
import math

import numpy as np

from . import data, losses
from .engines import interface

__all__ = ["cost", "evaluate", "predict", "run"]


class _Best:
    """The best monitored cost so far, its weights, and evaluations since it improved."""

    def __init__(self, patience, tol):
        self.patience, self.tol = patience, tol
        self.value, self.params, self.epoch, self.stale = math.inf, None, None, 0

    def update(self, value, epoch, network):
        """Record one evaluation; True when the rule says stop."""
        improved = value < self.value - self.tol
        if value < self.value:  # the best weights, whether or not by more than tol
            self.value, self.params, self.epoch = value, network.snapshot(), epoch
        self.stale = 0 if improved else self.stale + 1
        return self.stale >= self.patience


def _where(name_steps, epoch, first_step, last_step, first_bad_step):
    """Where training diverged, for its error: the epoch, or with
    ``name_steps`` (partial_fit) the step whose loss was not finite, else
    the one step or the steps of the epoch."""
    if not name_steps:
        return f"epoch {epoch}"
    if first_bad_step is not None or first_step == last_step:
        return f"step {first_bad_step or first_step}"
    return f"one of steps {first_step}-{last_step}"   # the loss stayed finite: it went in one of these


def run(network, engine, optimizer, X, Y, *, epochs, batch_size, rng, shuffle=True, sample_weight=None, l2=0.0,
        max_norm=None, prior=None, validation=None, patience=None, tol=0.0, eval_every=1, track_cost=False,
        progress=False, verbose=False, name_steps=False):
    """Train ``network`` on ``engine`` for up to ``epochs`` epochs; returns the history dict.

    Arguments arrive checked (``cydrop.mlp.model``): X (n, n_in) (an ndarray
    or a SciPy CSR matrix) and encoded targets Y in the network's dtype,
    ``rng`` a numpy Generator or RandomState (its ``permutation``
    shuffles), ``prior`` None or the (wr, dr) of the learned layers' prior
    (the engine interface's), ``validation`` None or
    ``(X_val, Y_val, w_val)``, ``patience`` None (no stopping rule) or an int
    or ``math.inf`` (evaluate, never stop, keep the best weights).

    History: ``loss`` (mean training loss under dropout, every epoch: free),
    ``keep_prob`` (each layer's keep probability after every epoch, when
    some layer learns it),
    and at every evaluation ``eval_epoch``, ``cost`` (J on the training set,
    dropout off, when tracked or monitored), ``train_score`` beside it, and
    ``val_loss``/``val_score`` with validation data. ``best_epoch`` is the
    epoch whose weights were kept (None without a stopping rule),
    ``stopped`` whether the rule stopped before ``epochs``. A divergence
    names the epoch (the optimizer step with ``name_steps``, for partial_fit).
    """
    n = X.shape[0]
    monitor_cost = track_cost or (patience is not None and validation is None)
    evaluate = monitor_cost or validation is not None
    history = {"loss": [], "eval_epoch": []}
    if network.learned_layers:
        history["keep_prob"] = []
    if monitor_cost:
        history.update(cost=[], train_score=[])
    if validation is not None:
        history.update(val_loss=[], val_score=[])
    best = _Best(patience, tol) if patience is not None else None
    stopped = False
    bar = _progress(epochs, progress)
    order = np.arange(n)
    try:
        for epoch in range(1, epochs + 1):
            if shuffle:
                order = order[rng.permutation(n)]
            first_step = optimizer.t + 1
            loss, first_bad_step = _train_epoch(network, engine, optimizer, X, Y, sample_weight, order, batch_size,
                                                l2, max_norm, prior)
            loss /= n if sample_weight is None else float(np.sum(sample_weight[order]))
            # the weights too: a tanh or sigmoid layer turns infinite weights into a finite loss
            if not (math.isfinite(loss) and network.params_finite()):
                raise FloatingPointError(
                    f"training diverged at {_where(name_steps, epoch, first_step, optimizer.t, first_bad_step)}: "
                    f"loss {loss}, weights {'finite' if network.params_finite() else 'not finite'}; "
                    f"lower learning_rate (now {optimizer.learning_rate})")
            if not optimizer.state_finite():
                # the weights stay finite but stop moving: nothing else would say so
                raise FloatingPointError(
                    f"training diverged at {_where(name_steps, epoch, first_step, optimizer.t, None)}: the "
                    f"{optimizer.name} optimizer's state overflowed {network.dtype} (gradients too large to "
                    f"square), so its steps stopped; scale the inputs, lower l2 or lengthscale, or train in float64")
            history["loss"].append(loss)
            if "keep_prob" in history:
                history["keep_prob"].append(network.keep_prob_values())
            optimizer.epoch_ends(n)
            if verbose:
                print(f"Iteration {epoch}, loss = {loss:.8f}")
            if evaluate and (epoch % eval_every == 0 or epoch == epochs):
                monitored = _evaluate(network, engine, X, Y, sample_weight, l2, prior, validation, history,
                                      monitor_cost, epoch)
                if verbose and validation is not None:
                    print(f"Validation loss: {history['val_loss'][-1]:f}, score: {history['val_score'][-1]:f}")
                if best is not None and best.update(monitored, epoch, network):
                    message = f"No improvement by more than tol={tol} for {patience} evaluations:"
                    if optimizer.plateau():
                        stopped = epoch < epochs
                        if verbose:
                            print(f"{message} stopping.")
                        break
                    best.stale = 0  # "adaptive" lowered the rate instead
                    if verbose:
                        print(f"{message} learning rate set to {optimizer.learning_rate:g}.")
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
    finally:
        if bar is not None:
            bar.close()
    if best is not None and best.params is not None:
        network.restore(best.params)
    history["best_epoch"] = None if best is None else best.epoch
    history["stopped"] = stopped
    return history


def _train_epoch(network, engine, optimizer, X, Y, sample_weight, order, batch_size, l2, max_norm, prior):
    """The engine's epoch; a sparse X one densified batch at a time (memory
    for batch_size rows, not all of X), each an epoch of one batch: the same
    updates and masks, in the same order, as the whole epoch."""
    if not data.is_sparse(X):
        return engine.train_epoch(network, optimizer, X, Y, sample_weight, order, batch_size, l2, max_norm, prior)
    total, first_bad_step = 0.0, None
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        wb = None if sample_weight is None else sample_weight[idx]
        loss, bad = engine.train_epoch(network, optimizer, data.dense_rows(X, idx), Y[idx], wb,
                                       np.arange(len(idx)), batch_size, l2, max_norm, prior)
        total += loss
        first_bad_step = first_bad_step or bad
    return total, first_bad_step


def predict(network, engine, X):
    """The outputs for X, dropout off; a sparse X densified a chunk of rows at a time."""
    if not data.is_sparse(X):
        return engine.predict(network, X)
    rows = interface.PREDICT_ROWS
    return np.concatenate([engine.predict(network, data.dense_rows(X, slice(s, s + rows)))
                           for s in range(0, X.shape[0], rows)])


def evaluate(network, engine, X, Y, sample_weight=None):
    """(mean data loss, score) of the network on X, Y, dropout off."""
    P = predict(network, engine, X)
    return losses.loss(network.output, P, Y, sample_weight), losses.score(network.output, P, Y, sample_weight)


def cost(network, engine, X, Y, l2, sample_weight=None, prior=None):
    """J with dropout off: the mean data loss plus the L2 term (and the
    learned layers' prior, ``prior = (wr, dr)``)."""
    total = X.shape[0] if sample_weight is None else float(np.sum(sample_weight))
    return (evaluate(network, engine, X, Y, sample_weight)[0]
            + losses.l2_penalty(l2, network.squared_weight_norm(), total) + losses.prior_penalty(network, prior))


def _evaluate(network, engine, X, Y, sample_weight, l2, prior, validation, history, monitor_cost, epoch):
    """Append this evaluation to ``history``; return the monitored cost (dropout off)."""
    history["eval_epoch"].append(epoch)
    monitored = None
    if monitor_cost:
        data_loss, train_score = evaluate(network, engine, X, Y, sample_weight)
        total = X.shape[0] if sample_weight is None else float(np.sum(sample_weight))
        cost = (data_loss + losses.l2_penalty(l2, network.squared_weight_norm(), total)
                + losses.prior_penalty(network, prior))
        if not math.isfinite(cost):
            raise FloatingPointError(f"training diverged at epoch {epoch}: cost J {cost}")
        history["cost"].append(cost)
        history["train_score"].append(train_score)
        monitored = cost
    if validation is not None:
        val_loss, val_score = evaluate(network, engine, *validation)
        history["val_loss"].append(val_loss)
        history["val_score"].append(val_score)
        monitored = val_loss  # validation data, when given, decide
    return monitored


def _progress(total, enabled):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="epoch", leave=False)
