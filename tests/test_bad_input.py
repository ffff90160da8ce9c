"""Every bad argument is refused with ValueError or TypeError naming it,
before anything is computed, written or drawn."""
import numpy as np
import pytest

import cydrop

BAD_KEEP_PROBS = [
    (0, ValueError),
    (0.0, ValueError),
    (-0.1, ValueError),
    (1.5, ValueError),
    (1 + 2.0**-52, ValueError),
    (float("nan"), ValueError),
    (float("inf"), ValueError),
    (float("-inf"), ValueError),
    ("0.5", TypeError),
    (None, TypeError),
    (True, TypeError),
    (np.bool_(True), TypeError),
    (0.5 + 0j, TypeError),
    ([0.5], TypeError),
]


@pytest.fixture
def x():
    return np.linspace(-1, 1, 60, dtype=np.float64).reshape(6, 10)


@pytest.mark.parametrize("keep_prob, error", BAD_KEEP_PROBS)
def test_bad_keep_prob(x, keep_prob, error):
    out = np.zeros_like(x)
    gen = cydrop.Generator(0)
    with pytest.raises(error, match="keep_prob"):
        cydrop.dropout(x, keep_prob, seed=gen, out=out)
    assert not out.any() and gen.state["counter"] == 0  # nothing written or drawn
    with pytest.raises(error, match="keep_prob"):
        cydrop.dropout(x, keep_prob, mask=np.ones(x.shape, bool))
    with pytest.raises(error, match="keep_prob"):
        cydrop.Mask.from_bool(np.ones(x.shape, bool), keep_prob)
    with pytest.raises(error, match="keep_prob"):
        cydrop.Mask.all_kept(x.shape, keep_prob)


def test_numpy_float_keep_prob_accepted(x):
    y, mask = cydrop.dropout(x, np.float64(0.5), seed=1)
    assert mask.keep_prob == 0.5 and type(mask.keep_prob) is float


@pytest.mark.parametrize("keep_prob", [np.array(0.5), np.array(0.5, dtype=np.float32)])
def test_a_0d_array_keep_prob_is_its_value(x, keep_prob):
    y, mask = cydrop.dropout(x, keep_prob, seed=1)
    expected, _ = cydrop.dropout(x, 0.5, seed=1)
    assert mask.keep_prob == 0.5 and type(mask.keep_prob) is float
    np.testing.assert_array_equal(y, expected)
    out, cache = cydrop.dense_forward(x, np.ones((10, 2)), None, keep_prob, seed=1)
    assert cache.keep_prob == 0.5
    assert cydrop.Mask.from_bool(np.ones(3, bool), keep_prob).keep_prob == 0.5
    with pytest.raises(TypeError, match="keep_prob"):
        cydrop.dropout(x, np.array(True), seed=1)     # a 0-d bool is no more a number than True
    with pytest.raises(ValueError, match="keep_prob"):
        cydrop.dropout(x, np.array(1.5), seed=1)


@pytest.mark.parametrize(
    "bad_x",
    [
        np.arange(10, dtype=np.int32),
        np.arange(10, dtype=np.int64),
        np.arange(10, dtype=np.uint8),
        np.ones(10, dtype=bool),
        np.ones(10, dtype=np.complex64),
        np.ones(10, dtype=np.complex128),
        np.ones(10, dtype=object),
        np.ones(10, dtype=np.float16),
        np.ones(10, dtype=np.longdouble),
        np.ones(10, dtype=">f8" if np.little_endian else "<f8"),  # non-native byte order
        [1.0, 2.0, 3.0],
        (1.0, 2.0),
        1.5,
        np.float64(1.5),
        None,
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, np.ndarray) else v.dtype.str,
)
def test_bad_x(bad_x):
    with pytest.raises(TypeError, match=r"\bx\b"):
        cydrop.dropout(bad_x, 0.5, seed=1)
    with pytest.raises(TypeError, match=r"\bx\b"):
        cydrop.dropout(bad_x, 1.0)
    with pytest.raises(TypeError, match=r"\bdy\b"):
        cydrop.dropout_backward(bad_x, cydrop.Mask.all_kept((10,), 0.5))


# --- mask -------------------------------------------------------------------------

def test_mask_of_other_shape(x):
    with pytest.raises(ValueError, match="mask"):
        cydrop.dropout(x, 0.5, mask=cydrop.Mask.from_bool(np.ones((10, 6), bool), 0.5))
    with pytest.raises(ValueError, match="mask"):
        cydrop.dropout(x, 0.5, mask=np.ones((60,), bool))
    with pytest.raises(ValueError, match="mask"):
        cydrop.dropout(x, 0.5, mask=np.ones((6, 10, 1), bool))


def test_mask_of_other_keep_prob(x):
    _, mask = cydrop.dropout(x, 0.5, seed=1)
    with pytest.raises(ValueError, match="keep_prob"):
        cydrop.dropout(x, 0.6, mask=mask)
    with pytest.raises(ValueError, match="keep_prob"):
        cydrop.dropout(x, 1.0, mask=mask)


