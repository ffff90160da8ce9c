"""A fixed seed gives the same masks and the same trained network, whatever the
thread count and in every process.

What is promised (docs/user_guide/threads.rst):

- masks: identical for any thread count, in both modes;
- ``set_deterministic(True)``: trained weights bit-identical under
  OMP_NUM_THREADS=1 and 2 and from one process to the next;
- default mode: masks identical; weights within rounding across thread
  counts (NumPy's BLAS may round differently on another thread count). Each
  kind of call takes the GEMM route measured faster (gemm_route), but not
  before its FIRST_TRIAL-th call: the two epochs trained here never try the
  other route, so one process gives the next one's bits.

Each run trains in a fresh interpreter (OMP_NUM_THREADS is read at start-up)
and writes its masks and weights to a file compared here. The network is wide
enough ([32, 512, 512, 3], batches of 256) that the kernels' parallel
paths (masks, the Concrete passes, Adam, max-norm and the prior's sum of
squares) and a blocked GEMM of several blocks run.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cydrop

pytestmark = pytest.mark.skipif(not cydrop._openmp.openmp_enabled(), reason="built without OpenMP")

TRAIN_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import cydrop
    mode, out = sys.argv[1], sys.argv[2]
    cydrop.set_deterministic(mode == "deterministic")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1024, 32)).astype(np.float32)
    y = (X[:, :10] @ rng.standard_normal(10) > 0).astype(int) + (X[:, 0] > 1)
    net = cydrop.MLP([32, 512, 512, 3], keep_prob=[0.8, 0.5, 0.5], seed=123)
    net.fit(X, y, epochs=2, batch_size=256, optimizer="adam", learning_rate=1e-3, l2=1e-3,
            max_norm=3.0, progress=False)
    # the masks of one more training pass, and MC dropout (masks drawn at inference)
    from cydrop.mlp.engines.reference import ReferenceEngine
    _, layers = ReferenceEngine()._forward(net._network, X[:256], masks="relaxed")
    caches = [cache for cache, _ in layers]
    mean, std = net.predict_proba(X[:64], mc_samples=3)
    arrays = {f"W{i}": W for i, W in enumerate(net.weights)}
    arrays.update({f"b{i}": b for i, b in enumerate(net.biases)})
    arrays.update({f"mask{i}": c.mask.words for i, c in enumerate(caches) if c.mask.words is not None})
    arrays.update(mc_mean=mean, mc_std=std, counter=np.array(net._network.mask_gen.state["counter"]),
                  threads=np.array(cydrop.get_num_threads()))
    # learned keep_prob: the prior's ||W||^2 of the 512x512 layer is summed on the pool too;
    # a max_norm below the initial columns' norms (about 1.4) so that it scales them
    learned = cydrop.MLP([32, 512, 512, 3], keep_prob="learn", seed=7, dtype="float64")
    learned.fit(X.astype(np.float64), y, epochs=2, batch_size=256, learning_rate=1e-3, max_norm=1.0, progress=False)
    assert np.linalg.norm(learned.weights[1], axis=0).max() <= 1.0 + 1e-6
    arrays.update({f"learned_W{i}": W for i, W in enumerate(learned.weights)})
    arrays.update(learned_keep_prob=np.array(learned.keep_prob_))
    np.savez(out, **arrays)
""")


def train(tmp_path, mode, omp_threads, run):
    out = tmp_path / f"{mode}-{omp_threads}-{run}.npz"
    env = dict(os.environ, OMP_NUM_THREADS=str(omp_threads))
    env.pop("OPENBLAS_NUM_THREADS", None)  # let the thread count reach NumPy's BLAS too
    proc = subprocess.run([sys.executable, "-c", TRAIN_SCRIPT, mode, str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as data:
        arrays = {k: data[k] for k in data.files}
    assert arrays.pop("threads") == omp_threads  # OMP_NUM_THREADS reached the kernels
    return arrays


def assert_identical(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(np.atleast_1d(a[name]).view(np.uint8), np.atleast_1d(b[name]).view(np.uint8),
                                      err_msg=name)


def masks(arrays):
    return {k: v for k, v in arrays.items() if k.startswith("mask") or k == "counter"}


def test_deterministic_mode_same_network_on_1_and_2_threads_and_in_two_processes(tmp_path):
    one = train(tmp_path, "deterministic", 1, "a")
    two = train(tmp_path, "deterministic", 2, "a")
    two_again = train(tmp_path, "deterministic", 2, "b")
    assert sorted(masks(one)) == ["counter", "mask0", "mask1", "mask2"]  # every layer's mask is compared
    assert_identical(one, two)
    assert_identical(two, two_again)


def test_default_mode_same_masks_on_1_and_2_threads_same_network_in_two_processes(tmp_path):
    one = train(tmp_path, "default", 1, "a")
    two = train(tmp_path, "default", 2, "a")
    two_again = train(tmp_path, "default", 2, "b")
    assert_identical(masks(one), masks(two))
    assert_identical(two, two_again)
    for name in one:  # weights: within rounding of another BLAS thread count
        np.testing.assert_allclose(one[name], two[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_deterministic_and_default_modes_draw_the_same_masks(tmp_path):
    assert_identical(masks(train(tmp_path, "deterministic", 2, "a")), masks(train(tmp_path, "default", 2, "a")))
