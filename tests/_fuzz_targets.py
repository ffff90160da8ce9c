"""Property-based fuzzing of cydrop's public functions, one target per process.

Not collected by pytest (the name does not start with ``test_``):
``tests/test_fuzz.py`` runs ``python tests/_fuzz_targets.py TARGET`` for each
target, so that a crash (death by a signal) fails that one test, with the
child's stderr, instead of killing the test session.

Every property draws arguments, hostile ones included (0- and 1-sized
dimensions, every dtype, transposed/sliced/negative/broadcast/unaligned
strides, read-only buffers, ``out`` aliasing an input, keep_prob edge values,
NaN/inf data), calls the function and accepts exactly two outcomes:

* it raises ValueError or TypeError, and then nothing was written, nothing
  drawn from the generator;
* it returns, and the result equals a NumPy reference computed here from the
  returned (or given) mask: bit for bit for the element-wise kernels, within
  a rounding bound for anything that goes through a GEMM.

The references come from ``tests/reference.py`` (the mask generator in plain
NumPy) and from the formulas written out below, never from cydrop itself.

Usage: ``python tests/_fuzz_targets.py TARGET`` (TARGET in ``TARGETS``);
``CYDROP_FUZZ_EXAMPLES=N`` overrides every target's example count (CI runs
the defaults, a long run raises it). Prints one JSON line of counts.
"""
import collections
import json
import math
import numbers
import os
import sys
import tempfile
import time
import warnings
from decimal import Decimal
from fractions import Fraction

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cydrop
import cydrop.optim
from reference import key_from_seed, reference_dropout, reference_mask

REFUSED = (ValueError, TypeError)
COUNTS = {"returned": 0, "refused": 0, "compared": 0}
REASONS = collections.Counter()  # refusal messages, printed with CYDROP_FUZZ_VERBOSE=1
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
FLOATS = (F32, F64)


def fuzz_settings(default_examples):
    return settings(max_examples=int(os.environ.get("CYDROP_FUZZ_EXAMPLES", default_examples)),
                    deadline=None, derandomize=True, database=None, print_blob=False,
                    suppress_health_check=list(HealthCheck))


def call(fn, *args, **kwargs):
    """(result, None) when fn returns, (None, exc) when it refuses with
    ValueError/TypeError; anything else propagates and fails the property."""
    try:
        result = fn(*args, **kwargs)
    except REFUSED as exc:
        COUNTS["refused"] += 1
        REASONS[f"{type(exc).__name__}: {' '.join(str(exc).split()[:4])}"] += 1
        return None, exc
    COUNTS["returned"] += 1
    return result, None


# --------------------------------------------------------------------- inputs

SPECIAL_VALUES = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, -1e-310, 1e-40, 1.5e-45, 1e20])
HOSTILE_DTYPES = [np.dtype(d) for d in (np.float16, np.longdouble, np.int8, np.int32, np.int64, np.uint8,
                                        np.uint64, np.bool_, np.complex64, np.complex128, object, ">f8",
                                        ">f4", "M8[s]", "U3")] + [np.dtype([("a", "<f8")])]
LAYOUTS = ["c"] * 6 + ["f", "transposed", "sliced", "negative", "unaligned", "broadcast", "readonly",
                       "matrix", "masked"]
NOT_ARRAYS = [None, 1.5, np.float64(1.5), "x", [1.0, 2.0], (1.0,), np.array(0.5)[()], {"a": 1}]

# (), 0- and 1-sized dimensions, sizes around 64-element blocks and 4096-element
# chunks, and a few large enough for the kernels' parallel paths
shapes = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=8),
    hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=70),
    st.sampled_from([(64,), (65,), (4095,), (4097,), (1, 4096), (70001,), (300, 257)]),
)


def cast(values, dtype):
    """float64 values as an array of any dtype (hostile ones included)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dtype.names:
            out = np.zeros(values.shape, dtype)
            out["a"] = values
            return out
        if dtype.kind == "M":
            return np.nan_to_num(values).astype(np.int64).astype(dtype)
        if dtype.kind == "U":
            return values.astype(str).astype(dtype)
        return values.astype(dtype)


@st.composite
def values(draw, shape, dtype, magnitude=1e3, specials=True):
    """An array of shape and dtype: normal data over several decades, with NaN,
    infinities, signed zeros and subnormals sprinkled in when ``specials``."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = math.prod(shape)
    v = rng.standard_normal(n) * magnitude ** rng.uniform(-1, 1)
    if specials and n and draw(st.booleans()):
        k = draw(st.integers(1, min(n, 8)))
        v[rng.integers(0, n, k)] = rng.choice(SPECIAL_VALUES, k)
    return cast(v.reshape(shape), np.dtype(dtype))


def with_layout(v, layout):
    """An array of v's logical values with the memory layout ``layout``."""
    shape, dtype = v.shape, v.dtype
    if v.ndim == 0 and layout in ("f", "transposed", "negative"):
        return v.copy()  # (np.asfortranarray, np.ascontiguousarray, np.flip make 0-d arrays 1-d)
    if layout == "f":
        return np.asfortranarray(v)
    if layout == "transposed":
        return np.ascontiguousarray(v.T).T
    if layout == "sliced":
        big = np.zeros(tuple(2 * d + 1 for d in shape), dtype)
        view = big[tuple(slice(1, None, 2) for _ in shape) + (Ellipsis,)]  # a 0-d view for ()
        view[...] = v
        return view
    if layout == "negative":
        return np.flip(np.ascontiguousarray(np.flip(v)))
    if layout == "unaligned" and dtype.itemsize > 1 and dtype.kind != "O":
        raw = np.zeros(v.nbytes + dtype.itemsize, np.uint8)
        view = raw[1:1 + v.nbytes].view(dtype).reshape(shape)
        view[...] = v
        return view
    if layout == "broadcast" and v.ndim and shape[0]:
        return np.broadcast_to(v[:1], shape)
    if layout == "readonly":
        v = v.copy()
        v.flags.writeable = False
        return v
    if layout == "matrix" and v.ndim == 2:
        return np.asmatrix(v.copy())
    if layout == "masked":
        return np.ma.masked_array(v.copy(), mask=np.zeros(shape, bool))
    return v.copy()


@st.composite
def arrays(draw, shape, float_only=False, magnitude=1e3, specials=True, layouts=LAYOUTS, dtype=None):
    """Mostly float32/float64 arrays of ``shape``, sometimes of a hostile dtype,
    in any layout."""
    if dtype is None:
        hostile = not float_only and one_in(draw, 10)
        dtype = draw(st.sampled_from(HOSTILE_DTYPES if hostile else FLOATS))
    v = draw(values(shape, dtype, magnitude, specials))
    return with_layout(v, draw(st.sampled_from(layouts)))


def one_in(draw, n):
    """True about once in n draws. (Hypothesis favours the first choice and
    small integers, so the rare case comes last.)"""
    return draw(st.sampled_from([False] * (n - 1) + [True]))


