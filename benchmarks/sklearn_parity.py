"""Do the estimators at keep_prob = 1 train as well as scikit-learn's MLP? A comparison, not a timed test.

Run: ``python benchmarks/sklearn_parity.py [--quick] [--json PATH]``.

For each dataset, ``MLPClassifier`` / ``MLPRegressor`` and
``DropoutMLPClassifier`` / ``DropoutMLPRegressor(keep_prob=1.0)`` are built
with the same parameters (``hidden_layer_sizes``, ``max_iter``,
``random_state``; scikit-learn's defaults otherwise) and fitted on the same
rows, for ``max_iter`` 10, 50 and 200 and random_state 0..4. The table shows
the mean over the seeds of the training and the test score (accuracy; R^2 for
regressors) of both, side by side, and cydrop's minus scikit-learn's. The
floor (issue 25): every difference within 2 points (0.02).

Data: scikit-learn's bundled datasets (no download) and synthetic ones,
split 75/25 (stratified for classifiers, ``random_state=0``); the features
are standardised with a ``StandardScaler`` fitted on the training rows, and so
are the regression targets (R^2 does not change when both the target and
the prediction are standardised alike; unscaled targets of order 100 leave
every MLP far from the answer after 10 epochs at learning_rate_init 1e-3).

Out of core: ``dask_ml.wrappers.Incremental`` with five passes
(``partial_fit`` calls) over 500-row blocks of issue 25's synthetic set
(``X = default_rng(3).standard_normal((3000, 8))``, ``y = X[:, 0] + X[:, 3]
> 0``, ``hidden_layer_sizes=(32,)``), scored on the rows it trained on, as in
the issue; random_state 0 (the issue's figures) and the mean over 0..4, the
same seed shuffling the order of the blocks. The floor: at least 0.80.

``--quick`` runs two seeds at max_iter 10 and 50: for iterating, not for
judging the floor.
"""
import argparse
import json
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn import datasets
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from cydrop.sklearn import DropoutMLPClassifier, DropoutMLPRegressor
from _common import result_meta

FLOOR = 0.02            # largest |cydrop - scikit-learn| of a mean score
INCREMENTAL_FLOOR = 0.80
MAX_ITERS = (10, 50, 200)
SEEDS = 5


def _issue_synthetic():
    """Issue 25's binary set: y = X[:, 0] + X[:, 3] > 0 on 3000 standard-normal rows."""
    X = np.random.default_rng(3).standard_normal((3000, 8))
    return X, X[:, 0] + X[:, 3] > 0


@dataclass(frozen=True)
class Dataset:
    task: str            # "binary", "multiclass" or "regression"
    load: object         # () -> (X, y)
    hidden: tuple = (100,)


DATASETS = {
    "synthetic-binary": Dataset("binary", _issue_synthetic, (32,)),
    "breast_cancer": Dataset("binary", lambda: datasets.load_breast_cancer(return_X_y=True)),
    "digits": Dataset("multiclass", lambda: datasets.load_digits(return_X_y=True)),
    "iris": Dataset("multiclass", lambda: datasets.load_iris(return_X_y=True)),
    "wine": Dataset("multiclass", lambda: datasets.load_wine(return_X_y=True)),
    "diabetes": Dataset("regression", lambda: datasets.load_diabetes(return_X_y=True)),
    "make_regression": Dataset("regression", lambda: datasets.make_regression(
        1000, 20, n_informative=10, noise=10.0, random_state=0)),
    "friedman1": Dataset("regression", lambda: datasets.make_friedman1(2000, noise=1.0, random_state=0)),
}


def split(name):
    """(X_train, X_test, y_train, y_test) of dataset ``name``, standardised on the training rows."""
    ds = DATASETS[name]
    X, y = ds.load()
    regression = ds.task == "regression"
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=None if regression else y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    if regression:
        mean, std = y_train.mean(), y_train.std()
        y_train, y_test = (y_train - mean) / std, (y_test - mean) / std
    return X_train, X_test, y_train, y_test


def estimators(task, **params):
    """(scikit-learn's estimator, cydrop's at keep_prob=1) with the same parameters."""
    if task == "regression":
        return MLPRegressor(**params), DropoutMLPRegressor(keep_prob=1.0, **params)
    return MLPClassifier(**params), DropoutMLPClassifier(keep_prob=1.0, **params)


def compare(name, max_iters=MAX_ITERS, seeds=SEEDS, **params):
    """One row per max_iter: both libraries' train and test scores, per seed and their means.

    ``params``: more parameters for both estimators (scikit-learn's names)."""
    ds = DATASETS[name]
    X_train, X_test, y_train, y_test = split(name)
    rows = []
    for max_iter in max_iters:
        scores = {"sklearn": {"train": [], "test": []}, "cydrop": {"train": [], "test": []}}
        for seed in range(seeds):
            pair = estimators(ds.task, hidden_layer_sizes=ds.hidden, max_iter=max_iter, random_state=seed, **params)
            for lib, est in zip(("sklearn", "cydrop"), pair):
                est.fit(X_train, y_train)
                scores[lib]["train"].append(float(est.score(X_train, y_train)))
                scores[lib]["test"].append(float(est.score(X_test, y_test)))
        row = {"dataset": name, "task": ds.task, "hidden_layer_sizes": list(ds.hidden),
               "n_train": len(X_train), "n_test": len(X_test), "max_iter": max_iter, "seeds": seeds,
               "scores": scores}
        for part in ("train", "test"):
            sk, cy = (float(np.mean(scores[lib][part])) for lib in ("sklearn", "cydrop"))
            row[f"sklearn_{part}"], row[f"cydrop_{part}"], row[f"diff_{part}"] = sk, cy, cy - sk
        row["within_floor"] = bool(abs(row["diff_train"]) <= FLOOR and abs(row["diff_test"]) <= FLOOR)
        rows.append(row)
    return rows


