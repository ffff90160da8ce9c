"""cydrop's array operations: validation and defaults in front of the kernels.

Each function checks every argument here, in Python, and only then calls one
compiled kernel (``src/_dropout.pyx``), which runs without the GIL.
"""
import numpy as np

from . import _dropout
from ._generator import as_generator
from ._mask import _WORD, Mask, as_mask
from ._threads import get_num_threads
from ._validation import check_float_array, check_keep_prob, check_out, flat, threshold_of

__all__ = ["dropout", "dropout_backward"]


def dropout(x, keep_prob, *, seed=None, mask=None, out=None):
    """Inverted dropout: ``y = x * D / keep_prob`` with ``D ~ Bernoulli(keep_prob)``.

    Draws the mask, scales and applies it in one pass over ``x``, writing the
    mask packed one bit per element.

    Parameters
    ----------
    x : ndarray of float32 or float64, any shape
        Activations. Non-contiguous input is copied first.
    keep_prob : float in (0, 1]
        Probability of keeping each element. ``1`` draws nothing and returns
        an exact copy of ``x`` with an all-kept mask.
    seed : int, cydrop.Generator or None, keyword-only
        Source of the mask. An int (or None: OS entropy) builds a fresh
        :class:`Generator`; a Generator is advanced, so successive calls give
        fresh masks.
    mask : cydrop.Mask or ndarray of bool, keyword-only
        Apply this mask (shape ``x.shape``, True = kept) instead of drawing
        one. A Mask must have been made with the same ``keep_prob``.
        Exclusive with ``seed``.
    out : ndarray, keyword-only
        Result buffer: C-contiguous, writable, of ``x``'s shape and dtype. It
        may be ``x`` itself (in place).

    Returns
    -------
    y : ndarray of x's shape and dtype
        ``x * (D * s)`` with ``s = 1 / keep_prob`` rounded to x's dtype
        (within about one ulp of ``x * D / keep_prob``).
    mask : cydrop.Mask
        The mask ``D`` used.

    Raises
    ------
    TypeError
        ``x`` not a float32/float64 ndarray, ``keep_prob`` not a number, bad
        ``seed``/``mask``/``out`` types.
    ValueError
        ``keep_prob`` outside (0, 1]; ``mask`` or ``out`` of the wrong shape;
        ``mask`` made with another keep_prob; ``out`` read-only,
        non-contiguous or partially overlapping ``x``; both ``seed`` and ``mask``.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> x = np.ones((2, 4), dtype=np.float32)
    >>> y, mask = cydrop.dropout(x, 0.5, seed=0)
    >>> sorted(set(y.ravel().tolist())) in ([0.0, 2.0], [2.0], [0.0])
    True
    >>> dx = cydrop.dropout_backward(np.ones_like(x), mask)
    >>> bool((dx == y).all())
    True
    """
    x = check_float_array(x, "x")
    keep_prob = check_keep_prob(keep_prob)
    if mask is not None and seed is not None:
        raise ValueError("give either seed or mask, not both")
    if mask is not None:
        mask = as_mask(mask, x.shape, keep_prob)
    out = check_out(out, x, inputs=(x,))
    if mask is not None:
        return _apply(x, mask, out), mask
    gen = as_generator(seed) if seed is not None else None  # validated even if unused
    if keep_prob == 1.0:
        if out is not x:
            np.copyto(out, x)
        return out, Mask.all_kept(x.shape)
    key, first_block = (gen or as_generator(None))._reserve(x.size)
    words = np.empty(-(-x.size // 64), dtype=_WORD)
    if x.size:
        _dropout.forward(flat(x), flat(out), words, key, first_block,
                         threshold_of(keep_prob), 1.0 / keep_prob, get_num_threads())
    return out, Mask(words, x.shape, keep_prob)


def dropout_backward(dy, mask, *, out=None):
    """Gradient of inverted dropout: ``dx = dy * D / keep_prob``.

    Parameters
    ----------
    dy : ndarray of float32 or float64
        Gradient with respect to the dropout output, of shape ``mask.shape``.
    mask : cydrop.Mask
        The mask returned by the forward :func:`dropout`; its ``keep_prob``
        gives the scale.
    out : ndarray, keyword-only
        Result buffer as in :func:`dropout`; may be ``dy`` itself.

    Returns
    -------
    dx : ndarray of dy's shape and dtype

    Raises
    ------
    TypeError, ValueError
        As in :func:`dropout`, naming ``dy``, ``mask`` or ``out``.
    """
    dy = check_float_array(dy, "dy")
    if isinstance(mask, np.ndarray):
        raise TypeError("mask must be the cydrop.Mask from dropout (it carries keep_prob); "
                        "wrap a bool array with cydrop.Mask.from_bool(arr, keep_prob)")
    mask = as_mask(mask, dy.shape, None, data_name="dy")
    out = check_out(out, dy, inputs=(dy,))
    return _apply(dy, mask, out)


def _apply(x, mask, out):
    """out := x * D / keep_prob for a validated Mask."""
    if mask.words is None:
        # all kept: the scale is 1 / keep_prob, exactly 1 for keep_prob == 1
        np.multiply(x, x.dtype.type(1.0 / mask.keep_prob), out=out)
    elif x.size:
        _dropout.apply(flat(x), mask.words, 1.0 / mask.keep_prob, flat(out),
                       get_num_threads())
    return out
