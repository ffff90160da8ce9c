"""The compiled entry points defend themselves: a caller that skips the
Python API's checks (the MLP, the PyTorch ops) gets ValueError/TypeError,
never an out-of-bounds read or write. Each case is run on arrays whose
neighbours would be overwritten if a kernel trusted the wrong size."""
import numpy as np
import pytest

from cydrop import _dense, _dropout, _optim
from cydrop.dense import ACTIVATIONS

F = np.float32


def test_activation_codes_come_from_the_extension():
    assert ACTIVATIONS == {"linear": 0, "relu": 1, "tanh": 2, "sigmoid": 3}
    assert {m.name.lower(): int(m) for m in _dense.Activation} == ACTIVATIONS


@pytest.mark.parametrize("call, match", [
    (lambda: _dropout.forward(np.ones(100, F), np.empty(99, F), np.empty(2, "<u8"), 1, 0, 2**31, 2.0, 1), "y has"),
    (lambda: _dropout.forward(np.ones(129, F), np.empty(129, F), np.empty(2, "<u8"), 1, 0, 2**31, 2.0, 1), "words has"),
    (lambda: _dropout.apply(np.ones(100, F), np.zeros(1, "<u8"), 2.0, np.empty(100, F), 1), "words has"),
    (lambda: _dropout.apply(np.ones(100, F), np.zeros(2, "<u8"), 2.0, np.empty(101, F), 1), "y has"),
    (lambda: _dropout.draw_words(1, 0, 2**31, np.empty(1, "<u8"), 65), "words has"),
    (lambda: _dropout.draw_words(1, 0, 2**31, np.empty(1, "<u8"), -1), "n_elements"),
    (lambda: _dropout.apply_broadcast(np.ones(12, F), np.zeros(1, "<u8"), (3, 4), (3, 2), 2.0,
                                      np.empty(12, F), 1), "mask_shape"),
    (lambda: _dropout.apply_broadcast(np.ones(12, F), np.zeros(1, "<u8"), (3, 4), (3,), 2.0,
                                      np.empty(12, F), 1), "mask_shape"),
    (lambda: _dropout.apply_broadcast(np.ones(12, F), np.zeros(1, "<u8"), (3, 5), (3, 1), 2.0,
                                      np.empty(12, F), 1), "x has"),
    (lambda: _dropout.apply_broadcast(np.ones(6400, F), np.zeros(1, "<u8"), (100, 64), (100, 1), 2.0,
                                      np.empty(6400, F), 1), "words has"),
    (lambda: _optim.sgd(np.zeros(10, F), np.ones(9, F), 0.1, 0.0), "grad has"),
    (lambda: _optim.momentum(np.zeros(10, F), np.ones(10, F), np.zeros(9, F), 0.1, 0.9, 0.0), "velocity has"),
    (lambda: _optim.adam(np.zeros(10, F), np.ones(10, F), np.zeros(10, F), np.zeros(11, F), 1, 1e-3,
                         0.9, 0.999, 1e-8, 0.0), "v has"),
])
def test_wrong_lengths_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _read_only(a):
    a.flags.writeable = False
    return a


