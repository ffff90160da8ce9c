"""The eager-mode path of concrete dropout: autograd Functions that call
``_concrete_kernels`` directly (under torch.compile the same kernels run as
the custom ops of ``_concrete_ops``, with the same results bit for bit).

Between forward and backward each Function keeps the stream position (two
ints on ``ctx``) and references to tensors autograd holds anyway (the input
x, the weight): no mask, relaxed or packed. The backward pass draws the
noise again from the position. Neither Function is twice differentiable
(``once_differentiable``: an error, not a wrong second derivative), and
neither is for torch.func's transforms or forward-mode AD: there the
modules take the noise of the same position from ``ConcreteNoiseFunction``
and compute the pass in torch's operations, which the transforms batch and
differentiate (``concrete._concrete``).
"""
import functools

import numpy as np
import torch

from .. import _concrete
from . import _concrete_kernels as kernels
from ._eager import VMAP_RANDOMNESS_ERROR
from ._keys import position


def value(p_logit):
    """The float value of the one-element tensor p_logit (detached: a
    Parameter's value is read without autograd's warning)."""
    return p_logit.detach().item()


def checked_value(p_logit, temperature, x):
    """``value(p_logit)``, with the kernels' limits for x's dtype on it and on
    the temperature checked before the caller draws a position: a refused
    call leaves torch's generator and a cydrop.Generator where they were."""
    a = value(p_logit)
    _concrete.scalars(a, temperature, "float32" if x.dtype == torch.float32 else "float64")
    return a


def p_logit_grad(dp, dtype, shape):
    """The float gradient dp as a tensor of p_logit's dtype and shape."""
    return torch.tensor(dp, dtype=dtype).reshape(shape)


class SecondDerivativeRefused(torch.autograd.Function):
    """``apply(n, *gradients, *inputs)``: copies of the n gradients, on a
    node that raises when a second backward reaches it."""

    @staticmethod
    def forward(ctx, n, *tensors):
        return tuple(t.clone() for t in tensors[:n])

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError("cydrop's concrete dropout is not twice differentiable in eager mode: take higher "
                           "derivatives under torch.func's transforms (torch.func.grad of torch.func.grad), "
                           "where it runs in torch's operations")


def once_differentiable(depends_on):
    """torch's ``once_differentiable`` for a backward whose gradients depend
    on the Function's inputs (``depends_on(ctx)``, a tuple of tensors or
    None), not only on the incoming gradients. torch's decorator puts its
    refusing node on the gradients only when an incoming gradient requires
    grad; dx = grad * (1 - z) / (1 - p) depends on p_logit whatever grad is,
    and without the node a gradient penalty would take its second
    derivative as 0."""
    def decorate(backward):
        @functools.wraps(backward)
        def wrapper(ctx, *grads):
            with torch.no_grad():
                outputs = backward(ctx, *grads)
            if not torch.is_grad_enabled():        # no create_graph: nothing will differentiate them
                return outputs
            inputs = [t for t in (*grads, *depends_on(ctx)) if isinstance(t, torch.Tensor) and t.requires_grad]
            given = [t for t in outputs if t is not None]
            if not inputs or not given:
                return outputs
            refused = iter(SecondDerivativeRefused.apply(len(given), *given, *inputs))
            return tuple(None if t is None else next(refused) for t in outputs)
        return wrapper
    return decorate


class ConcreteDropoutFunction(torch.autograd.Function):
    """y = x * (1 - z) / (1 - p), the noise drawn from ``source``
    (``_keys.position``: None for a key from torch's generator, a seed, a
    Generator), one
    noise value per run of ``run`` elements. Saves x only when p_logit
    needs a gradient (dx alone needs the position only)."""

    @staticmethod
    def forward(ctx, x, p_logit, temperature, run, source):
        ctx.a, ctx.temperature, ctx.run = checked_value(p_logit, temperature, x), temperature, run
        ctx.key, ctx.block = position(source, x.numel() // run)
        ctx.p_dtype, ctx.p_shape = p_logit.dtype, p_logit.shape
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None)
        # a reference for the second-derivative check, not a saved value
        ctx.p_logit = p_logit if ctx.needs_input_grad[1] else None
        return kernels.forward(x, ctx.a, temperature, run, ctx.key, ctx.block)

    @staticmethod
    @once_differentiable(lambda ctx: (*ctx.saved_tensors, ctx.p_logit))   # dx on p_logit; dp_logit on x and p_logit
    def backward(ctx, grad):
        need_dx, need_dp = ctx.needs_input_grad[:2]
        dp = None
        if need_dp:
            (x,) = ctx.saved_tensors
            dx, dp_value = kernels.backward(grad, x, ctx.a, ctx.temperature, ctx.run, ctx.key, ctx.block, need_dx)
            dp = p_logit_grad(dp_value, ctx.p_dtype, ctx.p_shape)
        else:
            # dx = grad * (1 - z) / (1 - p): the forward pass applied to grad
            dx = kernels.forward(grad, ctx.a, ctx.temperature, ctx.run, ctx.key, ctx.block) if need_dx else None
        return dx, dp, None, None, None


