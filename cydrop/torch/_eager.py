"""The eager-mode path into the kernels: autograd Functions that call
``_kernels`` directly, without the dispatcher round trip of the custom ops
(``_ops``, used under torch.compile). Same kernels, same saved state (the
packed mask), same results bit for bit."""
import torch

from . import _kernels


class DropoutFunction(torch.autograd.Function):
    """y = x * D / keep_prob, D drawn at (key, block); saves the packed mask."""

    @staticmethod
    def forward(ctx, x, keep_prob, key, block, noise_shape):
        y, words = _kernels.dropout_forward(x, keep_prob, key, block, noise_shape)
        ctx.keep_prob, ctx.noise_shape = keep_prob, noise_shape
        ctx.save_for_backward(words)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        (words,) = ctx.saved_tensors
        return ApplyMaskFunction.apply(grad_y, words, ctx.keep_prob, ctx.noise_shape), None, None, None, None


class ApplyMaskFunction(torch.autograd.Function):
    """grad * D / keep_prob for saved packed words; linear, so its own
    backward is the same apply (double backward works)."""

    @staticmethod
    def forward(ctx, grad, words, keep_prob, noise_shape):
        ctx.keep_prob, ctx.noise_shape = keep_prob, noise_shape
        ctx.save_for_backward(words)
        return _kernels.apply_mask(grad, words, keep_prob, noise_shape)

    @staticmethod
    def backward(ctx, grad_out):
        (words,) = ctx.saved_tensors
        return ApplyMaskFunction.apply(grad_out, words, ctx.keep_prob, ctx.noise_shape), None, None, None