# forward and apply take arrays of any shape (cydrop.torch passes its views as
# they are) and check them through NumPy's C API instead of typed memoryviews
@pytest.mark.parametrize("kernel", ["forward", "apply"])
@pytest.mark.parametrize("change, error, match", [
    (dict(x=np.ones((10, 20), F)[:, ::2]), ValueError, "x must be C-contiguous"),
    (dict(x=np.ones(100, ">f4")), TypeError, "x must have dtype"),
    (dict(x=np.ones(100, np.float16)), TypeError, "float32 or float64"),
    (dict(x=[1.0] * 100), TypeError, "float32 or float64"),
    (dict(y=np.empty(100, np.float64)), TypeError, "y must have dtype"),
    (dict(y=_read_only(np.empty(100, F))), ValueError, "y must be writable"),
    (dict(y=np.empty(200, F)[::2]), ValueError, "y must be C-contiguous"),
    (dict(y=memoryview(np.empty(100, F))), TypeError, "y must be a numpy.ndarray"),
    (dict(words=np.zeros(2, np.int64)), TypeError, "words must have dtype"),
    (dict(words=np.zeros(1, "<u8")), ValueError, "words has 1 words"),
])
def test_forward_and_apply_check_their_arrays(kernel, change, error, match):
    args = dict(x=np.ones(100, F), y=np.empty(100, F), words=np.zeros(2, "<u8"))
    args.update(change)
    call = ((lambda: _dropout.forward(args["x"], args["y"], args["words"], 1, 0, 2**31, 2.0, 1))
            if kernel == "forward" else
            (lambda: _dropout.apply(args["x"], args["words"], 2.0, args["y"], 1)))
    with pytest.raises(error, match=match):
        call()


