"""The fused dense layer alone, and right after NumPy's own GEMMs, on each
GEMM route: blocks on cydrop's pool, NumPy's BLAS threads, and the route
cydrop measures to be faster (the default: cydrop._threads.gemm_route).

Run: ``python benchmarks/dense_after_numpy_gemms.py``. Prints medians of 20
calls (ms) of ``dense_forward`` + ``dense_backward`` (float32, batch 256,
1024 -> 1024, keep_prob 0.8) for each route (the pool's blocks forced by
deterministic mode, NumPy's threads by a zero size limit), each situation
measured afresh: alone, after three NumPy GEMMs
of the same size, and after the GEMMs and a 1 ms or a 200 ms sleep. NumPy's
OpenBLAS threads poll for a while after a GEMM; whatever core they poll on is
lost to cydrop's pool meanwhile. A benchmark, not a test: it asserts nothing.
"""
import time

import numpy as np

import cydrop
import cydrop._threads as threads

rng = np.random.default_rng(0)
x = rng.standard_normal((256, 1024), dtype=np.float32)
W = rng.standard_normal((1024, 1024), dtype=np.float32) * 0.03
b = np.zeros(1024, np.float32)
g = rng.standard_normal((256, 1024), dtype=np.float32)
gen = cydrop.Generator(0)


def layer():
    out, cache = cydrop.dense_forward(x, W, b, 0.8, seed=gen)
    return cydrop.dense_backward(g, cache)


def gemms():
    x @ W, x.T @ g, g @ W.T


def median_ms(f, before=None, n=20):
    times = []
    for _ in range(n):
        if before:
            before()
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return np.median(times) * 1e3


def main():
    limit = threads.POOL_GEMM_MAX_MULTIPLY_ADDS
    routes = (("pool blocks", True, limit), ("NumPy's BLAS threads", False, 0), ("measured (default)", False, limit))
    situations = (("alone", None, 20), ("after NumPy GEMMs", gemms, 20),
                  ("+1 ms sleep", lambda: (gemms(), time.sleep(0.001)), 20),
                  ("+200 ms sleep", lambda: (gemms(), time.sleep(0.2)), 8))
    try:
        for route, deterministic, value in routes:
            cydrop.set_deterministic(deterministic)
            threads.POOL_GEMM_MAX_MULTIPLY_ADDS = value
            figures = []
            for name, before, n in situations:
                threads.gemm_routes.reset()
                layer()
                figures.append(f"{name} {median_ms(layer, before, n):6.2f}")
            print(f"{route:<22} " + "  ".join(figures), flush=True)
    finally:
        cydrop.set_deterministic(False)
        threads.POOL_GEMM_MAX_MULTIPLY_ADDS = limit


if __name__ == "__main__":
    main()
