"""cydrop.MLP: a multi-layer perceptron whose every dense layer is fused.

Shaped around how dropout is used: a keep probability per layer, dropout on
only while training, and the debugging habit of checking with keep_prob = 1
that the cost J falls on every iteration. Imports neither scikit-learn, tqdm
nor matplotlib at import time.
"""
import json
import math
import numbers

import numpy as np

from . import _small_net, optim
from ._generator import Generator
from ._model_file import read_model_file
from ._validation import check_keep_prob, check_positive_int
from . import dense
from .dense import ACTIVATIONS

__all__ = ["MLP", "dropout_l2_equivalent"]

_OUTPUTS = ("softmax", "sigmoid", "linear")
_OPTIMIZERS = ("sgd", "momentum", "adam")
_FORMAT, _VERSION = "cydrop-mlp", 1
# Rows per forward pass when predicting or evaluating: bounds the layer
# outputs (1024 rows of 512 float32 units are 2 MiB) so that they can stay in
# cache for the next pass. Its speed effect is not settled: on the demo
# network's 4000-row cost, benchmarks/bench_mlp.py (group mlp-cost-mnist1d)
# gave 11.9-16.3 ms in passes of 1024 rows and 13.5-14.8 ms in one pass,
# against 10.9-11.5 ms for the bare GEMMs (three runs, shared machine).
_PREDICT_BATCH = 1024


