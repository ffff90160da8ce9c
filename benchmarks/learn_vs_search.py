"""Learning keep_prob against searching for it, on MNIST-1D, side by side.

One fit of the demo network (40-512-512-10) learning every layer's keep_prob
(Concrete dropout, the settings of ``cydrop demo``'s third network:
``cydrop.apps.demo.LEARN_NETWORK``, ``LEARN_FIT``, ``LEARN_EPOCHS``) against
``cydrop search`` with its defaults (3-fold cross-validation of four
keep_prob candidates, each fit until converged, then the winner refitted),
interleaved on the same machine: search, learn, search, learn, ...
Issue 27's floor: the learned fit reaches test accuracy >= 0.72 in at most
1/3 of the search's time.

Timed: the search's own clock (``search_s`` of ``cydrop search --json``:
the cross-validation and the refit, not the imports or making the data) and
the learned network's ``fit`` (not making the data). Both use the whole
machine: the search runs its fits on joblib's local processes (n_jobs -1),
the fit runs on cydrop's threads. Run i of the learned fit uses seed i, so
the accuracies show the spread over seeds; the search keeps its seed 0.
Each run records the load average before it: other work on the machine
slows the search's processes more than the fit's threads, so the ratio is
lower on a busy machine; the pairs run at low load are the ones to quote.

    python benchmarks/learn_vs_search.py --runs 3 --json benchmarks/results/search/learn-vs-search.json

``--tune`` instead reproduces how the learned network's settings were chosen:
a few candidates, each trained with 3 seeds on the first 3200 training rows
and scored on the other 800 (never the test rows) every 10 epochs from 20
to 120. The rule is the one-standard-error rule (Hastie, Tibshirani &
Friedman, The Elements of Statistical Learning, 7.10): of every candidate
and number of epochs whose mean validation accuracy is within one standard
error of the best of them all (``sqrt(a (1 - a) / n)`` for accuracy a on n
validation rows), the cheapest, that is the fewest epochs (the most
accurate of those on a tie): the fit's time is what learning keep_prob
competes on, and more epochs buy nothing the validation rows can tell apart.

    python benchmarks/learn_vs_search.py --tune --json tuning.json
"""
import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time

from _common import result_meta

ACCURACY_FLOOR = 0.72
TIME_FLOOR = 1 / 3


def search_once():
    """(seconds, test accuracy, best keep_prob) of one ``cydrop search`` with its defaults."""
    from cydrop.apps.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "search.json")
        if main(["search", "--json", path]) != 0:
            raise RuntimeError("cydrop search failed")
        with open(path) as f:
            result = json.load(f)
    return result["search_s"], result["best"]["test_accuracy"], result["best"]["keep_prob"]


def learn_once(data, seed, epochs):
    """(seconds, test accuracy, learned keep_prob) of one fit of the demo's learned network."""
    from cydrop.apps import demo

    x, y, x_test, y_test = data
    net = demo.learned_network(seed)
    start = time.perf_counter()
    net.fit(x, y, epochs=epochs, batch_size=100, progress=False, **demo.LEARN_FIT)
    seconds = time.perf_counter() - start
    return seconds, float(net.score(x_test, y_test)), [float(p) for p in net.keep_prob_]


# (lengthscale, init_keep_prob, learning_rate, max_norm): the candidates --tune compares
TUNE_CANDIDATES = [(1.0, 0.5, 3e-3, 3.0), (1e-2, 0.5, 3e-3, 3.0), (3.0, 0.5, 3e-3, 3.0), (1.0, 0.5, 3e-3, None),
                   (1.0, 0.7, 3e-3, 3.0), (1.0, 0.5, 5e-3, 3.0), (1.0, 0.5, 1e-2, 3.0), (1e-2, 0.9, 1e-3, None)]
TUNE_EPOCHS = tuple(range(20, 121, 10))
TUNE_ROWS = 3200


def tune(data):
    """Validation accuracy of each TUNE_CANDIDATES entry, mean over seeds 0-2, at each of
    TUNE_EPOCHS; and the choice the rule makes of them."""
    import numpy as np

    from cydrop import MLP
    from cydrop.apps import demo

    x, y = data[0][:TUNE_ROWS], data[1][:TUNE_ROWS]
    x_val, y_val = data[0][TUNE_ROWS:], data[1][TUNE_ROWS:]
    step = 10  # evaluate at every entry of TUNE_EPOCHS
    rows = []
    for lengthscale, init_keep_prob, learning_rate, max_norm in TUNE_CANDIDATES:
        scores = []
        for seed in range(3):
            net = MLP([40, *demo.HIDDEN, 10], keep_prob="learn", seed=seed, init_keep_prob=init_keep_prob,
                      lengthscale=lengthscale, temperature=demo.LEARN_NETWORK["temperature"])
            history = net.fit(x, y, epochs=TUNE_EPOCHS[-1], batch_size=100, learning_rate=learning_rate,
                              max_norm=max_norm, validation_data=(x_val, y_val), eval_every=step, progress=False)
            by_epoch = dict(zip(history["eval_epoch"], history["val_score"]))
            scores.append([by_epoch[e] for e in TUNE_EPOCHS])
        mean = np.mean(scores, axis=0).tolist()
        rows.append({"lengthscale": lengthscale, "init_keep_prob": init_keep_prob, "learning_rate": learning_rate,
                     "max_norm": max_norm, "epochs": list(TUNE_EPOCHS), "mean_val_accuracy": mean,
                     "val_accuracy_per_seed": scores})
        print(f"lengthscale {lengthscale:g}, init_keep_prob {init_keep_prob:g}, learning_rate {learning_rate:g}, "
              f"max_norm {max_norm}: mean validation accuracy at epochs {TUNE_EPOCHS}: "
              f"{', '.join(f'{m:.3f}' for m in mean)}", flush=True)
    top = max(max(row["mean_val_accuracy"]) for row in rows)
    standard_error = math.sqrt(top * (1 - top) / len(y_val))
    near = [(epochs, -mean, row) for row in rows for epochs, mean in zip(TUNE_EPOCHS, row["mean_val_accuracy"])
            if mean >= top - standard_error]
    epochs, negative_mean, row = min(near, key=lambda entry: entry[:2])
    choice = {key: row[key] for key in ("lengthscale", "init_keep_prob", "learning_rate", "max_norm")}
    choice.update(epochs=epochs, mean_val_accuracy=-negative_mean, best_mean_val_accuracy=top,
                  standard_error=standard_error)
    print(f"chosen: {choice} (the fewest epochs within one standard error of the best mean validation accuracy)")
    return rows, choice


