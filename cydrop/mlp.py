"""cydrop.MLP: a multi-layer perceptron whose every dense layer is fused.

Shaped around how dropout is used: a keep probability per layer, dropout on
only while training, the debugging habit of checking with keep_prob = 1 that
the cost J falls on every iteration (:meth:`MLP.check`), and training that
stops on a cost measured with dropout off. This module is the face: it
checks data and options, then hands arrays to the network
(``_network.py``), the optimizers (``_optimizers.py``) and the one training
loop (``_training.py``). Imports neither scikit-learn, tqdm nor matplotlib at
import time.
"""
import math
import warnings

import numpy as np

from . import _checks, _mlp_file, _training
from ._network import Network
from ._optimizers import make_optimizer
from ._validation import check_bool, check_keep_prob, check_positive_int
from .optim import _check_real

__all__ = ["MLP", "dropout_l2_equivalent"]


class MLP(Network):
    """Multi-layer perceptron with per-layer inverted dropout.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_features, hidden..., n_outputs]``, e.g. ``[40, 512, 512, 10]``.
        For ``output="sigmoid"`` the last size is 1.
    keep_prob : float or sequence of float, default 1.0
        A float applies to every hidden layer's output (the input features
        keep 1.0). A sequence has one entry per dense layer: entry 0 for the
        input features, entry i for the output of hidden layer i. Checked
        again when assigned later (``net.keep_prob = ...``).
    activation : {"relu", "tanh", "sigmoid", "linear"}, default "relu"
        Hidden-layer activation.
    output : {"softmax", "sigmoid", "linear"}, default "softmax"
        Multi-class cross-entropy, binary cross-entropy, or squared error
        (``0.5 * ||p - y||^2`` per sample).
    dtype : float32 or float64 (anything ``numpy.dtype`` reads as one), default "float32"
    seed : int or None
        Seeds the weight initialisation, the shuffling and the dropout masks.
    classes : array-like or None
        Class labels of the outputs, sorted (classification). Without them
        a network's classes are ``0 .. n_outputs - 1`` (``[0, 1]`` for
        ``output="sigmoid"``) until its first training, which may take them
        from the labels it is given.
    init : {"auto", "glorot_uniform"}, default "auto"
        Initial weights (biases start at 0): "auto" draws He normal
        (variance 2 / n_in) for ReLU hidden layers and Glorot normal
        (2 / (n_in + n_out)) for the others; "glorot_uniform" draws every
        layer from U(-a, a), a = sqrt(6 / (n_in + n_out)), Keras's default.

    Raises
    ------
    TypeError
        ``layer_sizes`` not a sequence of ints; ``keep_prob`` not a number or
        a sequence of numbers; ``seed`` not an int.
    ValueError
        Fewer than two sizes or a size < 1; an unknown ``activation``,
        ``output``, ``init`` or ``dtype``; ``keep_prob`` outside (0, 1] or
        not one entry per dense layer; ``output="sigmoid"`` with more than
        one output unit; ``classes`` with ``output="linear"``, or more
        classes than outputs.

    Attributes
    ----------
    weights : list of ndarray (n_in, n_out)
    biases : list of ndarray (n_out,)
    classes_ : ndarray or None
        Class labels (None for ``output="linear"``).

    Notes
    -----
    A fresh network predicts, scores and computes its cost and gradients
    with its random initial weights: that is what the debugging recipe
    checks first (:meth:`check`). Its predictions are an untrained
    network's, no better than chance.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> X = np.random.default_rng(0).standard_normal((200, 5)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(int)
    >>> net = cydrop.MLP([5, 16, 2], keep_prob=[1.0, 0.8], seed=0)
    >>> history = net.fit(X, y, epochs=100, batch_size=32, progress=False)
    >>> net.score(X, y) > 0.9
    True
    >>> report = net.check(X, y, iterations=10)   # dropout off, on a copy
    >>> report.monotonic, report.gradient_error < 1e-7
    (True, True)
    """

    def __init__(self, layer_sizes, keep_prob=1.0, activation="relu", output="softmax",
                 dtype="float32", seed=None, classes=None, init="auto"):
        super().__init__(layer_sizes, keep_prob, activation, output, dtype, seed, init)
        self._classes_given = classes is not None
        if output == "linear":
            if classes is not None:
                raise ValueError("classes are for classification outputs; output='linear' takes none")
            self.classes_ = None
        elif classes is None:
            self.classes_ = np.arange(2 if output == "sigmoid" else self.layer_sizes[-1])
        else:
            self.classes_ = self._check_classes(classes, "classes")
        self.l2, self.max_norm = 0.0, None
        self._optimizer = None
        self._trained = False  # after the first update, classes_ are fixed

    # ------------------------------------------------------------ data

    def _check_X(self, X, name="X"):
        X = _as_numeric(X, name)
        if X.dtype.kind not in "fiub":
            raise TypeError(f"{name} must be a numeric array, got dtype {X.dtype}")
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"{name} is empty (0 samples)")
        if X.shape[1] != self.layer_sizes[0]:
            raise ValueError(f"{name} has {X.shape[1]} features, the network expects {self.layer_sizes[0]}")
        _check_finite(X, name)
        with np.errstate(over="ignore"):
            cast = np.require(X, dtype=self.dtype, requirements=["C", "A"])  # as the kernels read it
        if not np.isfinite(cast).all():
            raise ValueError(f"{name} has values too large for {self.dtype} (largest magnitude "
                             f"{float(np.max(np.abs(X))):.3g}, {self.dtype} holds {float(np.finfo(self.dtype).max):.3g})")
        return cast

    def _check_y(self, y, n, name="y", learn_classes=False, classes=None):
        """(Y, learnt classes or None): targets as the network's output array
        (one-hot, 0/1 column, or values), encoded against ``classes`` (default
        ``classes_``). With ``learn_classes`` (a first training without given
        classes) the labels of y become the classes; they are returned, not
        set, so that a call refused later changes nothing."""
        y = _as_numeric(y, name) if self.output == "linear" else _as_labels(y, name)
        if y.ndim == 0:
            raise ValueError(f"{name} must hold one target per sample ({n}), got a scalar {y!r}")
        if y.shape[0] != n:
            raise ValueError(f"{name} has {y.shape[0]} samples but X has {n}")
        if self.output == "linear":
            if y.dtype.kind not in "fiub":
                raise TypeError(f"{name} must be numeric for output='linear', got dtype {y.dtype}")
            _check_finite(y, name)
            Y = y.reshape(n, -1).astype(self.dtype)
            if Y.shape[1] != self.layer_sizes[-1]:
                raise ValueError(f"{name} has {Y.shape[1]} targets per sample, the network has {self.layer_sizes[-1]} outputs")
            if not np.isfinite(Y).all():
                raise ValueError(f"{name} has values too large for {self.dtype}")
            return np.ascontiguousarray(Y), None
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn(f"a column-vector {name} was passed when a 1-D array was expected; it was ravelled "
                          "(as scikit-learn does)", _data_conversion_warning(), stacklevel=4)
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"{name} must be 1-D class labels, got shape {y.shape}")
        if y.dtype.kind == "f":
            _check_finite(y, name)
        if learn_classes:
            classes = self._check_classes(np.unique(y), name)
        elif classes is None:
            classes = self.classes_
        idx = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
        unseen = classes[idx] != y
        if unseen.any():
            raise ValueError(f"{name} has labels that are not among the classes {classes.tolist()[:10]}: "
                             f"{np.unique(y[unseen])[:5].tolist()}")
        if self.output == "sigmoid":
            Y = idx.astype(self.dtype).reshape(n, 1)
        else:
            Y = np.zeros((n, self.layer_sizes[-1]), dtype=self.dtype)
            Y[np.arange(n), idx] = 1
        return Y, (classes if learn_classes else None)

    def _check_classes(self, classes, name):
        labels = _as_labels(classes, name)
        if labels.ndim != 1 or labels.size == 0:
            raise ValueError(f"{name} must be a non-empty 1-D sequence of labels, got shape {labels.shape}")
        if labels.dtype.kind == "f":
            _check_finite(labels, name)
        unique = np.unique(labels)
        room = 2 if self.output == "sigmoid" else self.layer_sizes[-1]
        if len(unique) > room:
            raise ValueError(f"{name} has {len(unique)} classes, the network has room for {room}")
        return unique

    def _check_data(self, X, y, sample_weight, learn_classes=False):
        """(X, Y, sample_weight, new classes or None), all checked, nothing set."""
        X = self._check_X(X)
        Y, classes = self._check_y(y, X.shape[0], learn_classes=learn_classes)
        return X, Y, _check_sample_weight(sample_weight, X.shape[0]), classes

    # ------------------------------------------------------------ training

    def fit(self, X, y, *, epochs, batch_size, optimizer="adam", learning_rate=1e-3, l2=0.0,
            max_norm=None, momentum=0.9, sample_weight=None, validation_data=None, early_stopping=None,
            tol=0.0, eval_every=1, track_cost=False, shuffle=True, progress=True, verbose=False):
        """Train with mini-batches, dropout on; stop on a cost measured with dropout off.

        Parameters
        ----------
        X : array (n_samples, n_features)
        y : array (n_samples,) of labels, or (n_samples[, n_outputs]) values for output="linear"
        epochs : int >= 1
            The most epochs to train (a cap when ``early_stopping`` is set).
        batch_size : int >= 1
        optimizer : {"adam", "sgd", "momentum"}
            The optimizer's state (moments, step count) carries over to the
            next ``fit`` or ``partial_fit`` with the same optimizer.
        learning_rate : float > 0
        l2 : float >= 0
            Cost ``J = loss + l2 / (2 * batch) * sum ||W||^2`` (weights only).
        max_norm : float > 0 or None
            Cap each unit's incoming weight vector at this L2 norm after each
            update (Srivastava et al. 2014).
        momentum : float in [0, 1)
            For optimizer="momentum".
        sample_weight : array (n_samples,) of float >= 0, or None
            Weights of the samples in the loss: each batch's loss is
            ``sum w_i l_i / sum w_i``.
        validation_data : (X_val, y_val) or (X_val, y_val, sample_weight_val), or None
            Evaluated with dropout off every ``eval_every`` epochs.
        early_stopping : int >= 1, ``math.inf`` or None
            Stop after this many evaluations in a row without an improvement
            of more than ``tol`` of the monitored cost, and keep the weights
            of the best evaluation. The monitored cost, always with dropout
            off, is the validation loss with ``validation_data``, else J on
            the training set (an extra forward pass per evaluation).
            ``math.inf`` never stops but keeps the best weights. None: train
            ``epochs`` epochs, keep the last weights.
        tol : float >= 0
        eval_every : int >= 1
            Epochs between evaluations (and after the last epoch).
        track_cost : bool
            Record J on the training set at every evaluation even without
            a stopping rule (it costs a forward pass over the training set).
        shuffle, progress, verbose : bool
            progress shows a tqdm bar when tqdm is installed; verbose prints
            every epoch's loss and evaluation (as scikit-learn's verbose).

        Returns
        -------
        history : dict
            ``loss``: the mean training loss under dropout of every epoch
            (free; not a well-defined cost while dropout is on). At each
            evaluation, ``eval_epoch``; ``cost`` (J, dropout off) and
            ``train_score`` when J is monitored or tracked; ``val_loss`` and
            ``val_score`` with validation data. ``best_epoch``: the epoch
            whose weights were kept (with ``early_stopping``); ``stopped``:
            whether the rule stopped before ``epochs``.

        Raises
        ------
        ValueError, TypeError
            Bad data or options (named); the network is left as it was.
        FloatingPointError
            The loss, the cost J or a weight became NaN or infinite (checked
            after every epoch); the message names the epoch.
        """
        epochs = check_positive_int(epochs, "epochs")
        batch_size = check_positive_int(batch_size, "batch_size")
        eval_every = check_positive_int(eval_every, "eval_every")
        tol = _check_real(tol, "tol", 0.0, low_open=False)
        if early_stopping is not None and early_stopping != math.inf:
            early_stopping = check_positive_int(early_stopping, "early_stopping")
        for name, value in (("track_cost", track_cost), ("shuffle", shuffle), ("progress", progress),
                            ("verbose", verbose)):
            check_bool(value, name)
        X, Y, w, classes = self._check_data(X, y, sample_weight, learn_classes=self._may_learn_classes())
        validation = self._check_validation(validation_data, classes)
        settings = self._training_settings(optimizer, learning_rate, l2, max_norm, momentum)
        self._start_training(settings, classes)
        return _training.run(self, self._optimizer, X, Y, epochs=epochs, batch_size=batch_size, rng=self._rng,
                             shuffle=shuffle, sample_weight=w, l2=self.l2, max_norm=self.max_norm,
                             validation=validation, patience=early_stopping, tol=tol, eval_every=eval_every,
                             track_cost=track_cost, progress=progress, verbose=verbose)

    def partial_fit(self, X, y, *, classes=None, batch_size=None, sample_weight=None, optimizer="adam",
                    learning_rate=1e-3, l2=0.0, max_norm=None, momentum=0.9, shuffle=True):
        """One pass over (X, y) in mini-batches of ``batch_size``, for data that arrives in parts.

        ``batch_size=None`` makes the whole of X one batch (one update).
        ``classes`` (all labels the stream will contain) may be given on the
        first call, as in scikit-learn; without them the labels must be among
        ``classes_`` (``0 .. n_outputs - 1`` unless given at construction):
        partial_fit never takes classes from y, as one part need not hold
        every class. Later calls must give the same classes or none. Returns the mean
        training loss of the pass (with dropout). The optimizer's state
        carries over between calls.
        """
        X = self._check_X(X)
        batch_size = X.shape[0] if batch_size is None else check_positive_int(batch_size, "batch_size")
        check_bool(shuffle, "shuffle")
        given = None
        if classes is not None:
            if self.output == "linear":
                raise ValueError("classes are for classification outputs; output='linear' takes none")
            given = self._check_classes(classes, "classes")
            if not self._may_learn_classes() and not np.array_equal(given, self.classes_):
                raise ValueError(f"classes {given.tolist()} differ from the network's classes_ "
                                 f"{self.classes_.tolist()}")
        # never learnt from y: one part need not hold every class
        Y, _ = self._check_y(y, X.shape[0], classes=given)
        w = _check_sample_weight(sample_weight, X.shape[0])
        settings = self._training_settings(optimizer, learning_rate, l2, max_norm, momentum)
        self._start_training(settings, given)
        history = _training.run(self, self._optimizer, X, Y, epochs=1, batch_size=batch_size, rng=self._rng,
                                shuffle=shuffle, sample_weight=w, l2=self.l2, max_norm=self.max_norm,
                                name_steps=True)
        return history["loss"][0]

    def _may_learn_classes(self):
        return self.output != "linear" and not self._trained and not self._classes_given

    def _check_validation(self, validation_data, classes):
        if validation_data is None:
            return None
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be (X_val, y_val) or (X_val, y_val, sample_weight_val)")
        Xv = self._check_X(validation_data[0], "validation_data[0]")
        # against the classes this fit is about to adopt
        Yv, _ = self._check_y(validation_data[1], Xv.shape[0], name="validation_data[1]", classes=classes)
        wv = _check_sample_weight(validation_data[2], Xv.shape[0], "validation_data[2]") \
            if len(validation_data) == 3 else None
        return Xv, Yv, wv

    def _training_settings(self, optimizer, learning_rate, l2, max_norm, momentum):
        """Checked settings of a training call; nothing set yet."""
        self.check_params(writable=True)
        l2 = _check_real(l2, "l2", 0.0, low_open=False)
        if max_norm is not None:
            max_norm = _check_real(max_norm, "max_norm", 0.0)
        fresh = make_optimizer(optimizer, [], learning_rate, momentum)  # checks name, rate, momentum
        return fresh, l2, max_norm

    def _start_training(self, settings, classes):
        """Commit a checked training call's settings (the only place they are set)."""
        fresh, self.l2, self.max_norm = settings
        if classes is not None:
            self.classes_ = classes
        params = self.params
        # the optimizer's state goes on from the last call if it is the same
        # optimizer and still laid out like the parameters (a network whose
        # layers were replaced, or a tampered state, gets a fresh one)
        if self._optimizer is None or self._optimizer.name != fresh.name or not self._optimizer.fits(params):
            self._optimizer = make_optimizer(fresh.name, params, fresh.learning_rate, fresh.momentum)
        self._optimizer.learning_rate, self._optimizer.momentum = fresh.learning_rate, fresh.momentum
        self._trained = True

    # ------------------------------------------------------------ inference

    def predict_proba(self, X, *, mc_samples=None, return_samples=False):
        """Output probabilities (or values for output="linear"), dropout off.

        With ``mc_samples=T``, Monte Carlo dropout (Gal & Ghahramani 2016):
        T passes with dropout on, returning ``(mean, std)`` over them. For
        output="linear" these are the predictive mean and the spread of the
        passes, without observation noise (add ``1 / tau`` to the variance
        for a predictive distribution; :mod:`cydrop.uncertainty`).

        Parameters
        ----------
        X : array (n_samples, n_features)
        mc_samples : int >= 1 or None
        return_samples : bool
            With ``mc_samples``, also return every pass's outputs, an array
            (T, n_samples, n_outputs) of the network's dtype (what
            :func:`cydrop.uncertainty.predictive_log_likelihood` takes).

        Returns
        -------
        P : ndarray (n_samples, n_outputs), without ``mc_samples``
        (mean, std) or (mean, std, samples), with ``mc_samples``
        """
        X = self._check_X(X)
        check_bool(return_samples, "return_samples")
        if mc_samples is None:
            if return_samples:
                raise ValueError("return_samples=True needs mc_samples")
            return self.predict_output(X)
        moments = self.mc_moments(X, check_positive_int(mc_samples, "mc_samples"), samples=return_samples)
        return (moments[0].astype(self.dtype), moments[1].astype(self.dtype)) + moments[2:]

    def predict(self, X):
        """Class labels (classification) or values (output="linear"), dropout off."""
        P = self.predict_proba(X)
        if self.output == "linear":
            return P[:, 0] if P.shape[1] == 1 else P
        # only outputs that have a label compete: the classes may be fewer than the outputs
        n_classes = len(self.classes_)
        idx = (P[:, 0] > 0.5).astype(int) if self.output == "sigmoid" else P[:, :n_classes].argmax(axis=1)
        return self.classes_[np.minimum(idx, n_classes - 1)]

    def score(self, X, y, sample_weight=None):
        """Accuracy (classification) or R^2 averaged over the outputs (output="linear"), dropout off."""
        X, Y, w, _ = self._check_data(X, y, sample_weight)
        return self.evaluate(X, Y, w)[1]

    def cost(self, X, y, *, l2=None):
        """The cost J with dropout off: mean data loss plus the L2 term
        (``l2`` of the last fit unless given)."""
        X, Y, _, _ = self._check_data(X, y, None)
        l2 = self.l2 if l2 is None else _check_real(l2, "l2", 0.0, low_open=False)
        return self.objective(X, Y, l2)

    def gradient_check(self, X, y, *, eps=1e-6, max_checks=200, seed=0):
        """Relative difference between backprop and central differences, dropout off.

        Runs on a float64 copy of the network (so it also checks float32 nets).
        ``max_checks`` parameters, chosen at random, are perturbed (all when
        there are fewer). Returns ``||num - grad|| / (||num|| + ||grad||)``;
        below 1e-7 means backprop is right.
        """
        X, Y, _, _ = self._check_data(X, y, None)
        return _checks.gradient_check(self, X, Y, eps=eps, max_checks=max_checks, seed=seed)

    def check(self, X, y, *, iterations=50, learning_rate=0.05, eps=1e-6, max_checks=200):
        """The debugging recipe for dropout nets, in one call.

        On a float64 copy of the network with dropout off (this network and
        its keep_prob are left untouched): runs ``iterations`` steps of
        full-batch gradient descent at ``learning_rate``, recording J at the
        start and after every step; says whether J fell on every iteration
        (a J that rises with a correct gradient asks for a smaller
        ``learning_rate``); and runs :meth:`gradient_check`.

        Returns
        -------
        CheckReport
            ``costs`` (list of ``iterations + 1`` floats, J before each step
            and after the last), ``monotonic`` (bool), ``gradient_error``
            (float), ``learning_rate``, ``iterations``.
        """
        iterations = check_positive_int(iterations, "iterations")
        learning_rate = _check_real(learning_rate, "learning_rate", 0.0)
        X, Y, _, _ = self._check_data(X, y, None)
        return _checks.check(self, X, Y, iterations=iterations, learning_rate=learning_rate, eps=eps,
                             max_checks=max_checks)

    def _float64_twin(self):
        """A float64 copy with dropout off (the checks' network)."""
        twin = MLP(self.layer_sizes, [1.0] * len(self.weights), self.activation, self.output, "float64", 0)
        twin.weights = [W.astype(np.float64) for W in self.weights]
        twin.biases = [b.astype(np.float64) for b in self.biases]
        twin.classes_ = self.classes_
        return twin

    # ------------------------------------------------------------ files

    def save(self, file):
        """Write the network to ``file`` (a path or a binary file object).

        An .npz of arrays plus a JSON header, never a pickle: the weights,
        the classes with their dtype, the training state (optimizer and its
        state arrays, step count, the shuffling and mask generators'
        positions), so a loaded network trains on exactly as this one would.
        """
        _mlp_file.save(self, file)

    @classmethod
    def load(cls, file):
        """Read a network written by :meth:`save` (a path or a binary file object); never unpickles.

        Every member of the file is checked against the header before its
        data is read (``cydrop._model_file``): nothing is allocated beyond
        what the file holds, and no code in the file is ever run.

        Raises
        ------
        ValueError
            Not a cydrop model file, truncated, compressed or encrypted, of
            another format version, an invalid header, arrays that disagree
            with the header, object arrays, NaN or inf weights.
        FileNotFoundError
        """
        return _mlp_file.load(cls, file)

    def __repr__(self):
        return (f"cydrop.MLP({self.layer_sizes}, keep_prob={self.keep_prob}, activation={self.activation!r}, "
                f"output={self.output!r}, dtype={self.dtype.name!r})")


