"""Fused in-place parameter updates: SGD, classical and Nesterov momentum, Adam, max-norm.

Each function checks every argument here, in Python, and only then makes one
call into ``src/_optim.pyx``, whose kernel updates the parameter (and its
optimizer state) in a single pass without the GIL. Nothing is allocated per
call and nothing is returned: the arrays given are updated in place.

The updated arrays (``param``, ``velocity``, ``m``, ``v``, ``W``) must be
C-contiguous, writable, of one float dtype and shape, and must not share
memory with each other or with ``grad``. ``grad`` is only read; a
non-contiguous ``grad`` is copied first (as inputs are elsewhere in cydrop).
"""
import math

import numpy as np

from . import _optim
from ._validation import as_c_array, check_bool, check_float_dtype, check_out, check_positive_int, check_real, flat

__all__ = ["adam_update", "max_norm_", "momentum_update", "sgd_update"]


def _check_updated(arr, name, like=None):
    """An array updated in place: float, C-contiguous, writable, of ``like``'s
    shape and dtype (a copy would take the update and leave the caller's
    array as it was)."""
    check_float_dtype(arr, name)
    check_out(arr, arr if like is None else like, name)


def _check_grad(grad, param):
    """grad: param's dtype and shape; returned C-contiguous (copied if not)."""
    check_float_dtype(grad, "grad")
    if grad.dtype != param.dtype:
        raise TypeError(f"grad must have param's dtype {param.dtype}, got {grad.dtype}")
    if grad.shape != param.shape:
        raise ValueError(f"grad must have param's shape {param.shape}, got {grad.shape}")
    return as_c_array(grad)


def _check_disjoint(named):
    """No two of the (name, array) pairs share memory: the kernel reads and
    writes element i of each in the same step, so an alias would feed one
    array's fresh values into another's update."""
    for i, (name_a, a) in enumerate(named):
        for name_b, b in named[i + 1:]:
            if a.size and b.size and np.may_share_memory(a, b):
                raise ValueError(f"{name_b} shares memory with {name_a}; "
                                 "give each its own array")


# Adam's defaults (Kingma & Ba 2015), shared by adam_update and cydrop.MLP.
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8


def sgd_update(param, grad, lr, *, l2=0.0):
    """Plain SGD step in place: ``param -= lr * (grad + l2 * param)``.

    Parameters
    ----------
    param : ndarray of float32 or float64, any shape
        Parameter updated in place; C-contiguous and writable.
    grad : ndarray of param's shape and dtype
        Gradient of the loss with respect to ``param`` (read only; copied
        first if not C-contiguous). Must not share memory with ``param``.
    lr : float > 0, finite
        Learning rate.
    l2 : float >= 0, finite, keyword-only
        L2 penalty coefficient: adds ``l2 * param`` to the gradient (the
        gradient of ``l2 / 2 * ||param||^2``).

    Returns
    -------
    None
        ``param`` is updated in place.

    Raises
    ------
    TypeError
        ``param`` or ``grad`` not a float32/float64 ndarray, dtypes differ, a
        scalar not a real number.
    ValueError
        Shapes differ; ``param`` read-only or not C-contiguous; ``grad``
        sharing memory with ``param``; ``lr`` or ``l2`` out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from cydrop.optim import sgd_update
    >>> w = np.array([1.0, -2.0])
    >>> sgd_update(w, np.array([0.5, 0.5]), lr=0.1)
    >>> w
    array([ 0.95, -2.05])
    """
    _check_updated(param, "param")
    grad = _check_grad(grad, param)
    lr = check_real(lr, "lr", 0.0)
    l2 = check_real(l2, "l2", 0.0, low_open=False)
    _check_disjoint([("param", param), ("grad", grad)])
    _optim.sgd(flat(param), flat(grad), lr, l2)


