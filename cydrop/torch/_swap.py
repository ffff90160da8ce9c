"""replace_dropout and mc_dropout: cydrop's modules in an existing model."""
import contextlib

from torch import nn

from .concrete import ConcreteDropoutLinear
from .modules import Dropout, Dropout1d, Dropout2d, Dropout3d, DropoutLinear

__all__ = ["mc_dropout", "replace_dropout"]

# exact types: subclasses (cydrop's own, AlphaDropout) have other semantics
_REPLACEMENTS = {nn.Dropout: Dropout, nn.Dropout1d: Dropout1d, nn.Dropout2d: Dropout2d,
                 nn.Dropout3d: Dropout3d}


def _replacement(module):
    """cydrop's module in place of torch's ``module``: p, inplace and the
    training flag, and its hooks (forward, pre-forward, backward, state_dict:
    every ``_*hook*`` attribute torch.nn.Module keeps). The hook dicts are
    the old module's own objects, so a handle the user holds still removes
    its hook."""
    new = _REPLACEMENTS[type(module)](module.p, module.inplace)
    new.train(module.training)
    for name, value in vars(module).items():
        if "hook" in name:
            setattr(new, name, value)
    return new


def replace_dropout(model):
    """Swap every ``nn.Dropout``, ``Dropout1d``, ``Dropout2d`` and ``Dropout3d``
    in ``model`` for cydrop's, keeping ``p``, ``inplace`` and the training flag.

    Parameters
    ----------
    model : torch.nn.Module
        Changed in place (a model that *is* a dropout module cannot be
        changed in place: use the returned one). A module registered in
        several places (the same object twice in a Sequential, or shared by
        two submodules) is replaced by one new module in all of them.

    Returns
    -------
    torch.nn.Module
        ``model``, or its replacement when it is itself a dropout module.
        Parameters, buffers and ``state_dict`` are unchanged (dropout
        modules hold none); hooks registered on a replaced module are
        carried over to its replacement. ``nn.AlphaDropout`` and
        ``FeatureAlphaDropout`` are kept.

    Raises
    ------
    TypeError
        ``model`` not a ``torch.nn.Module``.

    Examples
    --------
    >>> from torch import nn
    >>> import cydrop.torch as ct
    >>> net = ct.replace_dropout(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.3)))
    >>> type(net[1]).__module__, net[1].p
    ('cydrop.torch.modules', 0.3)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if type(model) in _REPLACEMENTS:
        return _replacement(model)
    replaced = {}     # id(torch's module) -> (it, its replacement), made once
    for parent in list(model.modules()):
        # _modules, not named_children(), which yields a child registered twice in one parent once
        for name, child in list(parent._modules.items()):
            if type(child) in _REPLACEMENTS:
                if id(child) not in replaced:
                    replaced[id(child)] = (child, _replacement(child))
                setattr(parent, name, replaced[id(child)][1])
    return model


# ConcreteDropout and its 1d/2d/3d forms are _DropoutNd subclasses
_DROPOUT_TYPES = (nn.modules.dropout._DropoutNd, DropoutLinear, ConcreteDropoutLinear)


@contextlib.contextmanager
def mc_dropout(model):
    """Monte Carlo dropout at inference: inside the block, every dropout
    module (torch's and cydrop's, DropoutLinear and the Concrete modules) is in training mode and
    everything else in eval mode (BatchNorm uses and keeps its running
    statistics). Each module's training flag is restored on exit.

    Parameters
    ----------
    model : torch.nn.Module

    Yields
    ------
    torch.nn.Module
        ``model`` itself, in MC dropout mode until the block ends.

    Raises
    ------
    TypeError
        ``model`` not a ``torch.nn.Module``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> import cydrop.torch as ct
    >>> net = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), ct.Dropout(0.5), nn.Linear(8, 1))
    >>> with ct.mc_dropout(net), torch.no_grad():
    ...     samples = torch.stack([net(torch.ones(5, 3)) for _ in range(20)])
    >>> net.training
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    flags = [(m, m.training) for m in model.modules()]
    try:
        for m in model.modules():
            m.training = isinstance(m, _DROPOUT_TYPES)
        yield model
    finally:
        for m, flag in flags:
            m.training = flag
