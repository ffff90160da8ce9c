"""cydrop.dense_forward / dense_backward against a plain NumPy dense layer
given the same mask."""
import os
import subprocess
import sys

import numpy as np
import pytest

import cydrop
from cydrop import _dense
from cydrop._threads import single_threaded_blas
from reference import reference_mask, threshold, words_of

DTYPES = [np.float32, np.float64]
ACTIVATIONS = ["relu", "tanh", "sigmoid", "linear"]
# (batch, n_in, n_out): ones, and sizes off multiples of 8/16/64
SHAPES = [(1, 1, 1), (1, 5, 3), (7, 1, 4), (33, 17, 65), (65, 129, 9), (3, 64, 1)]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def act_ref(name, z):
    return {"relu": lambda: np.maximum(z, 0), "tanh": lambda: np.tanh(z),
            "sigmoid": lambda: 1 / (1 + np.exp(-z)), "linear": lambda: z}[name]()


def act_grad_ref(name, z):
    """act'(z), written from z (the kernel works from the output)."""
    s = 1 / (1 + np.exp(-z))
    return {"relu": lambda: (z > 0).astype(z.dtype), "tanh": lambda: 1 - np.tanh(z) ** 2,
            "sigmoid": lambda: s * (1 - s), "linear": lambda: np.ones_like(z)}[name]()


def dense_ref(x, W, b, D, keep_prob, activation, grad_out):
    """Plain NumPy layer: out = act((x * D / keep_prob) @ W + b) and its gradients."""
    x_tilde = x * D / keep_prob
    z = x_tilde @ W + (0 if b is None else b)
    out = act_ref(activation, z)
    dz = grad_out * act_grad_ref(activation, z)
    dW = x_tilde.T @ dz
    db = dz.sum(axis=0)
    dx = (dz @ W.T) * D / keep_prob
    return out, dx, dW, db