def maybe_not_array(strategy, rate=15):
    """The strategy's arrays, and once in ``rate`` draws something that is no array."""
    return st.sampled_from([False] * (rate - 1) + [True]).flatmap(
        lambda odd: st.sampled_from(NOT_ARRAYS) if odd else strategy)


EDGE_KEEP_PROBS = [1e-300, 5e-324, 2.0**-33, 2.0**-32, 1e-9, 0.5, 1 - 1e-12, 1 - 2.0**-53, 1.0,
                   0.0, -0.0, -0.5, 1 + 1e-12, 2.0, math.nan, math.inf, -math.inf]
ODD_KEEP_PROBS = [1, 0, 2, -1, np.float32(0.5), np.float16(0.25), np.longdouble(0.75), np.float64(0.9),
                  np.int64(1), Fraction(1, 3), True, False, np.bool_(True), None, "0.5", 0.5 + 0j,
                  [0.5], np.array(0.5), np.array([0.5]), Decimal("0.5")]
# about half of the draws are valid
keep_probs = st.one_of(st.sampled_from(EDGE_KEEP_PROBS), st.floats(5e-324, 1), st.floats(0.01, 1),
                       st.floats(), st.sampled_from(ODD_KEEP_PROBS))


def valid_keep_prob(value):
    """What cydrop documents as a keep_prob: a real number (not a bool) in (0, 1],
    or a 0-d array holding one."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return False
    return 0.0 < float(value) <= 1.0


def generator_at(seed, counter):
    gen = cydrop.Generator(seed)
    gen.state = dict(gen.state, counter=counter)
    return gen


SEEDS = st.one_of(
    st.none(), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1).map(cydrop.Generator),
    # a generator close to the end of its counter space (2^59 blocks)
    st.tuples(st.integers(0, 2**64 - 1), st.integers(2**59 - 40, 2**59 - 1)).map(lambda a: generator_at(*a)),
    st.sampled_from([-1, 2**64, 1.0, True, "1", np.uint64(2**64 - 1), np.int64(-1), [1], b"1"]),
)


def expected_mask(mask_arg, mask_bool, seed, gen_state, keep_prob, shape):
    """The bool mask a successful call must have used: the one given, all kept
    at keep_prob 1, else the reference draw at the generator's position (None
    when the seed was OS entropy and the position is unknown)."""
    if mask_arg is not None:
        return mask_bool
    if float(keep_prob) == 1.0:
        return np.ones(shape, bool)
    n = math.prod(shape)
    if isinstance(seed, cydrop.Generator):
        return reference_mask(gen_state["key"], gen_state["counter"], n, float(keep_prob)).reshape(shape)
    if seed is None:
        return None
    return reference_mask(key_from_seed(int(seed)), 0, n, float(keep_prob)).reshape(shape)


def snapshot(*objs):
    """Bytes of every array among objs (with its base), to prove nothing was written."""
    return [(a, a.tobytes()) for a in objs if isinstance(a, np.ndarray) and a.dtype.kind != "O"]


def assert_unchanged(snap, what):
    for a, before in snap:
        assert a.tobytes() == before, f"{what}: an input array was modified"


def assert_bits_equal(actual, expected, what):
    assert isinstance(actual, np.ndarray) and actual.dtype == expected.dtype, (what, type(actual))
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    a = np.ascontiguousarray(actual).view(np.uint8)
    b = np.ascontiguousarray(expected).view(np.uint8)
    if not np.array_equal(a, b):
        bad = np.flatnonzero(~((actual == expected) | (np.isnan(actual) & np.isnan(expected))).ravel())
        raise AssertionError(f"{what}: differs from the reference at {bad[:5]}: "
                             f"{actual.ravel()[bad[:5]]} vs {expected.ravel()[bad[:5]]}")
    COUNTS["compared"] += 1


def logical(x):
    """The values a function sees in x: a plain C-ordered copy."""
    return np.array(np.asarray(x), order="C", copy=True)


# --------------------------------------------------- rounding bound of a GEMM

def finite_abs(a):
    a = np.abs(np.asarray(a, dtype=np.float64))
    return np.where(np.isfinite(a), a, 0.0)


def assert_within_bound(actual, ref, err, magnitude, dtype, what):
    """actual equals the float64 reference ``ref`` within ``err`` where the
    reference is finite; NaN and infinities where the reference has them.

    ``magnitude`` bounds the sum of absolute finite terms; where it comes
    near the dtype's range, partial sums may overflow in one summation order
    and not another (in any BLAS), so those elements are not compared."""
    assert isinstance(actual, np.ndarray) and actual.dtype == dtype and actual.shape == ref.shape, \
        (what, type(actual), getattr(actual, "dtype", None), getattr(actual, "shape", None), ref.shape)
    info = np.finfo(dtype)
    with np.errstate(all="ignore"):
        checked = np.isfinite(magnitude) & (magnitude <= info.max / 8) & np.isfinite(err)
        a = actual.astype(np.float64)
        finite = checked & np.isfinite(ref)
        tol = err + 64 * float(info.smallest_subnormal)
        bad = finite & ~(np.abs(a - ref) <= tol)
        nonfinite = checked & ~np.isfinite(ref)
        bad |= nonfinite & ~((np.isnan(a) & np.isnan(ref)) | (a == ref))
    if bad.any():
        i = np.flatnonzero(bad.ravel())[:5]
        raise AssertionError(f"{what}: outside the rounding bound at {i}: got {a.ravel()[i]}, "
                             f"reference {ref.ravel()[i]}, bound {np.broadcast_to(tol, ref.shape).ravel()[i]}")
    COUNTS["compared"] += 1


def gamma(n, dtype):
    """Bound factor of an n-term dot product in dtype, any summation order (Higham)."""
    return 2.0 * (n + 2) * float(np.finfo(dtype).eps)


def act64(name, z):
    with np.errstate(all="ignore"):
        return {"relu": lambda: np.where(z < 0, 0.0, z), "tanh": lambda: np.tanh(z),
                "sigmoid": lambda: 1 / (1 + np.exp(-z)), "linear": lambda: z}[name]()


def act_grad64(name, a, g):
    """dz = g * act'(z), act' written from the output a (the documented contract)."""
    with np.errstate(all="ignore"):
        return {"relu": lambda: np.where(a > 0, g, 0.0), "tanh": lambda: g * (1 - a * a),
                "sigmoid": lambda: g * (a * (1 - a)), "linear": lambda: g}[name]()


# ------------------------------------------------------------------ targets

OUT_MODES = ["none"] * 4 + ["fresh", "in_place", "same_view", "overlap", "hostile"]


@st.composite
def x_and_out(draw, shape, out_modes=OUT_MODES):
    """(x, out, buffers to watch): out None, fresh, x itself, another view of
    x's memory, partially overlapping x, or hostile."""
    mode = draw(st.sampled_from(out_modes))
    if mode == "overlap":
        dtype = draw(st.sampled_from(FLOATS))
        n = math.prod(shape)
        shift = draw(st.integers(-n - 2, n + 2))
        a, b = max(0, -shift), max(0, shift)
        buf = np.zeros(max(a, b) + n + 1, dtype)
        x, out = buf[a:a + n].reshape(shape), buf[b:b + n].reshape(shape)
        x[...] = draw(values(shape, dtype))
        return x, out, buf
    x = draw(maybe_not_array(arrays(shape)))
    if mode == "none" or not isinstance(x, np.ndarray):
        out = None
    elif mode == "fresh":
        out = np.full(shape, 7, x.dtype)
    elif mode == "in_place":
        out = x
    elif mode == "same_view":
        out = x.view()
    else:
        out_shape = draw(st.one_of(st.just(shape), shapes))
        out = draw(maybe_not_array(arrays(out_shape), rate=6))
    return x, out, None


