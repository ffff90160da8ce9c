"""cydrop's array operations: validation and defaults in front of the kernels.

Each function checks every argument here, in Python, and only then calls one
compiled kernel (``src/_dropout.pyx``), which runs without the GIL.
"""
import math

import numpy as np

from . import _dropout
from ._generator import as_generator, reserve
from ._mask import WORD, Mask, adopt_words, as_mask, check_noise_shape, n_words
from ._threads import get_num_threads
from ._validation import check_float_array, check_keep_prob, check_out, flat, threshold_of

__all__ = ["dropout", "dropout_backward"]


def dropout(x, keep_prob, *, seed=None, mask=None, out=None, noise_shape=None):
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
        Exclusive with ``seed``. Its shape is ``noise_shape`` when that is
        given.
    out : ndarray, keyword-only
        Result buffer: C-contiguous, writable, of ``x``'s shape and dtype. It
        may be ``x`` itself (in place).
    noise_shape : sequence of int or None, keyword-only
        Shape of the mask (Keras's name; Flax's ``broadcast_dims`` names the
        other axes): one entry per axis of ``x``, equal to ``x.shape[i]``
        (or None for that) or ``1``, the mask then being shared along that
        axis. ``(N, C, 1, 1)`` on an ``(N, C, H, W)`` input drops whole
        channels (``torch.nn.Dropout2d``). Default: ``x.shape``, one bit per
        element. Only ``prod(noise_shape)`` bits are drawn and stored.

    Returns
    -------
    y : ndarray of x's shape and dtype
        ``x * (D * s)`` with ``s = 1 / keep_prob`` rounded to x's dtype
        (within about one ulp of ``x * D / keep_prob``).
    mask : cydrop.Mask
        The mask ``D`` used, of shape ``noise_shape`` (``y`` uses
        ``D`` broadcast to ``x.shape``).

    Raises
    ------
    TypeError
        ``x`` not a float32/float64 ndarray, ``keep_prob`` not a number, bad
        ``seed``/``mask``/``out`` types.
    ValueError
        ``keep_prob`` outside (0, 1]; ``mask`` or ``out`` of the wrong shape;
        ``mask`` made with another keep_prob; ``out`` read-only,
        non-contiguous or partially overlapping ``x``; both ``seed`` and
        ``mask``; ``noise_shape`` not matching ``x.shape`` as described.

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

    One bit per channel of an ``(N, C, H, W)`` batch:

    >>> x = np.ones((2, 3, 4, 4), dtype=np.float32)
    >>> y, mask = cydrop.dropout(x, 0.5, seed=0, noise_shape=(2, 3, 1, 1))
    >>> mask.shape
    (2, 3, 1, 1)
    >>> bool((y == x * mask.to_bool() / 0.5).all())
    True
    """
    x = check_float_array(x, "x")
    keep_prob = check_keep_prob(keep_prob)
    mask_shape = x.shape if noise_shape is None else check_noise_shape(noise_shape, x.shape)
    if mask is not None and seed is not None:
        raise ValueError("give either seed or mask, not both")
    if mask is not None:
        mask = as_mask(mask, mask_shape, keep_prob)
    out = check_out(out, x, inputs=(x,))
    if mask is not None:
        return _apply(x, mask, out), mask
    gen = as_generator(seed) if seed is not None else None  # validated even if unused
    if keep_prob == 1.0:
        if out is not x:
            np.copyto(out, x)
        return out, Mask.all_kept(mask_shape)
    n_mask = math.prod(mask_shape)
    key, first_block = reserve(gen or as_generator(None), n_mask)
    words = np.empty(n_words(n_mask), dtype=WORD)
    if mask_shape == x.shape:
        # draw and apply in one pass, chunk by chunk
        _dropout.forward(flat(x), flat(out), words, key, first_block,
                         threshold_of(keep_prob), 1.0 / keep_prob, get_num_threads())
        return out, adopt_words(words, x.shape, keep_prob)
    # a broadcast mask is small next to x: draw it, then apply it
    _dropout.draw_words(key, first_block, threshold_of(keep_prob), words, n_mask)
    mask = adopt_words(words, mask_shape, keep_prob)
    return _apply(x, mask, out), mask


def dropout_backward(dy, mask, *, out=None):
    """Gradient of inverted dropout: ``dx = dy * D / keep_prob``.

    Parameters
    ----------
    dy : ndarray of float32 or float64
        Gradient with respect to the dropout output, of the forward input's
        shape.
    mask : cydrop.Mask
        The mask returned by the forward :func:`dropout`; its ``keep_prob``
        gives the scale. Its shape is ``dy.shape`` or, for a forward call
        with ``noise_shape``, that noise shape (broadcast as there).
    out : ndarray, keyword-only
        Result buffer as in :func:`dropout`; may be ``dy`` itself.

    Returns
    -------
    dx : ndarray of dy's shape and dtype

    Raises
    ------
    TypeError, ValueError
        As in :func:`dropout`, naming ``dy``, ``mask`` or ``out``; a bool
        array as ``mask`` is a TypeError (it carries no keep_prob: wrap it
        with :meth:`Mask.from_bool`).

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> x = np.arange(1.0, 7.0).reshape(2, 3)
    >>> y, mask = cydrop.dropout(x, 0.5, seed=1)
    >>> dx = cydrop.dropout_backward(np.ones_like(x), mask)
    >>> bool((dx == mask.to_bool() / 0.5).all())   # the gradient flows through the kept units only
    True
    """
    dy = check_float_array(dy, "dy")
    if isinstance(mask, np.ndarray):
        raise TypeError("mask must be the cydrop.Mask from dropout (it carries keep_prob); "
                        "wrap a bool array with cydrop.Mask.from_bool(arr, keep_prob)")
    if isinstance(mask, Mask) and mask.shape != dy.shape:
        check_noise_shape(mask.shape, dy.shape, name="mask.shape")
        mask_shape = mask.shape
    else:
        mask_shape = dy.shape
    mask = as_mask(mask, mask_shape, None, data_name="dy")
    out = check_out(out, dy, inputs=(dy,))
    return _apply(dy, mask, out)


def _apply(x, mask, out):
    """out := x * D / keep_prob for a validated Mask (of x's shape, or
    broadcast to it)."""
    if mask.words is None:
        # all kept: the scale is 1 / keep_prob, exactly 1 for keep_prob == 1
        np.multiply(x, x.dtype.type(1.0 / mask.keep_prob), out=out)
    elif mask.shape == x.shape:
        _dropout.apply(flat(x), mask.words, 1.0 / mask.keep_prob, flat(out),
                       get_num_threads())
    else:
        _dropout.apply_broadcast(flat(x), mask.words, x.shape, mask.shape,
                                 1.0 / mask.keep_prob, flat(out), get_num_threads())
    return out
