"""scikit-learn estimators on :class:`cydrop.MLP`: dropout with per-layer keep_prob.

scikit-learn's own ``MLPClassifier`` has no dropout (scikit-learn issue #6175,
PR #7407). ``DropoutMLPClassifier`` and ``DropoutMLPRegressor`` take all its
parameters (``DropoutMLPClassifier(**MLPClassifier().get_params())``
constructs; ``solver="lbfgs"`` is refused at fit), add ``keep_prob`` (a
float or one entry per dense layer, or ``"learn"``: Concrete dropout, the
rate learned by gradient descent, with ``init_keep_prob``, ``temperature``
and ``lengthscale``), ``max_norm``, ``dtype`` and ``eval_every``, and so
drop into ``GridSearchCV``, ``cross_validate``, pipelines and joblib's Dask
backend unchanged::

    from sklearn.model_selection import GridSearchCV
    from cydrop.sklearn import DropoutMLPClassifier

    search = GridSearchCV(DropoutMLPClassifier((256, 256), random_state=0),
                          {"keep_prob": [1.0, 0.8, 0.5, (0.8, 0.5, 0.5)]}, cv=3, n_jobs=2)
    search.fit(X, y).best_params_

At ``keep_prob=1.0`` they train as ``MLPClassifier`` / ``MLPRegressor`` do:
the same initial weights (scikit-learn's Glorot-uniform weights and biases,
drawn from ``random_state`` as scikit-learn draws them), the same shuffling,
loss, L2 term, mini-batches and update rules, so that a fit with an int
``random_state`` gives scikit-learn's model to rounding until the stopping
rule, which differs on purpose (see ``tol``), stops at another epoch.
``benchmarks/sklearn_parity.py`` compares the scores.

scikit-learn is an optional extra (``pip install "cydrop[sklearn]"``):
``import cydrop`` does not import this module.
"""
import math
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .mlp.network import LEARN, initial_params
from ._validation import check_bool, check_network_dtype, unwrap_0d
from .mlp import MLP

__all__ = ["DropoutMLPClassifier", "DropoutMLPRegressor"]

# scikit-learn's activation names -> cydrop's
_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_AUTO_BATCH = 200  # batch_size="auto" is min(200, n_samples), as in scikit-learn

