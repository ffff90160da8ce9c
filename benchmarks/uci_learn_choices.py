"""The choices of ``cydrop uci --learn``, measured on validation rows only.

Per split of the shipped datasets, networks of the learned column (every
layer's keep_prob learned, 4000 epochs, the protocol's sizes) are trained on
the split's fit rows (its first 80% of training rows) and scored on its
validation rows (the other 20%) by MC RMSE and log-likelihood; test rows are
never read. Three choices:

- the noise: learned (``output="gaussian"``, a mean and a log-variance head,
  the log-likelihood of the mixture of the passes' Gaussians) or tau fitted on
  the validation rows (``output="linear"``, the log-likelihood at the best
  tau of ``LEARN_TAU_GRID``);
- the prior's noise (``LEARN_PRIOR_NOISE``): the standard deviation the
  target is scaled to sets the noise level the learned rates' prior assumes;
- the MC masks with the learned rates: the relaxed (Concrete) mask of
  training, or a hard Bernoulli mask with keep probability ``keep_prob_``.

    python benchmarks/uci_learn_choices.py --splits 3 --lengthscales 0.01 0.3 \
        --prior-noises 1 0.333 0.1 0.03 --json benchmarks/results/uci/learn/learn-choices.json
"""
import argparse
import itertools
import json
import os
import sys
import time

import numpy as np
from scipy.special import logsumexp

import cydrop
from _common import result_meta
from cydrop.apps import uci_protocol
from cydrop.apps.uci import SHIPPED_DIR, load_dataset
from cydrop.uncertainty import predictive_log_likelihood



def _mixture_ll(y, means, variances):
    """Mean over the rows of log((1/T) sum_t N(y; means[t], variances[t]))."""
    log_pdf = -0.5 * np.log(2 * np.pi * variances) - 0.5 * (y[None, :] - means) ** 2 / variances
    return float(np.mean(logsumexp(log_pdf, axis=0) - np.log(means.shape[0])))


def _passes(net, X, mc_samples, relaxed):
    """Every MC pass's outputs (T, n, n_outputs), float64, with relaxed or hard masks."""
    engine = net._current_engine()
    X = np.ascontiguousarray(X, dtype=net.dtype)
    return engine.mc_passes(net._network, X, mc_samples, samples=True, relaxed=relaxed)[2].astype(np.float64)


def _scores(y_val, means, variances=None, target_var=None):
    rmse = float(np.sqrt(np.mean((y_val - means.mean(axis=0)) ** 2)))
    if variances is not None:
        return rmse, _mixture_ll(y_val, means, variances), None
    tau = uci_protocol._fit_learned_tau(y_val, means, target_var)
    ll = predictive_log_likelihood(y_val, means, tau)
    return rmse, ll, tau


