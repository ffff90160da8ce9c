"""Concrete dropout: dropout whose rate is learned by gradient descent.

Gal, Hron & Kendall, "Concrete Dropout", NeurIPS 2017 (arXiv:1705.07832).
Each element's Bernoulli drop indicator is replaced by its continuous
relaxation at temperature ``t``,

    z = sigmoid((p_logit + log u - log(1 - u)) / t),  u ~ U(0, 1),
    y = x * (1 - z) / (1 - p),  p = sigmoid(p_logit),

which is differentiable in ``p_logit``; a regulariser on the layer
(:func:`concrete_regularizer`) keeps the learned rate from collapsing.

Naming. The learned parameter is ``p_logit = log(p / (1 - p))``, the logit of
the *drop* probability ``p`` as in the paper, its reference code and
``cydrop.torch``'s ``p_logit`` Parameters: one number means the same thing
in every front end and in the reference's results. Elsewhere cydrop speaks of
``keep_prob = 1 - p``: :func:`concrete_keep_prob` and :func:`concrete_p_logit`
convert, and ``ConcreteState.keep_prob`` reports it.

Noise. ``u`` comes from :class:`cydrop.Generator`'s counter-based stream at
the element's position, as a Bernoulli mask bit does (a draw of n noise
values takes the same ``ceil(n / 64)`` blocks), and the relaxed indicator
is computed in the arrays' own precision with cydrop's own log and exp (not
libm's): a seed gives the same output on any thread count and machine
(``src/concrete.h`` states the contract and the accuracy). Nothing is kept
between the forward and the backward pass but the generator position: the
backward pass draws ``u`` again.
"""
import math
import numbers
from dataclasses import dataclass

import numpy as np

from . import _concrete
from ._generator import as_generator, reserve
from ._mask import check_noise_shape, check_shape
from ._threads import get_num_threads
from ._validation import FLOAT_DTYPES, check_float_array, check_out

__all__ = ["ConcreteState", "concrete_dropout", "concrete_dropout_backward", "concrete_keep_prob",
           "concrete_p_logit", "concrete_regularizer", "concrete_regularizer_weights"]

DEFAULT_TEMPERATURE = 0.1        # the reference's, for dense layers
CHANNEL_TEMPERATURE = 2.0 / 3.0  # the reference's spatial (whole-channel) layer


@dataclass(frozen=True)
class ConcreteState:
    """What :func:`concrete_dropout_backward` needs from a forward pass: the
    generator position and the pass's settings, and no mask.

    Attributes
    ----------
    key, block : int
        The generator stream and first block the noise was drawn from.
    shape : tuple of int
        Shape of the forward input.
    noise_shape : tuple of int
        Shape of the noise: ``shape``, or ``shape`` with trailing axes 1
        (one noise value per whole channel).
    dtype : numpy.dtype
        float32 or float64: the precision the noise was computed in.
    p_logit, temperature : float

    Parameters
    ----------
    key, block, shape, noise_shape, dtype, p_logit, temperature
        As the attributes; :func:`concrete_dropout` makes the state, a user
        does not.

    Raises
    ------
    TypeError
        Never: the state is a plain record (``dataclasses.dataclass``), checked
        where it is used (:func:`concrete_dropout_backward`).

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> y, state = cydrop.concrete_dropout(np.ones((2, 3)), cydrop.concrete_p_logit(0.9), seed=0)
    >>> state.shape, state.nbytes   # no mask is kept: the backward pass draws the noise again
    ((2, 3), 0)
    """

    key: int
    block: int
    shape: tuple
    noise_shape: tuple
    dtype: np.dtype
    p_logit: float
    temperature: float

    @property
    def keep_prob(self):
        """``1 - p = sigmoid(-p_logit)``, the expected keep probability."""
        return concrete_keep_prob(self.p_logit)

    @property
    def nbytes(self):
        """Bytes of mask kept for the backward pass: always 0."""
        return 0


