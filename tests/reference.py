"""Plain-NumPy references for the tests: the mask generator and dropout.

Written from the contract, not from the kernels, and deliberately in a
different form: the C code (src/rng.h) decides 64 lanes at once, bit-sliced,
stopping early once every lane is decided; here every element's full 32-bit
uniform ``U`` is assembled from all 32 stream words of its block and compared
with the threshold ``T`` in one ``U < T``.

Contract (rng.h):

- ``mix64`` is the SplitMix64 finaliser; ``key = mix64(seed + GAMMA)``;
  stream word ``n`` is ``R(key, n) = mix64(key + n * GAMMA)`` (all mod 2^64).
- Element ``e`` of a draw that starts at block counter ``block0`` lives in
  block ``B = block0 + e // 64``, lane ``e % 64``; bit ``31 - j`` of its
  ``U`` is bit ``e % 64`` of ``R(key, B * 32 + j)``, ``j = 0..31``.
- The element is kept iff ``U < T``, ``T = round(keep_prob * 2^32)``.
"""
from fractions import Fraction

import numpy as np

GAMMA = 0x9E3779B97F4A7C15
MIX_MUL_1 = 0xBF58476D1CE4E5B9
MIX_MUL_2 = 0x94D049BB133111EB
WORDS_PER_BLOCK = 32
BLOCK = 64

_U64 = np.uint64
# blocks per step of reference_mask: bounds its temporaries to a few MiB
_BLOCKS_PER_STEP = 4096


def mix64(z):
    """SplitMix64 finaliser (Stafford's Mix13) on a uint64 array, wrapping mod 2^64."""
    z = np.asarray(z, dtype=_U64)
    z = (z ^ (z >> _U64(30))) * _U64(MIX_MUL_1)
    z = (z ^ (z >> _U64(27))) * _U64(MIX_MUL_2)
    return z ^ (z >> _U64(31))


def key_from_seed(seed):
    """key = mix64(seed + GAMMA) as a Python int (seed a 64-bit unsigned int)."""
    return int(mix64(np.array([(seed + GAMMA) % (1 << 64)], dtype=_U64))[0])


def threshold(keep_prob):
    """T = round(keep_prob * 2^32), computed exactly on the rational value."""
    return int(round(Fraction(keep_prob) * (1 << 32)))


def stream_words(key, blocks):
    """R(key, B * 32 + j) for each block B of ``blocks``: shape (len(blocks), 32)."""
    blocks = np.asarray(blocks, dtype=_U64)
    j = np.arange(WORDS_PER_BLOCK, dtype=_U64)
    n = blocks[:, None] * _U64(WORDS_PER_BLOCK) + j[None, :]
    return mix64(_U64(key) + n * _U64(GAMMA))


def uniforms(key, block0, n_elements):
    """The 32-bit uniform U of each of ``n_elements`` elements (uint64 array)."""
    n_blocks = -(-n_elements // BLOCK)
    out = np.empty(n_blocks * BLOCK, dtype=_U64)
    lanes = np.arange(BLOCK, dtype=_U64)
    for first in range(0, n_blocks, _BLOCKS_PER_STEP):
        blocks = np.arange(first, min(first + _BLOCKS_PER_STEP, n_blocks), dtype=_U64) + _U64(block0)
        words = stream_words(key, blocks)            # (blocks, 32)
        u = np.zeros((len(blocks), BLOCK), dtype=_U64)
        for j in range(WORDS_PER_BLOCK):
            # bit (31 - j) of U_e is bit e % 64 of word j: most significant first
            bit = (words[:, j, None] >> lanes[None, :]) & _U64(1)
            u |= bit << _U64(31 - j)
        out[first * BLOCK:(first + len(blocks)) * BLOCK] = u.reshape(-1)
    return out[:n_elements]


def reference_mask(key, block0, n_elements, keep_prob):
    """Flat bool mask (True = kept) of a draw of ``n_elements`` at block ``block0``."""
    return uniforms(key, block0, n_elements) < threshold(keep_prob)


def reference_mask_for_seed(seed, shape, keep_prob, counter=0):
    """Bool mask of ``shape`` drawn by ``Generator(seed)`` positioned at ``counter``."""
    shape = tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    return reference_mask(key_from_seed(seed), counter, n, keep_prob).reshape(shape)


def reference_dropout(x, mask, keep_prob):
    """y = x * (D * s), s = dtype(1 / keep_prob): the exact contract of cydrop.dropout.

    ``x`` any float array (its logical values are used, whatever its strides);
    ``mask`` a bool array of x's shape.
    """
    x = np.asarray(x)
    scale = x.dtype.type(1.0 / keep_prob)
    d_times_s = np.where(mask, scale, x.dtype.type(0)).astype(x.dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 -> nan is the contract
        return np.asarray(np.multiply(x, d_times_s), dtype=x.dtype)


def words_of(mask_bool):
    """Pack a bool mask into the little-endian uint64 words of the Mask layout."""
    flat = np.asarray(mask_bool, dtype=bool).reshape(-1)
    padded = np.zeros(-(-flat.size // BLOCK) * BLOCK, dtype=bool)
    padded[: flat.size] = flat
    weights = np.uint64(1) << np.arange(BLOCK, dtype=_U64)
    return (padded.reshape(-1, BLOCK).astype(_U64) * weights).sum(axis=1, dtype=_U64)


def bits_equal(a, b):
    """True when two float arrays are identical bit for bit (NaN payloads, -0.0)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    view = {4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return bool(np.array_equal(np.ascontiguousarray(a).view(view), np.ascontiguousarray(b).view(view)))
