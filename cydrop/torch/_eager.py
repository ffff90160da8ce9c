"""The eager-mode path into the kernels: autograd Functions that call
``_kernels`` directly, without the dispatcher round trip of the custom ops
(``_ops``, used under torch.compile). Same kernels, same saved state (the
packed mask), same results bit for bit.

Per call they do the least around the kernels: the packed mask stays a
NumPy array on ``ctx`` (it never leaves the Function, so neither
save_for_backward nor a tensor wrapper is needed), and a backward that is
not itself recorded (no ``create_graph``) calls the kernel directly instead
of going through a second Function."""
import torch

from . import _kernels


class DropoutFunction(torch.autograd.Function):
    """y = x * D / keep_prob, D drawn from ``source`` (``_stream.position``);
    keeps the packed mask."""

    @staticmethod
    def forward(ctx, x, keep_prob, noise_shape, source):
        y, ctx.words = _kernels.dropout_forward(x, keep_prob, noise_shape, source)
        ctx.keep_prob, ctx.noise_shape = keep_prob, noise_shape
        return y

    @staticmethod
    def backward(ctx, grad_y):
        return _apply(grad_y, ctx.words, ctx.keep_prob, ctx.noise_shape), None, None, None


class ApplyMaskFunction(torch.autograd.Function):
    """grad * D / keep_prob for packed words; linear, so its own backward is
    the same apply (double backward works)."""

    @staticmethod
    def forward(ctx, grad, words, keep_prob, noise_shape):
        ctx.words, ctx.keep_prob, ctx.noise_shape = words, keep_prob, noise_shape
        return _kernels.apply_mask(grad, words, keep_prob, noise_shape)

    @staticmethod
    def backward(ctx, grad_out):
        return _apply(grad_out, ctx.words, ctx.keep_prob, ctx.noise_shape), None, None, None


def _apply(grad, words, keep_prob, noise_shape):
    """The backward multiply: a recorded Function under create_graph (grad
    mode is on inside backward only then), the bare kernel otherwise."""
    if torch.is_grad_enabled():
        return ApplyMaskFunction.apply(grad, words, keep_prob, noise_shape)
    return _kernels.apply_mask(grad, words, keep_prob, noise_shape)


class DropoutLinearFunction(torch.autograd.Function):
    """out = (x * D / keep_prob) @ weight.T + bias (``_kernels.linear_forward``:
    cydrop's mask pass, torch's GEMM). Saves x and the weight
    (save_for_backward: torch refuses the backward if either changed in
    place meanwhile) and keeps the packed mask on ``ctx``, never the masked
    input. Not twice differentiable."""

    @staticmethod
    def forward(ctx, x, weight, bias, keep_prob, source):
        out, ctx.words = _kernels.linear_forward(x, weight, bias, keep_prob, source)
        ctx.keep_prob = keep_prob
        ctx.save_for_backward(x, weight)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # Grad mode is on inside backward only under create_graph: then
        # once_differentiable's way (the body under no_grad, an error if its
        # result is differentiated again). Otherwise nothing is recorded and
        # the body runs without the context manager's cost.
        if torch.is_grad_enabled():
            return _linear_backward_once(ctx, grad_out)
        return _linear_backward(ctx, grad_out)


def _linear_backward(ctx, grad_out):
    x, weight = ctx.saved_tensors
    dx, dW, db = _kernels.linear_backward(grad_out, x, weight, ctx.words, ctx.keep_prob,
                                          ctx.needs_input_grad[:3])
    return dx, dW, db, None, None


_linear_backward_once = torch.autograd.function.once_differentiable(_linear_backward)
