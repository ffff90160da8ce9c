# cydrop's BLAS, wrapped once: a row-major GEMM over SciPy's cython_blas (the
# pattern of scikit-learn's sklearn/utils/_cython_blas.pyx), its blocked
# parallel form, and the same GEMM over the BLAS NumPy links (gemm64, below).
#
# sgemm and dgemm are fetched from scipy.linalg.cython_blas on first use, not
# cimported: a cimport imports scipy.linalg when the module loads, which was
# two thirds of `import cydrop`, while only the deterministic mode of the
# dense layer calls this BLAS (the default goes through NumPy's). An entry
# point calls load_blas() before its nogil code, so that a broken SciPy is an
# ImportError; gemm loads them itself (under the GIL) if it was not called.
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from cython cimport floating
from libc.stdlib cimport abort

from pool cimport run_items

cdef extern from *:
    """
    /* SciPy's cython_blas signatures (scipy/linalg/cython_blas.pxd) */
    typedef void (*cydrop_sgemm_t)(char *, char *, int *, int *, int *, float *, float *, int *,
                                   float *, int *, float *, float *, int *);
    typedef void (*cydrop_dgemm_t)(char *, char *, int *, int *, int *, double *, double *, int *,
                                   double *, int *, double *, double *, int *);
    /* static: one copy per extension module that cimports blas.pxd. Set once
       under the GIL, read by OpenMP threads without it: acquire/release, so a
       thread that sees a pointer also sees the library it points into. */
    static cydrop_sgemm_t cydrop_sgemm_ptr = NULL;
    static cydrop_dgemm_t cydrop_dgemm_ptr = NULL;
    #if defined(__GNUC__) || defined(__clang__)
    static cydrop_sgemm_t cydrop_get_sgemm(void) { return __atomic_load_n(&cydrop_sgemm_ptr, __ATOMIC_ACQUIRE); }
    static cydrop_dgemm_t cydrop_get_dgemm(void) { return __atomic_load_n(&cydrop_dgemm_ptr, __ATOMIC_ACQUIRE); }
    static void cydrop_set_gemm(cydrop_sgemm_t s, cydrop_dgemm_t d) {
        __atomic_store_n(&cydrop_sgemm_ptr, s, __ATOMIC_RELEASE);
        __atomic_store_n(&cydrop_dgemm_ptr, d, __ATOMIC_RELEASE);
    }
    #else  /* MSVC: aligned pointer-sized volatile accesses are atomic and, on x86/x64, ordered */
    static cydrop_sgemm_t cydrop_get_sgemm(void) { return *(cydrop_sgemm_t volatile *)&cydrop_sgemm_ptr; }
    static cydrop_dgemm_t cydrop_get_dgemm(void) { return *(cydrop_dgemm_t volatile *)&cydrop_dgemm_ptr; }
    static void cydrop_set_gemm(cydrop_sgemm_t s, cydrop_dgemm_t d) {
        *(cydrop_sgemm_t volatile *)&cydrop_sgemm_ptr = s;
        *(cydrop_dgemm_t volatile *)&cydrop_dgemm_ptr = d;
    }
    #endif
    """
    ctypedef void (*cydrop_sgemm_t)(char *, char *, int *, int *, int *, float *, float *, int *,
                                    float *, int *, float *, float *, int *) noexcept nogil
    ctypedef void (*cydrop_dgemm_t)(char *, char *, int *, int *, int *, double *, double *, int *,
                                    double *, int *, double *, double *, int *) noexcept nogil
    cydrop_sgemm_t cydrop_get_sgemm() noexcept nogil
    cydrop_dgemm_t cydrop_get_dgemm() noexcept nogil
    void cydrop_set_gemm(cydrop_sgemm_t s, cydrop_dgemm_t d) noexcept nogil


cdef inline void *_capi_pointer(object capi, str name) except NULL:
    """The C function behind entry ``name`` of a Cython module's __pyx_capi__
    (how a cimport finds it)."""
    capsule = capi[name]
    return PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))


