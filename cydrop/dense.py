"""The fused dense layer: dropout on the input, GEMM, bias and activation.

``dense_forward`` and ``dense_backward`` validate here, then make one call
each into ``src/_dense.pyx``. ``dense_forward_unchecked`` and
``dense_backward_unchecked`` are the same work without the argument checks,
for callers that made them already: the MLP's reference engine
(``cydrop.mlp.engines.reference``) runs its layers through them.
"""
import functools
import threading

import numpy as np

from . import _dense
from ._generator import as_generator, draw_mask, reserve
from ._mask import WORD, Mask, adopt_words, as_mask, n_words, packed_words
from ._threads import gemm_route, get_num_threads, numpy_gemm, single_threaded_blas
from ._validation import check_bool, check_float_dtype, check_keep_prob, threshold_of

__all__ = ["ACTIVATIONS", "DenseCache", "dense_backward", "dense_forward"]

# names of the activations and their codes, read from src/_dense.pyx's enum
ACTIVATIONS = {member.name.lower(): int(member) for member in _dense.Activation}
_ACTIVATION_NAMES = {code: name for name, code in ACTIVATIONS.items()}
# the forward kernel's mask modes, read from src/_dense.pyx's enum (plain ints: compared on every call)
_NO_MASK, _DRAW, _APPLY = (int(mode) for mode in _dense.MaskMode)
_BLAS_MAX = 2**31 - 1  # BLAS takes 32-bit int dimensions


class DenseCache:
    """What :func:`dense_backward` needs from a :func:`dense_forward` call.

    It holds references to the layer's ``W`` and to the returned ``out``
    (modify neither in place before the backward pass), the dropped-out input
    ``x_tilde = x * D / keep_prob`` (its own buffer; ``x`` itself when
    ``keep_prob == 1``) and the packed mask. With ``regenerate=True`` it holds
    ``x`` and the generator position instead of ``x_tilde`` and the mask, and
    the backward pass draws the same bits again.

    Attributes
    ----------
    mask : cydrop.Mask
        The input mask (drawn again on access when regenerating).
    keep_prob : float
    activation : str
    nbytes : int
        Bytes held by the cache beyond the caller's own arrays
        (``x_tilde`` and the packed mask).

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> x = np.ones((64, 32), dtype=np.float32)
    >>> W = np.zeros((32, 8), dtype=np.float32)
    >>> out, cache = cydrop.dense_forward(x, W, None, 0.5, seed=0)
    >>> cache.nbytes == x.nbytes + 64 * 32 // 8   # x_tilde and one bit per input element
    True
    >>> _, cache = cydrop.dense_forward(x, W, None, 0.5, seed=0, regenerate=True)
    >>> cache.nbytes   # only the generator position: the backward pass draws the mask again
    0
    """

    __slots__ = ("_x", "_x_tilde", "_out", "_W", "_has_bias", "activation", "keep_prob",
                 "_mask", "_origin", "_layout")

    def __init__(self, x, x_tilde, out, W, has_bias, activation, keep_prob, mask, origin):
        self._x, self._x_tilde, self._out, self._W = x, x_tilde, out, W
        self._has_bias, self.activation, self.keep_prob = has_bias, activation, keep_prob
        self._mask, self._origin = mask, origin
        self._layout = (x.dtype, x.shape, W.shape, out.shape)

    def _check_unchanged(self):
        """Refuse a cache whose arrays were reshaped or resized in place since
        the forward pass (``W.shape = ...`` or ``W.resize(..., refcheck=False)``
        are legal NumPy): the backward kernel takes its sizes from them and
        would read and write past their ends."""
        dtype, *shapes = self._layout
        for name, arr, shape in zip(("x", "W", "out"), (self._x, self._W, self._out), shapes):
            if (arr.shape != shape or arr.dtype != dtype or not arr.flags.c_contiguous
                    or not arr.flags.aligned):
                raise ValueError(f"cache: the layer's {name} was changed in place after dense_forward "
                                 f"(shape {shape} {dtype} -> {arr.shape} {arr.dtype}); "
                                 f"do not reshape or resize it before dense_backward")

    @property
    def regenerate(self):
        return self._origin is not None

    @property
    def mask(self):
        if self._origin is None:
            return self._mask
        return draw_mask(*self._origin, self._x.shape, self.keep_prob)

    @property
    def nbytes(self):
        own = self._x_tilde.nbytes if self._x_tilde is not None and self._x_tilde is not self._x else 0
        return own + (self._mask.nbytes if self._mask is not None else 0)

    def __repr__(self):
        return (f"cydrop.DenseCache(x={self._x.shape}, W={self._W.shape}, activation={self.activation!r}, "
                f"keep_prob={self.keep_prob}, regenerate={self.regenerate}, nbytes={self.nbytes})")


