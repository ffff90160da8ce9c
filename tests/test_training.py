"""The one training loop (cydrop/mlp/training.py): what stops training, what it
evaluates, the debugging recipe, partial_fit, and that every training path
runs through it (the keep_prob search's ranking runs in benchmarks/bench_search.py).
"""
import math
import re
import warnings

import numpy as np
import pytest

import cydrop
from cydrop.mlp import training
from test_mlp import scale_backprop


def separable(n=120, n_features=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features))
    return X, (X[:, 0] > 0).astype(int)


def blobs(n=300, n_features=6, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_classes, n_features)) * 3
    y = rng.integers(0, n_classes, n)
    return centers[y] + rng.standard_normal((n, n_features)), y


def _rule_stops_at(values, tol, patience):
    """Evaluations run before the rule stops: ``patience`` in a row without a fall of more than tol."""
    best, stale = math.inf, 0
    for i, value in enumerate(values, 1):
        stale = 0 if value < best - tol else stale + 1
        best = min(best, value)
        if stale >= patience:
            return i
    return len(values)


# ------------------------------------------------------------ what stops training

def test_dropout_classifier_does_not_stop_on_the_noisy_training_loss():
    """keep_prob 0.7 stopped after 17 epochs at training accuracy 0.60: the rule
    compared the training loss under dropout. It now watches J with dropout off."""
    pytest.importorskip("sklearn")
    from cydrop.sklearn import DropoutMLPClassifier

    X, y = separable()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: may run all 300
        clf = DropoutMLPClassifier(hidden_layer_sizes=(20, 10), keep_prob=0.7, max_iter=300, random_state=1).fit(X, y)
    assert clf.n_iter_ > 100
    assert clf.score(X, y) >= 0.95


def test_mlp_early_stopping_without_validation_watches_j_and_keeps_the_best(MLP):
    X, y = blobs()
    net = MLP([6, 32, 3], keep_prob=[1.0, 0.5], dtype="float64", seed=0)
    history = net.fit(X, y, epochs=300, batch_size=32, learning_rate=0.05, early_stopping=3, tol=1e-3,
                      progress=False)
    costs = history["cost"]
    assert history["stopped"] and len(history["loss"]) < 300
    assert len(costs) == _rule_stops_at(costs, 1e-3, 3) == len(history["eval_epoch"])
    assert history["best_epoch"] == history["eval_epoch"][int(np.argmin(costs))]
    assert net.cost(X, y) == pytest.approx(min(costs), rel=1e-12)  # the best weights are back


def test_the_rule_never_reads_the_training_loss_under_dropout(MLP, monkeypatch):
    """Whatever the mean training loss says, the epochs run and the weights kept
    are those the costs with dropout off decide."""
    X, y = blobs()

    def run(scramble):
        net = MLP([6, 32, 3], keep_prob=0.5, dtype="float64", seed=2)
        if scramble:
            engine = net._current_engine()
            original = engine.train_epoch
            draws = iter(np.random.default_rng(0).uniform(0, 100, 1000))
            monkeypatch.setattr(engine, "train_epoch", lambda *a: (next(draws), original(*a)[1]))
        history = net.fit(X, y, epochs=200, batch_size=32, learning_rate=0.05, early_stopping=4, progress=False)
        return history, net

    (h1, n1), (h2, n2) = run(False), run(True)
    assert h1["loss"] != h2["loss"]
    assert h1["eval_epoch"] == h2["eval_epoch"] and h1["best_epoch"] == h2["best_epoch"]
    for W1, W2 in zip(n1.weights, n2.weights):
        np.testing.assert_array_equal(W1, W2)


def test_validation_data_decide_when_given(MLP):
    X, y = blobs(n=400)
    net = MLP([6, 64, 3], keep_prob=0.8, dtype="float64", seed=0)
    history = net.fit(X[:300], y[:300], epochs=300, batch_size=30, learning_rate=0.05,
                      validation_data=(X[300:], y[300:]), early_stopping=5, progress=False)
    assert "cost" not in history  # no pass over the training set was asked for
    assert len(history["val_loss"]) == _rule_stops_at(history["val_loss"], 0.0, 5)
    best = int(np.argmin(history["val_loss"]))
    assert history["best_epoch"] == history["eval_epoch"][best]
    np.testing.assert_allclose(net.cost(X[300:], y[300:], l2=0.0), history["val_loss"][best], rtol=1e-12)


def test_infinite_patience_trains_every_epoch_and_keeps_the_best(MLP):
    X, y = blobs(n=200)
    net = MLP([6, 64, 3], dtype="float64", seed=0)
    history = net.fit(X, y, epochs=30, batch_size=20, learning_rate=0.2, optimizer="sgd", early_stopping=math.inf,
                      eval_every=3, progress=False)
    assert len(history["loss"]) == 30 and history["eval_epoch"] == list(range(3, 31, 3))
    assert not history["stopped"]
    assert net.cost(X, y) == pytest.approx(min(history["cost"]), rel=1e-12)


