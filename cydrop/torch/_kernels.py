"""cydrop's dropout kernels on torch tensors: the one place where a tensor
becomes the NumPy view a kernel takes, without a copy.

Every function here takes CPU tensors of float32/float64 (the callers in
``_ops`` and ``functional`` fall back to torch's own ops for anything else)
and returns new tensors. The kernels check the buffer lengths themselves
(``src/_dropout.pyx``: a noise shape that does not broadcast is a
ValueError there); the masks are packed words, stored as int64 tensors
because torch has no uint64 arithmetic, and viewed as uint64 by the kernels.
"""
import math

import numpy as np
import torch

from .. import _dropout
from .._generator import _MAX_BLOCKS
from .._mask import n_words
from .._validation import threshold_of
from ._threads import kernel_threads

_U64 = 1 << 64


def mask_numel(x_shape, noise_shape):
    """Elements of the mask: prod(noise_shape), or of x's shape when noise_shape is empty."""
    return math.prod(noise_shape) if noise_shape else math.prod(x_shape)


def read_position(position):
    """(key, first block) as unsigned Python ints from an int64 tensor [key, block]."""
    if position.dtype != torch.int64 or position.shape != (2,) or position.device.type != "cpu":
        raise ValueError(f"position must be a CPU int64 tensor of shape (2,), got "
                         f"{position.dtype} {tuple(position.shape)} on {position.device}")
    key, block = position.tolist()
    if not 0 <= block < _MAX_BLOCKS:
        raise ValueError(f"position block must be in [0, 2**59), got {block}")
    return key % _U64, block


def _flat(t):
    """1-D NumPy view of a contiguous CPU tensor (shares its memory)."""
    return t.detach().numpy().reshape(-1)


def _empty(shape, dtype):
    """(tensor, its flat NumPy view): allocated by NumPy and shared, which
    costs less per call than torch.empty followed by .numpy()."""
    arr = np.empty(shape, dtype=dtype)
    return torch.from_numpy(arr), arr.reshape(-1)


_NP_DTYPE = {torch.float32: np.float32, torch.float64: np.float64}


def dropout_forward(x, keep_prob, key, block, noise_shape, out=None):
    """(y, words): y = x * D / keep_prob with D drawn at (key, block), the
    mask of noise_shape (x's shape when empty) broadcast over x. ``out`` may
    be x itself (contiguous) for in-place work."""
    x = x.contiguous()
    if out is None:
        y, y_flat = _empty(tuple(x.shape), _NP_DTYPE[x.dtype])
    else:
        y, y_flat = out, _flat(out)
    n_mask = mask_numel(x.shape, noise_shape) if noise_shape else x.numel()
    words, w = _empty(n_words(n_mask), np.int64)
    w = w.view(np.uint64)
    threshold, scale = threshold_of(keep_prob), 1.0 / keep_prob
    if not noise_shape or list(noise_shape) == list(x.shape):
        _dropout.forward(_flat(x), y_flat, w, key, block, threshold, scale, kernel_threads(x.numel()))
    else:
        _dropout.draw_words(key, block, threshold, w, n_mask)
        _dropout.apply_broadcast(_flat(x), w, tuple(x.shape), tuple(noise_shape), scale, y_flat,
                                 kernel_threads(x.numel()))
    return y, words


def apply_mask(grad, words, keep_prob, noise_shape):
    """grad * D / keep_prob for the packed mask ``words`` (noise_shape as in
    dropout_forward): the backward pass of dropout, and its own backward."""
    grad = grad.contiguous()
    out, out_flat = _empty(tuple(grad.shape), _NP_DTYPE[grad.dtype])
    w = words.detach().contiguous().numpy().view(np.uint64)
    scale = 1.0 / keep_prob
    if not noise_shape or list(noise_shape) == list(grad.shape):
        _dropout.apply(_flat(grad), w, scale, out_flat, kernel_threads(grad.numel()))
    else:
        _dropout.apply_broadcast(_flat(grad), w, tuple(grad.shape), tuple(noise_shape), scale,
                                 out_flat, kernel_threads(grad.numel()))
    return out
