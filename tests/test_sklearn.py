"""cydrop.sklearn: scikit-learn's estimator checks, model selection, sklearn semantics."""
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from cydrop.sklearn import DropoutMLPClassifier, DropoutMLPRegressor

# Many fits below stop at a small max_iter on purpose; test_convergence_warning
# checks the warning itself.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# The estimators as a user builds them: defaults, and defaults with keep_prob
# 0.8, 1.0 (no dropout) and learned; the regressor's Gaussian output too.
CHECKED = [DropoutMLPClassifier(), DropoutMLPRegressor(), DropoutMLPClassifier(keep_prob=0.8),
           DropoutMLPRegressor(keep_prob=0.8), DropoutMLPClassifier(keep_prob=1.0), DropoutMLPRegressor(keep_prob=1.0),
           DropoutMLPClassifier(keep_prob="learn"), DropoutMLPRegressor(keep_prob="learn"),
           DropoutMLPRegressor(loss="gaussian_nll"), DropoutMLPRegressor(keep_prob="learn", loss="gaussian_nll")]


def expected_failed_checks(estimator):
    if estimator.keep_prob != 1.0:
        # Weight k and k repeats are equal in expectation only: dropout draws
        # one mask per row, so a row repeated k times is seen through k masks,
        # a row of weight k through one. Without dropout (keep_prob=1.0) the
        # same check runs, and passes.
        return {check: "one dropout mask per row, not per repeat" for check in
                ("check_sample_weight_equivalence_on_dense_data", "check_sample_weight_equivalence_on_sparse_data")}
    return {}


def _run_in_subprocess_with_array_api(estimator, check):
    """check_array_api_input skips itself unless SCIPY_ARRAY_API=1 was set
    before SciPy was imported, which this process did long ago: run it in a
    fresh interpreter that has it."""
    code = "import pickle, sys; estimator, check = pickle.load(sys.stdin.buffer); check(estimator)"
    res = subprocess.run([sys.executable, "-W", "ignore::UserWarning", "-c", code],
                         input=pickle.dumps((estimator, check)), capture_output=True, timeout=120,
                         env={**os.environ, "SCIPY_ARRAY_API": "1"})
    assert res.returncode == 0, res.stderr.decode()[-3000:]


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    if getattr(check, "func", check).__name__ == "check_array_api_input":
        _run_in_subprocess_with_array_api(estimator, check)
    else:
        check(estimator)


# ------------------------------------------------------------ data

def blobs(n=300, n_features=6, n_classes=3, seed=0):
    X, y = make_blobs(n_samples=n, n_features=n_features, centers=n_classes, cluster_std=2.0, random_state=seed)
    return X, y


# ------------------------------------------------------------ model selection

def test_grid_search_with_two_processes_matches_fits_by_hand():
    X, y = blobs()
    grid = [1.0, 0.6, (0.8, 0.5)]
    base = DropoutMLPClassifier((16,), max_iter=15, random_state=0, dtype="float64", n_iter_no_change=np.inf)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(base, {"keep_prob": grid}, cv=cv, n_jobs=2).fit(X, y)
    # the same folds and candidates, fitted one by one in this process
    by_hand = [np.mean([clone(base).set_params(keep_prob=kp).fit(X[tr], y[tr]).score(X[te], y[te])
                        for tr, te in cv.split(X, y)]) for kp in grid]
    assert [p["keep_prob"] for p in search.cv_results_["params"]] == grid
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], by_hand, rtol=0, atol=1e-12)
    assert search.best_params_["keep_prob"] == grid[int(np.argmax(by_hand))]
    assert search.best_estimator_._net.keep_prob == (
        [1.0, search.best_params_["keep_prob"]] if isinstance(search.best_params_["keep_prob"], float)
        else list(search.best_params_["keep_prob"]))


def test_per_layer_keep_prob_reaches_the_network():
    X, y = blobs(n=60)
    clf = DropoutMLPClassifier((8, 8), keep_prob=(0.9, 0.6, 0.7), max_iter=1).fit(X, y)
    assert clf._net.keep_prob == [0.9, 0.6, 0.7]
    clf = DropoutMLPClassifier((8, 8), keep_prob=0.6, max_iter=1).fit(X, y)
    assert clf._net.keep_prob == [1.0, 0.6, 0.6]  # a float leaves the inputs whole


# ------------------------------------------------------------ pickling, cloning, reproducibility

def test_pickled_estimator_predicts_and_trains_on_like_the_original():
    X, y = blobs()
    clf = DropoutMLPClassifier((16,), keep_prob=0.5, max_iter=5, random_state=3).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    # optimizer state, shuffling and mask generator positions travel too:
    # one more epoch gives the same weights on both
    for est in (clf, copy):
        est.partial_fit(X, y)
    for W1, W2 in zip(clf.coefs_, copy.coefs_):
        np.testing.assert_array_equal(W1, W2)


def test_clone_is_unfitted_with_the_same_params():
    clf = DropoutMLPClassifier((7, 5), keep_prob=(1.0, 0.5, 0.8), max_norm=3.0, dtype="float64")
    clf.fit(*blobs(n=60))
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    assert not hasattr(twin, "coefs_")


def test_same_random_state_same_model_and_another_differs():
    X, y = blobs()
    fits = [DropoutMLPClassifier((16,), keep_prob=0.5, max_iter=5, random_state=rs).fit(X, y) for rs in (1, 1, 2)]
    np.testing.assert_array_equal(fits[0].coefs_[0], fits[1].coefs_[0])
    assert not np.array_equal(fits[0].coefs_[0], fits[2].coefs_[0])


# ------------------------------------------------------------ training semantics

def test_partial_fit_streams_and_needs_classes_first():
    X, y = blobs(n=600)
    clf = DropoutMLPClassifier((32,), keep_prob=0.8, learning_rate_init=0.01, random_state=0)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X[:100], y[:100])
    # the first part holds only two of the three classes
    first = y != 2
    clf.partial_fit(X[first][:100], y[first][:100], classes=[0, 1, 2])
    for _ in range(20):
        for start in range(0, 600, 100):
            clf.partial_fit(X[start:start + 100], y[start:start + 100])
    assert clf.classes_.tolist() == [0, 1, 2]
    assert len(clf.loss_curve_) == 1 + 20 * 6  # one pass per call
    assert clf.n_iter_ == 1  # as scikit-learn: the epochs of the last call
    assert clf.t_ == (1 + 20 * 6) * 100  # as scikit-learn: the samples seen
    assert clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X[:10], y[:10], classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="not among the classes"):
        clf.partial_fit(X[:10], np.full(10, 7))


