"""cydrop's concrete dropout kernels (``src/_concrete.pyx``) on torch tensors.

Every function takes CPU float32/float64 tensors (the callers fall back to
torch's own operations for anything else), crosses into NumPy through
``_kernels.as_array`` (the tensor's memory, no copy unless it is strided)
and returns new tensors laid out as torch's element-wise ops lay out theirs
(``_kernels.like``: a channels_last or transposed input gives an output
laid out alike). The noise is over the logical (C-order) elements,
whatever the layout. ``p_logit`` arrives as a Python float and the
stream position as ``(key, block)``: a pass over n noise values takes
blocks ``block .. block + ceil(n / 64) - 1``, the blocks
``_keys.position(source, n)`` draws or reserves. ``run`` is the number of
consecutive elements that share one noise value (1: element-wise).
"""
import numpy as np
import torch
import torch.nn.functional as F

from .. import _concrete
from ._kernels import as_array, like
from ._threads import kernel_call


def forward(x, p_logit, temperature, run, key, block):
    """y = x * (1 - z) / (1 - p), a new tensor of x's shape, laid out like x."""
    x_np = as_array(x)
    with kernel_call("concrete_forward", x_np) as n_threads:
        y = torch.from_numpy(_concrete.forward(x_np, None, key, block, p_logit, temperature, run, n_threads))
    return y if x.is_contiguous() else like(x, y)


def backward(grad, x, p_logit, temperature, run, key, block, need_dx):
    """(dx, dp_logit) of ``forward``: dx = grad * (1 - z) / (1 - p) (None
    unless need_dx; laid out like grad) and dp_logit = sum grad * y * (p - z / t), a float."""
    g_np = as_array(grad)
    with kernel_call("concrete_backward", g_np) as n_threads:
        dx, _, dp = _concrete.backward(g_np, as_array(x), None, None, key, block, p_logit, temperature, run,
                                       need_dx, False, n_threads)
    if not need_dx:
        return None, dp
    dx = torch.from_numpy(dx)
    return (dx if grad.is_contiguous() else like(grad, dx)), dp


def linear_forward(x, weight, bias, p_logit, temperature, key, block):
    """out = concrete(x) @ weight.T + bias: the concrete pass, then torch's
    GEMM (F.linear). x (batch, n_in), weight (n_out, n_in), bias (n_out,) or
    None; F.linear checks the shapes and dtypes. The relaxed input is not
    kept: the backward pass makes it again from the position."""
    return F.linear(forward(x, p_logit, temperature, 1, key, block), weight, bias)


def linear_backward(grad_out, x, weight, p_logit, temperature, key, block, needs):
    """(dx, dW, db, dp_logit) of ``linear_forward``, each None (dp_logit:
    0.0) unless ``needs`` (four bools: x, weight, bias, p_logit) asks for it.

    With G = grad_out @ weight, the gradient with respect to the relaxed
    input x_tilde: one concrete backward pass gives dx = G * (1 - z) / (1 - p)
    (written into G's own memory), x_tilde again (for dW = grad_out^T x_tilde)
    and dp_logit = sum G * x_tilde * (p - z / t); db = sum_rows grad_out."""
    need_dx, need_dw, need_db, need_dp = needs
    db = grad_out.sum(0) if need_db else None
    dx = dW = x_tilde = None
    dp = 0.0
    if need_dx or need_dp:
        G = grad_out.mm(weight)                      # new and contiguous: its memory takes dx
        g_np = G.numpy()
        xt_np = np.empty_like(g_np) if need_dw else None
        with kernel_call("concrete_linear_backward", g_np) as n_threads:
            _, _, dp = _concrete.backward(g_np, as_array(x), g_np if need_dx else None, xt_np, key, block,
                                          p_logit, temperature, 1, need_dx, need_dw, n_threads)
        dx = G if need_dx else None
        x_tilde = torch.from_numpy(xt_np) if need_dw else None
    elif need_dw:
        x_tilde = forward(x, p_logit, temperature, 1, key, block)
    if need_dw:
        dW = grad_out.t().mm(x_tilde)
    return dx, dW, db, dp
