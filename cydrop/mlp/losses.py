"""The output table: each output layer's activation, loss, gradient and score, and J's L2 term.

Like scikit-learn's ``neural_network/_base.py``: one place that says what
``"softmax"``, ``"sigmoid"``, ``"linear"`` and ``"gaussian"`` mean, for
training, for the cost J and for scoring. Losses are means over the rows,
weighted by ``sample_weight`` when given (``sum_i w_i l_i / sum_i w_i``, as
scikit-learn's MLP since 1.7), so all-ones weights equal none.

``"gaussian"``: the last layer's 2k units are the means of k targets, then
their log-variances, whose output function is ``exp``: the outputs are the
means and the variances (a variance learned per row, as the reference
experiments of Concrete dropout train). The targets are encoded in the
first k of 2k columns (the others are not read).
"""
import math

import numpy as np

from ..concrete import prior_terms

__all__ = ["OUTPUTS", "activate", "l2_penalty", "loss", "loss_grad", "prior_penalty", "score"]

OUTPUTS = ("softmax", "sigmoid", "linear", "gaussian")

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def activate(output, z):
    """Output activation of the last layer's pre-activations ``z`` (batch, n_out)."""
    if output == "linear":
        return z
    if output == "gaussian":   # means, and variances from the log-variances
        k = z.shape[1] // 2
        return np.concatenate([z[:, :k], np.exp(z[:, k:])], axis=1)
    if output == "sigmoid":
        # written so that neither branch overflows for large |z|
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    shifted = z - z.max(axis=1, keepdims=True)  # large logits stay finite
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def _row_losses(output, P, Y):
    """Per-row data loss, accumulated in float64."""
    if output == "linear":
        diff = P.astype(np.float64) - Y
        return 0.5 * np.sum(diff * diff, axis=1)
    if output == "gaussian":
        k = P.shape[1] // 2
        diff = P[:, :k].astype(np.float64) - Y[:, :k]
        var = np.maximum(P[:, k:].astype(np.float64), np.finfo(P.dtype).tiny)   # log(0) stays finite
        return np.sum(0.5 * (diff * diff / var + np.log(var)) + _HALF_LOG_2PI, axis=1)
    eps = np.finfo(P.dtype).tiny  # log(0) stays finite
    if output == "softmax":
        return -np.sum(Y * np.log(np.maximum(P, eps)), axis=1, dtype=np.float64)
    return -np.sum(Y * np.log(np.maximum(P, eps)) + (1 - Y) * np.log(np.maximum(1 - P, eps)),
                   axis=1, dtype=np.float64)


def loss(output, P, Y, sample_weight=None):
    """Mean data loss of outputs ``P`` against encoded targets ``Y``.

    ``linear``: ``0.5 * ||p - y||^2`` per row (squared error summed over the
    outputs); ``softmax``: cross-entropy; ``sigmoid``: binary cross-entropy;
    ``gaussian``: the negative log-likelihood of the targets,
    ``0.5 * ((y - mu)^2 / v + log v + log(2 pi))`` summed over the targets,
    v the variance.
    """
    rows = _row_losses(output, P, Y)
    if sample_weight is None:
        return float(rows.mean())
    return float(np.dot(rows, sample_weight) / np.sum(sample_weight, dtype=np.float64))


def loss_grad(output, P, Y, sample_weight=None):
    """dL/dz of the last layer for :func:`loss`: ``(P - Y) * w / sum(w)``.

    The same expression for the first three outputs: each activation is
    paired with its canonical loss (identity/squared error,
    softmax/cross-entropy, sigmoid/binary cross-entropy). ``gaussian`` (P
    the means and variances v): ``(mu - y) / v`` for the means and
    ``0.5 (1 - (y - mu)^2 / v)`` for the log-variances, times ``w / sum(w)``."""
    if output == "gaussian":
        k = P.shape[1] // 2
        diff, var = P[:, :k] - Y[:, :k], P[:, k:]
        grad = np.concatenate([diff / var, 0.5 * (1 - diff * diff / var)], axis=1)
    else:
        grad = P - Y
    if sample_weight is not None:
        grad *= sample_weight.astype(P.dtype)[:, None]
    # all-ones weights divide by the same number as none: the same bits
    grad /= P.shape[0] if sample_weight is None else float(np.sum(sample_weight, dtype=np.float64))
    return grad


def score(output, P, Y, sample_weight=None):
    """Accuracy (classification) or R^2 averaged uniformly over the outputs
    (``sklearn.metrics.r2_score``'s default), dropout off."""
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if output == "gaussian":   # R^2 of the means
        k = P.shape[1] // 2
        P, Y = P[:, :k], Y[:, :k]
    if output in ("linear", "gaussian"):
        # in float64 from the start: squares of float32 residuals overflow past 1.8e19
        Y, P = Y.astype(np.float64), P.astype(np.float64)
        mean = np.average(Y, axis=0, weights=w)
        ss_res = np.average((Y - P) ** 2, axis=0, weights=w)
        ss_tot = np.average((Y - mean) ** 2, axis=0, weights=w)
        # r2_score's conventions for a constant target: 1 if predicted exactly, else 0
        r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), np.where(ss_res == 0, 1.0, 0.0))
        return float(r2.mean())
    if output == "sigmoid":
        right = (P[:, 0] > 0.5) == (Y[:, 0] > 0.5)
    else:
        right = P.argmax(axis=1) == Y.argmax(axis=1)
    return float(np.average(right, weights=w))


def l2_penalty(l2, squared_weight_norm, total_weight):
    """J's penalty ``l2 / (2 * total_weight) * sum ||W||^2`` (weights only),
    ``total_weight`` the rows of the batch or data set (or their summed
    sample weights): the gradient of one step's penalty is
    ``l2 / total_weight * W``."""
    return 0.5 * l2 / total_weight * squared_weight_norm if l2 else 0.0


def prior_penalty(network, prior):
    """The Concrete dropout prior's terms of J: ``sum over the layers with a
    prior of wr ||W||^2 / (1 - p) + dr K (p log p + (1 - p) log(1 - p))``,
    ``prior = (wr, dr)`` (``ConcreteSettings.regularizer_weights``), K the
    layer's input width; 0 without a prior."""
    if prior is None:
        return 0.0
    wr, dr = prior
    return sum(prior_terms(float(np.square(network.weights[i], dtype=np.float64).sum()), network.layer_sizes[i],
                           a, wr, dr)[0] for i, a in network.prior_logits().items())