@pytest.mark.parametrize(
    "bad_mask",
    [
        [[True] * 10] * 6,           # nested list
        np.ones((6, 10), np.int8),   # right shape, not bool
        np.ones((6, 10), np.float64),
        "mask",
        0.5,
    ],
    ids=["list", "int8", "float64", "str", "float"],
)
def test_mask_of_wrong_type(x, bad_mask):
    with pytest.raises(TypeError, match="mask"):
        cydrop.dropout(x, 0.5, mask=bad_mask)


def test_both_seed_and_mask(x):
    gen = cydrop.Generator(3)
    with pytest.raises(ValueError, match="seed.*mask|mask.*seed"):
        cydrop.dropout(x, 0.5, seed=gen, mask=np.ones(x.shape, bool))
    assert gen.state["counter"] == 0


@pytest.mark.parametrize("keep_prob", [0.5, 1.0])
@pytest.mark.parametrize("seed, error", [(-1, ValueError), (2**64, ValueError), (1.0, TypeError),
                                         (True, TypeError), ("1", TypeError)])
def test_bad_seed_refused_whatever_keep_prob(x, keep_prob, seed, error):
    with pytest.raises(error, match="seed"):
        cydrop.dropout(x, keep_prob, seed=seed)


# --- out ----------------------------------------------------------------------------

def read_only_like(x):
    out = np.empty_like(x)
    out.flags.writeable = False
    return out


BAD_OUTS = {
    "wrong_shape": (lambda x: np.empty((10, 6), x.dtype), ValueError),
    "same_size_other_shape": (lambda x: np.empty(x.size, x.dtype), ValueError),
    "float32_for_float64": (lambda x: np.empty(x.shape, np.float32), TypeError),
    "int64": (lambda x: np.empty(x.shape, np.int64), TypeError),
    "transposed": (lambda x: np.empty((10, 6), x.dtype).T, ValueError),
    "strided": (lambda x: np.empty((6, 20), x.dtype)[:, ::2], ValueError),
    "read_only": (read_only_like, ValueError),
    "list": (lambda x: [0.0] * x.size, TypeError),
}


@pytest.mark.parametrize("make_out, error", BAD_OUTS.values(), ids=BAD_OUTS.keys())
def test_bad_out(x, make_out, error):
    out = make_out(x)
    gen = cydrop.Generator(0)
    with pytest.raises(error, match="out"):
        cydrop.dropout(x, 0.5, seed=gen, out=out)
    assert gen.state["counter"] == 0
    with pytest.raises(error, match="out"):
        cydrop.dropout(x, 1.0, out=out)
    with pytest.raises(error, match="out"):
        cydrop.dropout(x, 0.5, mask=np.ones(x.shape, bool), out=out)
    _, mask = cydrop.dropout(x, 0.5, seed=1)
    with pytest.raises(error, match="out"):
        cydrop.dropout_backward(x, mask, out=out)


@pytest.mark.parametrize("shift", [1, 7, 64])
def test_out_partially_overlapping_input(shift):
    n = 1000
    buf = np.arange(n + shift, dtype=np.float64)
    before = buf.copy()
    x, out = buf[:-shift], buf[shift:]
    for call in (
        lambda: cydrop.dropout(x, 0.5, seed=1, out=out),
        lambda: cydrop.dropout(x, 1.0, out=out),
        lambda: cydrop.dropout(x, 0.5, mask=np.ones(n, bool), out=out),
        lambda: cydrop.dropout_backward(x, cydrop.Mask.from_bool(np.ones(n, bool), 0.5), out=out),
        # the other direction: out before x
        lambda: cydrop.dropout(out, 0.5, seed=1, out=x),
    ):
        with pytest.raises(ValueError, match="out"):
            call()
    np.testing.assert_array_equal(buf, before)


def test_out_of_same_shape_starting_inside_input():
    # same shape and dtype, so only the overlap check can refuse it
    buf = np.zeros(150, dtype=np.float32)
    x, out = buf[:100].reshape(10, 10), buf[50:].reshape(10, 10)
    with pytest.raises(ValueError, match="out"):
        cydrop.dropout(x, 0.5, seed=1, out=out)
    assert not buf.any()


def test_out_may_be_a_view_of_input_over_the_same_memory():
    # in place through another view object of exactly the same elements
    x = np.linspace(-1, 1, 64)
    expected = cydrop.dropout(x, 0.5, seed=1)[0]
    y, _ = cydrop.dropout(x, 0.5, seed=1, out=x.view())
    np.testing.assert_array_equal(x, expected)


# --- dropout_backward ------------------------------------------------------------------

def test_backward_refuses_bool_array_mask(x):
    with pytest.raises(TypeError, match="mask"):
        cydrop.dropout_backward(x, np.ones(x.shape, bool))


@pytest.mark.parametrize("bad_mask", [None, "mask", [[True] * 10] * 6, 0.5], ids=["None", "str", "list", "float"])
def test_backward_mask_of_wrong_type(x, bad_mask):
    with pytest.raises(TypeError, match="mask"):
        cydrop.dropout_backward(x, bad_mask)


