"""Helpers shared by the benchmark files (imported as a plain module: pytest
puts this folder on sys.path)."""
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