_PARAMETERS = """
    Parameters
    ----------
    hidden_layer_sizes : int or array-like of int, default=(100,)
        Units of each hidden layer; ``()`` gives a network without hidden layers.
    activation : {"relu", "tanh", "logistic", "identity"}, default="relu"
        Hidden-layer activation (cydrop's ``relu``, ``tanh``, ``sigmoid``, ``linear``).
    solver : {"adam", "sgd"}, default="adam"
        ``"sgd"`` with ``momentum > 0`` is SGD with momentum (Nesterov's
        with ``nesterovs_momentum``). ``"lbfgs"``, scikit-learn's full-batch
        quasi-Newton solver, is refused at fit: it line-searches one fixed
        loss, while dropout draws new masks at every step.
    alpha : float >= 0, default=1e-4
        L2 penalty: ``loss + alpha / (2 * batch) * sum ||W||^2``, weights only.
    batch_size : int >= 1 or "auto", default="auto"
        ``"auto"`` is ``min(200, n_samples)`` (of the rows left for training
        by ``early_stopping``); larger sizes are clipped with a warning.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        The schedule of ``solver="sgd"`` (Adam ignores it, as in
        scikit-learn): "constant" keeps ``learning_rate_init``; "invscaling"
        sets the rate after every epoch to
        ``learning_rate_init / (t + 1) ** power_t``, ``t`` the samples
        trained on (``t_``); "adaptive" divides it by 5 each time the
        stopping rule would stop, and stops once it is at or below 1e-6.
    learning_rate_init : float > 0, default=1e-3
    power_t : float >= 0, default=0.5
        The exponent of "invscaling".
    max_iter : int >= 1, default=200
        Epochs of ``fit`` at most.
    shuffle : bool, default=True
        Shuffle the samples before every epoch (each epoch permutes the
        previous epoch's order, as scikit-learn's MLP).
    random_state : int, RandomState instance or None, default=None
        As in scikit-learn's MLP, draws the initial weights, then the
        early-stopping split, then every epoch's shuffling: with
        ``keep_prob=1.0`` and an int, the draws of ``MLPClassifier`` /
        ``MLPRegressor`` with that ``random_state``. The dropout masks are
        seeded from its state without drawing from it, so the weights and
        the shuffling do not depend on ``keep_prob``. ``warm_start`` and
        ``partial_fit`` go on with the same stream (scikit-learn starts it
        again on every call).
    tol : float >= 0, default=1e-4
        An evaluation improves when the monitored cost falls by more than
        ``tol``. The monitored cost is always measured with dropout off
        (the training loss under dropout jumps from epoch to epoch and
        decides nothing): the validation loss with ``early_stopping``, else
        the cost J on the whole training set (loss plus the L2 term), one
        extra forward pass per evaluation. (scikit-learn watches the mean
        training loss of the epoch, or the validation accuracy or R^2 with
        ``early_stopping``, and keeps the last weights without
        ``early_stopping``.)
    verbose : bool or int, default=False
        Print the loss (and validation score) of every epoch.
    warm_start : bool, default=False
        ``fit`` goes on from the previous solution (same classes/outputs).
    momentum : float in [0, 1), default=0.9
        For ``solver="sgd"``; 0 gives plain SGD.
    nesterovs_momentum : bool, default=True
        For ``solver="sgd"`` with ``momentum > 0``: Nesterov's momentum
        (``param += momentum * velocity - rate * grad`` after the velocity
        update), as scikit-learn's.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified for
        classifiers where it can be: not when a class has one sample, or a
        part fewer rows than there are classes; scikit-learn's MLP
        stratifies two classes only) and monitor its loss (dropout off)
        instead of J on the training set.
    validation_fraction : float in (0, 1), default=0.1
    beta_1, beta_2 : float in [0, 1), default=0.9, 0.999
        Adam's decay rates of the first and second moments.
    epsilon : float > 0, default=1e-8
        Adam's epsilon, as scikit-learn's: added to ``sqrt(v)`` before the
        bias correction (Kingma & Ba's "epsilon hat"; cydrop.MLP's
        ``eps_hat=True``).
    n_iter_no_change : int >= 1 or numpy.inf, default=10
        Training stops when more than ``n_iter_no_change`` evaluations in a
        row did not improve the monitored cost by ``tol`` (scikit-learn's
        count), and the weights of the best evaluation are kept, with or
        without ``early_stopping``. ``numpy.inf`` trains ``max_iter`` epochs
        and keeps the best weights, without a ``ConvergenceWarning`` (no
        convergence test was asked for).
    max_fun : int >= 1, default=15000
        Accepted for ``MLPClassifier``'s parameters; only its "lbfgs" solver
        reads it.
    keep_prob : float in (0, 1], "learn", or sequence of float or "learn", default=0.5
        Probability of keeping a unit. A float applies to every hidden layer's
        output (the input features keep 1.0); a sequence has one entry per
        dense layer, ``len(hidden_layer_sizes) + 1``: entry 0 for the input
        features, entry i for the output of hidden layer i. 1.0 turns dropout off.
        ``"learn"`` learns the keep probability of every layer, the input
        features' included, by gradient descent instead (Concrete dropout,
        Gal, Hron & Kendall 2017: a relaxed mask whose rate is a parameter,
        with a prior added to the cost, see ``lengthscale``); as an entry of
        a sequence it learns that layer's alone (``(1.0, "learn", "learn")``
        keeps every feature). The values in use after fit are
        ``keep_prob_``.
    init_keep_prob : float in (0, 1), default=0.9
        The keep probability a learned layer starts from (the reference
        code's drop probability 0.1). Read only where ``keep_prob`` learns.
    temperature : float > 0, default=0.1
        Of the relaxed mask of the learned layers: as it tends to 0 the mask
        tends to a Bernoulli one (0.1 is the reference's for dense layers).
        Read only where ``keep_prob`` learns.
    lengthscale : float > 0, default=1e-2
        The prior length-scale l of the learned layers' weights. For each
        learned layer the cost gains ``l^2 / (2 N) * ||W||^2 / keep_prob -
        K H(p) / N``: N the rows the call trains on (those left by
        ``early_stopping``; with ``partial_fit``, the rows given to
        ``partial_fit`` since the last ``fit``, this call's included: the
        stream so far), K the layer's
        input width, H(p) the entropy of its drop probability
        ``p = 1 - keep_prob`` (biases are not dropped, so not in the first
        term). ``alpha`` adds its L2 term on top (``alpha=0`` leaves the
        method's cost alone). Read only where ``keep_prob`` learns.
    max_norm : float > 0 or None, default=None
        Cap each unit's incoming weight vector at this L2 norm after every
        update (Srivastava et al. 2014).
    dtype : {"float32", "float64"} or None, default=None
        Precision of the weights and of the computation. None follows the
        input as scikit-learn's MLP does: float32 data in float32, anything
        else in float64.
    eval_every : int >= 1, default=1
        Epochs between two evaluations of the monitored cost; the patience
        ``n_iter_no_change`` counts evaluations.
"""