# ------------------------------------------------------------ a fresh network can be checked

def test_a_fresh_network_costs_predicts_and_checks(MLP):
    X, y = blobs(n=40, n_features=8)
    y = y % 2
    net = MLP([8, 16, 16, 2], keep_prob=1.0, dtype="float64", seed=1)
    assert net.classes_.tolist() == [0, 1]
    expected = -np.mean(np.log(net.predict_proba(X)[np.arange(40), y]))  # cross-entropy by hand
    assert net.cost(X, y) == pytest.approx(expected, rel=1e-12)
    assert net.gradient_check(X, y) < 1e-7
    P = net.predict_proba(X)
    np.testing.assert_array_equal(net.predict(X), P.argmax(axis=1))  # predict and predict_proba agree
    assert net.score(X, y) == np.mean(net.predict(X) == y)


def test_classes_given_at_construction(MLP):
    X, y = blobs(n=60)
    labels = np.array(["cat", "dog", "eel"])
    net = MLP([6, 8, 3], classes=["dog", "cat", "eel"], seed=0)
    assert net.classes_.tolist() == ["cat", "dog", "eel"]
    assert set(net.predict(X)) <= set(labels)
    net.fit(X, labels[y], epochs=3, batch_size=20, progress=False)
    with pytest.raises(ValueError, match="not among the classes"):
        net.fit(X, y, epochs=1, batch_size=20, progress=False)  # given classes are not relearnt


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(classes=[0, 1, 2, 3]), ValueError, "4 classes, the network has room for 3"),
    (dict(classes=[]), ValueError, "classes must be a non-empty"),
    (dict(classes=[0.0, np.nan]), ValueError, "classes contains NaN"),
    (dict(output="linear", layer_sizes=[6, 1]), ValueError, "output='linear' takes none"),
])
def test_bad_classes(MLP, kwargs, exc, match):
    kwargs = {"layer_sizes": [6, 8, 3], "classes": [0, 1], **kwargs}
    with pytest.raises(exc, match=match):
        MLP(**kwargs)


# ------------------------------------------------------------ the debugging recipe in one call

def test_check_reports_j_falling_and_a_right_gradient_and_touches_nothing(MLP):
    X, y = blobs(n=80)
    net = MLP([6, 16, 16, 3], keep_prob=[0.8, 0.5, 0.5], seed=0)
    before = [p.copy() for p in net._network.params]
    state = net._network.mask_gen.state
    report = net.check(X, y, iterations=20, learning_rate=0.1)
    assert len(report.costs) == 21 and report.iterations == 20
    assert report.monotonic and all(b < a for a, b in zip(report.costs, report.costs[1:]))
    assert report.gradient_error < 1e-7
    assert report.costs[0] == pytest.approx(net.cost(X, y), rel=1e-5)  # J of this network, dropout off
    assert net.keep_prob == [0.8, 0.5, 0.5] and net._network.mask_gen.state == state
    for p, q in zip(net._network.params, before):
        np.testing.assert_array_equal(p, q)
    assert "fell on every iteration" in str(report)


def test_check_can_fail(MLP):
    X, y = blobs(n=80)
    net = MLP([6, 16, 3], seed=0)
    report = net.check(X, y, iterations=10, learning_rate=50.0)  # far too large a step
    assert not report.monotonic and "did not fall" in str(report)


def test_check_finds_a_wrong_gradient(MLP, monkeypatch):
    X, y = blobs(n=40)
    net = MLP([6, 8, 3], seed=0)
    scale_backprop(monkeypatch, net, 1.5)
    assert net.check(X, y, iterations=2).gradient_error > 1e-2


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(iterations=0), ValueError, "iterations"), (dict(iterations=2.5), TypeError, "iterations"),
    (dict(learning_rate=0), ValueError, "learning_rate"), (dict(learning_rate="x"), TypeError, "learning_rate"),
])
def test_check_bad_arguments(MLP, kwargs, exc, match):
    X, y = blobs(n=20)
    with pytest.raises(exc, match=match):
        MLP([6, 4, 3]).check(X, y, **kwargs)


# ------------------------------------------------------------ partial_fit is one pass

def test_partial_fit_is_one_pass_in_mini_batches(MLP):
    X, y = blobs(n=250)
    net = MLP([6, 8, 3], seed=0)
    net.partial_fit(X, y, batch_size=50)
    assert net._training.optimizer.t == 5
    net.partial_fit(X[:30], y[:30])  # batch_size None: one step on the rows given
    assert net._training.optimizer.t == 6


