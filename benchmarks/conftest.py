"""Shared inputs and run metadata for the dropout and dense-layer benchmarks.

Inputs are built once per session from a fixed seed, so every case of a group
times the same array and the body of each benchmark holds only the work being
measured.
"""
import sys

import numpy as np
import pytest

import cydrop

_DATA_SEED = 20240601


@pytest.fixture(scope="session")
def make_input():
    """``make_input(shape, dtype, role)``: a cached standard-normal array.

    ``role`` ("x" or "dy") gives forward input and backward gradient distinct
    contents. Exact zeros are replaced by 1 so that a zero in a result always
    means "dropped", which the sanity checks rely on.
    """
    cache = {}

    def make(shape, dtype, role="x"):
        key = (tuple(shape), np.dtype(dtype).str, role)
        if key not in cache:
            rng = np.random.default_rng([_DATA_SEED, len(cache)])
            arr = rng.standard_normal(shape, dtype=np.dtype(dtype).type)
            arr[arr == 0] = 1
            arr.flags.writeable = False  # a benchmark that writes its input is a bug
            cache[key] = arr
        return cache[key]

    return make


@pytest.fixture(scope="session")
def make_weights(make_input):
    """``make_weights(n_in, n_out, dtype)``: cached read-only ``(W, b)`` of a dense layer.

    ``W`` (n_in, n_out) is standard normal scaled by ``sqrt(2 / n_in)`` (He
    initialisation) so activations keep a realistic magnitude at every width;
    ``b`` (n_out,) is standard normal scaled by 0.1.
    """
    cache = {}

    def make(n_in, n_out, dtype):
        key = (n_in, n_out, np.dtype(dtype).str)
        if key not in cache:
            W = make_input((n_in, n_out), dtype, "W") * (2.0 / n_in) ** 0.5  # a Python float keeps the dtype
            b = make_input((n_out,), dtype, "b") * 0.1
            W.flags.writeable = b.flags.writeable = False
            cache[key] = (W, b)
        return cache[key]

    return make


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record the thread counts the cases ran with, saved with --benchmark-save/--benchmark-json.

    cydrop and PyTorch run multi-threaded on large arrays; NumPy's element-wise
    ufuncs and ``x.copy()`` run on one thread. A ratio means little without this.
    """
    machine_info["cydrop_version"] = cydrop.__version__
    machine_info["cydrop_num_threads"] = cydrop.get_num_threads()
    torch = sys.modules.get("torch")  # only if a benchmark already imported it
    if torch is not None:
        machine_info["torch_version"] = torch.__version__
        machine_info["torch_num_threads"] = torch.get_num_threads()
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return
    machine_info["threadpools"] = [
        {k: pool.get(k) for k in ("user_api", "internal_api", "num_threads", "version")}
        for pool in threadpool_info()
    ]
