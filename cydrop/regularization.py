"""Dropout as a regulariser, in closed form."""
import numpy as np

from ._validation import check_keep_prob

__all__ = ["dropout_l2_equivalent"]


def dropout_l2_equivalent(X, keep_prob):
    """Per-feature L2 weights that input dropout equals in expectation.

    For linear least squares with inverted dropout on the inputs, the
    expected loss is the plain loss plus ``sum_j lambda_j w_j^2`` with
    ``lambda_j = (1 - p) / p * sum_i x_ij^2`` (Wager, Wang & Liang, 2013):
    dropout is an L2 penalty that adapts to each feature's scale.

    Parameters
    ----------
    X : array (n_samples, n_features)
    keep_prob : float in (0, 1]

    Returns
    -------
    ndarray (n_features,) of float64

    Raises
    ------
    ValueError
        ``X`` not 2-D or not finite; ``keep_prob`` outside (0, 1].
    TypeError
        ``keep_prob`` not a number.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> X = np.array([[1.0, 10.0], [1.0, -10.0]])
    >>> cydrop.dropout_l2_equivalent(X, 0.5)   # the feature of larger scale is penalised more
    array([  2., 200.])
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or inf")
    p = check_keep_prob(keep_prob)
    return (1 - p) / p * np.sum(X * X, axis=0)
