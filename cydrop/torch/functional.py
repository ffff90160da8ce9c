"""cydrop's dropout with torch.nn.functional's signatures.

``p`` is the probability of *dropping* an element, as everywhere in
PyTorch; cydrop's NumPy API takes ``keep_prob = 1 - p``.

Each function runs cydrop's kernels on CPU float32/float64 tensors and falls
back to torch's function of the same name for everything else (CUDA, MPS,
float16, bfloat16, other dtypes, tensor subclasses, nested tensors), so a
model keeps working wherever it runs.

Masks come from torch's default generator, one draw per call (``_keys``),
so torch's RNG-state tools replay them as they replay torch's own.
"""
import numbers

import torch
import torch.nn.functional as F

from .. import _generator
from . import _eager, _kernels, _ops
from ._keys import seed_tensor

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d"]

def check_p(p):
    """p as a float in [0, 1]; ValueError naming p otherwise (NaN, strings,
    bools included). A 0-d tensor is read as its number, as torch.nn's
    dropout modules take one. Called on every forward: dropout schedules
    assign ``module.p`` after construction."""
    if type(p) is float and 0.0 <= p <= 1.0:      # the common case first: one test
        return p
    if isinstance(p, torch.Tensor) and p.dim() == 0 and p.dtype != torch.bool and not p.is_complex():
        p = p.item()
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"dropout probability p has to be a number between 0 and 1, but got {p!r}")
    return float(p)


def _check_args(p, training, seed):
    """p (check_p), training (a bool, as torch requires: None would silently
    mean eval mode) and seed (None, an int or a cydrop.Generator) of a
    public function; TypeError naming the argument. One call for the three:
    it runs on every module call."""
    if type(training) is not bool:
        raise TypeError(f"dropout(): argument 'training' must be bool, not {type(training).__name__}")
    if seed is not None and not isinstance(seed, _generator.Generator) and (
            not isinstance(seed, numbers.Integral) or isinstance(seed, bool)):
        raise TypeError(f"seed must be None, an int in [0, 2**64) or a cydrop.Generator, "
                        f"got {type(seed).__name__} {seed!r}")
    return check_p(p)


def _dropout(x, p, training, inplace, noise_shape, source):
    """The common body: x * D / (1 - p), D of noise_shape ([] for x's shape)."""
    if not training or p == 0.0:
        return x
    if p == 1.0:
        # torch's own p = 1: a product with zero (NaN and inf give NaN, as there)
        return x.mul_(0.0) if inplace else x * 0.0
    keep_prob = 1.0 - p
    if torch.compiler.is_compiling():
        position_t = _ops.compiled_position(source, x, _kernels.mask_numel(x.shape, noise_shape))
        y, _ = _ops.dropout_op(x, keep_prob, position_t, noise_shape)
        return x.copy_(y) if inplace else y
    # eager: the kernel wrapper draws the position, sized from its NumPy view of x
    if _eager.transformed():
        # the draw as a tensor op, which vmap sees: its randomness= applies
        source = seed_tensor() if source is None else source
        y, _ = _eager.apply(_eager.DropoutFunction, x, keep_prob, noise_shape, source)
        return x.copy_(y) if inplace else y
    if torch.is_grad_enabled() and x.requires_grad:
        y, _ = _eager.apply(_eager.DropoutFunction, x, keep_prob, noise_shape, source)
        return x.copy_(y) if inplace else y   # copy_ raises torch's error on a leaf
    if inplace and _kernels.writable_in_place(x):
        _kernels.dropout_forward(x, keep_prob, noise_shape, source, out=x)
        # written through a NumPy view, which torch does not see: bump the
        # version counter as torch's in-place ops do, so that autograd
        # refuses a backward that saved x before this call
        if not x.is_inference():
            torch.autograd.graph.increment_version(x)
        return x
    y, _ = _kernels.dropout_forward(x, keep_prob, noise_shape, source)
    return x.copy_(y) if inplace else y


def _channels(x, lead):
    """noise_shape of channel dropout: x's first ``lead`` axes (batch and
    channel, or channel alone when unbatched), 1 on the others."""
    return [*x.shape[:lead]] + [1] * (x.dim() - lead)


def dropout(input, p=0.5, training=True, inplace=False, *, seed=None):
    """Inverted dropout, as ``torch.nn.functional.dropout``.

    Parameters
    ----------
    input : Tensor
        Any shape. CPU float32/float64 tensors run cydrop's kernels; others
        go to ``torch.nn.functional.dropout``.
    p : float in [0, 1]
        Probability of zeroing an element (``keep_prob = 1 - p``). ``0`` is
        an exact identity (the input is returned), ``1`` gives zeros.
    training : bool
        False returns ``input`` unchanged.
    inplace : bool
        Write the result into ``input`` (torch's error for a leaf that
        requires grad).
    seed : None, int or cydrop.Generator, keyword-only
        None: a key drawn from torch's default generator at each call, as
        ``F.dropout`` draws its mask (``torch.manual_seed``, ``fork_rng``
        and ``set_rng_state`` replay it; the torch.distributed rank is mixed
        in); an int: the same mask on every call; a Generator: advanced by
        each call. Under ``torch.compile`` None draws when the graph runs
        (the same masks as eager), an int seed is a constant of the graph,
        and a Generator draws in Python at each call, a graph break
        (``fullgraph=True`` refuses it).

    Returns
    -------
    Tensor
        ``input * D / (1 - p)``, laid out like ``input`` (channels_last,
        transposed, ...), as torch's is; the mask is over the logical
        elements, whatever the layout. Backward multiplies by the same
        mask, saved packed (one bit per element).

    Raises
    ------
    ValueError
        ``p`` not a number in [0, 1] (NaN included).
    TypeError
        ``training`` not a bool; ``seed`` not None, an int or a cydrop.Generator.

    Examples
    --------
    >>> import torch
    >>> from cydrop.torch import functional as cf
    >>> y = cf.dropout(torch.ones(2, 8), p=0.5, seed=0)
    >>> sorted(set(y.flatten().tolist())) in ([0.0, 2.0], [2.0], [0.0])
    True
    """
    p = _check_args(p, training, seed)
    if not _kernels.can_run(input):
        return F.dropout(input, p, training, inplace)
    return _dropout(input, p, training, inplace, [], seed)


