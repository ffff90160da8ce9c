"""Concrete dropout in PyTorch: dropout whose rate is a learned parameter.

Gal, Hron & Kendall, "Concrete Dropout", NeurIPS 2017. Each module holds
``p_logit = log(p / (1 - p))``, p the drop probability (PyTorch's ``p``), as
an ``nn.Parameter``; in training the input becomes ``x * (1 - z) / (1 - p)``
with the relaxed drop indicator ``z = sigmoid((p_logit + log u - log(1 - u))
/ temperature)``, differentiable in p_logit. Add
:func:`concrete_regularizer` of the model to the loss, or p has nothing to
hold it (the data term alone drives it to 0).

ConcreteDropout
    Element-wise, on any input (temperature 0.1, the reference's for dense layers).
ConcreteDropout1d, ConcreteDropout2d, ConcreteDropout3d
    One noise value per channel of (N, C, ...) inputs (temperature 2/3, the
    reference's for whole channels).
ConcreteDropoutLinear
    ``nn.Linear`` with concrete dropout on its input, fused.
concrete_dropout
    The functional form, with an optional ``seed``.
concrete_regularizer
    The sum of the regularisers of a model's concrete modules.

CPU float32/float64 inputs run cydrop's kernels: ``u`` from cydrop's
counter-based generator under a key each call draws from torch's default
generator, as the dropout modules do (``_keys``: reproducible after
``torch.manual_seed``, replayed by torch's RNG-state tools and activation
checkpointing, the same on any thread count), no mask kept for backward (it
is drawn again from the position), custom ops under ``torch.compile``. Other inputs (CUDA, float16,
...) run the same formula in torch's own operations with ``torch.rand``.
Under torch.func's transforms and forward-mode AD the formula runs in
torch's operations too, on the noise the kernels draw at the same position
(``_concrete_eager.ConcreteNoiseFunction``, whose vmap rule follows
``randomness=``): the transforms batch and differentiate torch's operations.

In ``eval()`` the modules are the identity (``ConcreteDropoutLinear`` is its
linear layer), as inverted dropout is and as the Keras reference's layer is
outside MC mode. The relaxed mask's mean scale is not exactly 1 for t > 0:
``E[(1 - z) / (1 - p)]`` at p = 0.1 is 0.9987 for t = 0.1 but 0.950 for
t = 2/3, so the channel variants' eval outputs run about 5% above their
training-time mean. In training mode (also for MC sampling) each call draws
a fresh relaxed mask, as the reference's MC samples do.
"""
import functools
import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from .._concrete import scalars as kernel_scalars
from . import _concrete_kernels as kernels
from ._eager import transformed
from ._kernels import can_run
from ._ops import compiled_position
from ._concrete_eager import (ConcreteDropoutFunction, ConcreteLinearFunction, ConcreteNoiseFunction, checked_value,
                              value)
from ._concrete_ops import concrete_dropout_linear_op, concrete_dropout_op
from ._keys import position, seed_tensor

__all__ = ["ConcreteDropout", "ConcreteDropout1d", "ConcreteDropout2d", "ConcreteDropout3d",
           "ConcreteDropoutLinear", "concrete_dropout", "concrete_regularizer"]

DENSE_TEMPERATURE = 0.1
CHANNEL_TEMPERATURE = 2.0 / 3.0


# ---------------------------------------------------------------- the common body