def concrete_dropout(x, p_logit, *, temperature=DEFAULT_TEMPERATURE, seed=None, out=None, noise_shape=None):
    """Concrete dropout: ``y = x * (1 - z) / (1 - p)``, z the relaxed drop indicator.

    Draws ``u`` for each noise value, forms ``z = sigmoid((p_logit + log u -
    log(1 - u)) / temperature)`` and scales, in one pass over ``x``.

    Parameters
    ----------
    x : ndarray of float32 or float64, any shape
        Activations. Non-contiguous input is copied first.
    p_logit : float
        ``log(p / (1 - p))``, p the drop probability (``keep_prob = 1 - p``):
        the parameter being learned. Finite, with ``1 / (1 - p)`` finite in
        x's dtype (p_logit below about 88 for float32, 709 for float64).
    temperature : float > 0, keyword-only, default 0.1
        Of the relaxation: as it tends to 0, z tends to the Bernoulli
        indicator ``u > 1 - p``. The reference uses 0.1 for dense layers and
        2/3 for whole channels.
    seed : int, cydrop.Generator or None, keyword-only
        Source of ``u``, as for :func:`cydrop.dropout`: an int (or None: OS
        entropy) builds a fresh Generator, a Generator is advanced.
    out : ndarray, keyword-only
        Result buffer: C-contiguous, writable, of x's shape and dtype; may be
        ``x`` itself.
    noise_shape : sequence of int or None, keyword-only
        One noise value per element (None, or ``x.shape``), or per leading
        index: ``x.shape[:k]`` followed by 1s, e.g. ``(N, C, 1, 1)`` for
        whole channels of an ``(N, C, H, W)`` batch.

    Returns
    -------
    y : ndarray of x's shape and dtype
        ``x * (w * s)`` with ``w = 1 - z`` and ``s = 1 / (1 - p)``, each
        rounded to x's dtype.
    state : ConcreteState
        The position of the noise, for :func:`concrete_dropout_backward`.

    Raises
    ------
    TypeError
        x not a float32/float64 ndarray; p_logit or temperature not a real
        number; bad seed or out.
    ValueError
        p_logit not finite or too large for x's dtype; temperature not > 0
        and finite (or too small: 1 / temperature overflows x's dtype); out
        of the wrong shape, read-only or overlapping x; noise_shape not of
        the form above.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> x = np.ones((2, 4))
    >>> p_logit = cydrop.concrete_p_logit(0.9)   # keep_prob 0.9: drop probability 0.1
    >>> y, state = cydrop.concrete_dropout(x, p_logit, seed=0)
    >>> y.shape, state.nbytes
    ((2, 4), 0)
    >>> bool(((y >= 0) & (y <= 1 / 0.9 + 1e-12)).all())   # x (1 - z) / (1 - p), z in (0, 1)
    True
    >>> dx, dp_logit = cydrop.concrete_dropout_backward(np.ones_like(x), x, state)
    >>> bool((dx == y).all())   # x and dy are ones: both are (1 - z) / (1 - p)
    True
    """
    x = check_float_array(x, "x")
    p_logit = check_p_logit(p_logit)
    temperature = check_temperature(temperature)
    noise_shape, run = _noise_layout(noise_shape, x.shape)
    out = check_out(out, x, inputs=(x,))
    gen = as_generator(seed)
    n_noise = math.prod(noise_shape)
    # the kernel's dtype-dependent limits, checked before anything is drawn
    _concrete.scalars(p_logit, temperature, x.dtype.name)
    key, block = reserve(gen, n_noise)
    if x.size:
        _concrete.forward(x, out, key, block, p_logit, temperature, run, get_num_threads())
    return out, ConcreteState(key, block, x.shape, noise_shape, x.dtype, p_logit, temperature)