def _as_numeric(data, name):
    """An ndarray of data, pandas nullable columns included (missing values as NaN)."""
    if isinstance(data, np.ndarray):
        return data
    if hasattr(data, "to_numpy") and hasattr(data, "dtypes"):  # a pandas Series or DataFrame
        dtypes = [data.dtypes] if not hasattr(data.dtypes, "__iter__") else list(data.dtypes)
        if all(getattr(d, "kind", "O") in "fiub" or hasattr(d, "numpy_dtype") for d in dtypes):
            return data.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(data)


def _as_labels(data, name):
    """Labels as an ndarray; a pandas nullable column with missing values is refused as NaN."""
    dtype = getattr(data, "dtype", None)
    if hasattr(data, "to_numpy") and hasattr(dtype, "numpy_dtype"):  # pandas Int64, boolean, Float64 ...
        if data.isna().to_numpy().any():
            raise ValueError(f"{name} contains NaN (missing values)")
        return data.to_numpy(dtype=dtype.numpy_dtype)
    return np.asarray(data)


def _check_finite(arr, name):
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains {'NaN' if np.isnan(arr).any() else 'infinity'}")


def _check_sample_weight(sample_weight, n, name="sample_weight"):
    """float64 (n,) of finite weights >= 0 with a positive sum, or None."""
    if sample_weight is None:
        return None
    w = _as_numeric(sample_weight, name)
    if w.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be numeric, got dtype {w.dtype}")
    w = np.asarray(w, dtype=np.float64)
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{name} must hold finite values >= 0")
    if not w.sum() > 0:
        raise ValueError(f"{name} sums to 0: no sample would count")
    return w