def test_regressor_two_outputs_and_partial_fit():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (400, 3))
    Y = np.column_stack([X @ [1.0, -2.0, 0.5], np.sin(2 * X[:, 0])])
    reg = DropoutMLPRegressor((64,), keep_prob=0.95, learning_rate_init=0.01, max_iter=200, batch_size=50,
                              random_state=0).fit(X, Y)
    pred = reg.predict(X)
    assert pred.shape == (400, 2) and pred.dtype == np.float64
    assert reg.score(X, Y) > 0.9
    online = DropoutMLPRegressor((64,), keep_prob=0.95, learning_rate_init=0.01, batch_size=50, random_state=0)
    for _ in range(200):
        online.partial_fit(X, Y)
    assert online.score(X, Y) > 0.9
    with pytest.raises(ValueError, match="output"):
        online.partial_fit(X, Y[:, 0])


def test_binary_classifier_probabilities():
    X, y = blobs(n_classes=2)
    labels = np.array(["no", "yes"])[y]
    clf = DropoutMLPClassifier((16,), max_iter=30, learning_rate_init=0.01, random_state=0).fit(X, labels)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2) and clf.out_activation_ == "logistic"
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X, labels) > 0.9


def _expected_stop(values, tol, patience):
    """Evaluations run under scikit-learn's documented count (stop when more than
    ``patience`` in a row did not fall by ``tol``), computed from the recorded costs."""
    best, count = np.inf, 0
    for evaluation, value in enumerate(values, 1):
        count = 0 if value < best - tol else count + 1
        best = min(best, value)
        if count > patience:
            return evaluation
    return len(values)


def test_tol_stops_on_the_cost_with_dropout_off():
    """Without early_stopping the rule watches J on the training set with
    dropout off, never the training loss under dropout."""
    X, y = blobs()
    clf = DropoutMLPClassifier((16,), keep_prob=0.8, max_iter=500, tol=1e-2, n_iter_no_change=3,
                               random_state=0).fit(X, y)
    assert clf.n_iter_ < 500
    assert len(clf.cost_curve_) == clf.n_iter_ == len(clf.loss_curve_)
    assert clf.n_iter_ == _expected_stop(clf.cost_curve_, 1e-2, 3)
    assert clf.best_loss_ == min(clf.cost_curve_)
    # the kept weights are those of the lowest J, recomputed here from scratch
    assert clf._net.cost(X, y) == pytest.approx(clf.best_loss_, rel=1e-5)


def test_eval_every_sets_the_cadence():
    X, y = blobs()
    clf = DropoutMLPClassifier((16,), keep_prob=0.8, max_iter=40, eval_every=5, n_iter_no_change=np.inf,
                               random_state=0).fit(X, y)
    assert len(clf.loss_curve_) == 40 and len(clf.cost_curve_) == 8


def test_early_stopping_keeps_the_best_epoch():
    X, y = blobs(n=400, n_features=20, n_classes=4, seed=1)
    kwargs = dict(hidden_layer_sizes=(64,), keep_prob=0.9, learning_rate_init=0.01, early_stopping=True,
                  validation_fraction=0.25, random_state=0)
    clf = DropoutMLPClassifier(max_iter=300, n_iter_no_change=5, tol=1e-4, **kwargs).fit(X, y)
    losses = clf.validation_losses_
    assert len(losses) == len(clf.validation_scores_) == clf.n_iter_ < 300
    assert clf.n_iter_ == _expected_stop(losses, 1e-4, 5)
    best_epoch = int(np.argmin(losses)) + 1
    assert clf.best_validation_score_ == clf.validation_scores_[best_epoch - 1] and clf.best_loss_ is None
    # the weights kept are those of the first best epoch: training that many
    # epochs from the same seed (same split) ends on the same weights
    short = DropoutMLPClassifier(max_iter=best_epoch, n_iter_no_change=np.inf, **kwargs).fit(X, y)
    for W1, W2 in zip(clf.coefs_, short.coefs_):
        np.testing.assert_array_equal(W1, W2)


def test_early_stopping_without_patience_still_keeps_the_best_weights():
    """n_iter_no_change=np.inf trains max_iter epochs and keeps the best
    weights, as scikit-learn does whenever early_stopping is on."""
    from sklearn.datasets import make_classification

    X, y = make_classification(300, 8, n_informative=5, n_classes=3, random_state=0)
    kwargs = dict(hidden_layer_sizes=(64,), keep_prob=1.0, learning_rate_init=0.05, max_iter=40, random_state=0,
                  early_stopping=True, validation_fraction=0.3)
    patient = DropoutMLPClassifier(n_iter_no_change=1000, **kwargs).fit(X, y)
    endless = DropoutMLPClassifier(n_iter_no_change=np.inf, **kwargs).fit(X, y)
    assert endless.n_iter_ == patient.n_iter_ == 40
    best = int(np.argmin(endless.validation_losses_))
    assert best < 39  # the last epoch is not the best one here, so the test can tell
    for W1, W2 in zip(endless.coefs_, patient.coefs_):
        np.testing.assert_array_equal(W1, W2)
    assert endless.best_validation_score_ == endless.validation_scores_[best]


def test_warm_start_continues_the_same_network():
    X, y = blobs()
    # weights, optimizer state and mask stream go on; without shuffling, two
    # warm fits of 4 epochs are one of 8 (each fit shuffles from the rows in
    # their order, as scikit-learn's: shuffled, the orders would differ)
    kwargs = dict(hidden_layer_sizes=(16,), keep_prob=0.7, n_iter_no_change=np.inf, random_state=0, shuffle=False)
    warm = DropoutMLPClassifier(max_iter=4, warm_start=True, **kwargs).fit(X, y).fit(X, y)
    straight = DropoutMLPClassifier(max_iter=8, **kwargs).fit(X, y)
    assert len(warm.loss_curve_) == 8 and warm.n_iter_ == 4 and warm.t_ == 8 * len(X)
    np.testing.assert_array_equal(warm.coefs_[0], straight.coefs_[0])
    warm.set_params(hidden_layer_sizes=(32,))
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        warm.fit(X, y)
    with pytest.raises(ValueError, match="classes"):
        warm.set_params(hidden_layer_sizes=(16,)).fit(X[y < 2], y[y < 2])


