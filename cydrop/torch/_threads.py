"""How cydrop's OpenMP threads share the cores with torch's: by default they
do not run at all, the kernels run on the calling thread.

torch's CPU wheel brings its own OpenMP runtime (and MKL/oneDNN threads),
cydrop links the system's libgomp: two pools, each of whose threads spin a
while after its parallel region before sleeping. Measured inside
torch loops (benchmarks/bench_torch.py, groups torch-threads-after-gemm and
torch-threads-step; figures in the README, "PyTorch"): right after a torch
op, a 2-thread cydrop pass is slower than the same pass on the calling
thread, torch's workers still spinning on the cores, and the calling-thread
pass is still many times faster than nn.Dropout. So cydrop.torch passes n_threads = 1, unless the
user asked for threads with ``cydrop.set_num_threads(n)``: then
min(n, torch.get_num_threads()) (masks are the same either way).
"""
import torch

from .. import _threads


def kernel_threads(n_elements):
    """Threads for a kernel over n_elements (the kernels run small arrays on
    the calling thread whatever this says)."""
    if _threads._n_threads is None:      # not set by the user: the calling thread
        return 1
    return max(1, min(_threads.get_num_threads(), torch.get_num_threads()))
