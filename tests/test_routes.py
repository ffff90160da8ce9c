"""The route of each kind of call (cydrop._threads.Routes): cydrop's pool, or
another library's threads, whichever the kind's recent calls measured
faster; for the dense layer's GEMMs outside deterministic mode
(cydrop._threads.gemm_route), blocks on the pool or whole GEMMs on NumPy's
BLAS threads.

The rules are checked on a clock of the test's own, so that no timing of the
machine decides an outcome; the last tests run the dense layer on both routes.
"""
import numpy as np
import pytest

import cydrop
from cydrop import _threads

POOL, BLAS = True, False


class Clock:
    """perf_counter and monotonic of the time module, moved by the test."""

    def __init__(self):
        self.now = 100.0

    def perf_counter(self):
        return self.now

    def monotonic(self):
        return self.now


class Load:
    """cydrop._load.OtherLoad as the test sets it: free cores or not."""

    def __init__(self):
        self.free = True

    def sample(self):
        pass

    def leaves_cores(self, n_threads):
        return self.free


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(_threads, "time", clock)
    monkeypatch.setattr(_threads, "OtherLoad", Load)    # Routes() sees free cores unless a test says not
    return clock


def calls(routes, clock, seconds, n, kind="k", route=None):
    """n calls of one kind (through ``route(kind)``, routes.route by
    default), each taking seconds[route] on the test's clock; the route of
    each call."""
    taken = []
    for _ in range(n):
        with (route or routes.route)(kind) as on_pool:
            clock.now += seconds[on_pool]
        taken.append(on_pool)
    return taken


def test_a_kind_starts_on_the_pool_and_moves_to_the_blas_threads_when_they_are_faster(clock):
    routes = _threads.Routes()
    taken = calls(routes, clock, {POOL: 0.002, BLAS: 0.001}, 20)
    first, trial = routes.FIRST_TRIAL, routes.TRIAL
    assert taken[:first] == [POOL] * first
    assert taken[first:] == [BLAS] * (20 - first)
    assert routes.routes() == {"k": BLAS}
    assert trial < 20 - first


def test_a_losing_trial_returns_to_the_pool_and_the_next_waits_twice_as_long(clock):
    routes = _threads.Routes()
    seconds = {POOL: 0.001, BLAS: 0.0012}     # BLAS a little slower: its trial runs whole
    first, trial = routes.FIRST_TRIAL, routes.TRIAL
    taken = calls(routes, clock, seconds, first + trial)
    assert taken == [POOL] * first + [BLAS] * trial
    # REVISIT calls of 1 ms are far less than REVISIT_SECONDS: no trial yet
    assert calls(routes, clock, seconds, 4 * routes.REVISIT) == [POOL] * (4 * routes.REVISIT)
    clock.now += routes.REVISIT_SECONDS
    assert calls(routes, clock, seconds, trial + 1) == [BLAS] * trial + [POOL]   # loses again
    clock.now += routes.REVISIT_SECONDS
    assert BLAS not in calls(routes, clock, seconds, 2 * routes.REVISIT)           # now twice as far apart
    clock.now += routes.REVISIT_SECONDS
    assert calls(routes, clock, seconds, trial) == [BLAS] * trial


def test_a_trial_call_far_slower_ends_the_trial(clock):
    routes = _threads.Routes()
    seconds = {POOL: 0.001, BLAS: 0.005}     # a busy machine: BLAS's barriers wait
    taken = calls(routes, clock, seconds, routes.FIRST_TRIAL + 2)
    assert taken == [POOL] * routes.FIRST_TRIAL + [BLAS, POOL]
    assert routes.routes() == {"k": POOL}


def test_the_back_off_is_bounded_and_a_kind_follows_a_machine_that_changes(clock):
    routes = _threads.Routes()
    quiet = {POOL: 0.001, BLAS: 0.002}
    calls(routes, clock, quiet, routes.FIRST_TRIAL + routes.TRIAL)
    for _ in range(12):   # every trial loses: the interval doubles up to its bound
        clock.now += routes.MAX_REVISIT_SECONDS
        calls(routes, clock, quiet, routes.REVISIT + routes.TRIAL)
    assert routes.routes() == {"k": POOL}
    # the pool's core is taken now: within one bounded interval the kind moves
    busy = {POOL: 0.004, BLAS: 0.002}
    clock.now += routes.MAX_REVISIT_SECONDS
    taken = calls(routes, clock, busy, routes.REVISIT + routes.TRIAL + 3)
    assert taken[-3:] == [BLAS] * 3
    assert routes.routes() == {"k": BLAS}


