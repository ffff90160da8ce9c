"""``cydrop search``: cross-validated keep_prob search on MNIST-1D, locally or on Dask.

A ``GridSearchCV`` over ``keep_prob`` of :class:`cydrop.sklearn.DropoutMLPClassifier`.
Every candidate trains until it has converged, not for a fixed budget:
dropout nets need more epochs than plain ones, and a short fixed budget ranks
them as worse because they are undertrained. Each fit holds out 10% of its
training fold and stops when the held-out loss (dropout off) has not fallen
for ``--patience`` epochs, keeping its best weights; ``--max-epochs`` is only
a cap. The best candidate is then refitted on all ``--n-train`` samples for
the mean of its folds' best epochs, without a hold-out.

It runs on local processes through joblib, or on an existing Dask cluster
through joblib's Dask backend (``--scheduler ADDRESS``): cydrop has no
scheduling or transport of its own. Cheap to import: scikit-learn, Dask and
mnist1d are imported by :func:`run` only.
"""
import contextlib
import csv
import json
import math
import sys
import time

from ._options import check_output_path, checking_options, fill_defaults, refuse_ineffective

BATCH_SIZE = 100
VALIDATION_FRACTION = 0.1
N_CLASSES = 10  # MNIST-1D's digits
SCHEDULER_TIMEOUT = 10.0   # seconds


