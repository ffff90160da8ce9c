"""Helpers shared by the benchmark files (imported as a plain module: pytest
puts this folder on sys.path, and a script run as ``python benchmarks/X.py``
has its own folder there)."""
import datetime
import os
import shlex
import sys

import pytest


def import_torch():
    """torch, or skip the case with a clear reason."""
    return pytest.importorskip(
        "torch", reason="PyTorch baseline skipped: torch is not importable (pip install torch)"
    )


def numpy_blas_threads():
    """NumPy's BLAS thread count (for extra_info), or None without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [p["num_threads"] for p in threadpool_info()
              if p["user_api"] == "blas" and "numpy" in p["filepath"]]
    return counts[0] if counts else None


def result_meta(script, argv=None, note=None):
    """The ``meta`` entry of a JSON result file: the command that made it
    (``python benchmarks/SCRIPT`` and its arguments), the date and the
    machine, with the load average at the start (the machine is shared)."""
    from cydrop.apps.bench.report import cpu_name

    args = sys.argv[1:] if argv is None else list(argv)
    load = f", load average {os.getloadavg()[0]:.1f} at the start" if hasattr(os, "getloadavg") else ""
    meta = {"command": " ".join(shlex.quote(a) for a in ["python", f"benchmarks/{script}", *args]),
            "date": datetime.date.today().isoformat(),
            "machine": f"{cpu_name()}, {os.cpu_count()} logical CPUs{load}"}
    if note:
        meta["note"] = note
    return meta


def record_routes():
    """A list that gets "P" (cydrop's pool) or "B" (the other library's
    threads) for every routed call from now on (cydrop._threads.Routes), for
    scripts that print the route of each epoch."""
    from cydrop import _threads

    taken = []
    add = _threads._RouteRecord.add

    def record(self, on_pool, seconds):
        taken.append("P" if on_pool else "B")
        return add(self, on_pool, seconds)

    _threads._RouteRecord.add = record
    return taken
