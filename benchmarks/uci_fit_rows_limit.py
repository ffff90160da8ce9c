"""What holding out the validation rows costs, and whether a second training wins it back.

Issue 27 asks the learned column of ``cydrop uci --learn`` for ONE training
per split, its choices (early stopping, tau) made on validation rows. Those
rows (the last 20% of the split's training rows) are then never trained on.
The grid protocol holds them out too while it chooses, but trains its chosen
candidate again on every training row before the test. This measures, on the
same splits and in one run, per dataset:

- ``grid, all rows``: the grid protocol as published (the chosen candidate
  retrained on all training rows; ``cydrop uci``'s own column);
- ``grid, fit rows``: the same choice, trained on the fit rows only (the very
  network the grid phase scored), as one training with held-out validation
  rows has to be;
- ``learned``: the learned column (``uci_protocol.learn_task``, one training
  on the fit rows);
- ``learned, again on all rows``: a second training, as the grid's retrain:
  a new learned network (the retrain's seed) trained on every training row
  for the epochs whose weights the learned column kept, scored at the tau
  the learned column fitted (the grid's retrain, too, keeps the tau chosen
  on the validation rows). Whether a retrain would close the gap.

each as MC RMSE and test log-likelihood, mean and standard error over the
splits, beside the bounds of issue 27's floor (the published mean + 1 SE for
RMSE, - 1 SE for log-likelihood), and the seconds of each: the grid's
(its phase of 12 trainings and the retrain, as ``cydrop uci``), the
learned column's and its second training's. The test rows choose nothing.

    python benchmarks/uci_fit_rows_limit.py --splits 20 --jobs 2 \\
        --json benchmarks/results/uci/learn/fit-rows-limit.json
"""
import argparse
import json
import os
import sys
import time

from _common import result_meta
from cydrop.apps import uci_protocol
from cydrop.apps.uci import SHIPPED_DIR, load_dataset

COLUMNS = ("grid, all rows", "grid, fit rows", "learned", "learned, again on all rows")


def _final_task(args):
    """The chosen candidate c of split k trained on ``rows`` (all training rows
    or the fit rows), scored on the test rows at the candidate's tau."""
    X, y, rows, test, k, c, role, cfg = args
    rate, tau, epochs = cfg["grid"][c]
    samples, plain = uci_protocol.train_and_sample(X[rows], y[rows], X[test], rate, tau, epochs, cfg,
                                                   uci_protocol._network_seed(cfg["seed"], 0, k, role))
    rmse_mc, _, (ll,) = uci_protocol._test_scores(y[test], samples, plain, [tau])
    return {"split": k, "dropout_rate": rate, "tau": tau, "rmse": rmse_mc, "test_ll": ll}


def _learned_again_task(args):
    """Split k's learned network trained again, on all its training rows, for
    ``epochs`` (the learned column's kept epoch), scored at the learned
    column's fitted tau."""
    X, y, train, test, k, epochs, tau, cfg = args
    net, scale, _ = uci_protocol._train(X[train], y[train], "learn", 0.0, epochs, cfg,
                                        uci_protocol._network_seed(cfg["seed"], 0, k, uci_protocol._RETRAIN),
                                        target_std=1 / uci_protocol.LEARN_PRIOR_NOISE)
    samples, plain = uci_protocol._sample(net, scale, X[test], cfg)
    rmse_mc, _, (ll,) = uci_protocol._test_scores(y[test], samples, plain, [tau])
    return {"split": k, "epochs": epochs, "tau": tau, "keep_prob": [float(v) for v in net.keep_prob_],
            "rmse": rmse_mc, "test_ll": ll}


