"""The published MC dropout UCI protocol (Gal & Ghahramani 2016) on arrays: what
``cydrop uci`` runs.

Per split, a grid search of (dropout rate, tau) scored by validation
log-likelihood, the best candidate retrained on all training rows, MC RMSE
and test log-likelihood on the test rows (:func:`run_protocol`). The
trainings run in worker processes through joblib's loky backend, each
worker's BLAS held to one thread (the processes are the parallelism). The
mathematics, the log-likelihood and the tau relations, is the library's
(:mod:`cydrop.uncertainty`).
"""
import contextlib
import math
import time

import numpy as np

from .._validation import check_positive_int
from ..mlp import MLP
from ..uncertainty import (LENGTHSCALE, check_tau, predictive_log_likelihood, row_log_likelihoods,
                           weight_decay_from_tau)

__all__ = ["candidate_task", "config", "run_protocol", "train_and_sample", "workers"]


def _check_grid(values, name):
    values = [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]
    if not values:
        raise ValueError(f"{name} is empty: the grid needs at least one value")
    return values


def config(rates, tau_values, *, epochs, mc_samples, n_hidden, batch_size=128, learning_rate=1e-3,
            lengthscale=LENGTHSCALE, dtype="float32", init="glorot_uniform", extended=False,
            extended_epochs=None, seed=0, repeats=1, keep_samples=False):
    """The settings every task of run_protocol reads (its defaults are
    run_protocol's), checked: the candidate grid (dropout rate, tau, epochs),
    the published candidates first (``n_published`` of them), then with
    ``extended`` the same ones trained longer."""
    epochs = check_positive_int(epochs, "epochs")
    extended_epochs = (int(2.5 * epochs) if extended_epochs is None
                       else check_positive_int(extended_epochs, "extended_epochs"))
    published = [(r, t, epochs) for r in rates for t in tau_values]
    longer = [(r, t, extended_epochs) for r in rates for t in tau_values] if extended else []
    return dict(mc_samples=check_positive_int(mc_samples, "mc_samples"),
                n_hidden=check_positive_int(n_hidden, "n_hidden"),
                batch_size=check_positive_int(batch_size, "batch_size"),
                learning_rate=float(learning_rate), lengthscale=float(lengthscale), dtype=dtype, init=init,
                grid=published + longer, n_published=len(published), extended=bool(extended),
                seed=check_positive_int(seed, "seed", minimum=0), repeats=check_positive_int(repeats, "repeats"),
                keep_samples=bool(keep_samples),
                tau_fit_grid=np.geomspace(min(tau_values) / 10, max(tau_values) * 10, 61))


def train_and_sample(X_tr, y_tr, X_ev, dropout_rate, tau, epochs, cfg, seed):
    """Train one candidate on (X_tr, y_tr), standardised on those rows; return
    the MC samples (T, n_ev) and the plain-pass predictions on X_ev, on the
    original target scale."""
    mean_x, std_x = X_tr.mean(axis=0), X_tr.std(axis=0)
    std_x[std_x == 0] = 1
    mean_y, std_y = float(y_tr.mean()), float(y_tr.std()) or 1.0
    keep = 1.0 - dropout_rate
    net = MLP([X_tr.shape[1], cfg["n_hidden"], 1], keep_prob=[keep, keep], output="linear",
              dtype=cfg["dtype"], seed=seed, init=cfg["init"])
    l2 = weight_decay_from_tau(tau, keep, X_tr.shape[0], cfg["batch_size"], cfg["lengthscale"])
    net.fit((X_tr - mean_x) / std_x, (y_tr - mean_y) / std_y, epochs=epochs,
            batch_size=cfg["batch_size"], optimizer="adam", learning_rate=cfg["learning_rate"], l2=l2,
            progress=False)
    Xe = (X_ev - mean_x) / std_x
    _, _, samples = net.predict_proba(Xe, mc_samples=cfg["mc_samples"], return_samples=True)
    plain = net.predict(Xe).astype(np.float64) * std_y + mean_y
    return samples[:, :, 0].astype(np.float64) * std_y + mean_y, plain


