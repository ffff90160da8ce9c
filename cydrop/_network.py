"""The network of cydrop.MLP: its layers, forward and backward passes, one training step.

Arrays only: targets arrive encoded (one-hot, a 0/1 column or values, see
``cydrop/_targets.py``) and checked; the face (``cydrop/mlp.py``) checks data,
the epoch loop (``cydrop/_training.py``) decides what to run when. X is an
ndarray or a SciPy CSR matrix, which the passes densify a batch (or a
chunk of PREDICT_BATCH rows) at a time (:func:`dense_rows`).
"""
import math
import numbers
import sys

import numpy as np

from . import _compiled_net, _outputs, dense
from ._generator import Generator
from ._validation import check_keep_prob, check_network_dtype, check_positive_int, kernel_ready
from .dense import ACTIVATIONS
from .optim import max_norm_

__all__ = ["Network"]

# Rows per forward pass when predicting or evaluating: bounds each layer's
# output (1024 rows of 512 float32 units are 2 MiB) so it can stay in cache
# for the next layer (benchmarks/bench_mlp.py, group mlp-cost-mnist1d).
PREDICT_BATCH = 1024

# Initial weights: "auto" draws He normal for ReLU hidden layers and Glorot
# normal for the others; "glorot_uniform" is Keras's default for every layer
# (what the published MC-dropout UCI networks started from); "sklearn" is
# scikit-learn's MLP's (weights and biases uniform, see initial_params), the
# estimators' default.
INITS = ("auto", "glorot_uniform", "sklearn")


