"""cydrop.MLP: the face of the network, what a user holds.

Shaped around how dropout is used: a keep probability per layer, dropout on
only while training, the debugging habit of checking with keep_prob = 1 that
the cost J falls on every iteration (:meth:`MLP.check`), and training that
stops on a cost measured with dropout off. The face checks data and options
(``data.py``), then hands arrays to the network state (``network.py``), an
engine (``engines/``), the optimizers (``optimizers.py``) and the one
training loop (``training.py``). Imports neither scikit-learn, tqdm nor
matplotlib at import time.
"""
import math

import numpy as np

from .._validation import check_bool, check_positive_int, check_real
from . import data, debugging, engines, model_file, training
from .model_file import TrainingState
from .network import ConcreteSettings, Network
from .optimizers import make_optimizer

__all__ = ["MLP"]


class MLP:
    """Multi-layer perceptron with per-layer inverted dropout.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_features, hidden..., n_outputs]``, e.g. ``[40, 512, 512, 10]``.
        For ``output="sigmoid"`` the last size is 1.
    keep_prob : float, "learn", or sequence of float or "learn", default 1.0
        A float applies to every hidden layer's output (the input features
        keep 1.0). A sequence has one entry per dense layer: entry 0 for the
        input features, entry i for the output of hidden layer i. ``"learn"``
        (for every layer, the features' included, or as an entry) learns
        the layer's keep probability by gradient descent instead: Concrete
        dropout (Gal, Hron & Kendall 2017), a relaxed mask whose rate is a
        parameter, with the prior's two terms added to the cost (see
        ``lengthscale``); :attr:`keep_prob_` holds the learned values.
        Checked again when assigned later (``net.keep_prob = ...``).
    activation : {"relu", "tanh", "sigmoid", "linear"}, default "relu"
        Hidden-layer activation.
    output : {"softmax", "sigmoid", "linear", "gaussian"}, default "softmax"
        Multi-class cross-entropy, binary cross-entropy, squared error
        (``0.5 * ||p - y||^2`` per sample), or a Gaussian with a variance
        learned per sample: the last layer's 2k units are the means of k
        targets, then their log-variances, and the loss is the negative
        log-likelihood (``layer_sizes`` ends with 2k).
    dtype : float32 or float64 (anything ``numpy.dtype`` reads as one), default "float32"
    seed : int or None
        Seeds the weight initialisation, the shuffling and the dropout masks.
    classes : array-like or None
        Class labels of the outputs (classification): one per output unit
        (two for ``output="sigmoid"``), sorted on construction. Without
        them a network's classes are ``0 .. n_outputs - 1`` (``[0, 1]`` for
        ``output="sigmoid"``) until its first training, which takes them
        from the labels it is given; those must then name every output.
    init : {"auto", "glorot_uniform", "sklearn"}, default "auto"
        Initial weights: "auto" draws He normal (variance 2 / n_in) for ReLU
        hidden layers and Glorot normal (2 / (n_in + n_out)) for the others;
        "glorot_uniform" draws every layer from U(-a, a),
        a = sqrt(6 / (n_in + n_out)), Keras's default; both start the biases
        at 0. "sklearn" is scikit-learn's MLP's (and the estimators'
        default): weights and biases from U(-a, a),
        a = sqrt(f / (n_in + n_out)), f = 2 for ``activation="sigmoid"``,
        else 6.
    init_keep_prob : float in (0, 1), default 0.9
        The keep probability a learned layer starts from (the reference
        code's drop probability 0.1).
    temperature : float > 0, default 0.1
        Of the relaxed mask of the learned layers: as it tends to 0 the mask
        tends to a Bernoulli one (0.1, the reference's for dense layers).
    lengthscale : float > 0, default 1e-2
        The prior length-scale l of the learned layers' weights. Training
        adds ``l^2 / (2 N) * ||W||^2 / keep_prob - K H(p) / N`` for each
        learned layer (N the training rows, K the layer's input width,
        H(p) the entropy of its drop probability), the KL term of the
        method for cydrop's losses, which are negative log-likelihoods.
        A larger l is a stronger prior on the weights, and drops more.
    engine : {"auto", "compiled", "reference"}, default "auto"
        What runs the passes (``cydrop.mlp.engines``): "compiled" makes a
        whole epoch, or all Monte Carlo passes, one call into compiled code
        (at most 8 dense layers); "reference" runs the network layer by
        layer through :func:`cydrop.dense_forward` and
        :func:`cydrop.dense_backward`, the readable reference. Both give the
        same masks and the same results to float round-off. "auto" takes
        the compiled engine where it is the faster one (layers of at most
        256 units, or wider ones outside deterministic mode).

    Raises
    ------
    TypeError
        ``layer_sizes`` not a sequence of ints; ``keep_prob`` not a number or
        a sequence of numbers; ``seed`` not an int.
    ValueError
        Fewer than two sizes or a size < 1; an unknown ``activation``,
        ``output``, ``init``, ``engine`` or ``dtype``; ``keep_prob`` outside
        (0, 1] or not one entry per dense layer; ``output="sigmoid"`` with
        more than one output unit, ``output="gaussian"`` with an odd number;
        ``classes`` with a regression output, or not one label per output;
        ``engine="compiled"`` for more than 8 dense layers.

    Attributes
    ----------
    weights : list of ndarray (n_in, n_out)
    biases : list of ndarray (n_out,)
    classes_ : ndarray or None
        Class labels (None for ``output="linear"`` or ``"gaussian"``).

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
                 dtype="float32", seed=None, classes=None, init="auto", init_keep_prob=0.9, temperature=0.1,
                 lengthscale=1e-2, engine="auto"):
        concrete = ConcreteSettings(init_keep_prob, temperature, lengthscale)
        self._network = Network(layer_sizes, keep_prob, activation, output, dtype, seed, init, concrete)
        self._engine_choice = engines.check_engine(engine, self._network)
        self._engine = None
        self._training = TrainingState(classes_given=classes is not None)
        if self._regression:
            if classes is not None:
                raise ValueError(f"classes are for classification outputs; output={output!r} takes none")
            self.classes_ = None
        elif classes is None:
            self.classes_ = np.arange(self._n_labels)
        else:
            self.classes_ = self._full_classes(data.check_classes(classes, self._network, "classes"), "classes")

    # ------------------------------------------------------------ settings and parameters

    layer_sizes = property(lambda self: list(self._network.layer_sizes),
                           doc="``[n_features, hidden..., n_outputs]``.")
    activation = property(lambda self: self._network.activation, doc="Hidden-layer activation.")
    output = property(lambda self: self._network.output, doc="Output layer and loss.")
    dtype = property(lambda self: self._network.dtype, doc="numpy.dtype of the weights and the computation.")
    seed = property(lambda self: self._network.seed, doc="The seed the network was built with.")
    init = property(lambda self: self._network.init, doc="How the initial weights were drawn.")
    engine = property(lambda self: self._engine_choice, doc="The engine setting (see the class docstring).")
    init_keep_prob = property(lambda self: self._network.concrete.init_keep_prob,
                              doc="The keep probability a learned layer starts from.")
    temperature = property(lambda self: self._network.concrete.temperature,
                           doc="The temperature of the learned layers' relaxed masks.")
    lengthscale = property(lambda self: self._network.concrete.lengthscale,
                           doc="The prior length-scale of the learned layers' weights.")

    @property
    def keep_prob(self):
        """Keep probability of each dense layer's input (entry 0: the features).

        Assign a float (every hidden layer's output; the features keep 1.0),
        ``"learn"`` or one entry per dense layer (a float or ``"learn"``);
        checked on assignment. A layer that starts to learn its rate starts
        at ``init_keep_prob``, its optimizer moments at 0; one that learned
        it already goes on from where it is, moments included.
        :attr:`keep_prob_` holds the values in use."""
        return self._network.keep_prob

    @keep_prob.setter
    def keep_prob(self, keep_prob):
        before = self._network.learned_layers
        self._network.keep_prob = keep_prob
        after = self._network.learned_layers
        if self._training.optimizer is not None and after != before:
            # the optimizer's state is laid out like the parameters (weights,
            # biases, then the p_logits): its p_logit entries must follow the
            # learned layers, or a model file would declare other arrays than
            # it holds and a new p_logit would take another layer's moments
            n = 2 * self._network.n_layers
            for state in self._training.optimizer.state:
                moments = dict(zip(before, state[n:]))
                state[n:] = [moments.get(i, np.zeros(1, dtype=self.dtype)) for i in after]

    @property
    def keep_prob_(self):
        """The keep probability of each layer now: its fixed value, or what
        it has learned (``1 - sigmoid(p_logit)``) for a learned layer."""
        return self._network.keep_prob_values()

    @property
    def weights(self):
        """Weights of each dense layer, ``(n_in, n_out)`` arrays: edit them in
        place, or replace one with a C-contiguous array of the same shape and dtype."""
        return self._network.weights

    @property
    def biases(self):
        """Biases of each dense layer, ``(n_out,)`` arrays (as :attr:`weights`)."""
        return self._network.biases

    @property
    def _regression(self):
        return self._network.output in ("linear", "gaussian")

    @property
    def _n_labels(self):
        """Class labels a classification network has: one per output, two for a sigmoid unit."""
        return 2 if self._network.output == "sigmoid" else self._network.layer_sizes[-1]

    def _full_classes(self, classes, name):
        """classes, refused unless they name every output (a network has one label per output)."""
        if len(classes) != self._n_labels:
            raise ValueError(f"{name} has {len(classes)} class(es), the network has {self._n_labels} "
                             f"{'outputs' if self._network.output == 'softmax' else 'classes (one sigmoid unit)'}; "
                             "give one label per output (classes= at construction names them all)")
        return classes

    def _current_engine(self, network=None):
        """The engine for the network now (the one used last while it still is)."""
        if network is not None:
            return engines.select(network, self._engine_choice)
        self._engine = engines.select(self._network, self._engine_choice, self._engine)
        return self._engine

    # ------------------------------------------------------------ training

    def fit(self, X, y, *, epochs, batch_size, optimizer="adam", learning_rate=1e-3, l2=0.0,
            max_norm=None, momentum=0.9, beta1=0.9, beta2=0.999, eps=1e-8, eps_hat=False, schedule="constant",
            power_t=0.5, sample_weight=None, validation_data=None, early_stopping=None,
            tol=0.0, eval_every=1, track_cost=False, shuffle=True, progress=True, verbose=False):
        """Train with mini-batches, dropout on; stop on a cost measured with dropout off.

        Parameters
        ----------
        X : array (n_samples, n_features), or a SciPy sparse matrix
            A sparse X is densified one mini-batch at a time (as CSR rows).
        y : array (n_samples,) of labels, or (n_samples[, n_outputs]) values for output="linear"
        epochs : int >= 1
            The most epochs to train (a cap when ``early_stopping`` is set).
        batch_size : int >= 1
        optimizer : {"adam", "sgd", "momentum", "nesterov"}
            The optimizer's state (moments, step count) carries over to the
            next ``fit`` or ``partial_fit`` with the same optimizer.
            "nesterov" is momentum with Nesterov's look-ahead
            (``param += momentum * velocity - learning_rate * grad`` after the
            velocity update, as scikit-learn's ``nesterovs_momentum``).
        learning_rate : float > 0
            The initial rate (see ``schedule``).
        l2 : float >= 0
            Cost ``J = loss + l2 / (2 * batch) * sum ||W||^2`` (weights only).
        max_norm : float > 0 or None
            Cap each unit's incoming weight vector at this L2 norm after each
            update (Srivastava et al. 2014).
        momentum : float in [0, 1)
            For optimizer="momentum" and "nesterov".
        beta1, beta2 : float in [0, 1); eps : float > 0
            Adam's decay rates of the moments and its epsilon (Kingma & Ba
            2015, Algorithm 1: ``eps`` is added to the bias-corrected
            ``sqrt(v_hat)``, as PyTorch's Adam).
        eps_hat : bool
            Adam's ``eps`` is the paper's "epsilon hat" instead, added to
            ``sqrt(v)`` before the bias correction, as scikit-learn's and
            Keras's Adam (:func:`cydrop.optim.adam_update`).
        schedule : {"constant", "invscaling", "adaptive"}
            The learning rate's course, as scikit-learn's ``learning_rate``:
            "constant" keeps ``learning_rate``; "invscaling" sets it after
            every epoch to ``learning_rate / (samples + 1) ** power_t``,
            ``samples`` the rows this optimizer has trained on; "adaptive"
            divides it by 5 whenever ``early_stopping`` would stop, and
            stops once it is at or below 1e-6 (without ``early_stopping``
            it stays constant).
        power_t : float >= 0
            The exponent of "invscaling".
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
        shuffle : bool, numpy.random.Generator or numpy.random.RandomState
            Shuffle the rows before every epoch: True with the network's own
            generator, or with the one given (the scikit-learn estimators
            give their ``random_state``). Each epoch permutes the previous
            epoch's order, as scikit-learn's MLP does.
        progress, verbose : bool
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
            whether the rule stopped before ``epochs``; ``keep_prob`` when a
            layer learns its rate: every layer's keep probability after each
            epoch (as :attr:`keep_prob_`).

        Raises
        ------
        ValueError, TypeError
            Bad data or options (named); the network is left as it was.
        FloatingPointError
            The loss, the cost J or a weight became NaN or infinite, or the
            optimizer's state overflowed (checked after every epoch); the
            message names the epoch.
        """
        epochs = check_positive_int(epochs, "epochs")
        batch_size = check_positive_int(batch_size, "batch_size")
        eval_every = check_positive_int(eval_every, "eval_every")
        tol = check_real(tol, "tol", 0.0, low_open=False)
        if early_stopping is not None and early_stopping != math.inf:
            early_stopping = check_positive_int(early_stopping, "early_stopping")
        for name, value in (("track_cost", track_cost), ("progress", progress), ("verbose", verbose)):
            check_bool(value, name)
        shuffle, rng = self._shuffle_rng(shuffle)
        X = data.check_X(X, self._network)
        Y, classes = self._encode(y, X.shape[0], learn_classes=self._may_learn_classes())
        w = data.check_sample_weight(sample_weight, X.shape[0])
        validation = self._check_validation(validation_data, classes)
        settings = self._training_settings(optimizer, learning_rate, l2, max_norm, momentum, beta1=beta1,
                                           beta2=beta2, eps=eps, eps_hat=eps_hat, schedule=schedule, power_t=power_t)
        self._start_training(settings, classes, X.shape[0])
        self._training.stream_rows = 0
        return training.run(self._network, self._current_engine(), self._training.optimizer, X, Y, epochs=epochs,
                            batch_size=batch_size, rng=rng, shuffle=shuffle, sample_weight=w, l2=self._training.l2,
                            max_norm=self._training.max_norm, prior=self._training.prior, validation=validation,
                            patience=early_stopping,
                            tol=tol, eval_every=eval_every, track_cost=track_cost, progress=progress,
                            verbose=verbose)

    def partial_fit(self, X, y, *, classes=None, batch_size=None, sample_weight=None, optimizer="adam",
                    learning_rate=1e-3, l2=0.0, max_norm=None, momentum=0.9, beta1=0.9, beta2=0.999, eps=1e-8,
                    eps_hat=False, schedule="constant", power_t=0.5, shuffle=True, n_samples=None):
        """One pass over (X, y) in mini-batches of ``batch_size``, for data that arrives in parts.

        ``batch_size=None`` makes the whole of X one batch (one update).
        ``classes`` (all labels the stream will contain) may be given on the
        first call, as in scikit-learn; without them the labels must be among
        ``classes_`` (``0 .. n_outputs - 1`` unless given at construction):
        partial_fit never takes classes from y, as one part need not hold
        every class. Later calls must give the same classes or none. Returns the mean
        training loss of the pass (with dropout). The optimizer's state
        carries over between calls; the other options are :meth:`fit`'s
        ("invscaling" goes on lowering the rate from call to call,
        "adaptive" has no stopping rule here and keeps it).

        The layers that learn their keep_prob weigh their prior by ``1 / N``,
        N the training rows (:class:`MLP`'s ``lengthscale``). A stream's N is
        ``n_samples`` when given (the size of the data set the parts come
        from: give it when the parts repeat rows, epoch after epoch), else
        the rows given to partial_fit since the last :meth:`fit`, this
        call's included.
        """
        X = data.check_X(X, self._network)
        batch_size = X.shape[0] if batch_size is None else check_positive_int(batch_size, "batch_size")
        shuffle, rng = self._shuffle_rng(shuffle)
        given = None
        if classes is not None:
            if self._regression:
                raise ValueError(f"classes are for classification outputs; output={self.output!r} takes none")
            given = self._full_classes(data.check_classes(classes, self._network, "classes"), "classes")
            if not self._may_learn_classes() and not np.array_equal(given, self.classes_):
                raise ValueError(f"classes {given.tolist()} differ from the network's classes_ "
                                 f"{self.classes_.tolist()}")
        # never learnt from y: one part need not hold every class
        Y, _ = self._encode(y, X.shape[0], classes=given)
        w = data.check_sample_weight(sample_weight, X.shape[0])
        settings = self._training_settings(optimizer, learning_rate, l2, max_norm, momentum, beta1=beta1,
                                           beta2=beta2, eps=eps, eps_hat=eps_hat, schedule=schedule, power_t=power_t)
        if n_samples is not None:
            n_samples = check_positive_int(n_samples, "n_samples")
        stream_rows = self._training.stream_rows + X.shape[0]
        self._start_training(settings, given, stream_rows if n_samples is None else n_samples)
        self._training.stream_rows = stream_rows
        history = training.run(self._network, self._current_engine(), self._training.optimizer, X, Y, epochs=1,
                               batch_size=batch_size, rng=rng, shuffle=shuffle, sample_weight=w,
                               l2=self._training.l2, max_norm=self._training.max_norm, prior=self._training.prior,
                               name_steps=True)
        return history["loss"][0]

    def _encode(self, y, n, name="y", learn_classes=False, classes=None):
        """(Y, learnt classes or None): y encoded for the network (see data.encode_y)."""
        if learn_classes:
            Y, learnt = data.encode_y(y, n, self._network, None, name, learn_classes=True)
            return Y, self._full_classes(learnt, name)
        return data.encode_y(y, n, self._network, self.classes_ if classes is None else classes, name)

    def _may_learn_classes(self):
        return (not self._regression and not self._training.trained
                and not self._training.classes_given)

    def _check_validation(self, validation_data, classes):
        if validation_data is None:
            return None
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be (X_val, y_val) or (X_val, y_val, sample_weight_val)")
        Xv = data.check_X(validation_data[0], self._network, "validation_data[0]")
        # against the classes this fit is about to adopt
        Yv, _ = self._encode(validation_data[1], Xv.shape[0], name="validation_data[1]", classes=classes)
        wv = data.check_sample_weight(validation_data[2], Xv.shape[0], "validation_data[2]") \
            if len(validation_data) == 3 else None
        return Xv, Yv, wv

    def _shuffle_rng(self, shuffle):
        """(shuffle as a bool, the generator that shuffles) of a training call's ``shuffle``."""
        if isinstance(shuffle, (np.random.Generator, np.random.RandomState)):
            return True, shuffle
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError("shuffle must be a bool, a numpy.random.Generator or a numpy.random.RandomState, "
                            f"got {type(shuffle).__name__} {shuffle!r}")
        return bool(shuffle), self._network.shuffle_rng

    def _training_settings(self, optimizer, learning_rate, l2, max_norm, momentum, **hyper):
        """Checked settings of a training call; nothing set yet."""
        self._network.require_kernel_ready(writable=True)
        l2 = check_real(l2, "l2", 0.0, low_open=False)
        if max_norm is not None:
            max_norm = check_real(max_norm, "max_norm", 0.0)
        # checks the name, the rate, momentum, Adam's settings and the schedule
        fresh = make_optimizer(optimizer, [], learning_rate, momentum, **hyper)
        if fresh.name == "adam":
            # the kernel adds eps (times sqrt(1 - beta2^t) unless eps_hat, least
            # at t = 1) in the network's dtype: were it 0 there, an element
            # with a zero gradient so far would become 0 / 0
            smallest = fresh.eps if fresh.eps_hat else fresh.eps * math.sqrt(1.0 - fresh.beta2)
            if self.dtype.type(smallest) == 0:
                raise ValueError(f"eps={fresh.eps!r} is too small for {self.dtype} (it rounds to 0)")
        return fresh, l2, max_norm

    def _start_training(self, settings, classes, n_samples):
        """Commit a checked training call's settings (the only place they are set)."""
        fresh, self._training.l2, self._training.max_norm = settings
        # the learned layers' prior is scaled by the rows of this training call
        self._training.prior = (self._network.concrete.regularizer_weights(n_samples)
                                if self._network.learned_layers else None)
        if classes is not None:
            self.classes_ = classes
        params = self._network.params
        # the optimizer's state goes on from the last call if it is the same
        # optimizer and still laid out like the parameters (a network whose
        # layers were replaced, or a tampered state, gets a fresh one)
        kept = self._training.optimizer
        if kept is None or kept.name != fresh.name or not kept.fits(params):
            kept = self._training.optimizer = make_optimizer(fresh.name, params, fresh.learning_rate)
        kept.configure(fresh)
        self._training.trained = True

    # ------------------------------------------------------------ inference

    def predict_proba(self, X, *, mc_samples=None, return_samples=False):
        """Output probabilities (or values for output="linear"), dropout off.

        With ``mc_samples=T``, Monte Carlo dropout (Gal & Ghahramani 2016):
        T passes with dropout on, returning ``(mean, std)`` over them. For
        output="linear" these are the predictive mean and the spread of the
        passes, without observation noise (add ``1 / tau`` to the variance
        for a predictive distribution; :mod:`cydrop.uncertainty`).

        For output="gaussian" the outputs are the k means, then the k
        variances; with ``mc_samples`` the mean and standard deviation of the
        predictive distribution of each target, ``(n_samples, k)`` each: the
        mean of the passes' means, and ``sqrt(variance of the passes' means
        + mean of the passes' variances)`` (the learned noise included).

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
        X = data.check_X(X, self._network)
        check_bool(return_samples, "return_samples")
        if mc_samples is None:
            if return_samples:
                raise ValueError("return_samples=True needs mc_samples")
            return training.predict(self._network, self._current_engine(), X)
        mc_samples = check_positive_int(mc_samples, "mc_samples")
        # the passes take every chunk in every pass: a sparse X densified whole
        total, total_sq, out = self._current_engine().mc_passes(self._network, data.dense(X), mc_samples,
                                                                samples=return_samples)
        mean = total / mc_samples
        var = np.maximum(total_sq / mc_samples - mean * mean, 0)
        if not self._network.dropout_on:
            var[...] = 0  # every pass is the same; round-off aside
        if self._network.output == "gaussian":   # the law of total variance
            k = self._network.n_targets
            mean, var = mean[:, :k], var[:, :k] + mean[:, k:]
        moments = (mean.astype(self.dtype), np.sqrt(var).astype(self.dtype))
        return moments + (out,) if return_samples else moments

    def predict(self, X):
        """Class labels (classification) or values (the means for output="gaussian"), dropout off."""
        P = self.predict_proba(X)
        if self._regression:
            P = P[:, :self._network.n_targets]
            return P[:, 0] if P.shape[1] == 1 else P
        idx = (P[:, 0] > 0.5).astype(int) if self._network.output == "sigmoid" else P.argmax(axis=1)
        return self.classes_[idx]

    def score(self, X, y, sample_weight=None):
        """Accuracy (classification) or R^2 averaged over the targets (regression), dropout off.

        The accuracy is that of :meth:`predict` (``sklearn.metrics.accuracy_score``'s,
        with ``sample_weight``)."""
        X = data.check_X(X, self._network)
        Y, _ = self._encode(y, X.shape[0])
        w = data.check_sample_weight(sample_weight, X.shape[0])
        return training.evaluate(self._network, self._current_engine(), X, Y, w)[1]

    def cost(self, X, y, *, l2=None):
        """The cost J with dropout off: mean data loss plus the L2 term
        (``l2`` of the last fit unless given), plus, for the layers that
        learn their keep_prob, the prior's terms (:class:`MLP`'s
        ``lengthscale``) weighed by ``1 / N``: N the training rows of the
        last fit (or partial_fit stream), or the rows of X before the
        network's learned layers have trained. :meth:`check` and
        :meth:`gradient_check` use the same J."""
        X = data.check_X(X, self._network)
        Y, _ = self._encode(y, X.shape[0])
        l2 = self._training.l2 if l2 is None else check_real(l2, "l2", 0.0, low_open=False)
        return training.cost(self._network, self._current_engine(), X, Y, l2, prior=self._prior(X.shape[0]))

    def _prior(self, n_rows):
        """The prior's coefficients for J (:meth:`cost`): the last training
        call's, or for ``n_rows`` rows when the learned layers have not
        trained since they were set (None without learned layers)."""
        if not self._network.learned_layers:
            return None
        return self._training.prior or self._network.concrete.regularizer_weights(n_rows)

    def gradient_check(self, X, y, *, eps=1e-6, max_checks=200, seed=0):
        """Relative difference between backprop and central differences, dropout off.

        Runs on a float64 copy of the network (so it also checks float32 nets).
        ``max_checks`` parameters, chosen at random with ``seed``, are
        perturbed by ``eps`` (all when there are fewer). Returns
        ``||num - grad|| / (||num|| + ||grad||)``; below 1e-7 means backprop
        is right.

        Raises
        ------
        ValueError, TypeError
            ``eps`` not a finite number > 0, ``max_checks`` not an int >= 1,
            ``seed`` not an int >= 0, or bad data.
        """
        eps, max_checks, seed = _check_gradient_settings(eps, max_checks, seed)
        X = data.dense(data.check_X(X, self._network))   # full-batch passes
        Y, _ = self._encode(y, X.shape[0])
        twin = self._network.float64_copy()
        return debugging.gradient_check(twin, self._current_engine(twin), X, Y, l2=self._training.l2,
                                        prior=self._prior(X.shape[0]), eps=eps,
                                        max_checks=max_checks, seed=seed)

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
        learning_rate = check_real(learning_rate, "learning_rate", 0.0)
        eps, max_checks, _ = _check_gradient_settings(eps, max_checks, 0)
        X = data.dense(data.check_X(X, self._network))   # full-batch passes
        Y, _ = self._encode(y, X.shape[0])
        twin = self._network.float64_copy()
        return debugging.check(twin, self._current_engine(twin), X, Y, l2=self._training.l2,
                               prior=self._prior(X.shape[0]),
                               iterations=iterations, learning_rate=learning_rate, eps=eps, max_checks=max_checks)

    # ------------------------------------------------------------ files

    def save(self, file):
        """Write the network to ``file``: a path (str, bytes or os.PathLike) or a binary file object.

        An .npz of arrays plus a JSON header, never a pickle: the weights,
        the classes with their dtype, the training state (optimizer and its
        state arrays, step count, the shuffling and mask generators'
        positions), so a loaded network trains on exactly as this one would.

        Raises
        ------
        TypeError
            ``file`` is neither a path nor a binary file object.
        ValueError
            A parameter or the optimizer state is NaN or infinite (as
            :meth:`load` would refuse the file), or ``classes_`` of a dtype
            a file cannot hold.
        """
        model_file.save(model_file.check_file(file), self._network, self._training, self.classes_,
                        self._engine_choice)

    @classmethod
    def load(cls, file):
        """Read a network written by :meth:`save` from ``file`` (a path or a
        binary file object, as :meth:`save` takes); never unpickles.

        Every member of the file is checked against the header before its
        data is read (``cydrop.mlp.model_file``): nothing is allocated beyond
        what the file holds, and no code in the file is ever run.

        Raises
        ------
        TypeError
            ``file`` is neither a path nor a binary file object.
        ValueError
            Not a cydrop model file, truncated, compressed or encrypted, of
            another format version, an invalid header, arrays that disagree
            with the header, object arrays, NaN or inf weights.
        FileNotFoundError
        """
        network, state, classes, engine = model_file.load(model_file.check_file(file))
        net = cls.__new__(cls)
        net._network, net._training, net.classes_ = network, state, classes
        net._engine_choice, net._engine = engines.check_engine(engine, network), None
        return net

    # ------------------------------------------------------------ copies

    def __getstate__(self):
        # an engine holds only caches it makes again on use
        return dict(self.__dict__, _engine=None)

    def __repr__(self):
        return (f"cydrop.MLP({self.layer_sizes}, keep_prob={self.keep_prob}, activation={self.activation!r}, "
                f"output={self.output!r}, dtype={self.dtype.name!r})")


def _check_gradient_settings(eps, max_checks, seed):
    """(eps, max_checks, seed) of a gradient check, checked."""
    eps = check_real(eps, "eps", 0.0)
    max_checks = check_positive_int(max_checks, "max_checks")
    seed = check_positive_int(seed, "seed", minimum=0)
    return eps, max_checks, seed