cdef inline int load_blas() except -1:
    """Fetch sgemm and dgemm from scipy.linalg.cython_blas, once (needs the GIL)."""
    if cydrop_get_dgemm() != NULL:
        return 0
    from scipy.linalg import cython_blas
    capi = cython_blas.__pyx_capi__
    cydrop_set_gemm(<cydrop_sgemm_t>_capi_pointer(capi, "sgemm"), <cydrop_dgemm_t>_capi_pointer(capi, "dgemm"))
    return 0


cdef inline void _load_blas_from_kernel() noexcept nogil:
    """load_blas() for gemm, when its entry point did not call it. A GEMM has
    no way to fail, and skipping it would return a wrong result: if SciPy's
    BLAS cannot be loaded, the traceback is printed and the process aborts."""
    with gil:
        try:
            load_blas()
        except BaseException:
            import traceback
            traceback.print_exc()
            abort()


cdef enum Trans:
    NO_TRANS = 110   # 'n'
    TRANS = 116      # 't'


cdef inline void gemm(Trans ta, Trans tb, int m, int n, int k, floating alpha,
                      const floating *A, int lda, const floating *B, int ldb,
                      floating beta, floating *C, int ldc) noexcept nogil:
    """C := alpha * op(A) op(B) + beta * C, all row-major; op(A) is (m, k), op(B) (k, n).

    A row-major matrix is its column-major transpose, so this computes
    C^T = op(B)^T op(A)^T with the column-major routine: operands swapped.
    """
    cdef char ta_ = ta, tb_ = tb
    cdef Py_ssize_t i, j
    cdef cydrop_sgemm_t sgemm
    cdef cydrop_dgemm_t dgemm
    if m == 0 or n == 0:
        return
    if k == 0:
        # BLAS wants leading dimensions >= 1 even for empty operands; the
        # product is empty, so C := beta * C here.
        for i in range(m):
            for j in range(n):
                C[i * ldc + j] = beta * C[i * ldc + j] if beta != 0 else 0
        return
    # SciPy's declarations are not const-qualified: the casts only drop const
    if floating is float:
        sgemm = cydrop_get_sgemm()
        if sgemm == NULL:
            _load_blas_from_kernel()
            sgemm = cydrop_get_sgemm()
        sgemm(&tb_, &ta_, &n, &m, &k, &alpha, <float *>B, &ldb, <float *>A, &lda, &beta, C, &ldc)
    else:
        dgemm = cydrop_get_dgemm()
        if dgemm == NULL:
            _load_blas_from_kernel()
            dgemm = cydrop_get_dgemm()
        dgemm(&tb_, &ta_, &n, &m, &k, &alpha, <double *>B, &ldb, <double *>A, &lda, &beta, C, &ldc)


# The same GEMM through the BLAS that NumPy links (numpy.matmul's), given as
# the address of its ILP64 Fortran-style ?gemm (OpenBLAS's scipy_sgemm_64_:
# the arguments of SciPy's, with 64-bit integers). Why a second route: a
# training loop whose GEMMs alternate between NumPy's and SciPy's OpenBLAS
# thread pools is several times slower (docs: user_guide/threads.rst), and the
# copy NumPy ships may be the newer, faster one: GEMMs too large for cydrop's
# pool run here whole, on NumPy's threads, as numpy.matmul does, and the
# pool's blocks (gemm_blocked) run here too when the address is known.
cdef extern from *:
    """
    typedef void (*cydrop_gemm64_t)(char *, char *, long long *, long long *, long long *, void *,
                                    const void *, long long *, const void *, long long *, void *,
                                    void *, long long *);
    """
    ctypedef void (*cydrop_gemm64_t)(char *, char *, long long *, long long *, long long *, void *,
                                     const void *, long long *, const void *, long long *, void *,
                                     void *, long long *) noexcept nogil