def _load():
    """The 1-minute load average, or None where the platform has none."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def main(argv=None):
    from cydrop.apps import demo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each, interleaved (default 3)")
    parser.add_argument("--epochs", type=int, default=demo.LEARN_EPOCHS,
                        help=f"epochs of the learned fit (default {demo.LEARN_EPOCHS}, the demo's)")
    parser.add_argument("--tune", action="store_true",
                        help="instead, compare the candidate settings on a validation split of the training rows")
    parser.add_argument("--json", metavar="PATH", help="write the result here")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.epochs < 1:
        parser.error("--runs and --epochs must be >= 1")
    out = open(args.json, "w") if args.json else None  # an unwritable path fails before the work
    meta = result_meta("learn_vs_search.py", argv)
    data = demo.load_mnist1d()
    if args.tune:
        rows, choice = tune(data)
        if out is not None:
            with out:
                json.dump({"meta": meta, "train_rows": TUNE_ROWS, "validation_rows": len(data[0]) - TUNE_ROWS,
                           "temperature": demo.LEARN_NETWORK["temperature"], "rule": "one standard error",
                           "candidates": rows, "chosen": choice}, out, indent=2)
            print(f"written to {args.json}")
        return 0
    runs = []
    for i in range(args.runs):
        load = _load()
        seconds, accuracy, keep_prob = search_once()
        runs.append({"kind": "search", "run": i, "seed": 0, "seconds": seconds, "test_accuracy": accuracy,
                     "keep_prob": keep_prob, "load_before": load})
        print(f"search {i}: {seconds:.1f} s (load {load}), test accuracy {accuracy:.3f} (keep_prob {keep_prob})",
              flush=True)
        load = _load()
        seconds, accuracy, keep_prob = learn_once(data, i, args.epochs)
        runs.append({"kind": "learn", "run": i, "seed": i, "seconds": seconds, "test_accuracy": accuracy,
                     "keep_prob": keep_prob, "load_before": load})
        print(f"learn  {i}: {seconds:.1f} s (load {load}), test accuracy {accuracy:.3f} (learned keep_prob "
              f"{', '.join(f'{p:.3f}' for p in keep_prob)}; {demo.rule_of_thumb(keep_prob)[1]})", flush=True)
    meta["load_at_end"] = _load()

    def of(kind, key):
        return [r[key] for r in runs if r["kind"] == kind]

    search_s, learn_s = spread(of("search", "seconds")), spread(of("learn", "seconds"))
    pair_ratios = [learn / search for learn, search in zip(of("learn", "seconds"), of("search", "seconds"))]
    learn_accuracy = spread(of("learn", "test_accuracy"))
    summary = {
        "search_s": search_s, "learn_s": learn_s,
        "ratio_of_medians": learn_s["median"] / search_s["median"],
        "ratio_per_pair": spread(pair_ratios),
        "search_test_accuracy": spread(of("search", "test_accuracy")),
        "learn_test_accuracy": learn_accuracy,
        "learn_fits_at_floor": sum(a >= ACCURACY_FLOOR for a in of("learn", "test_accuracy")),
        "learn_keep_prob_mean": [statistics.mean(layer) for layer in zip(*of("learn", "keep_prob"))],
        "rule_of_thumb_holds": [demo.rule_of_thumb(kp)[0] for kp in of("learn", "keep_prob")],
        "floors": {"test_accuracy": ACCURACY_FLOOR, "time_ratio": TIME_FLOOR},
    }
    settings = {"learn": {"network": [40, *demo.HIDDEN, 10], "keep_prob": "learn", **demo.LEARN_NETWORK,
                          **demo.LEARN_FIT, "epochs": args.epochs, "batch_size": 100},
                "search": "cydrop search --json PATH (its defaults)"}
    print(f"\nsearch {search_s['median']:.1f} s (range {search_s['min']:.1f}-{search_s['max']:.1f}), "
          f"learn {learn_s['median']:.1f} s (range {learn_s['min']:.1f}-{learn_s['max']:.1f}): "
          f"ratio of medians {summary['ratio_of_medians']:.3f} (per pair {min(pair_ratios):.3f}-"
          f"{max(pair_ratios):.3f}; floor {TIME_FLOOR:.3f})")
    print(f"learned fit test accuracy median {learn_accuracy['median']:.3f} (range {learn_accuracy['min']:.3f}-"
          f"{learn_accuracy['max']:.3f}; {summary['learn_fits_at_floor']} of {args.runs} fits >= {ACCURACY_FLOOR})")
    if out is not None:
        with out:
            json.dump({"meta": meta, "settings": settings, "runs": runs, "summary": summary}, out, indent=2)
        print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