class Network:
    """Dense layers with per-layer inverted dropout (see :class:`cydrop.MLP`)."""

    def __init__(self, layer_sizes, keep_prob=1.0, activation="relu", output="softmax",
                 dtype="float32", seed=None, init="auto"):
        if isinstance(layer_sizes, (str, bytes)) or not hasattr(layer_sizes, "__len__"):
            raise TypeError("layer_sizes must be a sequence of ints such as [40, 512, 10]")
        if len(layer_sizes) < 2:
            raise ValueError(f"layer_sizes needs at least an input and an output size, got {list(layer_sizes)}")
        self.layer_sizes = [check_positive_int(n, "layer_sizes") for n in layer_sizes]
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if output not in _outputs.OUTPUTS:
            raise ValueError(f"output must be one of {list(_outputs.OUTPUTS)}, got {output!r}")
        if output == "sigmoid" and self.layer_sizes[-1] != 1:
            raise ValueError(f"output='sigmoid' needs one output unit, layer_sizes ends with {self.layer_sizes[-1]}")
        if init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
        self.activation, self.output, self.init = activation, output, init
        self.dtype = check_network_dtype(dtype)
        self.keep_prob = keep_prob
        if seed is not None:
            Generator(seed)  # validates
        self.seed = seed
        self._rng = np.random.default_rng(seed)  # initial weights, then shuffling
        self._gen = Generator(None if seed is None else int(seed))  # dropout masks
        self.weights, self.biases = self._init_params()

    # ------------------------------------------------------------ set-up

    @property
    def keep_prob(self):
        """Keep probability of each dense layer's input (entry 0: the features).

        Assign a float (every hidden layer's output; the features keep 1.0)
        or one entry per dense layer; checked on assignment."""
        return list(self._keep_prob)

    @keep_prob.setter
    def keep_prob(self, keep_prob):
        n_layers = len(self.layer_sizes) - 1
        if isinstance(keep_prob, numbers.Real) and not isinstance(keep_prob, (bool, np.bool_)):
            kp = check_keep_prob(keep_prob)
            self._keep_prob = [1.0] + [kp] * (n_layers - 1)
            return
        if isinstance(keep_prob, (str, bytes)) or not hasattr(keep_prob, "__len__"):
            raise TypeError(f"keep_prob must be a float or a sequence of floats, got {type(keep_prob).__name__}")
        if len(keep_prob) != n_layers:
            raise ValueError(f"keep_prob must have one entry per dense layer ({n_layers}), got {len(keep_prob)}")
        self._keep_prob = [check_keep_prob(p, f"keep_prob[{i}]") for i, p in enumerate(keep_prob)]

    def _init_params(self):
        return initial_params(self.layer_sizes, self.activation, self.init, self._rng, self.dtype)

    @property
    def params(self):
        """Weights then biases: the arrays an optimizer updates."""
        return self.weights + self.biases

    def check_params(self, writable=False):
        """The layers' arrays as the kernels need them (writable to be trained).

        The passes below call the dense and optimizer kernels without their
        per-call checks, so the public ``weights`` and ``biases`` (which a
        user may replace) are checked here, once per pass: an array of
        another shape would make a kernel read or write past its end."""
        n_layers = len(self.layer_sizes) - 1
        if len(self.weights) != n_layers or len(self.biases) != n_layers:
            raise ValueError(f"the network has {n_layers} layers but {len(self.weights)} weights "
                             f"and {len(self.biases)} biases")
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            shape = (self.layer_sizes[i], self.layer_sizes[i + 1])
            for name, arr, expected in ((f"weights[{i}]", W, shape), (f"biases[{i}]", b, shape[1:])):
                _check_param(arr, name, self.dtype, expected, writable)

    # ------------------------------------------------------------ passes

    def forward(self, X, train, *, params_checked=False):
        """Outputs (probabilities or values) and the per-layer caches, dropout
        on when ``train``. X: (batch, layer_sizes[0]) of the network's dtype,
        C order. ``params_checked``: the caller has just run check_params."""
        if not params_checked:
            self.check_params()
        h, caches = X, []
        last = len(self.weights) - 1
        hidden = ACTIVATIONS[self.activation]
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            kp = self._keep_prob[i] if train else 1.0
            code = ACTIVATIONS["linear"] if i == last else hidden
            h, cache = dense._forward(h, W, b, kp, code, self._gen if kp < 1 else None)
            caches.append(cache)
        return _outputs.activate(self.output, h), caches

    def backward(self, grad, caches):
        """[(dW, db) per layer] from dL/dz of the last layer."""
        grads = []
        for i in reversed(range(len(caches))):
            grad = np.ascontiguousarray(grad, dtype=self.dtype)
            if grad.shape != caches[i]._out.shape:  # the check dense_backward would make
                raise ValueError(f"gradient of layer {i} has shape {grad.shape}, its output {caches[i]._out.shape}")
            grad, dW, db = dense._backward(grad, caches[i], i > 0)
            grads.append((dW, db))
        grads.reverse()
        return grads

    def predict_output(self, X, train=False):
        """Outputs for all rows of X, in passes of PREDICT_BATCH rows."""
        return np.concatenate([self.forward(dense_rows(X, slice(s, s + PREDICT_BATCH)), train)[0]
                               for s in range(0, X.shape[0], PREDICT_BATCH)])

    def evaluate(self, X, Y, sample_weight=None):
        """(mean data loss, score) with dropout off."""
        P = self.predict_output(X)
        return _outputs.loss(self.output, P, Y, sample_weight), _outputs.score(self.output, P, Y, sample_weight)

    def l2_term(self, l2, total_weight):
        """``l2 / (2 * total_weight) * sum ||W||^2`` (weights only): the penalty of J."""
        if not l2:
            return 0.0
        return 0.5 * l2 / total_weight * sum(float(np.sum(W.astype(np.float64) ** 2)) for W in self.weights)

    def objective(self, X, Y, l2=0.0, sample_weight=None):
        """J with dropout off: mean data loss plus the L2 term."""
        total = X.shape[0] if sample_weight is None else float(np.sum(sample_weight))
        return self.evaluate(X, Y, sample_weight)[0] + self.l2_term(l2, total)

    def mc_moments(self, X, mc_samples, samples=False):
        """Mean and (population) std over ``mc_samples`` passes with dropout
        on, in float64; with ``samples``, also every pass's outputs, an array
        (mc_samples, n_samples, n_outputs) of the network's dtype.

        Networks of the compiled path (cydrop._compiled_net.route) run all the
        passes in one call; the masks are the same either way. A sparse X is
        densified whole: the passes take every chunk in every pass."""
        if is_sparse(X):
            X = np.ascontiguousarray(X.toarray())
        routine = _compiled_net.route(self)
        if routine is not None:
            self.check_params()
            total, total_sq, out = _compiled_net.mc_passes(self, routine, X, mc_samples, samples=samples,
                                                           rows=PREDICT_BATCH)
        else:
            total = np.zeros((X.shape[0], self.layer_sizes[-1]), dtype=np.float64)
            total_sq = np.zeros_like(total)
            out = np.empty((mc_samples,) + total.shape, dtype=self.dtype) if samples else None
            for t in range(mc_samples):
                P = self.predict_output(X, train=True)
                if out is not None:
                    out[t] = P
                P = P.astype(np.float64)
                total += P
                total_sq += P * P
        mean = total / mc_samples
        std = np.sqrt(np.maximum(total_sq / mc_samples - mean * mean, 0))
        if all(kp == 1.0 for kp in self._keep_prob):
            std[...] = 0  # every pass is the same; round-off aside
        return (mean, std, out) if samples else (mean, std)

    # ------------------------------------------------------------ training

    def train_epoch(self, optimizer, X, Y, sample_weight, order, batch_size, l2, max_norm):
        """One pass over the rows of X in ``order``, one update per mini-batch.

        Returns the mean training loss under dropout over the pass (each
        batch's loss weighted by its rows, or its sample weights)."""
        self.check_params(writable=True)
        weight = len(order) if sample_weight is None else float(np.sum(sample_weight[order]))
        if is_sparse(X):
            # one dense batch at a time (memory for batch_size rows, not all
            # of X), each trained as an epoch of one batch: the same updates
            # and masks, in the same order, as the whole epoch
            total = 0.0
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                wb = None if sample_weight is None else sample_weight[idx]
                n = len(idx) if wb is None else float(np.sum(wb))
                loss = self.train_epoch(optimizer, dense_rows(X, idx), Y[idx], wb, np.arange(len(idx)),
                                        batch_size, l2, max_norm)
                total += loss * n
            return total / weight if weight else 0.0
        routine = _compiled_net.route(self)
        if routine is not None:
            # every batch of the epoch in one compiled call
            total = _compiled_net.train_epoch(self, routine, optimizer, X, Y, sample_weight, order, batch_size,
                                              l2, max_norm)
            return total / weight if weight else 0.0
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            wb = None if sample_weight is None else sample_weight[idx]
            n = len(idx) if wb is None else float(np.sum(wb))
            if n == 0:
                # no sample: no update; the masks it would draw are passed over
                for i, kp in enumerate(self._keep_prob):
                    if kp < 1:
                        self._gen._reserve(len(idx) * self.layer_sizes[i])
                continue
            loss = self._train_step(optimizer, X[idx], Y[idx], wb, l2, max_norm)
            total += loss * n
        return total / weight if weight else 0.0

    def _train_step(self, optimizer, Xb, Yb, wb, l2, max_norm):
        P, caches = self.forward(Xb, train=True, params_checked=True)  # by train_epoch: nothing replaces them meanwhile
        loss = _outputs.loss(self.output, P, Yb, wb)
        grads = self.backward(_outputs.loss_grad(P, Yb, wb), caches)
        # J's penalty is l2 / (2 * batch weight) * ||W||^2; none on biases
        decay = l2 / (Xb.shape[0] if wb is None else float(np.sum(wb)))
        optimizer.update(self.params, [g for g, _ in grads] + [g for _, g in grads],
                         [decay] * len(self.weights) + [0.0] * len(self.biases))
        if max_norm is not None:
            for W in self.weights:
                max_norm_(W, max_norm)
        return loss

    def params_finite(self):
        """All parameters finite, and the weights' squared norm too (in
        float64): finite weights whose L2 term overflows have diverged."""
        return (all(np.isfinite(b).all() for b in self.biases)
                and math.isfinite(sum(float(np.square(W, dtype=np.float64).sum()) for W in self.weights)))

    def snapshot(self):
        return [p.copy() for p in self.params]

    def restore(self, snapshot):
        for dst, src in zip(self.params, snapshot):
            dst[...] = src  # in place: callers (the estimators' coefs_) hold these arrays

    # ------------------------------------------------------------ copies

    def __getstate__(self):
        # pickle (and so copy.deepcopy, joblib, Dask) refuses the Generator's
        # lock; its position is all it takes to go on drawing the same masks
        state = self.__dict__.copy()
        state["_gen"] = self._gen.state
        state.pop("_compiled", None)  # the compiled path's buffers (cydrop._compiled_net): made again on use
        return state

    def __setstate__(self, state):
        state = dict(state, _gen=Generator.from_state(state["_gen"]))
        self.__dict__.update(state)