def incremental_score(estimator, seed, passes=5, block=500):
    """Accuracy on its training rows of ``estimator`` after ``passes`` Incremental.partial_fit
    passes over ``block``-row blocks of issue 25's synthetic set, the blocks
    in an order shuffled by ``seed`` (Incremental's default shuffles them
    anew on every run)."""
    import dask
    import dask.array as da
    from dask_ml.wrappers import Incremental

    X, y = _issue_synthetic()
    Xd, yd = da.from_array(X, chunks=block), da.from_array(y, chunks=block)
    with dask.config.set(scheduler="synchronous"):  # partial_fit runs block after block anyway
        inc = Incremental(estimator, scoring="accuracy", random_state=seed)
        for _ in range(passes):
            inc.partial_fit(Xd, yd, classes=[False, True])
        return float(inc.score(Xd, yd))


def compare_incremental(seeds=SEEDS):
    scores = {"sklearn": [], "cydrop": [], "cydrop_keep_prob_0.8": []}
    for seed in range(seeds):
        scores["sklearn"].append(incremental_score(MLPClassifier((32,), random_state=seed), seed))
        scores["cydrop"].append(incremental_score(DropoutMLPClassifier((32,), keep_prob=1.0, random_state=seed),
                                                  seed))
        scores["cydrop_keep_prob_0.8"].append(
            incremental_score(DropoutMLPClassifier((32,), keep_prob=0.8, random_state=seed), seed))
    row = {"passes": 5, "block": 500, "seeds": seeds, "scores": scores}
    for lib, values in scores.items():
        row[f"{lib}_seed0"], row[f"{lib}_mean"] = values[0], float(np.mean(values))
    row["within_floor"] = bool(min(row["cydrop_seed0"], row["cydrop_mean"]) >= INCREMENTAL_FLOOR)
    return row


def print_table(rows):
    head = (f"{'dataset':<17} {'task':<10} {'max_iter':>8} | {'train: sklearn':>14} {'cydrop':>7} {'diff':>7} | "
            f"{'test: sklearn':>13} {'cydrop':>7} {'diff':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        flag = "" if r["within_floor"] else f"   <- beyond {FLOOR}"
        print(f"{r['dataset']:<17} {r['task']:<10} {r['max_iter']:>8} | {r['sklearn_train']:>14.3f} "
              f"{r['cydrop_train']:>7.3f} {r['diff_train']:>+7.3f} | {r['sklearn_test']:>13.3f} "
              f"{r['cydrop_test']:>7.3f} {r['diff_test']:>+7.3f}{flag}")


def print_incremental(row):
    print(f"\nIncremental, {row['passes']} passes over {row['block']}-row blocks of synthetic-binary "
          f"(training accuracy): random_state=0 / mean over {row['seeds']} seeds")
    for lib in row["scores"]:
        print(f"  {lib:<22} {row[f'{lib}_seed0']:.3f} / {row[f'{lib}_mean']:.3f}")


def run(names=tuple(DATASETS), max_iters=MAX_ITERS, seeds=SEEDS, incremental=True):
    """The whole comparison as a dict (what --json writes)."""
    with warnings.catch_warnings(), threadpool_limits(1):  # one BLAS thread: the machine is shared
        warnings.simplefilter("ignore", ConvergenceWarning)
        rows = [row for name in names for row in compare(name, max_iters, seeds)]
        inc = compare_incremental(seeds) if incremental else None
    report = {"floor": FLOOR, "incremental_floor": INCREMENTAL_FLOOR, "rows": rows, "incremental": inc}
    report["within_floor"] = all(r["within_floor"] for r in rows) and (inc is None or inc["within_floor"])
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, max_iter 10 and 50")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--no-incremental", action="store_true", help="skip the dask_ml Incremental case")
    parser.add_argument("--json", metavar="PATH", help="write the report (every seed's scores) here")
    args = parser.parse_args(argv)
    max_iters, seeds = ((10, 50), 2) if args.quick else (MAX_ITERS, SEEDS)
    out = open(args.json, "w") if args.json else None  # an unwritable path fails before the work
    start = time.perf_counter()
    meta = result_meta("sklearn_parity.py", argv)
    report = run(args.datasets, max_iters, seeds, incremental=not args.no_incremental)
    report = {"meta": meta, **report, "seconds": time.perf_counter() - start}
    print(f"Mean over {seeds} seeds of the score (accuracy; R^2 for regressors), keep_prob=1.0; "
          f"diff = cydrop - scikit-learn, floor |diff| <= {FLOOR}\n")
    print_table(report["rows"])
    if report["incremental"] is not None:
        print_incremental(report["incremental"])
    print(f"\nall within the floor: {report['within_floor']}  ({report['seconds']:.0f} s)")
    if out is not None:
        with out:
            json.dump(report, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