@st.composite
def masks_for(draw, shape, keep_prob):
    """A mask argument for data of ``shape``: mostly right, sometimes wrong."""
    kind = draw(st.sampled_from(["bool"] * 3 + ["Mask"] * 3 + ["all_kept", "other_kp", "wrong_shape",
                                                               "int8", "list", "str"]))
    kp = float(keep_prob) if valid_keep_prob(keep_prob) else 0.5
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bools = rng.random(shape) < rng.random()
    if kind == "bool":
        return with_layout(np.asarray(bools), draw(st.sampled_from(LAYOUTS)))
    if kind == "Mask":
        return cydrop.Mask.from_bool(np.asarray(bools), kp)
    if kind == "all_kept":
        return cydrop.Mask.all_kept(shape, kp)
    if kind == "other_kp":
        return cydrop.Mask.from_bool(np.asarray(bools), draw(st.sampled_from([0.25, 1.0, 1e-300])))
    if kind == "wrong_shape":
        other = draw(shapes)
        return cydrop.Mask.from_bool(np.ones(other, bool), kp) if draw(st.booleans()) else np.ones(other, bool)
    if kind == "int8":
        return np.asarray(bools).astype(np.int8)
    return bools.tolist() if kind == "list" else "mask"


def mask_bool_of(mask_arg):
    if isinstance(mask_arg, cydrop.Mask):
        return mask_arg.to_bool()
    if isinstance(mask_arg, np.ndarray) and mask_arg.dtype == bool:
        return np.array(mask_arg)
    return None


