"""The eager-mode path into the kernels: autograd Functions that call
``_kernels`` directly, without the dispatcher round trip of the custom ops
(``_ops``, used under torch.compile). Same kernels, same saved state (the
packed mask), same results bit for bit.

Per call they do the least around the kernels: the packed mask stays a
NumPy array (a non-tensor output of forward, kept on ``ctx``; it never
leaves the Function, so neither save_for_backward nor a tensor wrapper is
needed), and a backward that is not itself recorded (no ``create_graph``)
calls the kernel directly instead of going through a second Function.

The Functions define ``setup_context`` and ``vmap``, so torch.func's
transforms (``grad``, ``vjp``, ``jacrev``, ``vmap``) compose with them;
``apply`` calls them without ``autograd.Function.apply``'s Python wrapper
when no transform is active.
"""
from typing import NamedTuple

import numpy as np
import torch
import torch.autograd.forward_ad as _forward_ad

from . import _kernels

# torch's own message for a random op under vmap(randomness="error") (the default)
VMAP_RANDOMNESS_ERROR = ("vmap: called random operation while in randomness error mode. Please either use "
                         "the 'same' or 'different' randomness flags on vmap or perform the randomness "
                         "operation out of vmap")


def _c_apply(function):
    """The C entry point of ``function.apply``. autograd.Function.apply, in
    Python, binds the arguments of a Function that defines setup_context
    with inspect.signature on every call, a cost of the order of the
    kernel's on a small tensor; outside torch.func's transforms the rest of
    it is this call."""
    base_apply = getattr(torch._C._FunctionBase, "__dict__", {}).get("apply")
    return base_apply.__get__(None, function) if base_apply is not None else function.apply


def apply(function, *args):
    """``function.apply(*args)``: through autograd.Function.apply under
    torch.func's transforms (which need its dispatch to ``setup_context``
    and ``vmap``) and for their tensors, directly otherwise."""
    if torch._C._are_functorch_transforms_active() or torch._C._functorch.is_functorch_wrapped_tensor(args[0]):
        return function.apply(*args)
    return function._c_apply(*args)


def _batch_first(x, x_dim, batch_size):
    """x with its vmap batch axis first (an unbatched x expanded to one)."""
    return x.expand(batch_size, *x.shape) if x_dim is None else x.movedim(x_dim, 0)


class BatchedMask(NamedTuple):
    """The packed mask of a draw under vmap, which covers the whole batch:
    its words and its noise shape, batch axis first (the mask of the
    physical tensor vmap works on, not of one sample). Backward passes it
    back down to the same vmap level, where it applies to the physical
    gradient."""
    words: np.ndarray
    noise_shape: list


class DropoutFunction(torch.autograd.Function):
    """(y, words): y = x * D / keep_prob, D drawn from ``source``
    (``_keys.position``), words its packed bits."""

    @staticmethod
    def forward(x, keep_prob, noise_shape, source):
        return _kernels.dropout_forward(x, keep_prob, noise_shape, source)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, ctx.keep_prob, ctx.noise_shape, _ = inputs
        ctx.words = output[1]

    @staticmethod
    def backward(ctx, grad_y, _):
        return mask_grad(grad_y, ctx.words, ctx.keep_prob, ctx.noise_shape), None, None, None

    @staticmethod
    def jvp(ctx, x_tangent, *_):
        # forward mode (torch.func.jvp, jacfwd, hessian): linear in x, the same mask
        return mask_grad(x_tangent, ctx.words, ctx.keep_prob, ctx.noise_shape), None

    @staticmethod
    def vmap(info, in_dims, x, keep_prob, noise_shape, source):
        # As torch's random ops: an error by default (a key drawn from torch
        # raised torch's error at the draw; a seed or Generator raises it
        # here); "same" shares one mask over the batch, "different" draws
        # one per batch element. A key drawn per sample (batched) gives its
        # first sample's key to the mask of the whole batch, which differs
        # from sample to sample.
        if info.randomness == "error":
            raise RuntimeError(VMAP_RANDOMNESS_ERROR)
        if in_dims[3] is not None:
            source = source.select(in_dims[3], 0)
        x_dim = in_dims[0]
        if x_dim is None and info.randomness == "same":
            return DropoutFunction.apply(x, keep_prob, noise_shape, source), (None, None)
        x = _batch_first(x, x_dim, info.batch_size)
        batch = 1 if info.randomness == "same" else info.batch_size
        noise = [batch, *(noise_shape or x.shape[1:])]
        # the kernels' fast path when the mask is x's own shape
        y, words = DropoutFunction.apply(x, keep_prob, [] if list(x.shape) == noise else noise, source)
        if type(words) is not BatchedMask:    # else drawn at an outer vmap level, in its terms
            words = BatchedMask(words, noise)
        return (y, words), (0, None)


