"""Epochs of the demo network's MLP.fit when the machine gets busy mid-training.

On a quiet machine the compiled epoch often settles on NumPy's BLAS threads
(``cydrop._threads.Routes``); when other processes then take the cores, each
epoch on those threads waits at the barriers of its GEMMs, and the route has
to move back to cydrop's pool. This trains the demo network (40-512-512-10,
keep_prob [1, 0.5, 0.5], batch 100) on as many threads as cores for
``--quiet`` epochs (40 by default: time for the route trials, at least two
seconds apart, to settle), then starts one busy process per core (``while
True: pass``, ended with the run) and trains ``--loaded`` more, each run a
fresh process. It prints every loaded epoch's time and route (P: the pool,
B: NumPy's threads), how many loaded epochs ran on the BLAS threads, and the
loaded epochs' total. A run whose quiet epochs ended on the pool shows no
onset to follow.

    python benchmarks/load_onset.py --runs 3

A benchmark, not a test: it asserts nothing.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time


def one_run(n_quiet, n_loaded):
    import numpy as np

    import cydrop
    from _common import record_routes
    from cydrop.apps import demo
    from cydrop.apps.bench.load import busy_processes, n_cores

    taken = record_routes()
    cores = n_cores()
    cydrop.set_num_threads(cores)
    x, y, _, _ = demo.load_mnist1d()
    net = cydrop.MLP([40, 512, 512, 10], keep_prob=[1.0, 0.5, 0.5], seed=0)

    def epochs(n):
        times = []
        for _ in range(n):
            start = time.perf_counter()
            net.partial_fit(x, y, classes=np.arange(10), batch_size=100, learning_rate=5e-3)
            times.append(round((time.perf_counter() - start) * 1e3, 1))
        return times

    quiet = epochs(n_quiet)
    with busy_processes(cores):
        loaded = epochs(n_loaded)
    routes = "".join(taken)
    return dict(quiet_ms=quiet, loaded_ms=loaded, quiet_routes=routes[:n_quiet], loaded_routes=routes[n_quiet:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes (default 3)")
    parser.add_argument("--quiet", type=int, default=40, help="epochs before the busy processes start (default 40)")
    parser.add_argument("--loaded", type=int, default=20, help="epochs beside them (default 20)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_run(args.quiet, args.loaded)))
        return
    totals, on_blas = [], []
    for r in range(args.runs):
        out = subprocess.run([sys.executable, __file__, "--one", "--quiet", str(args.quiet), "--loaded",
                              str(args.loaded)], capture_output=True, text=True, check=True).stdout
        run = json.loads(out)
        total = sum(run["loaded_ms"]) / 1e3
        totals.append(total)
        on_blas.append(run["loaded_routes"].count("B"))
        print(f"run {r + 1}: quiet routes {run['quiet_routes']}, median quiet epoch "
              f"{statistics.median(run['quiet_ms']):.0f} ms; loaded: {on_blas[-1]} epochs on the BLAS threads, "
              f"total {total:.2f} s; each: "
              + " ".join(f"{route}{ms:.0f}" for route, ms in zip(run["loaded_routes"], run["loaded_ms"])),
              flush=True)
    print(f"loaded epochs on the BLAS threads: {on_blas}; loaded total median {statistics.median(totals):.2f} s "
          f"[{min(totals):.2f}-{max(totals):.2f}] over {len(totals)} runs")


if __name__ == "__main__":
    main()