def concrete_dropout_backward(dy, x, state, *, out=None):
    """Gradients of :func:`concrete_dropout` with respect to x and p_logit.

    The noise is drawn again from the position in ``state``. With
    ``y = x * (1 - z) / (1 - p)``, ``dz/dp_logit = z (1 - z) / t`` and
    ``dp/dp_logit = p (1 - p)``:

        dx = dy * (1 - z) / (1 - p),
        dL/dp_logit = sum dy * y * (p - z / t).

    Parameters
    ----------
    dy : ndarray of float32 or float64
        Gradient with respect to the output, of the forward input's shape
        and dtype.
    x : ndarray
        The forward input (same shape and dtype): the p_logit gradient
        needs it.
    state : ConcreteState
        From the forward call.
    out : ndarray, keyword-only
        Buffer for dx as in :func:`concrete_dropout`; may be ``dy`` itself.

    Returns
    -------
    dx : ndarray of dy's shape and dtype
    dp_logit : float
        The sum over all elements, accumulated in float64 in an order fixed
        by the element positions: the same for any thread count.

    Raises
    ------
    TypeError, ValueError
        As in :func:`concrete_dropout`, naming ``dy``, ``x``, ``state`` or
        ``out``; also when the arrays do not match the forward call's shape
        and dtype.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> x = np.linspace(-1, 1, 6).reshape(2, 3)
    >>> y, state = cydrop.concrete_dropout(x, 0.0, temperature=0.5, seed=1)
    >>> dx, dp_logit = cydrop.concrete_dropout_backward(np.ones_like(x), x, state)
    >>> dx.shape, type(dp_logit).__name__
    ((2, 3), 'float')
    """
    if not isinstance(state, ConcreteState):
        raise TypeError(f"state must be the ConcreteState from concrete_dropout, got {type(state).__name__}")
    dy = check_float_array(dy, "dy")
    x = check_float_array(x, "x")
    for name, arr in (("dy", dy), ("x", x)):
        if arr.shape != state.shape:
            raise ValueError(f"{name} has shape {arr.shape}, the forward input had {state.shape}")
        if arr.dtype != state.dtype:
            raise TypeError(f"{name} has dtype {arr.dtype}, the forward input had {state.dtype}")
    out = check_out(out, dy, inputs=(dy, x))
    if out is x:
        raise ValueError("out may be dy (in place), not x")
    if not dy.size:
        return out, 0.0
    _, run = _noise_layout(state.noise_shape, state.shape)
    dx, _, grad = _concrete.backward(dy, x, out, None, state.key, state.block, state.p_logit, state.temperature,
                                     run, True, False, get_num_threads())
    return dx, grad


