"""Resident memory across many calls of one cydrop entry point (run by tests/test_leaks.py).

Usage: ``python tests/_leak_check.py CASE N``. Warms up (scratch buffers, BLAS
thread pools, allocator arenas, lazily imported modules), reads the resident
set size from /proc/self/statm, makes N calls, reads it again, and prints one
JSON line: {"case", "calls", "growth_bytes", "seconds"}.

Every case works on small arrays, so that a leak of even a few bytes per call
stands out against the arrays themselves; failed (refused) calls are a case
too, since error paths are where references are most easily dropped.
"""
import json
import os
import sys
import time

import numpy as np

import cydrop
from cydrop.optim import adam_update, max_norm_, momentum_update, sgd_update

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def cases():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 64)).astype(np.float32)
    out = np.empty_like(x)
    W = (rng.standard_normal((64, 16)) / 8).astype(np.float32)
    b = np.zeros(16, np.float32)
    g = rng.standard_normal((32, 16)).astype(np.float32)
    gen = cydrop.Generator(0)
    _, mask = cydrop.dropout(x, 0.8, seed=1)
    bools = mask.to_bool()
    param, grad = W.copy(), (W / 10).copy()
    m, v, vel = np.zeros_like(W), np.zeros_like(W), np.zeros_like(W)
    step = [0]

    def dense(regenerate):
        def call():
            out_, cache = cydrop.dense_forward(x, W, b, 0.8, seed=gen, regenerate=regenerate)
            cydrop.dense_backward(g, cache)
        return call

    def dense_deterministic():
        cydrop.set_deterministic(True)
        try:
            dense(False)()
        finally:
            cydrop.set_deterministic(False)

    def adam():
        step[0] += 1
        adam_update(param, grad, m, v, step[0], 1e-4)

    def refused():
        for call in (lambda: cydrop.dropout(x, 1.5, seed=gen), lambda: cydrop.dense_forward(x, W.T, b, 0.5),
                     lambda: sgd_update(param, param, 0.1), lambda: cydrop.dropout(x.astype(np.int32), 0.5)):
            try:
                call()
            except (ValueError, TypeError):
                pass

    return {
        "dropout": lambda: cydrop.dropout(x, 0.8, seed=gen),
        "dropout_in_place": lambda: cydrop.dropout(out, 0.8, seed=gen, out=out),
        "dropout_mask": lambda: cydrop.dropout(x, 0.8, mask=bools),
        "dropout_backward": lambda: cydrop.dropout_backward(x, mask, out=out),
        "mask": lambda: cydrop.Mask.from_bool(bools, 0.8).to_bool(),
        "generator": lambda: cydrop.Generator(12345).state,
        "dense": dense(False),
        "dense_regenerate": dense(True),
        "dense_deterministic": dense_deterministic,
        "sgd": lambda: sgd_update(param, grad, 1e-4),
        "momentum": lambda: momentum_update(param, grad, vel, 1e-4),
        "adam": adam,
        "max_norm": lambda: max_norm_(param, 0.5),
        "refused": refused,
        "mlp_fit_predict": mlp_cycle(),
        # the control: keeps 64 bytes per call, so the measurement is shown to see a leak
        "control_leak": lambda: KEPT.append(bytes(31)),  # sys.getsizeof(bytes(31)) == 64
    }


KEPT = []


def mlp_cycle():
    """One fit/predict cycle of a tiny MLP: a new network every other call,
    so construction, training, prediction and MC dropout are all repeated."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 8)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    state = {"n": 0, "net": None}

    def call():
        if state["n"] % 2 == 0:
            state["net"] = cydrop.MLP([8, 16, 3], keep_prob=[1.0, 0.8], seed=state["n"])
        net = state["net"]
        net.fit(X, y, epochs=1, batch_size=32, progress=False)
        net.predict(X)
        net.predict_proba(X, mc_samples=2)
        state["n"] += 1
    return call


def main(case, n_calls):
    call = cases()[case]
    for _ in range(max(n_calls // 20, 200)):  # warm-up
        call()
    before = rss_bytes()
    start = time.perf_counter()
    for _ in range(n_calls):
        call()
    seconds = time.perf_counter() - start
    print(json.dumps({"case": case, "calls": n_calls, "growth_bytes": rss_bytes() - before,
                      "seconds": round(seconds, 2)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