_scratch = threading.local()
_SCRATCH_ENTRIES = 8


def _scratch_buffer(slot, shape, dtype):
    """A per-thread work buffer that lives across calls, for arrays that never
    leave a call (dz, a regenerated x_tilde). Fresh multi-megabyte arrays cost
    a page fault every 4 KiB on first touch, which measured as much time as
    the element-wise passes themselves."""
    buffers = _scratch.__dict__.setdefault("buffers", {})
    key = (slot, tuple(shape), np.dtype(dtype).str)
    buf = buffers.get(key)
    if buf is None:
        if len(buffers) >= _SCRATCH_ENTRIES:
            buffers.clear()
        buf = buffers[key] = np.empty(shape, dtype=dtype)
    return buf


def _check_matrix(arr, name, ndim, dtype=None):
    check_float_dtype(arr, name)
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(f"{name} has dtype {arr.dtype} but x has dtype {dtype}: use one dtype for a layer")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (BLAS reads it in place): pass np.ascontiguousarray({name})")
    if not arr.flags.aligned:
        raise ValueError(f"{name} must be aligned (its address a multiple of its item size): pass {name}.copy()")
    if any(d > _BLAS_MAX for d in arr.shape):
        raise ValueError(f"{name} dimensions must be < 2**31, got shape {arr.shape}")
    return arr


def dense_forward(x, W, b, keep_prob, *, activation="relu", seed=None, mask=None, regenerate=False):
    """Dense layer with inverted dropout on its input, fused in one call.

    Computes ``out = act((x * D / keep_prob) @ W + b)``: draws the mask,
    scales and applies it in one pass, multiplies with BLAS, then adds the
    bias and applies the activation in one pass over the result.

    Parameters
    ----------
    x : ndarray (batch, n_in), float32 or float64, C-contiguous
        Layer input, examples in rows.
    W : ndarray (n_in, n_out), x's dtype, C-contiguous
        Weights (scikit-learn's ``coefs_`` orientation).
    b : ndarray (n_out,) of x's dtype, or None
        Bias.
    keep_prob : float in (0, 1]
        Keep probability of the input units. ``1`` means no dropout: no
        generator call and no mask work.
    activation : {"relu", "tanh", "sigmoid", "linear"}, keyword-only
    seed : int, cydrop.Generator or None, keyword-only
        As in :func:`cydrop.dropout`.
    mask : cydrop.Mask or ndarray of bool (batch, n_in), keyword-only
        Apply this input mask instead of drawing one. Exclusive with ``seed``.
    regenerate : bool, keyword-only
        Keep only the generator position instead of the masked input and
        mask; :func:`dense_backward` draws the mask again (saves
        ``batch * n_in`` floats of memory per layer, costs one draw).

    Returns
    -------
    out : ndarray (batch, n_out)
    cache : DenseCache
        For :func:`dense_backward`; ``cache.mask`` is the mask used.

    Raises
    ------
    TypeError
        Non-float arrays, dtype mixes, non-numeric keep_prob, bad seed/mask types.
    ValueError
        Shape mismatches, non-contiguous arrays, unknown activation,
        keep_prob outside (0, 1], seed with mask, regenerate with mask.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> x = np.ones((4, 3), dtype=np.float32)
    >>> W = np.ones((3, 2), dtype=np.float32)
    >>> out, cache = cydrop.dense_forward(x, W, None, 1.0, activation="linear")
    >>> out.tolist()
    [[3.0, 3.0], [3.0, 3.0], [3.0, 3.0], [3.0, 3.0]]
    >>> dx, dW, db = cydrop.dense_backward(np.ones_like(out), cache)
    >>> dW.tolist()
    [[4.0, 4.0], [4.0, 4.0], [4.0, 4.0]]
    """
    x = _check_matrix(x, "x", 2)
    W = _check_matrix(W, "W", 2, x.dtype)
    if W.shape[0] != x.shape[1]:
        raise ValueError(f"W must have shape (n_in, n_out) with n_in = x.shape[1] = {x.shape[1]}, got {W.shape}")
    if b is not None:
        b = _check_matrix(b, "b", 1, x.dtype)
        if b.shape[0] != W.shape[1]:
            raise ValueError(f"b must have shape (n_out,) = ({W.shape[1]},), got {b.shape}")
    keep_prob = check_keep_prob(keep_prob)
    code = _activation_code(activation)
    check_bool(regenerate, "regenerate")
    if mask is not None and seed is not None:
        raise ValueError("give either seed or mask, not both")
    if mask is not None and regenerate:
        raise ValueError("regenerate=True needs a drawn mask (seed), not an explicit mask")
    if mask is not None:
        mask = as_mask(mask, x.shape, keep_prob)
    gen = as_generator(seed) if seed is not None else None  # validated even if unused
    return dense_forward_unchecked(x, W, b, keep_prob, code, gen, mask, regenerate)