def test_solver_and_activation_names_map_onto_cydrop():
    X, y = blobs(n=60)
    cases = [(dict(solver="sgd", momentum=0.0), "sgd"), (dict(solver="sgd", momentum=0.9), "nesterov"),
             (dict(solver="sgd", momentum=0.9, nesterovs_momentum=False), "momentum"), (dict(solver="adam"), "adam")]
    for params, optimizer in cases:
        assert DropoutMLPClassifier((4,), max_iter=1, **params).fit(X, y)._net._training.optimizer.name == optimizer
    for name, cydrop_name in [("identity", "linear"), ("logistic", "sigmoid"), ("tanh", "tanh"), ("relu", "relu")]:
        assert DropoutMLPClassifier((4,), activation=name, max_iter=1).fit(X, y)._net.activation == cydrop_name


def test_max_norm_and_alpha_reach_the_updates():
    X, y = blobs()
    clf = DropoutMLPClassifier((16,), max_iter=20, learning_rate_init=0.05, max_norm=0.5, random_state=0).fit(X, y)
    for W in clf.coefs_:
        assert np.linalg.norm(W.astype(np.float64), axis=0).max() <= 0.5 * (1 + 1e-5)
    small = DropoutMLPClassifier((16,), max_iter=20, alpha=0.0, random_state=0).fit(X, y)
    large = DropoutMLPClassifier((16,), max_iter=20, alpha=50.0, random_state=0).fit(X, y)
    assert np.linalg.norm(large.coefs_[0]) < np.linalg.norm(small.coefs_[0])


def test_convergence_warning_only_with_a_convergence_test():
    X, y = blobs(n=60)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        DropoutMLPClassifier((4,), max_iter=2).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        DropoutMLPClassifier((4,), max_iter=2, n_iter_no_change=np.inf).fit(X, y)


def test_verbose_prints_every_epoch(capsys):
    X, y = blobs(n=60)
    DropoutMLPClassifier((4,), max_iter=3, n_iter_no_change=np.inf, verbose=True).fit(X, y)
    out = capsys.readouterr().out
    assert [line.split(",")[0] for line in out.splitlines()] == ["Iteration 1", "Iteration 2", "Iteration 3"]


def test_feature_names_in():
    pd = pytest.importorskip("pandas")  # in the test extra: never skipped in CI
    X, y = blobs(n=60, n_features=3)
    frame = pd.DataFrame(X, columns=["width", "height", "depth"])
    clf = DropoutMLPClassifier((4,), max_iter=2, n_iter_no_change=np.inf).fit(frame, y)
    assert clf.feature_names_in_.tolist() == ["width", "height", "depth"]
    assert clf.n_features_in_ == 3
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame.rename(columns={"depth": "mass"}))
    assert not hasattr(DropoutMLPClassifier((4,), max_iter=2, n_iter_no_change=np.inf).fit(X, y),
                       "feature_names_in_")


# ------------------------------------------------------------ bad parameters

@pytest.mark.parametrize("params, name", [
    (dict(hidden_layer_sizes=(8, 0)), "hidden_layer_sizes"),
    (dict(hidden_layer_sizes=-3), "hidden_layer_sizes"),
    (dict(activation="softmax"), "activation"),
    (dict(solver="lbfgs"), "solver"),
    (dict(alpha=-1.0), "alpha"),
    (dict(batch_size=0), "batch_size"),
    (dict(learning_rate_init=0.0), "learning_rate_init"),
    (dict(max_iter=0), "max_iter"),
    (dict(tol=-1e-3), "tol"),
    (dict(momentum=1.0), "momentum"),
    (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(n_iter_no_change=0), "n_iter_no_change"),
    (dict(keep_prob=0.0), "keep_prob"),
    (dict(keep_prob=1.5), "keep_prob"),
    (dict(keep_prob=(1.0, 0.5, 0.5)), "keep_prob"),     # 2 dense layers, 3 entries
    (dict(keep_prob=(1.0, 0.0)), r"keep_prob\[1\]"),
    (dict(keep_prob="lean"), "keep_prob"),
    (dict(keep_prob=("learn", "learn", "learn")), "keep_prob"),   # 2 dense layers, 3 entries
    (dict(keep_prob="learn", init_keep_prob=1.0), "init_keep_prob"),
    (dict(keep_prob="learn", init_keep_prob=0.0), "init_keep_prob"),
    (dict(keep_prob="learn", temperature=0.0), "temperature"),
    (dict(keep_prob="learn", temperature=np.inf), "temperature"),
    (dict(keep_prob="learn", lengthscale=-1e-2), "lengthscale"),
    (dict(lengthscale="1e-2"), "lengthscale"),   # checked whatever keep_prob: the parameter is wrong
    (dict(max_norm=0.0), "max_norm"),
    (dict(dtype="float16"), "dtype"),
    (dict(shuffle="yes"), "shuffle"),
    (dict(random_state="seed"), "random_state"),
    (dict(learning_rate="cosine"), "learning_rate"),
    (dict(power_t=-1.0), "power_t"),
    (dict(nesterovs_momentum="yes"), "nesterovs_momentum"),
    (dict(beta_1=1.0), "beta_1"),
    (dict(beta_2=-0.5), "beta_2"),
    (dict(epsilon=0.0), "epsilon"),
    (dict(max_fun=0), "max_fun"),
])
@pytest.mark.parametrize("cls", [DropoutMLPClassifier, DropoutMLPRegressor])
def test_bad_parameter_named_at_fit(cls, params, name):
    est = cls(**{"hidden_layer_sizes": (4,), **params})  # construction never checks
    X, y = blobs(n=40)
    with pytest.raises(ValueError, match=name):
        est.fit(X, y)


def test_keep_prob_entry_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match=r"keep_prob\[0\]"):
        DropoutMLPClassifier((4,), keep_prob=("high", 0.5)).fit(*blobs(n=40))