def _data_conversion_warning():
    """scikit-learn's DataConversionWarning when scikit-learn is installed
    (imported only when warning: cydrop does not need it), else UserWarning."""
    try:
        from sklearn.exceptions import DataConversionWarning
    except ImportError:
        return UserWarning
    return DataConversionWarning


def dropout_l2_equivalent(X, keep_prob):
    """Per-feature L2 weights that input dropout equals in expectation.

    For linear least squares with inverted dropout on the inputs, the
    expected loss is the plain loss plus ``sum_j lambda_j w_j^2`` with
    ``lambda_j = (1 - p) / p * sum_i x_ij^2`` (Wager, Wang & Liang, 2013):
    dropout is an L2 penalty that adapts to each feature's scale.

    Parameters
    ----------
    X : array (n_samples, n_features)
    keep_prob : float in (0, 1]

    Returns
    -------
    ndarray (n_features,) of float64

    Raises
    ------
    ValueError
        ``X`` not 2-D or not finite; ``keep_prob`` outside (0, 1].
    TypeError
        ``keep_prob`` not a number.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> X = np.array([[1.0, 10.0], [1.0, -10.0]])
    >>> cydrop.dropout_l2_equivalent(X, 0.5)   # the feature of larger scale is penalised more
    array([  2., 200.])
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or inf")
    p = check_keep_prob(keep_prob)
    return (1 - p) / p * np.sum(X * X, axis=0)