def is_sparse(X):
    """X is a SciPy sparse matrix or array (which exists only if scipy.sparse
    was imported: ``import cydrop`` leaves SciPy out)."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(X)


def dense_rows(X, rows):
    """The rows ``rows`` (indices or a slice) of X, an ndarray or a SciPy CSR
    matrix, as a C-contiguous ndarray of X's dtype."""
    if is_sparse(X):
        return np.ascontiguousarray(X[rows].toarray())
    return X[rows]


def initial_params(layer_sizes, activation, init, rng, dtype):
    """(weights, biases) of a new network, drawn from ``rng``.

    ``rng`` is a numpy Generator or RandomState (``uniform`` and
    ``standard_normal`` draw alike from both): the scikit-learn estimators
    pass their ``RandomState``, so that init="sklearn" draws the very
    weights scikit-learn's MLP starts from for the same ``random_state``.

    - "auto": He normal (variance 2 / n_in) for ReLU hidden layers, Glorot
      normal (2 / (n_in + n_out)) for the others; biases 0.
    - "glorot_uniform": U(-a, a), a = sqrt(6 / (n_in + n_out)), every layer
      (Keras's default); biases 0.
    - "sklearn": scikit-learn's ``_init_coef``: weights and then biases of
      each layer from U(-a, a), a = sqrt(f / (n_in + n_out)), f = 2 when the
      hidden activation is the sigmoid (scikit-learn's "logistic"), else 6,
      every layer including the output.
    """
    weights, biases = [], []
    n_dense = len(layer_sizes) - 1
    for i, (n_in, n_out) in enumerate(zip(layer_sizes, layer_sizes[1:])):
        b = np.zeros(n_out)
        if init == "sklearn":
            limit = math.sqrt((2.0 if activation == "sigmoid" else 6.0) / (n_in + n_out))
            W = rng.uniform(-limit, limit, (n_in, n_out))
            b = rng.uniform(-limit, limit, n_out)
        elif init == "glorot_uniform":
            limit = math.sqrt(6.0 / (n_in + n_out))
            W = rng.uniform(-limit, limit, (n_in, n_out))
        else:
            hidden = i < n_dense - 1
            gain = 2.0 / n_in if hidden and activation == "relu" else 2.0 / (n_in + n_out)
            W = rng.standard_normal((n_in, n_out)) * math.sqrt(gain)
        weights.append(np.ascontiguousarray(W, dtype=dtype))
        biases.append(np.ascontiguousarray(b, dtype=dtype))
    return weights, biases


def _check_param(arr, name, dtype, shape, writable):
    """ValueError naming ``name`` unless arr is what the unchecked kernel
    calls may take: an ndarray of this dtype and shape, C-contiguous and
    aligned (writable to be trained)."""
    if kernel_ready(arr, dtype, shape, writable):
        return
    if not isinstance(arr, np.ndarray):
        problem = f"is a {type(arr).__name__}, not a numpy.ndarray"
    elif arr.dtype != dtype:
        problem = f"has dtype {arr.dtype}"
    elif arr.shape != shape:
        problem = f"has shape {arr.shape}"
    elif not arr.flags.c_contiguous:
        problem = "is not C-contiguous"
    elif not arr.flags.aligned:
        problem = "is not aligned"
    else:
        problem = "is read-only (it cannot be trained)"
    raise ValueError(f"{name} {problem}; it must be a C-contiguous {dtype} array of shape {shape}")