def dense_forward_unchecked(x, W, b, keep_prob, code, gen, mask=None, regenerate=False):
    """dense_forward's work after its argument checks: buffers, the mask
    draw, the kernel call and the cache (``code`` the activation's code,
    ``gen`` a Generator or None, ``mask`` a Mask or None). The kernel checks
    every buffer's shape itself, so a wrong array here raises
    ValueError/TypeError from the kernel (with a terser message than
    dense_forward's) instead of touching memory."""
    activation = _ACTIVATION_NAMES[code]
    out = np.empty((x.shape[0], W.shape[1]), dtype=x.dtype)
    key = first_block = threshold = 0
    x_tilde = words = None
    if mask is None and keep_prob == 1.0:
        mode, mask = _NO_MASK, Mask.all_kept(x.shape)
    elif mask is not None and mask.words is None and keep_prob == 1.0:
        mode = _NO_MASK
    elif mask is not None:
        mode, x_tilde, words = _APPLY, np.empty_like(x), packed_words(mask)
    else:
        key, first_block = reserve(gen or as_generator(None), x.size)
        threshold = threshold_of(keep_prob)
        # a regenerating cache keeps no x_tilde: draw it into a work buffer
        x_tilde = _scratch_buffer("x_tilde", x.shape, x.dtype) if regenerate else np.empty_like(x)
        mode = _DRAW
        words = np.empty(n_words(x.size), dtype=WORD)
    _run(_dense.forward_into, x, W, b, out, activation=code, mask_mode=mode, x_tilde=x_tilde, words=words,
         key=key, block0=first_block, threshold=threshold, scale=1.0 / keep_prob,
         batch=x.shape[0], n_in=x.shape[1], n_out=W.shape[1])

    if mode == _NO_MASK:
        x_tilde = x
    if mode == _DRAW:
        if regenerate:
            return out, DenseCache(x, None, out, W, b is not None, activation, keep_prob, None,
                                   (key, first_block))
        mask = adopt_words(words, x.shape, keep_prob)
    return out, DenseCache(x, x_tilde, out, W, b is not None, activation, keep_prob, mask, None)


