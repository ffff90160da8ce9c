# The one BLAS route of cydrop: a row-major GEMM over SciPy's cython_blas
# (the pattern of scikit-learn's sklearn/utils/_cython_blas.pyx).
from cython cimport floating
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
