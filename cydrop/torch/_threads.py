"""How many threads cydrop's kernels use beside torch's.

A process holds one OpenMP runtime per library soname. torch's CPU wheel for
Linux ships GCC's libgomp as ``libgomp.so.1``, the soname cydrop links, so
whichever package is imported first loads the runtime that both then call:
one ``omp_get_max_threads()`` (``torch.set_num_threads`` changes cydrop's
default too). ``shares_openmp_runtime()`` checks this once, by comparing the
address of ``omp_get_max_threads`` as cydrop's kernels and as torch's
libraries resolve it.

cydrop's kernels run their passes on cydrop's own thread pool (src/pool.h),
whose workers sleep between passes, or, in the shared runtime, on torch's
OpenMP team (``kernel_call``): whichever each kind of call measured faster.
torch's threads poll for a while after torch's own ops, and the pool's
workers lose the cores they poll on, while on a busy machine an OpenMP loop
waits at its closing barrier for threads the scheduler has not run.

By default the kernels follow ``torch.get_num_threads()`` when the runtime
is shared (never more threads than torch's), and run on the calling thread
when it is not. Arrays of at most 32k elements run on the calling thread
either way (the kernels' own rule: waking threads costs more).
``cydrop.set_num_threads(n)`` caps them at ``min(n, torch.get_num_threads())``. Masks are the same whatever the thread
count. The measurement behind the choice is in
benchmarks/results/torch/threads-*.md (docs: user_guide/pytorch.rst).
"""
import contextlib
import ctypes
import functools

import torch

from .. import _dropout, _openmp, _pool, _threads

# Smaller calls run on the calling thread whatever the route: not measured.
PARALLEL_ELEMENTS = _dropout.PARALLEL_ELEMENTS

# The route of each kind of parallel call: cydrop's pool, or torch's OpenMP team.
openmp_routes = _threads.Routes()


@functools.lru_cache(maxsize=None)
def shares_openmp_runtime():
    """True when cydrop's kernels and torch's ops call the same OpenMP runtime."""
    ours = _openmp.omp_runtime_address()
    if not ours:
        return False
    try:
        # dlsym on torch._C's handle searches it and the libraries it was linked with
        theirs = ctypes.cast(ctypes.CDLL(torch._C.__file__).omp_get_max_threads, ctypes.c_void_p).value
    except (OSError, AttributeError):     # no such symbol reachable (another platform, a static runtime)
        return False
    return theirs == ours


def kernel_threads():
    """Threads for the next kernel call (the kernels run small arrays on the
    calling thread whatever this says)."""
    if _threads.thread_setting() is None:
        # In the shared runtime torch.get_num_threads() is the omp_get_max_threads()
        # that cydrop's default reads: no need to ask torch too (called twice a step
        # and layer, where every call counts).
        return _threads.get_num_threads() if shares_openmp_runtime() else 1
    return max(1, min(_threads.get_num_threads(), torch.get_num_threads()))


@contextlib.contextmanager
def kernel_call(op, a):
    """Context manager giving the thread count (``kernel_threads``) for a
    call of kernel ``op`` over the NumPy array ``a``, and running its passes
    on the route that calls of this op, size and dtype measured faster
    (cydrop._threads.Routes): cydrop's pool, or torch's OpenMP team when
    cydrop shares torch's runtime."""
    n_threads = kernel_threads()
    if n_threads < 2 or a.size <= PARALLEL_ELEMENTS or not shares_openmp_runtime():
        yield n_threads
        return
    with openmp_routes.route((n_threads, op, a.size, a.dtype.char)) as on_pool:
        if on_pool:
            yield n_threads
            return
        _pool.set_openmp_route(True)
        try:
            yield n_threads
        finally:
            _pool.set_openmp_route(False)
