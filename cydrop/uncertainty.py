"""MC dropout as predictive uncertainty (Gal & Ghahramani 2016), on arrays.

- :func:`predictive_log_likelihood`: the test log-likelihood of MC dropout
  samples with model precision tau, computed with logsumexp.
- :func:`weight_decay_from_tau` / :func:`tau_from_weight_decay`: the
  relation between tau and the L2 coefficient of :meth:`cydrop.MLP.fit`.

The published UCI protocol that uses them is an application,
``cydrop uci`` (``cydrop/apps/uci_protocol.py``). Imports NumPy and SciPy only.
"""
import math
import numbers

import numpy as np

from ._validation import check_bool, check_keep_prob, check_positive_int

__all__ = ["predictive_log_likelihood", "tau_from_weight_decay", "weight_decay_from_tau"]

# Gal & Ghahramani's prior length-scale of the UCI experiments.
LENGTHSCALE = 1e-2


def check_tau(tau, name="tau"):
    """tau as a float, a finite number > 0 (ValueError naming ``name``)."""
    return _positive(tau, name)


def _positive(value, name, why=""):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not (0 < value < math.inf):
        raise ValueError(f"{name} must be a finite number > 0{why}, got {value!r}")
    return float(value)


def predictive_log_likelihood(y, samples=None, tau=None, *, mean=None, std=None, average=True):
    """Log-likelihood of targets under MC dropout predictions with precision tau.

    With T samples ``y_t`` of the prediction of each row (Gal & Ghahramani
    2016, eq. 8)::

        ll = logsumexp_t(-tau / 2 (y - y_t)^2) - log T - log(2 pi) / 2 + log(tau) / 2

    the log of the average over the passes of a Gaussian density of
    precision tau around each pass. Computed with
    ``scipy.special.logsumexp``, so that rows far from every pass give a
    large negative number instead of ``log(0)``. Given ``mean`` and ``std``
    instead of samples (by keyword), the Gaussian with variance
    ``std^2 + 1 / tau``.

    Parameters
    ----------
    y : array (n,) or (n, 1)
        Targets, on the scale of the predictions.
    samples : ndarray (T, n) or (T, n, 1)
        MC dropout predictions (``MLP.predict_proba(X, mc_samples=T,
        return_samples=True)[2]``). A list or tuple is refused: stack the
        samples into one array, or give their moments as ``mean`` and ``std``.
    tau : float > 0
        Model precision (inverse observation noise variance).
    mean, std : array (n,) or (n, 1), keyword-only
        The predictions' mean and standard deviation, instead of ``samples``.
    average : bool, keyword-only
        Return the mean over the rows (True) or each row's value.

    Returns
    -------
    float, or ndarray (n,) of float64 when ``average=False``

    Raises
    ------
    TypeError
        ``samples`` not an ndarray; both or neither of ``samples`` and
        ``mean``/``std``.
    ValueError
        Shapes that disagree, no samples, non-finite values, tau <= 0.

    Examples
    --------
    >>> import numpy as np
    >>> from cydrop.uncertainty import predictive_log_likelihood
    >>> y = np.array([0.0, 1.0])
    >>> samples = np.array([[0.0, 1.0], [0.0, 1.0]])
    >>> round(predictive_log_likelihood(y, samples, tau=1.0), 6)  # -log(2 pi) / 2
    -0.918939
    >>> round(predictive_log_likelihood(y, mean=y, std=np.zeros(2), tau=1.0), 6)
    -0.918939
    """
    if tau is None:
        raise TypeError("predictive_log_likelihood needs tau, the model precision")
    tau = check_tau(tau)
    check_bool(average, "average")
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] == 0:
        raise ValueError(f"y must be 1-D (n,) with n >= 1, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("y contains NaN or inf")
    moments = mean is not None or std is not None
    if moments == (samples is not None):
        raise TypeError("give either samples or mean= and std=, not both or neither")
    if moments:
        if mean is None or std is None:
            raise TypeError("mean and std go together")
        # (n,) or (n, 1), as y: a reshape(-1) would pair the rows of any
        # array of n elements with y's in whatever order it holds them
        mean, std = (np.asarray(a, dtype=np.float64) for a in (mean, std))
        mean, std = (a[:, 0] if a.ndim == 2 and a.shape[1] == 1 else a for a in (mean, std))
        if mean.shape != y.shape or std.shape != y.shape:
            raise ValueError(f"mean and std must have y's shape {y.shape}, got {mean.shape} and {std.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std >= 0).all()):
            raise ValueError("mean and std must be finite, std >= 0")
        var = std * std + 1.0 / tau
        ll = -0.5 * np.log(2 * np.pi * var) - 0.5 * (y - mean) ** 2 / var
    else:
        if not isinstance(samples, np.ndarray):
            # [mean, std] would be read as T = 2 samples
            raise TypeError(f"samples must be a numpy.ndarray (T, n), got {type(samples).__name__}; "
                            "stack a list of passes with np.stack, or give mean= and std=")
        samples = np.asarray(samples, dtype=np.float64)
        if samples.ndim == 3 and samples.shape[2] == 1:
            samples = samples[:, :, 0]
        if samples.ndim != 2 or samples.shape[1] != y.shape[0] or samples.shape[0] == 0:
            raise ValueError(f"samples must have shape (T >= 1, {y.shape[0]}), got {samples.shape}")
        if not np.isfinite(samples).all():
            raise ValueError("samples contain NaN or inf")
        ll = row_log_likelihoods((y[None, :] - samples) ** 2, tau)
    return float(np.mean(ll)) if average else ll


def row_log_likelihoods(sq, tau):
    """Each row's log-likelihood, from the squared residuals ``sq`` (T, n)
    of its T passes: the samples branch of predictive_log_likelihood."""
    from scipy.special import logsumexp

    return (logsumexp(-0.5 * tau * sq, axis=0)
            - math.log(sq.shape[0]) - 0.5 * math.log(2 * math.pi) + 0.5 * math.log(tau))


def weight_decay_from_tau(tau, keep_prob, n_samples, batch_size, lengthscale=LENGTHSCALE):
    """The ``l2`` of :meth:`cydrop.MLP.fit` that corresponds to precision tau.

    Gal & Ghahramani's relation: weight decay ``lambda = l^2 p / (2 N tau)``
    (p the keep probability, N the training rows, l the prior length-scale)
    on the objective ``mean squared error + lambda ||W||^2``. cydrop's cost
    ``J = mean squared error / 2 + l2 / (2 batch) ||W||^2`` is half that
    objective when ``l2 = lambda * batch``.

    Parameters
    ----------
    tau : float > 0
        Model precision (inverse observation noise variance).
    keep_prob : float in (0, 1]
        Keep probability of the dropout (the published protocol's ``1 - p``).
    n_samples : int >= 1
        Training rows N.
    batch_size : int >= 1
        The mini-batch of :meth:`cydrop.MLP.fit` (its L2 term is per batch).
    lengthscale : float > 0, default 1e-2
        The prior length-scale l of the UCI experiments.

    Returns
    -------
    float
        The ``l2`` to pass to :meth:`cydrop.MLP.fit`.

    Raises
    ------
    ValueError, TypeError
        An argument out of its range, or not a number (named).

    Examples
    --------
    >>> from cydrop.uncertainty import tau_from_weight_decay, weight_decay_from_tau
    >>> l2 = weight_decay_from_tau(0.5, 0.95, n_samples=1000, batch_size=128)
    >>> round(tau_from_weight_decay(l2, 0.95, 1000, 128), 12)   # the two are inverses
    0.5
    """
    tau = check_tau(tau)
    keep_prob, n_samples, batch_size, lengthscale = _relation_args(keep_prob, n_samples, batch_size, lengthscale)
    return lengthscale ** 2 * keep_prob / (2.0 * n_samples * tau) * batch_size


def tau_from_weight_decay(l2, keep_prob, n_samples, batch_size, lengthscale=LENGTHSCALE):
    """The precision tau that the ``l2`` of :meth:`cydrop.MLP.fit` implies.

    The inverse of :func:`weight_decay_from_tau`: ``tau = l^2 p batch / (2 N l2)``.
    :class:`cydrop.sklearn.DropoutMLPRegressor` uses it for
    ``predict(X, return_std=True)`` when no tau is given.

    Parameters
    ----------
    l2 : float > 0
        The L2 coefficient of :meth:`cydrop.MLP.fit` (``alpha`` of the
        scikit-learn estimators).
    keep_prob : float in (0, 1]
        Keep probability of the output layer's input.
    n_samples : int >= 1
        Training rows N.
    batch_size : int >= 1
        The mini-batch of the training.
    lengthscale : float, default 1e-2
        The prior length-scale l.

    Returns
    -------
    float
        The model precision tau.

    Raises
    ------
    ValueError, TypeError
        ``l2`` not a finite number > 0 (without weight decay the relation
        gives no tau), or another argument out of its range (named).

    Examples
    --------
    >>> from cydrop.uncertainty import tau_from_weight_decay
    >>> round(tau_from_weight_decay(1e-4, 0.95, n_samples=1000, batch_size=200), 6)
    0.095
    """
    l2 = _positive(l2, "l2", " to imply a tau")
    keep_prob, n_samples, batch_size, lengthscale = _relation_args(keep_prob, n_samples, batch_size, lengthscale)
    return lengthscale ** 2 * keep_prob * batch_size / (2.0 * n_samples * l2)


def _relation_args(keep_prob, n_samples, batch_size, lengthscale):
    """The arguments the two tau relations share, checked."""
    return (check_keep_prob(keep_prob), check_positive_int(n_samples, "n_samples"),
            check_positive_int(batch_size, "batch_size"), _positive(lengthscale, "lengthscale"))
