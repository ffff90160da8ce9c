# cydrop's thread pool as the kernel modules call it: cimported (inlined) by
# each module with a parallel pass, which calls load_pool() once when it is
# imported. The pool itself (src/pool.h) is compiled into cydrop._pool only,
# so that the process has one pool whichever modules use it; each module
# holds its address, taken from the capsule cydrop._pool.RUN.
#
# A pass describes its work as n_items items and a body, body(ctx, i) doing
# item i, and calls run_items; the pool runs the items on at most n_threads
# threads, the caller among them, and returns when all are done (pool.h
# says how a busy machine's late workers are left out). Items may run in
# any order on any thread: a body must write what depends only on i.
from cpython.pycapsule cimport PyCapsule_GetPointer

cdef extern from *:
    """
    typedef void (*cyd_body_t)(void *ctx, Py_ssize_t item);
    typedef void (*cyd_run_t)(cyd_body_t body, void *ctx, Py_ssize_t n_items, int n_threads, int wake);
    /* static: one copy per module that cimports pool.pxd, set when it is imported */
    static cyd_run_t cyd_pool_run_ptr = NULL;
    """
    ctypedef void (*cyd_body_t)(void *ctx, Py_ssize_t item) noexcept nogil
    ctypedef void (*cyd_run_t)(cyd_body_t body, void *ctx, Py_ssize_t n_items, int n_threads,
                               int wake) noexcept nogil
    cyd_run_t cyd_pool_run_ptr


cdef inline int load_pool() except -1:
    """Take the pool's entry point from cydrop._pool (at module import)."""
    global cyd_pool_run_ptr
    from cydrop import _pool   # works while cydrop/__init__.py is still running
    cyd_pool_run_ptr = <cyd_run_t>PyCapsule_GetPointer(_pool.RUN, b"cydrop._pool.RUN")
    return 0


cdef inline void run_items(cyd_body_t body, void *ctx, Py_ssize_t n_items, int n_threads,
                           bint wake=True) noexcept nogil:
    """body(ctx, i) for every i < n_items, on at most n_threads threads;
    with wake False, only on workers still awake from an earlier pass (a
    pass too short to pay for waking one: pool.h)."""
    cdef Py_ssize_t i
    if n_threads <= 1 or n_items <= 1 or cyd_pool_run_ptr == NULL:
        for i in range(n_items):
            body(ctx, i)
    else:
        cyd_pool_run_ptr(body, ctx, n_items, n_threads, wake)