def test_apply_takes_read_only_words_forward_refuses_them():
    """apply only reads the words: a read-only mask is fine there, refused where forward draws into it."""
    words = _read_only(np.full(2, 2**64 - 1, dtype="<u8"))
    np.testing.assert_array_equal(_dropout.apply(np.ones(100, F), words, 2.0, None, 1), np.full(100, 2.0, F))
    with pytest.raises(ValueError, match="words must be writable"):
        _dropout.forward(np.ones(100, F), None, words, 1, 0, 2**31, 2.0, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_and_apply_make_their_outputs_in_the_input_shape(dtype):
    """None for y and words: new arrays, y of x's shape; the words are the
    mask that draw_words gives for the same key and block, and y is x * D * 2."""
    x = np.random.default_rng(0).standard_normal((7, 30)).astype(dtype)
    y, words = _dropout.forward(x, None, None, 5, 3, 2**31, 2.0, 1)
    expected_words = np.empty(4, "<u8")
    _dropout.draw_words(5, 3, 2**31, expected_words, x.size)
    np.testing.assert_array_equal(words, expected_words)
    bits = np.unpackbits(expected_words.view(np.uint8), bitorder="little")[:x.size].reshape(x.shape)
    assert y.shape == x.shape and y.dtype == dtype
    np.testing.assert_array_equal(y, x * bits * dtype(2.0))
    again = _dropout.apply(x, words, 2.0, None, 1)
    assert again.shape == x.shape and again.dtype == dtype
    np.testing.assert_array_equal(again, y)
    # uint64 has two type numbers on LP64 (ulong, ulonglong): both are words
    np.testing.assert_array_equal(_dropout.apply(x, words.astype("Q"), 2.0, None, 1), y)


def test_kernels_refuse_read_only_outputs_and_dtype_mixes():
    ro = np.zeros(10, F)
    ro.flags.writeable = False
    with pytest.raises((ValueError, TypeError)):
        _optim.sgd(ro, np.ones(10, F), 0.1, 0.0)
    with pytest.raises((ValueError, TypeError)):
        _optim.sgd(np.zeros(10, F), np.ones(10, np.float64), 0.1, 0.0)


def dense_args(batch=4, n_in=5, n_out=3, **change):
    """(positional, keyword) arguments of a good _dense.forward_into call, with ``change``."""
    args = dict(x=np.ones((batch, n_in), F), W=np.ones((n_in, n_out), F), b=np.zeros(n_out, F),
                out=np.empty((batch, n_out), F))
    kwargs = dict(x_tilde=np.empty((batch, n_in), F), words=np.empty(1, "<u8"), mask_mode=1,
                  key=1, block0=0, threshold=2**31, scale=2.0, activation=1, n_threads=1, blocked=True)
    for name, value in change.items():
        (args if name in args else kwargs)[name] = value
    return list(args.values()), kwargs


@pytest.mark.parametrize("change, match", [
    (dict(W=np.ones((6, 3), F)), "W must have shape"),
    (dict(b=np.zeros(4, F)), "b must have shape"),
    (dict(out=np.empty((4, 4), F)), "out must have shape"),
    (dict(out=np.empty((3, 3), F)), "out must have shape"),
    (dict(x_tilde=np.empty((4, 4), F)), "x_tilde must have shape"),
    (dict(x_tilde=None), "a mask needs an x_tilde buffer"),
    (dict(words=np.empty(0, "<u8")), "words has"),
    (dict(mask_mode=7), "mask_mode"),
    (dict(activation=9), "activation code"),
])
def test_dense_forward_kernel_checks(change, match):
    args, kwargs = dense_args(**change)
    with pytest.raises(ValueError, match=match):
        _dense.forward_into(*args, **kwargs)


def test_dense_forward_kernel_refuses_read_only_words_to_draw_into():
    words = np.empty(1, "<u8")
    words.flags.writeable = False
    args, kwargs = dense_args(words=words)
    with pytest.raises((ValueError, BufferError)):
        _dense.forward_into(*args, **kwargs)
    # reading a read-only mask (APPLY) is fine
    words = np.full(1, 2**64 - 1, dtype="<u8")
    words.flags.writeable = False
    out = np.empty((4, 3), F)
    args, kwargs = dense_args(words=words, mask_mode=2, out=out, activation=0)
    _dense.forward_into(*args, **kwargs)
    np.testing.assert_array_equal(out, np.full((4, 3), 10.0, F))   # 5 inputs of 1 * 2, no bias


def backward_args(batch=4, n_in=5, n_out=3, **change):
    """(positional, keyword) arguments of a good _dense.backward_into call, with ``change``."""
    args = dict(grad_out=np.ones((batch, n_out), F), a=np.ones((batch, n_out), F),
                x_tilde=np.ones((batch, n_in), F), W=np.ones((n_in, n_out), F),
                dz=np.empty((batch, n_out), F), dW=np.empty((n_in, n_out), F), db=np.empty(n_out, F),
                dx=np.empty((batch, n_in), F))
    kwargs = dict(x=None, words=None, redraw=False, key=0, block0=0, threshold=0, scale=1.0, activation=1,
                  n_threads=1, blocked=True)
    for name, value in change.items():
        (args if name in args else kwargs)[name] = value
    return list(args.values()), kwargs


@pytest.mark.parametrize("change, match", [
    (dict(a=np.ones((4, 4), F)), "a must have shape"),
    (dict(x_tilde=np.ones((3, 5), F)), "x_tilde must have shape"),
    (dict(W=np.ones((5, 4), F)), "W must have shape"),
    (dict(dz=np.empty((4, 2), F)), "dz must have shape"),
    (dict(dW=np.empty((5, 2), F)), "dW must have shape"),
    (dict(db=np.empty(4, F)), "db must have shape"),
    (dict(dx=np.empty((4, 6), F)), "dx must have shape"),
    (dict(words=np.zeros(0, "<u8")), "words has"),
    (dict(redraw=True), "redraw needs"),
    (dict(redraw=True, x=np.ones((4, 6), F), words=np.zeros(1, "<u8")), "x must have shape"),
    (dict(redraw=True, x=np.ones((4, 5), F), words=np.zeros(0, "<u8")), "words has"),
    (dict(activation=-1), "activation code"),
])
def test_dense_backward_kernel_checks(change, match):
    args, kwargs = backward_args(**change)
    with pytest.raises(ValueError, match=match):
        _dense.backward_into(*args, **kwargs)


def test_dense_backward_redraw_refuses_a_read_only_x_tilde():
    x_tilde = np.ones((4, 5), F)
    x_tilde.flags.writeable = False
    args, kwargs = backward_args(redraw=True, x=np.ones((4, 5), F), x_tilde=x_tilde, words=np.zeros(1, "<u8"))
    with pytest.raises((ValueError, BufferError)):
        _dense.backward_into(*args, **kwargs)