_ATTRIBUTES = """
    Attributes
    ----------
    coefs_ : list of ndarray (n_in, n_out)
        Weights of each dense layer (the network's own arrays).
    intercepts_ : list of ndarray (n_out,)
    loss_ : float
        Mean training loss of the last epoch (with dropout, without the L2 term).
    loss_curve_ : list of float
        Mean training loss of every epoch (with dropout).
    keep_prob_ : ndarray of float, one entry per dense layer
        The keep probability of each dense layer's input (entry 0: the
        features) after the last fit: the learned value of a layer whose
        ``keep_prob`` is ``"learn"``, the fixed one of the others.
    keep_prob_curve_ : list of ndarray, or None
        ``keep_prob_`` after every epoch (one entry per ``loss_curve_``
        entry) when some layer learns its keep_prob, else None.
    best_loss_ : float or None
        Lowest cost J (dropout off) of the evaluations (None with
        ``early_stopping``, and after ``partial_fit``).
    validation_scores_ : list of float or None
        Held-out score (accuracy or R^2, dropout off) of every evaluation
        with ``early_stopping``.
    cost_curve_ : list of float or None
        Cost J on the training set (dropout off) of every evaluation without
        ``early_stopping``: the monitored cost.
    validation_losses_ : list of float or None
        Held-out loss of every evaluation with ``early_stopping``: the
        monitored cost.
    best_validation_score_ : float or None
        Held-out score of the kept weights (those of the lowest held-out loss).
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``), as in scikit-learn.
    t_ : int
        Training samples seen since the network was built (over ``fit``
        with ``warm_start`` and ``partial_fit`` calls), as in scikit-learn:
        epochs times rows.
    n_layers_ : int
        Layers including input and output.
    n_outputs_ : int
    out_activation_ : str
        ``"softmax"``, ``"logistic"``, ``"identity"``, or ``"gaussian"``
        (``DropoutMLPRegressor(loss="gaussian_nll")``: identity for the
        means, ``exp`` of the log-variance units).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names (a pandas DataFrame).
"""

_REFERENCES = """
    References
    ----------
    Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov (2014), Dropout:
    a simple way to prevent neural networks from overfitting, JMLR 15.
"""