def dense_backward(grad_out, cache, *, need_dx=True):
    """Gradients of :func:`dense_forward`, fused in one call.

    With ``dz = grad_out * act'(z)``: ``dW = x_tilde.T @ dz``,
    ``db = dz.sum(axis=0)`` and ``dx = (dz @ W.T) * D / keep_prob``, the
    gradient with respect to the layer's un-dropped input. No 1/batch factor:
    the caller's loss decides that.

    Parameters
    ----------
    grad_out : ndarray (batch, n_out), the forward dtype, C-contiguous
        Gradient of the loss with respect to the layer output.
    cache : DenseCache
        From the matching :func:`dense_forward`.
    need_dx : bool, keyword-only
        False skips the ``dx`` product (for the first layer).

    Returns
    -------
    dx : ndarray (batch, n_in) or None
    dW : ndarray (n_in, n_out)
    db : ndarray (n_out,) or None when the layer has no bias

    Raises
    ------
    TypeError
        ``cache`` not a DenseCache, ``grad_out`` of another dtype.
    ValueError
        ``grad_out`` of the wrong shape or non-contiguous; the layer's ``x``,
        ``W`` or ``out`` reshaped or resized in place since the forward pass.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> x = np.ones((2, 3), dtype=np.float32)
    >>> W = np.full((3, 2), 0.5, dtype=np.float32)
    >>> out, cache = cydrop.dense_forward(x, W, None, 0.5, activation="linear", seed=0)
    >>> dx, dW, db = cydrop.dense_backward(np.ones_like(out), cache)
    >>> D = cache.mask.to_bool()
    >>> bool(np.allclose(dW, (x * D / 0.5).T @ np.ones_like(out)))   # dW = x_tilde.T @ dz
    True
    >>> bool(np.allclose(dx, (np.ones_like(out) @ W.T) * D / 0.5))   # dx = (dz @ W.T) * D / keep_prob
    True
    >>> db is None   # the layer had no bias
    True
    """
    if not isinstance(cache, DenseCache):
        raise TypeError(f"cache must be the DenseCache returned by dense_forward, got {type(cache).__name__}")
    cache._check_unchanged()
    x, W = cache._x, cache._W
    grad_out = _check_matrix(grad_out, "grad_out", 2, x.dtype)
    expected = (x.shape[0], W.shape[1])
    if grad_out.shape != expected:
        raise ValueError(f"grad_out must have the forward output's shape {expected}, got {grad_out.shape}")
    check_bool(need_dx, "need_dx")

    return dense_backward_unchecked(grad_out, cache, need_dx)


def dense_backward_unchecked(grad_out, cache, need_dx):
    """dense_backward's work after its argument checks (as
    dense_forward_unchecked; the kernel checks the buffers' shapes itself)."""
    x, W = cache._x, cache._W
    dW = np.empty_like(W)
    db = np.empty(W.shape[1], dtype=x.dtype) if cache._has_bias else None
    dx = np.empty_like(x) if need_dx else None
    dz = _scratch_buffer("dz", grad_out.shape, grad_out.dtype)
    key = first_block = threshold = 0
    redraw = cache.regenerate
    if redraw:
        key, first_block = cache._origin
        threshold = threshold_of(cache.keep_prob)
        x_tilde = _scratch_buffer("x_tilde", x.shape, x.dtype)
        words = np.empty(n_words(x.size), dtype=WORD)
    else:
        x_tilde = cache._x_tilde
        words = None if x_tilde is x else packed_words(cache._mask)
    _run(_dense.backward_into, grad_out, cache._out, x_tilde, W, dz, dW, db, dx,
         activation=ACTIVATIONS[cache.activation], words=words, redraw=redraw, x=x if redraw else None,
         key=key, block0=first_block, threshold=threshold, scale=1.0 / cache.keep_prob,
         batch=x.shape[0], n_in=x.shape[1], n_out=W.shape[1])
    return dx, dW, db


@functools.lru_cache(maxsize=None)
def _register_numpy_gemm():
    """Hand the kernels NumPy's BLAS for their GEMMs, once (SciPy's without it)."""
    _dense.set_numpy_gemm(numpy_gemm(np.float32), numpy_gemm(np.float64))


def _run(kernel, *args, batch, n_in, n_out, **kwargs):
    """Call a dense kernel on the GEMM route that calls of its shapes run
    fastest on (cydrop._threads.gemm_route)."""
    _register_numpy_gemm()
    with gemm_route((kernel.__name__, batch, n_in, n_out), batch * n_in * n_out) as on_pool:
        if on_pool:
            # blocks on cydrop's pool, the BLAS kept to one thread meanwhile
            with single_threaded_blas:
                kernel(*args, **kwargs, n_threads=get_num_threads(), blocked=True)
        else:
            # whole GEMMs on the BLAS's threads, the element-wise passes on cydrop's pool
            kernel(*args, **kwargs, n_threads=get_num_threads())


def _activation_code(activation):
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    return ACTIVATIONS[activation]
