"""Epochs of the demo network's MLP.fit beside busy processes, with and
without the load check of cydrop's route trials.

``cydrop._threads.Routes`` tries NumPy's BLAS threads now and then for a
compiled epoch. While other processes hold the cores, such a trial epoch
waits at every barrier of every GEMM; the load check (cydrop._load, from
/proc/stat) skips the trial then. This script starts ``--busy`` processes
(``while True: pass``, ended with the script), then trains 30 epochs of the
demo network (40-512-512-10, keep_prob [1, 0.5, 0.5], batch 100) on 2
threads, once with the check and once with it off (every trial allowed),
alternating ``--rounds`` times, each in a fresh process. It prints every
epoch's time, the total, the slowest epoch and the routes taken (P: the
pool, B: NumPy's threads). The total, not a percentile, is what a trial
costs a user: 2 trial epochs of 30 are below the 90th percentile.

    python benchmarks/epochs_beside_busy_processes.py --busy 1 --rounds 3

A benchmark, not a test: it asserts nothing.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time


def one_run(check):
    import numpy as np

    import cydrop
    from _common import record_routes
    from cydrop import _threads
    from cydrop.apps import demo

    if not check:
        _threads.gemm_routes.load.leaves_cores = lambda n_threads: True
    taken = record_routes()
    cydrop.set_num_threads(2)
    x, y, _, _ = demo.load_mnist1d()
    net = cydrop.MLP([40, 512, 512, 10], keep_prob=[1.0, 0.5, 0.5], seed=0)
    times = []
    for epoch in range(30):
        start = time.perf_counter()
        net.partial_fit(x, y, classes=np.arange(10) if epoch == 0 else None, batch_size=100, learning_rate=5e-3)
        times.append(time.perf_counter() - start)
    return dict(check=check, epochs_ms=[round(t * 1e3, 1) for t in times], routes="".join(taken))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=1, help="busy processes to start (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="pairs of runs, alternating (default 3)")
    parser.add_argument("--one", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one == "on")))
        return
    from cydrop.apps.bench.load import busy_processes

    totals = {True: [], False: []}
    with busy_processes(args.busy):
        for _ in range(args.rounds):
            for check in (True, False):
                out = subprocess.run([sys.executable, __file__, "--one", "on" if check else "off"],
                                     capture_output=True, text=True, check=True).stdout
                run = json.loads(out)
                total = sum(run["epochs_ms"]) / 1e3
                totals[check].append(total)
                print(f"load check {'on ' if check else 'off'}: 30 epochs {total:.2f} s, slowest "
                      f"{max(run['epochs_ms']):.0f} ms, routes {run['routes']}")
    for check in (True, False):
        t = totals[check]
        print(f"load check {'on ' if check else 'off'}: total median {statistics.median(t):.2f} s "
              f"[{min(t):.2f}-{max(t):.2f}] over {len(t)} runs")


if __name__ == "__main__":
    main()
