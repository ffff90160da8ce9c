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
import functools
import math

import numpy as np
import torch

from .. import _dense, _dropout
from ..dense import _scratch_buffer
from .._blas_threads import single_threaded_blas
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


def _array(t):
    """The NumPy view of a CPU tensor's memory (no copy), C-contiguous: a
    non-contiguous tensor is copied once."""
    return (t if t.is_contiguous() else t.contiguous()).detach().numpy()


def dropout_forward(x, keep_prob, key, block, noise_shape, out=None):
    """(y, words): y = x * D / keep_prob with D drawn at (key, block), the
    mask of noise_shape (x's shape when empty) broadcast over x, and its
    packed bits (a uint64 NumPy array). ``out`` may be x itself
    (contiguous) for in-place work. Called once per training step and
    layer: the Python around the kernel is kept to a few operations. The
    output is allocated by NumPy and shared with torch.from_numpy."""
    x_np = _array(x)
    y_np = np.empty_like(x_np) if out is None else out.detach().numpy()
    threshold, scale, n_threads = threshold_of(keep_prob), 1.0 / keep_prob, kernel_threads()
    if noise_shape and list(noise_shape) != list(x_np.shape):
        n_mask = mask_numel(x_np.shape, noise_shape)
        words = np.empty(n_words(n_mask), dtype=np.uint64)
        _dropout.draw_words(key, block, threshold, words, n_mask)
        _dropout.apply_broadcast(x_np.ravel(), words, x_np.shape, tuple(noise_shape), scale, y_np.ravel(),
                                 n_threads)
    else:
        words = np.empty(n_words(x_np.size), dtype=np.uint64)
        _dropout.forward(x_np.ravel(), y_np.ravel(), words, key, block, threshold, scale, n_threads)
    return (torch.from_numpy(y_np) if out is None else out), words


def apply_mask(grad, words, keep_prob, noise_shape):
    """grad * D / keep_prob for the packed mask ``words`` (uint64 NumPy
    array; noise_shape as in dropout_forward): the backward pass of dropout,
    and its own backward."""
    g_np = _array(grad)
    out_np = np.empty_like(g_np)
    scale, n_threads = 1.0 / keep_prob, kernel_threads()
    if noise_shape and list(noise_shape) != list(g_np.shape):
        _dropout.apply_broadcast(g_np.ravel(), words, g_np.shape, tuple(noise_shape), scale, out_np.ravel(),
                                 n_threads)
    else:
        _dropout.apply(g_np.ravel(), words, scale, out_np.ravel(), n_threads)
    return torch.from_numpy(out_np)


def words_tensor(words):
    """A uint64 NumPy array of mask words as the int64 tensor the custom ops
    pass around (torch has no uint64 arithmetic), sharing its memory."""
    return torch.from_numpy(words.view(np.int64))


def words_array(words):
    """The inverse of words_tensor: an int64 tensor of words as uint64 NumPy."""
    return words.detach().contiguous().numpy().view(np.uint64)


# ---------------------------------------------------------------- DropoutLinear

# GEMMs with fewer multiply-adds (batch * n_in * n_out) than this run on the
# calling thread (the kernel's own route: SciPy's BLAS on one thread, no
# Python in between); larger ones on torch's BLAS and its threads. Below it,
# torch.mm's per-call cost (dispatch, waking its OpenMP pool) outweighs the
# second thread. The groups torch-linear-100x512x10 (5e5 multiply-adds: the
# calling thread) and torch-linear-100x512x512 (2.6e7: torch's BLAS) of
# benchmarks/bench_torch.py time DropoutLinear on either side of it.
_CALLING_THREAD_MAX_MNK = 1 << 22


def _torch_mm(a, b, out):
    """The dense kernels' ``matmul(a, b, out=c)`` contract on torch's BLAS
    (MKL on torch's OpenMP threads, the pool the rest of a torch loop uses):
    NumPy views in, no copy (a transposed operand stays a strided view)."""
    torch.mm(torch.from_numpy(a), torch.from_numpy(b), out=torch.from_numpy(out))