def test_a_route_that_slows_down_past_the_other_is_tried_again_early(clock):
    routes = _threads.Routes()
    calls(routes, clock, {POOL: 0.002, BLAS: 0.001}, routes.FIRST_TRIAL + routes.TRIAL)   # to BLAS
    clock.now += routes.MAX_REVISIT_SECONDS
    calls(routes, clock, {POOL: 0.002, BLAS: 0.001}, routes.REVISIT + routes.TRIAL)       # the pool loses again
    assert routes.routes() == {"k": BLAS}
    # the machine gets busy: a BLAS call waits at a barrier, four times the
    # pool's last median. After that one call (not REVISIT calls, nor the
    # interval that grew) the pool is tried, and kept
    busy = {POOL: 0.0025, BLAS: 0.008}
    taken = calls(routes, clock, busy, 1 + routes.TRIAL + routes.WINDOW)
    assert taken == [BLAS] + [POOL] * (routes.TRIAL + routes.WINDOW)
    assert routes.routes() == {"k": POOL}
    # on the pool, a slowdown past the other route's last figure (8 ms) is
    # judged on the median of WINDOW calls: one slow call changes nothing
    assert calls(routes, clock, {POOL: 0.012, BLAS: 0.004}, 1) == [POOL]
    taken = calls(routes, clock, busy, routes.WINDOW)
    assert taken == [POOL] * routes.WINDOW
    slow = calls(routes, clock, {POOL: 0.012, BLAS: 0.004}, routes.WINDOW + routes.TRIAL)
    assert slow[-routes.TRIAL:] == [BLAS] * routes.TRIAL
    # the machine gets busy long after the last trial: the trial is judged
    # against the BLAS call that slowed down, not against the quiet calls
    # before it, so the pool wins at once
    routes.reset()
    calls(routes, clock, {POOL: 0.002, BLAS: 0.001}, routes.FIRST_TRIAL + routes.TRIAL)   # to BLAS
    calls(routes, clock, {POOL: 0.002, BLAS: 0.001}, 3 * routes.WINDOW)
    taken = calls(routes, clock, busy, 1 + routes.TRIAL + routes.WINDOW)
    assert taken == [BLAS] + [POOL] * (routes.TRIAL + routes.WINDOW)
    assert routes.routes() == {"k": POOL}
    # a steady 10 percent difference triggers no early trial
    routes.reset()
    calls(routes, clock, {POOL: 0.0025, BLAS: 0.0023 * 1.2}, routes.FIRST_TRIAL + routes.TRIAL)  # BLAS loses
    steady = calls(routes, clock, {POOL: 0.0025, BLAS: 0.0023}, 3 * routes.WINDOW)
    assert steady == [POOL] * (3 * routes.WINDOW)


def test_one_thread_has_no_route_to_choose(clock, monkeypatch, reset_threads):
    routes = _threads.Routes()
    monkeypatch.setattr(_threads, "gemm_routes", routes)
    cydrop.set_num_threads(1)
    taken = calls(routes, clock, {POOL: 0.002, BLAS: 0.001}, 20, route=lambda kind: _threads.gemm_route(kind, 10**6))
    assert taken == [POOL] * 20 and routes.routes() == {}


def test_kinds_are_measured_apart(clock):
    routes = _threads.Routes()
    calls(routes, clock, {POOL: 0.002, BLAS: 0.001}, 10, kind="small")
    calls(routes, clock, {POOL: 0.001, BLAS: 0.002}, 10, kind="large")
    assert routes.routes() == {"small": BLAS, "large": POOL}
    routes.reset()
    assert routes.routes() == {}


