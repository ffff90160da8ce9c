"""``cydrop bench``: time cydrop beside plain NumPy and PyTorch on this machine."""
import sys
import time

import cydrop

from ..._threads import MAX_THREADS, thread_setting
from .._options import check_output_path, checking_options, fill_defaults, refuse_ineffective
from . import baselines, cases, load, report
from .timer import thread_limits, time_group

# single calls per phase of a load group, without --calls
LOAD_CALLS = 50

DESCRIPTION = """\
Times dropout forward/backward, the fused dense layer (beside its bare GEMMs),
an MLP training epoch and MC-dropout prediction, each beside plain NumPy (the
course's np.random.rand way and a float32 np.random.Generator) and PyTorch CPU
when it is installed. Every case is warmed up and its result checked, then
timed in interleaved rounds (PyTorch's after the others': its spinning threads
would slow whatever runs next); figures are medians, ratios are taken within
this run. The quick subset takes well under a minute; --full runs every size
(batch 64 784->512 up to batch 1024 4096->4096, float32 and float64) and takes
a few minutes. --load runs the load groups instead: each case quiet and
with one busy process per core (started and ended by the benchmark), on
one thread and on every core, as p50/p90 of single calls (a few minutes).
For pytest-benchmark's statistics use the suite in benchmarks/ of the
source tree: python -m pytest benchmarks --benchmark-only."""


def add_parser(subparsers):
    p = subparsers.add_parser("bench", help="time cydrop beside NumPy and PyTorch on this machine",
                              description=DESCRIPTION)
    p.add_argument("--full", action="store_true", help="every size and dtype, not the quick subset")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads for cydrop, NumPy's BLAS and PyTorch alike (default: their own)")
    p.add_argument("--rounds", type=int, default=None, metavar="N",
                   help="timed rounds per case (default 15, or 25 with --full; fewer if a group "
                        "exceeds its time budget)")
    p.add_argument("--only", default=None, metavar="TEXT",
                   help="run only the groups whose tag contains TEXT: dropout-forward, dropout-backward, "
                        "dense, mlp-epoch, mlp-cost, mc-predict, torch (cydrop.torch against torch.nn), "
                        "concrete (concrete dropout), float32, "
                        "1024x4096, ... (default: every group)")
    p.add_argument("--load", action="store_true",
                   help="run the load groups instead: each case quiet and with a busy process on every core "
                        "(started and ended by the benchmark), as p50/p90 of single calls; it takes --only, "
                        "--calls, --no-torch and --json, and refuses the other options")
    p.add_argument("--calls", type=int, default=None, metavar="N",
                   help=f"with --load: single calls timed per phase of a load group (default {LOAD_CALLS})")
    p.add_argument("--no-torch", action="store_true", help="leave out the PyTorch baselines")
    p.add_argument("--json", default=None, metavar="PATH", help="write every figure as JSON (default: not written)")
    p.add_argument("--plot", default=None, metavar="PATH",
                   help="write a PNG bar chart of the ratios (needs matplotlib; default: not written)")
    p.add_argument("--markdown", default=None, metavar="PATH",
                   help="write the summary as a Markdown table, as in benchmarks/results/bench/ (default: not written)")
    p.set_defaults(func=run)
    return p


def _torch(args):
    if args.no_torch:
        return "PyTorch baseline left out (--no-torch)"
    torch, reason = baselines.import_torch()
    return torch if torch is not None else reason


def _write_text(path, text):
    with open(path, "w") as f:
        f.write(text)


def check_args(args):
    """The options checked before any work begins (ValueError or ImportError
    naming the option); returns (rounds, outputs): the timed rounds per case
    and {option: path} of the files to write. Sets ``args.calls`` to its
    default with --load."""
    # --load times its own groups, as single calls on one thread and on
    # every core, and writes only --json
    timed_only = "the timed groups, not --load ({})"
    refuse_ineffective([
        ("--calls", args.calls is not None, None if args.load else "--load"),
        ("--full", args.full, timed_only.format("it has its own groups") if args.load else None),
        ("--rounds", args.rounds is not None,
         timed_only.format("it times --calls single calls") if args.load else None),
        ("--threads", args.threads is not None,
         timed_only.format("it runs every case on one thread and on every core") if args.load else None),
        *((option, path is not None, timed_only.format("it writes only --json") if args.load else None)
          for option, path in (("--markdown", args.markdown), ("--plot", args.plot))),
    ])
    fill_defaults(args, dict(calls=LOAD_CALLS))
    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        raise ValueError(f"--threads must be in [1, {MAX_THREADS}], got {args.threads}")
    rounds = args.rounds if args.rounds is not None else (25 if args.full else 15)
    if rounds < 1:
        raise ValueError(f"--rounds must be >= 1, got {rounds}")
    if args.calls < 2:
        raise ValueError(f"--calls must be >= 2, got {args.calls}")
    outputs = {}
    for option, path in (("--json", args.json), ("--plot", args.plot), ("--markdown", args.markdown)):
        if path is not None:
            outputs[option] = check_output_path(path, option, plot=option == "--plot")
    return rounds, outputs


