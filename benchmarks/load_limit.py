"""Calls of a millisecond or more on a loaded machine: the scheduler, not the kernel, sets their 90th percentile.

Issue 29's floor asks each call, with a busy process on every core, to cost
at most 1.5x its quiet single-thread median at the 90th percentile of 50
calls. This shows, for a call of about a millisecond and longer, what any
implementation gets there, with a busy process on every core:

- ``x.copy()`` of float32 1024x4096: one thread, no synchronisation at all,
  the cheapest pass over the array there is;
- ``cydrop.dropout`` of the same array on 1 thread, on as many threads as
  cores, and on twice as many (more threads than cores take a larger share
  of the machine from the busy processes);
- ``cydrop.dropout_backward`` of a gradient of that shape, on as many threads
  as cores.

Each round times a block of ``--calls`` calls of every case, in an order that
alternates from round to round, and keeps the block's 90th percentile over
the case's quiet single-thread median (measured first, before the busy
processes start). Printed per case: the median and range over the rounds and
every round's figure. Blocks fall into two groups, near 1 and several times
higher, according to whether the scheduler left the calling thread a core of
its own during the block, whatever the call does.

    python benchmarks/load_limit.py --rounds 12
"""
import argparse

import numpy as np

import cydrop
from cydrop.apps.bench.load import _time_calls, busy_processes, n_cores

FLOOR_RATIO = 1.5


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12, help="blocks of calls per case (default 12)")
    parser.add_argument("--calls", type=int, default=50, help="calls per block (default 50, as the floor)")
    parser.add_argument("--busy", type=int, default=None, help="busy processes (default: one per core)")
    args = parser.parse_args(argv)
    cores = n_cores()
    busy = cores if args.busy is None else args.busy
    x = np.random.default_rng(0).standard_normal((1024, 4096), dtype=np.float32)
    gen = cydrop.Generator(1)
    _, mask = cydrop.dropout(x, 0.8, seed=gen)
    cases = {"x.copy()": (x.copy, 1)}   # name: (call, threads)
    for threads in sorted({1, cores, 2 * cores}):
        cases[f"cydrop.dropout, {threads} thread(s)"] = (lambda: cydrop.dropout(x, 0.8, seed=gen), threads)
    cases[f"cydrop.dropout_backward, {cores} thread(s)"] = (lambda: cydrop.dropout_backward(x, mask), cores)
    previous = cydrop.get_num_threads()
    try:
        quiet = {}
        cydrop.set_num_threads(1)
        for name, (fn, _) in cases.items():
            quiet[name] = float(np.median(_time_calls(fn, args.calls)))
        ratios = {name: [] for name in cases}
        with busy_processes(busy):
            for r in range(args.rounds):
                order = list(cases.items())
                for name, (fn, threads) in (order if r % 2 == 0 else order[::-1]):
                    cydrop.set_num_threads(threads)
                    ratios[name].append(float(np.percentile(_time_calls(fn, args.calls), 90)) / quiet[name])
    finally:
        cydrop.set_num_threads(previous)
    print(f"{busy} busy process(es), {cores} core(s); {args.rounds} blocks of {args.calls} calls per case; "
          f"figure: a block's p90 over the quiet single-thread median (issue 29's floor: <= {FLOOR_RATIO})")
    width = max(map(len, cases))
    for name, values in ratios.items():
        v = np.array(values)
        print(f"{name:<{width}}  quiet {quiet[name] * 1e3:.2f} ms  median {np.median(v):.2f} "
              f"[{v.min():.2f}-{v.max():.2f}]  blocks within the floor {int((v <= FLOOR_RATIO).sum())}/{len(v)}  "
              f"all: {' '.join(f'{a:.2f}' for a in v)}")


if __name__ == "__main__":
    main()
