"""Timing a group's implementations in one interleaved run.

The machines cydrop is measured on are shared and noisy, so a ratio is only
worth reading when both of its times were taken side by side. Each round
therefore times every implementation of a group once, in an order that
rotates from round to round; a slow spell of the machine then lands on all of
them alike instead of on whichever happened to run during it. Within a round,
each implementation is called once untimed before its timed calls, so every
case is measured in its steady state, as when it runs back to back (what
pytest-benchmark measures), not paying for the page faults the previous
case's allocations caused. Each figure is the median over rounds.
"""
import contextlib
import time
from dataclasses import dataclass, field

import numpy as np

import cydrop
from ..._threads import thread_setting

# One timed sample lasts at least this long: a short call is repeated inside the
# sample, so that neither the clock's resolution nor what the previous case left
# in the caches (NumPy's course code streams ~100 MB through them, evicting x)
# weighs on a figure meant for back-to-back calls.
_MIN_SAMPLE_S = 20e-3


@dataclass
class Timing:
    name: str
    label: str
    times: list = field(default_factory=list)  # seconds per call, one per round
    error: str = None                          # why the case failed, if it did
    note: str = None                           # the case's own remark after timing (Impl.note)

    @property
    def median(self):
        return float(np.median(self.times)) if self.times else float("nan")

    @property
    def iqr(self):
        if not self.times:
            return float("nan")
        q1, q3 = np.percentile(self.times, [25, 75])
        return float(q3 - q1)


def _calls_per_sample(fn):
    """Warm up (first touch of fresh pages, first call of a kernel) and size a sample."""
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    return max(1, int(_MIN_SAMPLE_S / max(elapsed, 1e-9)))


def time_group(group, rounds, max_seconds):
    """Time every implementation of ``group``: a list of :class:`Timing`, in the group's order.

    Each implementation is warmed up and its result checked once; one that
    fails or raises gets ``error`` set and is not timed (the others still
    are, and ``cydrop bench`` exits non-zero). Rounds stop early, after at
    least 3, once they have used ``max_seconds``.
    """
    timings, live = [], []
    for impl in group.impls:
        timing = Timing(impl.name, impl.label)
        timings.append(timing)
        try:
            impl.check(impl.fn())
            live.append((impl, timing, _calls_per_sample(impl.fn)))
        except AssertionError as exc:
            timing.error = f"wrong result: {exc}"
        except Exception as exc:  # noqa: BLE001 -- reported in the table, and by the exit status
            timing.error = f"{type(exc).__name__}: {exc}"
    # PyTorch's OpenMP pool (not NumPy's OpenBLAS threads) keeps spinning for a
    # while after each op; interleaved, it slowed the NumPy-BLAS case right after
    # them by up to 25% (measured: cydrop's 64x784->512 layer 727 us -> 903 us,
    # while PyTorch took 3 ms). So the PyTorch case gets its rounds after the
    # others, the same way, unless every case runs inside torch (group.in_torch):
    # then all are interleaved, so that a slow spell of the shared machine cannot
    # land on nn.Dropout's rounds alone.
    if group.in_torch:
        _time_rounds(live, rounds, max_seconds)
    else:
        _time_rounds([entry for entry in live if entry[0].name != "torch"], rounds, max_seconds)
        _time_rounds([entry for entry in live if entry[0].name == "torch"], rounds, max_seconds)
    for impl, timing, _ in live:
        if impl.note is not None:
            timing.note = impl.note()
    return timings


def _time_rounds(live, rounds, max_seconds):
    started = time.perf_counter()
    for r in range(rounds if live else 0):
        shift = r % len(live)
        for impl, timing, number in live[shift:] + live[:shift]:
            # one untimed call first: the case before may have left the allocator
            # with no free block of the right size (NumPy's course code frees
            # tens of MB), and re-faulting fresh pages is not what is measured
            impl.fn()
            start = time.perf_counter()
            for _ in range(number):
                impl.fn()
            timing.times.append((time.perf_counter() - start) / number)
        if r + 1 >= 3 and time.perf_counter() - started > max_seconds:
            break


@contextlib.contextmanager
def thread_limits(n_threads, torch):
    """cydrop, NumPy's BLAS and PyTorch (``torch`` is the module, or a string
    saying why it is absent) all on ``n_threads`` threads for the block,
    restored afterwards; None changes nothing."""
    if n_threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    old_cydrop, old_torch = thread_setting(), None
    cydrop.set_num_threads(n_threads)
    if not isinstance(torch, str):
        old_torch = torch.get_num_threads()
        torch.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads, user_api="blas"):
            yield
    finally:
        cydrop.set_num_threads(old_cydrop)
        if old_torch is not None:
            torch.set_num_threads(old_torch)