cdef inline void gemm64(void *routine, Trans ta, Trans tb, long long m, long long n, long long k,
                        floating alpha, const floating *A, long long lda, const floating *B,
                        long long ldb, floating beta, floating *C, long long ldc) noexcept nogil:
    """:func:`gemm`'s contract through ``routine``, an ILP64 ?gemm of the
    Net's dtype (s for float, d for double). m, n, k >= 1."""
    cdef char ta_ = ta, tb_ = tb
    (<cydrop_gemm64_t>routine)(&tb_, &ta_, &n, &m, &k, &alpha, B, &ldb, A, &lda, &beta, C, &ldc)


cdef inline void gemm_through(void *routine, Trans ta, Trans tb, int m, int n, int k, floating alpha,
                              const floating *A, int lda, const floating *B, int ldb,
                              floating beta, floating *C, int ldc) noexcept nogil:
    """:func:`gemm`'s contract through ``routine`` (gemm64) when it is
    given, else through SciPy's BLAS (gemm, which also takes the empty
    cases ILP64 callers must not pass on)."""
    if routine != NULL and m > 0 and n > 0 and k > 0:
        gemm64(routine, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)
    else:
        gemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)


# Block geometry of gemm_blocked: at most MAX_BLOCKS blocks of at least
# MIN_BLOCK rows or columns (a multiple of 16, the widest BLAS micro-kernel)
# and at least MIN_BLOCK_MULTIPLY_ADDS multiply-adds, the last block taking
# the rest of the dimension.
# - Why a least work per block: handing a block to another thread costs
#   microseconds (more when it must be woken), so a block must be worth more
#   than that; OpenBLAS gives each of its threads 2**18 multiply-adds at
#   least (GEMM_MULTITHREAD_THRESHOLD). A GEMM smaller than two such blocks
#   is one call on the calling thread: the small UCI network's Monte Carlo
#   passes (200 x 8 x 50) ran at half speed when cut in two.
# - Why the rest in the last block: OpenBLAS computes a product a few columns
#   wide (8 or fewer) by another path that rounds otherwise, so a narrow last
#   block of its own would round unlike the same columns of a whole GEMM
#   (gemm_on_route's two routes).
cdef enum:
    MIN_BLOCK = 128
    MAX_BLOCKS = 8
    MIN_BLOCK_MULTIPLY_ADDS = 1 << 19
    # GEMMs of fewer multiply-adds (a few hundred microseconds on one
    # thread) take only pool workers that are awake (pool.pxd)
    WAKE_MULTIPLY_ADDS = 1 << 23


