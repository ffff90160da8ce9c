"""``cydrop bench --load``: each call timed on a quiet machine and on one whose
every core is taken by a busy process, as the 50th and 90th percentiles of
single calls.

A parallel pass is only as fast as its slowest thread: on a machine whose
cores are busy, a worker the scheduler has not run yet can make each call
wait a time slice. These groups measure that. For every implementation of a
group (cydrop's, PyTorch's and the floor's), four phases of ``calls`` single
calls each: quiet on one thread, quiet on every core, loaded on every core
and loaded on one thread (the calling thread alone, the least a call can
cost on the loaded machine). The busy processes are started here, one per
core of this process's affinity mask, for the loaded phases of one group
only, and always ended, by the context manager (Ctrl-C and errors
included) or, should this process die, by themselves: each exits when its
parent changes or after ``BUSY_LIMIT_S``.
"""
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .timer import thread_limits

# A busy process: pure Python arithmetic, checking about every 10 ms whether
# its time is up or its parent is gone.
_BUSY = """
import os, sys, time
parent, end = os.getppid(), time.monotonic() + float(sys.argv[1])
print("ready", flush=True)
n = 0
while True:
    n += 1
    if n % 100000 == 0 and (time.monotonic() > end or os.getppid() != parent):
        break
"""
# The longest a busy process lives, whatever happens to its parent.
BUSY_LIMIT_S = 900.0

PHASES = (("quiet", 1), ("quiet", None), ("loaded", None), ("loaded", 1))  # None: every core
FLOOR_RATIO = 1.5   # issue 29: loaded p90 at most 1.5x the quiet single-thread median


def n_cores():
    """The cores this process may run on (its affinity mask)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def busy_processes(n, seconds=BUSY_LIMIT_S):
    """n processes spinning on the CPU for the duration of the block (at most ``seconds``)."""
    procs = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", _BUSY, str(seconds)], stdout=subprocess.PIPE,
                                          stdin=subprocess.DEVNULL))
        for proc in procs:
            proc.stdout.readline()   # started and spinning
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()
            proc.stdout.close()


def loadavg():
    """The 1-minute load average (runnable threads), or None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


@dataclass
class LoadTiming:
    name: str
    label: str
    times: dict = field(default_factory=dict)   # (condition, threads) -> seconds of each call
    error: str = None

    def percentile(self, phase, q):
        times = self.times.get(phase)
        return float(np.percentile(times, q)) if times else float("nan")

    def floor_ratio(self, cores):
        """Loaded p90 on every core over the quiet single-thread median (issue 29's floors)."""
        return self.percentile(("loaded", cores), 90) / self.percentile(("quiet", 1), 50)

    def alone_ratio(self, cores):
        """Loaded p90 on every core over loaded p90 on the calling thread alone."""
        return self.percentile(("loaded", cores), 90) / self.percentile(("loaded", 1), 90)


def _time_calls(fn, calls, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def time_load_group(group, torch, calls, cores):
    """Every implementation of ``group`` in the four phases: a list of :class:`LoadTiming`."""
    timings, live = [], []
    keep = ("cydrop", "torch", "floor")
    for impl in group.impls:
        if impl.name not in keep:
            continue
        timing = LoadTiming(impl.name, impl.label)
        timings.append(timing)
        try:
            impl.check(impl.fn())
            live.append((impl, timing))
        except AssertionError as exc:
            timing.error = f"wrong result: {exc}"
        except Exception as exc:  # noqa: BLE001 -- reported in the table, and by the exit status
            timing.error = f"{type(exc).__name__}: {exc}"

    def run_phases(condition):
        for cond, threads in PHASES:
            if cond != condition:
                continue
            n = cores if threads is None else threads
            with thread_limits(n, torch):
                for impl, timing in live:
                    timing.times[(cond, n)] = _time_calls(impl.fn, calls)

    run_phases("quiet")
    with busy_processes(cores):
        run_phases("loaded")
    return timings


def _fmt(seconds):
    if seconds != seconds:
        return "-"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def print_load_group(group, timings, cores, out):
    phases = [(cond, cores if t is None else t) for cond, t in PHASES]
    heads = [f"{cond} {n} thr p50 / p90" for cond, n in phases]
    print(f"\n{group.name}", file=out)
    print(f"  {'':8}" + "".join(f"{h:>24}" for h in heads)
          + f"{'loaded p90 / quiet-1 p50':>27}{'/ loaded-1 p90':>16}", file=out)
    for t in timings:
        if t.error:
            print(f"  {t.name:8}  {t.error}", file=out)
            continue
        cells = [f"{_fmt(t.percentile(p, 50))} / {_fmt(t.percentile(p, 90))}" for p in phases]
        ratio = t.floor_ratio(cores)
        mark = "" if t.name != "cydrop" else ("  ok" if ratio <= FLOOR_RATIO else f"  > {FLOOR_RATIO}")
        print(f"  {t.name:8}" + "".join(f"{c:>24}" for c in cells)
              + f"{ratio:>27.2f}{t.alone_ratio(cores):>16.2f}{mark}", file=out)
    for t in timings:
        print(f"    {t.name}: {t.label}", file=out)


def load_json(group, timings, cores):
    """One group's figures for ``--json``."""
    return {"group": group.name, "tag": group.tag, "cores": cores, "impls": [
        {"name": t.name, "label": t.label, "error": t.error,
         "floor_ratio": None if t.error else t.floor_ratio(cores),
         "alone_ratio": None if t.error else t.alone_ratio(cores),
         "phases": [{"condition": cond, "threads": n, "p50": t.percentile((cond, n), 50),
                     "p90": t.percentile((cond, n), 90), "times": t.times[(cond, n)]}
                    for cond, n in t.times]}
        for t in timings]}
