"""scikit-learn estimators on :class:`cydrop.MLP`: dropout with per-layer keep_prob.

scikit-learn's own ``MLPClassifier`` has no dropout (scikit-learn issue #6175,
PR #7407). ``DropoutMLPClassifier`` and ``DropoutMLPRegressor`` take its
parameter names where they overlap, add ``keep_prob`` (a float or one entry
per dense layer), ``max_norm`` and ``dtype``, and so drop into
``GridSearchCV``, ``cross_validate``, pipelines and joblib's Dask backend
unchanged::

    from sklearn.model_selection import GridSearchCV
    from cydrop.sklearn import DropoutMLPClassifier

    search = GridSearchCV(DropoutMLPClassifier((256, 256), random_state=0),
                          {"keep_prob": [1.0, 0.8, 0.5, (0.8, 0.5, 0.5)]}, cv=3, n_jobs=2)
    search.fit(X, y).best_params_

scikit-learn is an optional extra (``pip install "cydrop[sklearn]"``):
``import cydrop`` does not import this module.
"""
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

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
        ``"sgd"`` with ``momentum > 0`` is SGD with (heavy-ball) momentum.
    alpha : float >= 0, default=1e-4
        L2 penalty: ``loss + alpha / (2 * batch) * sum ||W||^2``, weights only.
    batch_size : int >= 1 or "auto", default="auto"
        ``"auto"`` is ``min(200, n_samples)``; larger sizes are clipped with a warning.
    learning_rate_init : float > 0, default=1e-3
    max_iter : int >= 1, default=200
        Epochs of ``fit`` at most.
    shuffle : bool, default=True
        Shuffle the samples before every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the shuffling, the dropout masks and the
        early-stopping split: an int gives the same model on every fit.
    tol : float >= 0, default=1e-4
        An epoch improves when the training loss falls by more than ``tol``
        (the validation score rises by more than ``tol`` with ``early_stopping``).
    verbose : bool or int, default=False
        Print the loss (and validation score) of every epoch.
    warm_start : bool, default=False
        ``fit`` goes on from the previous solution (same classes/outputs).
    momentum : float in [0, 1), default=0.9
        For ``solver="sgd"``; 0 gives plain SGD.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified for
        classifiers), stop when its score (accuracy or R^2) has not improved
        by ``tol`` for ``n_iter_no_change`` epochs and keep the best weights.
    validation_fraction : float in (0, 1), default=0.1
    n_iter_no_change : int >= 1 or numpy.inf, default=10
        Epochs without improvement before stopping; ``numpy.inf`` always
        trains ``max_iter`` epochs, without a ``ConvergenceWarning``.
    keep_prob : float in (0, 1] or sequence of float, default=0.5
        Probability of keeping a unit. A float applies to every hidden layer's
        output (the input features keep 1.0); a sequence has one entry per
        dense layer, ``len(hidden_layer_sizes) + 1``: entry 0 for the input
        features, entry i for the output of hidden layer i. 1.0 turns dropout off.
    max_norm : float > 0 or None, default=None
        Cap each unit's incoming weight vector at this L2 norm after every
        update (Srivastava et al. 2014).
    dtype : {"float32", "float64"}, default="float32"
        Precision of the weights and of the computation.
