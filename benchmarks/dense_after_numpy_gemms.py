"""The fused dense layer alone, and right after NumPy's own GEMMs, on each
GEMM route: blocks on cydrop's pool, or NumPy's BLAS threads.

Run: ``python benchmarks/dense_after_numpy_gemms.py``. Prints medians of 20
calls (ms) of ``dense_forward`` + ``dense_backward`` (float32, batch 256,
1024 -> 1024, keep_prob 0.8) for each route: alone, after three NumPy GEMMs
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
    try:
        for route, value in (("pool blocks", limit), ("NumPy's BLAS threads", 0)):
            threads.POOL_GEMM_MAX_MULTIPLY_ADDS = value
            layer()
            print(f"{route:<22} alone {median_ms(layer):6.2f}  after NumPy GEMMs {median_ms(layer, gemms):6.2f}  "
                  f"+1 ms sleep {median_ms(layer, lambda: (gemms(), time.sleep(0.001))):6.2f}  "
                  f"+200 ms sleep {median_ms(layer, lambda: (gemms(), time.sleep(0.2)), n=8):6.2f}", flush=True)
    finally:
        threads.POOL_GEMM_MAX_MULTIPLY_ADDS = limit


if __name__ == "__main__":
    main()