def _number(value, name):
    """value as a float: a real number, or a 0-d tensor read as its number
    (as torch.nn's dropout modules take ``p``); TypeError naming it otherwise."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype != torch.bool and not value.is_complex():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def _initial_logit(p, dtype):
    """``log(p / (1 - p))`` for the initial drop probability p, checked: p
    in (0, 1), and sigmoid of the logit in ``dtype`` (p_logit's) strictly
    between 0 and 1, or ``p`` would report 0.0 or 1.0 and the pass divide
    by 1 - p = 0."""
    p = _number(p, "p (the initial drop probability)")
    if not 0.0 < p < 1.0:
        raise ValueError(f"p (the initial drop probability) must be a number in (0, 1), got {p!r}")
    logit = math.log(p) - math.log1p(-p)
    rounded = float(torch.sigmoid(torch.tensor(logit, dtype=dtype)))
    if not 0.0 < rounded < 1.0:
        raise ValueError(f"p (the initial drop probability) {p!r} is {rounded} in p_logit's dtype {dtype}: "
                         f"give a p in (0, 1) that {dtype} holds")
    return logit


def _check_temperature(temperature):
    temperature = _number(temperature, "temperature")
    # comparisons, not math.isfinite: torch.compile(dynamic=True) traces a
    # float argument as a symbolic float, which isfinite cannot take (NaN
    # fails both comparisons)
    if not 0.0 < temperature < math.inf:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return temperature


def _check_p_logit(p_logit):
    if not isinstance(p_logit, torch.Tensor) or p_logit.numel() != 1 or not p_logit.is_floating_point():
        raise TypeError(f"p_logit must be a one-element floating-point tensor, got "
                        f"{type(p_logit).__name__} {getattr(p_logit, 'shape', '')}")


def _check_tensor(input):
    """TypeError naming ``input`` when it is not a tensor, as torch's dropout
    refuses it: at each public entry (concrete_dropout and the modules'
    forward), before its ``dim()`` or ``is_floating_point()`` is asked for."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"concrete dropout: input must be a floating-point tensor, got {type(input).__name__}")


def _kernels_can_run(x, p_logit):
    """True when cydrop's kernels compute this call; else torch's operations do."""
    return can_run(x) and p_logit.device.type == "cpu"


def _concrete(x, p_logit, temperature, training, run, source):
    """x * (1 - z) / (1 - p), one noise value per run of ``run`` consecutive
    elements, the noise from ``source`` (None: a key from torch's generator;
    a seed or a Generator: ``_keys.position``)."""
    if not training:
        return x
    if not _kernels_can_run(x, p_logit):
        return _torch_concrete(x, p_logit, temperature, run)
    n_noise = x.numel() // run
    if torch.compiler.is_compiling():
        return concrete_dropout_op(x, p_logit, temperature, compiled_position(source, x, n_noise), run)[0]
    if transformed():
        # the kernels' noise at the same position, the formula in torch's
        # ops (which torch.func's transforms and forward-mode AD batch and
        # differentiate); the draw as a tensor op, which vmap sees
        source = seed_tensor() if source is None else source
        noise = ConcreteNoiseFunction.apply(x.detach(), p_logit.detach(), temperature, source, run)
        return _torch_concrete(x, p_logit, temperature, run, noise)
    if torch.is_grad_enabled() and (x.requires_grad or p_logit.requires_grad):
        return ConcreteDropoutFunction.apply(x, p_logit, temperature, run, source)
    a = checked_value(p_logit, temperature, x)       # inference (MC sampling): no autograd node
    key, block = position(source, n_noise)
    return kernels.forward(x, a, temperature, run, key, block)


def _torch_concrete(x, p_logit, temperature, run, logistic=None):
    """The same formula in torch's operations (any device and dtype), from
    the logistic noise ``log u - log(1 - u)`` given (``logistic``, one value
    per run) or made of torch.rand's u, computed in float32 for the
    half-precision types. Integer and bool inputs are refused before the
    draw: torch's dropout refuses them too (its product is floating), and a
    product cast back to their dtype would be a silently truncated result.

    As the kernels: (1 - z) / (1 - p) is sigmoid(-(a + noise) / t) * (1 +
    exp(a)), finite wherever 1 + exp(a) is (``1 - sigmoid(a)`` is 0 in
    float32 from a = 17 on, and the quotient NaN), and a p_logit whose
    1 + exp(a) overflows is refused as the kernels refuse it where its
    value can be read without waiting for a device (p_logit on the CPU,
    outside torch.compile); elsewhere the pass gives what torch's operations
    give there, inf or NaN."""
    if not x.is_floating_point():
        raise TypeError(f"concrete dropout: input must be a floating-point tensor, got {x.dtype}")
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    if p_logit.device.type == "cpu" and logistic is None and not torch.compiler.is_compiling():
        kernel_scalars(value(p_logit), temperature, "float64" if dtype == torch.float64 else "float32")
    if logistic is None:
        u = torch.rand(x.numel() // run, device=x.device, dtype=dtype)
        logistic = torch.log(u) - torch.log1p(-u)
    a = p_logit.reshape(()).to(dtype)
    factor = torch.sigmoid(-(a + logistic) / temperature) * (1 + torch.exp(a))
    if run > 1:
        factor = factor.repeat_interleave(run)
    return x * factor.reshape(x.shape).to(x.dtype)


def _runs(x, lead):
    """Elements per noise value when the noise is one value per index of x's first ``lead`` axes."""
    return max(1, math.prod(x.shape[lead:]))


def concrete_dropout(input, p_logit, temperature=DENSE_TEMPERATURE, training=True, *, noise_shape=None, seed=None):
    """Concrete dropout of ``input``: ``input * (1 - z) / (1 - p)``, differentiable in p_logit.

    Parameters
    ----------
    input : Tensor
        Any shape. CPU float32/float64 tensors run cydrop's kernels; others
        torch's operations.
    p_logit : Tensor
        One element: ``log(p / (1 - p))``, p the drop probability.
    temperature : float > 0 (or a 0-d tensor), default 0.1
    training : bool
        False returns ``input`` unchanged.
    noise_shape : sequence of int or None, keyword-only
        None: one noise value per element; else ``input.shape[:k]`` followed
        by 1s: one value per index of the first k axes (``(N, C, 1, 1)``:
        whole channels).
    seed : None, int or cydrop.Generator, keyword-only
        None: a fresh draw from torch's default generator; an int: the same
        noise on every call (a constant of the graph under torch.compile);
        a Generator: advanced by each call.

    Returns
    -------
    Tensor of input's shape and dtype

    Raises
    ------
    TypeError
        ``input`` not a floating-point tensor (as torch's dropout),
        ``p_logit`` not a one-element floating tensor, ``training`` not a
        bool, ``temperature`` not a number, ``noise_shape`` not a sequence.
    ValueError
        ``temperature`` not a finite number > 0, ``noise_shape`` not of the
        form above.

    Examples
    --------
    >>> import torch, cydrop.torch as ct
    >>> p_logit = torch.tensor(-2.1972, requires_grad=True)    # p = 0.1
    >>> y = ct.concrete_dropout(torch.ones(4, 8), p_logit, seed=0)
    >>> y.sum().backward()
    >>> p_logit.grad.shape
    torch.Size([])
    """
    if type(training) is not bool:
        # as functional.dropout: None or a string would silently mean eval or train mode
        raise TypeError(f"concrete_dropout(): argument 'training' must be bool, not {type(training).__name__}")
    _check_tensor(input)
    _check_p_logit(p_logit)
    temperature = _check_temperature(temperature)
    run = 1
    if noise_shape is not None:
        try:
            noise_shape = tuple(noise_shape)
        except TypeError:
            raise TypeError(f"noise_shape must be a sequence of ints or None, got {type(noise_shape).__name__}") \
                from None
        k = len(noise_shape)
        while k and noise_shape[k - 1] == 1:
            k -= 1
        if len(noise_shape) != input.dim() or noise_shape[:k] != tuple(input.shape[:k]):
            raise ValueError(f"noise_shape must be input's shape {tuple(input.shape)} on its leading axes and 1 "
                             f"on the others, got {noise_shape}")
        run = _runs(input, k)
    return _concrete(input, p_logit, temperature, training, run, seed)


# ---------------------------------------------------------------- the regulariser


def _regularizer(p_logit, weight, n_inputs, weight_regularizer, dropout_regularizer):
    """weight_regularizer ||W||^2 / (1 - p) + dropout_regularizer K (p log p + (1 - p) log(1 - p)),
    differentiable in p_logit and the weight; the weight term left out when weight is None."""
    a = p_logit.reshape(())
    p = torch.sigmoid(a)
    # log p = -softplus(-a), log(1 - p) = -softplus(a): finite at either end
    entropy = -(p * F.softplus(-a) + (1 - p) * F.softplus(a))
    total = dropout_regularizer * n_inputs * entropy
    if weight is not None:
        total = total + weight_regularizer * weight.pow(2).sum() * (1 + torch.exp(a))   # 1 / (1 - p) = 1 + e^a
    return total


def _check_regularizer(value, name):
    """value as a float >= 0: TypeError for what is not a number (as for
    the NumPy functions), ValueError for a negative or non-finite one."""
    value = _number(value, name)
    if not 0.0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def concrete_regularizer(model, *, weight_regularizer, dropout_regularizer):
    """The sum of the regularisers of every concrete dropout module in ``model``, to add to the loss.

    Each module contributes ``weight_regularizer * ||W||^2 / (1 - p) +
    dropout_regularizer * K * (p log p + (1 - p) log(1 - p))``, W the weight
    of the layer its output feeds (``ConcreteDropoutLinear``: its own; the
    other modules: their ``layer``) and K its dropped inputs per example.
    Biases are not dropped, so they are not in the p-dependent term: it is
    the prior on the dropped weights, scaled for the inverted dropout's
    1 / (1 - p) (the paper's derivation and the Keras reference; the PyTorch
    notebook's sum over all parameters would let p pull on biases it never
    touches).

    Parameters
    ----------
    model : nn.Module
    weight_regularizer, dropout_regularizer : float >= 0, keyword-only
        ``l^2 / (tau N)`` and ``2 / (tau N)`` (``cydrop.concrete_regularizer_weights``).

    Returns
    -------
    Tensor
        0-d, differentiable in the p_logit and weight parameters, in the
        widest dtype of the modules' terms.

    Raises
    ------
    TypeError
        A ``model`` that is not a module; a regulariser weight that is not a
        number (a float or a 0-d tensor).
    ValueError
        A concrete module without a ``layer`` (its weight term would be
        missing: build it with ``layer=``, or call its ``regularizer(weight=...)``
        yourself); a regulariser weight that is negative or not finite.

    Examples
    --------
    >>> import torch, cydrop, cydrop.torch as ct
    >>> model = torch.nn.Sequential(ct.ConcreteDropoutLinear(3, 8), torch.nn.ReLU(), ct.ConcreteDropoutLinear(8, 1))
    >>> wr, dr = cydrop.concrete_regularizer_weights(1e-2, n_samples=100)
    >>> ct.concrete_regularizer(model, weight_regularizer=wr, dropout_regularizer=dr).shape
    torch.Size([])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    weight_regularizer = _check_regularizer(weight_regularizer, "weight_regularizer")
    dropout_regularizer = _check_regularizer(dropout_regularizer, "dropout_regularizer")
    terms = []
    for name, module in model.named_modules():
        if isinstance(module, ConcreteDropoutLinear):
            terms.append(module.regularizer(weight_regularizer=weight_regularizer,
                                            dropout_regularizer=dropout_regularizer))
        elif isinstance(module, _ConcreteDropoutNd):
            if module.layer is None:
                raise ValueError(f"the concrete dropout module {name or type(module).__name__!r} has no layer: build "
                                 f"it with layer= (the layer it feeds, whose weight the regulariser needs), or add "
                                 f"its regularizer(weight=...) to the loss yourself")
            terms.append(module.regularizer(weight_regularizer=weight_regularizer,
                                            dropout_regularizer=dropout_regularizer))
    if not terms:
        return torch.zeros(())
    # summed in the widest dtype of the terms: a float64 module listed after a float32 one keeps its digits
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in terms))
    return torch.stack([t.reshape(()).to(dtype) for t in terms]).sum()


# ---------------------------------------------------------------- the modules


class _ConcreteDropoutNd(nn.modules.dropout._DropoutNd):
    """What the dropout modules share: the learned ``p_logit``, the
    temperature, and the layer whose weight the regulariser
    needs. ``_lead`` is None (element-wise) or the (batched, unbatched)
    ranks of a channel variant.

    A subclass of torch's dropout base class, so that code which finds a
    model's dropout modules by it (``cydrop.torch.mc_dropout``) finds these
    too; its ``p`` is a read-only property here (``_DropoutNd.__init__``,
    which would set it, is not called)."""

    _lead = None
    _axes = None            # the names of the axes after C, for messages
    _default_temperature = DENSE_TEMPERATURE
    inplace = False

    def __init__(self, p=0.1, temperature=None, *, layer=None, n_inputs=None):
        logit = _initial_logit(p, torch.get_default_dtype())
        temperature = _check_temperature(self._default_temperature if temperature is None else temperature)
        if layer is not None and not isinstance(layer, nn.Module):
            raise TypeError(f"layer must be a torch.nn.Module or None, got {type(layer).__name__}")
        if n_inputs is not None and (isinstance(n_inputs, bool) or not isinstance(n_inputs, numbers.Integral)
                                     or n_inputs < 1):
            raise ValueError(f"n_inputs must be an int >= 1 or None, got {n_inputs!r}")
        nn.Module.__init__(self)
        self.p_logit = nn.Parameter(torch.tensor(logit))
        self.temperature = temperature
        self.n_inputs = None if n_inputs is None else int(n_inputs)
        # referenced, not registered: the layer belongs to the model already
        # (a second registration would list its parameters twice in state_dict)
        self.__dict__["layer"] = layer

    @property
    def p(self):
        """The current drop probability ``sigmoid(p_logit)``, a float."""
        return float(torch.sigmoid(self.p_logit.detach()))

    def _noise_run(self, input):
        """Elements per noise value for this input (ValueError for a rank the variant does not take)."""
        if self._lead is None:
            return 1
        batched, unbatched = self._lead
        if input.dim() not in (batched, unbatched):
            unbatched_form = f" or {unbatched} (C, {self._axes})" if unbatched != batched else ""
            raise ValueError(f"{type(self).__name__} takes inputs of {batched} dimensions (N, C, {self._axes})"
                             f"{unbatched_form}, got {input.dim()}: {tuple(input.shape)}")
        return _runs(input, 2 if input.dim() == batched else 1)

    def forward(self, input):
        _check_tensor(input)
        return _concrete(input, self.p_logit, self.temperature, self.training, self._noise_run(input), None)

    def _n_inputs(self, weight):
        """K: n_inputs; else the layer's in_features (element-wise) or
        in_channels (channels); else the input axis of a linear weight
        (out, in) or a convolution's (out, in, ...)."""
        if self.n_inputs is not None:
            return self.n_inputs
        k = getattr(self.layer, "in_channels" if self._lead else "in_features", None)
        if k is None and weight is not None and (weight.dim() >= 3 if self._lead else weight.dim() == 2):
            k = weight.shape[1]
        if k is None:
            raise ValueError(f"{type(self).__name__} cannot tell how many inputs it drops per example: give "
                             f"n_inputs= (or a layer with {'in_channels' if self._lead else 'in_features'})")
        return k

    def regularizer(self, weight=None, *, weight_regularizer, dropout_regularizer):
        """``weight_regularizer ||W||^2 / (1 - p) + dropout_regularizer K (p log p + (1 - p) log(1 - p))``.

        ``weight``: W, default ``layer.weight`` (None with no layer: the
        entropy term alone). K: ``n_inputs``, default the layer's
        ``in_features`` (element-wise) or ``in_channels`` (channel variants),
        or ``weight.shape[1]`` for a given linear (2-D) or convolution weight.
        """
        if weight is None and self.layer is not None:
            weight = self.layer.weight
        return _regularizer(self.p_logit, weight, self._n_inputs(weight),
                            _check_regularizer(weight_regularizer, "weight_regularizer"),
                            _check_regularizer(dropout_regularizer, "dropout_regularizer"))

    def extra_repr(self):
        return f"p={self.p:.4g}, temperature={self.temperature:.4g}"


class ConcreteDropout(_ConcreteDropoutNd):
    """Concrete dropout of each element, its drop probability learned.

    Parameters
    ----------
    p : float in (0, 1), default 0.1
        The initial drop probability (the reference's): ``p_logit`` starts at
        ``log(p / (1 - p))``.
    temperature : float > 0, default 0.1
        Of the relaxation (the reference's for dense layers).
    layer : nn.Module or None, keyword-only
        The layer this dropout's output feeds (an ``nn.Linear`` after it):
        :func:`concrete_regularizer` takes its weight for the weight term.
        Referenced, not called and not registered here.
    n_inputs : int or None, keyword-only
        K, the inputs dropped per example, for the regulariser. Default
        ``layer.in_features``; give it when the input is not ``(N, features)``
        (for an (N, C, H, W) input, C * H * W).

    Attributes
    ----------
    p_logit : nn.Parameter
        0-d, ``log(p / (1 - p))``.
    p : float
        ``sigmoid(p_logit)`` now.

    Raises
    ------
    ValueError
        ``p`` not in (0, 1) or 0 or 1 in p_logit's dtype (1e-50 in
        float32), ``temperature`` not a finite number > 0, ``n_inputs``
        not an int >= 1; at call time, an input of a rank the
        variant does not take.
    TypeError
        ``p`` or ``temperature`` not a number (a 0-d tensor is its number),
        ``layer`` not a ``torch.nn.Module``; at call time, an input that is
        not floating-point (torch's dropout refuses it too).

    Examples
    --------
    >>> import torch, cydrop.torch as ct
    >>> linear = torch.nn.Linear(20, 5)
    >>> model = torch.nn.Sequential(ct.ConcreteDropout(layer=linear), linear)
    >>> model(torch.randn(8, 20)).shape
    torch.Size([8, 5])
    >>> round(model[0].p, 6)
    0.1
    """


class ConcreteDropout1d(_ConcreteDropoutNd):
    """Concrete dropout of whole channels of ``(N, C, L)`` or ``(C, L)`` inputs, one learned
    drop probability and one noise value per channel, as the reference's
    spatial concrete dropout.

    Parameters
    ----------
    p : float in (0, 1), default 0.1
        The initial drop probability: ``p_logit`` starts at ``log(p / (1 - p))``.
    temperature : float > 0, default 2/3
        Of the relaxation (the reference's for channels).
    layer : nn.Module or None, keyword-only
        The layer this dropout's output feeds (e.g. the ``Conv1d`` after
        it): :func:`concrete_regularizer` takes its weight for the weight
        term and K = ``layer.in_channels``.
    n_inputs : int or None, keyword-only
        K for the regulariser, when there is no such layer.

    Attributes
    ----------
    p_logit : nn.Parameter
        0-d, ``log(p / (1 - p))``.
    p : float
        ``sigmoid(p_logit)`` now.

    Raises
    ------
    ValueError
        ``p`` not in (0, 1) or 0 or 1 in p_logit's dtype (1e-50 in
        float32), ``temperature`` not a finite number > 0, ``n_inputs``
        not an int >= 1; at call time, an input of a rank the
        variant does not take.
    TypeError
        ``p`` or ``temperature`` not a number (a 0-d tensor is its number),
        ``layer`` not a ``torch.nn.Module``; at call time, an input that is
        not floating-point (torch's dropout refuses it too).

    Examples
    --------
    >>> import torch, cydrop.torch as ct
    >>> conv = torch.nn.Conv1d(4, 6, 3)
    >>> model = torch.nn.Sequential(ct.ConcreteDropout1d(layer=conv), conv)
    >>> model(torch.randn(2, 4, 10)).shape[:2]
    torch.Size([2, 6])
    """

    _lead = (3, 2)
    _axes = "L"
    _default_temperature = CHANNEL_TEMPERATURE


class ConcreteDropout2d(_ConcreteDropoutNd):
    """Concrete dropout of whole channels of ``(N, C, H, W)`` inputs, one learned
    drop probability and one noise value per channel, as the reference's
    spatial concrete dropout.

    Parameters
    ----------
    p : float in (0, 1), default 0.1
        The initial drop probability: ``p_logit`` starts at ``log(p / (1 - p))``.
    temperature : float > 0, default 2/3
        Of the relaxation (the reference's for channels).
    layer : nn.Module or None, keyword-only
        The layer this dropout's output feeds (e.g. the ``Conv2d`` after
        it): :func:`concrete_regularizer` takes its weight for the weight
        term and K = ``layer.in_channels``.
    n_inputs : int or None, keyword-only
        K for the regulariser, when there is no such layer.

    Attributes
    ----------
    p_logit : nn.Parameter
        0-d, ``log(p / (1 - p))``.
    p : float
        ``sigmoid(p_logit)`` now.

    Raises
    ------
    ValueError
        ``p`` not in (0, 1) or 0 or 1 in p_logit's dtype (1e-50 in
        float32), ``temperature`` not a finite number > 0, ``n_inputs``
        not an int >= 1; at call time, an input of a rank the
        variant does not take.
    TypeError
        ``p`` or ``temperature`` not a number (a 0-d tensor is its number),
        ``layer`` not a ``torch.nn.Module``; at call time, an input that is
        not floating-point (torch's dropout refuses it too).

    Examples
    --------
    >>> import torch, cydrop.torch as ct
    >>> conv = torch.nn.Conv2d(4, 6, 3)
    >>> model = torch.nn.Sequential(ct.ConcreteDropout2d(layer=conv), conv)
    >>> model(torch.randn(2, 4, 10, 10)).shape[:2]
    torch.Size([2, 6])
    """

    _lead = (4, 4)
    _axes = "H, W"
    _default_temperature = CHANNEL_TEMPERATURE


class ConcreteDropout3d(_ConcreteDropoutNd):
    """Concrete dropout of whole channels of ``(N, C, D, H, W)`` or ``(C, D, H, W)`` inputs, one learned
    drop probability and one noise value per channel, as the reference's
    spatial concrete dropout.

    Parameters
    ----------
    p : float in (0, 1), default 0.1
        The initial drop probability: ``p_logit`` starts at ``log(p / (1 - p))``.
    temperature : float > 0, default 2/3
        Of the relaxation (the reference's for channels).
    layer : nn.Module or None, keyword-only
        The layer this dropout's output feeds (e.g. the ``Conv3d`` after
        it): :func:`concrete_regularizer` takes its weight for the weight
        term and K = ``layer.in_channels``.
    n_inputs : int or None, keyword-only
        K for the regulariser, when there is no such layer.

    Attributes
    ----------
    p_logit : nn.Parameter
        0-d, ``log(p / (1 - p))``.
    p : float
        ``sigmoid(p_logit)`` now.

    Raises
    ------
    ValueError
        ``p`` not in (0, 1) or 0 or 1 in p_logit's dtype (1e-50 in
        float32), ``temperature`` not a finite number > 0, ``n_inputs``
        not an int >= 1; at call time, an input of a rank the
        variant does not take.
    TypeError
        ``p`` or ``temperature`` not a number (a 0-d tensor is its number),
        ``layer`` not a ``torch.nn.Module``; at call time, an input that is
        not floating-point (torch's dropout refuses it too).

    Examples
    --------
    >>> import torch, cydrop.torch as ct
    >>> conv = torch.nn.Conv3d(4, 6, 3)
    >>> model = torch.nn.Sequential(ct.ConcreteDropout3d(layer=conv), conv)
    >>> model(torch.randn(2, 4, 5, 5, 5)).shape[:2]
    torch.Size([2, 6])
    """

    _lead = (5, 4)
    _axes = "D, H, W"
    _default_temperature = CHANNEL_TEMPERATURE


class ConcreteDropoutLinear(nn.Linear):
    """``y = concrete_dropout(x) @ weight.T + bias``: ``nn.Linear`` with concrete dropout on its input.

    A subclass of ``torch.nn.Linear`` (the same weight and bias, initialised
    by the same draws), plus the ``p_logit`` Parameter, so an ``nn.Linear``
    state_dict loads with ``strict=False``. Inputs may have leading batch
    dimensions, ``(*, in_features)``.

    Forward runs the concrete pass over x, then torch's GEMM (``F.linear``).
    Backward draws the noise again from the call's position: one pass gives
    dx and the relaxed input (for ``dW``) and the p_logit gradient, from
    ``G = dy @ W``. Autograd keeps x, the weight and the position; never the
    relaxed input or a mask. Not twice differentiable. Under torch.compile
    it runs as the custom op ``cydrop::concrete_dropout_linear``. In eval
    mode it is the linear layer; under autocast (F.linear casts its
    arguments) and for tensors the kernels do not take it is concrete
    dropout then ``F.linear``, as ``DropoutLinear`` is.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    p : float in (0, 1), default 0.1
        Initial drop probability.
    temperature : float > 0, default 0.1
    device, dtype
        As for ``torch.nn.Linear``.

    Raises
    ------
    ValueError
        ``p`` not in (0, 1) or 0 or 1 in p_logit's dtype (1e-50 in
        float32), ``temperature`` not a finite number > 0.
    TypeError
        ``p`` or ``temperature`` not a number (a 0-d tensor is its number);
        at call time, an input that is not floating-point.

    Examples
    --------
    >>> import torch, cydrop.torch as ct
    >>> layer = ct.ConcreteDropoutLinear(20, 5)
    >>> out = layer(torch.randn(8, 20))
    >>> out.sum().backward()
    >>> layer.p_logit.grad is not None, layer.weight.grad.shape
    (True, torch.Size([5, 20]))
    """

    def __init__(self, in_features, out_features, bias=True, p=0.1, temperature=DENSE_TEMPERATURE, device=None,
                 dtype=None):
        # checked before nn.Linear draws the weights: a refused call changes nothing
        logit = _initial_logit(p, torch.get_default_dtype() if dtype is None else dtype)
        temperature = _check_temperature(temperature)
        super().__init__(in_features, out_features, bias, device, dtype)
        self.p_logit = nn.Parameter(torch.tensor(logit, device=device, dtype=self.weight.dtype))
        self.temperature = temperature

    @property
    def p(self):
        """The current drop probability ``sigmoid(p_logit)``, a float."""
        return float(torch.sigmoid(self.p_logit.detach()))

    def forward(self, input):
        _check_tensor(input)
        weight, bias = self.weight, self.bias
        if not self.training:
            return F.linear(input, weight, bias)
        # concrete dropout then F.linear where that is what nn.Linear would
        # compute: under autocast F.linear casts its arguments (the fused
        # backward's GEMMs would mix the cast and the float32 weight); under
        # torch.func's transforms and forward-mode AD, whose rules the pair has
        if (not _kernels_can_run(input, self.p_logit) or weight.dtype != input.dtype or not weight.is_cpu
                or input.dim() == 0 or torch.is_autocast_enabled("cpu") or transformed()):
            return F.linear(_concrete(input, self.p_logit, self.temperature, True, 1, None), weight, bias)
        batched = input.dim() != 2
        x = (input.reshape(-1, input.shape[-1]) if batched else input).contiguous()
        if torch.compiler.is_compiling():
            out, _ = concrete_dropout_linear_op(x, weight, bias, self.p_logit, self.temperature,
                                                compiled_position(None, x, x.numel()))
        elif torch.is_grad_enabled():
            out = ConcreteLinearFunction.apply(x, weight, bias, self.p_logit, self.temperature, None)
        else:                                       # inference (MC sampling): no autograd node
            a = checked_value(self.p_logit, self.temperature, x)
            key, block = position(None, x.numel())
            out = kernels.linear_forward(x, weight, bias, a, self.temperature, key, block)
        return out.reshape(*input.shape[:-1], out.shape[-1]) if batched else out

    def regularizer(self, *, weight_regularizer, dropout_regularizer):
        """``weight_regularizer ||W||^2 / (1 - p)
        + dropout_regularizer * in_features * (p log p + (1 - p) log(1 - p))``."""
        return _regularizer(self.p_logit, self.weight, self.in_features,
                            _check_regularizer(weight_regularizer, "weight_regularizer"),
                            _check_regularizer(dropout_regularizer, "dropout_regularizer"))

    def extra_repr(self):
        return f"{super().extra_repr()}, p={self.p:.4g}, temperature={self.temperature:.4g}"
