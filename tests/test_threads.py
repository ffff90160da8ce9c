"""cydrop.set_num_threads / get_num_threads and their interplay with OpenMP
limits (OMP_NUM_THREADS, threadpoolctl) and cgroup CPU quotas."""
import os

import numpy as np
import pytest

import cydrop
from cydrop import _threads

openmp = pytest.mark.skipif(not cydrop._openmp.openmp_enabled(), reason="built without OpenMP")


@openmp
@pytest.mark.parametrize("n_threads", [1, 2, 3, 16, np.int64(2)])
def test_set_and_get(reset_threads, n_threads):
    cydrop.set_num_threads(n_threads)
    assert cydrop.get_num_threads() == n_threads
    assert type(cydrop.get_num_threads()) is int


@openmp
def test_none_resets_to_openmp_default(reset_threads):
    default = cydrop.get_num_threads()
    assert default >= 1
    cydrop.set_num_threads(default + 3)
    assert cydrop.get_num_threads() == default + 3
    cydrop.set_num_threads(None)
    assert cydrop.get_num_threads() == default


@pytest.mark.parametrize(
    "n_threads, error",
    [(0, ValueError), (-1, ValueError), (1.5, TypeError), (2.0, TypeError), ("2", TypeError), (True, TypeError)],
)
def test_bad_thread_counts_refused(reset_threads, n_threads, error):
    cydrop.set_num_threads(3)
    with pytest.raises(error, match="n_threads"):
        cydrop.set_num_threads(n_threads)
    if cydrop._openmp.openmp_enabled():
        assert cydrop.get_num_threads() == 3  # a refused value changes nothing


@openmp
def test_threadpoolctl_limit_applies_when_not_set(reset_threads, monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(_threads, "cpu_quota", lambda: None)   # whatever this machine's cgroup says
    # Start from a known limit of 2 so that lowering to 1 is observable on
    # any machine (even one core).
    with threadpoolctl.threadpool_limits(2, user_api="openmp"):
        assert cydrop.get_num_threads() == 2
        with threadpoolctl.threadpool_limits(1, user_api="openmp"):
            assert cydrop.get_num_threads() == 1
            # an explicit setting wins over the OpenMP limit
            cydrop.set_num_threads(2)
            assert cydrop.get_num_threads() == 2
            cydrop.set_num_threads(None)
            assert cydrop.get_num_threads() == 1
        assert cydrop.get_num_threads() == 2


@openmp
def test_results_do_not_depend_on_threadpoolctl_limit(reset_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    x = np.linspace(-1, 1, 1 << 19, dtype=np.float32)  # 512k: 2+ threads get >= 64k each
    results = []
    for limit in (1, 2):
        with threadpoolctl.threadpool_limits(limit, user_api="openmp"):
            assert cydrop.get_num_threads() == limit
            y, mask = cydrop.dropout(x, 0.7, seed=5)
            results.append((y, mask))
    assert results[0][1] == results[1][1]
    np.testing.assert_array_equal(results[0][0].view(np.uint32), results[1][0].view(np.uint32))



def test_thread_count_bounded(reset_threads):
    # 2**31 used to reach the kernels' C int (OverflowError after the
    # generator had advanced); OpenMP starts every thread asked for, and
    # libgomp ends the process when the system refuses one
    cydrop.set_num_threads(4096)
    for n in (4097, 2**31, 10**12):
        with pytest.raises(ValueError, match="n_threads must be <= 4096"):
            cydrop.set_num_threads(n)


@pytest.fixture
def fake_cgroup(tmp_path, monkeypatch):
    """A cgroup file tree of our own at CGROUP_ROOT; the quota is read again
    for each test and forgotten after it."""
    monkeypatch.setattr(_threads, "CGROUP_ROOT", str(tmp_path))
    _threads.cpu_quota.cache_clear()
    yield tmp_path
    _threads.cpu_quota.cache_clear()


def _write(root, name, text):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("files, cpus", [
    ({"cpu.max": "150000 100000\n"}, 2),                 # v2: 1.5 CPUs, rounded up
    ({"cpu.max": "50000 100000\n"}, 1),                  # v2: half a CPU
    ({"cpu.max": "max 100000\n"}, None),                 # v2: no quota
    ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),   # v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),   # v1: no quota
    ({"cpu.max": "garbage\n"}, None),
    ({}, None),                                          # no cgroup file system
])
def test_cpu_quota_read_from_cgroup_files(fake_cgroup, files, cpus):
    for name, text in files.items():
        _write(fake_cgroup, name, text)
    assert _threads.cpu_quota() == cpus


@openmp
def test_container_quota_caps_the_default_thread_count(fake_cgroup, reset_threads):
    # a container limited to one CPU on a larger host: no team per core
    threadpoolctl = pytest.importorskip("threadpoolctl")
    _write(fake_cgroup, "cpu.max", "100000 100000\n")
    with threadpoolctl.threadpool_limits(4, user_api="openmp"):
        assert cydrop.get_num_threads() == 1
        jobs = cydrop._pool.jobs()
        x = np.ones(1 << 20, dtype=np.float32)
        cydrop.dropout(x, 0.5, seed=1)
        assert cydrop._pool.jobs() == jobs           # the pass ran on the calling thread alone
        cydrop.set_num_threads(3)                    # an explicit setting still wins
        assert cydrop.get_num_threads() == 3


@openmp
def test_quota_above_openmp_count_changes_nothing(fake_cgroup, reset_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    _write(fake_cgroup, "cpu.max", "800000 100000\n")
    with threadpoolctl.threadpool_limits(2, user_api="openmp"):
        assert cydrop.get_num_threads() == 2


@openmp
def test_no_quota_leaves_openmp_count_above_the_cores(fake_cgroup, reset_threads):
    # OMP_NUM_THREADS, threadpoolctl and torch.set_num_threads may ask for
    # more threads than cores: only a quota caps them
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits((os.cpu_count() or 1) + 2, user_api="openmp"):
        assert cydrop.get_num_threads() == (os.cpu_count() or 1) + 2


def test_cpu_quota_agrees_with_loky_on_this_machine():
    loky = pytest.importorskip("joblib.externals.loky.backend.context")
    _threads.cpu_quota.cache_clear()
    # loky counts every CPU when there is no quota
    assert (_threads.cpu_quota() or os.cpu_count()) == loky._cpu_count_cgroup(os.cpu_count())