class ApplyMaskFunction(torch.autograd.Function):
    """grad * D / keep_prob for packed words; linear, so its own backward is
    the same apply (double backward works)."""

    @staticmethod
    def forward(grad, words, keep_prob, noise_shape):
        return _kernels.apply_mask(grad, words, keep_prob, noise_shape)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, ctx.words, ctx.keep_prob, ctx.noise_shape = inputs

    @staticmethod
    def backward(ctx, grad_out):
        return mask_grad(grad_out, ctx.words, ctx.keep_prob, ctx.noise_shape), None, None, None

    @staticmethod
    def jvp(ctx, grad_tangent, *_):
        return mask_grad(grad_tangent, ctx.words, ctx.keep_prob, ctx.noise_shape)

    @staticmethod
    def vmap(info, in_dims, grad, words, keep_prob, noise_shape):
        grad = _batch_first(grad, in_dims[0], info.batch_size)
        if type(words) is BatchedMask and len(words.noise_shape) == grad.dim():
            # a mask drawn under this vmap level: one per batch element (or shared)
            words, noise = words.words, words.noise_shape
        else:
            # a mask drawn outside (or at an outer level): the same for every batch element
            noise = [1, *(noise_shape or grad.shape[1:])]
        return ApplyMaskFunction.apply(grad, words, keep_prob, noise), 0


def transformed():
    """True under torch.func's transforms or inside a forward-mode AD level,
    where a call must go through the Functions (their vmap and jvp rules)
    whether or not its input requires grad."""
    return torch._C._are_functorch_transforms_active() or _forward_ad._current_level >= 0


def mask_grad(grad, words, keep_prob, noise_shape):
    """The backward (and forward-mode) multiply grad * D / keep_prob: a
    recorded Function when autograd records it (grad mode is on inside
    backward only under create_graph), under torch.func's transforms and
    inside a forward-mode AD level (a tangent may carry one of its own);
    the bare kernel otherwise."""
    if torch.is_grad_enabled() or transformed():
        return apply(ApplyMaskFunction, grad, words, keep_prob, noise_shape)
    return _kernels.apply_mask(grad, words, keep_prob, noise_shape)


class DropoutLinearFunction(torch.autograd.Function):
    """(out, words): out = (x * D / keep_prob) @ weight.T + bias
    (``_kernels.linear_forward``: cydrop's mask pass, torch's GEMM). Saves x
    and the weight (save_for_backward: torch refuses the backward if either
    changed in place meanwhile) and keeps the packed mask on ``ctx``, never
    the masked input. Twice differentiable: with the mask fixed, the layer
    is linear in x and in the weight, and under create_graph its backward is
    built from differentiable pieces. Not for torch.func's transforms
    (``functional`` runs dropout then ``F.linear`` under them)."""

    @staticmethod
    def forward(x, weight, bias, keep_prob, source):
        return _kernels.linear_forward(x, weight, bias, keep_prob, source)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, _, ctx.keep_prob, _ = inputs
        ctx.words = output[1]
        ctx.save_for_backward(x, weight)

    @staticmethod
    def backward(ctx, grad_out, _):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        if torch.is_grad_enabled():
            dx, dW, db = _linear_backward_recorded(grad_out, x, weight, ctx.words, ctx.keep_prob,
                                                   need_x, need_w, need_b)
        else:
            dx, dW, db = _kernels.linear_backward(grad_out, x, weight, ctx.words, ctx.keep_prob,
                                                  (need_x, need_w, need_b))
        return dx, dW, db, None, None


def _linear_backward_recorded(grad_out, x, weight, words, keep_prob, need_x, need_w, need_b):
    """DropoutLinear's backward under create_graph, from ops autograd
    records: x_tilde = x * D / keep_prob (the mask apply, linear in x),
    dW = grad_out^T x_tilde, db = sum_rows grad_out, dx = (grad_out weight) * D / keep_prob."""
    dW = grad_out.t().mm(mask_grad(x, words, keep_prob, [])) if need_w else None
    dx = mask_grad(grad_out.mm(weight), words, keep_prob, []) if need_x else None
    return dx, dW, grad_out.sum(0) if need_b else None


for _function in (DropoutFunction, ApplyMaskFunction, DropoutLinearFunction):
    _function._c_apply = _c_apply(_function)