def test_deterministic_mode_and_huge_gemms_take_fixed_routes_and_measure_nothing(clock, monkeypatch, reset_threads):
    routes = _threads.Routes()
    monkeypatch.setattr(_threads, "gemm_routes", routes)
    cydrop.set_num_threads(2)
    small = lambda kind: _threads.gemm_route(kind, 10**6)                               # noqa: E731
    huge = lambda kind: _threads.gemm_route(kind, _threads.POOL_GEMM_MAX_MULTIPLY_ADDS)  # noqa: E731
    cydrop.set_deterministic(True)
    try:
        assert calls(routes, clock, {POOL: 0.002, BLAS: 0.001}, 20, route=small) == [POOL] * 20
        assert calls(routes, clock, {POOL: 0.002, BLAS: 0.001}, 3, route=huge) == [POOL] * 3
    finally:
        cydrop.set_deterministic(False)
    assert calls(routes, clock, {POOL: 0.001, BLAS: 0.002}, 3, route=huge) == [BLAS] * 3
    assert routes.routes() == {}
    assert calls(routes, clock, {POOL: 0.002, BLAS: 0.001}, 10, route=small) == [POOL] * 5 + [BLAS] * 5


def test_a_call_that_raises_is_not_measured(clock):
    routes = _threads.Routes()
    for _ in range(routes.FIRST_TRIAL):
        with pytest.raises(RuntimeError):
            with routes.route("k"):
                clock.now += 1.0
                raise RuntimeError("the kernel refused")
    # none of them counted: the kind still waits for FIRST_TRIAL timed calls
    assert calls(routes, clock, {POOL: 0.002, BLAS: 0.001}, routes.FIRST_TRIAL) == [POOL] * routes.FIRST_TRIAL


