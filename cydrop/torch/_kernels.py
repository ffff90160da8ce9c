"""cydrop's dropout kernels on torch tensors: the one place where a tensor
becomes the NumPy view a kernel takes, without a copy.

Every function here takes CPU tensors of float32/float64 (the callers in
``_ops`` and ``functional`` fall back to torch's own ops for anything else)
and returns new tensors, laid out as torch's element-wise ops lay out theirs
(``like``). A mask element is the element of the tensor's logical (C) order,
whatever its layout, so a transposed or channels_last tensor gets the mask
of its contiguous copy. The kernels check the buffer lengths themselves
(``src/_dropout.pyx``: a noise shape that does not broadcast is a
ValueError there). The masks are packed words: uint64 NumPy arrays for the
eager autograd Functions (``_eager``), which keep them on ``ctx``, and int64
tensors for the custom ops (``_ops``; torch has no uint64 arithmetic).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from .. import _dropout
from .._generator import MAX_BLOCKS
from .._mask import n_words
from .._validation import threshold_of
from ._keys import Drawn, position
from ._threads import kernel_call

DTYPES = (torch.float32, torch.float64)


def can_run(x):
    """True when cydrop's kernels compute this call; else torch's op does
    (nested tensors are strided too, but not one block of memory)."""
    return (type(x) is torch.Tensor or isinstance(x, torch.nn.Parameter)) and x.is_cpu \
        and x.dtype in DTYPES and x.layout == torch.strided and not x.is_nested

_U64 = 1 << 64


def mask_numel(x_shape, noise_shape):
    """Elements of the mask: prod(noise_shape), or of x's shape when noise_shape is empty."""
    return math.prod(noise_shape) if noise_shape else math.prod(x_shape)


def read_position(position):
    """(key, first block), unsigned Python ints as a ``Drawn``, from an int64 tensor [key, block]."""
    if position.dtype != torch.int64 or position.shape != (2,) or position.device.type != "cpu":
        raise ValueError(f"position must be a CPU int64 tensor of shape (2,), got "
                         f"{position.dtype} {tuple(position.shape)} on {position.device}")
    key, block = position.tolist()
    if not 0 <= block < MAX_BLOCKS:
        raise ValueError(f"position block must be in [0, 2**59), got {block}")
    return Drawn(key % _U64, block)


def as_array(t):
    """The NumPy view of a CPU tensor's memory (no copy), C-contiguous: a
    non-contiguous tensor is copied once. ``numpy(force=True)`` detaches in
    C++ (one call from Python instead of detach() and numpy(); it copies
    only tensors off the CPU, which never come here)."""
    return (t if t.is_contiguous() else t.contiguous()).numpy(force=True)


def like(t, result):
    """``result``, a C-contiguous tensor of t's shape, laid out as
    ``torch.empty_like(t)`` would be (torch's rule for the output of an
    element-wise op: t's own strides when t is dense, else dense strides in
    the order of t's): result itself when that layout is C-contiguous, else
    a copy in it. So a channels_last or transposed input gives an output laid
    out alike, and the next op does not pay for a layout change."""
    if t.is_contiguous():
        return result
    laid_out = torch.empty_like(t)
    return result if laid_out.is_contiguous() else laid_out.copy_(result)


def writable_in_place(t):
    """Whether a kernel can write t's values through a NumPy view of its
    memory: t contiguous and not a negative view (``torch.conj(z).imag``
    stores -t, and numpy(force=True) hands back a copy of t, where the
    result would be lost)."""
    return t.is_contiguous() and not t.is_neg()


def _in_and_out(t, out):
    """(t's C-contiguous NumPy view, the output array or None) of a kernel
    wrapper: None (the kernel makes the output), or with ``out`` t's own
    view for in-place work. A strided or negative view would be copied and
    the result lost, so in place takes only t itself, writable_in_place."""
    if out is None:
        return as_array(t), None
    if out is not t or not writable_in_place(t):
        raise ValueError("the kernel wrappers write in place only into their own input, contiguous")
    t_np = t.numpy(force=True)
    return t_np, t_np


def _broadcasts(noise_shape, shape):
    """True when a mask of noise_shape is broadcast over an array of shape
    (an empty noise_shape is the array's own)."""
    return bool(noise_shape) and list(noise_shape) != list(shape)


def _mask_ordered(t, noise_shape):
    """perm with t.permute(perm) C-contiguous, when t is dense in that order
    but not contiguous (channels_last, a transpose) and its mask, of a
    broadcast noise_shape, draws its elements in the same order over
    t.permute(perm) as over t (the mask's axes larger than 1 come in the
    same order in perm): channel dropout of a channels_last tensor, whose
    (N, C) mask is (N, 1, 1, C) in memory order. The kernels then work on
    t's memory as it is, without a copy either way. None otherwise."""
    if not _broadcasts(noise_shape, t.shape) or t.is_contiguous():
        return None
    perm = sorted(range(t.dim()), key=lambda d: -t.stride(d))
    masked = [d for d in perm if noise_shape[d] != 1]
    return perm if masked == sorted(masked) and t.permute(perm).is_contiguous() else None


def _inverse(perm):
    return [perm.index(d) for d in range(len(perm))]


