"""cydrop.Mask: a dropout mask packed one bit per element."""
import math
import operator

import numpy as np

from ._validation import check_keep_prob

# Packed words are little-endian uint64: element e is bit e % 64 of word e // 64.
WORD = np.dtype("<u8")


def n_words(n_elements):
    """Words of a packed mask of n_elements elements: ceil(n / 64)."""
    return -(-n_elements // 64)


class Mask:
    """A dropout mask of a given shape, packed one bit per element.

    Bit ``e`` (in C order over ``shape``) is 1 when element ``e`` is kept.
    A mask stores ``ceil(n / 64)`` uint64 words: ``n / 8`` bytes rounded up
    to 8, against 1 byte per element for PyTorch's bool mask and 8 for a
    float64 mask. A mask drawn with ``keep_prob == 1`` keeps everything and
    stores no words at all.

    Masks are immutable. Build them with :func:`cydrop.dropout` or
    :meth:`Mask.from_bool`; the constructor takes packed words over and
    makes them read-only.

    Parameters
    ----------
    words : ndarray of uint64 (ceil(n / 64),) or None
        The packed bits, little-endian: element ``e`` is bit ``e % 64`` of
        word ``e // 64``; contiguous and aligned. None keeps every element.
        The Mask keeps a read-only copy: it is immutable, and the array
        passed in is left as it was (flags included).
    shape : tuple of int
        The shape of the data the mask applies to.
    keep_prob : float in (0, 1]
        The keep probability the mask stands for: kept elements are scaled
        by ``1 / keep_prob`` when it is applied.

    Raises
    ------
    TypeError
        ``shape`` not a sequence of ints; ``keep_prob`` not a number.
    ValueError
        ``words`` not a contiguous aligned uint64 array of the right length,
        or with bits set past the last element; ``keep_prob`` outside (0, 1].

    Attributes
    ----------
    shape : tuple of int
    keep_prob : float
    size : int
        Number of elements, ``prod(shape)``.
    nbytes : int
        Bytes of packed storage.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> mask = cydrop.Mask.from_bool(np.array([[True, False, True, True]]), keep_prob=0.75)
    >>> mask.count_kept(), mask.nbytes, mask.to_bool().tolist()
    (3, 8, [[True, False, True, True]])
    >>> y, _ = cydrop.dropout(np.ones((1, 4)), 0.75, mask=mask)
    >>> np.round(y, 4).tolist()
    [[1.3333, 0.0, 1.3333, 1.3333]]
    """

    __slots__ = ("_shape", "_keep_prob", "_words")

    def __init__(self, words, shape, keep_prob):
        self._setup(words, shape, keep_prob, copy=True)

    def _setup(self, words, shape, keep_prob, copy):
        shape = check_shape(shape)
        self._shape = shape
        self._keep_prob = check_keep_prob(keep_prob)
        if words is not None:
            n_words_ = n_words(self.size)
            # aligned: the kernels read the words as uint64 through a pointer
            if (not isinstance(words, np.ndarray) or words.dtype != WORD or words.shape != (n_words_,)
                    or not words.flags.c_contiguous or not words.flags.aligned):
                got = f"dtype {words.dtype} shape {words.shape}" if isinstance(words, np.ndarray) else type(words).__name__
                raise ValueError(f"words must be a contiguous, aligned 1-D uint64 array of length {n_words_} "
                                 f"for shape {shape}, got {got}")
            if self.size % 64 and words[-1] >> np.uint64(self.size % 64):
                raise ValueError("words has bits set past the last element")
            if copy:
                words = words.copy()
            words.flags.writeable = False
        self._words = words

    @classmethod
    def all_kept(cls, shape, keep_prob=1.0):
        """A mask that keeps every element, stored without words."""
        return cls(None, shape, keep_prob)

    @classmethod
    def from_bool(cls, arr, keep_prob):
        """Pack a boolean array (True = kept) into a Mask.

        Parameters
        ----------
        arr : ndarray of bool, any shape
        keep_prob : float in (0, 1]
            The keep probability the mask stands for: kept elements are
            scaled by ``1 / keep_prob`` when the mask is applied.
        """
        if not isinstance(arr, np.ndarray) or arr.dtype != np.bool_:
            got = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
            raise TypeError(f"arr must be a bool ndarray (True = kept), got {got}")
        bytes_ = np.packbits(arr.reshape(-1), bitorder="little")
        padded = np.zeros(n_words(arr.size) * 8, dtype=np.uint8)
        padded[: bytes_.size] = bytes_
        return cls(padded.view(WORD), arr.shape, keep_prob)

    @property
    def shape(self):
        return self._shape

    @property
    def keep_prob(self):
        return self._keep_prob

    @property
    def size(self):
        return math.prod(self._shape)

    @property
    def nbytes(self):
        return 0 if self._words is None else self._words.nbytes

    @property
    def words(self):
        """The packed words (read-only uint64 array), or None for an all-kept mask."""
        # a view: numpy refuses to make it writable again, its base being read-only
        return None if self._words is None else self._words.view()

    def to_bool(self):
        """The mask as a bool ndarray of the mask's ``shape`` (True = kept)."""
        if self._words is None:
            return np.ones(self._shape, dtype=bool)
        bits = np.unpackbits(self._words.view(np.uint8), count=self.size, bitorder="little")
        return bits.view(bool).reshape(self._shape)

    def count_kept(self):
        """Number of kept elements."""
        if self._words is None:
            return self.size
        return int(np.bitwise_count(self._words).sum(dtype=np.int64))

    def __eq__(self, other):
        if not isinstance(other, Mask):
            return NotImplemented
        if self._shape != other._shape or self._keep_prob != other._keep_prob:
            return False
        if self._words is None or other._words is None:
            return self.count_kept() == other.count_kept() == self.size
        return bool(np.array_equal(self._words, other._words))

    __hash__ = None

    def __reduce__(self):
        # Rebuilt through the constructor, which checks the words again and
        # makes them read-only: the default slot-state pickle would hand back
        # a writable array (numpy unpickles arrays writable).
        return _unpickle_mask, (self._words, self._shape, self._keep_prob)

    def __repr__(self):
        return (f"cydrop.Mask(shape={self._shape}, keep_prob={self._keep_prob}, "
                f"kept={self.count_kept()}/{self.size}, nbytes={self.nbytes})")


def _unpickle_mask(words, shape, keep_prob):
    """A Mask from pickled words, copied by the constructor (an out-of-band
    pickle buffer may still be written to by whoever provided it)."""
    return Mask(words, shape, keep_prob)


def adopt_words(words, shape, keep_prob):
    """The Mask of words a kernel has just drawn into a fresh array: checked
    and taken over (made read-only), without the copy the constructor makes."""
    mask = Mask.__new__(Mask)
    mask._setup(words, shape, keep_prob, copy=False)
    return mask


def check_shape(shape):
    """A shape as a tuple of ints >= 0 whose size an ndarray can have."""
    try:
        shape = tuple(operator.index(d) for d in shape)
    except TypeError:
        raise TypeError(f"shape must be a sequence of ints, got {shape!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"shape must have non-negative dimensions, got {shape}")
    if math.prod(shape) > np.iinfo(np.intp).max:
        raise ValueError(f"shape {shape} has more elements than an array can hold")
    return shape


def check_noise_shape(noise_shape, shape, name="noise_shape"):
    """Return ``noise_shape`` as a tuple of ints for data of ``shape``.

    Keras's rule: one entry per axis of the data, each equal to the data's
    size on that axis (or None, meaning that size) or 1, the mask then being
    broadcast along that axis.
    """
    shape = tuple(shape)
    try:
        entries = tuple(noise_shape)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints or None, got {type(noise_shape).__name__}") from None
    if len(entries) != len(shape):
        raise ValueError(f"{name} must have one entry per axis of the data {shape}, got {noise_shape!r}")
    result = []
    for size, entry in zip(shape, entries):
        if entry is None:
            result.append(size)
            continue
        try:
            if isinstance(entry, (bool, np.bool_)):
                raise TypeError
            entry = operator.index(entry)
        except TypeError:
            raise TypeError(f"{name} entries must be ints or None, got {entry!r}") from None
        if entry not in (1, size):
            raise ValueError(f"{name} must equal the data's shape {shape} or be 1 on each axis, "
                             f"got {tuple(entries)}")
        result.append(entry)
    return tuple(result)


def as_mask(mask, shape, keep_prob, name="mask", data_name="x"):
    """Check an explicit ``mask`` argument against the data it is applied to."""
    if isinstance(mask, np.ndarray):
        if mask.dtype != np.bool_:
            raise TypeError(f"{name} must be a cydrop.Mask or a bool ndarray, got dtype {mask.dtype}")
        if mask.shape != tuple(shape):
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {mask.shape}")
        return Mask.from_bool(mask, keep_prob)
    if not isinstance(mask, Mask):
        raise TypeError(f"{name} must be a cydrop.Mask or a bool ndarray, got {type(mask).__name__}")
    if mask.shape != tuple(shape):
        raise ValueError(f"{name} has shape {mask.shape}, {data_name} has shape {tuple(shape)}")
    if keep_prob is not None and mask.keep_prob != keep_prob:
        raise ValueError(f"{name} was made with keep_prob={mask.keep_prob}, but keep_prob={keep_prob} was given")
    return mask


def packed_words(mask):
    """The mask's packed words; for an all-kept mask (stored without words),
    all-ones words with the padding bits past the last element clear."""
    if mask.words is not None:
        return mask.words
    words = np.full(n_words(mask.size), ~np.uint64(0), dtype=WORD)
    if mask.size % 64:
        words[-1] = np.uint64((1 << (mask.size % 64)) - 1)
    return words
