"""Issue 29's floors on a loaded machine, over several runs of ``cydrop bench --load``.

Run: ``python benchmarks/load_floors.py [--repeat 5] [--calls 50] [--only TEXT] [--no-torch]``.

Each run is a fresh ``python -m cydrop bench --load --json`` process (its own
pool, its own busy processes, one per core). For each group and
implementation this prints, over the runs, the median and range of

- ``loaded p90 / quiet-1 p50``: the 90th percentile of single calls with a
  busy process on every core, over the median of quiet calls on one thread
  (issue 29: at most 1.5 for cydrop);
- ``/ loaded-1 p90``: the same loaded p90 over the loaded p90 of the calling
  thread alone (about 1 when a parallel pass costs, under load, what its
  calling thread costs);

and the load average before and after each run (other work on the machine
shows there). It asserts nothing: a benchmark, not a test.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def one_run(args):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "load.json")
        cmd = [sys.executable, "-m", "cydrop", "bench", "--load", "--calls", str(args.calls), "--json", path]
        cmd += (["--only", args.only] if args.only else []) + (["--no-torch"] if args.no_torch else [])
        before = os.getloadavg()[0]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        after = os.getloadavg()[0]
        if args.verbose or proc.returncode:
            print(proc.stdout, proc.stderr, sep="\n")
        if proc.returncode:
            raise SystemExit(f"cydrop bench --load failed with status {proc.returncode}")
        with open(path) as f:
            return json.load(f), before, after


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of cydrop bench --load (default 5)")
    parser.add_argument("--calls", type=int, default=50, help="single calls per phase (default 50)")
    parser.add_argument("--only", default=None, help="groups whose tag contains TEXT (as cydrop bench --only)")
    parser.add_argument("--no-torch", action="store_true", help="leave out PyTorch")
    parser.add_argument("--verbose", action="store_true", help="print each run's own table")
    args = parser.parse_args(argv)
    ratios = {}   # (group, impl) -> [(floor_ratio, alone_ratio)]
    for r in range(args.repeat):
        result, before, after = one_run(args)
        print(f"run {r + 1}/{args.repeat}: load average {before:.2f} before, {after:.2f} after", flush=True)
        for group in result["load_groups"]:
            for impl in group["impls"]:
                if impl["error"] is None:
                    ratios.setdefault((group["group"], impl["name"]), []).append(
                        (impl["floor_ratio"], impl["alone_ratio"]))
    print(f"\n{'group':70} {'impl':7} {'loaded p90 / quiet-1 p50':>32} {'/ loaded-1 p90':>26}")
    for (group, impl), values in ratios.items():
        cells = []
        for column in zip(*values):
            column = np.array(column, dtype=float)
            cells.append(f"{np.median(column):.2f} [{column.min():.2f}-{column.max():.2f}]")
        print(f"{group[:70]:70} {impl:7} {cells[0]:>32} {cells[1]:>26}")


if __name__ == "__main__":
    main()
