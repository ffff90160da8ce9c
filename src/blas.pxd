# The one BLAS route of cydrop: a row-major GEMM over SciPy's cython_blas
# (the pattern of scikit-learn's sklearn/utils/_cython_blas.pyx).
from cython cimport floating
from cython.parallel cimport prange
from scipy.linalg.cython_blas cimport dgemm, sgemm

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
        sgemm(&tb_, &ta_, &n, &m, &k, &alpha, <float *>B, &ldb, <float *>A, &lda,
              &beta, C, &ldc)
    else:
        dgemm(&tb_, &ta_, &n, &m, &k, &alpha, <double *>B, &ldb, <double *>A, &lda,
              &beta, C, &ldc)


# Block geometry of gemm_blocked: at most MAX_BLOCKS blocks of at least
# MIN_BLOCK rows or columns (a multiple of 16, the widest BLAS micro-kernel).
cdef enum:
    MIN_BLOCK = 128
    MAX_BLOCKS = 8


cdef inline int block_width(int dim) noexcept nogil:
    """Width of the blocks gemm_blocked cuts a dimension of size dim into."""
    cdef int w = (dim + MAX_BLOCKS - 1) // MAX_BLOCKS
    w = max(w, MIN_BLOCK)
    return (w + 15) // 16 * 16


cdef inline void gemm_blocked(Trans ta, Trans tb, int m, int n, int k, floating alpha,
                              const floating *A, int lda, const floating *B, int ldb,
                              floating beta, floating *C, int ldc, int n_threads) noexcept nogil:
    """C := alpha * op(A) op(B) + beta * C (row-major), as blocks of C's rows
    or columns, each one single-threaded BLAS call, spread over n_threads.

    The blocks depend only on (m, n, k), never on n_threads, so the result is
    bit-identical for any thread count (BLAS's own threading is not: OpenBLAS
    sums in another order with 2 threads than with 1). The caller keeps BLAS
    to one thread meanwhile (cydrop._blas_threads). C is cut along its longer
    side, so the operand that every block packs again is the smaller one.
    """
    cdef int w, nb, i, start, size
    if n >= m:
        w = block_width(n)
        nb = (n + w - 1) // w
        for i in prange(nb, schedule="dynamic", num_threads=n_threads):
            start = i * w
            size = min(w, n - start)
            # columns start.. of op(B): of B itself, or rows of B when transposed
            gemm(ta, tb, m, size, k, alpha, A, lda,
                 B + (start if tb == NO_TRANS else <Py_ssize_t>start * ldb), ldb,
                 beta, C + start, ldc)
    else:
        w = block_width(m)
        nb = (m + w - 1) // w
        for i in prange(nb, schedule="dynamic", num_threads=n_threads):
            start = i * w
            size = min(w, m - start)
            # rows start.. of op(A): of A itself, or columns of A when transposed
            gemm(ta, tb, size, n, k, alpha,
                 A + (<Py_ssize_t>start * lda if ta == NO_TRANS else start), lda,
                 B, ldb, beta, C + <Py_ssize_t>start * ldc, ldc)