def test_backward_dy_of_wrong_shape(x):
    _, mask = cydrop.dropout(x, 0.5, seed=1)
    for dy in (np.ones((10, 6)), np.ones(60), np.ones((6, 10, 1)), np.ones(())):
        with pytest.raises(ValueError, match="mask|dy"):
            cydrop.dropout_backward(dy, mask)


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.complex128, bool, object])
def test_backward_dy_of_wrong_dtype(x, dtype):
    _, mask = cydrop.dropout(x, 0.5, seed=1)
    with pytest.raises(TypeError, match=r"\bdy\b"):
        cydrop.dropout_backward(x.astype(dtype), mask)


def test_backward_dtype_of_mask_source_does_not_matter(x):
    # masks carry no dtype: a float64 mask applies to float32 gradients
    _, mask = cydrop.dropout(x, 0.5, seed=1)
    dx = cydrop.dropout_backward(x.astype(np.float32), mask)
    assert dx.dtype == np.float32


# --- Mask constructors -------------------------------------------------------------------

@pytest.mark.parametrize("arr", [np.ones(5, np.int8), np.ones(5), [True, False], None],
                         ids=["int8", "float64", "list", "None"])
def test_mask_from_bool_refuses_non_bool(arr):
    with pytest.raises(TypeError, match="bool"):
        cydrop.Mask.from_bool(arr, 0.5)


def test_mask_constructor_checks_words():
    with pytest.raises(ValueError, match="words"):
        cydrop.Mask(np.zeros(1, np.uint64), (65,), 0.5)           # too short
    with pytest.raises(ValueError, match="words"):
        cydrop.Mask(np.zeros(2, np.int64), (65,), 0.5)            # wrong dtype
    with pytest.raises(ValueError, match="words"):
        cydrop.Mask(np.zeros((2, 1), np.uint64), (65,), 0.5)      # not 1-D
    with pytest.raises(ValueError, match="words"):
        cydrop.Mask([0, 0], (65,), 0.5)
    with pytest.raises(ValueError, match="past the last element"):
        cydrop.Mask(np.array([0, 2], np.uint64), (65,), 0.5)      # bit 65 set
    with pytest.raises(ValueError, match="shape"):
        cydrop.Mask(None, (-1, 3), 0.5)
    with pytest.raises(ValueError, match="keep_prob"):
        cydrop.Mask(np.zeros(2, np.uint64), (65,), 0.0)


# --- found by fuzzing (tests/_fuzz_targets.py) ---------------------------------------

def unaligned(arr):
    """arr's values in a C-contiguous array at an odd address."""
    raw = np.zeros(arr.nbytes + arr.itemsize, np.uint8)
    out = raw[1:1 + arr.nbytes].view(arr.dtype).reshape(arr.shape)
    out[...] = arr
    assert not out.flags.aligned and out.flags.c_contiguous
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unaligned_input_is_copied_unaligned_out_refused(dtype):
    # the kernels read through typed pointers: an odd address is undefined behaviour in C
    x = np.linspace(-1, 1, 1000, dtype=dtype)
    expected, mask = cydrop.dropout(x, 0.5, seed=3)
    y, _ = cydrop.dropout(unaligned(x), 0.5, seed=3)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(cydrop.dropout_backward(unaligned(x), mask), cydrop.dropout_backward(x, mask))
    gen = cydrop.Generator(3)
    with pytest.raises(ValueError, match="out must be aligned"):
        cydrop.dropout(x, 0.5, seed=gen, out=unaligned(np.zeros_like(x)))
    assert gen.state["counter"] == 0


def test_unaligned_mask_words_refused():
    words = unaligned(np.zeros(2, np.uint64))
    with pytest.raises(ValueError, match="aligned"):
        cydrop.Mask(words, (100,), 0.5)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix itself
def test_matrix_out_is_written_not_refused_after_drawing():
    # np.matrix.reshape(-1) stays 2-D: the kernel used to refuse it after the
    # generator had advanced
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    expected, _ = cydrop.dropout(x, 0.5, seed=cydrop.Generator(5))
    out = np.asmatrix(np.zeros((3, 4)))
    y, _ = cydrop.dropout(x, 0.5, seed=cydrop.Generator(5), out=out)
    assert y is out
    np.testing.assert_array_equal(np.asarray(out), expected)


@pytest.mark.parametrize("shape, error", [((2**40, 2**40), ValueError), ((2**31, 2**31, 4), ValueError),
                                          ((2.5,), TypeError), (("3",), TypeError), ((None,), TypeError)])
def test_mask_shape_checked(shape, error):
    # (2**40, 2**40) used to be accepted with np.prod wrapping its size to 0
    with pytest.raises(error, match="shape"):
        cydrop.Mask(np.zeros(0, np.uint64), shape, 0.5)
    with pytest.raises(error, match="shape"):
        cydrop.Mask.all_kept(shape, 0.5)


def test_mask_size_is_exact():
    assert cydrop.Mask.all_kept((2**31, 2**31)).size == 2**62