def momentum_update(param, grad, velocity, lr, momentum=0.9, *, l2=0.0, nesterov=False):
    """Momentum step in place, classical or Nesterov's (as scikit-learn's SGDOptimizer).

    ``velocity = momentum * velocity - lr * (grad + l2 * param)``, then
    ``param += velocity``; with ``nesterov``,
    ``param += momentum * velocity - lr * (grad + l2 * param)`` (the
    look-ahead of Sutskever et al. 2013, as scikit-learn's
    ``nesterovs_momentum=True``).

    Parameters
    ----------
    param : ndarray of float32 or float64, any shape
        Parameter updated in place; C-contiguous and writable.
    grad : ndarray of param's shape and dtype
        Gradient with respect to ``param`` (read only; copied first if not
        C-contiguous).
    velocity : ndarray of param's shape and dtype
        Optimizer state, updated in place; C-contiguous and writable. Start
        from zeros (``np.zeros_like(param)``) and keep it across steps.
    lr : float > 0, finite
        Learning rate.
    momentum : float in [0, 1)
        Decay of the velocity; ``0`` gives plain SGD.
    l2 : float >= 0, finite, keyword-only
        L2 penalty coefficient, added to the gradient as ``l2 * param``.
    nesterov : bool, keyword-only
        Nesterov's momentum instead of the classical one.

    Returns
    -------
    None
        ``param`` and ``velocity`` are updated in place.

    Raises
    ------
    TypeError
        An array not a float32/float64 ndarray or of another dtype than
        ``param``; a scalar not a real number.
    ValueError
        Shapes differ; ``param`` or ``velocity`` read-only or not
        C-contiguous; two arrays sharing memory; a scalar out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from cydrop.optim import momentum_update
    >>> w, vel = np.array([1.0]), np.zeros(1)
    >>> for _ in range(2):
    ...     momentum_update(w, np.array([1.0]), vel, lr=0.1, momentum=0.5)
    >>> vel, w
    (array([-0.15]), array([0.75]))
    """
    _check_updated(param, "param")
    grad = _check_grad(grad, param)
    _check_updated(velocity, "velocity", like=param)
    lr = check_real(lr, "lr", 0.0)
    momentum = check_real(momentum, "momentum", 0.0, 1.0, low_open=False)
    l2 = check_real(l2, "l2", 0.0, low_open=False)
    nesterov = check_bool(nesterov, "nesterov")
    _check_disjoint([("param", param), ("grad", grad), ("velocity", velocity)])
    _optim.momentum(flat(param), flat(grad), flat(velocity), lr, momentum, l2, nesterov)


