"""How busy the rest of the machine is: the CPU time of every process but
this one, in cores, from Linux's ``/proc/stat``.

``Routes`` (cydrop._threads) asks before it tries another library's threads:
their barriers wait for every thread, so while other processes hold the
cores those threads need, one trial call costs many time slices (beside as
many busy processes as cores, a trial epoch of the demo network took 3.7-3.9
s, the pool's about 0.1 s: benchmarks/epochs_beside_busy_processes.py), and
the trial is bound to lose. Elsewhere than Linux nothing is read and the
machine counts as idle.
"""
import os
import time

STAT = "/proc/stat"
# Shortest reading window: /proc/stat counts in ticks of 1/100 s per CPU.
MIN_WINDOW_SECONDS = 0.25
# Longest: a window that ended long ago, or spans an idle spell, is stale.
MAX_WINDOW_SECONDS = 2.0


def parse_stat(text):
    """{CPU index: busy ticks} from the text of /proc/stat.

    Busy is user + nice + system + irq + softirq + steal (steal: time a
    virtual machine's CPU was given to another guest); guest time is already
    in user."""
    busy = {}
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0].startswith("cpu") and fields[0][3:].isdigit():
            ticks = [int(v) for v in fields[1:9]] + [0] * max(0, 9 - len(fields))
            user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]
            busy[int(fields[0][3:])] = user + nice + system + irq + softirq + steal
    if not busy:
        raise ValueError("no cpu lines in /proc/stat")
    return busy


def _our_cpus():
    """The CPUs this process may run on (its affinity mask), or None."""
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return None


class OtherLoad:
    """Cores' worth of CPU time the other processes took on this process's
    CPUs (its affinity mask) over a recent window: ``sample`` (called at
    every routed call) reads /proc/stat at most every MIN_WINDOW_SECONDS,
    and a window longer than MAX_WINDOW_SECONDS (no calls for a while) says
    nothing about now."""

    def __init__(self, path=STAT):
        self.path = path
        self.tick = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
        self.n_cpus = os.cpu_count() or 1
        self.value, self.value_at = None, None
        self._mark = self._read()

    def _read(self):
        """(wall seconds, busy seconds of our CPUs, CPU seconds of this
        process), or None where there is no /proc/stat."""
        try:
            with open(self.path) as f:
                busy = parse_stat(f.read())
        except (OSError, ValueError):
            return None
        ours = _our_cpus()
        if ours:
            busy = {cpu: ticks for cpu, ticks in busy.items() if cpu in ours} or busy
        self.n_cpus = len(busy)
        return time.monotonic(), sum(busy.values()) * self.tick, time.process_time()

    def sample(self):
        """Read the window since the last reading, if it is long enough."""
        if self._mark is None or time.monotonic() - self._mark[0] < MIN_WINDOW_SECONDS:
            return
        now = self._read()
        if now is None:
            self._mark = None
            return
        wall = now[0] - self._mark[0]
        if wall <= MAX_WINDOW_SECONDS:
            others = (now[1] - self._mark[1]) - (now[2] - self._mark[2])
            self.value, self.value_at = max(0.0, others / wall), now[0]
        self._mark = now

    def leaves_cores(self, n_threads):
        """Whether n_threads threads find free cores: the other processes
        held less than the cores beyond them over the last window, with half
        a core to spare (ticks are coarse). True where /proc/stat cannot be
        read; False until a recent window was read."""
        if self._mark is None:
            return True
        self.sample()
        if self.value_at is None or time.monotonic() - self.value_at > MAX_WINDOW_SECONDS:
            return False
        return self.value < self.n_cpus - n_threads + 0.5
