"""Many Python threads calling cydrop's kernels at once give what a serial run gives.

The kernels release the GIL, so these threads really run the compiled code
concurrently, each call offering its passes to cydrop's pool (one pass runs
there at a time; the others run on their own threads). What is promised:

- Separate Generators: every thread's results equal the same work done
  serially, bit for bit in deterministic mode; in the default mode masks and
  element-wise results bit for bit, GEMM results within rounding (NumPy's
  BLAS may split a product differently when other threads are using it).
- One shared Generator: thread-safe; every draw gets its own counter range,
  so the draws are exactly the masks a serial run draws, in some order (which
  thread gets which depends on timing).
"""
import threading

import numpy as np
import pytest

import cydrop
from cydrop._threads import single_threaded_blas
from cydrop.optim import adam_update, max_norm_, momentum_update, sgd_update
from reference import key_from_seed, reference_dropout, reference_mask

N_THREADS = 12
ROUNDS = 3


@pytest.fixture(params=[False, True], ids=["default", "deterministic"])
def mode(request, reset_threads):
    cydrop.set_deterministic(request.param)
    cydrop.set_num_threads(2)
    yield request.param
    cydrop.set_deterministic(False)


def run_threads(work, n_threads=N_THREADS):
    """work(i) on n_threads threads started together; their results in order.
    A thread's exception is re-raised here."""
    results, errors = [None] * n_threads, []
    start = threading.Barrier(n_threads)

    def body(i):
        try:
            start.wait()
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001  (re-raised below, in the test's thread)
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def training_work(i):
    """A few steps of one layer's training on thread i's own data and Generator:
    every kernel, regenerated masks (thread-local scratch) included. Arrays of
    76,800 elements, large enough for the kernels' parallel paths."""
    rng = np.random.default_rng(i)
    x = rng.standard_normal((256, 300)).astype(np.float32)
    W = (rng.standard_normal((300, 128)) / 17).astype(np.float32)
    b = np.zeros(128, np.float32)
    grad_out = rng.standard_normal((256, 128)).astype(np.float32)
    m, v, velocity = np.zeros_like(W), np.zeros_like(W), np.zeros_like(b)
    gen = cydrop.Generator(1000 + i)
    elementwise, products = [], []
    for step in range(1, ROUNDS + 1):
        y, mask = cydrop.dropout(x, 0.8, seed=gen)
        elementwise += [y, mask.words, cydrop.dropout_backward(y, mask)]
        out, cache = cydrop.dense_forward(x, W, b, 0.7, activation="tanh", seed=gen, regenerate=step % 2 == 0)
        dx, dW, db = cydrop.dense_backward(grad_out, cache)
        elementwise.append(cache.mask.words)
        products += [out, dx, dW, db]
        adam_update(W, dW, m, v, step, 1e-3, l2=1e-4)
        momentum_update(b, db, velocity, 1e-3)
        sgd_update(grad_out, np.full_like(grad_out, 0.5), 1e-2)
        max_norm_(W, 1.5)
        products += [W.copy(), b.copy(), grad_out.copy()]
    return elementwise, products


def test_threads_with_separate_generators_equal_a_serial_run(mode):
    serial = [training_work(i) for i in range(N_THREADS)]
    concurrent = run_threads(training_work)
    for (el_s, pr_s), (el_c, pr_c) in zip(serial, concurrent):
        for a, b in zip(el_s, el_c):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(pr_s, pr_c):
            if mode:  # deterministic: bit for bit
                np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
            else:
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert single_threaded_blas._depth == 0  # the BLAS limit was lifted by the last thread out


DRAWS_PER_THREAD = 6
SHAPE = (48, 96)  # 4608 elements: 72 blocks per draw, for dropout and dense_forward alike


def test_shared_generator_draws_are_the_serial_draws_in_some_order(mode):
    """16 threads draw from one Generator through dropout, dense_forward and
    dense_forward(regenerate=True): the draws are exactly the masks at counter
    slots 0, 72, 144, ... (NumPy reference), each used once; each result is
    the one its mask gives."""
    seed, keep_prob, n_threads = 77, 0.6, 16
    gen = cydrop.Generator(seed)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SHAPE)
    W = rng.standard_normal((SHAPE[1], 40)) / 10
    b = rng.standard_normal(40)
    g = rng.standard_normal((SHAPE[0], 40))

    def work(i):
        drawn = []
        for k in range(DRAWS_PER_THREAD):
            kind = (i + k) % 3
            if kind == 0:
                y, mask = cydrop.dropout(x, keep_prob, seed=gen)
                drawn.append(("dropout", mask, y, None))
            else:
                out, cache = cydrop.dense_forward(x, W, b, keep_prob, activation="relu", seed=gen,
                                                  regenerate=kind == 2)
                drawn.append(("dense", cache.mask, out, (cache, cydrop.dense_backward(g, cache))))
        return drawn

    results = [d for per_thread in run_threads(work, n_threads) for d in per_thread]
    n_draws = n_threads * DRAWS_PER_THREAD
    blocks = -(-x.size // 64)
    assert gen.state["counter"] == n_draws * blocks
    key = key_from_seed(seed)
    slots = {reference_mask(key, c * blocks, x.size, keep_prob).tobytes(): c for c in range(n_draws)}
    used = sorted(slots[mask.to_bool().reshape(-1).tobytes()] for _, mask, _, _ in results)
    assert used == list(range(n_draws))  # every slot once: disjoint counter ranges

    for kind, mask, result, dense in results:
        D = mask.to_bool()
        if kind == "dropout":
            np.testing.assert_array_equal(result, reference_dropout(x, D, keep_prob))
            continue
        # the same layer with this mask given explicitly, serially
        out, cache = cydrop.dense_forward(x, W, b, keep_prob, activation="relu", mask=D)
        expected = (out, *cydrop.dense_backward(g, cache))
        for a, e in zip((result, *dense[1]), expected):
            if mode:
                np.testing.assert_array_equal(a, e)
            else:
                np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)
    assert single_threaded_blas._depth == 0
