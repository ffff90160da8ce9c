"""Concrete dropout as PyTorch custom operators, for torch.compile.

Functional ops (no argument is mutated, so they can have autograd):

- ``cydrop::concrete_dropout(x, p_logit, temperature, position, run) -> (y, drawn)``
  and its backward ``cydrop::concrete_dropout_backward -> (dx, dp_logit)``;
- ``cydrop::concrete_dropout_linear(x, weight, bias, p_logit, temperature,
  position) -> (out, drawn)`` and its backward
  ``cydrop::concrete_dropout_linear_backward -> (dx, dW, db, dp_logit)``.

``position`` is the int64 tensor ``[key, block]`` of the draw
(``_ops.compiled_position``: for a call without a seed, the op
``cydrop::draw_position``), as for cydrop's dropout ops; ``p_logit`` is a
one-element tensor (its value is read inside the op). Backward saves x
(and the weight) and ``drawn``, a copy of ``position`` made inside the op,
no mask: it draws the noise again from there (a copy, so that no input the
compiler might reuse is saved). The backward ops have no autograd of their
own: not twice differentiable.
In eager mode the modules reach the same kernels through
``_concrete_eager``'s autograd Functions.
"""
from typing import Optional

import torch

from . import _concrete_kernels as kernels
from ._concrete_eager import p_logit_grad, value
from ._kernels import like, read_position

__all__ = ["concrete_dropout_backward_op", "concrete_dropout_linear_backward_op", "concrete_dropout_linear_op",
           "concrete_dropout_op"]


@torch.library.custom_op("cydrop::concrete_dropout", mutates_args=(), device_types="cpu")
def concrete_dropout_op(x: torch.Tensor, p_logit: torch.Tensor, temperature: float, position: torch.Tensor,
                        run: int) -> tuple[torch.Tensor, torch.Tensor]:
    key, block = read_position(position)
    return kernels.forward(x, value(p_logit), temperature, run, key, block), position.clone()


@concrete_dropout_op.register_fake
def _concrete_dropout_fake(x, p_logit, temperature, position, run):
    return like(x, x.new_empty(x.shape)), position.new_empty((2,))


@torch.library.custom_op("cydrop::concrete_dropout_backward", mutates_args=(), device_types="cpu")
def concrete_dropout_backward_op(grad: torch.Tensor, x: torch.Tensor, p_logit: torch.Tensor, temperature: float,
                                 position: torch.Tensor, run: int,
                                 need_dx: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(dx, dp_logit); dx is an empty (0,) tensor unless need_dx (a custom op
    returns tensors, never None)."""
    key, block = read_position(position)
    dx, dp = kernels.backward(grad, x, value(p_logit), temperature, run, key, block, need_dx)
    return (dx if need_dx else x.new_empty((0,))), p_logit_grad(dp, p_logit.dtype, p_logit.shape)


@concrete_dropout_backward_op.register_fake
def _concrete_dropout_backward_fake(grad, x, p_logit, temperature, position, run, need_dx):
    dx = like(grad, grad.new_empty(grad.shape)) if need_dx else x.new_empty((0,))
    return dx, p_logit.new_empty(p_logit.shape)


def _concrete_dropout_setup(ctx, inputs, output):
    x, p_logit, temperature, position, run = inputs
    ctx.temperature, ctx.run = temperature, run
    ctx.save_for_backward(x, p_logit, output[1])


def _concrete_dropout_backward(ctx, grad, grad_drawn):
    x, p_logit, position = ctx.saved_tensors
    need_dx = ctx.needs_input_grad[0]
    dx, dp = concrete_dropout_backward_op(grad, x, p_logit, ctx.temperature, position, ctx.run, need_dx)
    return (dx if need_dx else None), dp, None, None, None


concrete_dropout_op.register_autograd(_concrete_dropout_backward, setup_context=_concrete_dropout_setup)


@torch.library.custom_op("cydrop::concrete_dropout_linear", mutates_args=(), device_types="cpu")
def concrete_dropout_linear_op(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                               p_logit: torch.Tensor, temperature: float,
                               position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    key, block = read_position(position)
    return kernels.linear_forward(x, weight, bias, value(p_logit), temperature, key, block), position.clone()


@concrete_dropout_linear_op.register_fake
def _concrete_dropout_linear_fake(x, weight, bias, p_logit, temperature, position):
    return x.new_empty((x.shape[0], weight.shape[0])), position.new_empty((2,))


@torch.library.custom_op("cydrop::concrete_dropout_linear_backward", mutates_args=(), device_types="cpu")
def concrete_dropout_linear_backward_op(
        grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, p_logit: torch.Tensor, temperature: float,
        position: torch.Tensor, has_bias: bool,
        need_dx: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, dW, db, dp_logit); dx and db are empty (0,) tensors when not asked for."""
    key, block = read_position(position)
    dx, dW, db, dp = kernels.linear_backward(grad, x, weight, value(p_logit), temperature, key, block,
                                             (need_dx, True, has_bias, True))
    return (dx if need_dx else x.new_empty((0,)), dW, db if has_bias else x.new_empty((0,)),
            p_logit_grad(dp, p_logit.dtype, p_logit.shape))


@concrete_dropout_linear_backward_op.register_fake
def _concrete_dropout_linear_backward_fake(grad, x, weight, p_logit, temperature, position, has_bias, need_dx):
    return (x.new_empty(x.shape if need_dx else (0,)), weight.new_empty(weight.shape),
            weight.new_empty((weight.shape[0],) if has_bias else (0,)), p_logit.new_empty(p_logit.shape))


def _concrete_dropout_linear_setup(ctx, inputs, output):
    x, weight, bias, p_logit, temperature, position = inputs
    ctx.temperature, ctx.has_bias = temperature, bias is not None
    ctx.save_for_backward(x, weight, p_logit, output[1])


def _concrete_dropout_linear_backward(ctx, grad, grad_drawn):
    x, weight, p_logit, position = ctx.saved_tensors
    need_dx = ctx.needs_input_grad[0]
    dx, dW, db, dp = concrete_dropout_linear_backward_op(grad, x, weight, p_logit, ctx.temperature, position,
                                                         ctx.has_bias, need_dx)
    return (dx if need_dx else None), dW, (db if ctx.has_bias else None), dp, None, None


concrete_dropout_linear_op.register_autograd(_concrete_dropout_linear_backward,
                                             setup_context=_concrete_dropout_linear_setup)