def _feature_dropout(input, p, training, inplace, seed, batched_dims, unbatched_dims, torch_fn):
    """Channel dropout for inputs of batched_dims (N, C, ...) or
    unbatched_dims (C, ...) dimensions; any other rank goes to torch_fn, which
    raises or warns exactly as torch does."""
    p = _check_args(p, training, seed)
    if not _kernels.can_run(input) or input.dim() not in (batched_dims, unbatched_dims):
        return torch_fn(input, p, training, inplace)
    lead = 2 if input.dim() == batched_dims else 1
    return _dropout(input, p, training, inplace, _channels(input, lead), seed)


def dropout1d(input, p=0.5, training=True, inplace=False, *, seed=None):
    """Channel dropout of (N, C, L) or unbatched (C, L) inputs, as
    ``torch.nn.functional.dropout1d``: each channel is zeroed whole with
    probability ``p``. Other ranks raise torch's RuntimeError.

    Parameters
    ----------
    input : Tensor
        (N, C, L) or (C, L); other ranks go to torch's function.
    p : float in [0, 1]
        Probability of zeroing a channel.
    training, inplace : bool
        As in :func:`dropout`.
    seed : None, int or cydrop.Generator, keyword-only
        As in :func:`dropout`.

    Returns
    -------
    Tensor
        ``input`` with each channel zeroed with probability ``p`` and the
        others scaled by ``1 / (1 - p)``; one mask bit per channel.

    Raises
    ------
    ValueError
        ``p`` not a number in [0, 1].
    TypeError
        ``training`` not a bool; ``seed`` not None, an int or a cydrop.Generator.

    Examples
    --------
    >>> import torch
    >>> from cydrop.torch import functional as cf
    >>> y = cf.dropout1d(torch.ones(4, 8, 16), p=0.5, seed=0)
    >>> bool((y.flatten(2).std(dim=2) == 0).all())   # each channel kept or dropped whole
    True
    """
    return _feature_dropout(input, p, training, inplace, seed, 3, 2, F.dropout1d)


def dropout2d(input, p=0.5, training=True, inplace=False, *, seed=None):
    """Channel dropout of (N, C, H, W) inputs, as
    ``torch.nn.functional.dropout2d``. A 3-D input goes to torch's function,
    which warns and treats it as (N, C, L), as torch does; other ranks too.

    Parameters
    ----------
    input : Tensor
        (N, C, H, W); other ranks go to torch's function.
    p : float in [0, 1]
        Probability of zeroing a channel.
    training, inplace : bool
        As in :func:`dropout`.
    seed : None, int or cydrop.Generator, keyword-only
        As in :func:`dropout`.

    Returns
    -------
    Tensor
        ``input`` with each channel zeroed with probability ``p`` and the
        others scaled by ``1 / (1 - p)``; one mask bit per channel.

    Raises
    ------
    ValueError
        ``p`` not a number in [0, 1].
    TypeError
        ``training`` not a bool; ``seed`` not None, an int or a cydrop.Generator.

    Examples
    --------
    >>> import torch
    >>> from cydrop.torch import functional as cf
    >>> y = cf.dropout2d(torch.ones(4, 8, 5, 5), p=0.5, seed=0)
    >>> bool((y.flatten(2).std(dim=2) == 0).all())   # each channel kept or dropped whole
    True
    """
    return _feature_dropout(input, p, training, inplace, seed, 4, 4, F.dropout2d)


def dropout3d(input, p=0.5, training=True, inplace=False, *, seed=None):
    """Channel dropout of (N, C, D, H, W) or unbatched (C, D, H, W) inputs, as
    ``torch.nn.functional.dropout3d``; other ranks go to torch's function
    (which warns).

    Parameters
    ----------
    input : Tensor
        (N, C, D, H, W) or (C, D, H, W); other ranks go to torch's function.
    p : float in [0, 1]
        Probability of zeroing a channel.
    training, inplace : bool
        As in :func:`dropout`.
    seed : None, int or cydrop.Generator, keyword-only
        As in :func:`dropout`.

    Returns
    -------
    Tensor
        ``input`` with each channel zeroed with probability ``p`` and the
        others scaled by ``1 / (1 - p)``; one mask bit per channel.

    Raises
    ------
    ValueError
        ``p`` not a number in [0, 1].
    TypeError
        ``training`` not a bool; ``seed`` not None, an int or a cydrop.Generator.

    Examples
    --------
    >>> import torch
    >>> from cydrop.torch import functional as cf
    >>> y = cf.dropout3d(torch.ones(2, 8, 3, 4, 4), p=0.5, seed=0)
    >>> bool((y.flatten(2).std(dim=2) == 0).all())   # each channel kept or dropped whole
    True
    """
    return _feature_dropout(input, p, training, inplace, seed, 5, 4, F.dropout3d)