_RETRAIN = 999   # the role of the retrained network in _network_seed


def _network_seed(seed, repeat, split, role):
    """The seed of one network: ``role`` is its candidate, or _RETRAIN.

    Repeat 0 keeps the seeds of a single run (so that its results reproduce);
    further repeats hash (seed, repeat, split, role) with ``SeedSequence``:
    ``seed + repeat`` would give repeat r's candidate c the initial weights
    of repeat 0's candidate c + r."""
    if repeat == 0:
        return seed + 1000 * split + role
    return int(np.random.SeedSequence([seed, repeat, split, role]).generate_state(1)[0])


def candidate_task(args):
    """Grid phase: validation log-likelihood of one (repeat, split, candidate)."""
    X, y, train, r, k, c, cfg = args
    n_fit = int(0.8 * len(train))   # the last 20% of the training rows validate
    fit_rows, val_rows = train[:n_fit], train[n_fit:]
    rate, tau, epochs = cfg["grid"][c]
    samples, _ = train_and_sample(X[fit_rows], y[fit_rows], X[val_rows], rate, tau, epochs, cfg,
                                   _network_seed(cfg["seed"], r, k, c))
    y_val = y[val_rows]
    ll = predictive_log_likelihood(y_val, samples, tau)
    # the extended column's score: the validation LL at its best tau
    fitted = _fit_tau(y_val, samples, cfg["tau_fit_grid"]) if cfg["extended"] else None
    return r, k, c, ll, fitted


def _fit_tau(y, samples, grid):
    """(validation LL, tau) maximising the LL of the samples over a tau grid
    (samples already checked by predictive_log_likelihood)."""
    sq = (y[None, :] - samples) ** 2   # once, for every tau of the grid
    return max((float(np.mean(row_log_likelihoods(sq, t))), t) for t in grid)


def _retrain_task(args):
    """Retrain phase: one candidate trained on all training rows of a split,
    scored on the test rows with each tau asked for."""
    X, y, train, test, r, k, c, taus, cfg = args
    rate, tau, epochs = cfg["grid"][c]
    samples, plain = train_and_sample(X[train], y[train], X[test], rate, tau, epochs, cfg,
                                       _network_seed(cfg["seed"], r, k, _RETRAIN))
    y_test = y[test]
    rmse_mc = float(np.sqrt(np.mean((y_test - samples.mean(axis=0)) ** 2)))
    rmse = float(np.sqrt(np.mean((y_test - plain) ** 2)))
    lls = [predictive_log_likelihood(y_test, samples, t) for t in taus]
    out = {"split": k, "dropout_rate": rate, "tau_train": tau, "epochs": epochs, "rmse": rmse_mc,
           "rmse_standard": rmse, "test_ll": lls[0]}
    if cfg["repeats"] > 1:
        out = {"repeat": r, **out}
    if len(taus) > 1:
        out["tau_fitted"], out["test_ll_fitted"] = taus[1], lls[1]
    return out, samples if cfg["keep_samples"] and r == 0 and k == 0 else None


def _summary(values):
    values = np.asarray(values, dtype=np.float64)
    # the standard error of the published summaries: np.std (ddof 0) / sqrt(n)
    return float(values.mean()), float(values.std() / math.sqrt(len(values)))


