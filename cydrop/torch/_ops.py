"""cydrop's dropout as PyTorch custom operators, for torch.compile.

- ``cydrop::draw_position(x, count) -> position``: the position ``[key, 0]``
  of a call without a seed, its key drawn from torch's default generator
  when the graph runs (``_keys.call_key``, as an eager call draws it).
  Every draw adds 1 to ``count`` (``draw_count``): the chain of writes
  keeps compiled draws in the order of the eager calls, unmerged. ``x`` is
  the input to drop out, unused: it ties the draw to its call.

Functional ops (no argument is mutated, so they can have autograd):

- ``cydrop::dropout(x, keep_prob, position, noise_shape) -> (y, words)``:
  draws the mask at the generator position ``position`` (an int64 tensor
  ``[key, block]``) and returns the output and the packed mask;
- ``cydrop::apply_mask(grad, words, keep_prob, noise_shape) -> dx``: the
  backward pass, itself differentiable (its gradient is the same apply);
- ``cydrop::dropout_linear(x, weight, bias, keep_prob, position) -> (out, words)``
  and its backward ``cydrop::dropout_linear_backward``: DropoutLinear,
  cydrop's mask passes around torch's GEMMs (not twice differentiable).

The dropout ops take the position as a tensor and are deterministic given
it (``torch.library.opcheck`` runs them several times and compares), while
the draw, the one random step, is an op of its own. Backward saves the
packed mask (1 bit per element of the noise shape), never a bool or float
mask. Outputs are laid out like the input (``_kernels.like``), in the fake
kernels too.

In eager mode the modules reach the same kernels through ``_eager``'s
autograd Functions: the dispatcher round trip of a custom op costs more
than the kernel on small tensors (benchmarks/bench_torch.py measures both).
"""
from typing import Optional

import torch

from .._mask import n_words
from . import _kernels
from ._keys import call_key, position, signed

__all__ = ["apply_mask_op", "compiled_position", "draw_position_op", "dropout_linear_op", "dropout_linear_backward_op", "dropout_op"]


# Counts the draws of compiled graphs: each adds 1. Its only use is as an
# argument every draw reads and writes, which makes torch.compile keep the
# draws in the order of the calls and never merge two (AOTAutograd's CSE
# would merge two draws on one input, as it merges any functional op with
# equal arguments that is not one of aten's random ops).
draw_count = torch.zeros((), dtype=torch.int64, device="cpu")


