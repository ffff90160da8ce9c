"""cydrop's thread pool (src/pool.h), one per process: the kernel modules
run their parallel passes on it through ``RUN`` (see pool.pxd), and the
tests inspect it through the functions below."""
from cpython.pycapsule cimport PyCapsule_New
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc

cdef extern from "pool.h" nogil:
    ctypedef void (*cyd_body_t)(void *ctx, Py_ssize_t item) noexcept nogil
    int CYD_POOL_THREADS
    void cyd_pool_run(cyd_body_t body, void *ctx, Py_ssize_t n_items, int n_threads, int wake) noexcept nogil
    int cyd_pool_workers() noexcept nogil
    int cyd_pool_jobs() noexcept nogil
    void cyd_pool_hold_workers(int held) noexcept nogil
    void cyd_set_openmp_route(int on) noexcept nogil

cdef extern from *:
    """
    /* for probe(): which thread runs an item, and a pause off the caller's */
    #if defined(_MSC_VER)
    #include <windows.h>
    static __declspec(thread) int cyd_probe_on_caller = 0;
    static void cyd_probe_sleep_us(int us) { Sleep((us + 999) / 1000); }
    static double cyd_probe_now_us(void) {
        LARGE_INTEGER t, f;
        QueryPerformanceCounter(&t);
        QueryPerformanceFrequency(&f);
        return 1e6 * (double)t.QuadPart / (double)f.QuadPart;
    }
    static void cyd_probe_count(int *p) { _InterlockedIncrement((volatile long *)p); }
    #else
    #include <time.h>
    #include <unistd.h>
    static __thread int cyd_probe_on_caller = 0;
    static void cyd_probe_sleep_us(int us) { usleep(us); }
    static double cyd_probe_now_us(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return 1e6 * (double)t.tv_sec + 1e-3 * (double)t.tv_nsec;
    }
    static void cyd_probe_count(int *p) { __atomic_add_fetch(p, 1, __ATOMIC_RELAXED); }
    #endif
    """
    int cyd_probe_on_caller
    void cyd_probe_sleep_us(int us) noexcept nogil
    double cyd_probe_now_us() noexcept nogil
    void cyd_probe_count(int *p) noexcept nogil

# The address of cyd_pool_run, for pool.pxd's cyd_load_pool.
RUN = PyCapsule_New(<void *>cyd_pool_run, b"cydrop._pool.RUN", NULL)


def threads_supported():
    """True when the pool can run work on threads other than the caller's."""
    return bool(CYD_POOL_THREADS)


def workers():
    """Worker threads started so far (the pool starts them on first need)."""
    return cyd_pool_workers()


def jobs():
    """Jobs published to the workers so far (passes that asked for 2+ threads)."""
    return cyd_pool_jobs()


def set_openmp_route(bint on):
    """On the calling thread, run the next passes as OpenMP parallel loops
    (on the OpenMP runtime torch shares) rather than on the pool, until
    called again with False. cydrop.torch sets it per kind of call it
    measured faster so (cydrop.torch._threads)."""
    cyd_set_openmp_route(on)


def hold_workers(bint held):
    """With held True, workers skip every job as if the OS never ran them
    before it ended (for tests of passes that must not wait for them)."""
    cyd_pool_hold_workers(held)


ctypedef struct Probe:
    int *counts          # calls per item
    int *on_caller       # items run on the calling thread
    int work_us          # each item keeps its thread busy this long
    int delay_us         # and sleeps this long more off the calling thread


cdef void probe_body(void *ctx, Py_ssize_t item) noexcept nogil:
    cdef Probe *p = <Probe *>ctx
    cdef double until = cyd_probe_now_us() + p.work_us
    while cyd_probe_now_us() < until:
        pass
    if cyd_probe_on_caller:
        cyd_probe_count(p.on_caller)
    elif p.delay_us:
        cyd_probe_sleep_us(p.delay_us)
    cyd_probe_count(&p.counts[item])


def probe(Py_ssize_t n_items, int n_threads, int work_us=0, int delay_us=0):
    """Run a counting body over n_items on the pool; returns (calls per item
    as a list, items run on the calling thread). Each item keeps its thread
    busy for work_us, and one run by a worker then sleeps delay_us (a worker
    the scheduler holds up in the middle of an item)."""
    global cyd_probe_on_caller
    if n_items < 0 or n_threads < 1 or work_us < 0 or delay_us < 0:
        raise ValueError("n_items >= 0, n_threads >= 1, work_us >= 0, delay_us >= 0")
    cdef Probe p
    cdef int on_caller = 0
    p.counts = <int *>malloc(max(n_items, 1) * sizeof(int))
    if p.counts == NULL:
        raise MemoryError()
    try:
        for i in range(n_items):
            p.counts[i] = 0
        p.on_caller = &on_caller
        p.work_us, p.delay_us = work_us, delay_us
        with nogil:
            cyd_probe_on_caller = 1
            cyd_pool_run(probe_body, &p, n_items, n_threads, 1)
            cyd_probe_on_caller = 0
        return [p.counts[i] for i in range(n_items)], on_caller
    finally:
        free(p.counts)
