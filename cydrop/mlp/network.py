"""The network's state: its architecture, its parameters and its two random streams.

A :class:`Network` holds what defines a network and nothing that computes
with it: layer sizes, activations, dtype, per-layer keep_prob (a fixed
number, or learned: Concrete dropout, one ``p_logit`` parameter per such
layer), the weights and biases, the mask generator and the shuffling
generator. The engines
(``cydrop.mlp.engines``) run passes over it; the face (``cydrop.mlp.model``)
checks data and options.
"""
import math
import numbers

import numpy as np

from .._generator import Generator
from .._validation import (check_keep_prob, check_network_dtype, check_positive_int, check_real, kernel_ready,
                           unwrap_0d)
from ..concrete import concrete_keep_prob, concrete_p_logit
from ..dense import ACTIVATIONS
from .. import _concrete
from .losses import OUTPUTS

__all__ = ["INITS", "LEARN", "ConcreteSettings", "Network", "initial_params"]

# The keep_prob entry of a layer whose rate is learned (Concrete dropout).
LEARN = "learn"

# Initial weights (initial_params): "auto" draws He normal for ReLU hidden
# layers and Glorot normal for the others; "glorot_uniform" is Keras's default
# for every layer (what the published MC-dropout UCI networks started from);
# "sklearn" is scikit-learn's MLP's, the estimators' default.
INITS = ("auto", "glorot_uniform", "sklearn")


# sqrt of the largest float: the largest lengthscale whose square is finite
MAX_LENGTHSCALE = math.sqrt(np.finfo(np.float64).max)


class ConcreteSettings:
    """The settings of the layers whose keep_prob is learned (Concrete dropout;
    :class:`cydrop.MLP` documents them): the initial keep probability, the
    temperature of the relaxed mask and the prior length-scale."""

    __slots__ = ("init_keep_prob", "temperature", "lengthscale")

    def __init__(self, init_keep_prob=0.9, temperature=0.1, lengthscale=1e-2):
        self.init_keep_prob = check_real(init_keep_prob, "init_keep_prob", 0.0, 1.0)
        self.temperature = check_real(temperature, "temperature", 0.0)
        # the prior's weight term holds lengthscale^2: it must be a finite float
        self.lengthscale = check_real(lengthscale, "lengthscale", 0.0, MAX_LENGTHSCALE, high_open=False)

    def check_for(self, dtype):
        """ValueError naming the setting if the relaxed mask cannot start from
        these settings in arrays of ``dtype``: 1 / temperature and
        1 / (1 - p) = 1 + exp(p_logit) of init_keep_prob must be finite there
        (the kernels' own test, _concrete.scalars)."""
        try:
            _concrete.scalars(0.0, self.temperature, dtype.name)
        except ValueError:
            raise ValueError(f"temperature={self.temperature!r} is too small for {dtype.name}: 1 / temperature "
                             "overflows") from None
        try:
            _concrete.scalars(concrete_p_logit(self.init_keep_prob), self.temperature, dtype.name)
        except ValueError:
            raise ValueError(f"init_keep_prob={self.init_keep_prob!r} is too small for {dtype.name}: "
                             "1 / init_keep_prob overflows") from None

    def regularizer_weights(self, n_samples):
        """(weight, dropout) coefficients of the prior's terms for N training rows.

        The objective is the mean negative log-likelihood plus KL / N
        (Gal, Hron & Kendall 2017); the KL of a layer is
        ``l^2 / 2 * ||W||^2 / (1 - p) - K H(p)`` for inverted dropout, so
        ``l^2 / (2 N)`` and ``1 / N`` (the reference code doubles both, and
        its loss)."""
        return self.lengthscale ** 2 / (2.0 * n_samples), 1.0 / n_samples

    def __eq__(self, other):
        return isinstance(other, ConcreteSettings) and all(getattr(self, k) == getattr(other, k)
                                                           for k in self.__slots__)

    def __getstate__(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state):
        for k in self.__slots__:
            setattr(self, k, state[k])