def test_estimator_partial_fit_is_one_pass():
    pytest.importorskip("sklearn")
    from cydrop.sklearn import DropoutMLPClassifier

    X, y = blobs(n=500)
    clf = DropoutMLPClassifier((16,), batch_size=100, random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    assert clf._net._training.optimizer.t == 5 and clf.t_ == 500 and clf.n_iter_ == 1  # t_: samples, as scikit-learn


# ------------------------------------------------------------ J only when asked

@pytest.mark.parametrize("options, evaluations", [
    ({}, 0), (dict(track_cost=True), 6), (dict(track_cost=True, eval_every=2), 3),
    (dict(early_stopping=100, eval_every=3), 2),
])
def test_fit_passes_over_the_training_set_only_when_asked(MLP, monkeypatch, options, evaluations):
    X, y = blobs(n=100)
    net = MLP([6, 8, 3], seed=0)
    calls = []
    original = training.evaluate
    monkeypatch.setattr(training, "evaluate", lambda *a: (calls.append(a[2].shape[0]), original(*a))[1])
    history = net.fit(X, y, epochs=6, batch_size=20, progress=False, **options)
    assert calls == [100] * evaluations
    assert len(history["loss"]) == 6 and len(history.get("cost", [])) == evaluations


# ------------------------------------------------------------ one loop

def test_every_training_path_runs_the_one_loop(MLP, monkeypatch):
    pytest.importorskip("sklearn")
    from cydrop.sklearn import DropoutMLPClassifier, DropoutMLPRegressor

    calls = []
    original = training.run
    monkeypatch.setattr(training, "run", lambda *a, **k: (calls.append(k["epochs"]), original(*a, **k))[1])
    X, y = blobs(n=60)
    net = MLP([6, 8, 3], seed=0)
    net.fit(X, y, epochs=3, batch_size=20, progress=False)
    net.partial_fit(X, y)
    DropoutMLPClassifier((8,), max_iter=4, n_iter_no_change=np.inf).fit(X, y)
    DropoutMLPClassifier((8,)).partial_fit(X, y, classes=[0, 1, 2])
    DropoutMLPRegressor((8,), max_iter=2, n_iter_no_change=np.inf).fit(X, y.astype(float))
    DropoutMLPRegressor((8,)).partial_fit(X, y.astype(float))
    assert calls == [3, 1, 4, 1, 2, 1]  # one call per training call, nothing else trains


# ------------------------------------------------------------ options and errors

@pytest.mark.parametrize("options, exc, match", [
    (dict(eval_every=0), ValueError, "eval_every"), (dict(eval_every=1.5), TypeError, "eval_every"),
    (dict(early_stopping=0), ValueError, "early_stopping"), (dict(early_stopping=2.5), TypeError, "early_stopping"),
    (dict(tol=-1), ValueError, "tol"), (dict(tol=float("nan")), ValueError, "tol"),
    (dict(track_cost=1), TypeError, "track_cost"), (dict(validation_data=(1,)), ValueError, "validation_data"),
    (dict(sample_weight=[1.0]), ValueError, "sample_weight"),
    (dict(sample_weight=-np.ones(30)), ValueError, "sample_weight"),
    (dict(sample_weight=np.zeros(30)), ValueError, "sample_weight"),
])
def test_bad_training_options_change_nothing(MLP, options, exc, match):
    X, y = blobs(n=30)
    net = MLP([6, 8, 3], seed=0)
    before = [p.copy() for p in net._network.params]
    with pytest.raises(exc, match=match):
        net.fit(X, y, epochs=2, batch_size=10, progress=False, **options)
    assert net._training.optimizer is None and not net._training.trained
    for p, q in zip(net._network.params, before):
        np.testing.assert_array_equal(p, q)


def test_divergence_in_an_evaluation_is_reported(MLP):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3)) * 100
    y = rng.standard_normal(40) * 100
    net = MLP([3, 16, 1], output="linear", dtype="float64", seed=0)
    with pytest.raises(FloatingPointError, match="diverged at epoch"):
        net.fit(X, y, epochs=50, batch_size=8, optimizer="sgd", learning_rate=10.0, track_cost=True, progress=False)


def test_partial_fit_divergence_names_the_step_that_diverged(MLP):
    """The loss is checked once per pass; the message names the first step
    whose loss was not finite, found by the engine, not the pass's last."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((200, 3)) * 50, rng.standard_normal(200) * 50

    def diverging(net, **options):
        with pytest.raises(FloatingPointError, match=r"diverged at step (\d+)") as exc, np.errstate(all="ignore"):
            net.partial_fit(X, y, optimizer="sgd", learning_rate=5.0, shuffle=False, **options)
        return int(re.search(r"step (\d+)", str(exc.value)).group(1))

    kwargs = dict(output="linear", dtype="float64", seed=0)
    at = diverging(MLP([3, 8, 1], **kwargs), batch_size=10)
    # the same steps one partial_fit call each: the first that raises
    net = MLP([3, 8, 1], **kwargs)
    for step in range(1, 21):
        try:
            with np.errstate(all="ignore"):
                net.partial_fit(X[10 * (step - 1):10 * step], y[10 * (step - 1):10 * step], optimizer="sgd",
                                learning_rate=5.0, shuffle=False)
        except FloatingPointError:
            break
    assert 1 <= at == step < 20