def concrete_regularizer(p_logit, W, *, weight_regularizer, dropout_regularizer, n_inputs=None):
    """The regulariser of a concrete dropout layer, and its gradients.

    For a layer whose input is dropped with probability ``p`` and whose
    weights are ``W``:

        R = weight_regularizer * ||W||^2 / (1 - p)
            + dropout_regularizer * K * (p log p + (1 - p) log(1 - p)),

    K the number of dropped inputs per example (the input width). The first
    term is the prior on the weights, scaled by ``1 / (1 - p)`` for the
    inverted dropout's scaling; the second is the negative entropy of the
    dropout, which keeps p away from 0. Biases are not dropped, so they are
    not in the p-dependent term (add a plain weight decay for them if you
    want one); the Keras reference regularises the kernel only, as here.

    Parameters
    ----------
    p_logit : float
        ``log(p / (1 - p))``.
    W : ndarray of float32 or float64
        The weights the dropped inputs multiply, ``(n_in, n_out)`` as cydrop
        stores them (or any shape with ``n_inputs`` given).
    weight_regularizer, dropout_regularizer : float >= 0, keyword-only
        See :func:`concrete_regularizer_weights`.
    n_inputs : int >= 1 or None, keyword-only
        K. Default ``W.shape[0]``.

    Returns
    -------
    value : float
        R.
    dp_logit : float
        ``dR/dp_logit = weight_regularizer ||W||^2 exp(p_logit)
        + dropout_regularizer K p (1 - p) p_logit``.
    dW : ndarray of W's shape and dtype
        ``dR/dW = 2 weight_regularizer W / (1 - p)``.

    Raises
    ------
    TypeError, ValueError
        A bad argument, named.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> wr, dr = cydrop.concrete_regularizer_weights(1e-2, n_samples=1000)
    >>> W = np.full((4, 3), 0.5)
    >>> value, dp_logit, dW = cydrop.concrete_regularizer(
    ...     0.0, W, weight_regularizer=wr, dropout_regularizer=dr)
    >>> round(value, 8)    # wr * 3 / (1 - 1/2) + dr * 4 * log(1/2), ||W||^2 = 3
    -0.00554458
    >>> f"{dp_logit:.3g}"   # wr * 3 * exp(0): at p = 1/2 the entropy term is flat
    '3e-07'
    """
    p_logit = check_p_logit(p_logit)
    if not isinstance(W, np.ndarray) or W.dtype not in FLOAT_DTYPES:
        raise TypeError(f"W must be a float32 or float64 numpy.ndarray, got "
                        f"{getattr(W, 'dtype', type(W).__name__)}")
    weight_regularizer = _check_nonnegative(weight_regularizer, "weight_regularizer")
    dropout_regularizer = _check_nonnegative(dropout_regularizer, "dropout_regularizer")
    if n_inputs is None:
        if W.ndim < 1 or W.shape[0] < 1:
            raise ValueError(f"W of shape {W.shape} has no input axis: give n_inputs")
        n_inputs = W.shape[0]
    elif isinstance(n_inputs, (bool, np.bool_)) or not isinstance(n_inputs, numbers.Integral) or n_inputs < 1:
        raise ValueError(f"n_inputs must be an int >= 1, got {n_inputs!r}")
    w64 = W.astype(np.float64, copy=False).ravel()
    value, dp_logit, decay = prior_terms(float(np.dot(w64, w64)), int(n_inputs), p_logit, weight_regularizer,
                                         dropout_regularizer)
    return value, dp_logit, W * W.dtype.type(decay)


def prior_terms(square_sum, n_inputs, p_logit, weight_regularizer, dropout_regularizer):
    """``(R, dR/dp_logit, decay)`` of one layer's regulariser (see
    :func:`concrete_regularizer`) from ``square_sum = ||W||^2``: ``dR/dW``
    is ``decay * W``. The one body of these formulas in Python (cydrop.MLP's
    reference engine and cost J use it; src/_fused_net.pyx mirrors it)."""
    a = p_logit
    # log p = -softplus(-a), log(1 - p) = -softplus(a): no cancellation at either end
    log_p, log_keep = -np.logaddexp(0.0, -a), -np.logaddexp(0.0, a)
    p, keep = math.exp(log_p), math.exp(log_keep)
    with np.errstate(over="ignore"):
        inv_keep = float(1.0 + np.exp(a))        # 1 / (1 - p); inf past p_logit ~ 709
    value = weight_regularizer * square_sum * inv_keep + dropout_regularizer * n_inputs * (p * log_p + keep * log_keep)
    dp_logit = weight_regularizer * square_sum * (inv_keep - 1.0) + dropout_regularizer * n_inputs * p * keep * a
    return float(value), float(dp_logit), 2.0 * weight_regularizer * inv_keep


