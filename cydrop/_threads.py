"""Who runs cydrop's kernels on which threads: the thread count, the
deterministic mode of the dense layer, and SciPy's BLAS held to one thread
while cydrop's own threads run GEMM blocks.

The kernels run their parallel passes on cydrop's thread pool (src/pool.h);
OpenMP's runtime is only asked for the default count, so that
``OMP_NUM_THREADS``, threadpoolctl and ``torch.set_num_threads`` (one libgomp
in a torch process) set it as they set OpenMP's.
"""
import collections
import contextlib
import ctypes
import functools
import math
import os
import threading
import time

import numpy as np

from . import _openmp
from ._load import OtherLoad
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
        ``None`` returns to the default: OpenMP's ``omp_get_max_threads()``
        (the CPUs of the process's affinity mask, or ``OMP_NUM_THREADS``,
        ``torch.set_num_threads`` or a ``threadpoolctl`` limit), at most the
        CPUs a cgroup CPU quota allows (a container's ``--cpus``), rounded up.

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
        ``omp_get_max_threads()`` capped by a cgroup CPU quota; 1 in a build
        without OpenMP.

    Examples
    --------
    >>> import cydrop
    >>> cydrop.get_num_threads() >= 1
    True
    """
    if not _openmp.openmp_enabled():
        return 1
    if _n_threads is not None:
        return _n_threads
    quota = cpu_quota()
    return max(1, min(_openmp.omp_max_threads(), quota or MAX_THREADS))


# Where cgroup file systems are mounted: the process's own cgroup in a
# container (the cgroup namespace puts it at the root). Tests point it at a
# fake tree.
CGROUP_ROOT = "/sys/fs/cgroup"


@functools.lru_cache(maxsize=1)
def cpu_quota():
    """The CPUs a cgroup CPU quota lets this process use, rounded up, as
    ``loky.cpu_count()`` reads them (cgroup v2 ``cpu.max``, else v1
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``); None without a quota.
    Read once: a kernel call must not read files."""
    quota = _read_cgroup("cpu.max")
    if quota is not None:                                   # cgroup v2: "max 100000" or "150000 100000"
        quota, period = (quota.split() + [""])[:2]
    else:                                                   # cgroup v1
        quota = _read_cgroup(os.path.join("cpu", "cpu.cfs_quota_us"))
        period = _read_cgroup(os.path.join("cpu", "cpu.cfs_period_us"))
    try:
        quota, period = int(quota), int(period)
    except (TypeError, ValueError):                         # absent, "max", or unreadable
        return None
    if quota <= 0 or period <= 0:                           # v1 says -1 for no quota
        return None
    return max(1, math.ceil(quota / period))


def _read_cgroup(name):
    try:
        with open(os.path.join(CGROUP_ROOT, name)) as f:
            return f.read().strip()
    except OSError:
        return None


_deterministic = False


def set_deterministic(flag):
    """Make the dense layer's results bit-identical for any thread count.

    Parameters
    ----------
    flag : bool
        ``True``: every GEMM is cut into blocks whose geometry depends only
        on the shapes, run on cydrop's thread pool, each a single-threaded
        BLAS call; results are then identical for any thread
        count. ``False`` (default): on two threads or more, each kind of
        call takes the faster of that route and NumPy's BLAS threads, as
        measured on its recent calls (``gemm_route``), and GEMMs of
        ``POOL_GEMM_MAX_MULTIPLY_ADDS`` (2**30) multiply-adds or more always
        go through NumPy's BLAS threads; the round-off may then differ
        between thread counts and between runs, as in NumPy and PyTorch.
        Masks are identical across thread counts in both modes.

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


# GEMMs of at least this many multiply-adds run whole on NumPy's BLAS and
# its threads outside deterministic mode. Why: cut into blocks, a GEMM costs
# a few percent more on a quiet machine, and from about this size on more
# than that (the packed operands of OpenBLAS's own threads are shared, each
# block packs its own), while a time slice is a small share of a call of
# this size. Smaller ones take the route gemm_routes measures to be faster.
POOL_GEMM_MAX_MULTIPLY_ADDS = 2**30


class Routes:
    """The route of each kind of call: cydrop's pool, or another library's
    threads (NumPy's BLAS threads for whole GEMMs: ``gemm_routes``; the
    OpenMP team torch shares, in cydrop.torch), whichever its recent calls
    measured faster.

    Why measure: neither route is faster everywhere. On a busy machine the
    other libraries' threads meet at barriers (inside every GEMM, at the end
    of every OpenMP loop), and a thread the scheduler has not run makes the
    call wait a time slice, while the pool's items are taken by whichever
    thread runs (pool.h). But those threads poll for a while after their own
    work (OpenBLAS's worker for about 0.1 s after a multi-threaded GEMM of
    NumPy's: ``benchmarks/blas_polling.py``), and the pool's worker loses the core they poll on: a dense layer
    right after NumPy's GEMMs took twice its time on the pool
    (``benchmarks/dense_after_numpy_gemms.py``), while NumPy's threads, awake,
    run it at full speed.

    Neither can be told from the pool's side (a polling thread and a busy
    process take a core alike), so each kind of call (a kernel and its
    shapes) measures: it starts on the pool, and now and then runs TRIAL
    calls on the other route, which it keeps if the slower of them beats the
    median of its last WINDOW calls (a trial call SLOWER times slower than
    that median ends the trial at once). A trial comes after FIRST_TRIAL calls,
    then at least REVISIT calls and an interval apart; the interval starts at
    REVISIT_SECONDS and doubles, up to MAX_REVISIT_SECONDS, with every trial
    that loses, so that a loop that runs at its best on the pool rarely wakes
    the other threads (whose polling costs the pool's next passes). But once
    the current route runs SLOWER times slower than the other ran at the last
    trial (the machine got busy, or the other threads woke up), the next
    trial comes early: after one such call off the pool, whose barriers make
    a busy machine cost a time slice per call, after WINDOW calls on it; and
    the trial is judged against the calls that slowed down. The thread count
    is part of the kind; on one thread there is nothing to choose
    (``gemm_route``).

    No trial leaves the pool while other processes hold the cores its
    threads would need (``load``, a cydrop._load.OtherLoad: /proc/stat on
    Linux): there the other threads' barriers wait a time slice each, and
    one trial epoch took seconds (benchmarks/epochs_beside_busy_processes.py).
    """

    WINDOW = 5
    SLOWER = 1.25
    TRIAL = 2
    FIRST_TRIAL = 5
    REVISIT = 16
    REVISIT_SECONDS = 2.0
    MAX_REVISIT_SECONDS = 64.0

    def __init__(self, load=None):
        self._kinds = {}
        # trials off the pool wait while other processes hold the cores (_load)
        self.load = load if load is not None else OtherLoad()
        # several Python threads may call kernels of one kind at once
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def route(self, kind, fixed=None):
        """Context manager giving True (the pool) or False (the other
        route) for a call of this kind, timing the call it wraps; ``fixed``,
        when not None, is given instead and nothing is measured."""
        if fixed is not None:
            yield fixed
            return
        with self._lock:
            record = self._kinds.get(kind)
            if record is None:
                record = self._kinds[kind] = _RouteRecord(self)
            self.load.sample()     # under the lock: OtherLoad keeps one reading window
            on_pool = record.choose()
        start = time.perf_counter()
        yield on_pool
        seconds = time.perf_counter() - start
        with self._lock:
            record.add(on_pool, seconds)

    def routes(self):
        """{kind: its route outside trials} (True: the pool), for tests and benchmarks."""
        return {kind: record.current for kind, record in self._kinds.items()}

    def reset(self):
        """Forget every measurement: each kind starts again on the pool."""
        self._kinds.clear()


gemm_routes = Routes()


def gemm_route(kind, multiply_adds):
    """Context manager giving True (blocks on cydrop's pool) or False (whole
    GEMMs on NumPy's BLAS threads) for a call of this kind whose largest GEMM
    has multiply_adds multiply-adds: the pool in deterministic mode and on
    one thread, NumPy's threads from POOL_GEMM_MAX_MULTIPLY_ADDS on, else the
    route measured faster (Routes). The blocks and OpenBLAS's threads both split C along
    rows and columns, not the sums, but the routes are not promised to round
    alike: ``set_deterministic(True)`` keeps every GEMM on the pool."""
    n_threads = get_num_threads()
    if _deterministic or n_threads == 1:
        fixed = True      # one thread: the BLAS held to it too, as the user asked
    else:
        fixed = False if multiply_adds >= POOL_GEMM_MAX_MULTIPLY_ADDS else None
    return gemm_routes.route((n_threads, kind), fixed)


class _RouteRecord:
    """One kind of call's route and recent times (Routes)."""

    def __init__(self, routes):
        self.routes = routes
        self.current = True
        self.times = {True: collections.deque(maxlen=routes.WINDOW), False: collections.deque(maxlen=routes.WINDOW)}
        self.other = None                   # the other route's median at the last trial
        self.trial_left = 0
        self.calls = 0                      # on the current route since the last trial
        self.wait_calls = routes.FIRST_TRIAL
        self.interval = 0.0
        self.since = time.monotonic()

    def slowed_down(self):
        """Whether the current route runs SLOWER times slower than the other
        ran at the last trial, as when the machine gets busy: off the pool
        after one such call (a barrier that waited for a thread the
        scheduler had not run), on the pool once the median of WINDOW calls
        says so. Only calls made since the last trial count."""
        times = self.times[self.current]
        if self.other is None or not self.calls:
            return False
        if not self.current:
            return times[-1] > self.routes.SLOWER * self.other
        return self.calls >= self.routes.WINDOW and _median(times) > self.routes.SLOWER * self.other

    def choose(self):
        if not self.trial_left:
            if self.slowed_down():
                # judge the trial against the calls that slowed down, not the
                # older ones: off the pool the one call that did (a window
                # holding calls from before the machine got busy would make
                # the trial lose to them), on the pool the window's
                slowed = 1 if not self.current else min(self.calls, self.routes.WINDOW)
                recent = list(self.times[self.current])[-slowed:]
                self.times[self.current] = collections.deque(recent, maxlen=self.routes.WINDOW)
                self.trial_left = self.routes.TRIAL
            elif self.calls >= self.wait_calls and time.monotonic() - self.since >= self.interval:
                self.trial_left = self.routes.TRIAL
            if self.trial_left and self.current and not self.routes.load.leaves_cores(get_num_threads()):
                # the other threads would wait at their barriers for cores
                # other processes hold: no trial, asked again as after a call
                self.trial_left, self.calls, self.since = 0, 0, time.monotonic()
            if self.trial_left:
                self.times[not self.current].clear()
        return self.current if not self.trial_left else not self.current

    def add(self, on_pool, seconds):
        self.times[on_pool].append(seconds)
        if on_pool == self.current:
            self.calls += 1
            return
        if not self.trial_left:
            return      # begun on another thread before a trial moved the kind: no trial call
        self.trial_left -= 1
        current = _median(self.times[self.current])
        if seconds > self.routes.SLOWER * current:
            self.trial_left = 0      # lost already: a busy machine pays for one slow call, not TRIAL
        if self.trial_left:
            return
        trial = _median(self.times[on_pool])
        if trial < current:
            self.current, self.other = on_pool, current
            self.interval = self.routes.REVISIT_SECONDS
        else:
            self.other = trial
            self.interval = min(max(2 * self.interval, self.routes.REVISIT_SECONDS), self.routes.MAX_REVISIT_SECONDS)
        self.calls = 0
        self.wait_calls = self.routes.REVISIT
        self.since = time.monotonic()


def _median(times):
    return sorted(times)[len(times) // 2]


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


@functools.lru_cache(maxsize=None)
def numpy_gemm(dtype):
    """The address of the ILP64 Fortran-style ?gemm of the BLAS NumPy links
    (sgemm for float32, dgemm for float64), or 0 if it is not an OpenBLAS
    that exports one (a NumPy built on another BLAS)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return 0
    letter = "s" if np.dtype(dtype) == np.float32 else "d"
    numpy_dir = os.path.dirname(os.path.dirname(np.__file__))
    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        # NumPy's own copy (numpy.libs, numpy/.dylibs), not SciPy's
        if lib.internal_api != "openblas" or "numpy" not in os.path.relpath(lib.filepath, numpy_dir).split(os.sep)[0]:
            continue
        handle = ctypes.CDLL(lib.filepath)
        for name in (f"scipy_{letter}gemm_64_", f"{letter}gemm_64_", f"{letter}gemm64_"):
            routine = getattr(handle, name, None)
            if routine is not None:
                return ctypes.cast(routine, ctypes.c_void_p).value
    return 0


# ---------------------------------------------------------------- the BLAS on one thread
# Keep the BLAS libraries (NumPy's and SciPy's) on one thread while cydrop's
# pool runs GEMM blocks.
#
# Why: the dense kernels cut each GEMM into blocks whose geometry depends only
# on the shapes and run them on cydrop's threads, so results are bit-identical
# for any thread count. BLAS must then run each block on the calling thread:
# its own threads would both oversubscribe the cores and change the summation
# order. This is scikit-learn's ``threadpool_limits(1, user_api="blas")`` done
# once per call through cached function pointers (a ctypes call, not a scan of
# the loaded libraries). Meanwhile a GEMM of another Python thread runs on one
# thread too.


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
    """Context manager: the threads of the BLAS libraries of NumPy and SciPy
    set to 1, restored when the last concurrent user leaves (calls from
    several Python threads nest)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = []
        self._controls = None

    def _find(self):
        """(get, set) pairs for the BLAS libraries loaded (NumPy's and SciPy's)."""
        from threadpoolctl import ThreadpoolController

        import scipy.linalg.cython_blas  # noqa: F401  (make sure SciPy's BLAS is loaded)

        controls = []
        for lc in ThreadpoolController().select(user_api="blas").lib_controllers:
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