class Network:
    """Dense layers with per-layer inverted dropout: architecture, parameters, random streams.

    Parameters are as for :class:`cydrop.MLP` (which checks and documents
    them). ``keep_prob[i]`` is the keep probability of layer i's input, or
    ``"learn"``: then ``p_logits`` holds its parameter ``log(p / (1 - p))``,
    p the drop probability, a (1,) array (one per learned layer, in layer order).
    """

    def __init__(self, layer_sizes, keep_prob=1.0, activation="relu", output="softmax",
                 dtype="float32", seed=None, init="auto", concrete=None):
        if isinstance(layer_sizes, (str, bytes)) or not hasattr(layer_sizes, "__len__"):
            raise TypeError("layer_sizes must be a sequence of ints such as [40, 512, 10]")
        if len(layer_sizes) < 2:
            raise ValueError(f"layer_sizes needs at least an input and an output size, got {list(layer_sizes)}")
        self.layer_sizes = [check_positive_int(n, "layer_sizes") for n in layer_sizes]
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {list(OUTPUTS)}, got {output!r}")
        if output == "sigmoid" and self.layer_sizes[-1] != 1:
            raise ValueError(f"output='sigmoid' needs one output unit, layer_sizes ends with {self.layer_sizes[-1]}")
        if output == "gaussian" and self.layer_sizes[-1] % 2:
            raise ValueError("output='gaussian' needs two output units per target (its mean and log-variance), "
                             f"layer_sizes ends with {self.layer_sizes[-1]}")
        if init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
        self.activation, self.output, self.init = activation, output, init
        self.dtype = check_network_dtype(dtype)
        self.concrete = ConcreteSettings() if concrete is None else concrete
        self.concrete.check_for(self.dtype)
        self.p_logits = []
        # layer -> p_logit held fixed: the prior's terms of J for a copy whose
        # dropout is off (the debugging recipe's float64_copy)
        self.fixed_p_logits = {}
        self.keep_prob = keep_prob
        # a Python int (a NumPy integer seed would not go into a model file's JSON header)
        self.seed = None if seed is None else Generator(seed).seed
        self.shuffle_rng = np.random.default_rng(self.seed)  # initial weights, then shuffling
        self.mask_gen = Generator(self.seed)  # dropout masks
        self.weights, self.biases = self._init_params()

    @property
    def n_layers(self):
        """Dense layers (one fewer than layer sizes)."""
        return len(self.layer_sizes) - 1

    @property
    def keep_prob(self):
        """Keep probability of each dense layer's input (entry 0: the
        features), ``"learn"`` for a layer whose rate is learned.

        Assign a float (every hidden layer's output; the features keep 1.0),
        ``"learn"`` (every layer's, the features' included) or one entry per
        dense layer, a float or ``"learn"``; checked on assignment. A layer
        that starts to learn its rate starts at ``init_keep_prob``; one that
        learnt it already goes on from where it is."""
        return list(self._keep_prob)

    @keep_prob.setter
    def keep_prob(self, keep_prob):
        keep_prob = unwrap_0d(keep_prob)
        if isinstance(keep_prob, numbers.Real) and not isinstance(keep_prob, (bool, np.bool_)):
            kp = check_keep_prob(keep_prob)
            entries = [1.0] + [kp] * (self.n_layers - 1)
        elif isinstance(keep_prob, str):
            if keep_prob != LEARN:
                raise TypeError(f"keep_prob must be a float, {LEARN!r} or a sequence of them, got {keep_prob!r}")
            entries = [LEARN] * self.n_layers
        elif isinstance(keep_prob, bytes) or not hasattr(keep_prob, "__len__"):
            raise TypeError(f"keep_prob must be a float, {LEARN!r} or a sequence of them, "
                            f"got {type(keep_prob).__name__}")
        elif len(keep_prob) != self.n_layers:
            raise ValueError(f"keep_prob must have one entry per dense layer ({self.n_layers}), got {len(keep_prob)}")
        else:
            entries = [LEARN if isinstance(p, str) and p == LEARN else check_keep_prob(p, f"keep_prob[{i}]")
                       for i, p in enumerate(keep_prob)]
        # the p_logit of a layer that learned its rate already goes on
        kept = dict(zip(self.learned_layers, self.p_logits)) if hasattr(self, "_keep_prob") else {}
        start = concrete_p_logit(self.concrete.init_keep_prob)
        self._keep_prob = entries
        self.p_logits = [kept.get(i, np.full(1, start, dtype=self.dtype)) for i in self.learned_layers]

    @property
    def learned_layers(self):
        """Indices of the layers whose keep_prob is learned."""
        return [i for i, kp in enumerate(self._keep_prob) if kp == LEARN]

    def keep_prob_values(self):
        """The keep probability of each layer now: its fixed value, or
        ``1 - sigmoid(p_logit)`` for a learned one."""
        learned = dict(zip(self.learned_layers, self.p_logits))
        return [concrete_keep_prob(float(learned[i][0])) if kp == LEARN else kp
                for i, kp in enumerate(self._keep_prob)]

    def prior_logits(self):
        """{layer: p_logit} of the layers whose weights have Concrete
        dropout's prior: the learned layers, and any held fixed."""
        return {**self.fixed_p_logits, **{i: float(a[0]) for i, a in zip(self.learned_layers, self.p_logits)}}

    @property
    def dropout_on(self):
        """True when some layer drops units (a keep_prob below 1, or learned)."""
        return any(kp == LEARN or kp < 1.0 for kp in self._keep_prob)

    def _init_params(self):
        return initial_params(self.layer_sizes, self.activation, self.init, self.shuffle_rng, self.dtype)

    @property
    def n_targets(self):
        """Target columns: the outputs, or half of them for output="gaussian"."""
        return self.layer_sizes[-1] // 2 if self.output == "gaussian" else self.layer_sizes[-1]

    @property
    def params(self):
        """Weights, biases, then the learned layers' p_logits: the arrays an optimizer updates."""
        return self.weights + self.biases + self.p_logits

    def require_kernel_ready(self, writable=False):
        """Refuse (ValueError naming the array) weights or biases that the
        kernels cannot take as they are.

        The engines call the dense, optimizer and epoch kernels without their
        per-call checks, so the public ``weights`` and ``biases`` (which a
        user may edit or replace) are checked here, once per pass: an array
        of another shape would make a kernel read or write past its end."""
        if len(self.weights) != self.n_layers or len(self.biases) != self.n_layers:
            raise ValueError(f"the network has {self.n_layers} layers but {len(self.weights)} weights "
                             f"and {len(self.biases)} biases")
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            shape = (self.layer_sizes[i], self.layer_sizes[i + 1])
            for name, arr, expected in ((f"weights[{i}]", W, shape), (f"biases[{i}]", b, shape[1:])):
                _require_param(arr, name, self.dtype, expected, writable)
        for i, a in zip(self.learned_layers, self.p_logits):
            _require_param(a, f"p_logit of layer {i}", self.dtype, (1,), writable)

    def params_finite(self):
        """All parameters finite, and the weights' squared norm too (in
        float64): finite weights whose L2 term overflows have diverged."""
        return (all(np.isfinite(b).all() for b in self.biases)
                and math.isfinite(self.squared_weight_norm()))

    def squared_weight_norm(self):
        """``sum ||W||^2`` over the layers' weights (biases excluded), in float64."""
        return sum(float(np.square(W, dtype=np.float64).sum()) for W in self.weights)

    def snapshot(self):
        """Copies of the parameters, for :meth:`restore`."""
        return [p.copy() for p in self.params]

    def restore(self, snapshot):
        """Put back the parameters of a :meth:`snapshot`, in place (the
        estimators' ``coefs_`` are these very arrays)."""
        for dst, src in zip(self.params, snapshot):
            dst[...] = src

    def float64_copy(self):
        """A float64 copy of the architecture and parameters, with dropout off
        (the network the debugging recipe checks): its learned layers keep
        their p_logits, fixed, for the prior's terms of J."""
        self.require_kernel_ready()   # a check of weights this network cannot use would pass or fail for nothing
        twin = Network(self.layer_sizes, [1.0] * self.n_layers, self.activation, self.output, "float64", 0,
                       concrete=self.concrete)
        twin.weights = [W.astype(np.float64) for W in self.weights]
        twin.biases = [b.astype(np.float64) for b in self.biases]
        twin.fixed_p_logits = {i: float(a[0]) for i, a in zip(self.learned_layers, self.p_logits)}
        return twin

    # pickle (and so copy.deepcopy, joblib, Dask) refuses the Generator's
    # lock; its position is all it takes to go on drawing the same masks
    def __getstate__(self):
        return dict(self.__dict__, mask_gen=self.mask_gen.state)

    def __setstate__(self, state):
        self.__dict__.update(state, mask_gen=Generator.from_state(state["mask_gen"]))


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


def _require_param(arr, name, dtype, shape, writable):
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