def select_groups(args, torch):
    """The ``(tag, build)`` pairs that ``--only`` selects; ValueError if none.
    (Which groups exist can depend on whether torch is there.)"""
    builders = cases.load_builders(torch) if args.load else cases.build_groups(args.full, torch)
    selected = [(tag, build) for tag, build in builders if not args.only or args.only.lower() in tag]
    if not selected:
        raise ValueError(f"--only {args.only!r} matches no group{' of --full' if args.full else ''}; the groups "
                         f"are {', '.join(tag for tag, _ in builders)}")
    return selected


def run(args, out=None):
    """Run the report; 0 if every case ran and every output was written, else 1."""
    out = sys.stdout if out is None else out
    with checking_options():
        rounds, outputs = check_args(args)
        torch = _torch(args)
        groups = select_groups(args, torch)  # before the header: a typo costs a message, not a run
    if args.load:
        return run_load(args, torch, groups, outputs, out)
    problems = []
    budget = 60.0 if args.full else 4.0  # seconds of timing per group before rounds stop early
    results, failed = [], False
    started = time.perf_counter()
    with thread_limits(args.threads, torch):
        info = report.machine_info(torch)
        report.print_header(info, out)
        for tag, build in groups:
            group = build()
            group.tag = tag
            timings = time_group(group, rounds, budget)
            rows = report.group_rows(group, timings)
            report.print_group(group, rows, out)
            out.flush()
            results.append((group, rows))
            failed |= any(t.error for t in timings)
        memory = report.mask_memory(torch)
    report.print_memory(memory, out)
    print(f"\n{len(results)} groups in {time.perf_counter() - started:.0f} s", file=out)

    options = {"full": args.full, "threads": args.threads, "rounds": rounds, "only": args.only}
    writers = {
        "--json": ("figures", lambda path: report.write_json(path, info, options, results, memory)),
        "--markdown": ("table", lambda path: _write_text(path, report.markdown(info, results, memory))),
        "--plot": ("chart", lambda path: report.write_plot(path, results)),
    }
    problems += _write_outputs(outputs, writers, out)
    for problem in problems:
        print(f"cydrop bench: {problem}", file=sys.stderr)
    return 1 if failed or problems else 0


def _write_outputs(outputs, writers, out):
    """Write each requested file; the problems met, as messages."""
    problems = []
    for option, path in outputs.items():
        what, write = writers[option]   # check_args refused an output the mode does not write
        try:
            write(path)
        except OSError as exc:  # e.g. the disk filled up during the run
            problems.append(f"{option} {path!r}: {exc}")
        else:
            print(f"{what} written to {path}", file=out)
    return problems


def run_load(args, torch, groups, outputs, out):
    """The load groups (``--load``); 0 if every case ran and every output was written, else 1."""
    cores = load.n_cores()
    info = report.machine_info(torch)
    report.print_header(info, out)
    print(f"load groups: {args.calls} single calls per phase; loaded = {cores} busy processes "
          f"(one per core of this process) beside the calls; load average before: {load.loadavg()}", file=out)
    results, failed = [], False
    started = time.perf_counter()
    for tag, build in groups:
        group = build()
        group.tag = tag
        timings = load.time_load_group(group, torch, args.calls, cores)
        load.print_load_group(group, timings, cores, out)
        out.flush()
        results.append(load.load_json(group, timings, cores))
        failed |= any(t.error for t in timings)
    print(f"\n{len(results)} load groups in {time.perf_counter() - started:.0f} s; "
          f"load average after: {load.loadavg()}", file=out)
    options = {"calls": args.calls, "only": args.only, "cores": cores}
    problems = _write_outputs(outputs, {"--json": ("figures", lambda path: report.write_load_json(
        path, info, options, results))}, out)
    for problem in problems:
        print(f"cydrop bench: {problem}", file=sys.stderr)
    return 1 if failed or problems else 0