def split_rows(name, k, cfg):
    """The rows of one (dataset, split): per candidate, per mask, (RMSE, LL) on the validation rows."""
    ds = load_dataset(os.path.join(SHIPPED_DIR, name), k + 1)
    X, y = ds["X"], ds["y"]
    train, _ = ds["splits"][k]   # the test rows are not read
    n_fit = int(0.8 * len(train))
    fit, val = train[:n_fit], train[n_fit:]
    seed = uci_protocol._network_seed(0, 0, k, uci_protocol._LEARN)
    target_var = float(y[fit].var())
    rows = []
    for prior_noise, lengthscale in itertools.product(cfg["prior_noises"], cfg["lengthscales"]):
        start = time.perf_counter()
        net, (mean_x, std_x, mean_y, std_y), _ = uci_protocol._train(
            X[fit], y[fit], "learn", 0.0, cfg["epochs"], dict(cfg, lengthscale=lengthscale), seed,
            target_std=1 / prior_noise)
        seconds = time.perf_counter() - start
        for relaxed in (True, False):
            means = _passes(net, (X[val] - mean_x) / std_x, cfg["mc_samples"], relaxed)[:, :, 0] * std_y + mean_y
            rmse, ll, tau = _scores(y[val], means, target_var=target_var)
            rows.append(dict(dataset=name, split=k, noise="tau fitted", prior_noise=round(prior_noise, 4),
                             lengthscale=lengthscale,
                             mask="relaxed" if relaxed else "hard", rmse=rmse, ll=ll, tau=tau,
                             keep_prob=[float(v) for v in net.keep_prob_], train_seconds=seconds))
    if not cfg["gaussian"]:
        return rows
    # the noise learned: a mean and a log-variance head, the target standardised
    mean_x, std_x = X[fit].mean(axis=0), X[fit].std(axis=0)
    std_x[std_x == 0] = 1
    mean_y, std_y = float(y[fit].mean()), float(y[fit].std())
    net = cydrop.MLP([X.shape[1], cfg["n_hidden"], 2], keep_prob="learn", output="gaussian", seed=seed,
                     init="glorot_uniform", lengthscale=cfg["lengthscale"])
    start = time.perf_counter()
    net.fit((X[fit] - mean_x) / std_x, (y[fit] - mean_y) / std_y, epochs=cfg["epochs"],
            batch_size=cfg["batch_size"], learning_rate=cfg["learning_rate"], progress=False)
    seconds = time.perf_counter() - start
    for relaxed in (True, False):
        out = _passes(net, (X[val] - mean_x) / std_x, cfg["mc_samples"], relaxed)
        rmse, ll, _ = _scores(y[val], out[:, :, 0] * std_y + mean_y, out[:, :, 1] * std_y ** 2)
        rows.append(dict(dataset=name, split=k, noise="learned", prior_noise=None, lengthscale=cfg["lengthscale"],
                         mask="relaxed" if relaxed else "hard", rmse=rmse, ll=ll, tau=None,
                         keep_prob=[float(v) for v in net.keep_prob_], train_seconds=seconds))
    return rows


def summarise(rows):
    """Per (dataset, noise, prior_noise, mask): RMSE and LL, mean over the splits."""
    groups = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["noise"], row["prior_noise"], row["lengthscale"], row["mask"]),
                          []).append(row)
    return [dict(dataset=d, noise=n, prior_noise=p, lengthscale=ls, mask=m, splits=len(g),
                 rmse=float(np.mean([r["rmse"] for r in g])), ll=float(np.mean([r["ll"] for r in g])),
                 keep_prob=[float(v) for v in np.mean([r["keep_prob"] for r in g], axis=0)])
            for (d, n, p, ls, m), g in groups.items()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["concrete", "energy", "wine-quality-red", "yacht"])
    parser.add_argument("--splits", type=int, default=5, help="the first N splits of each dataset")
    parser.add_argument("--epochs", type=int, default=4000)
    parser.add_argument("--mc-samples", type=int, default=1000)
    parser.add_argument("--prior-noises", type=float, nargs="+", default=[1.0, 1 / 3, 0.1])
    parser.add_argument("--lengthscales", type=float, nargs="+", default=[1e-2])
    parser.add_argument("--no-gaussian", action="store_true", help="skip the learned-noise network")
    parser.add_argument("--json", help="write the rows and the summary here")
    args = parser.parse_args(argv)
    cfg = dict(uci_protocol.config([0.0], [1.0], epochs=args.epochs, mc_samples=args.mc_samples, n_hidden=50),
               prior_noises=args.prior_noises, lengthscales=args.lengthscales, gaussian=not args.no_gaussian)
    rows = []
    for name in args.datasets:
        for k in range(args.splits):
            rows += split_rows(name, k, cfg)
            print(f"{name} split {k} done", file=sys.stderr, flush=True)
    summary = summarise(rows)
    print(f"{'dataset':<18}{'noise':<12}{'prior noise':>12}{'l':>7}{'mask':>9}{'val RMSE':>10}{'val LL':>9}  keep_prob")
    for s in summary:
        prior = "-" if s["prior_noise"] is None else f"{s['prior_noise']:.3g}"
        print(f"{s['dataset']:<18}{s['noise']:<12}{prior:>12}{s['lengthscale']:>7.3g}{s['mask']:>9}"
              f"{s['rmse']:>10.3f}{s['ll']:>9.3f}  " + ", ".join(f"{v:.3f}" for v in s["keep_prob"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": result_meta("uci_learn_choices.py", argv), "summary": summary, "rows": rows}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
