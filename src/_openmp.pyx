"""What OpenMP this build has, for cydrop's thread settings, and whether it is
a debug build."""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int cyd_openmp_enabled(void) { return 1; }
    static int cyd_omp_max_threads(void) { return omp_get_max_threads(); }
    /* the function as the dynamic linker bound it for cydrop: equal to
       another library's only when both call the same OpenMP runtime */
    static size_t cyd_omp_runtime_address(void) { return (size_t)&omp_get_max_threads; }
    #else
    static int cyd_openmp_enabled(void) { return 0; }
    static int cyd_omp_max_threads(void) { return 1; }
    static size_t cyd_omp_runtime_address(void) { return 0; }
    #endif
    """
    int cyd_openmp_enabled() noexcept nogil
    int cyd_omp_max_threads() noexcept nogil
    size_t cyd_omp_runtime_address() noexcept nogil


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(cyd_openmp_enabled())


def omp_runtime_address():
    """The address of ``omp_get_max_threads`` in the OpenMP runtime cydrop's
    kernels call (0 without OpenMP). A process has one runtime per library
    soname: on Linux, torch's wheel and cydrop both link ``libgomp.so.1``,
    so whichever is imported first serves both (one thread pool)."""
    return cyd_omp_runtime_address()


def omp_max_threads():
    """omp_get_max_threads(): honours OMP_NUM_THREADS and threadpoolctl
    limits; 1 in a build without OpenMP."""
    return cyd_omp_max_threads()


cdef extern from *:
    """
    #ifdef CYDROP_DEBUG_BUILD
    static int cyd_debug_build(void) { return 1; }
    #else
    static int cyd_debug_build(void) { return 0; }
    #endif
    """
    int cyd_debug_build() noexcept nogil


def debug_build():
    """True for a build made with CYDROP_DEBUG=1 (bounds checking, -O0 -g;
    setup.py defines CYDROP_DEBUG_BUILD): CI asserts it imported that one."""
    return bool(cyd_debug_build())
