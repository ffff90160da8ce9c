"""cydrop's thread pool (src/pool.h, cydrop._pool): every item of a pass
runs exactly once, the caller waits for items other threads claimed, several
callers and fork() are safe, and the C code passes ThreadSanitizer."""
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import threading

import numpy as np
import pytest

import cydrop
from cydrop import _pool

threads = pytest.mark.skipif(not _pool.threads_supported(), reason="a build without POSIX threads")
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")


@pytest.mark.parametrize("n_items", [0, 1, 2, 7, 64, 1000])
@pytest.mark.parametrize("n_threads", [1, 2, 3, 8])
def test_every_item_runs_exactly_once(n_items, n_threads):
    counts, on_caller = _pool.probe(n_items, n_threads)
    assert counts == [1] * n_items
    assert 0 <= on_caller <= n_items


def test_one_thread_runs_every_item_on_the_caller():
    counts, on_caller = _pool.probe(100, 1, work_us=5)
    assert counts == [1] * 100 and on_caller == 100


@threads
def test_workers_take_items_of_a_long_pass():
    # 100 items of 200 us: a worker that the OS runs at all within the pass
    # takes some; a few tries, as the machine may be busy
    for _ in range(10):
        counts, on_caller = _pool.probe(100, 2, work_us=200)
        assert counts == [1] * 100
        if on_caller < 100:
            break
    assert on_caller < 100, "no worker ever took an item"
    assert 1 <= _pool.workers() <= cydrop._threads.MAX_THREADS - 1


@threads
def test_caller_waits_for_an_item_a_held_up_worker_claimed():
    # workers sleep 20 ms inside each item they take (longer than the
    # caller's spin): the caller must sleep until they are done, not return
    for _ in range(5):
        counts, on_caller = _pool.probe(40, 2, work_us=200, delay_us=20000)
        assert counts == [1] * 40
        if on_caller < 40:
            break


@threads
def test_concurrent_callers_each_get_every_item_once():
    results, errors = [], []

    def work(i):
        try:
            for r in range(20):
                n = 50 + 37 * ((i + r) % 5)
                counts, _ = _pool.probe(n, 1 + (i + r) % 4, work_us=(r % 3) * 20)
                results.append(counts == [1] * n)
        except BaseException as exc:  # noqa: BLE001  (re-raised in the test's thread)
            errors.append(exc)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert len(results) == 120 and all(results)


def test_probe_refuses_bad_arguments():
    with pytest.raises(ValueError):
        _pool.probe(-1, 2)
    with pytest.raises(ValueError):
        _pool.probe(5, 0)


def _run_python(code, timeout=120):
    """Run code in a fresh interpreter (so fork and exit are its own); returns stdout."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@threads
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_forked_child_gets_a_working_pool():
    # the parent's workers do not exist in the child: it must start its own
    # (not wait for the parent's) and give the parent's masks
    out = _run_python("""
        import os, numpy as np, cydrop
        from cydrop import _pool
        cydrop.set_num_threads(2)
        x = np.linspace(-1, 1, 1 << 18, dtype=np.float32)
        y, mask = cydrop.dropout(x, 0.7, seed=3)
        assert _pool.workers() >= 1
        pid = os.fork()
        if pid == 0:
            ok = True
            for _ in range(20):
                y2, mask2 = cydrop.dropout(x, 0.7, seed=3)
                ok &= mask2 == mask and np.array_equal(y2, y)
                ok &= _pool.probe(200, 2, 20)[0] == [1] * 200
            os._exit(0 if ok and _pool.workers() <= 1 else 1)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
    """)
    assert "child 0" in out


@threads
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_multiprocessing_fork_workers_run_kernels():
    out = _run_python("""
        import multiprocessing as mp, numpy as np, cydrop

        def work(seed):
            x = np.ones(1 << 18, dtype=np.float32)
            y, mask = cydrop.dropout(x, 0.5, seed=seed)
            return int(mask.count_kept()), float(y.sum())

        if __name__ == "__main__":
            cydrop.set_num_threads(2)
            expected = [work(s) for s in range(6)]   # the parent's pool is started
            with mp.get_context("fork").Pool(3) as pool:
                got = pool.map(work, range(6))
            print(got == expected)
    """)
    assert out.strip() == "True"


@threads
def test_interpreter_exits_with_workers_alive():
    # workers idle (spinning or asleep) and a pass just run on another Python
    # thread: exit must neither hang nor crash
    out = _run_python("""
        import threading, numpy as np, cydrop
        from cydrop import _pool
        cydrop.set_num_threads(4)
        x = np.ones(1 << 20, dtype=np.float32)
        t = threading.Thread(target=lambda: [cydrop.dropout(x, 0.5, seed=i) for i in range(50)])
        t.start()
        cydrop.dropout(x, 0.5, seed=1)
        t.join()
        print("workers", _pool.workers())
    """, timeout=60)
    assert out.startswith("workers")


def _compiler():
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) or shutil.which("cc") or shutil.which("gcc")


@threads
@pytest.mark.skipif(sys.platform != "linux", reason="the stress test's fork and sanitizer flags are Linux's")
@pytest.mark.parametrize("sanitizer", [None, "thread"])
def test_pool_stress_in_c(tmp_path, sanitizer):
    """tests/c/pool_stress.c: concurrent callers, held-up items and a fork,
    under ThreadSanitizer when the compiler has it (any data race fails)."""
    cc = _compiler()
    if cc is None:
        pytest.skip("no C compiler")
    if not os.path.exists(os.path.join(SRC, "pool.h")):
        pytest.skip("run outside the source tree (no src/pool.h)")
    exe = tmp_path / "pool_stress"
    flags = ["-O1", "-g"] + ([f"-fsanitize={sanitizer}"] if sanitizer else [])
    build = subprocess.run([cc, *flags, "-I", SRC, os.path.join(HERE, "c", "pool_stress.c"), "-o", str(exe),
                            "-pthread"], capture_output=True, text=True)
    if build.returncode != 0:
        if sanitizer:
            pytest.skip(f"{cc} cannot build with -fsanitize={sanitizer}: {build.stderr[-300:]}")
        pytest.fail(build.stderr)
    # the child of a fork starts the pool's threads again, which TSan allows with die_after_fork=0
    env = dict(os.environ, TSAN_OPTIONS="die_after_fork=0 halt_on_error=1 exitcode=66")
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    assert run.stdout.startswith("ok")


@threads
def test_pass_completes_on_the_caller_when_workers_never_come():
    """The property an OpenMP barrier lacks: a pass counts items done, not
    threads arrived, so workers that never run hold nobody up."""
    _pool.probe(64, 4, work_us=50)                 # the workers exist and are idle
    assert _pool.workers() >= 1
    jobs = _pool.jobs()
    _pool.hold_workers(True)
    try:
        counts, on_caller = _pool.probe(500, 4, work_us=20)
        x = np.linspace(-1, 1, 1 << 20, dtype=np.float32)
        cydrop.set_num_threads(4)
        y, mask = cydrop.dropout(x, 0.6, seed=9)
    finally:
        _pool.hold_workers(False)
        cydrop.set_num_threads(None)
    assert counts == [1] * 500 and on_caller == 500
    assert _pool.jobs() >= jobs + 2                # both were offered to the workers
    cydrop.set_num_threads(1)
    try:
        y1, mask1 = cydrop.dropout(x, 0.6, seed=9)
    finally:
        cydrop.set_num_threads(None)
    assert mask == mask1 and np.array_equal(y, y1)