def dropout_forward(x, keep_prob, noise_shape, source, out=None):
    """(y, words): y = x * D / keep_prob, the mask D of noise_shape (x's
    shape when empty) drawn from ``source`` (see ``_keys.position``: None
    for a key from torch's generator, a seed, a Generator or a drawn (key,
    block)) and broadcast over x, and its packed bits (a uint64 NumPy
    array). y is laid out like x (``like``). ``out`` may be x itself
    (contiguous; see _in_and_out) for in-place work. Called
    once per training step and layer, where each Python-level call costs
    several times more than alone: without a noise shape, the kernel takes
    x's view as it is and makes y and the words itself. The output is
    shared with torch.from_numpy."""
    perm = None if out is not None or not noise_shape else _mask_ordered(x, noise_shape)
    if perm is not None:
        y, words = dropout_forward(x.permute(perm), keep_prob, [noise_shape[d] for d in perm], source)
        return y.permute(_inverse(perm)), words
    x_np, y_np = _in_and_out(x, out)
    threshold, scale = threshold_of(keep_prob), 1.0 / keep_prob
    if _broadcasts(noise_shape, x_np.shape):
        n_mask = mask_numel(x_np.shape, noise_shape)
        key, block = position(source, n_mask)
        words = np.empty(n_words(n_mask), dtype=np.uint64)
        y_np = np.empty_like(x_np) if y_np is None else y_np
        _dropout.draw_words(key, block, threshold, words, n_mask)
        with kernel_call("dropout_broadcast", x_np) as n_threads:
            _dropout.apply_broadcast(x_np.ravel(), words, x_np.shape, tuple(noise_shape), scale, y_np.ravel(),
                                     n_threads)
    else:
        key, block = position(source, x_np.size)
        with kernel_call("dropout", x_np) as n_threads:
            y_np, words = _dropout.forward(x_np, y_np, None, key, block, threshold, scale, n_threads)
    if out is not None:
        return out, words
    y = torch.from_numpy(y_np)
    return (y if x.is_contiguous() else like(x, y)), words


def apply_mask(grad, words, keep_prob, noise_shape, out=None):
    """grad * D / keep_prob for the packed mask ``words`` (uint64 NumPy
    array; noise_shape as in dropout_forward), laid out like grad: the
    backward pass of dropout, and its own backward. ``out`` may be grad
    itself, contiguous (a product autograd does not record), for in-place
    work."""
    perm = None if out is not None or not noise_shape else _mask_ordered(grad, noise_shape)
    if perm is not None:
        out = apply_mask(grad.permute(perm), words, keep_prob, [noise_shape[d] for d in perm])
        return out.permute(_inverse(perm))
    g_np, out_np = _in_and_out(grad, out)
    scale = 1.0 / keep_prob
    if _broadcasts(noise_shape, g_np.shape):
        out_np = np.empty_like(g_np) if out_np is None else out_np
        with kernel_call("apply_broadcast", g_np) as n_threads:
            _dropout.apply_broadcast(g_np.ravel(), words, g_np.shape, tuple(noise_shape), scale, out_np.ravel(),
                                     n_threads)
    else:
        with kernel_call("apply", g_np) as n_threads:
            out_np = _dropout.apply(g_np, words, scale, out_np, n_threads)
    if out is not None:
        return out
    out = torch.from_numpy(out_np)
    return out if grad.is_contiguous() else like(grad, out)


def words_tensor(words):
    """A uint64 NumPy array of mask words as the int64 tensor the custom ops
    pass around (torch has no uint64 arithmetic), sharing its memory."""
    return torch.from_numpy(words.view(np.int64))


def words_array(words):
    """The inverse of words_tensor: an int64 tensor of words as uint64 NumPy."""
    return as_array(words).view(np.uint64)


# ---------------------------------------------------------------- DropoutLinear
#
# DropoutLinear on torch tensors: cydrop's mask passes and torch's GEMMs
# (MKL on torch's threads, as nn.Linear's). The dense kernels of
# ``src/_dense.pyx`` serve NumPy callers; reached from torch, each of their
# GEMMs went back into torch.mm through a callback, so the layer paid NumPy
# views and a Python call per GEMM on top of the same passes, and its small
# layer SciPy's BLAS under a thread limit (benchmarks/results/torch/
# torch-group-*.md has the before-and-after measurement).


def linear_forward(x, weight, bias, keep_prob, source):
    """(out, words): out = (x * D / keep_prob) @ weight.T + bias, the mask D
    drawn from ``source`` (as dropout_forward) and returned packed; the
    masked input is not kept (backward recomputes it from the words).

    x (batch, n_in) (a strided x is copied once), weight (n_out, n_in) (nn.Linear's layout),
    bias (n_out,) or None; F.linear checks the shapes and dtypes."""
    x_tilde, words = dropout_forward(x, keep_prob, [], source)
    # F.linear: addmm(bias, x_tilde, weight.t()) in one call from Python. No
    # detach(): callers run this where autograd records nothing (a Function's
    # forward, a custom op, no_grad)
    return F.linear(x_tilde, weight, bias), words


def linear_backward(grad_out, x, weight, words, keep_prob, needs):
    """(dx, dW, db) of linear_forward, each None unless ``needs`` (three
    bools: x, weight, bias) asks for it: x_tilde = x * D / keep_prob again
    from the words, dW = grad_out^T x_tilde, db = sum_rows grad_out,
    dx = (grad_out weight) * D / keep_prob (the mask applied in place).

    dx has x_tilde's shape and is computed after dW, so it is written into
    x_tilde's buffer: one (batch, n_in) array a step, not two (an
    allocation and its crossing into NumPy cost tens of microseconds
    between the GEMMs: ``benchmarks/torch_in_loop.py``, single calls)."""
    need_dx, need_dw, need_db = needs
    db = grad_out.sum(0) if need_db else None
    dW = dx = None
    if need_dw:
        x_tilde = apply_mask(x, words, keep_prob, [])
        dW = grad_out.t().mm(x_tilde)
    if need_dx:
        dx = torch.mm(grad_out, weight, out=x_tilde) if need_dw else grad_out.mm(weight)
        apply_mask(dx, words, keep_prob, [], out=dx)
    return dx, dW, db
