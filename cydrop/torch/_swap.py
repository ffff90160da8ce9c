"""replace_dropout and mc_dropout: cydrop's modules in an existing model."""
import contextlib

from torch import nn

from .modules import Dropout, Dropout1d, Dropout2d, Dropout3d, DropoutLinear

__all__ = ["mc_dropout", "replace_dropout"]

# exact types: subclasses (cydrop's own, AlphaDropout) have other semantics
_REPLACEMENTS = {nn.Dropout: Dropout, nn.Dropout1d: Dropout1d, nn.Dropout2d: Dropout2d,
                 nn.Dropout3d: Dropout3d}


def _replacement(module):
    new = _REPLACEMENTS[type(module)](module.p, module.inplace)
    new.train(module.training)
    return new


def replace_dropout(model):
    """Swap every ``nn.Dropout``, ``Dropout1d``, ``Dropout2d`` and ``Dropout3d``
    in ``model`` for cydrop's, keeping ``p``, ``inplace`` and the training flag.

    Parameters
    ----------
    model : torch.nn.Module
        Changed in place (a model that *is* a dropout module cannot be
        changed in place: use the returned one).

    Returns
    -------
    torch.nn.Module
        ``model``, or its replacement when it is itself a dropout module.
        Parameters, buffers and ``state_dict`` are unchanged (dropout
        modules hold none). ``nn.AlphaDropout`` and ``FeatureAlphaDropout``
        are kept.

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
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if type(child) in _REPLACEMENTS:
                setattr(parent, name, _replacement(child))
    return model


_DROPOUT_TYPES = (nn.modules.dropout._DropoutNd, DropoutLinear)


@contextlib.contextmanager
def mc_dropout(model):
    """Monte Carlo dropout at inference: inside the block, every dropout
    module (torch's and cydrop's, and DropoutLinear) is in training mode and
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
