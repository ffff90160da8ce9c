"""The ``cydrop`` command (also ``python -m cydrop``)."""
import argparse
import difflib
import io
import os
import select
import sys
import time

import numpy as np

import cydrop

from .._validation import check_keep_prob
from . import search, uci
from ._options import UsageError, checking_options, fill_defaults, refuse_ineffective
from .bench import baselines
from .bench import command as bench_command
from .demo import DEFAULT_OUT as DEMO_OUT, LEARN_EPOCHS

DEMO_EPOCHS = 200
CHECK_ITERATIONS = 50


def _median_ms(fn, repeats):
    fn()  # warm-up: first touch of fresh pages, first call of a kernel
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _check_at_least(option, value, low):
    if value < low:
        raise ValueError(f"{option} must be >= {low}, got {value}")


def _check_seed(value):
    # the MLP and the Generator take seeds in [0, 2**64)
    if not 0 <= value < 1 << 64:
        raise ValueError(f"--seed must be in [0, 2**64), got {value}")


def _physical_memory():
    """Bytes of memory of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):   # Windows has no sysconf
        return None


def _check_kernels_fit(batch, width):
    """Refuse sizes whose arrays cannot be held, before any is made: NumPy
    would fail half-way with a MemoryError, or a ValueError ("array is too
    big") past the address space. The check and the timing hold about 14
    float32 arrays of (batch, width) and 6 of (width, width) at once (W is
    drawn in float64; the reference computes its own products)."""
    need = 4 * (14 * batch * width + 6 * width * width)
    memory = _physical_memory()
    limit = memory if memory else np.iinfo(np.intp).max
    if need > limit:
        where = f"this machine's {memory / 2**30:.3g} GiB" if memory else "what this platform can address"
        raise ValueError(f"--batch {batch} and --width {width}: the check needs about {need / 2**30:.3g} GiB of "
                         f"memory, more than {where}")


def demo(args):
    """Train on MNIST-1D with and without dropout; table and curves."""
    from . import demo as mnist_demo

    # every option and dependency checked before the banner: nothing runs on bad input
    with checking_options():
        training = "the training, not --check" if args.check else None
        refuse_ineffective([("--check-iterations", args.check_iterations is not None,
                             None if args.check else "--check"),
                            ("--out", args.out is not None, "the plot, not --no-plot" if args.no_plot else None),
                            ("--epochs", args.epochs is not None, training),
                            ("--learn-epochs", args.learn_epochs is not None, training),
                            ("--quiet", args.quiet, training)])   # the check shows no progress bars
        fill_defaults(args, dict(epochs=DEMO_EPOCHS, learn_epochs=LEARN_EPOCHS, out=DEMO_OUT,
                                 check_iterations=CHECK_ITERATIONS))
        keep_prob = check_keep_prob(args.keep_prob, "--keep-prob")
        _check_at_least("--epochs", args.epochs, 1)
        _check_at_least("--learn-epochs", args.learn_epochs, 0)
        _check_at_least("--check-iterations", args.check_iterations, 1)
        _check_seed(args.seed)
        mnist_demo.check_dependencies(plot=not args.no_plot)
        out = None if args.no_plot else mnist_demo.output_path(args.out)
    if args.check:
        return _demo_check(mnist_demo, keep_prob, args, out)
    print(f"cydrop {cydrop.__version__}: MNIST-1D (4000 train / 1000 test), 40-512-512-10 MLP, "
          f"Adam, batch 100, {args.epochs} epochs, seed {args.seed}, {cydrop.get_num_threads()} thread(s)")
    if args.learn_epochs:
        settings = {**mnist_demo.LEARN_NETWORK, **mnist_demo.LEARN_FIT}
        print("and the same network learning every layer's keep_prob (Concrete dropout: "
              + ", ".join(f"{k} {v:g}" for k, v in settings.items()) + f", {args.learn_epochs} epochs)")
    results = mnist_demo.train_networks(keep_prob, args.epochs, args.seed, progress=not args.quiet,
                                        learn_epochs=args.learn_epochs)
    print()
    mnist_demo.print_table(results)
    print("\npublished MLP reference (Greydanus 2020): 68% test accuracy")
    if out is not None:
        mnist_demo.plot(results, out)
        print(f"curves written to {out}")
    return 0


def _demo_check(mnist_demo, keep_prob, args, out):
    """``cydrop demo --check``: the debugging recipe on the demo network, before any training."""
    report = mnist_demo.check_network(keep_prob, args.seed, args.check_iterations)
    print(f"cydrop {cydrop.__version__}: the debugging recipe on the 40-512-512-10 demo network "
          f"(keep_prob 1, {', '.join(f'{p:g}' for p in [keep_prob] * 2)} when training), dropout off, "
          f"on the first {mnist_demo.CHECK_ROWS} MNIST-1D training samples\n")
    print(report)
    if out is not None:
        mnist_demo.plot_check(report, out)
        print(f"J per iteration written to {out}")
    return 0 if report.monotonic and report.gradient_error < 1e-7 else 1


def kernels(args):
    """Dropout and a fused dropout+dense layer on realistic sizes: checked
    against plain NumPy given the same mask, then timed beside NumPy."""
    with checking_options():
        keep_prob = check_keep_prob(args.keep_prob, "--keep-prob")
        for option, value in (("--batch", args.batch), ("--width", args.width), ("--repeats", args.repeats)):
            _check_at_least(option, value, 1)
        _check_seed(args.seed)
        _check_kernels_fit(args.batch, args.width)
    try:
        return _kernels_report(args, keep_prob)
    except MemoryError as exc:   # below the machine's memory but above what is free: one line, not a traceback
        raise UsageError(f"--batch {args.batch} and --width {args.width}: out of memory ({exc})") from None


def _kernels_report(args, keep_prob):
    gen = cydrop.Generator(args.seed)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.batch, args.width), dtype=np.float32)
    W = (rng.standard_normal((args.width, args.width)) / np.sqrt(args.width)).astype(np.float32)
    b = np.zeros(args.width, dtype=np.float32)
    g = rng.standard_normal((args.batch, args.width), dtype=np.float32)

    print(f"cydrop {cydrop.__version__}: {cydrop.get_num_threads()} thread(s), "
          f"x {x.shape} float32, keep_prob {keep_prob}, seed {args.seed}\n")

    # 1. correctness against the NumPy formula with the same mask
    # the reference multiplies by the scale or by 0, as the formula x * D / keep_prob means: a
    # product D * (1 / keep_prob) would make 0 * inf = NaN where 1 / keep_prob overflows float32
    with np.errstate(over="ignore"):   # 1 / keep_prob past float32's range is inf, and right as such
        scale = np.float32(1 / keep_prob)
    y, mask = cydrop.dropout(x, keep_prob, seed=gen)
    ok_dropout = np.array_equal(y, x * np.where(mask.to_bool(), scale, np.float32(0)))
    out, cache = cydrop.dense_forward(x, W, b, keep_prob, activation="relu", seed=gen)
    dx, dW, db = cydrop.dense_backward(g, cache)
    D_scaled = np.where(cache.mask.to_bool(), scale, np.float32(0))
    xt = x * D_scaled
    z = xt @ W + b
    dz = g * (z > 0)
    ok_dense = all(np.allclose(a, r, rtol=1e-4, atol=1e-4) for a, r in (
        (out, np.maximum(z, 0)), (dW, xt.T @ dz), (db, dz.sum(0)), (dx, (dz @ W.T) * D_scaled)))
    print(f"kept {mask.count_kept()} of {mask.size} ({mask.count_kept() / mask.size:.4f}), "
          f"mask {mask.nbytes} bytes = {8 * mask.nbytes / mask.size:.2f} bits per element")
    print(f"dropout equals x * D / keep_prob:           {'yes' if ok_dropout else 'NO'}")
    print(f"fused dense layer equals NumPy's, fwd+bwd:  {'yes' if ok_dense else 'NO'}\n")

    # 2. speed beside NumPy (the course's code, as cydrop bench runs it), measured in this run
    def cydrop_layer():
        out, cache = cydrop.dense_forward(x, W, b, keep_prob, seed=gen)
        return cydrop.dense_backward(g, cache)

    # the course's code computes 0 * inf = NaN where 1 / keep_prob overflows: timed all the same
    with np.errstate(over="ignore", invalid="ignore"):
        rows = [
            ("dropout forward", _median_ms(lambda: baselines.numpy_course_dropout(x, keep_prob), args.repeats),
             _median_ms(lambda: cydrop.dropout(x, keep_prob, seed=gen), args.repeats)),
            ("dense layer fwd+bwd", _median_ms(lambda: baselines.numpy_layer(x, W, b, g, keep_prob), args.repeats),
             _median_ms(cydrop_layer, args.repeats)),
        ]
    floor = _median_ms(lambda: baselines.gemms(x, W, g), args.repeats)
    print(f"{'median ms':<22}{'NumPy':>10}{'cydrop':>10}{'speed-up':>10}")
    for name, t_np, t_cy in rows:
        print(f"{name:<22}{t_np:>10.3f}{t_cy:>10.3f}{t_np / t_cy:>9.1f}x")
    print(f"(the layer's three bare GEMMs with NumPy: {floor:.3f} ms; cydrop layer = "
          f"{rows[1][2] / floor:.2f}x of that)")
    return 0 if ok_dropout and ok_dense else 1


class HelpFormatter(argparse.HelpFormatter):
    """Each option's default after its help, unless the help already says it
    or there is none to say (a flag, or None: then the help tells what
    happens without the option)."""

    def _get_help_string(self, action):
        help = action.help or ""
        if (action.default is not None and action.default is not argparse.SUPPRESS and action.nargs != 0
                and "default" not in help):
            help += " (default: %(default)s)"
        return help


def build_parser():
    parser = argparse.ArgumentParser(
        prog="cydrop", formatter_class=HelpFormatter,
        description="cydrop: fast inverted dropout for NumPy training loops. The commands train the "
                    "MNIST-1D demo, check and time the kernels, benchmark cydrop beside NumPy and "
                    "PyTorch, and search keep_prob by cross-validation. Run cydrop COMMAND --help "
                    "for a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {cydrop.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("demo", help="train on MNIST-1D with and without dropout, and learning keep_prob",
                       description="Train a 40-512-512-10 MLP on MNIST-1D (4000 train / 1000 test) without "
                                   "dropout, with dropout, and learning every layer's keep_prob (Concrete "
                                   "dropout); print train and test accuracy, the gap and the time, the learned "
                                   "keep_prob per layer and whether they follow the rule of thumb (the input "
                                   "layer keeps at least 0.9, every hidden layer at least 0.02 less), and plot "
                                   "the train/test curves and the learned keep_prob per epoch.")
    # the options of one mode default to None: refuse_ineffective tells given from not given
    p.add_argument("--epochs", type=int, default=None,
                   help=f"epochs of each training run (default {DEMO_EPOCHS})")
    p.add_argument("--keep-prob", type=float, default=0.5,
                   help="keep_prob of the hidden layers of the dropout network (its inputs keep 1.0)")
    p.add_argument("--learn-epochs", type=int, default=None, metavar="N",
                   help=f"epochs of the network that learns its keep_prob (default {LEARN_EPOCHS}; "
                        "0: do not train it)")
    p.add_argument("--out", default=None, metavar="PATH",
                   help="where to write the curves: a file (png, pdf, svg, ...: any format matplotlib "
                        "writes; no extension means .png) or a folder (cydrop-demo.png inside it) "
                        f"(default {DEMO_OUT})")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the dropout masks")
    p.add_argument("--no-plot", action="store_true", help="do not plot (then --out is refused)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--check", action="store_true",
                   help="instead of training, run the debugging recipe on the network: with dropout off, "
                        "full-batch gradient descent must lower J on every iteration, and backprop must "
                        "match central differences; prints the report and plots J per iteration to --out "
                        "(exit 1 if either check fails)")
    p.add_argument("--check-iterations", type=int, default=None, metavar="N",
                   help=f"with --check: iterations of gradient descent (default {CHECK_ITERATIONS})")
    p.set_defaults(func=demo)
    p = sub.add_parser("kernels", help="check and time dropout and the fused dense layer",
                       description="Check dropout and the fused dropout+dense layer against plain NumPy "
                                   "given the same mask, then time them beside NumPy.")
    p.add_argument("--batch", type=int, default=256, help="rows of the input")
    p.add_argument("--width", type=int, default=1024, help="features of the input and units of the layer")
    p.add_argument("--keep-prob", type=float, default=0.8, help="keep_prob of the dropout")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the masks")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per case (the median is shown)")
    p.set_defaults(func=kernels)
    bench_command.add_parser(sub)
    search.add_parser(sub)
    uci.add_parser(sub)
    for command in _subparsers(parser):
        command.formatter_class = HelpFormatter
    return parser


def _did_you_mean(command, arg):
    """``arg``, with the closest option of ``command`` (the sub-command's own
    parser: another command's option would not be accepted either)."""
    if not arg.startswith("-"):
        return arg
    # compared without the dashes, which every option shares: with them any
    # short word came out close to some option (--bogus to --out)
    known = {s.lstrip("-"): s for a in command._actions for s in a.option_strings}
    match = difflib.get_close_matches(arg.split("=")[0].lstrip("-"), sorted(known), n=1)
    return f"{arg} (did you mean {known[match[0]]}?)" if match else arg


def _subparsers(parser):
    return [p for a in parser._actions if isinstance(a, argparse._SubParsersAction) for p in a.choices.values()]


def main(argv=None):
    try:
        code = _main(argv)
        sys.stdout.flush()   # a closed pipe is met here, where it can be caught, not at exit
        return code
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise   # a worker's pipe or a socket: an error of the work itself
        # the reader of our output has gone (cydrop ... | head): end quietly with
        # status 1, as the Python docs recommend for command-line tools (signal
        # module, "Note on SIGPIPE"), rather than restoring SIGPIPE's default,
        # which would also kill a search whose Dask connection drops. stdout
        # now points at devnull, so the flush at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _stdout_reader_gone():
    """Whether stdout is a pipe whose reader has closed it (poll reports an
    error on it), rather than a BrokenPipeError met on some other pipe."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False   # stdout replaced in-process: not a pipe of ours
    if not hasattr(select, "poll"):
        return True    # Windows cannot ask; the Python docs' recipe assumes stdout
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(event & select.POLLERR for _, event in poller.poll(0))


def _main(argv):
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # argparse alone says only "unrecognized arguments", and as the top-level parser
        command = next(p for p in _subparsers(parser) if p.prog == f"{parser.prog} {args.command}")
        command.error(f"unrecognized arguments: {' '.join(_did_you_mean(command, arg) for arg in unknown)}")
    try:
        return args.func(args)
    except UsageError as exc:   # anything else is no usage error: it keeps its traceback
        print(f"cydrop {args.command}: {exc}", file=sys.stderr)
        return 2
