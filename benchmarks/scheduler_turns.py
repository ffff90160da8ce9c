"""How the scheduler shares a core between a thread that never waits and a
busy process, and the 90th percentile this leaves the calls of issue 29.

Issue 29's floor asks a call, beside a busy process on every core, to cost at
most 1.5x its quiet single-thread median at the 90th percentile of 50 calls.
A call returns on its calling thread, and a calling thread that never waits
(a training loop, or these benchmarks) takes turns with a busy process on
its core: it runs for a turn, then waits a turn. This measures the turns
(a thread reads the clock in a loop, and every gap of more than 0.1 ms is a
turn it lost), then, for the cydrop call of each group of ``cydrop bench
--load``, what they imply:

- a call that keeps its calling thread ``d`` (its quiet median on every
  core) starts at a random point of a turn of ``on`` ms, so it meets a lost
  turn with probability about ``d / on``: if its last ``s`` ms of the turn
  are left when it starts (``s`` uniform in ``[0, on]``), it meets one when
  ``s < d``;
- a call that meets one returns no sooner than ``s + off``, ``off`` the
  length of a lost turn, whatever the call does and however many threads
  do its work meanwhile;
- so the 90th percentile of the calls is at least ``off + d - on / 10``
  where ``d > on / 10`` (the calls with ``s`` in ``[d - on / 10, d]``, one
  in ten, cost at least that). The bound printed is that over the quiet
  single-thread median, or "-" where ``d <= on / 10``.

A bound above 1.5 means no implementation meets the floor on this machine:
only a call shorter than a tenth of a turn on its calling thread, or one
whose quiet single-thread median is long next to a turn, can. The turn is
the kernel's tick where the scheduler preempts on ticks: the script prints
``CONFIG_HZ`` when ``/proc/config.gz`` can be read.

    python benchmarks/scheduler_turns.py
"""
import argparse
import gzip
import time

import numpy as np

from cydrop.apps.bench.baselines import import_torch
from cydrop.apps.bench.cases import load_builders
from cydrop.apps.bench.load import FLOOR_RATIO, _time_calls, busy_processes, n_cores
from cydrop.apps.bench.timer import thread_limits

# A gap longer than this between two readings of the clock is a lost turn
# (a reading takes about 0.1 us; a page fault or an interrupt takes a few us).
GAP_NS = 100_000


def lost_turns(stamps_ns):
    """(off, on) in ms from the (start, end) pairs of the gaps a spinning
    thread saw: each gap's length, and the time it ran between two gaps."""
    gaps = np.asarray(stamps_ns, dtype=np.int64).reshape(-1, 2)
    off = (gaps[:, 1] - gaps[:, 0]) / 1e6
    on = (gaps[1:, 0] - gaps[:-1, 1]) / 1e6
    return off, on


def p90_bound(d_ms, q1_ms, off_ms, on_ms):
    """A lower bound of the 90th percentile, over the quiet single-thread
    median q1, of calls that keep their calling thread d ms, for turns of
    on ms run and off ms lost (the module's docstring says why); None where
    fewer than one call in ten meets a lost turn."""
    if d_ms <= on_ms / 10:
        return None
    return (off_ms + d_ms - on_ms / 10) / q1_ms


def spin(seconds):
    """The (start, end) pairs of the gaps a thread reading the clock saw."""
    clock = time.perf_counter_ns
    start = last = clock()
    end = start + int(seconds * 1e9)
    stamps = []
    while last < end:
        now = clock()
        if now - last > GAP_NS:
            stamps += (last, now)
        last = now
    return stamps


def kernel_hz():
    """CONFIG_HZ of the running kernel, or None."""
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            for line in f:
                if line.startswith("CONFIG_HZ="):
                    return int(line.split("=")[1])
    except (OSError, ValueError):
        pass
    return None


def quiet_medians(calls, cores):
    """{name: (median on one thread, median on every core)} in ms, each of
    ``calls`` calls, with cydrop, NumPy's BLAS and PyTorch on that many
    threads (as cydrop bench --load times them)."""
    torch, reason = import_torch()
    torch = reason if torch is None else torch
    medians = {}
    for _, build in load_builders(torch):
        group = build()
        impl = next(i for i in group.impls if i.name == "cydrop")
        impl.check(impl.fn())
        medians[group.name] = tuple(_quiet_ms(impl.fn, calls, threads, torch) for threads in (1, cores))
    return medians


def _quiet_ms(fn, calls, threads, torch):
    with thread_limits(threads, torch):
        return float(np.median(_time_calls(fn, calls))) * 1e3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each spin (default 3)")
    parser.add_argument("--repeat", type=int, default=3, help="spins (default 3)")
    parser.add_argument("--calls", type=int, default=50, help="calls per quiet median (default 50)")
    args = parser.parse_args(argv)
    cores = n_cores()
    quiet = quiet_medians(args.calls, cores)
    hz = kernel_hz()
    print(f"{cores} busy process(es), {cores} core(s); kernel tick: "
          + (f"{1000 / hz:g} ms (CONFIG_HZ={hz})" if hz else "unknown"))
    offs, ons = [], []
    with busy_processes(cores):
        time.sleep(0.2)
        for r in range(args.repeat):
            off, on = lost_turns(spin(args.seconds))
            offs.append(off)
            ons.append(on)
            print(f"spin {r + 1}: {len(off)} turns lost, each {np.median(off):.2f} ms "
                  f"(p10-p90 {np.percentile(off, 10):.2f}-{np.percentile(off, 90):.2f}); "
                  f"turns run {np.median(on):.2f} ms (p10-p90 {np.percentile(on, 10):.2f}-"
                  f"{np.percentile(on, 90):.2f}); share of the core {1 - off.sum() / (args.seconds * 1e3):.2f}")
    off_ms, on_ms = float(np.median(np.concatenate(offs))), float(np.median(np.concatenate(ons)))
    print(f"\nWhat turns of {on_ms:.2f} ms run and {off_ms:.2f} ms lost leave cydrop's call of each group "
          f"(floor: p90 <= {FLOOR_RATIO}x the quiet single-thread median):")
    width = max(map(len, quiet))
    for name, (q1, d) in quiet.items():
        bound = p90_bound(d, q1, off_ms, on_ms)
        print(f"{name:<{width}}  quiet {q1:.2f} ms on 1 thread, {d:.2f} ms on {cores}; p90 at least "
              + ("-" if bound is None else f"{bound:.2f}x" + (" (out of reach)" if bound > FLOOR_RATIO else "")))


if __name__ == "__main__":
    main()
