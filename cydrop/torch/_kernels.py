"""cydrop's dropout kernels on torch tensors: the one place where a tensor
becomes the NumPy view a kernel takes, without a copy.

Every function here takes CPU tensors of float32/float64 (the callers in
``_ops`` and ``functional`` fall back to torch's own ops for anything else)
and returns new tensors. The kernels check the buffer lengths themselves
(``src/_dropout.pyx``: a noise shape that does not broadcast is a
ValueError there). The masks are packed words: uint64 NumPy arrays for the
eager autograd Functions (``_eager``), which keep them on ``ctx``, and int64
tensors for the custom ops (``_ops``; torch has no uint64 arithmetic).
"""
import math

import numpy as np
import torch

from .. import _dropout
from .._generator import _MAX_BLOCKS
from .._mask import n_words
from .._validation import threshold_of
from ._stream import Drawn, position
from ._threads import kernel_threads

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
    if not 0 <= block < _MAX_BLOCKS:
        raise ValueError(f"position block must be in [0, 2**59), got {block}")
    return Drawn(key % _U64, block)


def _array(t):
    """The NumPy view of a CPU tensor's memory (no copy), C-contiguous: a
    non-contiguous tensor is copied once."""
    return (t if t.is_contiguous() else t.contiguous()).detach().numpy()


def _in_and_out(t, out):
    """(t's C-contiguous NumPy view, the output array) of a kernel wrapper: a
    new array, or with ``out`` t's own view for in-place work. A strided
    view would be copied by ravel() and the result lost, so in place takes
    only t itself, contiguous."""
    if out is None:
        t_np = _array(t)
        return t_np, np.empty_like(t_np)
    if out is not t or not t.is_contiguous():
        raise ValueError("the kernel wrappers write in place only into their own input, contiguous")
    t_np = t.detach().numpy()
    return t_np, t_np


def _broadcasts(noise_shape, shape):
    """True when a mask of noise_shape is broadcast over an array of shape
    (an empty noise_shape is the array's own)."""
    return bool(noise_shape) and list(noise_shape) != list(shape)


def dropout_forward(x, keep_prob, noise_shape, source, out=None):
    """(y, words): y = x * D / keep_prob, the mask D of noise_shape (x's
    shape when empty) drawn from ``source`` (see ``_stream.position``: a
    module, None, a seed, a Generator or a drawn (key, block)) and
    broadcast over x, and its packed bits (a uint64 NumPy array). ``out``
    may be x itself (contiguous; see _in_and_out) for in-place work. Called once per
    training step and layer: the Python around the kernel is kept to a few
    operations (the mask's size is the view's, not a second look at x's
    shape). The output is allocated by NumPy and shared with
    torch.from_numpy."""
    x_np, y_np = _in_and_out(x, out)
    threshold, scale, n_threads = threshold_of(keep_prob), 1.0 / keep_prob, kernel_threads()
    if _broadcasts(noise_shape, x_np.shape):
        n_mask = mask_numel(x_np.shape, noise_shape)
        key, block = position(source, n_mask)
        words = np.empty(n_words(n_mask), dtype=np.uint64)
        _dropout.draw_words(key, block, threshold, words, n_mask)
        _dropout.apply_broadcast(x_np.ravel(), words, x_np.shape, tuple(noise_shape), scale, y_np.ravel(),
                                 n_threads)
    else:
        key, block = position(source, x_np.size)
        words = np.empty(n_words(x_np.size), dtype=np.uint64)
        _dropout.forward(x_np.ravel(), y_np.ravel(), words, key, block, threshold, scale, n_threads)
    return (torch.from_numpy(y_np) if out is None else out), words


def apply_mask(grad, words, keep_prob, noise_shape, out=None):
    """grad * D / keep_prob for the packed mask ``words`` (uint64 NumPy
    array; noise_shape as in dropout_forward): the backward pass of dropout,
    and its own backward. ``out`` may be grad itself, contiguous (a
    product autograd does not record), for in-place work."""
    g_np, out_np = _in_and_out(grad, out)
    scale, n_threads = 1.0 / keep_prob, kernel_threads()
    if _broadcasts(noise_shape, g_np.shape):
        _dropout.apply_broadcast(g_np.ravel(), words, g_np.shape, tuple(noise_shape), scale, out_np.ravel(),
                                 n_threads)
    else:
        _dropout.apply(g_np.ravel(), words, scale, out_np.ravel(), n_threads)
    return torch.from_numpy(out_np) if out is None else out


def words_tensor(words):
    """A uint64 NumPy array of mask words as the int64 tensor the custom ops
    pass around (torch has no uint64 arithmetic), sharing its memory."""
    return torch.from_numpy(words.view(np.int64))


def words_array(words):
    """The inverse of words_tensor: an int64 tensor of words as uint64 NumPy."""
    return words.detach().contiguous().numpy().view(np.uint64)


# ---------------------------------------------------------------- DropoutLinear
#
# DropoutLinear on torch tensors: cydrop's mask passes and torch's GEMMs
# (MKL on torch's threads, as nn.Linear's). The dense kernels of
# ``src/_dense.pyx`` serve NumPy callers; reached from torch, each of their
# GEMMs went back into torch.mm through a callback, so the layer paid NumPy
# views and a Python call per GEMM on top of the same passes, and its small
# layer SciPy's BLAS under a thread limit (README "PyTorch" has the
# before-and-after measurement).


def linear_forward(x, weight, bias, keep_prob, source):
    """(out, words): out = (x * D / keep_prob) @ weight.T + bias, the mask D
    drawn from ``source`` (as dropout_forward) and returned packed; the
    masked input is not kept (backward recomputes it from the words).

    x (batch, n_in) contiguous, weight (n_out, n_in) (nn.Linear's layout),
    bias (n_out,) or None; torch.addmm checks the shapes and dtypes."""
    x_tilde, words = dropout_forward(x, keep_prob, [], source)
    # no detach(): callers run this where autograd records nothing (a Function's
    # forward, a custom op, no_grad), and each detach() makes a tensor a call
    return (x_tilde.mm(weight.t()) if bias is None else torch.addmm(bias, x_tilde, weight.t())), words


def linear_backward(grad_out, x, weight, words, keep_prob, needs):
    """(dx, dW, db) of linear_forward, each None unless ``needs`` (three
    bools: x, weight, bias) asks for it: x_tilde = x * D / keep_prob again
    from the words, dW = grad_out^T x_tilde, db = sum_rows grad_out,
    dx = (grad_out weight) * D / keep_prob (the mask applied in place)."""
    need_dx, need_dw, need_db = needs
    dW = grad_out.t().mm(apply_mask(x, words, keep_prob, [])) if need_dw else None
    db = grad_out.sum(0) if need_db else None
    dx = None
    if need_dx:
        dx = grad_out.mm(weight)
        apply_mask(dx, words, keep_prob, [], out=dx)
    return dx, dW, db
