"""The one training loop of cydrop: epochs, shuffling, evaluation, stopping, history.

``MLP.fit``, ``MLP.partial_fit`` and both scikit-learn estimators train
through :func:`run`; nothing else implements a stopping rule.

The stopping rule never reads the training loss under dropout: while dropout
is on, that loss is not a well-defined function of the weights (each batch
sees another thinned network), so it jumps from epoch to epoch. The rule
watches a cost measured with dropout off, every ``eval_every`` epochs: the
validation loss when there is validation data, else J on the training set.
It stops after ``patience`` evaluations in a row that did not improve on the
best by more than ``tol``, and puts back the weights of the best evaluation;
under the "adaptive" learning-rate schedule (``cydrop/_optimizers.py``) such
a plateau divides the rate by 5 instead, until it is at or below 1e-6.

Shuffling permutes the row order of the previous epoch (the first epoch's of
``arange(n)``) with ``rng.permutation(n)``, as scikit-learn's MLP permutes its
index array: given scikit-learn's ``RandomState``, the same epochs.
"""
import math

import numpy as np

__all__ = ["run"]


class _Best:
    """The best monitored cost so far, its weights, and evaluations since it improved."""

    def __init__(self, patience, tol):
        self.patience, self.tol = patience, tol
        self.value, self.params, self.epoch, self.stale = math.inf, None, None, 0

    def update(self, value, epoch, net):
        """Record one evaluation; True when the rule says stop."""
        improved = value < self.value - self.tol
        if value < self.value:  # the best weights, whether or not by more than tol
            self.value, self.params, self.epoch = value, net.snapshot(), epoch
        self.stale = 0 if improved else self.stale + 1
        return self.stale >= self.patience


def run(net, optimizer, X, Y, *, epochs, batch_size, rng, shuffle=True, sample_weight=None, l2=0.0,
        max_norm=None, validation=None, patience=None, tol=0.0, eval_every=1, track_cost=False,
        progress=False, verbose=False, name_steps=False):
    """Train ``net`` for up to ``epochs`` epochs; returns the history dict.

    Arguments arrive checked (``cydrop/mlp.py``): X (n, n_in) and encoded
    targets Y in the network's dtype, ``rng`` a numpy Generator or
    RandomState (its ``permutation`` shuffles), ``validation`` None or
    ``(X_val, Y_val, w_val)``, ``patience`` None (no stopping rule) or an int
    or ``math.inf`` (evaluate, never stop, keep the best weights).

    History: ``loss`` (mean training loss under dropout, every epoch: free),
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
            loss = net.train_epoch(optimizer, X, Y, sample_weight, order, batch_size, l2, max_norm)
            # the weights too: a tanh or sigmoid layer turns infinite weights into a finite loss
            if not (math.isfinite(loss) and net.params_finite()):
                where = f"step {optimizer.t}" if name_steps else f"epoch {epoch}"
                raise FloatingPointError(
                    f"training diverged at {where}: loss {loss}, weights "
                    f"{'finite' if net.params_finite() else 'not finite'}; "
                    f"lower learning_rate (now {optimizer.learning_rate})")
            history["loss"].append(loss)
            optimizer.epoch_ends(n)
            if verbose:
                print(f"Iteration {epoch}, loss = {loss:.8f}")
            if evaluate and (epoch % eval_every == 0 or epoch == epochs):
                monitored = _evaluate(net, X, Y, sample_weight, l2, validation, history, monitor_cost, epoch)
                if verbose and validation is not None:
                    print(f"Validation loss: {history['val_loss'][-1]:f}, score: {history['val_score'][-1]:f}")
                if best is not None and best.update(monitored, epoch, net):
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
        net.restore(best.params)
    history["best_epoch"] = None if best is None else best.epoch
    history["stopped"] = stopped
    return history


def _evaluate(net, X, Y, sample_weight, l2, validation, history, monitor_cost, epoch):
    """Append this evaluation to ``history``; return the monitored cost (dropout off)."""
    history["eval_epoch"].append(epoch)
    monitored = None
    if monitor_cost:
        data_loss, train_score = net.evaluate(X, Y, sample_weight)
        total = X.shape[0] if sample_weight is None else float(np.sum(sample_weight))
        cost = data_loss + net.l2_term(l2, total)
        if not math.isfinite(cost):
            raise FloatingPointError(f"training diverged at epoch {epoch}: cost J {cost}")
        history["cost"].append(cost)
        history["train_score"].append(train_score)
        monitored = cost
    if validation is not None:
        val_loss, val_score = net.evaluate(*validation)
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
