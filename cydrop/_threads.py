"""Who runs cydrop's kernels on which threads: the OpenMP thread count, the
deterministic mode of the dense layer, and SciPy's BLAS held to one thread
while cydrop's own threads run GEMM blocks."""
import ctypes
import os
import threading

from . import _openmp
from ._validation import check_positive_int

_n_threads = None  # set by set_num_threads; None follows OpenMP's own setting (see thread_setting)
# Upper bound of set_num_threads: OpenMP starts every thread asked for, and
# libgomp ends the process when the system refuses to create one.
MAX_THREADS = 4096


def set_num_threads(n_threads):
    """Set the number of threads cydrop's kernels use.

    Parameters
    ----------
    n_threads : int in [1, 4096] or None
        ``None`` returns to the default: OpenMP's ``omp_get_max_threads()``,
        which honours ``OMP_NUM_THREADS`` and ``threadpoolctl`` limits.

    Returns
    -------
    None

    Raises
    ------
    TypeError
        ``n_threads`` not an int or None.
    ValueError
        ``n_threads`` outside [1, 4096].

    Notes
    -----
    Results never depend on the thread count: mask bits are a function of
    element position only. The setting is process-wide.

    Examples
    --------
    >>> import cydrop
    >>> cydrop.set_num_threads(1)
    >>> cydrop.get_num_threads()
    1
    >>> cydrop.set_num_threads(None)   # back to OpenMP's default
    """
    global _n_threads
    _n_threads = None if n_threads is None else check_positive_int(n_threads, "n_threads",
                                                                    maximum=MAX_THREADS)


def get_num_threads():
    """The number of threads the next kernel call will use.

    Returns
    -------
    int
        The count set by :func:`set_num_threads`, else OpenMP's
        ``omp_get_max_threads()``; 1 in a build without OpenMP.

    Examples
    --------
    >>> import cydrop
    >>> cydrop.get_num_threads() >= 1
    True
    """
    if not _openmp.openmp_enabled():
        return 1
    return _n_threads if _n_threads is not None else _openmp.omp_max_threads()


_deterministic = False


def set_deterministic(flag):
    """Make the dense layer's results bit-identical for any thread count.

    Parameters
    ----------
    flag : bool
        ``False`` (default): GEMMs go through NumPy's BLAS (``numpy.matmul``)
        and its threads, the pool a NumPy training loop already uses, so the
        two never compete for the cores; BLAS may sum in another order with
        another thread count (round-off differences, as in NumPy and PyTorch).
        ``True``: GEMMs are cut into blocks whose geometry depends only on
        the shapes, run on cydrop's OpenMP threads, each a single-threaded
        call into SciPy's BLAS; results are then identical for any thread
        count. Masks are identical across thread counts in both modes.

    Returns
    -------
    None

    Raises
    ------
    TypeError
        ``flag`` not a bool.

    Examples
    --------
    >>> import cydrop
    >>> cydrop.set_deterministic(True)
    >>> cydrop.get_deterministic()
    True
    >>> cydrop.set_deterministic(False)
    """
    global _deterministic
    if not isinstance(flag, bool):
        raise TypeError(f"flag must be a bool, got {type(flag).__name__}")
    _deterministic = flag


def get_deterministic():
    """Whether the dense layer runs in deterministic mode.

    Returns
    -------
    bool
        The flag last given to :func:`set_deterministic` (False by default).

    Examples
    --------
    >>> import cydrop
    >>> cydrop.get_deterministic()
    False
    """
    return _deterministic


def thread_setting():
    """What :func:`set_num_threads` was last given: a count, or None (OpenMP's own default)."""
    return _n_threads


# ---------------------------------------------------------------- SciPy's BLAS on one thread
# Keep the BLAS behind ``scipy.linalg.cython_blas`` on one thread while
# cydrop's own OpenMP threads run GEMM blocks.
#
# Why: the dense kernels cut each GEMM into blocks whose geometry depends only
# on the shapes and run them on cydrop's threads, so results are bit-identical
# for any thread count. BLAS must then run each block on the calling thread:
# its own threads would both oversubscribe the cores and change the summation
# order. This is scikit-learn's ``threadpool_limits(1, user_api="blas")`` done
# once per call through cached function pointers (a ctypes call, not a scan of
# the loaded libraries).


def _openblas_functions(filepath):
    """(get, set) thread-count functions of an OpenBLAS, whatever its symbol affixes."""
    lib = ctypes.CDLL(filepath)
    for prefix in ("", "scipy_"):
        for suffix in ("", "64_", "_64"):
            get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
            set_ = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                set_.argtypes, set_.restype = [ctypes.c_int], None
                return get, set_
    return None


class _Limiter:
    """Context manager: the BLAS threads of SciPy's BLAS set to 1, restored
    when the last concurrent user leaves (calls from several Python threads
    nest)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = []
        self._controls = None

    def _find(self):
        """(get, set) pairs for the BLAS libraries SciPy uses."""
        from threadpoolctl import ThreadpoolController

        import scipy.linalg.cython_blas  # noqa: F401  (make sure SciPy's BLAS is loaded)

        libs = ThreadpoolController().select(user_api="blas").lib_controllers
        scipy_dir = os.path.dirname(os.path.dirname(scipy.__file__))
        # SciPy's own copy lives beside the scipy package (scipy.libs, scipy/.libs);
        # a system BLAS shared with NumPy is limited too when there is no such copy.
        own = [lc for lc in libs if lc.filepath.startswith(scipy_dir)
               and "scipy" in os.path.basename(os.path.dirname(lc.filepath))]
        controls = []
        for lc in own or libs:
            funcs = _openblas_functions(lc.filepath) if lc.internal_api == "openblas" else None
            controls.append(funcs or (lc.get_num_threads, lc.set_num_threads))
        return controls

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                if self._controls is None:
                    self._controls = self._find()
                self._saved = []
                for get, set_ in self._controls:
                    n = get()
                    if n is not None and n != 1:
                        set_(1)
                        self._saved.append((set_, n))
            self._depth += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                for set_, n in self._saved:
                    set_(n)
                self._saved = []
        return False


single_threaded_blas = _Limiter()