def run_protocol(X, y, splits, *, dropout_rates, taus, epochs=4000, mc_samples=10000, n_hidden=50,
                 batch_size=128, learning_rate=1e-3, lengthscale=LENGTHSCALE, dtype="float32",
                 init="glorot_uniform", extended=False, extended_epochs=None, seed=0, repeats=1, n_jobs=1,
                 progress=False, keep_samples=False):
    """The published MC dropout UCI protocol (Gal & Ghahramani 2016) on arrays.

    Per split: the last 20% of its training rows validate; every (dropout
    rate, tau) of the grid trains a ``[n_features, n_hidden, 1]`` ReLU MLP
    (Glorot uniform initial weights, as the published Keras networks) with
    dropout at that rate on the inputs and before the output, on the
    other 80% (features and target standardised on them), Adam, weight decay
    from tau (:func:`weight_decay_from_tau`); each is scored by the
    :func:`predictive_log_likelihood` of ``mc_samples`` MC passes on the
    validation rows. The best is trained again on all training rows and
    scored on the test rows: MC RMSE (of the mean of the passes) and test
    log-likelihood.

    Parameters
    ----------
    X : array (n_samples, n_features)
    y : array (n_samples,)
    splits : sequence of (train_rows, test_rows) integer arrays
    dropout_rates, taus : sequences of float
        The grid: every pair is a candidate.
    epochs, mc_samples, n_hidden, batch_size : int
        The published runs: 4000, 10000, 50, 128.
    learning_rate, lengthscale : float
    dtype : {"float32", "float64"}
    init : {"glorot_uniform", "auto"}
        Initial weights (:class:`cydrop.MLP`'s ``init``): the published
        Keras networks started from Glorot uniform, Keras's default.
    extended : bool
        Also the column beyond the published protocol: every grid point
        trained for ``epochs`` and for ``extended_epochs`` (a longer
        schedule), tau fitted on the validation rows (a fine grid of 61
        values over a decade either side of the grid's taus), and the
        candidate (dropout rate, tau, schedule) with the best fitted
        validation log-likelihood retrained and scored with its fitted tau.
        Test rows are never used to choose.
    extended_epochs : int or None
        The longer schedule of ``extended``; None: 2.5 x ``epochs``.
    seed : int
        Seeds every network (weights, order and masks): results do not
        depend on ``n_jobs``.
    repeats : int
        Run the whole protocol this many times, each with networks of its
        own seeds (repeat 0 is the run of ``repeats=1``). One run's figures
        move with the seed by about their standard error on the smallest
        datasets; each split's figures are averaged over the repeats before
        the mean and standard error over the splits, and each repeat's own
        means are kept (``<key>_repeats``).
    n_jobs : int
        Processes to run the trainings in (1: this process).
    progress : bool
        A tqdm progress bar over the trainings.
    keep_samples : bool
        Keep the first split's test MC samples in the result (for plots).

    Returns
    -------
    dict
        ``splits`` (one dict per split and repeat, with ``repeat`` when
        repeats > 1: chosen dropout_rate, tau and epochs,
        rmse, rmse_standard, test_ll, and with ``extended``
        extended_dropout_rate, extended_tau_train, extended_epochs,
        tau_fitted, test_ll_extended, rmse_extended), ``rmse``, ``rmse_se``, ``test_ll``,
        ``test_ll_se`` (mean and standard error over the splits), with
        ``extended`` also ``rmse_extended``, ``rmse_extended_se``,
        ``test_ll_extended``, ``test_ll_extended_se``; with repeats > 1,
        each repeat's means (``rmse_repeats``, ``test_ll_repeats``, ...);
        ``repeats``; ``seconds``.
    """
    start = time.perf_counter()
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise ValueError(f"X must be (n_samples, n_features) with n_samples = len(y) = {y.shape[0]} >= 1, "
                         f"got {X.shape}")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError("X and y must be finite")
    rates = _check_grid(dropout_rates, "dropout_rates")
    tau_values = _check_grid(taus, "taus")
    for r in rates:
        if not 0 <= r < 1:
            raise ValueError(f"dropout_rates must be in [0, 1), got {r}")
    for t in tau_values:
        check_tau(t, "taus")
    checked = []
    for k, split in enumerate(splits):
        train, test = (np.asarray(s).reshape(-1) for s in split)
        for name, rows in (("train", train), ("test", test)):
            if rows.dtype.kind not in "iu" or rows.size == 0:
                raise ValueError(f"split {k}: {name} rows must be a non-empty array of integers")
            if rows.min() < 0 or rows.max() >= X.shape[0]:
                raise ValueError(f"split {k}: {name} rows must be in [0, {X.shape[0]})")
        if int(0.8 * len(train)) < 1 or len(train) - int(0.8 * len(train)) < 1:
            raise ValueError(f"split {k}: {len(train)} training rows leave no validation rows")
        checked.append((train.astype(np.intp), test.astype(np.intp)))
    if not checked:
        raise ValueError("splits is empty")
    cfg = config(rates, tau_values, epochs=epochs, mc_samples=mc_samples, n_hidden=n_hidden,
                  batch_size=batch_size, learning_rate=learning_rate, lengthscale=lengthscale, dtype=dtype,
                  init=init, extended=extended, extended_epochs=extended_epochs, seed=seed, repeats=repeats,
                  keep_samples=keep_samples)
    n_jobs = check_positive_int(n_jobs, "n_jobs")
    repeats = cfg["repeats"]
    n_cand = len(cfg["grid"])
    n_published = cfg["n_published"]  # the published column chooses among these only
    n_splits = len(checked)

    tasks = [(X, y, train, r, k, c, cfg) for r in range(repeats) for k, (train, _) in enumerate(checked)
             for c in range(n_cand)]
    bar = _bar(len(tasks) + repeats * n_splits * (2 if extended else 1), progress)
    with workers(n_jobs) as run:
        scores = {}
        for r, k, c, ll, fitted in run(candidate_task, tasks):
            scores[r, k, c] = (ll, fitted)
            _tick(bar)
        retrains = []
        for r in range(repeats):
            for k, (train, test) in enumerate(checked):
                best = max(range(n_published), key=lambda c: scores[r, k, c][0])
                retrains.append((X, y, train, test, r, k, best, [cfg["grid"][best][1]], cfg))
                if extended:
                    ext = max(range(n_cand), key=lambda c: scores[r, k, c][1][0])
                    retrains.append((X, y, train, test, r, k, ext, [cfg["grid"][ext][1], scores[r, k, ext][1][1]],
                                     dict(cfg, keep_samples=False)))
        per_split, samples0 = [], None
        for i, (out, samples) in enumerate(run(_retrain_task, retrains)):
            if extended and i % 2 == 1:   # the extended retrain of the row before
                per_split[-1].update(extended_dropout_rate=out["dropout_rate"], extended_tau_train=out["tau_train"],
                                     extended_epochs=out["epochs"], tau_fitted=out["tau_fitted"],
                                     test_ll_extended=out["test_ll_fitted"], rmse_extended=out["rmse"])
            else:
                per_split.append(out)
                if samples is not None:
                    samples0 = samples
            _tick(bar)
    if bar is not None:
        bar.close()

    summary = {"splits": per_split, "n_splits": n_splits, "repeats": repeats}
    for key in ("rmse", "rmse_standard", "test_ll") + (("rmse_extended", "test_ll_extended") if extended else ()):
        # rows are ordered (repeat, split): each split's value is its mean over the repeats
        values = np.array([row[key] for row in per_split]).reshape(repeats, n_splits)
        summary[key], summary[key + "_se"] = _summary(values.mean(axis=0))
        if repeats > 1:
            summary[key + "_repeats"] = [float(v) for v in values.mean(axis=1)]
    if keep_samples:
        summary["samples_split0"] = samples0
    summary["seconds"] = time.perf_counter() - start
    return summary


def _bar(total, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="fit")


def _tick(bar):
    if bar is not None:
        bar.update(1)


@contextlib.contextmanager
def workers(n_jobs):
    """``with workers(n) as run: run(fn, tasks)`` yields fn(task) for each
    task, in order: in this process (n = 1), or in n worker processes of
    joblib's loky backend, each with its BLAS on one thread (idle BLAS
    threads of n processes would spin against each other)."""
    if n_jobs == 1:
        yield map
        return
    from joblib import Parallel, delayed, parallel_config

    with parallel_config(backend="loky", n_jobs=n_jobs, inner_max_num_threads=1):
        yield lambda fn, tasks: Parallel(return_as="generator")(delayed(fn)(task) for task in tasks)
