"""cydrop.dropout, cydrop.dropout_backward and cydrop.Mask against NumPy.

Values are compared bit for bit with ``reference_dropout`` given the same
mask: the contract is ``y = x * (D * s)``, ``s = dtype(1 / keep_prob)``,
exactly. The mask itself is compared with the reference generator.
"""
import copy
import hashlib
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cydrop
from reference import bits_equal, reference_dropout, reference_mask_for_seed, words_of

DTYPES = [np.float32, np.float64]
SHAPES = [(0,), (0, 5), (1,), (7,), (64,), (1000,), (3, 5, 7), (4, 64), (33, 129)]
KEEP_PROBS = [0.5, 0.86, 1 / 3, 0.1, 0.999]


def data(shape, dtype, seed=0):
    """Signed values over several magnitudes (negative ones check -0.0 when dropped)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, size=shape)
    return np.asarray(x, dtype=dtype)


def assert_bits_equal(actual, expected):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    assert bits_equal(actual, expected), (
        f"{np.count_nonzero(actual != expected)} elements differ; "
        f"first actual {actual.reshape(-1)[:4]}, expected {expected.reshape(-1)[:4]}"
    )


# --- forward values ---------------------------------------------------------

@pytest.mark.parametrize("keep_prob", KEEP_PROBS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_matches_reference(dtype, shape, keep_prob):
    x = data(shape, dtype)
    x_before = x.copy()
    y, mask = cydrop.dropout(x, keep_prob, seed=3)
    expected_mask = reference_mask_for_seed(3, shape, keep_prob)
    np.testing.assert_array_equal(mask.to_bool(), expected_mask)
    assert mask.shape == shape and mask.keep_prob == keep_prob
    assert_bits_equal(y, reference_dropout(x, expected_mask, keep_prob))
    assert y.flags.c_contiguous
    assert bits_equal(x, x_before)  # input untouched


@pytest.mark.parametrize("dtype", DTYPES)
def test_scalar_shape(dtype):
    x = np.array(-2.5, dtype=dtype)
    for keep_prob in (0.5, 1.0):
        y, mask = cydrop.dropout(x, keep_prob, seed=1)
        assert y.shape == () and mask.shape == ()
        expected = reference_mask_for_seed(1, (), keep_prob)
        assert_bits_equal(y, reference_dropout(x, expected, keep_prob))
        assert_bits_equal(cydrop.dropout_backward(x, mask), y)


@pytest.mark.parametrize("keep_prob", [0.5, 0.8, 0.86, 0.1, 1 / 3, 0.999, 1e-9, 0.7071, 0.123456789])
@pytest.mark.parametrize("dtype", DTYPES)
def test_within_one_ulp_of_division(dtype, keep_prob):
    # y = x * fl(1 / keep_prob) differs from fl(x * D / keep_prob) by at most
    # one unit in the last place of the dtype.
    x = data(100_000, dtype, seed=1)
    y, mask = cydrop.dropout(x, keep_prob, seed=5)
    divided = (x * mask.to_bool().astype(dtype) / dtype(keep_prob)).astype(dtype)
    ulp = np.spacing(np.abs(divided))
    assert np.all(np.abs(y.astype(np.float64) - divided.astype(np.float64)) <= ulp)


@pytest.mark.parametrize(
    "make_view",
    [
        lambda a: a.T,
        lambda a: a[::2, ::3],
        lambda a: a[::-1, 1:],
        lambda a: np.asfortranarray(a),
        lambda a: a[:, 5],
    ],
    ids=["transposed", "strided", "reversed", "fortran", "column"],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_input_is_its_logical_array(dtype, make_view):
    x = make_view(data((40, 130), dtype))
    assert not x.flags.c_contiguous
    y, mask = cydrop.dropout(x, 0.6, seed=9)
    expected_mask = reference_mask_for_seed(9, x.shape, 0.6)
    np.testing.assert_array_equal(mask.to_bool(), expected_mask)
    assert_bits_equal(y, reference_dropout(np.ascontiguousarray(x), expected_mask, 0.6))
    assert y.flags.c_contiguous


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place(dtype):
    x = data((17, 300), dtype)
    x_before = x.copy()
    y, mask = cydrop.dropout(x, 0.7, seed=2, out=x)
    assert y is x
    assert_bits_equal(x, reference_dropout(x_before, reference_mask_for_seed(2, x.shape, 0.7), 0.7))


@pytest.mark.parametrize("dtype", DTYPES)
def test_preallocated_out(dtype):
    x = data((17, 300), dtype)
    out = np.full_like(x, np.nan)
    y, mask = cydrop.dropout(x, 0.7, seed=2, out=out)
    assert y is out
    assert_bits_equal(out, reference_dropout(x, reference_mask_for_seed(2, x.shape, 0.7), 0.7))


@pytest.mark.parametrize("dtype", DTYPES)
def test_read_only_input_is_fine(dtype):
    x = data((5, 70), dtype)
    x.flags.writeable = False
    y, mask = cydrop.dropout(x, 0.5, seed=4)
    assert_bits_equal(y, reference_dropout(x, mask.to_bool(), 0.5))


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_size_with_out(dtype):
    x = np.empty((3, 0), dtype=dtype)
    out = np.empty_like(x)
    y, mask = cydrop.dropout(x, 0.5, seed=1, out=out)
    assert y is out and mask.shape == (3, 0) and mask.count_kept() == 0 and mask.size == 0


# --- explicit masks -----------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_explicit_mask_object(dtype):
    x = data((9, 130), dtype)
    y_drawn, mask = cydrop.dropout(x, 0.3, seed=8)
    y, returned = cydrop.dropout(x, 0.3, mask=mask)
    assert returned == mask
    assert_bits_equal(y, y_drawn)
    # with another x: the same mask, not a new draw
    x2 = data((9, 130), dtype, seed=1)
    y2, _ = cydrop.dropout(x2, 0.3, mask=mask)
    assert_bits_equal(y2, reference_dropout(x2, mask.to_bool(), 0.3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_explicit_bool_mask(dtype):
    x = data((9, 130), dtype)
    bool_mask = np.random.default_rng(1).random((130, 9)).T < 0.4  # non-contiguous
    y, mask = cydrop.dropout(x, 0.4, mask=bool_mask)
    assert isinstance(mask, cydrop.Mask) and mask.keep_prob == 0.4
    np.testing.assert_array_equal(mask.to_bool(), bool_mask)
    assert_bits_equal(y, reference_dropout(x, bool_mask, 0.4))


@pytest.mark.parametrize("dtype", DTYPES)
def test_explicit_mask_in_place_and_out(dtype):
    x = data((3, 100), dtype)
    bool_mask = np.random.default_rng(2).random(x.shape) < 0.5
    expected = reference_dropout(x, bool_mask, 0.5)
    out = np.empty_like(x)
    assert cydrop.dropout(x, 0.5, mask=bool_mask, out=out)[0] is out
    assert_bits_equal(out, expected)
    assert cydrop.dropout(x, 0.5, mask=bool_mask, out=x)[0] is x
    assert_bits_equal(x, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_explicit_all_kept_mask(dtype):
    x = data((4, 50), dtype)
    y, _ = cydrop.dropout(x, 1.0, mask=cydrop.Mask.all_kept(x.shape))
    assert_bits_equal(y, x)
    y, _ = cydrop.dropout(x, 0.25, mask=cydrop.Mask.all_kept(x.shape, 0.25))
    assert_bits_equal(y, reference_dropout(x, np.ones(x.shape, bool), 0.25))


# --- backward -----------------------------------------------------------------

@pytest.mark.parametrize("keep_prob", [0.5, 0.86, 0.1])
@pytest.mark.parametrize("shape", [(0,), (1,), (1000,), (3, 5, 7), (33, 129)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_matches_reference(dtype, shape, keep_prob):
    _, mask = cydrop.dropout(data(shape, dtype), keep_prob, seed=6)
    dy = data(shape, dtype, seed=1)
    dx = cydrop.dropout_backward(dy, mask)
    assert_bits_equal(dx, reference_dropout(dy, mask.to_bool(), keep_prob))


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_equals_forward_on_same_data(dtype):
    x = data((21, 77), dtype)
    y, mask = cydrop.dropout(x, 0.45, seed=1)
    assert_bits_equal(cydrop.dropout_backward(x, mask), y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_in_place_out_and_non_contiguous(dtype):
    _, mask = cydrop.dropout(np.ones((40, 30), dtype), 0.5, seed=7)
    dy = data((30, 40), dtype).T  # non-contiguous
    expected = reference_dropout(np.ascontiguousarray(dy), mask.to_bool(), 0.5)
    assert_bits_equal(cydrop.dropout_backward(dy, mask), expected)
    out = np.empty((40, 30), dtype)
    assert cydrop.dropout_backward(dy, mask, out=out) is out
    assert_bits_equal(out, expected)
    dy_c = np.ascontiguousarray(dy)
    assert cydrop.dropout_backward(dy_c, mask, out=dy_c) is dy_c
    assert_bits_equal(dy_c, expected)


# --- keep_prob == 1 -------------------------------------------------------------

def special_values(dtype):
    """NaNs with payloads and both signs, infinities, signed zeros, subnormals."""
    uint = {np.float32: np.uint32, np.float64: np.uint64}[dtype]
    info = np.finfo(dtype)
    nans = np.array([0x7FC00001, 0xFFC12345, 0x7F800001] if dtype is np.float32 else
                    [0x7FF8000000000001, 0xFFF8123456789ABC, 0x7FF0000000000001], dtype=uint).view(dtype)
    values = np.array([0.0, -0.0, np.inf, -np.inf, info.smallest_subnormal, -info.smallest_subnormal,
                       info.max, info.tiny, 1.0, -3.5], dtype=dtype)
    return np.concatenate([nans, values, data(100, dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_keep_prob_one_is_exact_copy(dtype):
    x = special_values(dtype)
    gen = cydrop.Generator(1)
    y, mask = cydrop.dropout(x, 1.0, seed=gen)
    assert y is not x and not np.shares_memory(y, x)
    assert_bits_equal(y, x)  # NaN payloads (even signalling), -0.0, subnormals
    assert mask.words is None and mask.nbytes == 0
    assert mask.keep_prob == 1.0 and mask.shape == x.shape
    assert mask.count_kept() == x.size and mask.to_bool().all()
    assert gen.state["counter"] == 0  # nothing drawn
    # in place and into out
    out = np.empty_like(x)
    assert cydrop.dropout(x, 1.0, out=out)[0] is out
    assert_bits_equal(out, x)
    x_copy = x.copy()
    assert cydrop.dropout(x_copy, 1.0, out=x_copy)[0] is x_copy
    assert_bits_equal(x_copy, x)
    # non-contiguous input: a contiguous exact copy
    x2 = np.stack([x, x[::-1]], axis=1)
    y2, _ = cydrop.dropout(x2.T, 1)
    assert_bits_equal(y2, np.ascontiguousarray(x2.T))


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_with_keep_prob_one_mask_is_copy(dtype):
    # backward computes dy * (D * s) with s = 1, which is exact except that
    # it quiets signalling NaNs: compare on the NaN-free part
    dy = special_values(dtype)[3:]
    _, mask = cydrop.dropout(dy, 1.0)
    assert_bits_equal(cydrop.dropout_backward(dy, mask), dy)


# --- NaN / inf ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf_follow_the_formula(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 1.0, -1.0, 0.0, -0.0] * 2, dtype=dtype)
    kept = np.array([True] * 7 + [False] * 7)
    y, _ = cydrop.dropout(x, 0.5, mask=kept)
    # kept: nan, inf, -inf, 2, -2, 0, -0; dropped: nan, nan (inf * 0), nan, 0, -0, 0, -0
    np.testing.assert_array_equal(y, np.array([np.nan, np.inf, -np.inf, 2, -2, 0, 0,
                                               np.nan, np.nan, np.nan, 0, 0, 0, 0], dtype=dtype))
    np.testing.assert_array_equal(np.signbit(y[[5, 6, 10, 11, 12, 13]]), [False, True, False, True, False, True])
    assert_bits_equal(y, reference_dropout(x, kept, 0.5))
    # the same through a drawn mask and through backward
    big = np.tile(x, 100)
    y, mask = cydrop.dropout(big, 0.5, seed=3)
    assert_bits_equal(y, reference_dropout(big, mask.to_bool(), 0.5))
    assert_bits_equal(cydrop.dropout_backward(big, mask), y)


# --- Mask -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(), (0,), (1,), (63,), (64,), (65,), (3, 5, 7), (2, 0, 3), (1000,)])
def test_mask_from_bool_round_trip(shape):
    arr = np.asarray(np.random.default_rng(5).random(shape) < 0.3)
    mask = cydrop.Mask.from_bool(arr, 0.3)
    n = arr.size
    assert mask.shape == shape and mask.size == n and mask.keep_prob == 0.3
    np.testing.assert_array_equal(mask.to_bool(), arr)
    assert mask.to_bool().dtype == np.bool_ and mask.to_bool().shape == shape
    assert mask.count_kept() == int(arr.sum())
    assert mask.words.dtype == np.uint64 and mask.words.shape == (-(-n // 64),)
    np.testing.assert_array_equal(mask.words, words_of(arr))
    assert mask.nbytes <= -(-n // 8) + 64
    assert mask == cydrop.Mask.from_bool(arr.copy(), 0.3)
    assert mask != cydrop.Mask.from_bool(arr, 0.5)
    if n:
        flipped = arr.copy()
        flipped.flat[-1] = ~flipped.flat[-1]
        assert mask != cydrop.Mask.from_bool(flipped, 0.3)


def test_mask_from_non_contiguous_bool():
    arr = np.random.default_rng(5).random((70, 3)) < 0.5
    mask = cydrop.Mask.from_bool(arr.T, 0.5)
    np.testing.assert_array_equal(mask.to_bool(), arr.T)


@pytest.mark.parametrize("n", [1, 100, 4096, 1_000_003])
def test_drawn_mask_storage(n):
    _, mask = cydrop.dropout(np.ones(n, np.float32), 0.5, seed=0)
    # one bit per element: ceil(n / 8) bytes plus at most one word of padding
    assert mask.nbytes <= -(-n // 8) + 64
    assert mask.nbytes == mask.words.nbytes == 8 * -(-n // 64)
    assert mask.count_kept() == int(mask.to_bool().sum())


def test_mask_all_kept():
    mask = cydrop.Mask.all_kept((4, 5))
    assert mask.words is None and mask.nbytes == 0 and mask.keep_prob == 1.0
    assert mask.count_kept() == 20 and mask.to_bool().all() and mask.to_bool().shape == (4, 5)
    assert mask == cydrop.Mask.from_bool(np.ones((4, 5), bool), 1.0)
    assert mask != cydrop.Mask.from_bool(np.eye(4, 5, dtype=bool), 1.0)


def test_mask_words_are_read_only():
    _, drawn = cydrop.dropout(np.ones(200), 0.5, seed=0)
    packed = cydrop.Mask.from_bool(np.ones(200, bool), 0.5)
    for mask in (drawn, packed):
        before = mask.words.copy()
        assert not mask.words.flags.writeable
        with pytest.raises(ValueError):
            mask.words[0] = 0
        with pytest.raises(AttributeError):
            mask.shape = (100, 2)
        with pytest.raises(AttributeError):
            mask.keep_prob = 0.1
        # to_bool hands out a copy
        arr = mask.to_bool()
        arr[:] = False
        np.testing.assert_array_equal(mask.words, before)


def test_mask_leaves_the_callers_words_array_as_it_was():
    words = np.array([0b1011], dtype=np.uint64)
    mask = cydrop.Mask(words, (4,), 0.75)
    assert words.flags.writeable                       # the caller's flags are not touched
    words[0] = 0                                       # and writing to it does not reach the mask
    assert mask.to_bool().tolist() == [True, True, False, True]
    assert not mask.words.flags.writeable and not np.shares_memory(mask.words, words)


def test_mask_words_cannot_be_made_writable():
    # "Masks are immutable": flipping the flag back must not open a way in.
    _, mask = cydrop.dropout(np.ones(200), 0.5, seed=0)
    before = mask.words.copy()
    try:
        mask.words.flags.writeable = True
        mask.words[:] = 0
    except ValueError:
        pass
    np.testing.assert_array_equal(mask.words, before)


@pytest.mark.parametrize("how", ["pickle", "copy", "deepcopy"])
@pytest.mark.parametrize("make", ["drawn", "packed", "all_kept", "empty"])
def test_copied_mask_stays_immutable(make, how):
    mask = {"drawn": lambda: cydrop.dropout(np.ones((7, 30)), 0.5, seed=3)[1],
            "packed": lambda: cydrop.Mask.from_bool(np.eye(7, 30, dtype=bool), 0.25),
            "all_kept": lambda: cydrop.Mask.all_kept((7, 30)),
            "empty": lambda: cydrop.Mask.from_bool(np.ones((0, 3), bool), 0.5)}[make]()
    clone = {"pickle": lambda m: pickle.loads(pickle.dumps(m)), "copy": copy.copy,
             "deepcopy": copy.deepcopy}[how](mask)
    assert clone == mask and clone.shape == mask.shape and clone.keep_prob == mask.keep_prob
    np.testing.assert_array_equal(clone.to_bool(), mask.to_bool())
    if clone.words is None:
        assert mask.words is None
        return
    assert not clone.words.flags.writeable
    with pytest.raises(ValueError):
        clone.words[0] = 0
    with pytest.raises(ValueError):
        clone.words.flags.writeable = True
    with pytest.raises(AttributeError):
        clone.shape = (210,)


def test_unpickled_mask_owns_its_words():
    # out-of-band buffers (pickle protocol 5) stay with whoever provided them
    mask = cydrop.Mask.from_bool(np.eye(5, 70, dtype=bool), 0.5)
    buffers = []
    data = pickle.dumps(mask, protocol=5, buffer_callback=buffers.append)
    assert buffers, "numpy sent the words in-band: the test would prove nothing"
    raw = [bytearray(b.raw()) for b in buffers]
    clone = pickle.loads(data, buffers=raw)
    for buf in raw:
        buf[:] = bytes(len(buf))
    assert clone == mask


def test_corrupt_pickled_mask_refused():
    # a pickle that sets a bit past the last element is checked like the constructor
    mask = cydrop.Mask.from_bool(np.ones(10, bool), 0.5)
    func, (words, shape, keep_prob) = mask.__reduce__()
    bad = words.copy()
    bad[0] = ~np.uint64(0)
    with pytest.raises(ValueError, match="past the last element"):
        func(bad, shape, keep_prob)
    with pytest.raises(ValueError, match="keep_prob"):
        func(words, shape, 0.0)


def test_bool_mask_is_copied_not_referenced():
    arr = np.zeros(100, bool)
    mask = cydrop.Mask.from_bool(arr, 0.5)
    arr[:] = True
    assert mask.count_kept() == 0


# --- determinism across thread counts ----------------------------------------------

# 4M elements: every one of 2 threads takes grabs of 16 chunks of 4096
# elements over the pool; the second shape leaves a partial last chunk.
BIG_SHAPES = [(1024, 4096), (1031, 4099)]
# Above the kernels' serial size (8 chunks, 32k elements) and below one grab
# per thread: the chunks are split in equal shares (the demo network's
# 100x512 activations; 64x784; a partial last chunk).
MID_SHAPES = [(100, 512), (64, 784), (7, 5003)]


@pytest.mark.parametrize("shape", BIG_SHAPES + MID_SHAPES)
def test_same_result_on_one_two_and_three_threads(shape, reset_threads):
    x = data(shape, np.float32)
    results = {}
    # 3 threads: more than a mid-sized array's team (one thread per 32k elements)
    for n_threads in (1, 2, 3):
        cydrop.set_num_threads(n_threads)
        assert cydrop.get_num_threads() == n_threads
        y, mask = cydrop.dropout(x, 0.86, seed=77)
        dx = cydrop.dropout_backward(x, mask)
        results[n_threads] = y, mask, dx
    y1, m1, dx1 = results[1]
    for y2, m2, dx2 in (results[2], results[3]):
        np.testing.assert_array_equal(m1.words, m2.words)
        assert_bits_equal(y1, y2)
        assert_bits_equal(dx1, dx2)
    # and it is the reference, not merely consistent
    np.testing.assert_array_equal(m1.to_bool(), reference_mask_for_seed(77, shape, 0.86))
    assert_bits_equal(y1, reference_dropout(x, m1.to_bool(), 0.86))


SUBPROCESS_SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    import numpy as np
    import cydrop
    shape = tuple(int(d) for d in sys.argv[1].split("x"))
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    y, mask = cydrop.dropout(x, 0.86, seed=77)
    print(cydrop.get_num_threads())
    print(hashlib.sha256(mask.words.tobytes()).hexdigest())
    print(hashlib.sha256(y.tobytes()).hexdigest())
    """
)


