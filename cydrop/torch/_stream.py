"""Where the masks of cydrop.torch come from: keys derived from torch's
default generator, so that ``torch.manual_seed(s)`` makes a program draw the
same masks again, on any thread count, CPU or OS.

A module's stream is an int64 tensor ``[key, block]``: the key fixed when
the module is built, the block counter advanced by each draw (by
``ceil(mask elements / 64)``). It is a plain tensor attribute, not a buffer:
it stays out of ``state_dict`` (weights load both ways with torch's
modules) and DistributedDataParallel does not broadcast it, so each rank
keeps its own key. Eager calls read and advance it through a NumPy view of
the same memory (``stream_array``), compiled ones through a traceable
in-place add.
"""
from typing import NamedTuple

import torch

from .. import _dropout, _generator
from .._mask import n_words

_U64 = 1 << 64
_GAMMA = 0x9E3779B97F4A7C15   # rng.h's CYD_GAMMA: spreads ranks over the seed space


def _rank():
    """This process's rank under torch.distributed, 0 when it is not initialized."""
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def signed(value):
    """A 64-bit unsigned int as the int64 a tensor stores."""
    return value - _U64 if value >= 1 << 63 else value


def draw_seed():
    """A 63-bit seed from torch's default CPU generator (one draw)."""
    return int(torch.randint(0, (1 << 63) - 1, (), dtype=torch.int64).item())


class _ArrayView:
    """A stream tensor and its NumPy view, which an eager call reads and
    advances, so that a call does not wrap the tensor in a new array each
    time. Kept with the tensor it views, so a module whose ``_stream`` was
    replaced makes a new one; never copied with its module
    (``copy.deepcopy`` and pickle give None), since a copy of the array
    would no longer view the copied module's tensor."""

    __slots__ = ("tensor", "array")

    def __init__(self, tensor):
        self.tensor, self.array = tensor, tensor.numpy()

    def __deepcopy__(self, memo):
        return None

    def __reduce__(self):
        return type(None), ()


def stream_array(module):
    """The NumPy view of ``module._stream`` (int64 [key, block]), shared with
    the tensor: writes through either are seen by both, eager or compiled."""
    view = module.__dict__.get("_stream_view")
    stream = module._stream
    if view is None or view.tensor is not stream:
        view = module.__dict__["_stream_view"] = _ArrayView(stream)
    return view.array


class Drawn(NamedTuple):
    """A stream position read already (a custom op's position tensor): its
    own type, so no user-given seed can pass for one."""
    key: int
    block: int


def position(source, n_mask):
    """(key, first block) of an eager draw of n_mask elements from ``source``:
    a module (its stream, advanced here), None (a fresh key from torch's
    default generator), an int seed, a cydrop.Generator (advanced), or a
    ``Drawn`` position (the custom op's position tensor, read)."""
    if isinstance(source, torch.nn.Module):
        stream = stream_array(source)
        key, block = stream.tolist()
        stream[1] = block + n_words(n_mask)     # a block of the stream per mask word
        return key % _U64, block
    if source is None:
        return _generator.stream_key(_generator.Generator(draw_seed())), 0
    if type(source) is Drawn:
        return source
    return _generator.reserve(_generator.as_generator(source), n_mask)


def module_stream():
    """A new module's stream: key = mix64(s + rank * GAMMA + GAMMA), s drawn
    from torch's default generator now (one draw per module, in construction
    order), rank the torch.distributed rank at this moment (0 outside it)."""
    seed = (draw_seed() + _rank() * _GAMMA) % _U64
    return torch.tensor([signed(int(_dropout.key_from_seed(seed))), 0], dtype=torch.int64)