cdef inline int block_width(int dim, Py_ssize_t multiply_adds_per_line) noexcept nogil:
    """Width of the blocks gemm_blocked cuts a dimension of size dim into,
    each line of it multiply_adds_per_line multiply-adds. Depends only on the
    shapes, never on the thread count."""
    cdef Py_ssize_t w = (dim + MAX_BLOCKS - 1) // MAX_BLOCKS
    w = max(w, MIN_BLOCK, (MIN_BLOCK_MULTIPLY_ADDS + multiply_adds_per_line - 1) // max(multiply_adds_per_line, 1))
    w = (w + 15) // 16 * 16
    return <int>max(min(w, <Py_ssize_t>dim), 1)


ctypedef struct GemmJob:
    # gemm_blocked's arguments: block i is columns (by_columns) or rows
    # i * width .. of C, the last block (n_blocks - 1) to the end
    void *routine          # an ILP64 ?gemm for gemm64, or NULL for SciPy's (gemm)
    Trans ta, tb
    int m, n, k, lda, ldb, ldc, width, n_blocks
    bint by_columns
    double alpha, beta
    const void *A
    const void *B
    void *C


cdef inline void gemm_block(const floating *A, const floating *B, floating *C, const GemmJob *job,
                            Py_ssize_t i) noexcept nogil:
    """Block i of a GemmJob: one single-threaded BLAS call."""
    cdef int start = <int>i * job.width
    cdef int m = job.m, n = job.n
    if job.by_columns:
        n = job.width if i < job.n_blocks - 1 else job.n - start
        # columns start.. of op(B): of B itself, or rows of B when transposed
        B = B + (start if job.tb == NO_TRANS else <Py_ssize_t>start * job.ldb)
        C = C + start
    else:
        m = job.width if i < job.n_blocks - 1 else job.m - start
        # rows start.. of op(A): of A itself, or columns of A when transposed
        A = A + (<Py_ssize_t>start * job.lda if job.ta == NO_TRANS else start)
        C = C + <Py_ssize_t>start * job.ldc
    gemm_through(job.routine, job.ta, job.tb, m, n, job.k, <floating>job.alpha, A, job.lda, B, job.ldb,
                 <floating>job.beta, C, job.ldc)


cdef inline void gemm_block_float(void *ctx, Py_ssize_t i) noexcept nogil:
    cdef GemmJob *job = <GemmJob *>ctx
    gemm_block(<const float *>job.A, <const float *>job.B, <float *>job.C, job, i)


cdef inline void gemm_block_double(void *ctx, Py_ssize_t i) noexcept nogil:
    cdef GemmJob *job = <GemmJob *>ctx
    gemm_block(<const double *>job.A, <const double *>job.B, <double *>job.C, job, i)


cdef inline void gemm_blocked(Trans ta, Trans tb, int m, int n, int k, floating alpha,
                              const floating *A, int lda, const floating *B, int ldb,
                              floating beta, floating *C, int ldc, int n_threads,
                              void *routine) noexcept nogil:
    """C := alpha * op(A) op(B) + beta * C (row-major), as blocks of C's rows
    or columns, each one single-threaded BLAS call, spread over n_threads
    (cydrop's pool, pool.pxd): through ``routine``, an ILP64 ?gemm of
    floating's precision (gemm64), or SciPy's BLAS when it is NULL.

    The blocks depend only on (m, n, k), never on n_threads, so the result is
    bit-identical for any thread count (BLAS's own threading is not: OpenBLAS
    sums in another order with 2 threads than with 1). The caller keeps BLAS
    to one thread meanwhile (cydrop._threads.single_threaded_blas). C is cut
    along its longer side, so the operand that every block packs again is the
    smaller one.
    """
    cdef GemmJob job
    cdef int dim = n if n >= m else m
    job.routine = routine
    job.ta, job.tb, job.m, job.n, job.k = ta, tb, m, n, k
    job.lda, job.ldb, job.ldc, job.alpha, job.beta = lda, ldb, ldc, alpha, beta
    job.A, job.B, job.C = A, B, C
    job.by_columns = n >= m
    job.width = block_width(dim, <Py_ssize_t>(m if job.by_columns else n) * k)
    job.n_blocks = dim // job.width
    run_items(gemm_block_float if floating is float else gemm_block_double, &job, job.n_blocks, n_threads,
              <Py_ssize_t>m * n * k >= WAKE_MULTIPLY_ADDS)


cdef inline void gemm_on_route(bint whole, Trans ta, Trans tb, int m, int n, int k, floating alpha,
                               const floating *A, int lda, const floating *B, int ldb,
                               floating beta, floating *C, int ldc, int n_threads,
                               void *routine) noexcept nogil:
    """gemm_blocked's product on either route (cydrop._threads.gemm_route):
    with ``whole``, one call of the same routine on the BLAS's own threads
    (not held to one thread then); else gemm_blocked's blocks on the pool.
    Both split C along rows or columns, not the sums, yet may round apart
    (OpenBLAS's own split changes the round-off of a dgemm's last columns):
    the routes agree within rounding (tests/test_routes.py)."""
    if whole:
        gemm_through(routine, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)
    else:
        gemm_blocked(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, n_threads, routine)