class MLP:
    """Multi-layer perceptron with per-layer inverted dropout.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_features, hidden..., n_outputs]``, e.g. ``[40, 512, 512, 10]``.
        For ``output="sigmoid"`` the last size is 1.
    keep_prob : float or sequence of float, default 1.0
        A float applies to every hidden layer's output (the input features
        keep 1.0). A sequence has one entry per dense layer: entry 0 for the
        input features, entry i for the output of hidden layer i.
    activation : {"relu", "tanh", "sigmoid", "linear"}, default "relu"
        Hidden-layer activation.
    output : {"softmax", "sigmoid", "linear"}, default "softmax"
        Multi-class cross-entropy, binary cross-entropy, or squared error.
    dtype : {"float32", "float64"}, default "float32"
    seed : int or None
        Seeds the weight initialisation, the shuffling and the dropout masks.

    Attributes
    ----------
    weights : list of ndarray (n_in, n_out)
    biases : list of ndarray (n_out,)
    classes_ : ndarray or None
        Class labels seen in training (classification outputs).

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> X = np.random.default_rng(0).standard_normal((200, 5)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(int)
    >>> net = cydrop.MLP([5, 16, 2], keep_prob=[1.0, 0.8], seed=0)
    >>> history = net.fit(X, y, epochs=20, batch_size=32, progress=False)
    >>> net.score(X, y) > 0.9
    True
    """

    def __init__(self, layer_sizes, keep_prob=1.0, activation="relu", output="softmax",
                 dtype="float32", seed=None):
        if isinstance(layer_sizes, (str, bytes)) or not hasattr(layer_sizes, "__len__"):
            raise TypeError("layer_sizes must be a sequence of ints such as [40, 512, 10]")
        if len(layer_sizes) < 2:
            raise ValueError(f"layer_sizes needs at least an input and an output size, got {list(layer_sizes)}")
        self.layer_sizes = [check_positive_int(n, "layer_sizes") for n in layer_sizes]
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {list(_OUTPUTS)}, got {output!r}")
        if output == "sigmoid" and self.layer_sizes[-1] != 1:
            raise ValueError(f"output='sigmoid' needs one output unit, layer_sizes ends with {self.layer_sizes[-1]}")
        if dtype not in ("float32", "float64", np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.activation, self.output = activation, output
        self.dtype = np.dtype(dtype)
        self.keep_prob = self._check_keep_probs(keep_prob)
        if seed is not None:
            Generator(seed)  # validates
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._gen = Generator(None if seed is None else int(seed))
        self.weights, self.biases = self._init_params()
        self.classes_ = None
        self.l2 = 0.0
        # small networks train one compiled call per epoch (cydrop._small_net);
        # False forces the per-layer path (kept for comparison and tests)
        self.compiled_training = True
        self._opt_state = None
        self._step = 0

    # ------------------------------------------------------------ set-up

    def _check_keep_probs(self, keep_prob):
        n_layers = len(self.layer_sizes) - 1
        if isinstance(keep_prob, numbers.Real) and not isinstance(keep_prob, (bool, np.bool_)):
            kp = check_keep_prob(keep_prob)
            return [1.0] + [kp] * (n_layers - 1)
        if isinstance(keep_prob, (str, bytes)) or not hasattr(keep_prob, "__len__"):
            raise TypeError(f"keep_prob must be a float or a sequence of floats, got {type(keep_prob).__name__}")
        if len(keep_prob) != n_layers:
            raise ValueError(f"keep_prob must have one entry per dense layer ({n_layers}), got {len(keep_prob)}")
        return [check_keep_prob(p, f"keep_prob[{i}]") for i, p in enumerate(keep_prob)]

    def _init_params(self):
        weights, biases = [], []
        for i, (n_in, n_out) in enumerate(zip(self.layer_sizes, self.layer_sizes[1:])):
            hidden = i < len(self.layer_sizes) - 2
            # He for ReLU layers, Glorot otherwise
            gain = 2.0 / n_in if hidden and self.activation == "relu" else 2.0 / (n_in + n_out)
            W = self._rng.standard_normal((n_in, n_out)) * math.sqrt(gain)
            weights.append(np.ascontiguousarray(W, dtype=self.dtype))
            biases.append(np.zeros(n_out, dtype=self.dtype))
        return weights, biases

    # ------------------------------------------------------------ data

    def _check_X(self, X, name="X"):
        X = np.asarray(X) if not isinstance(X, np.ndarray) else X
        if X.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a numeric array, got dtype {X.dtype}")
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"{name} is empty (0 samples)")
        if X.shape[1] != self.layer_sizes[0]:
            raise ValueError(f"{name} has {X.shape[1]} features, the network expects {self.layer_sizes[0]}")
        X = np.require(X, dtype=self.dtype, requirements=["C", "A"])  # contiguous and aligned for the kernels
        if not np.isfinite(X).all():
            raise ValueError(f"{name} contains NaN or inf")
        return X

    def _check_y(self, y, n, fitting, name="y"):
        """Targets as the network's output array: one-hot, 0/1 column, or values."""
        y = np.asarray(y)
        if y.ndim == 0:
            raise ValueError(f"{name} must hold one target per sample ({n}), got a scalar {y!r}")
        if y.shape[0] != n:
            raise ValueError(f"{name} has {y.shape[0]} samples but X has {n}")
        if self.output == "linear":
            if y.dtype.kind not in "fiu":
                raise TypeError(f"{name} must be numeric for output='linear', got dtype {y.dtype}")
            Y = y.reshape(n, -1).astype(self.dtype)
            if Y.shape[1] != self.layer_sizes[-1]:
                raise ValueError(f"{name} has {Y.shape[1]} targets per sample, the network has {self.layer_sizes[-1]} outputs")
            if not np.isfinite(Y).all():
                raise ValueError(f"{name} contains NaN or inf")
            return np.ascontiguousarray(Y)
        if y.ndim != 1:
            raise ValueError(f"{name} must be 1-D class labels, got shape {y.shape}")
        if fitting and self.classes_ is None:
            self._set_classes(y, name)
        if self.classes_ is None:
            raise ValueError("the network has not been fitted: call fit first")
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        unseen = self.classes_[idx] != y
        if unseen.any():
            raise ValueError(f"{name} has labels not seen in training: {np.unique(y[unseen])[:5].tolist()}")
        if self.output == "sigmoid":
            return idx.astype(self.dtype).reshape(n, 1)
        Y = np.zeros((n, self.layer_sizes[-1]), dtype=self.dtype)
        Y[np.arange(n), idx] = 1
        return Y

    def _set_classes(self, labels, name):
        classes = np.unique(np.asarray(labels))
        n_expected = 2 if self.output == "sigmoid" else self.layer_sizes[-1]
        if len(classes) > n_expected:
            raise ValueError(f"{name} has {len(classes)} classes, the network has room for {n_expected}")
        self.classes_ = classes

    # ------------------------------------------------------------ passes

    def _check_params(self, writable=False):
        """The layers' arrays as the kernels need them (writable to be trained).

        The passes below call the dense and optimizer kernels without their
        per-call checks, so the public ``weights`` and ``biases`` are checked
        here, once per pass: an array replaced by one of another shape would
        make a kernel read or write past its end."""
        n_layers = len(self.layer_sizes) - 1
        if len(self.weights) != n_layers or len(self.biases) != n_layers:
            raise ValueError(f"the network has {n_layers} layers but {len(self.weights)} weights "
                             f"and {len(self.biases)} biases")
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            shape = (self.layer_sizes[i], self.layer_sizes[i + 1])
            for name, arr, expected in ((f"weights[{i}]", W, shape), (f"biases[{i}]", b, shape[1:])):
                if not _kernel_ready(arr, self.dtype, expected, writable):
                    kind = "writable C-contiguous" if writable else "C-contiguous"
                    got = f"{type(arr).__name__} {getattr(arr, 'dtype', '')} {getattr(arr, 'shape', '')}"
                    raise ValueError(f"{name} must be a {kind} {self.dtype} array of shape {expected}, "
                                     f"got {got.rstrip()}")

    def _forward(self, X, train):
        """Output probabilities/values and the per-layer caches. X is checked
        (_check_X): (batch, layer_sizes[0]), the network's dtype, C order."""
        self._check_params()
        h, caches = X, []
        last = len(self.weights) - 1
        hidden = ACTIVATIONS[self.activation]
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            kp = self.keep_prob[i] if train else 1.0
            code = ACTIVATIONS["linear"] if i == last else hidden
            h, cache = dense._forward(h, W, b, kp, code, self._gen if kp < 1 else None)
            caches.append(cache)
        return _output_activation(self.output, h), caches

    def _loss_and_grad(self, P, Y):
        """Mean data loss of outputs P against targets Y, and dL/dz of the last layer."""
        n = P.shape[0]
        if self.output == "linear":
            diff = P - Y
            return 0.5 * float(np.sum(diff.astype(np.float64) ** 2)) / n, diff / n
        eps = np.finfo(self.dtype).tiny
        if self.output == "softmax":
            loss = -float(np.sum(Y * np.log(np.maximum(P, eps)), dtype=np.float64)) / n
        else:
            loss = -float(np.sum(Y * np.log(np.maximum(P, eps)) + (1 - Y) * np.log(np.maximum(1 - P, eps)),
                                 dtype=np.float64)) / n
        return loss, (P - Y) / n  # softmax/sigmoid with their cross-entropy

    def _l2_term(self, l2, n):
        if not l2:
            return 0.0
        return 0.5 * l2 / n * sum(float(np.sum(W.astype(np.float64) ** 2)) for W in self.weights)

    def _backward(self, grad, caches):
        grads = []
        for i in reversed(range(len(caches))):
            grad = np.ascontiguousarray(grad, dtype=self.dtype)
            if grad.shape != caches[i]._out.shape:  # the check dense_backward would make
                raise ValueError(f"gradient of layer {i} has shape {grad.shape}, its output {caches[i]._out.shape}")
            grad, dW, db = dense._backward(grad, caches[i], i > 0)
            grads.append((dW, db))
        grads.reverse()
        return grads

    # ------------------------------------------------------------ training

    def fit(self, X, y, *, epochs, batch_size, optimizer="adam", learning_rate=1e-3, l2=0.0,
            max_norm=None, momentum=0.9, validation_data=None, early_stopping=None, shuffle=True,
            progress=True):
        """Train with mini-batches; dropout on, one fused kernel call per layer and pass.

        Parameters
        ----------
        X : array (n_samples, n_features)
        y : array (n_samples,) of labels, or (n_samples[, n_outputs]) values for output="linear"
        epochs, batch_size : int >= 1
        optimizer : {"adam", "sgd", "momentum"}
        learning_rate : float > 0
        l2 : float >= 0
            Cost ``J = loss + l2 / (2 * batch) * sum ||W||^2`` (weights only).
        max_norm : float > 0 or None
            Cap each unit's incoming weight vector at this L2 norm after each
            update (Srivastava et al. 2014).
        momentum : float in [0, 1)
            For optimizer="momentum".
        validation_data : (X_val, y_val) or None
        early_stopping : int or None
            Stop after this many epochs without improvement of the validation
            loss (the training cost J without validation data) and restore the
            best weights.
        shuffle, progress : bool
            progress shows a tqdm bar when tqdm is installed.

        Returns
        -------
        history : dict of lists, one entry per epoch
            ``loss`` (training loss with dropout, mean over batches), ``cost``
            (J on the training set with dropout off), ``train_score``, and
            ``val_loss``/``val_score`` with validation data.

        Raises
        ------
        ValueError
            Bad data or parameters (named).
        FloatingPointError
            The loss, the cost J or a weight became NaN or infinite (checked
            after every epoch); the message names the epoch.
        """
        X = self._check_X(X)
        Y = self._check_y(y, X.shape[0], fitting=True)
        epochs = check_positive_int(epochs, "epochs")
        batch_size = check_positive_int(batch_size, "batch_size")
        self._set_training(optimizer, learning_rate, l2, max_norm, momentum)
        if early_stopping is not None:
            early_stopping = check_positive_int(early_stopping, "early_stopping")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (X_val, y_val)")
            Xv = self._check_X(validation_data[0], "validation_data[0]")
            val = (Xv, self._check_y(validation_data[1], Xv.shape[0], fitting=False, name="validation_data[1]"))

        history = {"loss": [], "cost": [], "train_score": []}
        if val is not None:
            history.update(val_loss=[], val_score=[])
        bar = _progress(epochs, progress)
        best = (math.inf, None, 0)
        compiled = self._compiled_trainer(batch_size)
        # and the per-epoch cost and scores in compiled passes
        evaluator = None if compiled is None else _small_net.predictor(
            self.weights, self.biases, self.activation, self.output, min(X.shape[0], _PREDICT_BATCH))
        try:
            for epoch in range(1, epochs + 1):
                order = self._rng.permutation(X.shape[0]) if shuffle else np.arange(X.shape[0])
                if compiled is not None:
                    # every batch of the epoch in one compiled call (cydrop._small_net)
                    loss_sum, self._step = _small_net.train_epoch(compiled, self._gen, X, Y, order, self._step)
                    loss = loss_sum / X.shape[0]
                else:
                    losses = []
                    for start in range(0, X.shape[0], batch_size):
                        idx = order[start:start + batch_size]
                        losses.append((self._train_step(X[idx], Y[idx]), len(idx)))
                    loss = sum(l * n for l, n in losses) / X.shape[0]
                cost, score = self._evaluate(X, Y, evaluator)
                cost += self._l2_term(self.l2, X.shape[0])
                # the weights too: a tanh or sigmoid layer turns infinite weights
                # into a finite loss
                if not (math.isfinite(loss) and math.isfinite(cost) and self._params_finite()):
                    raise FloatingPointError(
                        f"training diverged at epoch {epoch}: loss {loss}, cost {cost}, weights "
                        f"{'finite' if self._params_finite() else 'not finite'}; "
                        f"lower learning_rate (now {self.learning_rate})")
                history["loss"].append(loss)
                history["cost"].append(cost)
                history["train_score"].append(score)
                monitor = history["cost"][-1]
                if val is not None:
                    vloss, vscore = self._evaluate(*val, evaluator)
                    history["val_loss"].append(vloss)
                    history["val_score"].append(vscore)
                    monitor = vloss
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", **({"val": f"{history['val_score'][-1]:.3f}"} if val else {}))
                if early_stopping is not None:
                    if monitor < best[0]:
                        best = (monitor, self._snapshot(), 0)
                    else:
                        best = (best[0], best[1], best[2] + 1)
                        if best[2] >= early_stopping:
                            break
        finally:
            if bar is not None:
                bar.close()
        if early_stopping is not None and best[1] is not None:
            self._restore(best[1])
        return history

    def partial_fit(self, X, y, *, classes=None, optimizer="adam", learning_rate=1e-3, l2=0.0,
                    max_norm=None, momentum=0.9):
        """One update step on the mini-batch (X, y), for streaming data.

        ``classes`` (all labels the stream will contain) is needed on the
        first call of a classifier, as in scikit-learn: one batch need not
        hold every class. Returns the batch's training loss (with dropout).
        """
        X = self._check_X(X)
        if self.output != "linear" and self.classes_ is None:
            if classes is None:
                raise ValueError("classes must be given on the first partial_fit call of a classifier")
            self._set_classes(classes, "classes")
        Y = self._check_y(y, X.shape[0], fitting=False)
        self._set_training(optimizer, learning_rate, l2, max_norm, momentum)
        loss = self._train_step(X, Y)
        if not (math.isfinite(loss) and self._params_finite()):
            raise FloatingPointError(f"training diverged at step {self._step}: loss {loss}, weights "
                                     f"{'finite' if self._params_finite() else 'not finite'}; "
                                     f"lower learning_rate (now {self.learning_rate})")
        return loss

    def _params_finite(self):
        return all(np.isfinite(p).all() for p in self.weights + self.biases)

    def _set_training(self, optimizer, learning_rate, l2, max_norm, momentum):
        if optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(_OPTIMIZERS)}, got {optimizer!r}")
        for name, value, lo, hi in (("learning_rate", learning_rate, 0, math.inf), ("momentum", momentum, 0, 1)):
            if not isinstance(value, numbers.Real) or not (lo <= value < hi) or (name == "learning_rate" and value <= 0):
                raise ValueError(f"{name} must be a number in {'(0, inf)' if name == 'learning_rate' else '[0, 1)'}, got {value!r}")
        if not isinstance(l2, numbers.Real) or not (0 <= l2 < math.inf):
            raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
        if max_norm is not None and (not isinstance(max_norm, numbers.Real) or not (0 < max_norm < math.inf)):
            raise ValueError(f"max_norm must be a finite number > 0 or None, got {max_norm!r}")
        self._check_params(writable=True)
        params = self.weights + self.biases
        # The optimizer kernels run unchecked on this state: it is made like
        # the parameters, and made again if they no longer match it (a network
        # whose layers were replaced, or an unpickled state).
        if (self._opt_state is None or self._opt_state[0] != optimizer
                or not all(len(state) == len(params)
                           and all(_kernel_ready(a, p.dtype, p.shape, True) for a, p in zip(state, params))
                           for state in self._opt_state[1:])):
            zeros = [np.zeros_like(p, order="C") for p in params]
            second = [np.zeros_like(p, order="C") for p in params]
            self._opt_state = (optimizer, zeros, second)
            self._step = 0
        self.optimizer, self.learning_rate, self.l2 = optimizer, float(learning_rate), float(l2)
        self.max_norm, self.momentum = max_norm, float(momentum)

    def _compiled_trainer(self, batch_size):
        """The compiled epoch (cydrop._small_net) for this network and the
        settings of _set_training, or None when the network does not qualify
        (more than 8 layers or a layer wider than 256 units) or
        ``compiled_training`` was set to False."""
        if not getattr(self, "compiled_training", True) or not _small_net.qualifies(self.layer_sizes):
            return None
        _, first, second = self._opt_state
        return _small_net.trainer(self.weights, self.biases, self.keep_prob, self.activation, self.output,
                                  batch_size, self.optimizer, first, second, self.learning_rate,
                                  self.momentum, self.l2, self.max_norm)

    def _train_step(self, Xb, Yb):
        P, caches = self._forward(Xb, train=True)
        loss, grad = self._loss_and_grad(P, Yb)
        grads = self._backward(grad, caches)
        self._step += 1
        l2 = self.l2 / Xb.shape[0]
        name, first, second = self._opt_state
        params = self.weights + self.biases
        flat_grads = [g for g, _ in grads] + [g for _, g in grads]
        for k, (p, g) in enumerate(zip(params, flat_grads)):
            decay = l2 if k < len(self.weights) else 0.0  # no penalty on biases
            # p was checked by _forward, g is the kernels' own output, and the
            # state arrays are laid out like p (_set_training)
            optim._update_unchecked(name, p, g, first[k], second[k], self._step, self.learning_rate,
                                    self.momentum, decay)
        if self.max_norm is not None:
            for W in self.weights:
                optim.max_norm_(W, self.max_norm)
        return loss

    def _evaluate(self, X, Y, evaluator=None):
        """(mean data loss, score) with dropout off, in batches; in compiled
        passes with an ``evaluator`` (cydrop._small_net.predictor)."""
        if evaluator is not None:
            P = _small_net.predict(evaluator, X)
            return self._loss_and_grad(P, Y)[0], _score(self.output, P, Y)
        total, n = 0.0, X.shape[0]
        preds = []
        for start in range(0, n, _PREDICT_BATCH):
            P, _ = self._forward(X[start:start + _PREDICT_BATCH], train=False)
            loss, _ = self._loss_and_grad(P, Y[start:start + _PREDICT_BATCH])
            total += loss * P.shape[0]
            preds.append(P)
        P = np.concatenate(preds)
        return total / n, _score(self.output, P, Y)

    def _snapshot(self):
        return [W.copy() for W in self.weights], [b.copy() for b in self.biases]

    def _restore(self, snap):
        for dst, src in zip(self.weights + self.biases, snap[0] + snap[1]):
            dst[...] = src

    # ------------------------------------------------------------ inference

    def predict_proba(self, X, *, mc_samples=None, return_samples=False):
        """Output probabilities (or values for output="linear"), dropout off.

        With ``mc_samples=T``, Monte Carlo dropout (Gal & Ghahramani 2016):
        T passes with dropout on, returning ``(mean, std)`` over them (for
        output="linear" the predictive mean and the spread of the passes,
        without any observation noise). Small networks
        (cydrop._small_net.qualifies) run all T passes in one compiled call;
        the masks are the same either way.

        Parameters
        ----------
        X : array (n_samples, n_features)
        mc_samples : int >= 1 or None
        return_samples : bool
            With ``mc_samples``, also return every pass's outputs, an array
            (T, n_samples, n_outputs) of the network's dtype (what a
            predictive log-likelihood needs, cydrop.uncertainty).

        Returns
        -------
        P : ndarray (n_samples, n_outputs), without ``mc_samples``
        (mean, std) or (mean, std, samples), with ``mc_samples``
        """
        X = self._check_X(X)
        if mc_samples is None:
            if return_samples:
                raise ValueError("return_samples needs mc_samples")
            return self._predict_batches(X, train=False)
        T = check_positive_int(mc_samples, "mc_samples")
        if not isinstance(return_samples, (bool, np.bool_)):
            raise TypeError(f"return_samples must be a bool, got {type(return_samples).__name__}")
        if getattr(self, "compiled_training", True) and _small_net.qualifies(self.layer_sizes):
            self._check_params()
            total, total_sq, samples = _small_net.mc_passes(
                self.weights, self.biases, self.keep_prob, self.activation, self.output, X, T, self._gen,
                samples=return_samples, rows=_PREDICT_BATCH)
        else:
            total = np.zeros((X.shape[0], self.layer_sizes[-1]), dtype=np.float64)
            total_sq = np.zeros_like(total)
            samples = np.empty((T,) + total.shape, dtype=self.dtype) if return_samples else None
            for t in range(T):
                P = self._predict_batches(X, train=True)
                if samples is not None:
                    samples[t] = P
                P = P.astype(np.float64)
                total += P
                total_sq += P * P
        mean = total / T
        std = np.sqrt(np.maximum(total_sq / T - mean * mean, 0))
        if all(kp == 1.0 for kp in self.keep_prob):
            std[...] = 0  # every pass is the same; round-off aside
        if return_samples:
            return mean.astype(self.dtype), std.astype(self.dtype), samples
        return mean.astype(self.dtype), std.astype(self.dtype)

    def _predict_batches(self, X, train):
        return np.concatenate([self._forward(X[s:s + _PREDICT_BATCH], train=train)[0]
                               for s in range(0, X.shape[0], _PREDICT_BATCH)])

    def predict(self, X):
        """Class labels (classification) or values (output="linear"), dropout off."""
        P = self.predict_proba(X)
        if self.output == "linear":
            return P[:, 0] if P.shape[1] == 1 else P
        if self.classes_ is None:
            raise ValueError("the network has not been fitted: call fit first")
        # only outputs that have a label compete: training may have seen fewer
        # classes than the network has outputs
        n_classes = len(self.classes_)
        idx = (P[:, 0] > 0.5).astype(int) if self.output == "sigmoid" else P[:, :n_classes].argmax(axis=1)
        return self.classes_[np.minimum(idx, n_classes - 1)]

    def score(self, X, y):
        """Accuracy (classification) or R^2 (output="linear"), dropout off."""
        X = self._check_X(X)
        Y = self._check_y(y, X.shape[0], fitting=False)
        return _score(self.output, self._predict_batches(X, train=False), Y)

    def cost(self, X, y):
        """The cost J with dropout off: mean data loss plus the L2 term of the last fit."""
        X = self._check_X(X)
        Y = self._check_y(y, X.shape[0], fitting=False)
        loss, _ = self._evaluate(X, Y)
        return loss + self._l2_term(self.l2, X.shape[0])

    def gradient_check(self, X, y, *, eps=1e-6, max_checks=200, seed=0):
        """Relative difference between backprop and central differences, dropout off.

        Runs on a float64 copy of the network (so it also checks float32 nets).
        ``max_checks`` parameters, chosen at random, are perturbed (all when
        there are fewer). Returns ``||num - grad|| / (||num|| + ||grad||)``;
        below 1e-7 means backprop is right.
        """
        X = self._check_X(X).astype(np.float64)
        twin = self._float64_twin()
        Y = twin._check_y(y, X.shape[0], fitting=False).astype(np.float64)

        def J():
            P, _ = twin._forward(X, train=False)
            return twin._loss_and_grad(P, Y)[0] + twin._l2_term(self.l2, X.shape[0])

        P, caches = twin._forward(X, train=False)
        _, grad = twin._loss_and_grad(P, Y)
        grads = twin._backward(grad, caches)
        params = twin.weights + twin.biases
        analytic = [g + (self.l2 / X.shape[0]) * W for (g, _), W in zip(grads, twin.weights)] + [db for _, db in grads]
        slots = [(k, i) for k, p in enumerate(params) for i in range(p.size)]
        rng = np.random.default_rng(seed)
        if len(slots) > max_checks:
            slots = [slots[j] for j in rng.choice(len(slots), max_checks, replace=False)]
        num, ana = [], []
        for k, i in slots:
            flat = params[k].reshape(-1)
            old = flat[i]
            flat[i] = old + eps
            plus = J()
            flat[i] = old - eps
            minus = J()
            flat[i] = old
            num.append((plus - minus) / (2 * eps))
            ana.append(analytic[k].reshape(-1)[i])
        num, ana = np.array(num), np.array(ana)
        denom = np.linalg.norm(num) + np.linalg.norm(ana)
        return float(np.linalg.norm(num - ana) / denom) if denom else 0.0

    def _float64_twin(self):
        twin = MLP(self.layer_sizes, [1.0] * len(self.weights), self.activation, self.output, "float64", 0)
        twin.weights = [W.astype(np.float64) for W in self.weights]
        twin.biases = [b.astype(np.float64) for b in self.biases]
        twin.classes_ = self.classes_
        return twin

    # ------------------------------------------------------------ files

    def save(self, path):
        """Write the network to ``path`` (.npz of arrays plus a JSON header; no pickle)."""
        classes = None
        if self.classes_ is not None:
            classes = self.classes_.tolist()
            if not all(isinstance(c, (int, float, str, bool)) for c in classes):
                raise ValueError("classes_ must be ints, floats or strings to be saved")
        header = {"format": _FORMAT, "version": _VERSION, "layer_sizes": self.layer_sizes,
                  "keep_prob": self.keep_prob, "activation": self.activation, "output": self.output,
                  "dtype": self.dtype.name, "classes": classes, "l2": self.l2}
        arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"W{i}"], arrays[f"b{i}"] = W, b
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path):
        """Read a network written by :meth:`save`; never unpickles.

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
        header, arrays = read_model_file(path, _declared_arrays)
        try:
            net = cls(header["layer_sizes"], header["keep_prob"], header["activation"], header["output"],
                      header["dtype"], 0)
            net.classes_ = _check_saved_classes(header.get("classes"), net)
            net.l2 = _check_saved_l2(header.get("l2", 0.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path!r} has an invalid header ({exc})") from None
        for i in range(len(net.weights)):
            for name in (f"W{i}", f"b{i}"):
                if not np.isfinite(arrays[name]).all():
                    raise ValueError(f"{path!r}: {name} contains NaN or inf")
            net.weights[i], net.biases[i] = arrays[f"W{i}"], arrays[f"b{i}"]
        return net

    def __getstate__(self):
        # pickle (and so copy.deepcopy, joblib, Dask) refuses the Generator's
        # lock; its position is all it takes to go on drawing the same masks
        state = self.__dict__.copy()
        state["_gen"] = self._gen.state
        return state

    def __setstate__(self, state):
        state = dict(state, _gen=Generator.from_state(state["_gen"]))
        self.__dict__.update(state)

    def __repr__(self):
        return (f"cydrop.MLP({self.layer_sizes}, keep_prob={self.keep_prob}, activation={self.activation!r}, "
                f"output={self.output!r}, dtype={self.dtype.name!r})")


def _declared_arrays(header):
    """{name: (shape, dtype)} of the arrays a model header declares, checked
    before any array is read or any weight allocated."""
    if header.get("format") != _FORMAT:
        raise ValueError(f"format {header.get('format')!r}: not a cydrop model file")
    if header.get("version") != _VERSION:
        raise ValueError(f"format version {header.get('version')!r}; this cydrop reads {_VERSION}")
    sizes = header["layer_sizes"]
    if not isinstance(sizes, list) or len(sizes) < 2:
        raise ValueError(f"layer_sizes must be a list of at least 2 ints, got {sizes!r}")
    sizes = [check_positive_int(n, "layer_sizes") for n in sizes]
    if header.get("dtype") not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {header.get('dtype')!r}")
    dtype = np.dtype(header["dtype"])
    arrays = {}
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        arrays[f"W{i}"], arrays[f"b{i}"] = ((n_in, n_out), dtype), ((n_out,), dtype)
    return arrays


def _check_saved_classes(classes, net):
    """The class labels of a model header: None, or a sorted list of unique
    labels of one type (as np.unique gives them), no more than the outputs."""
    if classes is None:
        return None
    if net.output == "linear":
        raise ValueError("classes given for output='linear'")
    if not isinstance(classes, list) or not classes or len({type(c) for c in classes}) != 1 \
            or type(classes[0]) not in (int, float, str, bool):
        raise ValueError(f"classes must be a non-empty list of labels of one type, got {str(classes)[:100]}")
    labels = np.asarray(classes)
    room = 2 if net.output == "sigmoid" else net.layer_sizes[-1]
    if labels.ndim != 1 or len(labels) > room or not np.array_equal(np.unique(labels), labels):
        raise ValueError(f"classes must be at most {room} sorted unique labels, got {str(classes)[:100]}")
    return labels


def _check_saved_l2(l2):
    if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not (0 <= l2 < math.inf):
        raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
    return float(l2)


def _kernel_ready(arr, dtype, shape, writable):
    """True if the unchecked kernel calls may take arr as an array of this
    dtype and shape (written to when writable)."""
    return (isinstance(arr, np.ndarray) and arr.dtype == dtype and arr.shape == shape
            and arr.flags.c_contiguous and arr.flags.aligned and (arr.flags.writeable or not writable))


def _output_activation(output, z):
    if output == "linear":
        return z
    if output == "sigmoid":
        return np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))
    shifted = z - z.max(axis=1, keepdims=True)  # large logits stay finite
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def _score(output, P, Y):
    if output == "linear":
        # in float64 from the start: squares of float32 residuals overflow past 1.8e19
        Y, P = Y.astype(np.float64), P.astype(np.float64)
        ss_res = float(np.sum((Y - P) ** 2))
        ss_tot = float(np.sum((Y - Y.mean(axis=0)) ** 2))
        return 1 - ss_res / ss_tot if ss_tot else 0.0
    if output == "sigmoid":
        return float(np.mean((P[:, 0] > 0.5) == (Y[:, 0] > 0.5)))
    return float(np.mean(P.argmax(axis=1) == Y.argmax(axis=1)))


def _progress(total, enabled):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="epoch", leave=False)


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
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or inf")
    p = check_keep_prob(keep_prob)
    return (1 - p) / p * np.sum(X * X, axis=0)
