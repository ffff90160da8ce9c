"""Concrete dropout's reference experiment: the drop probabilities cydrop.MLP learns.

The synthetic regression of the reference notebooks (yaringal/ConcreteDropout,
Gal, Hron & Kendall 2017): ``y = 2x + 8 + N(0, 1)``, N = 1000 rows, three
hidden ReLU layers of 1024 units, a head of a mean and a log-variance
(``output="gaussian"``), every layer's rate learned with length-scale
l = 1e-4, 20 epochs of Adam (learning rate 1e-3) in batches of 20, Keras's
Glorot-uniform initial weights, as the notebook's. The notebooks learned
drop probabilities of 0.056-0.075 on the input and 0.22-0.24 on the
hidden layers and the heads; issue 27's floor is the mean over 3
repetitions within 0.03 of those.

The reference scales the prior by ``l^2 / N`` and ``2 / N`` beside a loss of
``sum(precision (y - mean)^2 + log_var)``, twice the negative
log-likelihood cydrop.MLP trains on; cydrop halves both coefficients
(:class:`cydrop.MLP`'s ``lengthscale``), the same objective.

    python benchmarks/concrete_reference_experiment.py --json benchmarks/results/concrete/reference-experiment.json
"""
import argparse
import json
import sys
import time

import numpy as np

import cydrop
from _common import result_meta

# the notebooks' learned drop probabilities: (input, hidden layers and heads)
PUBLISHED = {"input": (0.056, 0.075), "hidden": (0.22, 0.24)}
TOLERANCE = 0.03


def run_once(rep, n_rows, epochs, dtype):
    rng = np.random.default_rng(rep)
    X = rng.standard_normal((n_rows, 1))
    y = 2.0 * X[:, 0] + 8.0 + rng.standard_normal(n_rows)
    net = cydrop.MLP([1, 1024, 1024, 1024, 2], keep_prob="learn", output="gaussian", dtype=dtype, seed=rep,
                     lengthscale=1e-4, init="glorot_uniform")
    start = time.perf_counter()
    net.fit(X, y, epochs=epochs, batch_size=20, learning_rate=1e-3, progress=False)
    return [1.0 - k for k in net.keep_prob_], time.perf_counter() - start


def within(p, band):
    low, high = band
    return low - TOLERANCE <= p <= high + TOLERANCE


def summary(runs, mean, checks):
    """The result as Markdown lines (the docs show them): p per layer, run by run."""
    # the rate of a layer's input: the features', then each hidden layer's output (the last feeds the heads)
    names = ["input"] + [f"hidden {i} output" for i in range(1, len(mean))]
    names[-1] += " (into the heads)"
    lines = ["| run | " + " | ".join(names) + " | seconds |", "|---" * (len(names) + 2) + "|"]
    for run in runs:
        lines.append(f"| {run['rep']} | " + " | ".join(f"{p:.3f}" for p in run["drop_probability"])
                     + f" | {run['seconds']:.0f} |")
    lines.append("| mean | " + " | ".join(f"{p:.3f}" for p in mean) + " | |")
    lines.append("| published | " + " | ".join(
        "{:.3f}-{:.3f}".format(*(PUBLISHED["input"] if i == 0 else PUBLISHED["hidden"])) for i in range(len(mean)))
        + " | |")
    lines += ["", f"Every mean within {TOLERANCE} of the published range: {'yes' if all(checks) else 'no'}."]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--json", metavar="PATH", help="write the result here")
    args = parser.parse_args(argv)
    out = open(args.json, "w") if args.json else None    # an unwritable path fails before the work
    meta = result_meta("concrete_reference_experiment.py", argv)
    runs = []
    for rep in range(args.reps):
        p, seconds = run_once(rep, args.rows, args.epochs, args.dtype)
        runs.append({"rep": rep, "drop_probability": p, "seconds": seconds})
        print(f"repetition {rep}: p = {np.round(p, 3).tolist()}  ({seconds:.0f} s)", flush=True)
    mean = np.mean([r["drop_probability"] for r in runs], axis=0).tolist()
    checks = [within(mean[0], PUBLISHED["input"])] + [within(p, PUBLISHED["hidden"]) for p in mean[1:]]
    print(f"mean p over {args.reps}: input {mean[0]:.3f} (published {PUBLISHED['input']}), hidden and heads "
          f"{np.round(mean[1:], 3).tolist()} (published {PUBLISHED['hidden']}); "
          f"within {TOLERANCE}: {all(checks)}")
    if out is not None:
        with out:
            json.dump({"meta": meta, "title": "Concrete dropout's reference experiment: learned drop probability p",
                       "summary": summary(runs, mean, checks), "published": PUBLISHED, "tolerance": TOLERANCE, "runs": runs,
                       "mean_drop_probability": mean, "within_tolerance": all(checks)}, out, indent=1)
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
