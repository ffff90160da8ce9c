"""Drop-in replacements for torch.nn's dropout modules, and DropoutLinear.

Each is a subclass of its torch.nn namesake (same constructor, attributes,
repr and ``isinstance``) whose forward is one call to its ``functional``
namesake, as torch.nn's are: ``p`` is checked there on every call, and each
call draws its mask's key from torch's default generator (``_keys``), as
torch's dropout draws its mask. Building a module draws nothing.
"""
import torch
import torch.nn.functional as F
from torch import nn

from . import _eager, _kernels, _ops
from . import functional as cf

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "DropoutLinear"]


class _CydropDropout:
    """What the four dropout modules share: p checked when built too (NaN
    refused, unlike torch)."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__(cf.check_p(p), inplace)


class Dropout(_CydropDropout, nn.Dropout):
    """``torch.nn.Dropout`` on cydrop's kernels: zeroes each element with
    probability ``p`` in training and scales the others by ``1 / (1 - p)``;
    the identity in ``eval()``. Each call draws its mask's key from torch's
    default generator (see ``functional.dropout``).

    Parameters
    ----------
    p : float in [0, 1], default 0.5
        Probability of dropping an element (PyTorch's convention;
        ``keep_prob = 1 - p``).
    inplace : bool, default False

    Raises
    ------
    ValueError
        ``p`` not a number in [0, 1] (NaN included, which torch lets through).

    Examples
    --------
    >>> import torch, cydrop.torch as ct
    >>> m = ct.Dropout(p=0.2)
    >>> m(torch.ones(4, 5)).shape
    torch.Size([4, 5])
    """

    def forward(self, input):
        return cf.dropout(input, self.p, self.training, self.inplace)


class Dropout1d(_CydropDropout, nn.Dropout1d):
    """``torch.nn.Dropout1d`` on cydrop's kernels: zeroes whole channels of
    (N, C, L) or (C, L) inputs, one mask bit per channel.

    Parameters
    ----------
    p : float in [0, 1], default 0.5
        Probability of dropping a channel.
    inplace : bool, default False

    Raises
    ------
    ValueError
        ``p`` not a number in [0, 1].

    Examples
    --------
    >>> import torch, cydrop.torch as ct
    >>> x = torch.ones(4, 8, 16)
    >>> y = ct.Dropout1d(p=0.5)(x)
    >>> bool(((y == 0) | (y == 2)).all() and (y.flatten(2).std(dim=2) == 0).all())   # whole channels
    True
    """

    def forward(self, input):
        return cf.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(_CydropDropout, nn.Dropout2d):
    """``torch.nn.Dropout2d`` on cydrop's kernels: zeroes whole channels of
    (N, C, H, W) inputs (3-D inputs go to torch, which treats them as
    (N, C, L) with a warning).

    Parameters
    ----------
    p : float in [0, 1], default 0.5
        Probability of dropping a channel.
    inplace : bool, default False

    Raises
    ------
    ValueError
        ``p`` not a number in [0, 1].

    Examples
    --------
    >>> import torch, cydrop.torch as ct
    >>> x = torch.ones(4, 8, 5, 5)
    >>> y = ct.Dropout2d(p=0.5)(x)
    >>> bool(((y == 0) | (y == 2)).all() and (y.flatten(2).std(dim=2) == 0).all())   # whole channels
    True
    """

    def forward(self, input):
        return cf.dropout2d(input, self.p, self.training, self.inplace)


class Dropout3d(_CydropDropout, nn.Dropout3d):
    """``torch.nn.Dropout3d`` on cydrop's kernels: zeroes whole channels of
    (N, C, D, H, W) or (C, D, H, W) inputs.

    Parameters
    ----------
    p : float in [0, 1], default 0.5
        Probability of dropping a channel.
    inplace : bool, default False

    Raises
    ------
    ValueError
        ``p`` not a number in [0, 1].

    Examples
    --------
    >>> import torch, cydrop.torch as ct
    >>> x = torch.ones(2, 8, 3, 4, 4)
    >>> y = ct.Dropout3d(p=0.5)(x)
    >>> bool(((y == 0) | (y == 2)).all() and (y.flatten(2).std(dim=2) == 0).all())   # whole channels
    True
    """

    def forward(self, input):
        return cf.dropout3d(input, self.p, self.training, self.inplace)


class DropoutLinear(nn.Linear):
    """``y = dropout(x, p) @ weight.T + bias``: dropout on the inputs of a linear layer.

    A subclass of ``torch.nn.Linear``: the same parameters (``weight``
    (out_features, in_features), ``bias`` (out_features,)), the same
    initialisation (the same draws from torch's generator, and no other) and
    the same ``state_dict``, so weights load both ways. Inputs
    may have leading batch dimensions, ``(*, in_features)``.

    Forward draws the mask in one pass of cydrop's kernels (scaling as it
    applies it) and multiplies with torch's GEMM (``F.linear``, MKL on torch's
    threads, as nn.Linear). Backward recomputes ``x_tilde = x * D / (1 - p)``
    from the packed mask and gives ``dW = dy^T x_tilde``, ``db = sum dy``,
    ``dx = (dy W) * D / (1 - p)``. Autograd keeps x, the weight (references)
    and the packed mask, one bit per input element, never the masked input.
    Gradients are computed only for the tensors that require them. Twice
    differentiable (the mask fixed, the layer is linear in x and W: a
    gradient penalty gets the weight's share too). Under ``torch.compile``
    the same code runs as the custom op ``cydrop::dropout_linear``. In eval
    mode (or p = 0 or 1), for tensors cydrop cannot compute (see the package
    docstring), under autocast, under torch.func's transforms and
    forward-mode AD it is dropout then ``F.linear`` (with the same mask).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    p : float in [0, 1], default 0.5
        Probability of dropping an input element.
    device, dtype
        As for ``torch.nn.Linear``.

    Raises
    ------
    ValueError
        ``p`` not a number in [0, 1].

    Examples
    --------
    >>> import torch, cydrop.torch as ct
    >>> layer = ct.DropoutLinear(20, 5, p=0.3)
    >>> layer(torch.randn(8, 20)).shape
    torch.Size([8, 5])
    >>> plain = torch.nn.Linear(20, 5)
    >>> plain.load_state_dict(layer.state_dict())   # the same parameters as nn.Linear
    <All keys matched successfully>
    """

    def __init__(self, in_features, out_features, bias=True, p=0.5, device=None, dtype=None):
        p = cf.check_p(p)
        super().__init__(in_features, out_features, bias, device, dtype)
        self.p = p

    def forward(self, input):
        p = cf.check_p(self.p)
        if _kernels.can_run(input):
            return _dropout_linear(input, self.weight, self.bias, p, self.training)
        return F.linear(F.dropout(input, p, self.training), self.weight, self.bias)

    def extra_repr(self):
        return f"{super().extra_repr()}, p={self.p}"


def _dropout_linear(x, weight, bias, p, training):
    """DropoutLinear's forward, x (*, in_features) a tensor cydrop can run:
    (x * D / (1 - p)) @ weight.T + bias, cydrop's mask pass and torch's GEMM
    (eager: ``_eager.DropoutLinearFunction``; under torch.compile: the
    custom op ``cydrop::dropout_linear``). Dropout then ``F.linear`` where
    that is what torch would compute: without dropout to do, with a weight
    cydrop cannot read (another dtype or device), under autocast (F.linear
    casts its arguments), under torch.func's transforms and forward-mode AD;
    a 0-d x gets F.linear's error."""
    if x.dim() == 0:
        return F.linear(x, weight, bias)
    if not training or p == 0.0 or p == 1.0 or weight.dtype != x.dtype or not weight.is_cpu \
            or torch.is_autocast_enabled("cpu") or _eager.transformed():
        return F.linear(cf.dropout(x, p, training), weight, bias)
    batched = x.dim() != 2
    x2 = (x.reshape(-1, x.shape[-1]) if batched else x).contiguous()
    if torch.compiler.is_compiling():
        out, _ = _ops.dropout_linear_op(x2, weight, bias, 1.0 - p, _ops.compiled_position(None, x2, x2.numel()))
    elif torch.is_grad_enabled():
        out, _ = _eager.apply(_eager.DropoutLinearFunction, x2, weight, bias, 1.0 - p, None)
    else:                                   # inference (MC dropout): no autograd node
        out, _ = _kernels.linear_forward(x2, weight, bias, 1.0 - p, None)
    return out.reshape(*x.shape[:-1], out.shape[-1]) if batched else out
