"""Keep the BLAS behind ``scipy.linalg.cython_blas`` on one thread while
cydrop's own OpenMP threads run GEMM blocks.

Why: the dense kernels cut each GEMM into blocks whose geometry depends only
on the shapes and run them on cydrop's threads, so results are bit-identical
for any thread count. BLAS must then run each block on the calling thread:
its own threads would both oversubscribe the cores and change the summation
order. This is scikit-learn's ``threadpool_limits(1, user_api="blas")`` done
once per call through cached function pointers (a ctypes call, not a scan of
the loaded libraries).
"""
import ctypes
import os
import threading


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