def _torch_addmm(bias, a, b, out):
    """_torch_mm with ``bias`` (a tensor) added inside the GEMM, as nn.Linear does."""
    torch.addmm(bias, torch.from_numpy(a), torch.from_numpy(b), out=torch.from_numpy(out))


def _run_dense(kernel, *args, mnk, n_threads, matmul=_torch_mm):
    """A dense kernel call on the GEMM route for its size (see above), its
    element-wise passes on n_threads. The calling-thread route keeps SciPy's
    BLAS to one thread meanwhile: with its own threads (OpenBLAS's pthreads,
    not the OpenMP pool) it fights torch's pool (the demo network's epoch
    slowed down several-fold)."""
    if mnk < _CALLING_THREAD_MAX_MNK:
        with single_threaded_blas:
            kernel(*args, n_threads, None, True)
    else:
        kernel(*args, n_threads, matmul, True)


_LINEAR = int(_dense.Activation.LINEAR)
_DRAW, _APPLY = 1, 2


def linear_forward(x, weight, bias, keep_prob, key, block):
    """(out, state): out = (x * D / keep_prob) @ weight.T + bias in one
    ``_dense.forward`` call, D drawn at (key, block); ``state`` is what
    linear_backward needs: the NumPy views of x and weight (no copies) and
    the packed mask (uint64 words).

    x (batch, n_in) and weight (n_out, n_in), nn.Linear's layout, read in
    place through ``w_transposed``) contiguous, bias (n_out,) or None, one
    dtype; the kernel checks every shape. The masked input goes to a
    per-thread work buffer: backward recomputes it from x and the words."""
    x_np, w_np = x.detach().numpy(), weight.detach().numpy()
    batch, n_in = x_np.shape
    mnk = batch * n_in * w_np.shape[0]
    out = np.empty((batch, w_np.shape[0]), dtype=x_np.dtype)
    words = np.empty(n_words(batch * n_in), dtype=np.uint64)
    x_tilde = _scratch_buffer("torch-x_tilde", (batch, n_in), x_np.dtype)
    b_np, matmul = None if bias is None else bias.detach().numpy(), _torch_mm
    if b_np is not None and mnk >= _CALLING_THREAD_MAX_MNK:
        # on torch's BLAS the bias goes inside the GEMM: the kernel, given
        # no bias, makes no pass of its own for it
        b_np, matmul = None, functools.partial(_torch_addmm, bias.detach())
    _run_dense(_dense.forward, x_np, w_np, b_np, x_tilde, words, _DRAW, key, block, threshold_of(keep_prob),
               1.0 / keep_prob, _LINEAR, out, mnk=mnk, n_threads=kernel_threads(), matmul=matmul)
    return torch.from_numpy(out), (x_np, w_np, words)


def linear_backward(grad_out, state, keep_prob, has_bias, need_dx):
    """(dx or None, dW, db or None) of linear_forward, in one ``_dense.backward``
    call: x_tilde := x * D / keep_prob again from the saved words (APPLY),
    dW = grad_out^T x_tilde (n_out, n_in), db = sum_rows grad_out,
    dx = (grad_out weight) * D / keep_prob."""
    x_np, w_np, words = state
    grad_np = grad_out.detach().contiguous().numpy()
    batch, n_in = x_np.shape
    dtype = x_np.dtype
    x_tilde = _scratch_buffer("torch-x_tilde", (batch, n_in), dtype)
    dz = _scratch_buffer("torch-dz", grad_np.shape, dtype)
    dW = np.empty(w_np.shape, dtype=dtype)
    db = np.empty(w_np.shape[0], dtype=dtype) if has_bias else None
    dx = np.empty((batch, n_in), dtype=dtype) if need_dx else None
    # grad_out stands in for the activation's output: act' of LINEAR reads nothing
    _run_dense(_dense.backward, grad_np, grad_np, x_np, x_tilde, w_np, words, _APPLY, 0, 0,
               threshold_of(keep_prob), 1.0 / keep_prob, _LINEAR, dz, dW, db, dx,
               mnk=batch * n_in * w_np.shape[0], n_threads=kernel_threads())
    return (torch.from_numpy(dx) if need_dx else None, torch.from_numpy(dW),
            torch.from_numpy(db) if has_bias else None)