def _dense_layer(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((192, 300)).astype(dtype)
    W = (rng.standard_normal((300, 260)) * 0.05).astype(dtype)
    b = rng.standard_normal(260).astype(dtype)
    g = rng.standard_normal((192, 260)).astype(dtype)
    out, cache = cydrop.dense_forward(x, W, b, 0.7, activation="tanh", seed=5)
    return (out,) + cydrop.dense_backward(g, cache)


TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_routes_agree_within_rounding_and_deterministic_mode_ignores_what_was_measured(
        dtype, monkeypatch, reset_threads):
    cydrop.set_num_threads(2)
    cydrop.set_deterministic(True)
    try:
        pool = _dense_layer(dtype)
    finally:
        cydrop.set_deterministic(False)
    monkeypatch.setattr(_threads, "POOL_GEMM_MAX_MULTIPLY_ADDS", 1)   # every GEMM whole, on BLAS threads
    blas = _dense_layer(dtype)
    for a, b in zip(pool, blas):
        np.testing.assert_allclose(a, b, **TOL[dtype])
    # every kind of this layer now measured on the BLAS threads: deterministic
    # mode still gives the pool's bits
    monkeypatch.undo()
    _threads.gemm_routes.reset()
    for record in (_threads.gemm_routes._kinds.setdefault(kind, _threads._RouteRecord(_threads.gemm_routes))
                   for kind in ((2, ("forward_into", 192, 300, 260)), (2, ("backward_into", 192, 300, 260)))):
        record.current = BLAS
    cydrop.set_deterministic(True)
    try:
        again = _dense_layer(dtype)
    finally:
        cydrop.set_deterministic(False)
        _threads.gemm_routes.reset()
    for a, b in zip(pool, again):
        np.testing.assert_array_equal(a, b)


def test_dense_calls_are_measured_per_kernel_and_shape(reset_threads):
    _threads.gemm_routes.reset()
    cydrop.set_num_threads(1)
    _dense_layer(np.float32)
    assert _threads.gemm_routes.routes() == {}            # one thread: nothing to choose
    cydrop.set_num_threads(2)
    _dense_layer(np.float32)
    assert set(_threads.gemm_routes.routes()) == {(2, ("forward_into", 192, 300, 260)),
                                                  (2, ("backward_into", 192, 300, 260))}


# --- cydrop.torch: the pool or torch's OpenMP team -------------------------

def _torch_with_shared_runtime():
    torch = pytest.importorskip("torch")
    from cydrop.torch import _threads as torch_threads
    if not torch_threads.shares_openmp_runtime():
        pytest.skip("cydrop and torch do not share an OpenMP runtime here")
    return torch, torch_threads


def _force(monkeypatch, route):
    """Every kind of call on ``route``, whatever was measured."""
    monkeypatch.setattr(_threads._RouteRecord, "choose", lambda self: route)


@pytest.mark.parametrize("function, shape", [("dropout", (256, 512)), ("dropout1d", (16, 64, 128))])
def test_torch_passes_on_the_openmp_team_give_the_pools_bits(function, shape, reset_threads, monkeypatch):
    torch, torch_threads = _torch_with_shared_runtime()
    import cydrop.torch as ct
    cydrop.set_num_threads(2)
    x = torch.randn(*shape, requires_grad=True)
    results = []
    try:
        for route in (POOL, BLAS):
            _force(monkeypatch, route)
            torch.manual_seed(0)
            y = getattr(ct.functional, function)(x, 0.3, training=True)
            (grad,) = torch.autograd.grad(y.sum() * 2, x)
            results.append((y, grad))
            kinds = set(torch_threads.openmp_routes._kinds)
    finally:
        torch_threads.openmp_routes.reset()
    assert len(kinds) == 2                            # forward and backward went through the routes
    (y0, g0), (y1, g1) = results
    assert torch.equal(y0, y1) and torch.equal(g0, g1)
    assert 0.6 < float((y0 != 0).float().mean()) < 0.8


def test_torch_openmp_route_ends_with_its_call_even_when_it_raises(reset_threads, monkeypatch):
    torch, torch_threads = _torch_with_shared_runtime()
    from cydrop import _pool
    cydrop.set_num_threads(2)
    calls = []
    monkeypatch.setattr(_pool, "set_openmp_route", calls.append)
    _force(monkeypatch, BLAS)
    try:
        with pytest.raises(RuntimeError):
            with torch_threads.kernel_call("k", np.empty(10**6, np.float32)) as n_threads:
                assert n_threads == 2
                raise RuntimeError("the kernel refused")
        with torch_threads.kernel_call("k", np.empty(100, np.float32)) as n_threads:   # too small to measure: the pool
            pass
    finally:
        torch_threads.openmp_routes.reset()
    assert calls == [True, False]


def test_a_call_begun_before_a_trial_moved_the_kind_is_no_trial_call(clock):
    # another Python thread's call of the same kind, begun on the pool, ends
    # after a trial has moved the kind to BLAS
    routes = _threads.Routes()
    seconds = {POOL: 0.002, BLAS: 0.001}
    calls(routes, clock, seconds, routes.FIRST_TRIAL - 1)
    with routes.route("k") as late:
        assert late is POOL
        taken = calls(routes, clock, seconds, 1 + routes.TRIAL)
    assert taken == [POOL] + [BLAS] * routes.TRIAL and routes.routes() == {"k": BLAS}
    # its time as the record receives it, no slower than BLAS: it must not
    # count as a trial call of the pool
    routes._kinds["k"].add(POOL, 0.0009)
    # the kind goes on as before: on BLAS, no trial under way
    assert calls(routes, clock, seconds, routes.REVISIT) == [BLAS] * routes.REVISIT


def test_no_trial_leaves_the_pool_while_other_processes_hold_the_cores(clock):
    routes = _threads.Routes()
    seconds = {POOL: 0.002, BLAS: 0.001}
    routes.load.free = False
    assert calls(routes, clock, seconds, 4 * routes.FIRST_TRIAL) == [POOL] * (4 * routes.FIRST_TRIAL)
    routes.load.free = True          # the others stopped: the trial comes at the next point it is asked for
    taken = calls(routes, clock, seconds, routes.FIRST_TRIAL + routes.TRIAL)
    assert taken[-routes.TRIAL:] == [BLAS] * routes.TRIAL and routes.routes() == {"k": BLAS}


def test_a_busy_machine_does_not_keep_a_kind_off_the_pool(clock):
    # the way back to the pool is always open: the pool is the route a busy machine needs
    routes = _threads.Routes()
    calls(routes, clock, {POOL: 0.002, BLAS: 0.001}, routes.FIRST_TRIAL + routes.TRIAL)
    assert routes.routes() == {"k": BLAS}
    routes.load.free = False
    taken = calls(routes, clock, {POOL: 0.002, BLAS: 0.010}, 1 + routes.TRIAL)   # BLAS's barriers wait now
    assert taken == [BLAS] + [POOL] * routes.TRIAL and routes.routes() == {"k": POOL}
