"""cydrop.Generator: the counter-based source of every dropout mask."""
import numbers
import os
import threading

import numpy as np

from . import _dropout
from ._mask import WORD, adopt_words, n_words
from ._validation import threshold_of

# Block counters stay below 2^59 so that stream word indices (block * 32 + j)
# never wrap around 2^64.
MAX_BLOCKS = 1 << 59
_STATE_NAME = "SplitMix64-bitsliced-v1"


class Generator:
    """Counter-based random source for dropout masks.

    Mask bits come from SplitMix64 (Steele, Lea & Flood, OOPSLA 2014; passes
    TestU01 BigCrush) used as a counter-based generator: the bit of element
    ``i`` of a draw is a pure function of ``(key, counter + i)``, so a seed
    gives the same masks on any number of threads, with any chunking, on any
    machine. Each draw of ``n`` elements consumes ``ceil(n / 64)`` blocks of
    counter space, so successive draws give fresh masks.

    Parameters
    ----------
    seed : int or None, default None
        A 64-bit seed (``0 <= seed < 2**64``). ``None`` draws one from the
        operating system's entropy.

    Raises
    ------
    TypeError
        ``seed`` not an int (a bool or a float is refused).
    ValueError
        ``seed`` outside [0, 2**64).

    Notes
    -----
    Thread-safe: concurrent draws from one Generator receive disjoint counter
    ranges (reserved under a lock), so no two draws share mask bits. Which
    thread gets which range depends on timing; give each thread its own
    Generator when the assignment must be reproducible.

    Pickling and deep-copying (``pickle``, ``copy.deepcopy``, joblib, Dask)
    carry the seed and the position, as for ``numpy.random.Generator``: the
    copy continues the same stream independently of the original, so two
    processes handed the same Generator draw the same masks. ``copy.copy``
    does the same (a Generator is its own bit generator, and copies like
    ``numpy.random.PCG64``).

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> gen = cydrop.Generator(42)
    >>> x = np.ones((2, 3), dtype=np.float32)
    >>> y1, m1 = cydrop.dropout(x, 0.5, seed=gen)
    >>> y2, m2 = cydrop.dropout(x, 0.5, seed=cydrop.Generator(42))
    >>> bool((m1.to_bool() == m2.to_bool()).all())
    True
    """

    def __init__(self, seed=None):
        seed = int.from_bytes(os.urandom(8), "little") if seed is None else _check_seed(seed)
        self._seed = seed
        self._key = int(_dropout.key_from_seed(seed))
        self._counter = 0
        self._lock = threading.Lock()

    @property
    def seed(self):
        """The 64-bit seed this generator was built from (None if built from a state)."""
        return self._seed

    @property
    def state(self):
        """The generator's position: a dict ``{"generator", "key", "counter"}``.

        Assign it back (or pass it to :meth:`from_state`) to replay the
        draws made since it was read.
        """
        with self._lock:
            return {"generator": _STATE_NAME, "key": self._key, "counter": self._counter}

    @state.setter
    def state(self, state):
        key, counter = _check_state(state)
        with self._lock:
            self._key, self._counter = key, counter

    @classmethod
    def from_state(cls, state):
        """A Generator positioned at ``state`` (from :attr:`state`)."""
        gen = cls(0)
        gen.state = state
        gen._seed = None
        return gen

    def __getstate__(self):
        # The lock cannot be pickled and is no part of the stream: the seed
        # and the position travel (as numpy.random.Generator pickles its bit
        # generator's state), and __setstate__ makes a fresh lock. pickle,
        # copy.copy and copy.deepcopy all go through this pair, so a copy
        # continues the stream independently of the original.
        with self._lock:
            return {"seed": self._seed, "state": {"generator": _STATE_NAME, "key": self._key,
                                                  "counter": self._counter}}

    def __setstate__(self, pickled):
        if not isinstance(pickled, dict) or "state" not in pickled:
            raise TypeError(f"cannot unpickle a cydrop.Generator from {type(pickled).__name__}")
        key, counter = _check_state(pickled["state"])
        seed = pickled.get("seed")
        self._seed = None if seed is None else _check_seed(seed)
        self._key, self._counter = key, counter
        self._lock = threading.Lock()

    def __repr__(self):
        return f"cydrop.Generator(key={self._key:#018x}, counter={self._counter})"


def reserve(gen, n_elements):
    """Claim from ``gen`` the counter range of a draw of ``n_elements``
    elements (one block per 64); return ``(key, first block)``. Concurrent
    claims get disjoint ranges (under the Generator's lock)."""
    n_blocks = n_words(n_elements)  # one 64-element block per mask word
    with gen._lock:
        first = gen._counter
        if first + n_blocks > MAX_BLOCKS:
            raise ValueError("Generator counter space exhausted (2^65 elements drawn); use a new seed")
        gen._counter = first + n_blocks
        return gen._key, first


def stream_key(gen):
    """The stream key of ``gen`` (the mix of its seed; see src/rng.h)."""
    return gen._key


def _check_seed(seed):
    """A seed as a Python int in [0, 2**64)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int in [0, 2**64) or None, got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return seed


def _check_state(state):
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict from Generator.state, got {type(state).__name__}")
    if state.get("generator") != _STATE_NAME:
        raise ValueError(f"state must come from a {_STATE_NAME} Generator, got {state.get('generator')!r}")
    key, counter = state.get("key"), state.get("counter")
    # counter == MAX_BLOCKS is the position of a Generator that drew its last
    # block: its own state, which must restore (and pickle) like any other
    for name, value, bound in (("key", key, 1 << 64), ("counter", counter, MAX_BLOCKS + 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < bound:
            raise ValueError(f"state[{name!r}] must be an int in [0, {bound}), got {value!r}")
    return int(key), int(counter)


def draw_mask(key, first_block, shape, keep_prob):
    """The Mask a draw at generator position (key, first_block) produced,
    drawn again (as a regenerating backward pass does)."""
    size = int(np.prod(shape, dtype=np.int64))
    words = np.empty(n_words(size), dtype=WORD)
    _dropout.draw_words(key, first_block, threshold_of(keep_prob), words, size)
    return adopt_words(words, shape, keep_prob)


def as_generator(seed):
    """Generator for a ``seed`` argument: int/None build a fresh one, a Generator is used as is."""
    if isinstance(seed, Generator):
        return seed
    return Generator(seed)