@torch.library.custom_op("cydrop::draw_position", mutates_args=("count",), device_types="cpu")
def draw_position_op(x: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    count.add_(1)
    return torch.tensor([signed(call_key()), 0], dtype=torch.int64, device="cpu")


@draw_position_op.register_fake
def _draw_position_fake(x, count):
    return x.new_empty((2,), dtype=torch.int64)


@torch.library.custom_op("cydrop::dropout", mutates_args=(), device_types="cpu")
def dropout_op(x: torch.Tensor, keep_prob: float, position: torch.Tensor,
               noise_shape: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    y, words = _kernels.dropout_forward(x, keep_prob, noise_shape, _kernels.read_position(position))
    return y, _kernels.words_tensor(words)


@dropout_op.register_fake
def _dropout_fake(x, keep_prob, position, noise_shape):
    n_mask = _kernels.mask_numel(x.shape, noise_shape)
    return (_kernels.like(x, x.new_empty(x.shape)),
            x.new_empty((n_words(n_mask),), dtype=torch.int64))


@torch.library.custom_op("cydrop::apply_mask", mutates_args=(), device_types="cpu")
def apply_mask_op(grad: torch.Tensor, words: torch.Tensor, keep_prob: float,
                  noise_shape: list[int]) -> torch.Tensor:
    return _kernels.apply_mask(grad, _kernels.words_array(words), keep_prob, noise_shape)


@apply_mask_op.register_fake
def _apply_mask_fake(grad, words, keep_prob, noise_shape):
    return _kernels.like(grad, grad.new_empty(grad.shape))


def _dropout_setup(ctx, inputs, output):
    _, keep_prob, _, noise_shape = inputs
    ctx.keep_prob, ctx.noise_shape = keep_prob, noise_shape
    ctx.save_for_backward(output[1])


def _dropout_backward(ctx, grad_y, grad_words):
    (words,) = ctx.saved_tensors
    return apply_mask_op(grad_y, words, ctx.keep_prob, ctx.noise_shape), None, None, None


def _apply_mask_setup(ctx, inputs, output):
    _, words, keep_prob, noise_shape = inputs
    ctx.keep_prob, ctx.noise_shape = keep_prob, noise_shape
    ctx.save_for_backward(words)


def _apply_mask_backward(ctx, grad_out):
    (words,) = ctx.saved_tensors
    return apply_mask_op(grad_out, words, ctx.keep_prob, ctx.noise_shape), None, None, None


dropout_op.register_autograd(_dropout_backward, setup_context=_dropout_setup)
apply_mask_op.register_autograd(_apply_mask_backward, setup_context=_apply_mask_setup)


@torch.library.custom_op("cydrop::dropout_linear", mutates_args=(), device_types="cpu")
def dropout_linear_op(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                      keep_prob: float, position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out, words = _kernels.linear_forward(x, weight, bias, keep_prob, _kernels.read_position(position))
    return out, _kernels.words_tensor(words)


@dropout_linear_op.register_fake
def _dropout_linear_fake(x, weight, bias, keep_prob, position):
    return (x.new_empty((x.shape[0], weight.shape[0])),
            x.new_empty((n_words(x.shape[0] * x.shape[1]),), dtype=torch.int64))


@torch.library.custom_op("cydrop::dropout_linear_backward", mutates_args=(), device_types="cpu")
def dropout_linear_backward_op(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                               words: torch.Tensor, keep_prob: float, has_bias: bool,
                               need_dx: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, dW, db); dx and db are empty (0,) tensors when not asked for
    (a custom op returns tensors, never None)."""
    dx, dW, db = _kernels.linear_backward(grad, x, weight, _kernels.words_array(words), keep_prob,
                                          (need_dx, True, has_bias))
    return (dx if need_dx else x.new_empty((0,)), dW, db if has_bias else x.new_empty((0,)))


@dropout_linear_backward_op.register_fake
def _dropout_linear_backward_fake(grad, x, weight, words, keep_prob, has_bias, need_dx):
    return (x.new_empty(x.shape if need_dx else (0,)), weight.new_empty(weight.shape),
            weight.new_empty((weight.shape[0],) if has_bias else (0,)))


def _dropout_linear_setup(ctx, inputs, output):
    x, weight, bias, keep_prob, _ = inputs
    ctx.keep_prob, ctx.has_bias = keep_prob, bias is not None
    ctx.save_for_backward(x, weight, output[1])


def _dropout_linear_backward(ctx, grad_out, grad_words):
    x, weight, words = ctx.saved_tensors
    need_dx = ctx.needs_input_grad[0]
    dx, dW, db = dropout_linear_backward_op(grad_out, x, weight, words, ctx.keep_prob, ctx.has_bias,
                                            need_dx)
    return dx if need_dx else None, dW, db if ctx.has_bias else None, None, None


dropout_linear_op.register_autograd(_dropout_linear_backward, setup_context=_dropout_linear_setup)


@torch.compiler.assume_constant_result
def _seed_position(seed):
    """An int seed's position: the same on every call, so a constant of a
    compiled graph (the key is mixed by cydrop's Cython code, which torch.compile
    cannot trace). It is (key of seed, block 0) whatever the draw's size (a
    fresh Generator's first claim), so the size is not an argument: under
    dynamic shapes it is symbolic, which assume_constant_result refuses."""
    key, block = position(seed, 0)
    return signed(key), block


def compiled_position(source, x, n_mask):
    """The position tensor for a custom op under torch.compile. None: the
    op ``cydrop::draw_position``, which draws from torch's generator when the
    graph runs, in the order of the eager calls. A Generator draws in Python
    at each call: a graph break (fullgraph=True refuses it)."""
    if source is None:
        return draw_position_op(x, draw_count)
    if isinstance(source, int) and not isinstance(source, bool):
        return torch.tensor(_seed_position(source), dtype=torch.int64, device="cpu")
    key, block = position(source, n_mask)
    return torch.tensor([signed(key), block], dtype=torch.int64, device="cpu")
