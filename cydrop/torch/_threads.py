"""How cydrop's OpenMP threads share the cores with torch's.

torch's CPU wheel brings its own OpenMP runtime (and MKL/oneDNN threads),
cydrop links the system's: two pools. Measured inside a torch training loop
(benchmarks/bench_torch.py, group torch-threads), cydrop's element-wise
passes follow torch's thread setting and run on the calling thread below
the kernels' own parallel threshold, so neither pool waits on the other in
the common small-tensor case. See README, "PyTorch".
"""
import torch

from .._threads import get_num_threads


def kernel_threads(n_elements):
    """Threads for a kernel over n_elements: cydrop's setting, capped by
    torch.get_num_threads() (what the loop around it was told to use)."""
    return max(1, min(get_num_threads(), torch.get_num_threads()))
