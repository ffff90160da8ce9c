"""cydrop._load: the CPU time of the other processes, from /proc/stat."""
import pytest

from cydrop import _load

STAT = """cpu  1000 20 300 9000 50 5 6 7 100 0
cpu0 400 10 100 4500 20 2 3 4 50 0
cpu1 600 10 200 4500 30 3 3 3 50 0
intr 12345 1 2
ctxt 999
"""


def test_busy_ticks_per_cpu_leave_out_idle_iowait_and_guest():
    # cpu0: user 400 + nice 10 + system 100 + irq 2 + softirq 3 + steal 4
    assert _load.parse_stat(STAT) == {0: 519, 1: 819}


def test_a_stat_without_cpu_lines_is_refused():
    with pytest.raises(ValueError, match="no cpu lines"):
        _load.parse_stat("intr 1\nctxt 2\n")


class Clock:
    def __init__(self):
        self.now, self.cpu = 50.0, 0.0

    def monotonic(self):
        return self.now

    def process_time(self):
        return self.cpu


def _stat(busy0, busy1):
    return f"cpu  0 0 0 0 0 0 0 0\ncpu0 {busy0} 0 0 0 0 0 0 0\ncpu1 {busy1} 0 0 0 0 0 0 0\n"


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """An OtherLoad reading a stat file of the test's on the test's clock, two CPUs, 100 ticks a second."""
    clock = Clock()
    monkeypatch.setattr(_load, "time", clock)
    monkeypatch.setattr(_load, "_our_cpus", lambda: {0, 1})
    path = tmp_path / "stat"
    path.write_text(_stat(0, 0))
    load = _load.OtherLoad(str(path))
    load.tick = 0.01
    return load, clock, path


def test_the_others_are_the_machine_s_busy_time_less_this_process_s(machine):
    load, clock, path = machine
    assert not load.leaves_cores(2)            # no window read yet: no trial
    clock.now += 1.0
    clock.cpu += 0.9                            # this process: 0.9 s of CPU
    path.write_text(_stat(100, 90))             # the machine: 1.9 s busy, 1.0 s of it another process's
    assert not load.leaves_cores(2) and load.value == pytest.approx(1.0)
    assert load.leaves_cores(1)                 # one thread still finds a core
    clock.now += 1.0
    clock.cpu += 1.9
    path.write_text(_stat(200, 180))            # the machine's busy time is all this process's
    assert load.leaves_cores(2) and load.value == pytest.approx(0.0)


def test_short_windows_wait_and_stale_ones_say_nothing(machine):
    load, clock, path = machine
    clock.now += _load.MIN_WINDOW_SECONDS / 2
    path.write_text(_stat(100, 100))
    load.sample()                                # too short a window: not read
    assert load.value is None
    clock.now += 10 * _load.MAX_WINDOW_SECONDS   # no calls for a while: the window spans it
    load.sample()
    assert load.value is None and not load.leaves_cores(1)
    clock.now += 1.0
    path.write_text(_stat(100, 100))
    assert load.leaves_cores(2) and load.value == 0.0
    clock.now += 10 * _load.MAX_WINDOW_SECONDS
    assert not load.leaves_cores(2)              # its value is stale by now


def test_without_proc_stat_the_machine_counts_as_idle(tmp_path):
    load = _load.OtherLoad(str(tmp_path / "absent"))
    assert load.leaves_cores(64)
