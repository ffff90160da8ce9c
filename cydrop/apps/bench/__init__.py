"""``cydrop bench``: cydrop timed beside plain NumPy and PyTorch, on this machine.

``baselines`` holds the NumPy and PyTorch code cydrop is compared with (shared
with the pytest-benchmark suite in ``benchmarks/``), ``cases`` the groups of
work, ``timer`` the interleaved timing, ``report`` the table, JSON and chart,
``command`` the command line. Nothing here is imported by ``import cydrop``.
"""