def adam_update(param, grad, m, v, t, lr=1e-3, beta1=ADAM_BETA1, beta2=ADAM_BETA2, eps=ADAM_EPS, *, l2=0.0,
                eps_hat=False):
    """Adam step ``t`` in place (Kingma & Ba 2015, with bias correction).

    With ``g = grad + l2 * param``::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        param -= lr * m_hat / (sqrt(v_hat) + eps)

    where ``m_hat = m / (1 - beta1**t)`` and ``v_hat = v / (1 - beta2**t)``.
    The kernel computes the two corrections once per call (in float64) and
    folds them into the step size and epsilon, which is the same update in
    exact arithmetic (within rounding of the arrays' dtype).

    Parameters
    ----------
    param : ndarray of float32 or float64, any shape
        Parameter updated in place; C-contiguous and writable.
    grad : ndarray of param's shape and dtype
        Gradient with respect to ``param`` (read only; copied first if not
        C-contiguous).
    m, v : ndarray of param's shape and dtype
        First and second moment estimates, updated in place; C-contiguous and
        writable. Start both from zeros and keep them across steps.
    t : int in [1, 2**63)
        Step number, counted from 1 (the first update uses ``t=1``).
    lr : float > 0, finite
        Step size (``alpha`` in the paper).
    beta1, beta2 : float in [0, 1)
        Decay rates of the moment estimates.
    eps : float > 0, finite
        Added to ``sqrt(v_hat)`` so that the division stays finite. An eps
        that rounds to 0 in param's dtype once scaled by ``sqrt(1 - beta2**t)``
        is refused (below about 1e-43 in float32 and 1e-322 in float64).
    l2 : float >= 0, finite, keyword-only
        L2 penalty coefficient, added to the gradient before the moments
        (classical L2, not AdamW's decoupled weight decay).
    eps_hat : bool, keyword-only
        ``eps`` is the paper's "epsilon hat" (section 2), added to
        ``sqrt(v)`` before the bias correction:
        ``param -= lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + eps)``,
        as scikit-learn's and Keras's Adam (PyTorch's is the default).

    Returns
    -------
    None
        ``param``, ``m`` and ``v`` are updated in place.

    Raises
    ------
    TypeError
        An array not a float32/float64 ndarray or of another dtype than
        ``param``; ``t`` not an integer; a scalar not a real number.
    ValueError
        Shapes differ; ``param``, ``m`` or ``v`` read-only or not
        C-contiguous; two arrays sharing memory; ``t < 1``; a scalar out of
        range.

    Examples
    --------
    >>> import numpy as np
    >>> from cydrop.optim import adam_update
    >>> w = np.array([1.0, -1.0])
    >>> m, v = np.zeros_like(w), np.zeros_like(w)
    >>> adam_update(w, np.array([2.0, -0.5]), m, v, t=1, lr=0.1)
    >>> np.round(w, 6)  # the first step moves each weight by about lr
    array([ 0.9, -0.9])
    """
    _check_updated(param, "param")
    grad = _check_grad(grad, param)
    _check_updated(m, "m", like=param)
    _check_updated(v, "v", like=param)
    t = check_positive_int(t, "t", maximum=2**63 - 1)  # the kernel's long long
    lr = check_real(lr, "lr", 0.0)
    beta1 = check_real(beta1, "beta1", 0.0, 1.0, low_open=False)
    beta2 = check_real(beta2, "beta2", 0.0, 1.0, low_open=False)
    eps = check_real(eps, "eps", 0.0)
    eps_hat = check_bool(eps_hat, "eps_hat")
    # The kernel folds the bias correction into epsilon, eps * sqrt(1 - beta2^t),
    # rounded to param's dtype: were that 0, an element with m = v = 0 (a zero
    # gradient so far) would become 0 / 0 = NaN.
    if param.dtype.type(eps if eps_hat else eps * math.sqrt(1.0 - beta2**t)) == 0:
        raise ValueError(f"eps={eps!r} is too small for {param.dtype} (with beta2={beta2}, t={t} "
                         f"it rounds to 0); use eps >= {float(np.finfo(param.dtype).tiny) * 1e4:.1e}")
    l2 = check_real(l2, "l2", 0.0, low_open=False)
    _check_disjoint([("param", param), ("grad", grad), ("m", m), ("v", v)])
    _optim.adam(flat(param), flat(grad), flat(m), flat(v),
                t, lr, beta1, beta2, eps, l2, eps_hat)


def max_norm_(W, max_norm):
    """Max-norm constraint in place: cap each unit's incoming weight norm.

    ``W`` has shape ``(n_in, n_out)`` (scikit-learn's ``coefs_``
    orientation), so unit ``j``'s incoming weights are the column
    ``W[:, j]``. Every column whose L2 norm exceeds ``max_norm`` is scaled to
    norm ``max_norm``; the other columns are left bit for bit as they were
    (Srivastava et al. 2014, section 5.1). Norms are accumulated in float64.

    Parameters
    ----------
    W : ndarray (n_in, n_out) of float32 or float64
        Weight matrix updated in place; C-contiguous and writable.
    max_norm : float > 0, finite
        The largest L2 norm a column may keep (``c`` in the paper).

    Returns
    -------
    None
        ``W`` is updated in place.

    Raises
    ------
    TypeError
        ``W`` not a float32/float64 ndarray; ``max_norm`` not a real number.
    ValueError
        ``W`` not 2-D, read-only or not C-contiguous; ``max_norm`` not in
        (0, inf).

    Examples
    --------
    >>> import numpy as np
    >>> from cydrop.optim import max_norm_
    >>> W = np.array([[3.0, 0.1],
    ...               [4.0, 0.2]])
    >>> max_norm_(W, 1.0)  # column 0 has norm 5, column 1 about 0.22
    >>> W
    array([[0.6, 0.1],
           [0.8, 0.2]])
    """
    check_float_dtype(W, "W")
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (n_in, n_out), got shape {W.shape}")
    _check_updated(W, "W")
    max_norm = check_real(max_norm, "max_norm", 0.0)
    _optim.max_norm(W, max_norm)