@fuzz_settings(1000)
@given(st.data())
def fuzz_dropout(data):
    draw = data.draw
    shape = draw(shapes)
    x, out, buf = draw(x_and_out(shape))
    keep_prob = draw(keep_probs)
    seed = draw(SEEDS) if not one_in(draw, 4) else None
    mask_arg = draw(masks_for(shape, keep_prob)) if one_in(draw, 4) else None
    if mask_arg is not None and draw(st.integers(0, 3)):
        seed = None
    cydrop.set_num_threads(draw(st.sampled_from([1, 2])))

    x_before = logical(x) if isinstance(x, np.ndarray) else None
    mask_bool = mask_bool_of(mask_arg)
    gen_state = seed.state if isinstance(seed, cydrop.Generator) else None
    watched = snapshot(x, out, buf, mask_arg)
    kwargs = {k: v for k, v in (("seed", seed), ("mask", mask_arg), ("out", out)) if v is not None}
    result, exc = call(cydrop.dropout, x, keep_prob, **kwargs)

    if exc is not None:
        assert_unchanged(watched, f"refused dropout ({exc})")
        if gen_state is not None:
            assert seed.state == gen_state, "a refused call advanced the generator"
        return
    y, mask = result
    assert valid_keep_prob(keep_prob), f"accepted keep_prob {keep_prob!r}"
    assert x_before.dtype in FLOATS, f"accepted x of dtype {x_before.dtype}"
    if out is not None:
        assert y is out
    assert isinstance(mask, cydrop.Mask) and mask.shape == shape and mask.keep_prob == float(keep_prob)
    expected = expected_mask(mask_arg, mask_bool, seed, gen_state, keep_prob, shape)
    got = mask.to_bool()
    if expected is not None:
        assert np.array_equal(got, expected), "mask differs from the reference draw"
    assert mask.count_kept() == int(got.sum())
    assert_bits_equal(np.asarray(y), reference_dropout(x_before, got, float(keep_prob)), "dropout y")
    if gen_state is not None:
        drawn = mask_arg is None and float(keep_prob) < 1.0
        assert seed.state["counter"] == gen_state["counter"] + (-(-math.prod(shape) // 64) if drawn else 0)
    if out is None or (out is not x and not np.shares_memory(out, x)):
        assert_bits_equal(logical(x), x_before, "x after dropout")


@st.composite
def backward_masks(draw, shape):
    kind = draw(st.sampled_from(["drawn"] * 3 + ["from_bool", "all_kept", "other_shape", "bool_array", "junk"]))
    kp = draw(st.sampled_from([0.5, 0.9, 1.0, 1e-300, 5e-324, 1 - 1e-12, 2.0**-33]))
    if kind == "drawn":
        return cydrop.dropout(np.zeros(shape), kp, seed=draw(st.integers(0, 2**64 - 1)))[1]
    if kind == "from_bool":
        rng = np.random.default_rng(draw(st.integers(0, 99)))
        return cydrop.Mask.from_bool(np.asarray(rng.random(shape) < 0.5), kp)
    if kind == "all_kept":
        return cydrop.Mask.all_kept(shape, kp)
    if kind == "other_shape":
        return cydrop.Mask.all_kept(draw(shapes), kp)
    if kind == "bool_array":
        return np.ones(shape, bool)
    return draw(st.sampled_from([None, "mask", 0.5, [True]]))


@fuzz_settings(800)
@given(st.data())
def fuzz_dropout_backward(data):
    draw = data.draw
    shape = draw(shapes)
    dy, out, buf = draw(x_and_out(shape))
    mask = draw(backward_masks(shape))
    cydrop.set_num_threads(draw(st.sampled_from([1, 2])))
    dy_before = logical(dy) if isinstance(dy, np.ndarray) else None
    watched = snapshot(dy, out, buf)
    result, exc = call(cydrop.dropout_backward, dy, mask, **({"out": out} if out is not None else {}))
    if exc is not None:
        assert_unchanged(watched, f"refused dropout_backward ({exc})")
        return
    assert isinstance(mask, cydrop.Mask) and mask.shape == shape and dy_before.dtype in FLOATS
    if out is not None:
        assert result is out
    assert_bits_equal(np.asarray(result), reference_dropout(dy_before, mask.to_bool(), mask.keep_prob),
                      "dropout_backward")
    if out is None or (out is not dy and not np.shares_memory(out, dy)):
        assert_bits_equal(logical(dy), dy_before, "dy after dropout_backward")


@st.composite
def mask_words(draw, n):
    """Packed words for n elements: mostly right, sometimes of a wrong length,
    dtype or layout, or with bits set past the last element."""
    n_words = -(-n // 64)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    words = rng.integers(0, 2**64, n_words, dtype=np.uint64, endpoint=False)
    if n % 64 and draw(st.integers(0, 3)):
        words[-1] &= np.uint64((1 << (n % 64)) - 1)  # padding clear (else refused)
    kind = draw(st.sampled_from(["ok"] * 5 + ["short", "long", "int64", "2d", "strided", "unaligned",
                                             "big_endian", "readonly", "list", "none"]))
    if kind == "short":
        return words[:-1]
    if kind == "long":
        return np.concatenate([words, np.zeros(1, np.uint64)])
    if kind == "int64":
        return words.view(np.int64)
    if kind == "2d":
        return words.reshape(1, -1)
    if kind == "strided":
        return np.repeat(words, 2)[::2]
    if kind == "unaligned":
        return with_layout(words, "unaligned")
    if kind == "big_endian":
        return words.astype(">u8")
    if kind == "readonly":
        return with_layout(words, "readonly")
    if kind == "list":
        return words.tolist()
    return None if kind == "none" else words


def unpack_reference(words, n):
    """Element e is bit e % 64 of word e // 64 (little-endian), from the bytes."""
    return np.unpackbits(np.asarray(words, dtype="<u8").view(np.uint8), bitorder="little")[:n].astype(bool)


@fuzz_settings(800)
@given(st.data())
def fuzz_mask(data):
    draw = data.draw
    shape = draw(st.one_of(shapes, st.sampled_from([(-1,), (2, -3), (2**40, 2**40), (2**31, 2**31, 4),
                                                     (2.5,), (np.int64(3),), ("3",), (None,)])))
    keep_prob = draw(keep_probs)
    how = draw(st.sampled_from(["words", "words", "from_bool", "all_kept"]))
    n = math.prod(shape) if all(isinstance(d, (int, np.integer)) and 0 <= d < 2**20 for d in shape) else 0
    if how == "words":
        words = draw(mask_words(n))
        words_before = np.array(words) if isinstance(words, np.ndarray) else None
        mask, exc = call(cydrop.Mask, words, shape, keep_prob)
    elif how == "from_bool":
        arr = draw(maybe_not_array(arrays(shape if n else (3,), dtype=np.dtype(bool)), rate=8)) \
            if not one_in(draw, 5) else draw(maybe_not_array(arrays(shape if n else (3,))))
        mask, exc = call(cydrop.Mask.from_bool, arr, keep_prob)
        words_before = None
    else:
        mask, exc = call(cydrop.Mask.all_kept, shape, keep_prob)
        words_before = None
    if exc is not None:
        return
    assert valid_keep_prob(keep_prob), f"accepted keep_prob {keep_prob!r}"
    assert mask.keep_prob == float(keep_prob)
    size = mask.size
    assert size == math.prod(mask.shape) and all(type(d) is int and d >= 0 for d in mask.shape)
    if size > 2**24:
        return
    bools = mask.to_bool()
    assert bools.shape == mask.shape and bools.dtype == bool
    if how == "words" and words_before is not None:
        assert np.array_equal(bools.reshape(-1), unpack_reference(words_before, size))
        assert mask.nbytes == words_before.nbytes
    elif how == "from_bool":
        assert np.array_equal(bools, np.asarray(arr))
    else:
        assert bools.all() and mask.nbytes == 0
    assert mask.count_kept() == int(bools.sum())
    assert mask == cydrop.Mask.from_bool(bools, mask.keep_prob)
    if mask.words is not None:
        assert not mask.words.flags.writeable
    # applying it gives the reference
    x = np.random.default_rng(0).standard_normal(mask.shape)
    y, m = call(cydrop.dropout, x, mask.keep_prob, mask=mask)[0]
    assert m is mask
    assert_bits_equal(y, reference_dropout(x, bools, mask.keep_prob), "dropout with a built Mask")
    COUNTS["compared"] += 1


STATES = st.one_of(
    st.fixed_dictionaries({"generator": st.just("SplitMix64-bitsliced-v1"),
                           "key": st.one_of(st.integers(0, 2**64 - 1), st.integers(),
                                            st.sampled_from([1.0, True, None, "1"])),
                           "counter": st.one_of(st.integers(0, 2**59 - 1), st.integers(2**59 - 40, 2**59 + 2),
                                                st.integers(), st.sampled_from([1.0, True, None, np.uint64(3)]))}),
    st.dictionaries(st.sampled_from(["generator", "key", "counter", "extra"]), st.integers() | st.text(max_size=3)),
    st.sampled_from([None, [], "state", 3]),
)


@fuzz_settings(600)
@given(st.data())
def fuzz_generator(data):
    draw = data.draw
    how = draw(st.sampled_from(["seed", "seed", "from_state", "set_state"]))
    if how == "seed":
        seed = draw(st.one_of(st.integers(0, 2**64 - 1), st.integers(), st.none(), st.sampled_from(
            [1.0, True, np.bool_(False), "1", np.uint64(2**64 - 1), np.int8(-1), Fraction(1), Decimal(1), [1]])))
        gen, exc = call(cydrop.Generator, seed)
        if exc is not None:
            return
        assert seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_))
                                and 0 <= int(seed) < 2**64), f"accepted seed {seed!r}"
        state = gen.state
        assert state["counter"] == 0
        if seed is not None:
            assert state["key"] == key_from_seed(int(seed))
    else:
        state = draw(STATES)
        if how == "from_state":
            gen, exc = call(cydrop.Generator.from_state, state)
        else:
            gen = cydrop.Generator(1)
            before = gen.state
            _, exc = call(setattr, gen, "state", state)
            if exc is not None:
                assert gen.state == before, "a refused state changed the generator"
        if exc is not None:
            return
        assert gen.state["key"] == state["key"] and gen.state["counter"] == state["counter"]
        state = gen.state
    # draws: the reference mask at the generator's position, counter advanced
    # by ceil(n / 64) blocks, or refused when the counter space is exhausted
    for size in draw(st.lists(st.sampled_from([0, 1, 63, 64, 65, 200, 4097]), max_size=3)):
        keep_prob = draw(st.sampled_from([0.5, 0.1, 1 - 1e-12, 2.0**-33, 0.999]))
        before = gen.state
        res, exc = call(cydrop.dropout, np.ones(size), keep_prob, seed=gen)
        blocks = -(-size // 64)
        if exc is not None:
            assert before["counter"] + blocks > 2**59, f"refused a draw at counter {before['counter']}: {exc}"
            assert gen.state == before
            continue
        assert before["counter"] + blocks <= 2**59
        assert gen.state["counter"] == before["counter"] + blocks
        expected = reference_mask(before["key"], before["counter"], size, keep_prob)
        assert np.array_equal(res[1].to_bool(), expected)
        assert_bits_equal(res[0], np.where(expected, 1 / keep_prob, 0.0), "draw")


@st.composite
def dense_args(draw, float_only=False):
    """(x, W, b) of a dense layer: mostly consistent, sometimes not."""
    batch, n_in, n_out = draw(st.one_of(st.tuples(*[st.integers(0, 9)] * 3),
                                        st.sampled_from([(1, 1, 1), (300, 70, 260), (70, 257, 3)])))
    dtype = draw(st.sampled_from(FLOATS))
    x_shape, W_shape, b_shape = (batch, n_in), (n_in, n_out), (n_out,)
    if not float_only and one_in(draw, 6):  # an inconsistent shape
        which = draw(st.integers(0, 2))
        other = draw(shapes)
        x_shape, W_shape, b_shape = [other if i == which else s for i, s in enumerate((x_shape, W_shape, b_shape))]
    layouts = ["c"] if float_only else ["c"] * 30 + LAYOUTS  # the dense layer refuses most others

    def array(shape):
        mixed = not float_only and one_in(draw, 12)
        return draw(arrays(shape, magnitude=1e2, layouts=layouts, dtype=None if mixed else dtype))

    x, W = array(x_shape), array(W_shape)
    b = None if one_in(draw, 4) else array(b_shape)
    if not float_only:
        alias = draw(st.sampled_from([None] * 6 + ["W_is_x", "b_is_W_row"]))
        if alias == "W_is_x" and x.ndim == 2 and x.shape[0] == x.shape[1]:
            W = x
        elif alias == "b_is_W_row" and isinstance(W, np.ndarray) and W.ndim == 2 and W.shape[0]:
            b = W[0]
        x = draw(maybe_not_array(st.just(x), rate=20))
    return x, W, b


ACTIVATION_ARGS = ["relu", "tanh", "sigmoid", "linear"] * 8 + ["elu", "", "RELU", None, 1, ["relu"]]
# mostly valid, so that most draws get as far as the kernel
mostly_valid_keep_probs = st.one_of(st.floats(5e-324, 1), st.floats(0.01, 1), st.sampled_from(EDGE_KEEP_PROBS[:9]),
                                    keep_probs)


def dense_reference(x_vals, D, keep_prob, W, b, activation):
    """x_tilde (dtype), out (float64) and the bound of |out - reference| for the
    NumPy layer act((x * D / keep_prob) @ W + b)."""
    dtype = x_vals.dtype
    x_tilde = reference_dropout(x_vals, D, keep_prob) if D is not None else x_vals
    W64 = np.asarray(W, dtype=np.float64)
    b64 = np.zeros(W64.shape[1]) if b is None else np.asarray(b, dtype=np.float64)
    with np.errstate(all="ignore"):
        z = x_tilde.astype(np.float64) @ W64 + b64
        magnitude = finite_abs(x_tilde) @ finite_abs(W64) + finite_abs(b64)
    err = gamma(W64.shape[0] + 1, dtype) * magnitude
    if activation in ("tanh", "sigmoid"):
        err = err + 4 * float(np.finfo(dtype).eps)  # evaluating the activation; both are 1-Lipschitz
    return x_tilde, act64(activation, z), err, magnitude


@fuzz_settings(800)
@given(st.data())
def fuzz_dense_forward(data):
    draw = data.draw
    x, W, b = draw(dense_args())
    keep_prob = draw(mostly_valid_keep_probs)
    activation = draw(st.sampled_from(ACTIVATION_ARGS))
    seed = draw(SEEDS) if not one_in(draw, 4) else None
    shape = x.shape if isinstance(x, np.ndarray) else (1,)
    mask_arg = draw(masks_for(shape, keep_prob)) if one_in(draw, 4) else None
    if mask_arg is not None and draw(st.integers(0, 3)):
        seed = None
    regenerate = draw(st.sampled_from([False] * 8 + [True, np.bool_(True)] * 2 + [1, "yes", None]))
    cydrop.set_deterministic(draw(st.booleans()))
    cydrop.set_num_threads(draw(st.sampled_from([1, 2])))

    x_before = logical(x) if isinstance(x, np.ndarray) else None
    mask_bool = mask_bool_of(mask_arg)
    gen_state = seed.state if isinstance(seed, cydrop.Generator) else None
    watched = snapshot(x, W, b, mask_arg)
    kwargs = {k: v for k, v in (("seed", seed), ("mask", mask_arg)) if v is not None}
    result, exc = call(cydrop.dense_forward, x, W, b, keep_prob, activation=activation,
                       regenerate=regenerate, **kwargs)
    if exc is not None:
        assert_unchanged(watched, f"refused dense_forward ({exc})")
        if gen_state is not None:
            assert seed.state == gen_state, "a refused call advanced the generator"
        return
    assert_unchanged(watched, "dense_forward")
    assert valid_keep_prob(keep_prob), f"accepted keep_prob {keep_prob!r}"
    out, cache = result
    dtype = x_before.dtype
    assert dtype in FLOATS and W.dtype == dtype and (b is None or b.dtype == dtype)
    expected = expected_mask(mask_arg, mask_bool, seed, gen_state, keep_prob, x.shape)
    got = cache.mask.to_bool()
    if expected is not None:
        assert np.array_equal(got, expected), "dense_forward mask differs from the reference draw"
    no_mask = mask_arg is None and float(keep_prob) == 1.0
    _, ref, err, magnitude = dense_reference(x_before, None if no_mask else got, float(keep_prob), W, b,
                                             activation)
    assert_within_bound(out, ref, err, magnitude, dtype, f"dense_forward out ({activation})")


def mutate_cache_arrays(kind, x, W, out):
    """In-place changes a caller could make between forward and backward
    (NumPy allows all of them): each must be refused, never read past an
    array's end."""
    if kind == "W_reshape" and W.ndim == 2 and W.shape[0] != W.shape[1]:
        W.shape = W.shape[::-1]
    elif kind == "out_flat":
        out.shape = (out.size,)
    elif kind == "out_reshape" and out.shape[0] != out.shape[1]:
        out.shape = out.shape[::-1]
    elif kind == "x_reshape" and x.shape[0] != x.shape[1]:
        x.shape = x.shape[::-1]
    elif kind == "W_resize":
        W.resize((W.shape[0] + 3, W.shape[1] + 2), refcheck=False)
    elif kind == "out_resize":
        out.resize((out.shape[0] + 5, out.shape[1]), refcheck=False)
    else:
        return False
    return True


@fuzz_settings(400)
@given(st.data())
def fuzz_dense_backward(data):
    draw = data.draw
    # copies: arrays of this function's own, which it may resize (NumPy refuses
    # to resize an array that is weakly referenced, as recent hypothesis does with drawn values)
    x, W, b = (None if a is None else a.copy() for a in draw(dense_args(float_only=True)))
    keep_prob = draw(st.sampled_from([1.0, 0.5, 0.8, 1e-300, 5e-324, 1 - 1e-12, 2.0**-33]))
    activation = draw(st.sampled_from(["relu", "tanh", "sigmoid", "linear"]))
    use_mask = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mask_arg = rng.random(x.shape) < rng.random() if use_mask else None
    det = draw(st.booleans())
    cydrop.set_deterministic(det)
    cydrop.set_num_threads(draw(st.sampled_from([1, 2])))
    forward_kwargs = {"mask": mask_arg} if use_mask else {
        "seed": draw(st.integers(0, 2**64 - 1)), "regenerate": draw(st.booleans())}
    out, cache = cydrop.dense_forward(x, W, b, keep_prob, activation=activation, **forward_kwargs)
    D = cache.mask.to_bool()

    g_shape = draw(shapes) if one_in(draw, 8) else out.shape
    grad_out = draw(maybe_not_array(arrays(g_shape, magnitude=1e2, dtype=None if one_in(draw, 8) else x.dtype,
                                           layouts=["c"] * 30 + LAYOUTS), rate=20))
    cache_arg = draw(st.sampled_from(["cache"] * 20 + ["none", "tuple", "other"]))
    if cache_arg == "other":
        cache_arg = cydrop.dense_forward(np.ones((2, 3)), np.ones((3, 4)), None, 0.5, seed=1)[1]
    else:
        cache_arg = {"cache": cache, "none": None, "tuple": (out, cache)}[cache_arg]
    mutated = mutate_cache_arrays(draw(st.sampled_from([None] * 20 + [
        "W_reshape", "out_flat", "out_reshape", "x_reshape", "W_resize", "out_resize"])), x, W, out)
    need_dx = draw(st.sampled_from([True] * 4 + [False, np.bool_(False), 1, None]))

    g_before = logical(grad_out) if isinstance(grad_out, np.ndarray) else None
    a = logical(out)
    watched = snapshot(x, W, b, out, grad_out)
    result, exc = call(cydrop.dense_backward, grad_out, cache_arg, need_dx=need_dx)
    if exc is not None:
        assert_unchanged(watched, f"refused dense_backward ({exc})")
        return
    assert_unchanged(watched, "dense_backward")
    assert not mutated, "dense_backward accepted a cache whose arrays changed shape in place"
    assert cache_arg is cache, f"accepted cache {type(cache_arg).__name__}"
    dx, dW, db = result
    dtype = x.dtype
    assert g_before.dtype == dtype and g_before.shape == out.shape
    assert (dx is None) == (not need_dx) and (db is None) == (b is None)

    no_mask = not use_mask and keep_prob == 1.0
    x_tilde = x if no_mask else reference_dropout(x, D, keep_prob)
    g64, a64, W64 = g_before.astype(np.float64), a.astype(np.float64), W.astype(np.float64)
    eps = float(np.finfo(dtype).eps)
    with np.errstate(all="ignore"):
        dz = act_grad64(activation, a64, g64)
        # dz is computed in dtype: a few roundings for tanh/sigmoid, exact otherwise
        dz_err = 4 * eps * finite_abs(g64) * (1 + finite_abs(a64)) ** 2 if activation in ("tanh", "sigmoid") \
            else np.zeros_like(dz)
        xt64 = x_tilde.astype(np.float64)
        batch = x.shape[0]
        assert_within_bound(dW, xt64.T @ dz, gamma(batch, dtype) * (finite_abs(xt64).T @ finite_abs(dz))
                            + finite_abs(xt64).T @ dz_err, finite_abs(xt64).T @ finite_abs(dz), dtype,
                            "dense_backward dW")
        if b is not None:
            assert_within_bound(db, dz.sum(axis=0), gamma(batch, dtype) * finite_abs(dz).sum(axis=0)
                                + dz_err.sum(axis=0), finite_abs(dz).sum(axis=0), dtype, "dense_backward db")
        if dx is not None:
            scale = np.ones(x.shape) if no_mask else np.where(D, float(dtype.type(1.0 / keep_prob)), 0.0)
            n_out = W.shape[1]
            # the GEMM may overflow before the mask multiplies it (inf * 0 = NaN, as in NumPy)
            magnitude = np.maximum(finite_abs(dz) @ finite_abs(W64).T, (finite_abs(dz) @ finite_abs(W64).T) * scale)
            # (the GEMM's own underflow is scaled up too: 8.6e9 for keep_prob 2^-33)
            err = (gamma(n_out, dtype) * (finite_abs(dz) @ finite_abs(W64).T) + dz_err @ finite_abs(W64).T
                   + 4 * (n_out + 2) * float(np.finfo(dtype).smallest_subnormal)) * scale * (1 + 2 * eps)
            ref = (dz @ W64.T) * scale
            err = err + 2 * eps * finite_abs(ref)
            assert_within_bound(dx, ref, err, magnitude, dtype, "dense_backward dx")


OPTIM_ARRAY_ALIASES = [None] * 6 + ["same", "view", "overlap"]


@fuzz_settings(800)
@given(st.data())
def fuzz_optim(data):
    draw = data.draw
    fn = draw(st.sampled_from(["sgd", "momentum", "adam", "max_norm"]))
    shape = draw(st.one_of(shapes, st.sampled_from([(3, 4), (1, 7), (7, 1), (0, 3), (3, 0)])))
    dtype = draw(st.sampled_from(FLOATS))
    names = {"sgd": ["param", "grad"], "momentum": ["param", "grad", "velocity"],
             "adam": ["param", "grad", "m", "v"], "max_norm": ["W"]}[fn]
    arrs = {}
    for name in names:
        hostile = one_in(draw, 6)
        arrs[name] = draw(maybe_not_array(arrays(draw(shapes) if hostile else shape, magnitude=1e2,
                                                 dtype=None if hostile else dtype, layouts=LAYOUTS
                                                 if hostile or name == "grad" else ["c"] * 8 + LAYOUTS), rate=30))
    if fn == "max_norm" and draw(st.booleans()):
        arrs["W"] = draw(arrays((shape + (2, 3))[:2] if len(shape) != 2 else shape, magnitude=1e2, dtype=dtype))
    if fn in ("adam", "momentum"):  # state arrays are nonnegative where it matters
        for name in ("v",):
            if isinstance(arrs.get(name), np.ndarray) and arrs[name].dtype in FLOATS and arrs[name].flags.writeable:
                np.abs(arrs[name], out=arrs[name])
    alias = draw(st.sampled_from(OPTIM_ARRAY_ALIASES)) if len(names) > 1 else None
    if alias is not None:
        a_name, b_name = draw(st.permutations(names))[:2]
        a = arrs[a_name]
        if isinstance(a, np.ndarray):
            if alias == "same":
                arrs[b_name] = a
            elif alias == "view":
                arrs[b_name] = a.view()
            elif a.size > 1 and a.ndim == 1:
                buf = np.zeros(a.size + 1, a.dtype)
                buf[:-1] = a
                arrs[a_name], arrs[b_name] = buf[:-1], buf[1:]
    scalar = st.one_of(st.sampled_from([0.1, 1e-3, 0.9, 0.0, 1.0, -0.1, 1e-300, 5e-324, 1e300, math.nan,
                                        math.inf, True, None, "0.1", np.float32(0.5)]), st.floats(0, 10))
    kwargs = {}
    if fn == "max_norm":
        args = (arrs["W"], draw(scalar))
    else:
        args = tuple(arrs[n] for n in names) + (draw(scalar),)
        if fn == "momentum":
            args += (draw(scalar),)
        if fn == "adam":
            args = args[:4] + (draw(st.one_of(st.integers(-2, 10**6), st.sampled_from(
                [2**63 - 1, 2**63, 2**70, 1.0, True, None, np.int64(5)]))),) + args[4:]
            args += (draw(scalar), draw(scalar), draw(scalar))
        if draw(st.booleans()):
            kwargs["l2"] = draw(scalar)
    before = {n: logical(a) for n, a in arrs.items() if isinstance(a, np.ndarray)}
    watched = snapshot(*arrs.values())
    func = {"sgd": cydrop.optim.sgd_update, "momentum": cydrop.optim.momentum_update,
            "adam": cydrop.optim.adam_update, "max_norm": cydrop.optim.max_norm_}[fn]
    result, exc = call(func, *args, **kwargs)
    if exc is not None:
        assert_unchanged(watched, f"refused {fn} ({exc})")
        return
    assert result is None
    for name, (expected, magnitude) in optim_reference(fn, before, args, kwargs).items():
        actual = arrs[name]
        eps = float(np.finfo(actual.dtype).eps)
        assert_within_bound(actual, expected, 16 * eps * magnitude, magnitude, actual.dtype, f"{fn} {name}")


def optim_reference(fn, before, args, kwargs):
    """{name: (updated array in float64, sum of the absolute terms)} from the
    textbook formulas, with the scalars rounded to the dtype as the kernel
    uses them. The bound is relative to the terms, not the result: an update
    may cancel most of the parameter."""
    p = before["param" if fn != "max_norm" else "W"].astype(np.float64)
    dtype = before["param" if fn != "max_norm" else "W"].dtype
    r = lambda v: float(dtype.type(v))  # noqa: E731  (a scalar rounded to the dtype)
    l2 = r(kwargs.get("l2", 0.0))
    with np.errstate(all="ignore"):
        if fn == "max_norm":
            c = float(args[1])
            norms = np.sqrt((p * p).sum(axis=0))
            capped = np.where(norms > c, p * (c / np.where(norms > c, norms, 1)), p)
            # a column within rounding of the cap may go either way
            near = np.abs(norms - c) <= 1e-6 * c
            return {"W": (capped, np.abs(p) + np.where(near, np.abs(p), 0) / (16 * float(np.finfo(dtype).eps)))}
        grad = before["grad"].astype(np.float64)
        g, g_mag = grad + l2 * p, np.abs(grad) + np.abs(l2 * p)
        if fn == "sgd":
            lr = r(args[2])
            return {"param": (p - lr * g, np.abs(p) + lr * g_mag)}
        if fn == "momentum":
            lr, mu = r(args[3]), r(args[4])
            vel0 = before["velocity"].astype(np.float64)
            vel, vel_mag = mu * vel0 - lr * g, np.abs(mu * vel0) + lr * g_mag
            return {"param": (p + vel, np.abs(p) + vel_mag), "velocity": (vel, vel_mag)}
        t, lr, beta1, beta2, eps = args[4], float(args[5]), float(args[6]), float(args[7]), float(args[8])
        m0, v0 = before["m"].astype(np.float64), before["v"].astype(np.float64)
        m, m_mag = r(beta1) * m0 + r(1 - beta1) * g, np.abs(r(beta1) * m0) + r(1 - beta1) * g_mag
        v, v_mag = r(beta2) * v0 + r(1 - beta2) * g * g, np.abs(r(beta2) * v0) + r(1 - beta2) * g_mag**2
        update = lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
        # rounding of m and v (relative to their terms) carries into the update
        v_low = np.maximum(v - 4 * float(np.finfo(dtype).eps) * v_mag, 0)
        update_mag = lr * (m_mag / (1 - beta1**t)) / (np.sqrt(v_low / (1 - beta2**t)) + eps)
        # a moment past the dtype's range (g * g overflows float32 from |g| ~ 1.8e19)
        # makes the step inf / inf or m / inf in the dtype: the param is not comparable
        overflow = np.maximum(m_mag, v_mag) > float(np.finfo(dtype).max) / 8
        param_mag = np.where(overflow, np.inf, np.abs(p) + update_mag)
        return {"param": (p - update, param_mag), "m": (m, m_mag), "v": (v, v_mag)}


# ---------------------------------------------------------------- the MLP

def mlp_forward_reference(net, X):
    """Output of the network computed in float64 with plain NumPy."""
    h = X.astype(np.float64)
    for i, (W, b) in enumerate(zip(net.weights, net.biases)):
        z = h @ W.astype(np.float64) + b.astype(np.float64)
        h = z if i == len(net.weights) - 1 else act64(net.activation, z)
    if net.output == "softmax":
        e = np.exp(h - h.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if net.output == "sigmoid":
        return 1 / (1 + np.exp(-h))
    return h


def valid_or(draw, valid, hostile, n=10):
    """A draw of ``valid``, and about once in n draws one of ``hostile``."""
    return draw(st.sampled_from(hostile)) if one_in(draw, n) else draw(valid)


@fuzz_settings(500)
@given(st.data())
def fuzz_mlp(data):
    draw = data.draw
    n_in = draw(st.integers(1, 5))
    output = valid_or(draw, st.sampled_from(["softmax", "sigmoid", "linear"]), ["poisson", None, 3])
    n_out = 1 if output == "sigmoid" else draw(st.integers(1, 4))
    hidden = draw(st.lists(st.integers(1, 6), max_size=2))
    layer_sizes = valid_or(draw, st.just([n_in, *hidden, n_out]),
                           [[n_in], [n_in, 0, n_out], [n_in, -1], "40,10", [n_in, 2.5], [n_in, True], 7])
    n_layers = len(layer_sizes) - 1 if isinstance(layer_sizes, list) else 1
    keep_prob = valid_or(draw, st.one_of(st.floats(0.05, 1), st.lists(
        st.floats(0.05, 1), min_size=max(n_layers, 1), max_size=max(n_layers, 1))),
        [0.0, math.nan, 1e-300, 5e-324, 1 - 1e-12, [0.5] * (n_layers + 1), "0.5", True])
    dtype = valid_or(draw, st.sampled_from(["float32", "float64", np.float64]), ["float16", "int32", None])
    activation = valid_or(draw, st.sampled_from(["relu", "tanh", "sigmoid", "linear"]), ["elu", None])
    seed = valid_or(draw, st.integers(0, 2**64 - 1), [None, -1, 1.5, 2**64])
    net, exc = call(cydrop.MLP, layer_sizes, keep_prob=keep_prob, activation=activation, output=output,
                    dtype=dtype, seed=seed)
    if exc is not None:
        return
    assert all(valid_keep_prob(k) for k in net.keep_prob)
    n = draw(st.integers(1, 12))
    X_shape = valid_or(draw, st.just((n, n_in)), [(0, n_in), (n,), (n, n_in + 1), ()])
    X = draw(maybe_not_array(arrays(X_shape, magnitude=10, layouts=["c"] * 10 + LAYOUTS), rate=10))
    if output == "linear":
        y_shape = valid_or(draw, st.sampled_from([(n,), (n, n_out)]), [(n + 1,), (), (n, n_out + 1)])
        y = draw(maybe_not_array(arrays(y_shape, magnitude=10), rate=10))
    else:
        labels = draw(st.sampled_from([np.arange(n_out if output == "softmax" else 2), np.array(["a", "b"]),
                                       np.array([0.5, -1.0]), np.array([True, False]), np.arange(5)]))
        y = valid_or(draw, st.just(np.random.default_rng(n).choice(labels, n)),
                     [None, 3, np.array([[0, 1]]), np.array([np.nan] * n), np.array([None] * n, object)])
    fit_kwargs = dict(epochs=valid_or(draw, st.integers(1, 3), [0, 1.5]),
                      batch_size=valid_or(draw, st.sampled_from([1, 4, 100]), [0, None]),
                      optimizer=valid_or(draw, st.sampled_from(["adam", "sgd", "momentum"]), ["rmsprop"]),
                      learning_rate=valid_or(draw, st.sampled_from([1e-3, 0.1, 10.0, 1e6]), [0, -1, math.nan]),
                      l2=valid_or(draw, st.sampled_from([0.0, 0.1]), [-1.0, math.inf]),
                      max_norm=valid_or(draw, st.sampled_from([None, 1.0]), [0.0, math.nan]), progress=False)
    history, exc = call_fit(net, X, y, fit_kwargs)
    if exc is not None:
        return
    assert all(np.isfinite(W).all() for W in net.weights + net.biases), "fit returned with non-finite weights"
    assert all(math.isfinite(v) for values in history.values() if isinstance(values, list) for v in values)
    X_arr = np.asarray(X)
    P = net.predict_proba(X_arr)
    with np.errstate(all="ignore"):
        ref = mlp_forward_reference(net, X_arr.astype(net.dtype))
    tol = 1e-3 if net.dtype == F32 else 1e-9
    assert np.allclose(P, ref, rtol=tol, atol=tol * np.abs(ref).max(initial=1.0)), (P, ref)
    COUNTS["compared"] += 1
    predicted = net.predict(X_arr)
    assert len(predicted) == len(X_arr)
    if output != "linear":
        assert set(predicted.tolist()) <= set(net.classes_.tolist())
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.npz")
        _, exc = call(net.save, path)
        if exc is None:
            loaded = cydrop.MLP.load(path)
            assert_bits_equal(loaded.predict_proba(X_arr), P, "loaded MLP")


def call_fit(net, X, y, fit_kwargs):
    """fit, where a divergence (FloatingPointError, documented) counts as a refusal."""
    try:
        return call(net.fit, X, y, **fit_kwargs)
    except FloatingPointError as exc:
        assert "diverged" in str(exc)
        return None, exc


# ---------------------------------------------------------------- estimators

def valid_or_rarely(draw, valid, hostile):
    return valid_or(draw, valid, hostile, n=25)


@fuzz_settings(150)
@given(st.data())
def fuzz_estimators(data):
    """cydrop.sklearn's estimators: refused (scikit-learn's InvalidParameterError
    is a ValueError) or fitted to finite weights whose predictions are labels
    seen in training and probabilities that sum to 1."""
    from cydrop.sklearn import DropoutMLPClassifier, DropoutMLPRegressor

    draw = data.draw
    classifier = draw(st.booleans())
    cls = DropoutMLPClassifier if classifier else DropoutMLPRegressor
    params = dict(
        hidden_layer_sizes=valid_or_rarely(draw, st.sampled_from([(4,), (3, 2), (), 5]), [(0,), (-1,), "4", (2.5,)]),
        keep_prob=valid_or_rarely(draw, st.one_of(st.floats(0.05, 1), st.sampled_from([1.0, 0.5])),
                           [0.0, math.nan, 1.5, "0.5", True, (0.5,) * 5]),
        activation=valid_or_rarely(draw, st.sampled_from(["relu", "tanh", "logistic", "identity"]), ["elu", "sigmoid"]),
        dtype=valid_or_rarely(draw, st.sampled_from(["float32", "float64"]), ["float16", np.int32]),
        max_iter=valid_or_rarely(draw, st.integers(1, 3), [0, 1.5]),
        batch_size=valid_or_rarely(draw, st.sampled_from(["auto", 4, 100]), [0, "all"]),
        learning_rate_init=valid_or_rarely(draw, st.sampled_from([1e-3, 0.1, 1e3]), [0.0, math.nan, -1.0]),
        early_stopping=draw(st.sampled_from([False, False, True])), random_state=0)
    n, n_features = draw(st.integers(2, 12)), draw(st.integers(1, 4))
    X_shape = valid_or_rarely(draw, st.just((n, n_features)), [(0, n_features), (n,), ()])
    X = draw(maybe_not_array(arrays(X_shape, magnitude=10, specials=one_in(draw, 5),
                                    layouts=["c"] * 10 + LAYOUTS), rate=20))
    if classifier:
        labels = draw(st.sampled_from([np.arange(3), np.array(["a", "b"]), np.array([-1, 7])]))
        y = valid_or_rarely(draw, st.just(np.random.default_rng(n).choice(labels, n)),
                     [None, np.array([np.nan] * n), np.zeros(n), np.arange(n + 1)])
    else:
        y_shape = valid_or_rarely(draw, st.sampled_from([(n,), (n, 2)]), [(n + 1,), ()])
        y = draw(maybe_not_array(arrays(y_shape, magnitude=10, specials=one_in(draw, 5)), rate=20))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est, exc = call(cls(**params).fit, X, y)
        except FloatingPointError as diverged:
            assert "diverged" in str(diverged)
            return
        if exc is not None:
            return
        X_arr = np.asarray(X)
        assert all(np.isfinite(W).all() for W in est.coefs_ + est.intercepts_), "non-finite weights"
        pred = est.predict(X_arr)
        assert len(pred) == len(X_arr)
        if classifier:
            P = est.predict_proba(X_arr)
            assert np.isfinite(P).all() and np.allclose(P.sum(axis=1), 1, atol=1e-3)
            assert set(np.unique(pred).tolist()) <= set(np.unique(y).tolist())
        else:
            assert np.isfinite(pred).all()
    COUNTS["compared"] += 1


TARGETS = {
    "dropout": fuzz_dropout,
    "dropout_backward": fuzz_dropout_backward,
    "mask": fuzz_mask,
    "generator": fuzz_generator,
    "dense_forward": fuzz_dense_forward,
    "dense_backward": fuzz_dense_backward,
    "optim": fuzz_optim,
    "mlp": fuzz_mlp,
    "estimators": fuzz_estimators,
}


def main(argv):
    if len(argv) != 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} TARGET, TARGET in {sorted(TARGETS)}")
    if os.environ.get("CYDROP_EXPECT_DEBUG_BUILD") == "1" and not getattr(cydrop._openmp, "debug_build", bool)():
        sys.exit(f"expected cydrop's debug build, imported {cydrop.__file__}")
    warnings.simplefilter("ignore", RuntimeWarning)  # overflow/invalid in the NumPy references
    start = time.perf_counter()
    TARGETS[argv[1]]()
    print(json.dumps(dict(target=argv[1], seconds=round(time.perf_counter() - start, 2), **COUNTS)))
    if os.environ.get("CYDROP_FUZZ_VERBOSE") == "1":
        for reason, count in REASONS.most_common():
            print(f"{count:6d}  {reason}")


if __name__ == "__main__":
    main(sys.argv)
