"""cydrop's dropout as PyTorch custom operators, for torch.compile.

Two functional ops (no argument is mutated, so both can have autograd):

- ``cydrop::dropout(x, keep_prob, position, noise_shape) -> (y, words)``:
  draws the mask at the generator position ``position`` (an int64 tensor
  ``[key, block]``) and returns the output and the packed mask;
- ``cydrop::apply_mask(grad, words, keep_prob, noise_shape) -> dx``: the
  backward pass, itself differentiable (its gradient is the same apply).

The stream position lives in a tensor that the caller advances with a plain
torch in-place add after the op (``functional._advance``): a custom op that
mutated it could not have a backward formula (torch refuses autograd on
non-functional custom ops), and an int attribute would be a constant to
torch.compile. Backward saves the packed mask (1 bit per element of the
noise shape), never a bool or float mask.

In eager mode the modules reach the same kernels through ``_eager``'s
autograd Functions: the dispatcher round trip of a custom op costs more
than the kernel on small tensors (benchmarks/bench_torch.py measures both).
"""
import torch

from . import _kernels

__all__ = ["apply_mask_op", "dropout_op"]


@torch.library.custom_op("cydrop::dropout", mutates_args=(), device_types="cpu")
def dropout_op(x: torch.Tensor, keep_prob: float, position: torch.Tensor,
               noise_shape: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    key, block = _kernels.read_position(position)
    y, words = _kernels.dropout_forward(x, keep_prob, key, block, noise_shape)
    return y, _kernels.words_tensor(words)


@dropout_op.register_fake
def _dropout_fake(x, keep_prob, position, noise_shape):
    n_mask = _kernels.mask_numel(x.shape, noise_shape)
    return (x.new_empty(x.shape),
            x.new_empty(((n_mask + 63) // 64,), dtype=torch.int64))


@torch.library.custom_op("cydrop::apply_mask", mutates_args=(), device_types="cpu")
def apply_mask_op(grad: torch.Tensor, words: torch.Tensor, keep_prob: float,
                  noise_shape: list[int]) -> torch.Tensor:
    return _kernels.apply_mask(grad, _kernels.words_array(words), keep_prob, noise_shape)


@apply_mask_op.register_fake
def _apply_mask_fake(grad, words, keep_prob, noise_shape):
    return grad.new_empty(grad.shape)


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