def make(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    batch, n_in, n_out = shape
    x = rng.standard_normal((batch, n_in)).astype(dtype)
    W = (rng.standard_normal((n_in, n_out)) / np.sqrt(max(n_in, 1))).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    g = rng.standard_normal((batch, n_out)).astype(dtype)
    return x, W, b, g


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("keep_prob", [1.0, 0.7])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_numpy_reference(dtype, activation, shape, keep_prob, bias):
    x, W, b, g = make(shape, dtype)
    b = b if bias else None
    out, cache = cydrop.dense_forward(x, W, b, keep_prob, activation=activation, seed=11)
    D = cache.mask.to_bool()
    ref_out, ref_dx, ref_dW, ref_db = dense_ref(
        x.astype(np.float64), W.astype(np.float64), None if b is None else b.astype(np.float64),
        D, keep_prob, activation, g.astype(np.float64))
    dx, dW, db = cydrop.dense_backward(g, cache)
    assert out.dtype == dx.dtype == dW.dtype == dtype
    np.testing.assert_allclose(out, ref_out, **TOL[dtype])
    np.testing.assert_allclose(dx, ref_dx, **TOL[dtype])
    np.testing.assert_allclose(dW, ref_dW, **TOL[dtype])
    if bias:
        np.testing.assert_allclose(db, ref_db, **TOL[dtype])
    else:
        assert db is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_explicit_mask_bool_and_mask(dtype):
    x, W, b, g = make((20, 70, 6), dtype)
    D = np.random.default_rng(5).random(x.shape) < 0.6
    out1, c1 = cydrop.dense_forward(x, W, b, 0.6, activation="tanh", mask=D)
    out2, c2 = cydrop.dense_forward(x, W, b, 0.6, activation="tanh",
                                    mask=cydrop.Mask.from_bool(D, 0.6))
    np.testing.assert_array_equal(c1.mask.to_bool(), D)
    np.testing.assert_array_equal(out1, out2)
    ref_out, ref_dx, ref_dW, ref_db = dense_ref(x, W, b, D, 0.6, "tanh", g)
    np.testing.assert_allclose(out1, ref_out, **TOL[dtype])
    dx, dW, db = cydrop.dense_backward(g, c1)
    np.testing.assert_allclose(dx, ref_dx, **TOL[dtype])
    np.testing.assert_allclose(dW, ref_dW, **TOL[dtype])
    np.testing.assert_allclose(db, ref_db, **TOL[dtype])


def test_drawn_mask_equals_dropout_mask():
    """dense_forward draws the same input mask as cydrop.dropout from the same seed."""
    x, W, b, _ = make((17, 150, 5), np.float32)
    _, cache = cydrop.dense_forward(x, W, b, 0.8, seed=123)
    _, mask = cydrop.dropout(x, 0.8, seed=123)
    assert cache.mask == mask


@pytest.mark.parametrize("dtype", DTYPES)
def test_keep_prob_one_is_plain_dense_without_generator(dtype):
    x, W, b, g = make((9, 13, 7), dtype)
    gen = cydrop.Generator(3)
    before = gen.state
    out, cache = cydrop.dense_forward(x, W, b, 1.0, activation="relu", seed=gen)
    assert gen.state == before  # no generator call
    assert cache.mask.nbytes == 0 and cache.mask.count_kept() == x.size
    assert cache.nbytes == 0  # nothing copied: x itself is the GEMM operand
    np.testing.assert_allclose(out, np.maximum(x @ W + b, 0), **TOL[dtype])


def test_all_kept_mask_with_keep_prob_below_one_still_scales():
    x, W, b, g = make((4, 8, 3), np.float64)
    mask = cydrop.Mask.all_kept(x.shape, keep_prob=0.5)
    out, cache = cydrop.dense_forward(x, W, b, 0.5, activation="linear", mask=mask)
    np.testing.assert_allclose(out, (2 * x) @ W + b, rtol=1e-12)
    dx, _, _ = cydrop.dense_backward(g, cache)
    np.testing.assert_allclose(dx, 2 * (g @ W.T), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_regenerate_gives_identical_results_and_keeps_no_mask(dtype):
    x, W, b, g = make((31, 200, 12), dtype)
    out1, c1 = cydrop.dense_forward(x, W, b, 0.5, seed=99)
    out2, c2 = cydrop.dense_forward(x, W, b, 0.5, seed=99, regenerate=True)
    assert c2.regenerate and c2.nbytes == 0 and c1.nbytes >= x.nbytes
    np.testing.assert_array_equal(out1, out2)
    assert c1.mask == c2.mask
    for r1, r2 in zip(cydrop.dense_backward(g, c1), cydrop.dense_backward(g, c2)):
        np.testing.assert_array_equal(r1, r2)


def test_need_dx_false_skips_dx_only():
    x, W, b, g = make((10, 20, 30), np.float32)
    _, cache = cydrop.dense_forward(x, W, b, 0.9, seed=1)
    dx, dW, db = cydrop.dense_backward(g, cache)
    dx2, dW2, db2 = cydrop.dense_backward(g, cache, need_dx=False)
    assert dx2 is None and dx is not None
    np.testing.assert_array_equal(dW, dW2)
    np.testing.assert_array_equal(db, db2)


def test_cache_memory_is_input_plus_packed_mask():
    x, W, b, _ = make((256, 1000, 10), np.float32)
    _, cache = cydrop.dense_forward(x, W, b, 0.8, seed=0)
    # the masked copy of x plus one bit per element (rounded up to 8 bytes)
    assert cache.nbytes == x.nbytes + -(-x.size // 64) * 8


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_finite_difference_gradients_float64(activation):
    """Central differences of L = sum(out * R) with a fixed mask."""
    x, W, b, R = make((6, 7, 5), np.float64, seed=4)
    D = np.random.default_rng(8).random(x.shape) < 0.7

    def loss(x_, W_, b_):
        out, _ = cydrop.dense_forward(x_, W_, b_, 0.7, activation=activation, mask=D)
        return float((out * R).sum())

    _, cache = cydrop.dense_forward(x, W, b, 0.7, activation=activation, mask=D)
    dx, dW, db = cydrop.dense_backward(R, cache)
    eps = 1e-6
    for name, param, grad in (("x", x, dx), ("W", W, dW), ("b", b, db)):
        num = np.zeros_like(param)
        for idx in np.ndindex(param.shape):
            plus, minus = param.copy(), param.copy()
            plus[idx] += eps
            minus[idx] -= eps
            args = {"x": (x, W, b), "W": (x, W, b), "b": (x, W, b)}[name]
            args_p = [plus if p is param else p for p in args]
            args_m = [minus if p is param else p for p in args]
            num[idx] = (loss(*args_p) - loss(*args_m)) / (2 * eps)
        rel = np.linalg.norm(num - grad) / max(np.linalg.norm(num) + np.linalg.norm(grad), 1e-30)
        assert rel < 1e-7, (name, rel)


def test_three_layers_by_hand_match_numpy_network():
    """A 3-layer network stacked from fused layers with explicit masks equals a
    plain NumPy network with dropout to float64 round-off."""
    rng = np.random.default_rng(21)
    sizes = [23, 40, 31, 4]
    keep = [1.0, 0.5, 0.8]
    acts = ["relu", "tanh", "linear"]
    x = rng.standard_normal((16, sizes[0]))
    Ws = [rng.standard_normal((a, c)) / np.sqrt(a) for a, c in zip(sizes, sizes[1:])]
    bs = [rng.standard_normal(c) for c in sizes[1:]]
    inputs = [x]
    masks = []
    # fused forward
    h, caches = x, []
    for W, b, kp, act in zip(Ws, bs, keep, acts):
        D = rng.random(h.shape) < kp
        masks.append(D)
        h, cache = cydrop.dense_forward(h, W, b, kp, activation=act, mask=D)
        caches.append(cache)
        inputs.append(h)
    grad = h - 1.0  # d/dh of 0.5 * ||h - 1||^2
    grads = []
    for cache in reversed(caches):
        grad, dW, db = cydrop.dense_backward(grad, cache)
        grads.append((dW, db))
    grads.reverse()
    # NumPy network
    a, xs, zs = x, [], []
    for W, b, kp, act, D in zip(Ws, bs, keep, acts, masks):
        xt = a * D / kp
        z = xt @ W + b
        xs.append(xt)
        zs.append(z)
        a = act_ref(act, z)
    np.testing.assert_allclose(h, a, rtol=1e-13, atol=1e-13)
    g = a - 1.0
    for i in reversed(range(3)):
        dz = g * act_grad_ref(acts[i], zs[i])
        np.testing.assert_allclose(grads[i][0], xs[i].T @ dz, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(grads[i][1], dz.sum(0), rtol=1e-12, atol=1e-13)
        g = (dz @ Ws[i].T) * masks[i] / keep[i]
    np.testing.assert_allclose(grad, g, rtol=1e-12, atol=1e-13)


_THREAD_SCRIPT = """
import hashlib, sys, numpy as np, cydrop
cydrop.set_deterministic(sys.argv[1] == "deterministic")
rng = np.random.default_rng(0)
x = rng.standard_normal((300, 700)).astype(np.float32)
W = rng.standard_normal((700, 500)).astype(np.float32)
b = rng.standard_normal(500).astype(np.float32)
g = rng.standard_normal((300, 500)).astype(np.float32)
out, cache = cydrop.dense_forward(x, W, b, 0.8, seed=7)
dx, dW, db = cydrop.dense_backward(g, cache)
h = hashlib.sha256()
for a in (cache.mask.words, out, dx, dW, db):
    h.update(np.ascontiguousarray(a).tobytes())
print(h.hexdigest())
"""


def _run_thread_script(n_threads, mode):
    env = dict(os.environ, OMP_NUM_THREADS=n_threads)
    env.pop("OPENBLAS_NUM_THREADS", None)
    res = subprocess.run([sys.executable, "-c", _THREAD_SCRIPT, mode], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_deterministic_mode_identical_under_one_and_two_threads():
    assert _run_thread_script("1", "deterministic") == _run_thread_script("2", "deterministic")


_MASK_SCRIPT = _THREAD_SCRIPT.replace("(cache.mask.words, out, dx, dW, db)", "(cache.mask.words,)")


def test_default_mode_masks_identical_under_one_and_two_threads():
    """NumPy's BLAS may round differently with another thread count; the masks may not."""
    digests = set()
    for n in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=n)
        res = subprocess.run([sys.executable, "-c", _MASK_SCRIPT, "default"], env=env,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        digests.add(res.stdout.strip())
    assert len(digests) == 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_deterministic_mode_matches_default_mode(dtype, activation):
    x, W, b, g = make((130, 300, 270), dtype)
    results = []
    try:
        for flag in (False, True):
            cydrop.set_deterministic(flag)
            out, cache = cydrop.dense_forward(x, W, b, 0.7, activation=activation, seed=5)
            results.append((out, *cydrop.dense_backward(g, cache)))
    finally:
        cydrop.set_deterministic(False)
    for a, r in zip(*results):
        np.testing.assert_allclose(a, r, **TOL[dtype])


def test_set_deterministic_validates():
    with pytest.raises(TypeError, match="flag"):
        cydrop.set_deterministic(1)
    assert cydrop.get_deterministic() is False



# --- the kernel itself --------------------------------------------------------
# src/_dense.pyx on every GEMM route against the NumPy layer given the
# reference mask; x_tilde in backward from the cache or drawn again.

# route: (n_threads, blocked); the blocked routes run SciPy's BLAS on one thread
KERNEL_ROUTES = {"numpy-matmul": (1, False), "blocked-1": (1, True), "blocked-2": (2, True)}
# sizes that cut gemm_blocked into several row and column blocks
KERNEL_SHAPES = [(1, 1, 1), (33, 17, 65), (65, 300, 9), (130, 20, 270)]


def _kernel_layer(shape, dtype, route, backward_mode, activation="relu", keep_prob=0.7):
    """One forward (DRAW) and one backward call straight into the kernel:
    (x, W, b, g, D, out, words, dx, dW, db)."""
    x, W, b, g = make(shape, dtype)
    batch, n_in, n_out = shape
    key, block0, scale = 0xC0FFEE, 7, 1.0 / keep_prob
    D = reference_mask(key, block0, x.size, keep_prob).reshape(x.shape)
    code = cydrop.dense.ACTIVATIONS[activation]
    n_threads, blocked = KERNEL_ROUTES[route]
    kernel = dict(key=key, block0=block0, threshold=threshold(keep_prob), scale=scale, activation=code,
                  n_threads=n_threads, blocked=blocked)
    n_words = -(-x.size // 64)
    x_tilde, words = np.empty_like(x), np.empty(n_words, np.uint64)
    out = np.empty((batch, n_out), dtype)
    with single_threaded_blas:
        _dense.forward_into(x, W, b, out, mask_mode=1, x_tilde=x_tilde, words=words, **kernel)
        dz, dW, db, dx = (np.empty_like(out), np.empty_like(W), np.empty(n_out, dtype),
                          np.empty_like(x))
        if backward_mode == "cache":
            _dense.backward_into(g, out, x_tilde, W, dz, dW, db, dx, words=words, **kernel)
        else:   # draw: x_tilde and the words drawn again from (key, block0)
            _dense.backward_into(g, out, np.empty_like(x), W, dz, dW, db, dx, words=np.empty(n_words, np.uint64),
                                 redraw=True, x=x, **kernel)
    return x, W, b, g, D, out, words, dx, dW, db


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("route", list(KERNEL_ROUTES))
@pytest.mark.parametrize("shape", KERNEL_SHAPES)
@pytest.mark.parametrize("backward_mode", ["cache", "draw"])
def test_kernel_matches_numpy_reference(dtype, route, shape, backward_mode):
    x, W, b, g, D, out, words, dx, dW, db = _kernel_layer(shape, dtype, route, backward_mode)
    np.testing.assert_array_equal(words, words_of(D))
    ref_out, ref_dx, ref_dW, ref_db = dense_ref(x.astype(np.float64), W.astype(np.float64),
                                                b.astype(np.float64), D, 0.7, "relu", g.astype(np.float64))
    np.testing.assert_allclose(out, ref_out, **TOL[dtype])
    np.testing.assert_allclose(dx, ref_dx, **TOL[dtype])
    np.testing.assert_allclose(dW, ref_dW, **TOL[dtype])
    np.testing.assert_allclose(db, ref_db, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_blocked_route_is_thread_count_independent(dtype):
    one = _kernel_layer((130, 300, 270), dtype, "blocked-1", "draw", "tanh")
    two = _kernel_layer((130, 300, 270), dtype, "blocked-2", "draw", "tanh")
    for a, r in zip(one[5:], two[5:]):
        np.testing.assert_array_equal(a, r)

# --- bad input -------------------------------------------------------------

def _good():
    x, W, b, g = make((4, 3, 2), np.float32)
    return x, W, b, g


@pytest.mark.parametrize("change, exc, match", [
    (lambda x, W, b: (x, W[:2], b), ValueError, "W"),
    (lambda x, W, b: (x, W, b[:1]), ValueError, "b"),
    (lambda x, W, b: (x[0], W, b), ValueError, "x"),
    (lambda x, W, b: (x, W.astype(np.float64), b), TypeError, "W"),
    (lambda x, W, b: (x, W, b.astype(np.float64)), TypeError, "b"),
    (lambda x, W, b: (x.astype(np.int32), W, b), TypeError, "x"),
    (lambda x, W, b: (np.asfortranarray(np.ones((4, 3), np.float32)), W, b), ValueError, "x"),
    (lambda x, W, b: (x, np.asfortranarray(np.ones((3, 2), np.float32)), b), ValueError, "W"),
    (lambda x, W, b: (x, W, np.ones(4, np.float32)[::2]), ValueError, "b"),
    (lambda x, W, b: (x.tolist(), W, b), TypeError, "x"),
])
def test_bad_arrays(change, exc, match):
    x, W, b, _ = _good()
    x, W, b = change(x, W, b)
    with pytest.raises(exc, match=match):
        cydrop.dense_forward(x, W, b, 0.5, seed=0)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(activation="softplus"), ValueError, "activation"),
    (dict(activation=None), ValueError, "activation"),
    (dict(seed=1, mask=np.ones((4, 3), bool)), ValueError, "seed"),
    (dict(mask=np.ones((3, 4), bool)), ValueError, "mask"),
    (dict(mask=np.ones((4, 3), np.float32)), TypeError, "mask"),
    (dict(mask=np.ones((4, 3), bool), regenerate=True), ValueError, "regenerate"),
    (dict(regenerate="yes"), TypeError, "regenerate"),
])
def test_bad_options(kwargs, exc, match):
    x, W, b, _ = _good()
    with pytest.raises(exc, match=match):
        cydrop.dense_forward(x, W, b, 0.5, **kwargs)


@pytest.mark.parametrize("keep_prob", [0, -1, 1.5, float("nan"), float("inf")])
def test_bad_keep_prob(keep_prob):
    x, W, b, _ = _good()
    with pytest.raises(ValueError, match="keep_prob"):
        cydrop.dense_forward(x, W, b, keep_prob)


@pytest.mark.parametrize("keep_prob", [1.0, 0.5])
@pytest.mark.parametrize("seed, exc", [(-1, ValueError), ("abc", TypeError), (1.5, TypeError)])
def test_bad_seed_refused_whatever_keep_prob(keep_prob, seed, exc):
    x, W, b, _ = _good()
    with pytest.raises(exc, match="seed"):
        cydrop.dense_forward(x, W, b, keep_prob, seed=seed)


def test_mask_with_other_keep_prob_refused():
    x, W, b, _ = _good()
    mask = cydrop.Mask.from_bool(np.ones(x.shape, bool), 0.9)
    with pytest.raises(ValueError, match="keep_prob"):
        cydrop.dense_forward(x, W, b, 0.5, mask=mask)


def test_bad_backward_arguments():
    x, W, b, g = _good()
    _, cache = cydrop.dense_forward(x, W, b, 0.5, seed=0)
    with pytest.raises(ValueError, match="grad_out"):
        cydrop.dense_backward(g[:, :1].copy(), cache)
    with pytest.raises(ValueError, match="grad_out"):
        cydrop.dense_backward(np.ones((5, 2), np.float32), cache)
    with pytest.raises(TypeError, match="grad_out"):
        cydrop.dense_backward(g.astype(np.float64), cache)
    with pytest.raises(ValueError, match="grad_out"):
        cydrop.dense_backward(np.asfortranarray(np.ones((4, 2), np.float32)), cache)
    with pytest.raises(TypeError, match="cache"):
        cydrop.dense_backward(g, {"x": x})
    with pytest.raises(TypeError, match="need_dx"):
        cydrop.dense_backward(g, cache, need_dx=None)


def test_read_only_inputs_are_fine():
    x, W, b, g = _good()
    for a in (x, W, b, g):
        a.flags.writeable = False
    out, cache = cydrop.dense_forward(x, W, b, 1.0)
    dx, dW, db = cydrop.dense_backward(g, cache)
    np.testing.assert_allclose(out, np.maximum(x @ W + b, 0), rtol=1e-6)


@pytest.mark.parametrize("shape", [(0, 3, 2), (4, 0, 2), (4, 3, 0), (0, 0, 0)])
def test_empty_dimensions(shape):
    x, W, b, g = make(shape, np.float64)
    out, cache = cydrop.dense_forward(x, W, b, 0.5, activation="linear", seed=0)
    x_tilde = x * cache.mask.to_bool() / 0.5
    np.testing.assert_allclose(out, x_tilde @ W + b)
    dx, dW, db = cydrop.dense_backward(g, cache)
    assert dx.shape == x.shape and dW.shape == W.shape and db.shape == b.shape
    np.testing.assert_allclose(dW, x_tilde.T @ g)  # zeros when the batch is empty
    np.testing.assert_allclose(db, g.sum(0))
    np.testing.assert_allclose(dx, (g @ W.T) * cache.mask.to_bool() / 0.5)


# --- found by fuzzing (tests/_fuzz_targets.py) ---------------------------------------

MUTATIONS = {
    # W.shape = ... in place used to crash the deterministic-mode backward pass
    # (it read x_tilde and wrote dx with the new n_in, past their ends)
    "W_reshape": lambda x, W, out: setattr(W, "shape", W.shape[::-1]),
    "x_reshape": lambda x, W, out: setattr(x, "shape", x.shape[::-1]),
    "out_reshape": lambda x, W, out: setattr(out, "shape", (out.size,)),
    "W_resize": lambda x, W, out: W.resize((W.shape[0] + 1, W.shape[1]), refcheck=False),
    "out_resize": lambda x, W, out: out.resize((out.shape[0] + 1, out.shape[1]), refcheck=False),
}


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("mutation", MUTATIONS.values(), ids=MUTATIONS.keys())
@pytest.mark.parametrize("keep_prob", [1.0, 0.5])
def test_backward_refuses_cache_arrays_changed_in_place(deterministic, mutation, keep_prob):
    x, W, b, g = make((500, 3, 2000), np.float64)
    try:
        cydrop.set_deterministic(deterministic)
        out, cache = cydrop.dense_forward(x, W, b, keep_prob, seed=1)
        mutation(x, W, out)
        for grad_out in (g, np.ones((500, W.shape[1]))):  # the old shape and one that fits the new W
            with pytest.raises(ValueError, match="changed in place"):
                cydrop.dense_backward(grad_out, cache)
    finally:
        cydrop.set_deterministic(False)


def test_unaligned_arrays_refused():
    x, W, b, g = make((4, 3, 2), np.float32)
    raw = np.zeros(x.nbytes + 4, np.uint8)
    x_odd = raw[1:1 + x.nbytes].view(np.float32).reshape(x.shape)
    x_odd[...] = x
    with pytest.raises(ValueError, match="x must be aligned"):
        cydrop.dense_forward(x_odd, W, b, 0.5, seed=0)