"""

_ATTRIBUTES = """
    Attributes
    ----------
    coefs_ : list of ndarray (n_in, n_out)
        Weights of each dense layer (the network's own arrays).
    intercepts_ : list of ndarray (n_out,)
    loss_ : float
        Training loss of the last epoch (with dropout, without the L2 term).
    loss_curve_ : list of float
        Training loss of every epoch.
    best_loss_ : float
        Lowest training loss (None with ``early_stopping``).
    validation_scores_ : list of float or None
        Held-out score of every epoch with ``early_stopping``.
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``).
    n_layers_ : int
        Layers including input and output.
    n_outputs_ : int
    out_activation_ : str
        ``"softmax"``, ``"logistic"`` or ``"identity"``.
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
    """fit/partial_fit/predict shared by the classifier and the regressor."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "solver": [StrOptions({"sgd", "adam"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],  # MLP's momentum is < 1
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"), Options(numbers.Real, {np.inf})],
        # entries of a sequence are checked by MLP, which names keep_prob[i]
        "keep_prob": [Interval(numbers.Real, 0, 1, closed="right"), "array-like"],
        "max_norm": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "dtype": [StrOptions({"float32", "float64"}), Options(type, {np.float32, np.float64})],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=1e-4,
                 batch_size="auto", learning_rate_init=1e-3, max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, verbose=False, warm_start=False, momentum=0.9, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, keep_prob=0.5, max_norm=None,
                 dtype="float32"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.keep_prob = keep_prob
        self.max_norm = max_norm
        self.dtype = dtype

    # ------------------------------------------------------------ subclass hooks

    def _encode_targets(self, y, first_pass, classes=None):
        """Targets as cydrop.MLP takes them; sets classes_ or n_outputs_ on the first pass."""
        raise NotImplementedError

    def _output(self):
        """(cydrop output name, number of output units) for the fitted targets."""
        raise NotImplementedError

    # ------------------------------------------------------------ fitting

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train for up to ``max_iter`` epochs (fewer with tol or early_stopping), dropout on.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        y : array-like (n_samples,) of class labels (classifier), or
            (n_samples,) / (n_samples, n_outputs) of values (regressor)

        Returns
        -------
        self

        Raises
        ------
        ValueError
            A bad parameter (named) or bad data.
        """
        return self._fit(X, y, incremental=False)

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
        for size in sizes:
            if isinstance(size, (bool, np.bool_)) or not isinstance(size, numbers.Integral) or size < 1:
                raise ValueError(f"hidden_layer_sizes must hold ints >= 1, got {self.hidden_layer_sizes!r}")
        return [int(size) for size in sizes]

    def _training_options(self):
        """Keyword arguments of MLP.fit for this estimator's solver settings."""
        if self.solver == "adam":
            optimizer = "adam"
        else:
            optimizer = "momentum" if self.momentum > 0 else "sgd"
        return dict(optimizer=optimizer, learning_rate=self.learning_rate_init, l2=self.alpha,
                    max_norm=self.max_norm, momentum=self.momentum)

    def _fit(self, X, y, incremental, classes=None):
        first_pass = not hasattr(self, "_net") or not (self.warm_start or incremental)
        if incremental and self.early_stopping:
            raise ValueError("early_stopping=True is not supported by partial_fit (one epoch per call)")
        hidden = self._hidden_sizes()  # before the data: a bad parameter is named first
        dtype = np.dtype(self.dtype) if first_pass else self._net.dtype
        X, y = validate_data(self, X, y, reset=first_pass, dtype=dtype, order="C",
                             multi_output=isinstance(self, RegressorMixin), y_numeric=isinstance(self, RegressorMixin))
        Y = self._encode_targets(y, first_pass, classes)
        rng = check_random_state(self.random_state)
        if first_pass:
            output, n_out = self._output()
            # one draw seeds weights, shuffling and masks alike, so an int
            # random_state gives the same model on every fit
            seed = int(rng.randint(np.iinfo(np.int32).max))
            net = MLP([X.shape[1], *hidden, n_out], keep_prob=self.keep_prob, activation=_ACTIVATIONS[self.activation],
                      output=output, dtype=dtype, seed=seed)
            if output != "linear":
                # set, not learnt from y: a partial_fit part need not hold every class
                net.classes_ = self.classes_
            self._net, self._architecture = net, (hidden, self.keep_prob, self.activation)
            self.coefs_, self.intercepts_ = net.weights, net.biases  # the net's arrays, updated in place
            self.n_layers_, self.n_outputs_ = len(net.layer_sizes), n_out
            self.out_activation_ = {"softmax": "softmax", "sigmoid": "logistic", "linear": "identity"}[output]
            self.loss_curve_, self.best_loss_ = [], np.inf
        else:
            self._check_same_network(hidden, dtype)
        options = self._training_options()
        X_val = Y_val = None
        self.validation_scores_ = self.best_validation_score_ = None
        if self.early_stopping:
            stratify = Y if isinstance(self, ClassifierMixin) else None
            X, X_val, Y, Y_val = train_test_split(X, Y, test_size=self.validation_fraction, random_state=rng,
                                                  stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError(f"validation_fraction={self.validation_fraction} leaves {X_val.shape[0]} "
                                 "validation sample(s); increase it or give more data")
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
        elif not incremental or self.best_loss_ is None:
            self.best_loss_ = np.inf  # each fit judges its own progress; partial_fit keeps the running best
        if not incremental:
            self._no_improvement_count = 0
        batch_size = self._batch_size(X.shape[0])
        self._run_epochs(X, Y, 1 if incremental else self.max_iter, batch_size, options, X_val, Y_val,
                         incremental)
        return self

    def _check_same_network(self, hidden, dtype):
        """warm_start and partial_fit go on with the fitted network: refuse a changed architecture."""
        old_hidden, old_keep_prob, old_activation = self._architecture
        for name, old, new in (("hidden_layer_sizes", old_hidden, hidden), ("activation", old_activation, self.activation),
                               ("dtype", self._net.dtype, np.dtype(self.dtype))):
            if old != new:
                raise ValueError(f"{name} changed from {old!r} to {new!r} since the network was built; "
                                 "warm_start and partial_fit continue that network (refit with warm_start=False)")
        if not np.array_equal(np.asarray(old_keep_prob, dtype=float), np.asarray(self.keep_prob, dtype=float)):
            raise ValueError(f"keep_prob changed from {old_keep_prob!r} to {self.keep_prob!r} since the network "
                             "was built; warm_start and partial_fit continue that network (refit with warm_start=False)")

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(_AUTO_BATCH, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(f"batch_size={self.batch_size} is larger than the {n_samples} training samples; "
                          f"clipped to {n_samples}", UserWarning, stacklevel=5)
        return min(self.batch_size, n_samples)

    def _run_epochs(self, X, Y, epochs, batch_size, options, X_val, Y_val, incremental):
        """scikit-learn's stopping rule around one-epoch calls of MLP.fit.

        MLP.fit keeps optimizer state, shuffling generator and mask generator
        between calls, so ``epochs`` calls of one epoch train exactly as one
        call of ``epochs`` epochs; the loop adds the tol/n_iter_no_change test.
        """
        net = self._net
        best_weights = None
        self.n_iter_ = 0
        for _ in range(epochs):
            history = net.fit(X, Y, epochs=1, batch_size=batch_size, shuffle=self.shuffle, progress=False, **options)
            self.n_iter_ += 1
            self.loss_ = history["loss"][0]
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
            if incremental:
                self.best_loss_ = min(self.best_loss_, self.loss_)
                return
            if X_val is not None:
                score = net.score(X_val, Y_val)
                self.validation_scores_.append(score)
                if self.verbose:
                    print(f"Validation score: {score:f}")
                improved = score >= self.best_validation_score_ + self.tol
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_weights = [p.copy() for p in net.weights + net.biases]
            else:
                improved = self.loss_ <= self.best_loss_ - self.tol
                self.best_loss_ = min(self.best_loss_, self.loss_)
            self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
            if self._no_improvement_count > self.n_iter_no_change:
                if self.verbose:
                    print(f"No improvement by more than tol={self.tol} for {self.n_iter_no_change} "
                          "consecutive epochs: stopping.")
                break
        else:
            if self.n_iter_no_change == np.inf:
                return  # no convergence test was asked for: max_iter epochs is the plan, not a failure
            warnings.warn(f"Maximum iterations ({self.max_iter}) reached and the optimization hasn't converged yet.",
                          ConvergenceWarning, stacklevel=5)
        if best_weights is not None:
            for param, best in zip(net.weights + net.biases, best_weights):
                param[...] = best  # in place: coefs_ and intercepts_ are these arrays

    def _check_X_predict(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=self._net.dtype, order="C")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


class DropoutMLPClassifier(ClassifierMixin, _BaseDropoutMLP):
    __doc__ = f"""Multi-layer perceptron classifier with inverted dropout, on :class:`cydrop.MLP`.

    Softmax output with cross-entropy; a logistic output unit for two classes.
    Named like scikit-learn's ``MLPClassifier`` where the two overlap.
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
    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y) in mini-batches, for data that arrives in parts.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        y : array-like (n_samples,)
        classes : array-like (n_classes,), needed on the first call
            Every label the stream will contain: one part need not hold them all.

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
        return self._fit(X, y, incremental=True, classes=classes)

    def _encode_targets(self, y, first_pass, classes=None):
        check_classification_targets(y)
        if first_pass:
            labels = np.unique(y) if classes is None else np.unique(np.asarray(classes))
            if len(labels) < 2:
                raise ValueError(f"y has 1 class ({labels[0]!r}); a classifier needs at least 2 classes")
            self.classes_ = labels
        elif self.warm_start and classes is None and not np.array_equal(np.unique(y), self.classes_):
            raise ValueError(f"warm_start needs y to have the classes of the previous fit, {self.classes_.tolist()}; "
                             f"y has {np.unique(y).tolist()}")
        return y  # MLP refuses labels outside its classes_, which are these

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


class DropoutMLPRegressor(RegressorMixin, _BaseDropoutMLP):
    __doc__ = f"""Multi-layer perceptron regressor with inverted dropout, on :class:`cydrop.MLP`.

    Linear output units with squared error; ``y`` may be 1-D or 2-D (several
    outputs). Named like scikit-learn's ``MLPRegressor`` where the two overlap.
    {_PARAMETERS}{_ATTRIBUTES}{_REFERENCES}
    Examples
    --------
    >>> import numpy as np
    >>> from cydrop.sklearn import DropoutMLPRegressor
    >>> X = np.random.default_rng(0).uniform(-1, 1, (400, 3))
    >>> y = X @ [1.0, -2.0, 0.5]
    >>> reg = DropoutMLPRegressor((32,), keep_prob=0.9, learning_rate_init=0.01, random_state=0).fit(X, y)
    >>> reg.predict(X[:2]).shape, reg.score(X, y) > 0.9
    ((2,), True)
    """

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y):
        """One epoch over (X, y) in mini-batches, for data that arrives in parts.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        y : array-like (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True)

    def _encode_targets(self, y, first_pass, classes=None):
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if first_pass:
            self.n_outputs_ = n_outputs
        elif n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} output(s), the fitted network has {self.n_outputs_}")
        return y

    def _output(self):
        return "linear", self.n_outputs_

    def predict(self, X, return_std=False, *, tau=None, mc_samples=1000):
        """Predicted values, dropout off; with ``return_std``, MC dropout
        mean and predictive standard deviation.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        return_std : bool, default False
            Return ``(mean, std)`` as ``GaussianProcessRegressor.predict``
            does: the mean of ``mc_samples`` passes with dropout on (Gal &
            Ghahramani 2016), and ``std = sqrt(var_passes + 1 / tau)``, the
            spread of the passes plus the observation noise.
        tau : float > 0, keyword-only
            Model precision (inverse noise variance, on the scale of y); needed
            with ``return_std``. Choose it on validation data (the largest
            :func:`cydrop.uncertainty.predictive_log_likelihood`), or derive it
            from the weight decay with
            ``cydrop.uncertainty.tau_from_weight_decay(alpha, keep_prob,
            n_samples, batch_size)`` (Gal & Ghahramani's relation).
        mc_samples : int >= 1, keyword-only, default 1000

        Returns
        -------
        y_pred : ndarray (n_samples,) or (n_samples, n_outputs) of float64
        y_std : ndarray of y_pred's shape, only with ``return_std``
        """
        # float64 like every scikit-learn regressor, whatever the network's dtype
        X = self._check_X_predict(X)
        if not return_std:
            return self._net.predict(X).astype(np.float64)
        if tau is None:
            raise ValueError("return_std=True needs tau, the model precision (see the docstring)")
        from .uncertainty import _check_tau

        tau = _check_tau(tau)
        mean, std = self._net.predict_proba(X, mc_samples=mc_samples)
        mean, std = mean.astype(np.float64), np.sqrt(std.astype(np.float64) ** 2 + 1.0 / tau)
        if mean.shape[1] == 1:
            mean, std = mean[:, 0], std[:, 0]
        return mean, std

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