class _BaseDropoutMLP(BaseEstimator):
    """fit/partial_fit/predict shared by the classifier and the regressor.

    A thin face on :class:`cydrop.MLP`: ``fit`` is one call of ``MLP.fit``
    (the one training loop, with its stopping rule), ``partial_fit`` one of
    ``MLP.partial_fit`` (one pass over the given rows in mini-batches).
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_ACTIVATIONS))],
        # "lbfgs" passes here to be refused at fit with the reason (_refuse_unsupported)
        "solver": [StrOptions({"sgd", "adam", "lbfgs"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],  # MLP's momentum is < 1
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"), Options(numbers.Real, {np.inf})],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        # entries of a sequence are checked by MLP, which names keep_prob[i]
        "keep_prob": [Interval(numbers.Real, 0, 1, closed="right"), StrOptions({LEARN}), "array-like"],
        "init_keep_prob": [Interval(numbers.Real, 0, 1, closed="neither")],
        "temperature": [Interval(numbers.Real, 0, None, closed="neither")],
        "lengthscale": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_norm": [None, Interval(numbers.Real, 0, None, closed="neither")],
        # anything np.dtype reads as float32/float64; MLP names a wrong one
        "dtype": [None, str, type, np.dtype],
        "eval_every": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=1e-4,
                 batch_size="auto", learning_rate="constant", learning_rate_init=1e-3, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, keep_prob=0.5, init_keep_prob=0.9,
                 temperature=0.1, lengthscale=1e-2, max_norm=None, dtype=None, eval_every=1):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.keep_prob = keep_prob
        self.init_keep_prob = init_keep_prob
        self.temperature = temperature
        self.lengthscale = lengthscale
        self.max_norm = max_norm
        self.dtype = dtype
        self.eval_every = eval_every

    # ------------------------------------------------------------ subclass hooks

    def _check_targets(self, y, first_pass, classes=None):
        """Checks y; sets classes_ or n_outputs_ on the first pass."""
        raise NotImplementedError

    def _output(self):
        """(cydrop output name, number of output units) for the fitted targets."""
        raise NotImplementedError

    # ------------------------------------------------------------ fitting

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train for up to ``max_iter`` epochs, dropout on, stopping on a cost measured with dropout off.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        y : array-like (n_samples,) of class labels, one per row (classifier), or
            (n_samples,) / (n_samples, n_outputs) of values (regressor)
        sample_weight : array-like (n_samples,) or None
            Weights of the samples in the loss (``sum w_i l_i / sum w_i`` per
            batch), in the stopping rule's cost and in the scores.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            A bad parameter (named) or bad data.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
        for size in sizes:
            if isinstance(size, (bool, np.bool_)) or not isinstance(size, numbers.Integral) or size < 1:
                raise ValueError(f"hidden_layer_sizes must hold ints >= 1, got {self.hidden_layer_sizes!r}")
        return [int(size) for size in sizes]

    def _training_options(self):
        """Keyword arguments of MLP.fit / MLP.partial_fit for this estimator's solver settings."""
        if self.solver == "adam":
            optimizer = "adam"
        elif self.momentum == 0:
            optimizer = "sgd"
        else:
            optimizer = "nesterov" if self.nesterovs_momentum else "momentum"
        return dict(optimizer=optimizer, learning_rate=self.learning_rate_init, l2=self.alpha,
                    max_norm=self.max_norm, momentum=self.momentum, beta1=self.beta_1, beta2=self.beta_2,
                    eps=self.epsilon, eps_hat=True, schedule=self.learning_rate if self.solver == "sgd" else "constant",
                    power_t=self.power_t, shuffle=self._random_state if self.shuffle else False)

    def _refuse_unsupported(self):
        """Refuse what scikit-learn's MLP has and these estimators cannot do, saying why."""
        if self.solver == "lbfgs":
            raise ValueError("solver='lbfgs' is not supported: L-BFGS line-searches one fixed full-batch loss, "
                             "while dropout draws new masks at every step; use solver='adam' or 'sgd'")

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        first_pass = not hasattr(self, "_net") or not (self.warm_start or incremental)
        self._refuse_unsupported()
        if incremental and self.early_stopping:
            raise ValueError("early_stopping=True is not supported by partial_fit (one pass per call)")
        hidden = self._hidden_sizes()  # before the data: a bad parameter is named first
        if first_pass:
            dtype = check_network_dtype(self.dtype, allow_none=True) or (np.float64, np.float32)
        else:
            dtype = self._net.dtype
            self._check_same_network(hidden)
        regressor = isinstance(self, RegressorMixin)
        if not regressor:
            # scikit-learn's MLPClassifier takes multilabel y; its message here would only ask for 1-D
            # (asarray: np.shape would dispatch to an array-like's __array_function__)
            y_shape = np.asarray(y).shape
            if len(y_shape) == 2 and y_shape[1] != 1:
                raise ValueError(f"y must hold one label per row (binary or multiclass), got shape {y_shape}: "
                                 "multilabel and multioutput targets are not supported")
        # sparse X stays sparse: the network densifies one mini-batch at a time
        X, y = validate_data(self, X, y, reset=first_pass, dtype=dtype, order="C", accept_sparse=["csr", "csc"],
                             multi_output=regressor, y_numeric=regressor)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        self._check_targets(y, first_pass, classes)
        if first_pass:
            self._build_network(X, hidden)
        validation = None
        if self.early_stopping:
            X, y, sample_weight, validation = self._validation_split(X, y, sample_weight)
        batch_size = self._batch_size(X.shape[0])
        self._fit_rows = (X.shape[0], batch_size)  # N and the batch of the tau relation (return_std)
        if incremental:
            self.loss_ = self._net.partial_fit(X, y, batch_size=batch_size, sample_weight=sample_weight,
                                               **self._training_options())
            self.loss_curve_.append(self.loss_)
            self._record_keep_prob([self._net.keep_prob_])
            self.n_iter_ = 1  # as scikit-learn: the epochs of this call
            self.t_ += X.shape[0]
            self.best_loss_ = self.validation_scores_ = self.validation_losses_ = None
            self.best_validation_score_ = self.cost_curve_ = None
            return self
        # scikit-learn stops when the count of evaluations without
        # improvement exceeds n_iter_no_change: patience n_iter_no_change + 1
        patience = self.n_iter_no_change + 1
        history = self._net.fit(X, y, epochs=self.max_iter, batch_size=batch_size, sample_weight=sample_weight,
                                validation_data=validation, early_stopping=patience, tol=self.tol,
                                eval_every=self.eval_every, progress=False, verbose=bool(self.verbose),
                                **self._training_options())
        epochs = len(history["loss"])
        self.n_iter_ = epochs
        self.t_ += epochs * X.shape[0]
        self.loss_ = history["loss"][-1]
        self.loss_curve_ += history["loss"]
        self._record_keep_prob(history.get("keep_prob", []))
        if validation is not None:
            self.validation_scores_, self.validation_losses_ = history["val_score"], history["val_loss"]
            best = history["eval_epoch"].index(history["best_epoch"])
            self.best_validation_score_, self.best_loss_, self.cost_curve_ = history["val_score"][best], None, None
        else:
            self.validation_scores_ = self.validation_losses_ = self.best_validation_score_ = None
            self.cost_curve_, self.best_loss_ = history["cost"], min(history["cost"])
        if not history["stopped"] and self.n_iter_no_change != np.inf:
            warnings.warn(f"Maximum iterations ({self.max_iter}) reached and the optimization hasn't converged yet.",
                          ConvergenceWarning, stacklevel=3)
        return self

    def _build_network(self, X, hidden):
        """A new network for X's features and the fitted targets, with
        scikit-learn's initial weights drawn from random_state."""
        # scikit-learn draws from its RandomState the initial weights, the
        # early-stopping split and each epoch's shuffling, in that order;
        # drawing the same from the same stream gives the same model
        self._random_state = check_random_state(self.random_state)
        output, n_out = self._output()
        net = MLP([X.shape[1], *hidden, n_out], keep_prob=self.keep_prob, activation=_ACTIVATIONS[self.activation],
                  output=output, dtype=X.dtype, seed=_mask_seed(self._random_state), init="sklearn",
                  classes=self.classes_ if output in ("softmax", "sigmoid") else None,
                  init_keep_prob=self.init_keep_prob, temperature=self.temperature, lengthscale=self.lengthscale)
        weights, biases = initial_params(net.layer_sizes, net.activation, "sklearn", self._random_state, net.dtype)
        for param, initial in zip(net.weights + net.biases, weights + biases):
            param[...] = initial
        self._net, self._architecture = net, self._architecture_params(hidden)
        self.coefs_, self.intercepts_ = net.weights, net.biases  # the net's arrays, updated in place
        # a target's mean and log-variance units are one output
        self.n_layers_, self.n_outputs_ = len(net.layer_sizes), n_out // 2 if output == "gaussian" else n_out
        self.out_activation_ = {"softmax": "softmax", "sigmoid": "logistic", "linear": "identity",
                                "gaussian": "gaussian"}[output]
        self.loss_curve_, self.n_iter_, self.t_ = [], 0, 0
        self.keep_prob_ = np.array(net.keep_prob_, dtype=np.float64)
        self.keep_prob_curve_ = [] if _learns(_plain_keep_prob(self.keep_prob)) else None

    def _record_keep_prob(self, per_epoch):
        """keep_prob_ now, and the values of each epoch trained (``per_epoch``,
        empty when no layer learns) appended to keep_prob_curve_."""
        self.keep_prob_ = np.array(self._net.keep_prob_, dtype=np.float64)
        if self.keep_prob_curve_ is not None:
            self.keep_prob_curve_ += [np.array(values, dtype=np.float64) for values in per_epoch]

    def _architecture_params(self, hidden):
        """{name: value} of the parameters that define the network built from
        them: warm_start and partial_fit go on with it while they stay the same."""
        keep_prob = _plain_keep_prob(self.keep_prob)
        dtype = check_network_dtype(self.dtype, allow_none=True)   # one spelling for one dtype
        params = dict(hidden_layer_sizes=hidden, keep_prob=keep_prob, activation=self.activation,
                      dtype=None if dtype is None else dtype.name)
        if _learns(keep_prob):   # the learned layers' settings, read by nothing else
            params.update(init_keep_prob=self.init_keep_prob, temperature=self.temperature,
                          lengthscale=self.lengthscale)
        return params

    def _validation_split(self, X, y, sample_weight):
        """(X_train, y_train, w_train, (X_val, y_val[, w_val])) for early_stopping."""
        # stratified for every classifier (scikit-learn's MLP stratifies two
        # classes only: the same split then), unless no stratified split
        # exists: a rare class must not make a fit fail that scikit-learn's
        # MLP makes, unstratified, for more than two classes
        stratify = y if isinstance(self, ClassifierMixin) and _can_stratify(y, self.validation_fraction) else None
        arrays = (X, y) if sample_weight is None else (X, y, sample_weight)
        parts = train_test_split(*arrays, test_size=self.validation_fraction, random_state=self._random_state,
                                 stratify=stratify)
        train, val = parts[0::2], parts[1::2]
        if val[0].shape[0] < 2:
            raise ValueError(f"validation_fraction={self.validation_fraction} leaves {val[0].shape[0]} "
                             "validation sample(s); increase it or give more data")
        if sample_weight is not None:
            for name, weights in (("held out for early_stopping", val[2]), ("left to train on", train[2])):
                if not np.sum(weights) > 0:
                    raise ValueError(f"sample_weight: the rows {name} (validation_fraction="
                                     f"{self.validation_fraction}) have weights summing to 0; give those rows "
                                     "weight or turn early_stopping off")
        return train[0], train[1], (train[2] if sample_weight is not None else None), tuple(val)

    def _check_same_network(self, hidden):
        """warm_start and partial_fit go on with the fitted network: refuse a changed architecture."""
        old, new = self._architecture, self._architecture_params(hidden)
        for name in dict.fromkeys([*old, *new]):   # keep_prob before the settings it makes read
            if old.get(name) != new.get(name):
                raise ValueError(f"{name} changed from {old.get(name)!r} to {new.get(name)!r} since the network "
                                 "was built; warm_start and partial_fit continue that network (refit with "
                                 "warm_start=False)")

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(_AUTO_BATCH, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(f"batch_size={self.batch_size} is larger than the {n_samples} training samples; "
                          f"clipped to {n_samples}", UserWarning, stacklevel=4)
        return min(self.batch_size, n_samples)

    def _check_X_predict(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=self._net.dtype, order="C", accept_sparse=["csr", "csc"])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = True
        return tags


def _plain_keep_prob(keep_prob):
    """keep_prob with its numbers as floats and a sequence as a tuple, to
    compare (a float and a one-entry-per-layer sequence differ, as do the
    networks they build); unchecked entries are left as they are."""
    keep_prob = unwrap_0d(keep_prob)
    if isinstance(keep_prob, str) or not hasattr(keep_prob, "__len__"):
        return float(keep_prob) if isinstance(keep_prob, numbers.Real) else keep_prob
    return tuple(_plain_keep_prob(p) for p in keep_prob)


def _learns(keep_prob):
    """True when keep_prob (a float, "learn" or a sequence) learns some layer's rate."""
    return keep_prob == LEARN if isinstance(keep_prob, str) else (
        hasattr(keep_prob, "__len__") and any(isinstance(p, str) and p == LEARN for p in keep_prob))


def _can_stratify(y, validation_fraction):
    """Whether train_test_split can hold out validation_fraction of the labels
    y stratified: every class has 2 samples or more, and either part has room
    for every class."""
    counts = np.unique(y, return_counts=True)[1]
    n_val = math.ceil(validation_fraction * len(y))   # train_test_split's size for a float test_size
    return counts.min() >= 2 and min(len(y) - n_val, n_val) >= len(counts)


def _mask_seed(random_state):
    """A 64-bit seed for the dropout masks, a function of ``random_state``'s
    (a RandomState's) state that draws nothing from it: its draws stay those
    of scikit-learn's MLP, whatever keep_prob."""
    _, key, position = random_state.get_state()[:3]
    return int(np.random.SeedSequence([*key.tolist(), position]).generate_state(1, np.uint64)[0])


class DropoutMLPClassifier(ClassifierMixin, _BaseDropoutMLP):
    __doc__ = f"""Multi-layer perceptron classifier with inverted dropout, on :class:`cydrop.MLP`.

    Softmax output with cross-entropy; a logistic output unit for two classes.
    Takes scikit-learn's ``MLPClassifier``'s parameters. One label per row:
    unlike ``MLPClassifier``, no multilabel targets.
    {_PARAMETERS}{_ATTRIBUTES}    classes_ : ndarray (n_classes,)
        Class labels.
    {_REFERENCES}
    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from cydrop.sklearn import DropoutMLPClassifier
    >>> X, y = make_classification(n_samples=300, random_state=0)
    >>> clf = DropoutMLPClassifier((32,), keep_prob=0.8, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape, clf.score(X, y) > 0.9
    ((2, 2), True)
    """

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One pass over (X, y) in mini-batches of ``batch_size``, for data that arrives in parts.

        As scikit-learn's ``MLPClassifier.partial_fit``: shuffled when
        ``shuffle``, no stopping rule, no validation split.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        y : array-like (n_samples,)
        sample_weight : array-like (n_samples,) or None
        classes : array-like (n_classes,), needed on the first call
            Every label the stream will contain: one part need not hold them
            all. Later calls must give the same classes or none.

        Returns
        -------
        self
        """
        if not hasattr(self, "_net") and classes is None:
            raise ValueError("classes must be given on the first partial_fit call: one part of the data "
                             "need not hold every label")
        if hasattr(self, "_net") and classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes {np.unique(classes).tolist()} differ from classes_ {self.classes_.tolist()} "
                             "of the first partial_fit call")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _check_targets(self, y, first_pass, classes=None):
        check_classification_targets(y)
        if first_pass:
            labels = np.unique(y) if classes is None else np.unique(np.asarray(classes))
            if len(labels) < 2:
                raise ValueError(f"{'y' if classes is None else 'classes'} has 1 class ({labels[0]!r}); a "
                                 "classifier needs at least 2 classes")
            self.classes_ = labels
        elif self.warm_start and classes is None and not np.array_equal(np.unique(y), self.classes_):
            raise ValueError(f"warm_start needs y to have the classes of the previous fit, {self.classes_.tolist()}; "
                             f"y has {np.unique(y).tolist()}")
        # MLP refuses labels outside its classes, which are these

    def _output(self):
        n_classes = len(self.classes_)
        return ("sigmoid", 1) if n_classes == 2 else ("softmax", n_classes)

    def predict(self, X):
        """Class labels, dropout off.

        Parameters
        ----------
        X : array-like (n_samples, n_features)

        Returns
        -------
        ndarray (n_samples,)
        """
        X = self._check_X_predict(X)  # first: NotFittedError before self._net is looked up
        return self._net.predict(X)

    def predict_proba(self, X):
        """Class probabilities, dropout off; columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like (n_samples, n_features)

        Returns
        -------
        ndarray (n_samples, n_classes)
        """
        X = self._check_X_predict(X)
        proba = self._net.predict_proba(X)
        if proba.shape[1] == 1:  # the logistic unit gives P(classes_[1])
            proba = np.hstack([1 - proba, proba])
        return proba

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba` (as scikit-learn's MLPClassifier computes it).

        Parameters
        ----------
        X : array-like (n_samples, n_features)

        Returns
        -------
        ndarray (n_samples, n_classes)
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


class DropoutMLPRegressor(RegressorMixin, _BaseDropoutMLP):
    __doc__ = f"""Multi-layer perceptron regressor with inverted dropout, on :class:`cydrop.MLP`.

    Linear output units with squared error, or a Gaussian output with a
    learned variance (``loss="gaussian_nll"``); ``y`` may be 1-D or 2-D
    (several outputs). Takes scikit-learn's ``MLPRegressor``'s parameters.
    {_PARAMETERS}    loss : {{"squared_error", "gaussian_nll"}}, default="squared_error"
        "squared_error": half the squared error, as scikit-learn's, on
        linear output units. "gaussian_nll": a Gaussian whose variance is
        learned for each sample, as in the reference experiments of
        Concrete dropout: the output layer has two units per target, the
        means then the log-variances (``coefs_[-1]`` is
        ``(n_hidden, 2 * n_outputs_)``), trained on the negative
        log-likelihood ``0.5 * ((y - mean)^2 / var + log var + log 2 pi)``
        summed over the targets. The noise is learned, so
        ``predict(X, return_std=True)`` takes no ``tau``; with
        ``keep_prob="learn"`` nothing is left to search. The log-variance
        units start near 0 (variance 1): targets on a scale near 1
        (standardised) train best. scikit-learn's "poisson" is refused at
        fit (no exponential output here).
{_ATTRIBUTES}{_REFERENCES}
    Examples
    --------
    >>> import numpy as np
    >>> from cydrop.sklearn import DropoutMLPRegressor
    >>> X = np.random.default_rng(0).uniform(-1, 1, (400, 3))
    >>> y = X @ [1.0, -2.0, 0.5]
    >>> reg = DropoutMLPRegressor((32,), keep_prob=0.9, learning_rate_init=0.01, random_state=0).fit(X, y)
    >>> reg.predict(X[:2]).shape, reg.score(X, y) > 0.9
    ((2,), True)

    Learned keep_prob and a learned noise: no dropout rate and no tau to choose.

    >>> noisy = y + np.random.default_rng(1).normal(0, 0.1 + 0.3 * (X[:, 0] > 0))
    >>> reg = DropoutMLPRegressor((32,), keep_prob="learn", loss="gaussian_nll", alpha=0.0,
    ...                           learning_rate_init=0.01, max_iter=300, random_state=0).fit(X, noisy)
    >>> reg.keep_prob_.shape
    (2,)
    >>> mean, std = reg.predict(X[:3], return_std=True, mc_samples=100)
    >>> mean.shape, std.shape, bool((std > 0).all())
    ((3,), (3,), True)
    """

    _parameter_constraints: dict = {
        **_BaseDropoutMLP._parameter_constraints,
        # "poisson" passes here to be refused at fit with the reason (_refuse_unsupported)
        "loss": [StrOptions({"squared_error", "gaussian_nll", "poisson"})],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, loss="squared_error", solver="adam",
                 alpha=1e-4, batch_size="auto", learning_rate="constant", learning_rate_init=1e-3, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, keep_prob=0.5, init_keep_prob=0.9,
                 temperature=0.1, lengthscale=1e-2, max_norm=None, dtype=None, eval_every=1):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose, warm_start=warm_start,
            momentum=momentum, nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            n_iter_no_change=n_iter_no_change, max_fun=max_fun, keep_prob=keep_prob, init_keep_prob=init_keep_prob,
            temperature=temperature, lengthscale=lengthscale, max_norm=max_norm, dtype=dtype, eval_every=eval_every)
        self.loss = loss

    def _architecture_params(self, hidden):
        return dict(super()._architecture_params(hidden), loss=self.loss)   # the output layer's

    def _refuse_unsupported(self):
        super()._refuse_unsupported()
        if self.loss == "poisson":
            raise ValueError("loss='poisson' is not supported: cydrop's networks have no exponential mean output; "
                             "use loss='squared_error' or 'gaussian_nll'")

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One pass over (X, y) in mini-batches of ``batch_size``, for data that arrives in parts.

        As scikit-learn's ``MLPRegressor.partial_fit``: shuffled when
        ``shuffle``, no stopping rule, no validation split.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        y : array-like (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like (n_samples,) or None

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def _check_targets(self, y, first_pass, classes=None):
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if first_pass:
            self.n_outputs_ = n_outputs
        elif n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} output(s), the fitted network has {self.n_outputs_}")

    def _output(self):
        if self.loss == "gaussian_nll":   # a mean and a log-variance unit per target
            return "gaussian", 2 * self.n_outputs_
        return "linear", self.n_outputs_

    def predict(self, X, return_std=False, *, tau=None, mc_samples=1000):
        """Predicted values (the means, for ``loss="gaussian_nll"``), dropout
        off; with ``return_std``, the MC dropout predictive mean and
        standard deviation.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        return_std : bool, default False
            Return ``(mean, std)`` as ``GaussianProcessRegressor.predict``
            does, from ``mc_samples`` passes with dropout on (Gal &
            Ghahramani 2016; a layer that learned its keep_prob draws its
            masks as :meth:`cydrop.MLP.predict_proba` does). ``mean`` is the
            mean of the passes' predictions. ``std`` is the standard
            deviation of the predictive distribution, the model's
            uncertainty (the spread of the passes) plus the observation
            noise: ``sqrt(var_passes + 1 / tau)`` for
            ``loss="squared_error"``, a noise the same for every sample;
            for ``loss="gaussian_nll"``, ``sqrt(variance of the passes'
            means + mean of the passes' variances)`` (the law of total
            variance), the noise learned for each sample. With
            ``keep_prob=1.0`` the passes agree and std is the noise alone.
        tau : float > 0 or None, keyword-only
            For ``loss="squared_error"``: the model precision (inverse noise
            variance, on the scale of y). None: the weight-decay relation of
            Gal & Ghahramani, ``tau = l^2 p batch / (2 N alpha)``
            (:func:`cydrop.uncertainty.tau_from_weight_decay` with
            length-scale ``l = 1e-2``, ``p`` the keep probability of the
            output layer's input, ``N`` the training rows of the last fit),
            which needs ``alpha > 0`` and fixed keep probabilities (a learned
            layer's prior comes from ``lengthscale``, not from ``alpha``).
            Better: choose tau on validation data, by the largest
            :func:`cydrop.uncertainty.predictive_log_likelihood`. Not taken
            with ``loss="gaussian_nll"``, which learned the noise.
        mc_samples : int >= 1, keyword-only, default 1000

        Returns
        -------
        y_pred : ndarray (n_samples,) or (n_samples, n_outputs) of float64
        y_std : ndarray of y_pred's shape, only with ``return_std``

        Raises
        ------
        ValueError
            ``tau`` <= 0; None with ``alpha=0`` or with a learned keep_prob
            (``loss="squared_error"``); given with ``loss="gaussian_nll"``.
        """
        # float64 like every scikit-learn regressor, whatever the network's dtype
        X = self._check_X_predict(X)
        check_bool(return_std, "return_std")
        if not return_std:
            return self._net.predict(X).astype(np.float64)
        if self._net.output == "gaussian":
            if tau is not None:
                raise ValueError(f"tau={tau!r} is not taken with loss='gaussian_nll': the network learned the "
                                 "noise variance of each sample (leave tau=None)")
            mean, std = self._net.predict_proba(X, mc_samples=mc_samples)   # the learned noise included
            mean, std = mean.astype(np.float64), std.astype(np.float64)
        else:
            from .uncertainty import check_tau, tau_from_weight_decay

            if tau is None:
                if _learns(self._net.keep_prob):
                    raise ValueError("return_std=True needs tau (the model precision) when keep_prob is learned: "
                                     "the weight-decay relation holds for fixed keep probabilities; give tau, or "
                                     "fit with loss='gaussian_nll', which learns the noise")
                if not self.alpha > 0:
                    raise ValueError("return_std=True needs tau (the model precision) when alpha=0: "
                                     "the weight-decay relation gives tau only for alpha > 0")
                n_rows, batch = self._fit_rows
                tau = tau_from_weight_decay(self.alpha, self._net.keep_prob[-1], n_rows, batch)
            tau = check_tau(tau)
            mean, std = self._net.predict_proba(X, mc_samples=mc_samples)
            mean, std = mean.astype(np.float64), np.sqrt(std.astype(np.float64) ** 2 + 1.0 / tau)
        if mean.shape[1] == 1:
            mean, std = mean[:, 0], std[:, 0]
        return mean, std

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