def add_parser(subparsers):
    """Register the ``search`` sub-command on ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser(
        "search", help="cross-validated keep_prob search on MNIST-1D (local processes or Dask)",
        description="Grid search of keep_prob with k-fold cross-validation on MNIST-1D: "
                    "the first --n-train of its 4000 training samples, an MLP with --hidden "
                    "layers, Adam at 1e-3, batch 100, no L2. Every fit trains until it has converged: "
                    "it holds out 10% of its training fold and stops when that loss (dropout off) "
                    "has not fallen for more than --patience epochs, keeping its best weights (--max-epochs "
                    "is a cap). Prints the candidates ranked by mean CV accuracy (± std over the "
                    "folds) with their epochs and fit time, then the test accuracy of the best one "
                    "refitted on all --n-train samples for its mean best epoch (1000 test samples).")
    p.add_argument("--keep-prob", nargs="+", default=None, metavar="KP",
                   help="candidates: a float applies to the hidden layers (inputs keep 1.0); a comma "
                        "list such as 0.8,0.5,0.5 gives one entry per dense layer, the input first "
                        "(default: 1.0 0.8 0.5 and a per-layer candidate as long as --hidden, the "
                        "inputs 0.8 and every hidden layer 0.5: 1.0 0.8 0.5 0.8,0.5,0.5 for the "
                        "default --hidden 256,256)")
    p.add_argument("--hidden", default="256,256", help="hidden layer sizes, comma-separated (default 256,256)")
    p.add_argument("--max-epochs", "--epochs", dest="max_epochs", type=int, default=400,
                   help="the most epochs of a fit; each stops earlier once converged (default 400)")
    p.add_argument("--patience", type=int, default=10,
                   help="a fit stops after more than this many epochs without a fall of its held-out loss "
                        "(scikit-learn's n_iter_no_change; default 10)")
    p.add_argument("--n-train", type=int, default=4000, help="training samples used, at most 4000 (default 4000)")
    p.add_argument("--cv", type=int, default=3, help="folds of the stratified cross-validation (default 3)")
    p.add_argument("--n-jobs", type=int, default=-1,
                   help="parallel fits: local processes, or Dask worker slots with --scheduler (default -1: all)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on this Dask scheduler (e.g. tcp://scheduler-host:8786) instead of local processes")
    p.add_argument("--timeout", type=float, default=None,
                   help=f"with --scheduler: seconds to wait for it (default {SCHEDULER_TIMEOUT:g})")
    p.add_argument("--csv", metavar="PATH", help="write the ranked table as CSV")
    p.add_argument("--json", metavar="PATH", help="write the settings and the ranked table as JSON")
    p.add_argument("--plot", metavar="PATH", help="plot CV accuracy against keep_prob with error bars (needs matplotlib)")
    p.add_argument("--seed", type=int, default=0, help="seeds the folds, the weights and the dropout masks")
    p.set_defaults(func=run)
    return p


def default_keep_probs(n_hidden):
    """The candidates without --keep-prob, for ``n_hidden`` hidden layers:
    three shared rates and one per-layer list that keeps more of the inputs
    (the lecture's rule of thumb), so that the default grid fits any --hidden."""
    return ["1.0", "0.8", "0.5", ",".join(["0.8"] + ["0.5"] * n_hidden)]


def parse_keep_probs(values, n_hidden):
    """``["0.5", "0.8,0.5,0.5"]`` -> ``[0.5, (0.8, 0.5, 0.5)]``, each checked."""
    from .._validation import check_keep_prob

    grid = []
    for text in values:
        parts = text.split(",")
        try:
            numbers = [float(part) for part in parts]
        except ValueError:
            raise ValueError(f"--keep-prob {text!r}: not a number or a comma list of numbers") from None
        for number in numbers:
            check_keep_prob(number, f"--keep-prob {text!r}: keep_prob")
        if len(parts) == 1:
            grid.append(numbers[0])
        elif len(numbers) != n_hidden + 1:
            raise ValueError(f"--keep-prob {text!r}: a per-layer list needs {n_hidden + 1} entries "
                             f"(the input and {n_hidden} hidden layer(s) of --hidden), got {len(numbers)}")
        else:
            grid.append(tuple(numbers))
    return grid


def _parse_hidden(text):
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--hidden {text!r}: expected comma-separated layer sizes such as 256,256") from None
    if any(size < 1 for size in sizes):
        raise ValueError(f"--hidden {text!r}: layer sizes must be >= 1")
    return tuple(sizes)


def _check_args(args):
    refuse_ineffective([("--timeout", args.timeout is not None, None if args.scheduler is not None else "--scheduler")])
    hidden = _parse_hidden(args.hidden)
    fill_defaults(args, dict(timeout=SCHEDULER_TIMEOUT, keep_prob=default_keep_probs(len(hidden))))
    grid = parse_keep_probs(args.keep_prob, len(hidden))
    for option, value, low, high in (("--max-epochs", args.max_epochs, 1, None), ("--patience", args.patience, 1, None),
                                     ("--cv", args.cv, 2, None), ("--n-train", args.n_train, 2, 4000)):
        if value < low or (high is not None and value > high):
            raise ValueError(f"{option} must be {'in [%d, %d]' % (low, high) if high else '>= %d' % low}, got {value}")
    if _held_out(args.n_train, args.cv) < N_CLASSES:
        smallest = next(n for n in range(args.n_train, 4001) if _held_out(n, args.cv) >= N_CLASSES)
        raise ValueError(f"--n-train {args.n_train} with --cv {args.cv}: each fit would hold out "
                         f"{_held_out(args.n_train, args.cv)} samples for its stopping rule, fewer than the "
                         f"{N_CLASSES} classes of a stratified split; use --n-train >= {smallest}")
    if args.n_jobs == 0:
        raise ValueError("--n-jobs must be >= 1, or negative to count back from all cores/slots; got 0")
    if not (args.timeout > 0 and math.isfinite(args.timeout)):
        raise ValueError(f"--timeout must be a number of seconds > 0, got {args.timeout}")
    if not 0 <= args.seed < 1 << 32:   # scikit-learn's random_state (the folds, the weights) takes 32 bits
        raise ValueError(f"--seed must be in [0, 2**32), got {args.seed}")
    for option in ("--csv", "--json", "--plot"):
        name = option[2:]
        if getattr(args, name) is not None:
            setattr(args, name, check_output_path(getattr(args, name), option, plot=option == "--plot"))
    return hidden, grid


def _check_folds(y, cv):
    """StratifiedKFold puts a member of every class in every fold: ValueError
    naming --cv if the smallest class of ``y`` has fewer members than folds."""
    import numpy as np

    smallest = int(np.unique(y, return_counts=True)[1].min())
    if cv > smallest:
        raise ValueError(f"--cv {cv}: the smallest class of the first {len(y)} training samples has {smallest} "
                         f"members, fewer than the folds of a stratified split; use --cv <= {smallest} "
                         "or a larger --n-train")


def _fold_train_rows(n_train, cv):
    """Rows of the smallest training fold (StratifiedKFold's test folds hold at most ceil(n / cv))."""
    return n_train - -(-n_train // cv)


def _held_out(n_train, cv):
    """Rows a fit holds out for early stopping (train_test_split rounds its test part up)."""
    return math.ceil(VALIDATION_FRACTION * _fold_train_rows(n_train, cv))


def _format_keep_prob(keep_prob):
    return ",".join(f"{p:g}" for p in keep_prob) if isinstance(keep_prob, tuple) else f"{keep_prob:g}"


def ranked_rows(cv_results, n_splits):
    """One dict per candidate of a fitted GridSearchCV's ``cv_results_``, best first."""
    score = "accuracy" if "mean_test_accuracy" in cv_results else "score"
    rows = []
    for i, params in enumerate(cv_results["params"]):
        keep_prob = params["keep_prob"]
        rows.append({
            "rank": int(cv_results[f"rank_test_{score}"][i]),
            "keep_prob": _format_keep_prob(keep_prob),
            "mean_cv_accuracy": float(cv_results[f"mean_test_{score}"][i]),
            "std_cv_accuracy": float(cv_results[f"std_test_{score}"][i]),
            **{f"split{k}_accuracy": float(cv_results[f"split{k}_test_{score}"][i]) for k in range(n_splits)},
            "mean_fit_s": float(cv_results["mean_fit_time"][i]),
            "std_fit_s": float(cv_results["std_fit_time"][i]),
            **({"mean_best_epoch": float(cv_results["mean_test_best_epoch"][i])}
               if "mean_test_best_epoch" in cv_results else {}),
        })
    rows.sort(key=lambda row: (row["rank"], -row["mean_cv_accuracy"]))
    return rows


def print_table(rows, file=None):
    file = file or sys.stdout
    print(f"{'rank':>4}  {'keep_prob':<16}{'CV accuracy':>16}{'epochs':>8}{'fit s':>8}", file=file)
    for row in rows:
        score = f"{row['mean_cv_accuracy']:.3f} ± {row['std_cv_accuracy']:.3f}"
        epochs = f"{row['mean_best_epoch']:.0f}" if "mean_best_epoch" in row else "-"
        print(f"{row['rank']:>4}  {row['keep_prob']:<16}{score:>16}{epochs:>8}{row['mean_fit_s']:>8.1f}", file=file)


def _connect(address, timeout):
    """A distributed.Client on ``address``, or None and a message when it cannot be reached."""
    try:
        from distributed import Client
    except ImportError:
        raise ImportError('--scheduler needs Dask: pip install "cydrop[dask]"') from None
    try:
        # timeout bounds the whole connection attempt, so a dead address
        # fails after `timeout` seconds rather than hanging
        client = Client(address, timeout=timeout)
    except ValueError as exc:  # a malformed address, e.g. no port
        return None, f"--scheduler {address!r}: {exc}"
    except (OSError, TimeoutError) as exc:
        return None, (f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s "
                      f"({type(exc).__name__}: {exc}); is `dask scheduler` running there and reachable?")
    try:
        client.wait_for_workers(1, timeout=timeout)  # without workers the search would wait forever
    except TimeoutError:
        client.close()
        return None, f"the Dask scheduler at {address!r} has no workers (waited {timeout:g} s)"
    return client, None


def run(args):
    """Run the search described by the parsed ``args``; returns the exit code."""
    with checking_options():
        hidden, grid = _check_args(args)  # every option checked before any slow import or fit
        try:
            import joblib
            import numpy as np
            from sklearn.base import clone
            from sklearn.model_selection import GridSearchCV, StratifiedKFold
        except ImportError:
            raise ImportError('cydrop search needs scikit-learn: pip install "cydrop[sklearn]"') from None
        from .demo import check_dependencies, load_mnist1d
        from ..sklearn import DropoutMLPClassifier

        check_dependencies(plot=False)
    x, y, x_test, y_test = load_mnist1d()
    x, y = x[:args.n_train], y[:args.n_train]  # MNIST-1D comes shuffled
    with checking_options():
        _check_folds(y, args.cv)  # needs the labels, so here; still before any fit

    client = None
    if args.scheduler is not None:
        client, problem = _connect(args.scheduler, args.timeout)
        if client is None:
            print(f"cydrop search: {problem}", file=sys.stderr)
            return 2
    try:
        # the smallest training part of a fit: a fold less its hold-out
        rows_per_fit = _fold_train_rows(len(x), args.cv) - _held_out(len(x), args.cv)
        batch_size = min(BATCH_SIZE, rows_per_fit)
        if batch_size < BATCH_SIZE:  # once here, not once per fit in the workers
            print(f"cydrop search: batch size {batch_size} instead of {BATCH_SIZE}: a fit trains on about "
                  f"{rows_per_fit} samples", file=sys.stderr)
        estimator = DropoutMLPClassifier(
            hidden_layer_sizes=hidden, batch_size=batch_size, learning_rate_init=1e-3, alpha=0.0,
            max_iter=args.max_epochs, early_stopping=True, validation_fraction=VALIDATION_FRACTION,
            n_iter_no_change=args.patience,
            tol=0.0, random_state=args.seed)
        # a process or slot beyond the number of fits gets none: it would only cost its start
        n_jobs = min(args.n_jobs, len(grid) * args.cv) if args.n_jobs > 0 else args.n_jobs
        search = GridSearchCV(estimator, {"keep_prob": grid}, n_jobs=n_jobs, refit=False,
                              scoring={"accuracy": "accuracy", "best_epoch": best_epoch},
                              cv=StratifiedKFold(args.cv, shuffle=True, random_state=args.seed))
        where = (f"Dask scheduler {args.scheduler} ({len(client.scheduler_info()['workers'])} workers)"
                 if client is not None else "local processes")
        print(f"cydrop search: MNIST-1D, {len(x)} training samples, {'-'.join(map(str, (40, *hidden, 10)))} MLP, "
              f"Adam, batch {batch_size}, until converged (patience {args.patience}, at most {args.max_epochs} "
              f"epochs), {args.cv}-fold CV, {len(grid)} candidates on {where}, n_jobs {args.n_jobs}, seed {args.seed}")
        start = time.perf_counter()
        with joblib.parallel_backend("dask") if client is not None else contextlib.nullcontext():
            search.fit(x, y)
            best_index = int(np.argmax(search.cv_results_["mean_test_accuracy"]))
            best_keep_prob = search.cv_results_["params"][best_index]["keep_prob"]
            epochs = max(1, round(search.cv_results_["mean_test_best_epoch"][best_index]))
            final = clone(estimator).set_params(keep_prob=best_keep_prob, early_stopping=False, max_iter=epochs,
                                                n_iter_no_change=np.inf).fit(x, y)
        elapsed = time.perf_counter() - start
    finally:
        if client is not None:
            client.close()

    rows = ranked_rows(search.cv_results_, args.cv)
    test_accuracy = float(final.score(x_test, y_test))
    print()
    print_table(rows)
    print(f"\nbest keep_prob {_format_keep_prob(best_keep_prob)}: test accuracy {test_accuracy:.3f} on the "
          f"{len(x_test)} test samples, refitted on the {len(x)} training samples for {epochs} epochs; "
          f"search took {elapsed:.1f} s")
    if args.csv is not None:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"table written to {args.csv}")
    if args.json is not None:
        settings = {"dataset": "MNIST-1D", "n_train": len(x), "hidden_layer_sizes": list(hidden),
                    "max_epochs": args.max_epochs, "patience": args.patience, "batch_size": batch_size,
                    "validation_fraction": VALIDATION_FRACTION, "cv": args.cv, "seed": args.seed,
                    "scheduler": args.scheduler, "n_jobs": args.n_jobs}
        best = {"keep_prob": _format_keep_prob(best_keep_prob), "refit_epochs": epochs,
                "test_accuracy": test_accuracy}
        with open(args.json, "w") as f:
            json.dump({"settings": settings, "results": rows, "best": best, "search_s": elapsed}, f, indent=2)
        print(f"results written to {args.json}")
    if args.plot is not None:
        plot_results(rows, args.plot)
        print(f"plot written to {args.plot}")
    return 0


def best_epoch(estimator, X, y):
    """Scorer: the epoch whose weights an early-stopped fit kept (its lowest held-out loss)."""
    losses = estimator.validation_losses_
    return (losses.index(min(losses)) + 1) * estimator.eval_every


def plot_results(rows, path):
    """CV accuracy of each candidate with the std over the folds as error bars, in grid order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = sorted(rows, key=lambda row: [-float(p) for p in row["keep_prob"].split(",")])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(range(len(order)), [row["mean_cv_accuracy"] for row in order],
                yerr=[row["std_cv_accuracy"] for row in order], fmt="o", capsize=4)
    ax.set_xticks(range(len(order)), [row["keep_prob"] for row in order])
    ax.set_xlabel("keep_prob (a comma list: input, hidden layers)")
    ax.set_ylabel("mean CV accuracy ± std over folds")
    ax.set_title("cydrop search: keep_prob by cross-validation")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
