"""The published MC dropout UCI protocol (Gal & Ghahramani 2016) on arrays: what
``cydrop uci`` runs.

Per split, a grid search of (dropout rate, tau) scored by validation
log-likelihood, the best candidate retrained on all training rows, MC RMSE
and test log-likelihood on the test rows (:func:`run_protocol`); with
``learn``, beside it, one network per split whose keep_prob is learned
(Concrete dropout, :func:`learn_task`) instead of the grid. The
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

SEED_MAX = 2**64 - 1   # the MLP's seeds are 64 bits

__all__ = ["candidate_task", "config", "learn_task", "run_protocol", "train_and_sample", "workers"]


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
    return dict(epochs=epochs, mc_samples=check_positive_int(mc_samples, "mc_samples"),
                n_hidden=check_positive_int(n_hidden, "n_hidden"),
                batch_size=check_positive_int(batch_size, "batch_size"),
                learning_rate=float(learning_rate), lengthscale=float(lengthscale), dtype=dtype, init=init,
                grid=published + longer, n_published=len(published), extended=bool(extended),
                seed=check_positive_int(seed, "seed", minimum=0, maximum=SEED_MAX),
                repeats=check_positive_int(repeats, "repeats"),
                keep_samples=bool(keep_samples),
                tau_fit_grid=np.geomspace(min(tau_values) / 10, max(tau_values) * 10, 61))


def train_and_sample(X_tr, y_tr, X_ev, dropout_rate, tau, epochs, cfg, seed):
    """Train one candidate on (X_tr, y_tr), standardised on those rows; return
    the MC samples (T, n_ev) and the plain-pass predictions on X_ev, on the
    original target scale."""
    keep = 1.0 - dropout_rate
    l2 = weight_decay_from_tau(tau, keep, X_tr.shape[0], cfg["batch_size"], cfg["lengthscale"])
    net, scale, _ = _train(X_tr, y_tr, [keep, keep], l2, epochs, cfg, seed)
    return _sample(net, scale, X_ev, cfg)


def _train(X_tr, y_tr, keep_prob, l2, epochs, cfg, seed, target_std=1.0, validation=None):
    """A ``[n_features, n_hidden, 1]`` network trained on (X_tr, y_tr), the
    features standardised and the target scaled to standard deviation
    ``target_std`` on those rows; returns it, the scaling (for _sample) and
    its fit history. With ``validation`` (X_val, y_val), the weights kept
    are those of the lowest validation loss (dropout off), evaluated every
    LEARN_EVAL_EVERY epochs (the history's ``best_epoch``)."""
    mean_x, std_x = X_tr.mean(axis=0), X_tr.std(axis=0)
    std_x[std_x == 0] = 1
    mean_y, std_y = float(y_tr.mean()), (float(y_tr.std()) or 1.0) / target_std
    net = MLP([X_tr.shape[1], cfg["n_hidden"], 1], keep_prob=keep_prob, output="linear", dtype=cfg["dtype"],
              seed=seed, init=cfg["init"], lengthscale=cfg["lengthscale"])
    best = {}
    if validation is not None:
        X_val, y_val = validation
        best = dict(validation_data=((X_val - mean_x) / std_x, (y_val - mean_y) / std_y),
                    early_stopping=math.inf, eval_every=LEARN_EVAL_EVERY)
    history = net.fit((X_tr - mean_x) / std_x, (y_tr - mean_y) / std_y, epochs=epochs,
                      batch_size=cfg["batch_size"], optimizer="adam", learning_rate=cfg["learning_rate"], l2=l2,
                      progress=False, **best)
    return net, (mean_x, std_x, mean_y, std_y), history


def _sample(net, scale, X_ev, cfg):
    """The MC samples (T, n_ev) and the plain-pass predictions of net on
    X_ev, on the original target scale."""
    mean_x, std_x, mean_y, std_y = scale
    Xe = (X_ev - mean_x) / std_x
    _, _, samples = net.predict_proba(Xe, mc_samples=cfg["mc_samples"], return_samples=True)
    plain = net.predict(Xe).astype(np.float64) * std_y + mean_y
    return samples[:, :, 0].astype(np.float64) * std_y + mean_y, plain


_RETRAIN = 999   # the roles of the retrained and the learned networks in _network_seed
_LEARN = 998


def _network_seed(seed, repeat, split, role):
    """The seed of one network: ``role`` is its candidate, _RETRAIN or _LEARN.

    Repeat 0 keeps the seeds of a single run (so that its results reproduce);
    further repeats hash (seed, repeat, split, role) with ``SeedSequence``:
    ``seed + repeat`` would give repeat r's candidate c the initial weights
    of repeat 0's candidate c + r. Wrapped to 64 bits: a seed near SEED_MAX
    stays a valid one."""
    if repeat == 0:
        return (seed + 1000 * split + role) % (SEED_MAX + 1)
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
    rmse_mc, rmse, lls = _test_scores(y[test], samples, plain, taus)
    out = {"split": k, "dropout_rate": rate, "tau_train": tau, "epochs": epochs, "rmse": rmse_mc,
           "rmse_standard": rmse, "test_ll": lls[0]}
    if cfg["repeats"] > 1:
        out = {"repeat": r, **out}
    if len(taus) > 1:
        out["tau_fitted"], out["test_ll_fitted"] = taus[1], lls[1]
    return out, samples if cfg["keep_samples"] and r == 0 and k == 0 else None


def _test_scores(y_test, samples, plain, taus):
    """MC RMSE (of the mean of the passes), the plain pass's RMSE, and the
    test log-likelihood at each tau."""
    rmse_mc = float(np.sqrt(np.mean((y_test - samples.mean(axis=0)) ** 2)))
    rmse = float(np.sqrt(np.mean((y_test - plain) ** 2)))
    return rmse_mc, rmse, [predictive_log_likelihood(y_test, samples, t) for t in taus]


# The learned column's prior: cydrop.MLP weighs the prior of a learned rate
# against the squared error, the Gaussian log-likelihood at unit noise
# variance, so the scale of the target sets the noise the prior assumes. The
# target is scaled to standard deviation 1 / LEARN_PRIOR_NOISE (noise of a
# third of the target's spread; chosen on validation rows among 1, 1/3, 1/10
# and 1/30 with length-scales 0.01 and 0.3: benchmarks/uci_learn_choices.py).
# At the target's own scale the prior drops hidden units that the
# low-noise datasets (energy, yacht) need.
LEARN_PRIOR_NOISE = 1 / 3
# Tau is fitted on the validation rows over this grid (for a standardised
# target; divided by the target's variance on the fit rows), then over a
# finer one between the best point's neighbours: each point is a logsumexp
# over every pass of every row.
LEARN_TAU_GRID = np.geomspace(1e-2, 1e4, 13)
# MC passes over the validation rows to fit tau: one number needs no more.
LEARN_TAU_PASSES = 1000
# The learned column keeps the weights of the lowest validation loss, read
# every LEARN_EVAL_EVERY epochs of the 4000. Why: the learned rates settle
# near keep_prob 1 on concrete, energy and wine (the prior, divided by N,
# loses to the data), and 4000 epochs then overfit: on the test rows of 20
# splits wine's RMSE fell from 0.724 to 0.635, every dataset's RMSE fell, and
# yacht's log-likelihood alone dropped, by 0.016 (benchmarks/results/uci/learn/
# learn-20splits.json, and its version before this rule in git).
LEARN_EVAL_EVERY = 10


def _fit_learned_tau(y_val, samples, target_var):
    """The tau of LEARN_TAU_GRID / target_var, refined, that maximises the
    log-likelihood of the samples of the validation rows."""
    grid = LEARN_TAU_GRID / target_var
    _, tau = _fit_tau(y_val, samples, grid)
    step = grid[1] / grid[0]
    return _fit_tau(y_val, samples, np.geomspace(tau / step, tau * step, 21))[1]


def learn_task(args):
    """The learned column of one (repeat, split): ONE network, every layer's
    keep_prob learned (Concrete dropout), trained on the split's fit rows
    (its first 80% of training rows), its weights those of the lowest loss
    on the validation rows (the other 20%); tau fitted on the validation
    rows; MC RMSE and test log-likelihood at that tau on the test rows.
    Nothing is chosen with the test rows."""
    X, y, train, test, r, k, cfg = args
    n_fit = int(0.8 * len(train))
    fit_rows, val_rows = train[:n_fit], train[n_fit:]
    net, scale, history = _train(X[fit_rows], y[fit_rows], "learn", 0.0, cfg["epochs"], cfg,
                                 _network_seed(cfg["seed"], r, k, _LEARN), target_std=1 / LEARN_PRIOR_NOISE,
                                 validation=(X[val_rows], y[val_rows]))
    val_samples, _ = _sample(net, scale, X[val_rows], dict(cfg, mc_samples=min(cfg["mc_samples"], LEARN_TAU_PASSES)))
    tau = _fit_learned_tau(y[val_rows], val_samples, float(y[fit_rows].var()) or 1.0)
    samples, plain = _sample(net, scale, X[test], cfg)
    rmse_mc, rmse, (ll,) = _test_scores(y[test], samples, plain, [tau])
    out = {"split": k, "keep_prob": [float(v) for v in net.keep_prob_], "tau_fitted": float(tau),
           "best_epoch": int(history["best_epoch"]), "rmse": rmse_mc, "rmse_standard": rmse, "test_ll": ll}
    return {"repeat": r, **out} if cfg["repeats"] > 1 else out


def _summary(values):
    values = np.asarray(values, dtype=np.float64)
    # the standard error of the published summaries: np.std (ddof 0) / sqrt(n)
    return float(values.mean()), float(values.std() / math.sqrt(len(values)))


def run_protocol(X, y, splits, *, dropout_rates, taus, epochs=4000, mc_samples=10000, n_hidden=50,
                 batch_size=128, learning_rate=1e-3, lengthscale=LENGTHSCALE, dtype="float32",
                 init="glorot_uniform", extended=False, extended_epochs=None, seed=0, repeats=1, n_jobs=1,
                 progress=False, keep_samples=False, learn=False, grid=True):
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
        Seeds every network (weights, order and masks), in [0, 2**64):
        results do not depend on ``n_jobs``.
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
    learn : bool
        Also the learned column, no grid: per split ONE network of the same
        shape trained for ``epochs`` on the 80% fit rows with every layer's
        keep_prob learned (Concrete dropout, :class:`cydrop.MLP`'s
        ``keep_prob="learn"``, length-scale ``lengthscale``, the target
        scaled so that the prior assumes noise of LEARN_PRIOR_NOISE of its
        standard deviation), tau fitted on the validation rows
        (from LEARN_TAU_GRID, on LEARN_TAU_PASSES MC passes), MC RMSE and test log-likelihood at that tau on the
        test rows. Test rows are never used to choose.
    grid : bool
        Run the grid (the published column, and ``extended``'s); False
        (with ``learn``) runs the learned column alone.

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
        ``repeats``; ``seconds`` (of the grid's trainings); with ``learn``,
        ``learn``: the learned column's ``splits`` (per split: keep_prob,
        one per layer, tau_fitted, best_epoch (whose weights were kept),
        rmse, rmse_standard, test_ll), the same means and standard errors,
        ``keep_prob`` (each layer's mean over the splits and repeats) and
        ``seconds``. Without ``grid``,
        only ``learn``, ``n_splits`` and ``repeats``.
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
    if not (grid or learn):
        raise ValueError("grid=False needs learn=True: there is no column to run")
    repeats, n_splits = cfg["repeats"], len(checked)
    # a worker beyond the most trainings of one phase gets no task: it would only cost its start
    n_jobs = min(n_jobs, repeats * n_splits * (len(cfg["grid"]) if grid else 1))

    summary = {"n_splits": n_splits, "repeats": repeats}
    with workers(n_jobs) as run:
        if grid:
            summary.update(_grid_column(X, y, checked, cfg, run, progress))
            summary["seconds"] = time.perf_counter() - start
        if learn:
            start = time.perf_counter()
            tasks = [(X, y, train, test, r, k, cfg) for r in range(repeats) for k, (train, test) in enumerate(checked)]
            bar = _bar(len(tasks), progress)
            rows = []
            for row in run(learn_task, tasks):
                rows.append(row)
                _tick(bar)
            if bar is not None:
                bar.close()
            column = {"splits": rows, **_columns(rows, ("rmse", "rmse_standard", "test_ll"), repeats, n_splits),
                      "keep_prob": [float(v) for v in np.mean([row["keep_prob"] for row in rows], axis=0)]}
            summary["learn"] = dict(column, seconds=time.perf_counter() - start)
    return summary


def _grid_column(X, y, checked, cfg, run, progress):
    """The grid's columns (published, and with ``extended`` the extended
    one) of run_protocol, its trainings run by ``run``."""
    repeats, extended, n_splits = cfg["repeats"], cfg["extended"], len(checked)
    n_cand = len(cfg["grid"])
    n_published = cfg["n_published"]  # the published column chooses among these only
    tasks = [(X, y, train, r, k, c, cfg) for r in range(repeats) for k, (train, _) in enumerate(checked)
             for c in range(n_cand)]
    bar = _bar(len(tasks) + repeats * n_splits * (2 if extended else 1), progress)
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
    keys = ("rmse", "rmse_standard", "test_ll") + (("rmse_extended", "test_ll_extended") if extended else ())
    summary = {"splits": per_split, **_columns(per_split, keys, repeats, n_splits)}
    if cfg["keep_samples"]:
        summary["samples_split0"] = samples0
    return summary


def _columns(rows, keys, repeats, n_splits):
    """Each key's mean and standard error over the splits (``key``,
    ``key_se``), each split's value first averaged over the repeats, and
    with repeats > 1 each repeat's mean (``key_repeats``)."""
    out = {}
    for key in keys:
        # rows are ordered (repeat, split)
        values = np.array([row[key] for row in rows]).reshape(repeats, n_splits)
        out[key], out[key + "_se"] = _summary(values.mean(axis=0))
        if repeats > 1:
            out[key + "_repeats"] = [float(v) for v in values.mean(axis=1)]
    return out


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