def run_dataset(ds, cfg, run):
    splits = ds["splits"]
    n_cand = cfg["n_published"]
    start = time.perf_counter()
    scores = {}
    tasks = [(ds["X"], ds["y"], train, 0, k, c, cfg) for k, (train, _) in enumerate(splits) for c in range(n_cand)]
    for _, k, c, ll, _ in run(uci_protocol.candidate_task, tasks):
        scores[k, c] = ll
    best = [max(range(n_cand), key=lambda c: scores[k, c]) for k in range(len(splits))]
    # the protocol's retrain (its seed role)
    retrained = list(run(_final_task, [(ds["X"], ds["y"], train, test, k, best[k], uci_protocol._RETRAIN, cfg)
                                       for k, (train, test) in enumerate(splits)]))
    grid_seconds = time.perf_counter() - start
    # the grid phase's own network of the choice, on the fit rows
    fit_only = list(run(_final_task, [(ds["X"], ds["y"], train[:int(0.8 * len(train))], test, k, best[k], best[k],
                                       cfg) for k, (train, test) in enumerate(splits)]))
    start = time.perf_counter()
    learned = list(run(uci_protocol.learn_task, [(ds["X"], ds["y"], train, test, 0, k, cfg)
                                                 for k, (train, test) in enumerate(splits)]))
    learned_seconds = time.perf_counter() - start
    start = time.perf_counter()
    again = list(run(_learned_again_task, [(ds["X"], ds["y"], train, test, k, row["best_epoch"], row["tau_fitted"],
                                            cfg) for k, ((train, test), row) in enumerate(zip(splits, learned))]))
    again_seconds = time.perf_counter() - start
    per_column = {COLUMNS[0]: retrained, COLUMNS[1]: fit_only, COLUMNS[2]: learned, COLUMNS[3]: again}
    out = {"name": ds["name"], "published": ds["published"], "grid_seconds": grid_seconds,
           "learned_seconds": learned_seconds, "again_seconds": again_seconds, "columns": {}}
    for name, column in per_column.items():
        # the protocol's own mean and standard error over the splits (the published summaries')
        rmse, rmse_se = uci_protocol._summary([r["rmse"] for r in column])
        ll, ll_se = uci_protocol._summary([r["test_ll"] for r in column])
        out["columns"][name] = {"rmse": rmse, "rmse_se": rmse_se, "test_ll": ll, "test_ll_se": ll_se,
                                "splits": column}
    return out


def _bounds(published):
    if not published:
        return None, None
    return published["rmse"] + published["rmse_se"], published["test_ll"] - published["test_ll_se"]


TITLE = ("What holding out the validation rows costs: the UCI grid's choice trained on the fit rows only, "
         "and the learned column trained again on all rows")


def _seconds(res, name):
    """The column's training seconds and their ratio to the grid's, as the table prints them."""
    grid = res.get("grid_seconds")
    seconds = {COLUMNS[0]: grid, COLUMNS[2]: res.get("learned_seconds")}
    if res.get("learned_seconds") is not None and res.get("again_seconds") is not None:
        seconds[COLUMNS[3]] = res["learned_seconds"] + res["again_seconds"]
    value = seconds.get(name)
    if value is None:
        return ""
    return f"{value:.1f}" if name == COLUMNS[0] or not grid else f"{value:.1f} ({value / grid:.2f})"


def table(results):
    """The Markdown table of the results (the JSON file's ``summary``, as printed)."""
    lines = ["| dataset | column | MC RMSE | within bound | test LL | within bound | seconds (of the grid's) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for res in results:
        rmse_bound, ll_bound = _bounds(res["published"])
        for name, col in res["columns"].items():
            ok_rmse = "" if rmse_bound is None else ("yes" if col["rmse"] <= rmse_bound else "no")
            ok_ll = "" if ll_bound is None else ("yes" if col["test_ll"] >= ll_bound else "no")
            bound_r = "" if rmse_bound is None else f" (≤ {rmse_bound:.3f})"
            bound_l = "" if ll_bound is None else f" (≥ {ll_bound:.3f})"
            lines.append(f"| {res['name']} | {name} | {col['rmse']:.3f} ± {col['rmse_se']:.3f} | {ok_rmse}{bound_r} "
                         f"| {col['test_ll']:.3f} ± {col['test_ll_se']:.3f} | {ok_ll}{bound_l} "
                         f"| {_seconds(res, name)} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="shipped datasets (default: all)")
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--mc-samples", type=int, default=10000)
    parser.add_argument("--jobs", type=int, default=1, help="processes (joblib), as cydrop uci --jobs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    names = args.names or sorted(d for d in os.listdir(SHIPPED_DIR) if not d.startswith((".", "_"))
                                 and os.path.isdir(os.path.join(SHIPPED_DIR, d)))
    results = []
    with uci_protocol.workers(args.jobs) as run:
        for name in names:
            ds = load_dataset(os.path.join(SHIPPED_DIR, name), args.splits)
            cfg = uci_protocol.config(ds["dropout_rates"], ds["taus"], epochs=ds["epochs"],
                                      mc_samples=args.mc_samples, n_hidden=ds["n_hidden"], seed=args.seed)
            results.append(run_dataset(ds, cfg, run))
            print("\n".join(table(results[-1:])), flush=True)
            if args.json:
                summary = [f"{args.splits} splits, {args.mc_samples} MC passes, {args.jobs} process(es); mean ± "
                           "standard error over the splits, the bounds of issue 27's floor in parentheses; the "
                           "seconds of the trainings and their MC passes (the grid's: its 12 candidates and the "
                           "retrain; the second learned training's: both of its trainings).", ""] + table(results)
                with open(args.json, "w") as f:
                    json.dump({"meta": result_meta("uci_fit_rows_limit.py", argv), "title": TITLE, "summary": summary,
                               "splits": args.splits, "mc_samples": args.mc_samples, "datasets": results}, f,
                              indent=1)
    print("\n".join(table(results)))


if __name__ == "__main__":
    main()