def test_early_stopping_refused_by_partial_fit():
    X, y = blobs(n=40)
    with pytest.raises(ValueError, match="early_stopping"):
        DropoutMLPClassifier((4,), early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


def test_one_class_is_refused():
    X, _ = blobs(n=40)
    with pytest.raises(ValueError, match="1 class"):
        DropoutMLPClassifier((4,)).fit(X, np.zeros(40))


# ------------------------------------------------------------ learned keep_prob (Concrete dropout)

def _heteroscedastic(n, seed):
    """y = sin(3x) plus noise of std 0.1 for x <= 0 and 0.5 for x > 0: (X, y, noise std)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 1))
    sigma = np.where(X[:, 0] > 0, 0.5, 0.1)
    return X, np.sin(3 * X[:, 0]) + sigma * rng.standard_normal(n), sigma


def test_learned_keep_prob_moves_from_its_initial_value_and_is_reported():
    X, y = blobs()
    clf = DropoutMLPClassifier((16, 16), keep_prob="learn", max_iter=30, learning_rate_init=0.01,
                               n_iter_no_change=np.inf, random_state=0).fit(X, y)
    assert clf._net.keep_prob == ["learn"] * 3    # every layer, the features' included
    assert isinstance(clf.keep_prob_, np.ndarray) and clf.keep_prob_.shape == (clf.n_layers_ - 1,)
    assert ((clf.keep_prob_ > 0) & (clf.keep_prob_ < 1)).all()
    assert np.abs(clf.keep_prob_ - 0.9).min() > 0.01    # each layer learned: none is still at init_keep_prob
    np.testing.assert_array_equal(clf.keep_prob_, clf._net.keep_prob_)


def test_keep_prob_curve_records_every_epoch_and_keep_prob_is_the_kept_epochs():
    X, y = blobs()
    clf = DropoutMLPClassifier((16,), keep_prob=(1.0, "learn"), max_iter=40, learning_rate_init=0.3,
                               n_iter_no_change=np.inf, random_state=0).fit(X, y)
    curve = np.array(clf.keep_prob_curve_)
    assert curve.shape == (len(clf.loss_curve_), 2) == (40, 2)
    np.testing.assert_array_equal(curve[:, 0], 1.0)     # the fixed layer stays where it was put
    assert curve[0, 1] != curve[-1, 1]
    # the stopping rule keeps the weights of the lowest J, and with them that epoch's keep_prob
    best = int(np.argmin(clf.cost_curve_))
    assert best < 35    # well before the last epoch, so the test can tell
    np.testing.assert_array_equal(clf.keep_prob_, curve[best])


def test_keep_prob_is_the_fixed_values_and_no_curve_without_learning():
    X, y = blobs(n=60)
    clf = DropoutMLPClassifier((8, 8), keep_prob=0.6, max_iter=2).fit(X, y)
    np.testing.assert_array_equal(clf.keep_prob_, [1.0, 0.6, 0.6])
    assert clf.keep_prob_curve_ is None


def test_mixed_per_layer_list_learns_only_its_learn_entries():
    X, y = blobs()
    clf = DropoutMLPClassifier((16, 16), keep_prob=(1.0, "learn", 0.5), max_iter=20, learning_rate_init=0.01,
                               n_iter_no_change=np.inf, random_state=0).fit(X, y)
    assert clf._net.keep_prob == [1.0, "learn", 0.5]
    assert clf.keep_prob_[0] == 1.0 and clf.keep_prob_[2] == 0.5 and abs(clf.keep_prob_[1] - 0.9) > 0.01


def test_concrete_settings_reach_the_network():
    X, y = blobs(n=60)
    # steps of 1e-300 leave every parameter, p_logit included, where it started
    reg = DropoutMLPRegressor((8,), keep_prob="learn", init_keep_prob=0.7, temperature=0.25, lengthscale=0.05,
                              solver="sgd", momentum=0.0, learning_rate_init=1e-300, max_iter=1).fit(X, y)
    net = reg._net
    assert (net.init_keep_prob, net.temperature, net.lengthscale) == (0.7, 0.25, 0.05)
    np.testing.assert_allclose(reg.keep_prob_, 0.7, rtol=1e-12)


def test_lengthscale_enters_the_cost():
    """The prior's weight term l^2 / (2N) ||W||^2 / keep_prob is in the
    cost J the stopping rule watches: a larger l, a larger J on the same
    weights (one step of 1e-300 leaves them as initialised)."""
    X, y = blobs(n=60)
    costs = [DropoutMLPClassifier((8,), keep_prob="learn", lengthscale=l, solver="sgd", momentum=0.0,
                                  learning_rate_init=1e-300, max_iter=1, random_state=0).fit(X, y).cost_curve_[0]
             for l in (1e-2, 1.0)]
    assert costs[1] > costs[0] + 1e-3


def test_warm_start_goes_on_learning_keep_prob():
    X, y = blobs()
    kwargs = dict(hidden_layer_sizes=(16,), keep_prob="learn", n_iter_no_change=np.inf, random_state=0,
                  shuffle=False)
    warm = DropoutMLPClassifier(max_iter=4, warm_start=True, **kwargs).fit(X, y).fit(X, y)
    straight = DropoutMLPClassifier(max_iter=8, **kwargs).fit(X, y)
    np.testing.assert_array_equal(warm.keep_prob_, straight.keep_prob_)
    np.testing.assert_array_equal(np.array(warm.keep_prob_curve_), np.array(straight.keep_prob_curve_))
    for name, value in (("lengthscale", 0.1), ("temperature", 0.5), ("init_keep_prob", 0.5),
                        ("keep_prob", (1.0, "learn"))):
        changed = pickle.loads(pickle.dumps(warm)).set_params(**{name: value})   # a fitted copy
        with pytest.raises(ValueError, match=f"{name} changed"):
            changed.fit(X, y)


def test_settings_of_learned_layers_may_change_when_nothing_learns():
    X, y = blobs()
    clf = DropoutMLPClassifier((16,), keep_prob=0.8, max_iter=2, warm_start=True, random_state=0).fit(X, y)
    clf.set_params(lengthscale=1.0, temperature=0.5).fit(X, y)    # read by nothing: no refusal
    assert len(clf.loss_curve_) == 4


def test_partial_fit_records_keep_prob_after_each_pass():
    X, y = blobs()
    clf = DropoutMLPClassifier((16,), keep_prob="learn", learning_rate_init=0.01, random_state=0)
    for _ in range(3):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert len(clf.keep_prob_curve_) == 3
    np.testing.assert_array_equal(clf.keep_prob_, clf.keep_prob_curve_[-1])


def test_clone_and_get_params_round_trip_the_concrete_settings():
    params = dict(hidden_layer_sizes=(7, 5), keep_prob=(1.0, "learn", "learn"), init_keep_prob=0.8,
                  temperature=0.2, lengthscale=1e-3, loss="gaussian_nll")
    reg = DropoutMLPRegressor(**params)
    assert {k: reg.get_params()[k] for k in params} == params
    twin = clone(reg.fit(*_heteroscedastic(60, 0)[:2]))
    assert twin.get_params() == reg.get_params() and not hasattr(twin, "keep_prob_")
    twin.set_params(keep_prob="learn", lengthscale=0.5)
    assert (twin.keep_prob, twin.lengthscale) == ("learn", 0.5)


def test_grid_search_compares_learned_and_fixed_keep_prob():
    X, y = blobs()
    base = DropoutMLPClassifier((16,), max_iter=10, n_iter_no_change=np.inf, random_state=0)
    search = GridSearchCV(base, {"keep_prob": [0.8, "learn"], "lengthscale": [1e-2, 1e-1]}, cv=2).fit(X, y)
    assert [p["keep_prob"] for p in search.cv_results_["params"]] == [0.8, 0.8, "learn", "learn"]
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_pickled_learned_gaussian_regressor_predicts_and_trains_on_like_the_original():
    X, y, _ = _heteroscedastic(200, 0)
    reg = DropoutMLPRegressor((16,), keep_prob="learn", loss="gaussian_nll", max_iter=5, random_state=0).fit(X, y)
    copy = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(copy.keep_prob_, reg.keep_prob_)
    # the mask generator travels at its position: the same MC passes on both
    for a, b in zip(copy.predict(X, return_std=True, mc_samples=20), reg.predict(X, return_std=True, mc_samples=20)):
        np.testing.assert_array_equal(a, b)
    for est in (reg, copy):
        est.partial_fit(X, y)
    np.testing.assert_array_equal(copy.keep_prob_, reg.keep_prob_)
    np.testing.assert_array_equal(copy.coefs_[-1], reg.coefs_[-1])


# ------------------------------------------------------------ the Gaussian output (loss="gaussian_nll")

def test_gaussian_output_has_a_mean_and_a_log_variance_unit_per_target():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (200, 3))
    Y = np.column_stack([X[:, 0], X[:, 1] * X[:, 2]])
    reg = DropoutMLPRegressor((16,), loss="gaussian_nll", max_iter=5, random_state=0).fit(X, Y)
    assert reg.n_outputs_ == 2 and reg.coefs_[-1].shape == (16, 4) and reg.out_activation_ == "gaussian"
    assert reg.predict(X).shape == (200, 2)
    mean, std = reg.predict(X, return_std=True, mc_samples=10)
    assert mean.shape == std.shape == (200, 2) and mean.dtype == std.dtype == np.float64
    assert (std > 0).all() and np.isfinite(std).all()
    one = DropoutMLPRegressor((16,), loss="gaussian_nll", max_iter=5, random_state=0).fit(X, Y[:, 0])
    assert one.predict(X).shape == (200,) and one.predict(X, return_std=True, mc_samples=3)[1].shape == (200,)


def test_gaussian_std_without_dropout_is_the_learned_noise():
    """keep_prob=1.0: every pass is the same network, so the predictive std
    is the learned noise alone, sqrt(exp(log-variance unit)), recomputed
    here by hand from coefs_ and intercepts_."""
    X, y, _ = _heteroscedastic(300, 0)
    reg = DropoutMLPRegressor((16, 16), keep_prob=1.0, loss="gaussian_nll", max_iter=20, random_state=0).fit(X, y)
    hidden = X
    for W, b in zip(reg.coefs_[:-1], reg.intercepts_[:-1]):
        hidden = np.maximum(hidden @ W + b, 0)
    out = hidden @ reg.coefs_[-1] + reg.intercepts_[-1]
    mean, std = reg.predict(X, return_std=True, mc_samples=5)
    np.testing.assert_allclose(mean, out[:, 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(std, np.exp(0.5 * out[:, 1]), rtol=1e-10)
    np.testing.assert_allclose(reg.predict(X), out[:, 0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("keep_prob", ["learn", 1.0])
def test_gaussian_std_is_calibrated_where_the_noise_differs(keep_prob):
    """On y = sin(3x) with noise std 0.1 (x <= 0) and 0.5 (x > 0), the
    interval mean ± 2 std holds about 95% of fresh targets on each side: the
    learned std follows the noise. A std the same for every x (a fixed tau)
    would cover far more than 95% on the quiet side and less on the noisy one."""
    X, y, _ = _heteroscedastic(1000, 0)
    X_test, y_test, sigma = _heteroscedastic(4000, 1)
    reg = DropoutMLPRegressor((32, 32), keep_prob=keep_prob, loss="gaussian_nll", alpha=0.0, learning_rate_init=1e-2,
                              batch_size=100, max_iter=200, n_iter_no_change=np.inf, random_state=0).fit(X, y)
    mean, std = reg.predict(X_test, return_std=True, mc_samples=100)
    inside = np.abs(y_test - mean) <= 2 * std
    # nominal 0.954; the binomial SE of 2000 targets is 0.005, the rest is the fit's error
    for side in (sigma == 0.1, sigma == 0.5):
        assert 0.92 <= inside[side].mean() <= 0.99
    quiet, noisy = std[sigma == 0.1].mean(), std[sigma == 0.5].mean()
    assert 0.08 < quiet < 0.16 and 0.4 < noisy < 0.6


def test_gaussian_output_refuses_tau():
    X, y, _ = _heteroscedastic(60, 0)
    reg = DropoutMLPRegressor((4,), loss="gaussian_nll", max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="tau=2.0 is not taken with loss='gaussian_nll'"):
        reg.predict(X, return_std=True, tau=2.0)


def test_return_std_with_learned_keep_prob_and_squared_error_needs_tau():
    X, y, _ = _heteroscedastic(60, 0)
    reg = DropoutMLPRegressor((4,), keep_prob="learn", max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="needs tau .* when keep_prob is learned"):
        reg.predict(X, return_std=True)
    mean, std = reg.predict(X, return_std=True, tau=4.0, mc_samples=10)
    assert (std >= 0.5).all()   # the noise 1 / tau alone is a variance of 0.25


def test_changing_loss_is_refused_by_warm_start():
    X, y, _ = _heteroscedastic(60, 0)
    reg = DropoutMLPRegressor((4,), max_iter=2, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="loss changed"):
        reg.set_params(loss="gaussian_nll").fit(X, y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_warm_start_takes_the_same_dtype_however_spelled_and_refuses_another():
    X, y, _ = _heteroscedastic(60, 0)
    reg = DropoutMLPRegressor((4,), dtype="float32", max_iter=2, warm_start=True, random_state=0).fit(X, y)
    net = reg._net
    for same in (np.float32, np.dtype("float32")):
        reg.set_params(dtype=same).fit(X, y)
        assert reg._net is net   # the same network went on
    with pytest.raises(ValueError, match="dtype changed from 'float32' to 'float64'"):
        reg.set_params(dtype=np.float64).fit(X, y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("keep_prob, learns", [(np.array(0.5), False), (np.array("learn"), True)])
def test_a_0d_array_keep_prob_is_its_value(keep_prob, learns):
    X, y, _ = _heteroscedastic(60, 0)
    reg = DropoutMLPRegressor((4,), keep_prob=keep_prob, max_iter=2, random_state=0).fit(X, y)
    plain = DropoutMLPRegressor((4,), keep_prob=keep_prob.item(), max_iter=2, random_state=0).fit(X, y)
    np.testing.assert_array_equal(reg.keep_prob_, plain.keep_prob_)
    np.testing.assert_array_equal(reg.predict(X), plain.predict(X))
    assert (reg.keep_prob_curve_ is not None) == learns


def test_unknown_loss_is_named():
    with pytest.raises(ValueError, match="loss"):
        DropoutMLPRegressor((4,), loss="gaussian").fit(*_heteroscedastic(40, 0)[:2])


# ------------------------------------------------------------ a drop-in for scikit-learn's MLP

SKLEARN_TWINS = [(MLPClassifier, DropoutMLPClassifier), (MLPRegressor, DropoutMLPRegressor)]


@pytest.mark.parametrize("sk_cls, cls", SKLEARN_TWINS)
def test_constructs_and_fits_from_scikit_learns_parameters(sk_cls, cls):
    params = sk_cls().get_params()
    est = cls(**params)
    # every parameter of scikit-learn's MLP, with its default
    assert {name: est.get_params()[name] for name in params} == params
    X, y = blobs(n=60)
    est.set_params(max_iter=3).fit(X, y).predict(X)
    assert clone(est).get_params() == est.get_params()


@pytest.mark.parametrize("cls", [DropoutMLPClassifier, DropoutMLPRegressor])
def test_lbfgs_is_refused_saying_why(cls):
    with pytest.raises(ValueError, match="solver='lbfgs' is not supported: L-BFGS"):
        cls((4,), solver="lbfgs").fit(*blobs(n=40))
    assert not hasattr(cls((4,), solver="lbfgs"), "coefs_")


def test_poisson_loss_is_refused_saying_why():
    with pytest.raises(ValueError, match="loss='poisson' is not supported"):
        DropoutMLPRegressor((4,), loss="poisson").fit(*blobs(n=40))


def _regression(n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    return X, np.tanh(X @ rng.standard_normal(5)) + 0.1 * rng.standard_normal(n)


def _sparse_blobs():
    sparse = pytest.importorskip("scipy.sparse")
    X, y = blobs(n=240)
    return sparse.csr_matrix(np.where(np.abs(X) > 2, X, 0)), y


# (data, scikit-learn parameters) fitted by both with n_iter_no_change=inf
SAME_AS_SKLEARN = {
    "adam, binary": (lambda: (blobs(n=240)[0], blobs(n=240)[1] > 0), dict(max_iter=15)),
    "adam, multiclass, tanh, batch 32": (blobs, dict(max_iter=8, activation="tanh", batch_size=32)),
    "adam, betas and epsilon": (_regression, dict(max_iter=15, beta_1=0.8, beta_2=0.99, epsilon=1e-3)),
    "sgd, nesterov": (blobs, dict(max_iter=15, solver="sgd", learning_rate_init=0.01, activation="logistic")),
    "sgd, classical momentum": (_regression, dict(max_iter=15, solver="sgd", nesterovs_momentum=False,
                                                  learning_rate_init=0.01, alpha=0.1)),
    "sgd, invscaling": (blobs, dict(max_iter=15, solver="sgd", learning_rate="invscaling",
                                    learning_rate_init=0.5, power_t=0.3, momentum=0.0)),
    # scikit-learn stratifies the hold-out of two classes only
    "early_stopping split": (lambda: (blobs()[0], blobs()[1] > 0),
                             dict(max_iter=15, early_stopping=True, validation_fraction=0.2, learning_rate_init=0.01)),
    "sparse X": (_sparse_blobs, dict(max_iter=10, activation="identity", batch_size=50)),
}


@pytest.mark.parametrize("case", list(SAME_AS_SKLEARN))
def test_trains_the_model_of_scikit_learns_mlp_at_keep_prob_1(case):
    """The same random_state gives scikit-learn's initial weights and
    shuffles, and the same loss, L2 term, batches and updates give its model
    (to rounding) and its counters."""
    make_data, params = SAME_AS_SKLEARN[case]
    X, y = make_data()
    regression = y.dtype.kind == "f"
    sk_cls, cls = SKLEARN_TWINS[1] if regression else SKLEARN_TWINS[0]
    params = dict(hidden_layer_sizes=(12, 7), random_state=3, n_iter_no_change=np.inf, **params)
    ours = cls(keep_prob=1.0, **params).fit(X, y)
    theirs = sk_cls(**params).fit(X, y)
    assert (ours.n_iter_, ours.t_, ours.n_layers_, ours.n_outputs_, ours.out_activation_) == \
        (theirs.n_iter_, theirs.t_, theirs.n_layers_, theirs.n_outputs_, theirs.out_activation_)
    if params.get("early_stopping"):
        # the same hold-out and training: the same score every epoch (the
        # weights kept differ: the lowest held-out loss here, the best score there)
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=0, atol=1e-12)
        return
    for mine, reference in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(mine, reference, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.predict_proba(X) if not regression else ours.predict(X),
                               theirs.predict_proba(X) if not regression else theirs.predict(X), atol=1e-12)


def test_initial_weights_are_scikit_learns_for_every_activation_whatever_keep_prob():
    X, y = blobs(n=60)
    for activation, factor in [("relu", 6), ("tanh", 6), ("identity", 6), ("logistic", 2)]:
        # scikit-learn's _init_coef from RandomState(random_state), layer after layer
        rs = np.random.RandomState(5)
        expected = []
        for n_in, n_out in [(6, 9), (9, 3)]:
            limit = np.sqrt(factor / (n_in + n_out))
            expected += [rs.uniform(-limit, limit, (n_in, n_out)), rs.uniform(-limit, limit, n_out)]
        for keep_prob in (1.0, 0.5):
            # steps of 1e-300 leave every weight as it was drawn
            est = DropoutMLPClassifier((9,), activation=activation, keep_prob=keep_prob, solver="sgd", momentum=0.0,
                                       learning_rate_init=1e-300, max_iter=1, random_state=5).fit(X, y)
            got = [a for pair in zip(est.coefs_, est.intercepts_) for a in pair]
            for a, b in zip(got, expected):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("power_t", [0.5, 0.25])
def test_invscaling_rate_is_scikit_learns_after_every_epoch(power_t):
    X, y = blobs(n=150)
    params = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate="invscaling", learning_rate_init=0.1,
                  power_t=power_t, max_iter=6, n_iter_no_change=np.inf, random_state=0)
    ours = DropoutMLPClassifier(keep_prob=1.0, **params).fit(X, y)
    theirs = MLPClassifier(**params).fit(X, y)
    # effective_learning_rate = learning_rate_init / (t + 1) ** power_t, t the samples seen
    assert ours.t_ == 6 * 150
    assert ours._net._training.optimizer.learning_rate == pytest.approx(0.1 / (6 * 150 + 1) ** power_t, rel=1e-15)
    assert ours._net._training.optimizer.learning_rate == pytest.approx(theirs._optimizer.learning_rate, rel=1e-15)
    ours.partial_fit(X[:50], y[:50])   # goes on from the samples seen, as scikit-learn's partial_fit
    assert ours._net._training.optimizer.learning_rate == pytest.approx(0.1 / (6 * 150 + 50 + 1) ** power_t, rel=1e-15)


def test_adaptive_rate_is_divided_by_five_where_scikit_learns_is():
    X, y = _regression()
    # tol = 1e9: no epoch improves, so both rules see a plateau every
    # n_iter_no_change + 1 epochs after the first
    params = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate="adaptive", learning_rate_init=1e-3,
                  n_iter_no_change=1, tol=1e9, max_iter=100, random_state=0)
    ours = DropoutMLPRegressor(keep_prob=1.0, **params).fit(X, y)
    theirs = MLPRegressor(**params).fit(X, y)
    # divided by 5 at five plateaus, the rate 3.2e-7 <= 1e-6 at the sixth: stop
    assert ours.n_iter_ == theirs.n_iter_ == 13
    assert ours._net._training.optimizer.learning_rate == pytest.approx(1e-3 / 5**5, rel=1e-12)
    assert ours._net._training.optimizer.learning_rate == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)


def test_learning_rate_schedule_is_for_sgd_only_as_in_scikit_learn():
    X, y = blobs(n=60)
    adam = DropoutMLPClassifier((4,), learning_rate="invscaling", max_iter=3, n_iter_no_change=np.inf).fit(X, y)
    assert adam._net._training.optimizer.schedule == "constant" and adam._net._training.optimizer.learning_rate == 1e-3


def test_sparse_X_trains_and_predicts_as_its_dense_copy():
    Xs, y = _sparse_blobs()
    for fmt in ("csr", "csc", "coo"):
        kwargs = dict(hidden_layer_sizes=(8,), keep_prob=0.8, max_iter=5, random_state=0)
        sparse_fit = DropoutMLPClassifier(**kwargs).fit(Xs.asformat(fmt), y)
        dense_fit = DropoutMLPClassifier(**kwargs).fit(Xs.toarray(), y)
        for a, b in zip(sparse_fit.coefs_, dense_fit.coefs_):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(sparse_fit.predict_proba(Xs.asformat(fmt)), dense_fit.predict_proba(Xs.toarray()))
    reg = DropoutMLPRegressor((8,), keep_prob=0.9, max_iter=3, random_state=0).fit(Xs, y.astype(float))
    mean, std = reg.predict(Xs, return_std=True, mc_samples=4)
    assert mean.shape == std.shape == (Xs.shape[0],)


def test_t_counts_samples_and_n_iter_epochs_as_scikit_learn():
    X, y = blobs(n=150)
    for cls in (DropoutMLPClassifier, MLPClassifier):
        est = cls((8,), max_iter=4, n_iter_no_change=np.inf, random_state=0, warm_start=True).fit(X, y)
        assert (est.n_iter_, est.t_) == (4, 600)
        est.fit(X, y)          # warm start: t_ goes on, n_iter_ counts this fit
        assert (est.n_iter_, est.t_, len(est.loss_curve_)) == (4, 1200, 8)
        est.partial_fit(X[:70], y[:70])
        assert (est.n_iter_, est.t_, len(est.loss_curve_)) == (1, 1270, 9)
        est = cls((8,), max_iter=3, n_iter_no_change=np.inf, early_stopping=True, validation_fraction=0.2,
                  random_state=0).fit(X, y)
        assert est.t_ == 3 * 120    # the rows left for training


# ------------------------------------------------------------ optional dependency

def test_import_cydrop_does_not_import_sklearn():
    code = ("import sys, cydrop, cydrop.apps.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'dask', 'distributed')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


# ------------------------------------------------------------ conformance

def test_sample_weight_weights_the_loss():
    X, y = blobs()
    kwargs = dict(hidden_layer_sizes=(16,), max_iter=30, learning_rate_init=0.01, n_iter_no_change=np.inf,
                  random_state=0)
    plain = DropoutMLPClassifier(**kwargs).fit(X, y)
    ones = DropoutMLPClassifier(**kwargs).fit(X, y, sample_weight=np.ones(len(y)))
    for W1, W2 in zip(plain.coefs_, ones.coefs_):
        np.testing.assert_array_equal(W1, W2)  # all-ones weights are no weights, to the bit
    w = np.where(y == 0, 10.0, 0.1)
    weighted = DropoutMLPClassifier(**kwargs).fit(X, y, sample_weight=w)
    assert not np.array_equal(weighted.coefs_[0], plain.coefs_[0])
    # class 0 counts a hundred times more: it is given more probability
    assert weighted.predict_proba(X)[:, 0].mean() > plain.predict_proba(X)[:, 0].mean() + 0.05
    reg = DropoutMLPRegressor(**kwargs).fit(X, X[:, 0], sample_weight=w)
    assert np.isfinite(reg.predict(X)).all()


@pytest.mark.parametrize("held_out", [True, False])
def test_early_stopping_names_sample_weight_when_a_part_of_the_split_weighs_nothing(held_out, monkeypatch):
    import cydrop.sklearn as cs
    from sklearn.model_selection import train_test_split

    # an unshuffled split: the last 10 of 100 rows are held out
    monkeypatch.setattr(cs, "train_test_split", lambda *arrays, test_size, random_state, stratify:
                        train_test_split(*arrays, test_size=test_size, shuffle=False))
    X, y = blobs(n=100)
    w = np.ones(100)
    if held_out:
        w[90:] = 0
    else:
        w[:90] = 0
    part = "held out for early_stopping" if held_out else "left to train on"
    with pytest.raises(ValueError, match=f"sample_weight: the rows {part} .* have weights summing to 0"):
        DropoutMLPRegressor((8,), early_stopping=True, max_iter=3, random_state=0).fit(X, X[:, 0], sample_weight=w)


@pytest.mark.parametrize("y, validation_fraction", [
    (np.r_[np.zeros(50, int), np.ones(49, int), [2]], 0.1),   # a class of one sample
    (np.arange(100) % 3, 0.02),                               # 2 rows held out, 3 classes
], ids=["singleton class", "fewer held-out rows than classes"])
def test_early_stopping_splits_unstratified_where_no_stratified_split_exists(y, validation_fraction):
    # scikit-learn's MLPClassifier fits these (it does not stratify 3 classes)
    X = np.random.default_rng(0).standard_normal((100, 3))
    clf = DropoutMLPClassifier((4,), early_stopping=True, validation_fraction=validation_fraction, max_iter=3,
                               random_state=0).fit(X, y)
    assert clf.classes_.tolist() == [0, 1, 2] and len(clf.validation_scores_) == 3


def test_zero_weights_are_removed_samples_in_partial_fit_too():
    X, y = blobs(n=200)
    w = (np.arange(200) % 2).astype(float)
    a = DropoutMLPRegressor((8,), keep_prob=1.0, batch_size=200, random_state=0)
    b = DropoutMLPRegressor((8,), keep_prob=1.0, batch_size=100, random_state=0)
    a.partial_fit(X, X[:, 0], sample_weight=w)
    b.partial_fit(X[w == 1], X[w == 1, 0])  # one full batch each: the same gradient
    np.testing.assert_allclose(a.coefs_[0], b.coefs_[0], rtol=1e-6, atol=1e-9)


def test_sample_weight_through_metadata_routing():
    import sklearn
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = blobs()
    w = np.where(y == 0, 10.0, 0.1)
    with sklearn.config_context(enable_metadata_routing=True):
        clf = DropoutMLPClassifier((16,), max_iter=10, n_iter_no_change=np.inf, random_state=0)
        clf.set_fit_request(sample_weight=True).set_score_request(sample_weight=False)
        pipe = make_pipeline(StandardScaler().set_fit_request(sample_weight=False), clf)
        routed = pipe.fit(X, y, sample_weight=w)[-1]
        direct = clone(clf).fit(StandardScaler().fit_transform(X), y, sample_weight=w)
        np.testing.assert_array_equal(routed.coefs_[0], direct.coefs_[0])
        cv = StratifiedKFold(3, shuffle=True, random_state=0)
        weighted = cross_val_score(clf, X, y, cv=cv, params={"sample_weight": w})
        unweighted = cross_val_score(clf, X, y, cv=cv)
    assert not np.allclose(weighted, unweighted)  # the weights reached fit


def test_predict_log_proba():
    X, y = blobs()
    clf = DropoutMLPClassifier((16,), max_iter=5, random_state=0).fit(X, y)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(clf.predict_proba(X)), rtol=1e-12)
    binary = DropoutMLPClassifier((16,), max_iter=5, random_state=0).fit(X, y == 0)
    assert binary.predict_log_proba(X).shape == (len(X), 2)


@pytest.mark.parametrize("X_dtype, dtype, expected", [
    (np.float64, None, np.float64), (np.float32, None, np.float32), (np.int64, None, np.float64),
    (np.float64, "float32", np.float32), (np.float32, np.dtype("float64"), np.float64), (np.float32, "f8", np.float64),
])
def test_dtype_follows_the_input_as_scikit_learns_mlp(X_dtype, dtype, expected):
    X, y = blobs(n=60)
    X = (X * 10).astype(X_dtype)
    clf = DropoutMLPClassifier((4,), max_iter=2, dtype=dtype, random_state=0).fit(X, y)
    assert clf.coefs_[0].dtype == expected and clf._net.dtype == expected


def test_bad_dtype_is_named():
    X, y = blobs(n=30)
    with pytest.raises(ValueError, match="dtype must be None, float32 or float64"):
        DropoutMLPClassifier((4,), dtype="f2").fit(X, y)


def test_regressor_r2_is_scikit_learns_uniform_average():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3))
    Y = np.column_stack([1000 * X[:, 0], 0.01 * rng.standard_normal(300)])
    reg = DropoutMLPRegressor((16,), keep_prob=1.0, max_iter=30, early_stopping=True, random_state=0).fit(X, Y)
    assert reg.score(X, Y) == pytest.approx(r2_score(Y, reg.predict(X)), rel=1e-9)
    # the recorded validation scores are the same R^2 (not variance-weighted):
    # the hold-out is re-made from the same random_state draws as fit made it
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state

    rs = check_random_state(0)
    rs.uniform(size=3 * 16 + 16 + 16 * 2 + 2)  # fit's first draws: the initial weights and biases
    _, X_val, _, Y_val = train_test_split(X, Y, test_size=0.1, random_state=rs)
    assert reg.best_validation_score_ == pytest.approx(r2_score(Y_val, reg.predict(X_val)), rel=1e-6)


@pytest.mark.parametrize("y", [np.c_[np.arange(20) % 2, np.arange(20) % 3 == 0],          # multilabel
                               np.c_[np.arange(20) % 3, np.arange(20) % 2]])              # multiclass-multioutput
def test_classifier_refuses_more_than_one_label_per_row_naming_it(y):
    X = np.random.default_rng(0).standard_normal((20, 3))
    with pytest.raises(ValueError, match=r"y must hold one label per row .* got shape \(20, 2\): multilabel"):
        DropoutMLPClassifier((4,), max_iter=2).fit(X, y.astype(int))


def test_partial_fit_names_classes_when_they_hold_one_class():
    X = np.random.default_rng(0).standard_normal((20, 3))
    with pytest.raises(ValueError, match=r"^classes has 1 class"):
        DropoutMLPClassifier((4,)).partial_fit(X, np.zeros(20, int), classes=[0])
