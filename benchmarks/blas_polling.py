"""How long NumPy's OpenBLAS worker keeps a core busy after one GEMM.

Run: ``python benchmarks/blas_polling.py``. For each sleep it runs one
multi-threaded float32 GEMM, (256, 1024) @ (1024, 1024), then sleeps, and
prints the CPU time the process used during the sleep: the time OpenBLAS's
worker spent polling for the next GEMM before it slept itself. This is the
core that cydrop's pool loses right after NumPy's own GEMMs
(docs/user_guide/threads.rst, cydrop._threads.Routes). A benchmark, not a
test: it asserts nothing.
"""
import os
import time

import numpy as np


def cpu_seconds():
    t = os.times()
    return t.user + t.system


def main():
    x = np.ones((256, 1024), np.float32)
    W = np.ones((1024, 1024), np.float32)
    for sleep in (0.01, 0.05, 0.2, 0.5, 1.0):
        x @ W
        before = cpu_seconds()
        time.sleep(sleep)
        print(f"sleep {sleep:4.2f} s after a GEMM: {cpu_seconds() - before:.3f} s of CPU", flush=True)


if __name__ == "__main__":
    main()