class ConcreteLinearFunction(torch.autograd.Function):
    """out = concrete(x) @ weight.T + bias (``_concrete_kernels.linear_forward``).
    Saves x and the weight (save_for_backward: torch refuses the backward if
    either was changed in place meanwhile); never the relaxed input."""

    @staticmethod
    def forward(ctx, x, weight, bias, p_logit, temperature, source):
        ctx.a, ctx.temperature = checked_value(p_logit, temperature, x), temperature
        ctx.key, ctx.block = position(source, x.numel())
        ctx.p_dtype, ctx.p_shape = p_logit.dtype, p_logit.shape
        ctx.save_for_backward(x, weight)
        ctx.p_logit = p_logit                       # a reference for the second-derivative check
        return kernels.linear_forward(x, weight, bias, ctx.a, temperature, ctx.key, ctx.block)

    @staticmethod
    @once_differentiable(lambda ctx: (*ctx.saved_tensors, ctx.p_logit))   # dx on W and p_logit, dW on x and p_logit
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad[:4]
        dx, dW, db, dp = kernels.linear_backward(grad_out, x, weight, ctx.a, ctx.temperature, ctx.key, ctx.block,
                                                 needs)
        dp = p_logit_grad(dp, ctx.p_dtype, ctx.p_shape) if needs[3] else None
        return dx, dW, db, dp, None, None


class ConcreteNoiseFunction(torch.autograd.Function):
    """The logistic noise ``log u - log(1 - u)`` (a 1-D tensor of x's dtype,
    ``x.numel() // run`` values) of the pass at the position drawn from
    ``source``: the u of the kernels' pass, so a transformed call relaxes
    the mask an eager call at the same position relaxes. x gives the size
    only; the noise is a constant (no gradient, no tangent). p_logit and the
    temperature are read only to refuse what the kernels refuse (a p_logit
    whose 1 / (1 - p) overflows: NaN in torch's operations), as an eager
    call would.

    Under vmap it follows ``randomness=`` as torch's random ops do: "error"
    raises torch's message (a key from torch's generator raised it at the
    draw already, ``_keys.seed_tensor``), "same" shares one draw over the
    batch, "different" draws one per batch element, from the first batch
    element's key when the key was drawn per element (as
    ``_eager.DropoutFunction``)."""

    @staticmethod
    def forward(x, p_logit, temperature, source, run):
        dtype = "float32" if x.dtype == torch.float32 else "float64"
        for a in p_logit.reshape(-1).tolist():      # several under vmap of a batched p_logit
            _concrete.scalars(a, temperature, dtype)
        n_noise = x.numel() // run
        key, block = position(source, n_noise)
        # at p_logit = 0 and temperature 1 the pass's z is u and w is 1 - u
        w, z = _concrete.noise(key, block, n_noise, 0.0, 1.0, "float64")
        return torch.from_numpy(np.log(z) - np.log(w)).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mark_non_differentiable(output)

    @staticmethod
    def backward(ctx, grad):
        return None, None, None, None, None

    @staticmethod
    def jvp(ctx, *tangents):
        return None

    @staticmethod
    def vmap(info, in_dims, x, p_logit, temperature, source, run):
        if info.randomness == "error":
            raise RuntimeError(VMAP_RANDOMNESS_ERROR)
        if in_dims[3] is not None:
            source = source.select(in_dims[3], 0)
        x_dim = in_dims[0]
        if info.randomness == "same":
            sample = x if x_dim is None else x.select(x_dim, 0)
            return ConcreteNoiseFunction.apply(sample, p_logit, temperature, source, run), None
        # one pass over the batch, batch axis first: element j of sample b
        # takes noise value b * n_noise + j // run
        x = x.expand(info.batch_size, *x.shape) if x_dim is None else x.movedim(x_dim, 0)
        return ConcreteNoiseFunction.apply(x, p_logit, temperature, source, run).reshape(info.batch_size, -1), 0