def concrete_regularizer_weights(length_scale, n_samples, *, precision=1.0, loss="squared"):
    """``(weight_regularizer, dropout_regularizer)`` of the paper's prior.

    ``weight_regularizer = l^2 / (tau N)`` and ``dropout_regularizer =
    2 / (tau N)``, with l the prior length-scale, tau the model precision
    (inverse observation noise) and N the number of training examples. The
    factor 2 is for a squared-error (Gaussian) loss; for cross-entropy the
    reference drops it (``loss="cross_entropy"``: ``1 / (tau N)``).

    Parameters
    ----------
    length_scale : float > 0
    n_samples : int >= 1
    precision : float > 0, keyword-only, default 1.0
    loss : {"squared", "cross_entropy"}, keyword-only

    Returns
    -------
    weight_regularizer, dropout_regularizer : float

    Raises
    ------
    ValueError, TypeError
        ``length_scale`` or ``precision`` not a finite number > 0,
        ``n_samples`` not an int >= 1, an unknown ``loss``.

    Examples
    --------
    >>> import cydrop
    >>> wr, dr = cydrop.concrete_regularizer_weights(1e-4, 1000)   # the reference notebooks' setting
    >>> f"{wr:.3g} {dr:.3g}"
    '1e-11 0.002'
    """
    length_scale = _check_positive(length_scale, "length_scale")
    precision = _check_positive(precision, "precision")
    if isinstance(n_samples, (bool, np.bool_)) or not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise ValueError(f"n_samples must be an int >= 1, got {n_samples!r}")
    if loss not in ("squared", "cross_entropy"):
        raise ValueError(f"loss must be 'squared' or 'cross_entropy', got {loss!r}")
    scale = precision * int(n_samples)
    return length_scale ** 2 / scale, (2.0 if loss == "squared" else 1.0) / scale


def concrete_p_logit(keep_prob):
    """``log((1 - keep_prob) / keep_prob)``: the p_logit of a keep probability in (0, 1).

    Parameters
    ----------
    keep_prob : float in (0, 1)

    Returns
    -------
    float
        The logit of the drop probability ``1 - keep_prob``.

    Raises
    ------
    TypeError
        ``keep_prob`` not a real number.
    ValueError
        ``keep_prob`` not in (0, 1) (the logit is infinite at 0 and 1).

    Examples
    --------
    >>> import cydrop
    >>> round(cydrop.concrete_p_logit(0.9), 6)   # the reference's initial drop probability 0.1
    -2.197225
    """
    keep_prob = _check_real(keep_prob, "keep_prob")
    if not 0.0 < keep_prob < 1.0:
        raise ValueError(f"keep_prob must be in (0, 1) (p_logit is infinite at 0 and 1), got {keep_prob!r}")
    return math.log1p(-keep_prob) - math.log(keep_prob)


def concrete_keep_prob(p_logit):
    """``1 - sigmoid(p_logit) = sigmoid(-p_logit)``: the keep probability of a p_logit.

    Parameters
    ----------
    p_logit : float
        The logit of a drop probability.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    TypeError
        ``p_logit`` not a real number.

    Examples
    --------
    >>> import cydrop
    >>> round(cydrop.concrete_keep_prob(cydrop.concrete_p_logit(0.75)), 12)
    0.75
    """
    p_logit = _check_real(p_logit, "p_logit")
    if p_logit >= 0:
        e = math.exp(-p_logit)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(p_logit))


# ---------------------------------------------------------------- checks


def _check_real(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def check_p_logit(p_logit, name="p_logit"):
    """p_logit as a finite float (its upper limit depends on the dtype: the kernel checks it)."""
    value = _check_real(p_logit, name)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def check_temperature(temperature, name="temperature"):
    """temperature as a finite float > 0."""
    return _check_positive(temperature, name)


def _check_positive(value, name):
    value = _check_real(value, name)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def _check_nonnegative(value, name):
    value = _check_real(value, name)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _noise_layout(noise_shape, shape):
    """(noise_shape, run): the noise's shape as a tuple, and the number of
    consecutive elements that share one noise value."""
    if noise_shape is None:
        return tuple(shape), 1
    noise_shape = check_noise_shape(noise_shape, shape)
    k = len(noise_shape)
    while k and noise_shape[k - 1] == 1:
        k -= 1
    if noise_shape[:k] != tuple(shape[:k]):
        raise ValueError(f"noise_shape must be x's shape {tuple(shape)} on its leading axes and 1 on the others "
                         f"(one noise value per element or per leading index), got {noise_shape}")
    check_shape(noise_shape)
    return noise_shape, max(1, math.prod(shape[k:]))