@pytest.mark.skipif(not cydrop._openmp.openmp_enabled(), reason="built without OpenMP")
@pytest.mark.parametrize("shape", BIG_SHAPES)
def test_same_result_across_processes_with_omp_num_threads(shape):
    arg = "x".join(map(str, shape))
    outputs = {}
    for n_threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": n_threads}
        proc = subprocess.run([sys.executable, "-c", SUBPROCESS_SCRIPT, arg], env=env,
                              capture_output=True, text=True, timeout=120, check=True)
        reported, mask_digest, y_digest = proc.stdout.split()
        assert reported == n_threads  # OMP_NUM_THREADS reached the kernels
        outputs[n_threads] = mask_digest, y_digest
    assert outputs["1"] == outputs["2"]
    # the same as this process draws
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    y, mask = cydrop.dropout(x, 0.86, seed=77)
    assert outputs["1"] == (hashlib.sha256(mask.words.tobytes()).hexdigest(),
                            hashlib.sha256(y.tobytes()).hexdigest())


# --- property-based: shapes and edge values -------------------------------------------

float_arrays = st.sampled_from(DTYPES).flatmap(
    lambda dtype: hnp.arrays(
        dtype,
        # scalar shape () is covered by test_scalar_shape
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=70),
        elements=st.floats(width=np.dtype(dtype).itemsize * 8, allow_nan=True, allow_infinity=True),
    )
)
keep_probs = st.one_of(
    st.floats(min_value=2.0**-40, max_value=1.0, exclude_min=False),
    st.sampled_from([1.0, 0.5, 1 - 2.0**-34, 2.0**-33, 1e-9]),
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(x=float_arrays, keep_prob=keep_probs, seed=st.integers(0, 2**64 - 1))
def test_forward_property(x, keep_prob, seed):
    y, mask = cydrop.dropout(x, keep_prob, seed=seed)
    assert mask.shape == x.shape
    if keep_prob == 1.0:
        assert_bits_equal(y, x)
        assert mask.nbytes == 0
        return
    expected_mask = reference_mask_for_seed(seed, x.shape, keep_prob)
    np.testing.assert_array_equal(mask.to_bool(), expected_mask)
    assert_bits_equal(y, reference_dropout(x, expected_mask, keep_prob))
    assert_bits_equal(cydrop.dropout_backward(x, mask), y)


# --- noise_shape: a mask broadcast over axes of size 1 (Keras semantics) ----

NOISE_CASES = [
    ((4, 3, 5, 7), (4, 3, 1, 1)),      # Dropout2d: whole channels
    ((4, 3, 5, 7), (1, 3, 5, 7)),      # one mask for the whole batch
    ((4, 3, 5, 7), (4, 1, 5, 1)),      # alternating kinds, rows off word boundaries
    ((4, 3, 5, 7), (1, 1, 1, 1)),      # one bit for everything
    ((4, 3, 5, 7), (4, 3, 1, 7)),
    ((2, 70, 130), (2, 1, 130)),       # rows of 130 bits straddle words
    ((3, 1, 200), (1, 1, 200)),        # size-1 axes of x belong to neither kind
    ((0, 3), (1, 3)),
    ((5, 0), (5, 1)),
]


def broadcast_reference(x, seed, noise_shape, keep_prob):
    """The expected (y, mask) of dropout(x, ..., seed=seed, noise_shape=...):
    the reference mask of noise_shape, broadcast to x by NumPy."""
    mask = reference_mask_for_seed(seed, noise_shape, keep_prob)
    return reference_dropout(x, np.broadcast_to(mask, x.shape), keep_prob), mask


@pytest.mark.parametrize("keep_prob", [0.5, 0.86, 0.1])
@pytest.mark.parametrize("shape, noise_shape", NOISE_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_noise_shape_matches_reference(dtype, shape, noise_shape, keep_prob):
    x = data(shape, dtype)
    y, mask = cydrop.dropout(x, keep_prob, seed=11, noise_shape=noise_shape)
    expected_y, expected_mask = broadcast_reference(x, 11, noise_shape, keep_prob)
    assert mask.shape == noise_shape and mask.keep_prob == keep_prob
    np.testing.assert_array_equal(mask.to_bool(), expected_mask)
    assert_bits_equal(y, expected_y)
    # backward applies the same broadcast mask
    dy = data(shape, dtype, seed=1)
    assert_bits_equal(cydrop.dropout_backward(dy, mask),
                      reference_dropout(dy, np.broadcast_to(expected_mask, shape), keep_prob))


def test_noise_shape_stores_only_its_own_bits():
    x = np.ones((64, 256, 8, 8), dtype=np.float32)
    _, mask = cydrop.dropout(x, 0.5, seed=0, noise_shape=(64, 256, 1, 1))
    assert mask.nbytes == 64 * 256 // 8


def test_noise_shape_none_entries_and_full_shape():
    x = data((3, 4, 5), np.float32)
    y1, m1 = cydrop.dropout(x, 0.7, seed=2, noise_shape=(None, 4, 1))
    assert m1.shape == (3, 4, 1)
    y2, m2 = cydrop.dropout(x, 0.7, seed=2, noise_shape=(3, 1, 1))
    expected, _ = broadcast_reference(x, 2, (3, 4, 1), 0.7)
    assert_bits_equal(y1, expected)
    # noise_shape == x.shape is plain dropout, bit for bit
    y3, m3 = cydrop.dropout(x, 0.7, seed=2, noise_shape=x.shape)
    y4, m4 = cydrop.dropout(x, 0.7, seed=2)
    assert_bits_equal(y3, y4)
    assert m3 == m4


@pytest.mark.parametrize("dtype", DTYPES)
def test_noise_shape_in_place_out_and_keep_prob_one(dtype):
    x = data((6, 5, 9), dtype)
    expected, _ = broadcast_reference(x, 4, (6, 5, 1), 0.6)
    out = np.empty_like(x)
    y, _ = cydrop.dropout(x, 0.6, seed=4, noise_shape=(6, 5, 1), out=out)
    assert y is out
    assert_bits_equal(out, expected)
    x2 = x.copy()
    cydrop.dropout(x2, 0.6, seed=4, noise_shape=(6, 5, 1), out=x2)
    assert_bits_equal(x2, expected)
    y, mask = cydrop.dropout(x, 1.0, seed=4, noise_shape=(6, 5, 1))
    assert_bits_equal(y, x)
    assert mask.shape == (6, 5, 1) and mask.count_kept() == 30


def test_noise_shape_explicit_mask():
    x = data((4, 3, 5), np.float64)
    channels = np.array([[True, False, True]] * 4).reshape(4, 3, 1)
    y, mask = cydrop.dropout(x, 0.5, mask=channels, noise_shape=(4, 3, 1))
    assert_bits_equal(y, reference_dropout(x, np.broadcast_to(channels, x.shape), 0.5))
    assert mask.shape == (4, 3, 1)
    with pytest.raises(ValueError, match="mask must have shape"):
        cydrop.dropout(x, 0.5, mask=channels)   # without noise_shape the mask is x's shape


@pytest.mark.parametrize("bad, error, match", [
    ((4, 3), ValueError, "one entry per axis"),
    ((4, 3, 5, 1), ValueError, "one entry per axis"),
    ((4, 2, 5), ValueError, "equal the data's shape"),
    ((4, 3, 0), ValueError, "equal the data's shape"),
    ((4, 3, 5.0), TypeError, "ints or None"),
    ((4, True, 5), TypeError, "ints or None"),
    (7, TypeError, "sequence"),
])
def test_noise_shape_refused(bad, error, match):
    x = data((4, 3, 5), np.float32)
    x_before = x.copy()
    gen = cydrop.Generator(0)
    with pytest.raises(error, match=match):
        cydrop.dropout(x, 0.5, seed=gen, noise_shape=bad)
    assert gen.state["counter"] == 0 and bits_equal(x, x_before)


def test_backward_refuses_a_mask_that_does_not_broadcast():
    _, mask = cydrop.dropout(np.ones((4, 3, 1)), 0.5, seed=0)
    with pytest.raises(ValueError, match="mask.shape"):
        cydrop.dropout_backward(np.ones((4, 2, 5)), mask)
    with pytest.raises(ValueError, match="mask.shape"):
        cydrop.dropout_backward(np.ones((4, 3)), mask)


@pytest.mark.parametrize("shape, noise_shape", [((64, 96, 33, 9), (64, 96, 1, 1)),
                                                ((64, 96, 33, 9), (1, 96, 33, 9)),
                                                ((64, 96, 33, 9), (64, 1, 33, 9))])
def test_noise_shape_same_on_one_and_two_threads(shape, noise_shape, reset_threads):
    # 1.8M elements: the row-parallel path of the broadcast apply runs on 2 threads
    x = data(shape, np.float32)
    results = []
    for n_threads in (1, 2):
        cydrop.set_num_threads(n_threads)
        y, mask = cydrop.dropout(x, 0.8, seed=9, noise_shape=noise_shape)
        results.append((y, mask, cydrop.dropout_backward(x, mask)))
    (y1, m1, dx1), (y2, m2, dx2) = results
    assert m1 == m2
    assert_bits_equal(y1, y2)
    assert_bits_equal(dx1, dx2)
    expected, _ = broadcast_reference(x, 9, noise_shape, 0.8)
    assert_bits_equal(y2, expected)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=9),
       pattern=st.integers(0, 15), keep_prob=st.sampled_from([0.5, 0.3, 1.0]),
       seed=st.integers(0, 2**64 - 1))
def test_noise_shape_property(shape, pattern, keep_prob, seed):
    noise_shape = tuple(1 if pattern >> i & 1 else d for i, d in enumerate(shape))
    x = data(shape, np.float32)
    y, mask = cydrop.dropout(x, keep_prob, seed=seed, noise_shape=noise_shape)
    if keep_prob == 1.0:
        assert_bits_equal(y, x)
        return
    expected, _ = broadcast_reference(x, seed, noise_shape, keep_prob)
    assert_bits_equal(y, expected)
    assert_bits_equal(cydrop.dropout_backward(x, mask), expected)
