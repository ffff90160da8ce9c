"""Compare two (or more) builds of cydrop, each installed in its own venv, by
alternating ``python -m cydrop bench --only GROUP`` runs between them.

Run: ``python benchmarks/compare_builds.py GROUP PAIRS ROUNDS VENV_A VENV_B [VENV ...]``
(GROUP as ``cydrop bench --only``; "" runs the quick subset). The order of
the builds alternates from pair to pair, so a slow spell of the shared
machine falls on each build in turn. For each build and case it prints the
median time and the median ratio (as ``cydrop bench`` defines it) with their
ranges over the runs. A benchmark, not a test: it asserts nothing.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 5:
        raise SystemExit(__doc__)
    group, pairs, rounds, venvs = argv[0], int(argv[1]), argv[2], argv[3:]
    results = {venv: {} for venv in venvs}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(pairs):
            for venv in (venvs if i % 2 == 0 else venvs[::-1]):
                path = os.path.join(tmp, "bench.json")
                # run outside the source tree, so that each venv imports its own build
                subprocess.run([os.path.join(venv, "bin", "python"), "-m", "cydrop", "bench", "--only", group,
                                "--rounds", rounds, "--json", path], cwd=tmp, capture_output=True, check=True)
                with open(path) as f:
                    for g in json.load(f)["groups"]:
                        for row in g["rows"]:
                            results[venv].setdefault((g["tag"], row["impl"]), []).append((row["median_s"], row["ratio"]))
            print(f"pair {i + 1} of {pairs} done, load average {os.getloadavg()[0]:.2f}", flush=True)

    def spread(xs):
        return f"{statistics.median(xs):.4g} [{min(xs):.4g}-{max(xs):.4g}]"

    for venv in venvs:
        print("==", venv)
        for (tag, impl), runs in sorted(results[venv].items()):
            ratios = [r for _, r in runs if r is not None]
            print(f"  {tag:<36} {impl:<13} time {spread([t for t, _ in runs])} s  "
                  f"ratio {spread(ratios) if ratios else '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
