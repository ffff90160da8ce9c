"""Where the masks of cydrop.torch come from: a key per call, drawn from
torch's default CPU generator, as torch's own dropout draws its mask.

A call without a seed (every module's call, and ``functional.dropout``'s
default) takes the next draw ``s = torch.randint(0, 2**63 - 1, ())`` of
torch's default generator and draws its mask from block 0 of the stream
keyed ``key = mix64(s + rank * GAMMA + GAMMA)``, ``rank`` the
torch.distributed rank (0 outside it). So:

- ``torch.manual_seed``, ``torch.random.fork_rng`` and
  ``torch.get_rng_state``/``set_rng_state`` replay cydrop's masks as they
  replay torch's, and activation checkpointing, which restores torch's RNG
  state to recompute a forward pass, recomputes the same masks;
- building a module draws nothing, so it does not shift the weights of the
  layers built after it;
- ranks seeded alike draw different masks;
- the claim is one draw from torch's generator, which torch serialises:
  threads calling one module never share a key;
- under torch.func's vmap the draw is torch's own random op, so vmap's
  ``randomness=`` applies to it as to torch's dropout.

A mask bit is a pure function of (key, position), so the masks never depend
on the thread count, the CPU or the OS.
"""
import threading
from typing import NamedTuple

import torch

from .. import _dropout, _generator

_U64 = 1 << 64
_HIGH = (1 << 63) - 1         # randint's exclusive bound: s in [0, 2**63 - 1)
_GAMMA = 0x9E3779B97F4A7C15   # rng.h's CYD_GAMMA: spreads ranks over the seed space


_DIST = torch.distributed if torch.distributed.is_available() else None


def _rank():
    """This process's rank under torch.distributed, 0 when it is not initialized."""
    return _DIST.get_rank() if _DIST is not None and _DIST.is_initialized() else 0


def signed(value):
    """A 64-bit unsigned int as the int64 a tensor stores."""
    return value - _U64 if value >= 1 << 63 else value


class _Draw(threading.local):
    """A 0-d int64 tensor and its NumPy view, one pair per thread: random_()
    writes the draw in place and the view reads it back, without a new
    tensor and ``item()`` per call. Per thread, since another thread's draw
    into a shared tensor could land between this thread's draw and its read."""

    def __init__(self):
        # a normal tensor even when a thread's first draw is under
        # inference_mode (an inference tensor could not be written outside it)
        with torch.inference_mode(False):
            self.tensor = torch.empty((), dtype=torch.int64, device="cpu")
        self.array = self.tensor.numpy()


_draw = _Draw()


def seed_tensor():
    """s, the next draw from torch's default CPU generator, as a new 0-d
    int64 tensor: ``torch.randint(0, 2**63 - 1, ())``. The form for
    torch.func's transforms, where vmap sees a random op in it (an error
    under ``randomness="error"``, one draw per sample under ``"different"``),
    as in torch's dropout."""
    return torch.randint(0, _HIGH, (), dtype=torch.int64, device="cpu")


def key_of(s):
    """The key of a call's mask: mix64(s + rank * GAMMA + GAMMA)."""
    return int(_dropout.key_from_seed((s + _rank() * _GAMMA) % _U64))


def call_key():
    """The key of a call without a seed, drawn now: key_of(s) for the same
    draw s as seed_tensor()'s (``random_(high)`` makes it in place, without
    a new tensor), in one function: it runs once per call, between the GEMMs
    of a training step, where every Python frame costs."""
    _draw.tensor.random_(_HIGH)
    return int(_dropout.key_from_seed((int(_draw.array) + _rank() * _GAMMA) % _U64))


class Drawn(NamedTuple):
    """A stream position read already (a custom op's position tensor): its
    own type, so no user-given seed can pass for one."""
    key: int
    block: int


def position(source, n_mask):
    """(key, first block) of an eager draw of n_mask elements from ``source``:
    None (a key drawn from torch's generator now, ``call_key``), a
    ``seed_tensor()`` drawn already, an int seed, a cydrop.Generator
    (advanced under its lock), or a ``Drawn`` position (the custom op's
    position tensor, read)."""
    if source is None:
        return call_key(), 0
    if type(source) is Drawn:
        return source
    if isinstance(source, torch.Tensor):
        return key_of(int(source)), 0
    return _generator.reserve(_generator.as_generator(source), n_mask)
