"""Thread count of cydrop's OpenMP kernels."""
from . import _openmp
from ._validation import check_positive_int

_n_threads = None  # set by set_num_threads; None follows OpenMP's own setting
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
