"""cydrop.MLP's model file: what ``MLP.save`` writes and ``MLP.load`` reads back.

An ``.npz`` (``numpy.savez``, stored, no pickle) of the weights, the
optimizer's state arrays and a JSON header with everything else: the
architecture, the classes and their dtype, the L2 and max-norm of the last
training, the optimizer's name, rate, step and sample counts, and the positions of the
shuffling and mask generators. A loaded network trains on exactly as the
saved one would. The reader (``_model_file.read_model_file``) checks every
array against the header before reading it.
"""
import json
import math

import numpy as np

from ._generator import Generator
from ._model_file import read_model_file
from ._optimizers import OPTIMIZERS, make_optimizer
from ._validation import check_positive_int

_FORMAT = "cydrop-mlp"
_VERSION = 2
_READS = (1, 2)  # version 1: weights, classes and l2 only
_CLASS_KINDS = "biufU"  # labels that JSON carries exactly


def save(net, file):
    classes = classes_dtype = None
    if net.classes_ is not None:
        if net.classes_.dtype.kind not in _CLASS_KINDS:
            raise ValueError(f"classes_ of dtype {net.classes_.dtype} cannot be saved; "
                             "use ints, floats, bools or strings as labels")
        classes, classes_dtype = net.classes_.tolist(), net.classes_.dtype.str
    opt = net._optimizer
    header = {"format": _FORMAT, "version": _VERSION, "layer_sizes": net.layer_sizes,
              "keep_prob": net.keep_prob, "activation": net.activation, "output": net.output,
              "dtype": net.dtype.name, "seed": net.seed, "classes": classes, "classes_dtype": classes_dtype,
              "classes_given": net._classes_given, "trained": net._trained,
              "l2": net.l2, "max_norm": net.max_norm,
              "optimizer": None if opt is None else {"name": opt.name, "learning_rate": opt.learning_rate,
                                                     "momentum": opt.momentum, "t": opt.t,
                                                     "samples": opt.samples},
              "mask_generator": net._gen.state, "shuffle_generator": net._rng.bit_generator.state}
    arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    for i, (W, b) in enumerate(zip(net.weights, net.biases)):
        arrays[f"W{i}"], arrays[f"b{i}"] = W, b
    if opt is not None:
        for j, state in enumerate(opt.state):
            for k, arr in enumerate(state):
                arrays[f"opt{j}_{k}"] = arr
    if hasattr(file, "write"):
        np.savez(file, **arrays)
    else:
        with open(file, "wb") as f:
            np.savez(f, **arrays)


def load(cls, file):
    header, arrays = read_model_file(file, _declared_arrays)
    try:
        net = cls(header["layer_sizes"], header["keep_prob"], header["activation"], header["output"],
                  header["dtype"], _check_seed(header.get("seed")))
        net.classes_ = _check_classes(header.get("classes"), header.get("classes_dtype"), net)
        net.l2 = _check_number(header.get("l2", 0.0), "l2", allow_zero=True)
        if header["version"] >= 2:
            max_norm = header.get("max_norm")
            net.max_norm = None if max_norm is None else _check_number(max_norm, "max_norm", allow_zero=False)
            net._classes_given = _check_flag(header.get("classes_given"), "classes_given")
            net._trained = _check_flag(header.get("trained"), "trained")
            net._gen = Generator.from_state(header["mask_generator"])
            net._rng.bit_generator.state = _check_pcg64(header["shuffle_generator"])
        else:
            net._trained = net.classes_ is not None
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{file!r} has an invalid header ({exc})") from None
    for i in range(len(net.weights)):
        for name in (f"W{i}", f"b{i}"):
            if not np.isfinite(arrays[name]).all():
                raise ValueError(f"{file!r}: {name} contains NaN or inf")
        net.weights[i], net.biases[i] = arrays[f"W{i}"], arrays[f"b{i}"]
    opt = header.get("optimizer") if header["version"] >= 2 else None
    if opt is not None:
        try:
            optimizer = make_optimizer(opt["name"], net.params, opt["learning_rate"], opt["momentum"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{file!r} has an invalid optimizer in its header ({exc})") from None
        optimizer.t = opt["t"]
        optimizer.samples = opt.get("samples", 0)  # written since the "invscaling" schedule
        optimizer.state = [[arrays[f"opt{j}_{k}"] for k in range(len(net.params))]
                           for j in range(optimizer.n_state)]
        if not all(np.isfinite(a).all() for state in optimizer.state for a in state):
            raise ValueError(f"{file!r}: the optimizer state contains NaN or inf")
        net._optimizer = optimizer
    return net


def _declared_arrays(header):
    """{name: (shape, dtype)} of the arrays a model header declares, checked
    before any array is read or any weight allocated."""
    if header.get("format") != _FORMAT:
        raise ValueError(f"format {header.get('format')!r}: not a cydrop model file")
    if header.get("version") not in _READS:
        raise ValueError(f"format version {header.get('version')!r}; this cydrop reads {list(_READS)}")
    sizes = header["layer_sizes"]
    if not isinstance(sizes, list) or len(sizes) < 2:
        raise ValueError(f"layer_sizes must be a list of at least 2 ints, got {sizes!r}")
    sizes = [check_positive_int(n, "layer_sizes") for n in sizes]
    if header.get("dtype") not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {header.get('dtype')!r}")
    dtype = np.dtype(header["dtype"])
    arrays, shapes = {}, []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        arrays[f"W{i}"], arrays[f"b{i}"] = ((n_in, n_out), dtype), ((n_out,), dtype)
        shapes.append((n_in, n_out))
    shapes += [(n_out,) for n_out in sizes[1:]]  # the optimizer's state is laid out like weights + biases
    opt = header.get("optimizer") if header["version"] >= 2 else None
    if opt is not None:
        if not isinstance(opt, dict) or opt.get("name") not in OPTIMIZERS:
            raise ValueError(f"optimizer must name one of {list(OPTIMIZERS)}, got {opt!r}")
        t = opt.get("t")
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < 2**63:
            raise ValueError(f"optimizer step count must be an int in [0, 2**63), got {t!r}")
        samples = opt.get("samples", 0)
        if isinstance(samples, bool) or not isinstance(samples, int) or not 0 <= samples < 2**63:
            raise ValueError(f"optimizer sample count must be an int in [0, 2**63), got {samples!r}")
        n_state = {"sgd": 0, "momentum": 1, "nesterov": 1, "adam": 2}[opt["name"]]
        for j in range(n_state):
            for k, shape in enumerate(shapes):
                arrays[f"opt{j}_{k}"] = (shape, dtype)
    return arrays


def _check_classes(classes, dtype, net):
    """The class labels of a model header: None, or sorted unique labels of
    one type (as np.unique gives them), no more than the outputs, in their dtype."""
    if classes is None:
        if net.output != "linear":
            raise ValueError(f"a network with output={net.output!r} needs classes")
        return None
    if net.output == "linear":
        raise ValueError("classes given for output='linear'")
    if not isinstance(classes, list) or not classes or len({type(c) for c in classes}) != 1 \
            or type(classes[0]) not in (int, float, str, bool):
        raise ValueError(f"classes must be a non-empty list of labels of one type, got {str(classes)[:100]}")
    if dtype is None:  # version 1
        labels = np.asarray(classes)
    else:
        if not isinstance(dtype, str) or len(dtype) > 16 or np.dtype(dtype).kind not in _CLASS_KINDS:
            raise ValueError(f"classes_dtype must name an int, float, bool or str dtype, got {dtype!r}")
        labels = np.asarray(classes, dtype=np.dtype(dtype))
        if labels.tolist() != classes:
            raise ValueError(f"classes do not fit classes_dtype {dtype!r}")
    room = 2 if net.output == "sigmoid" else net.layer_sizes[-1]
    if labels.ndim != 1 or len(labels) > room or not np.array_equal(np.unique(labels), labels):
        raise ValueError(f"classes must be at most {room} sorted unique labels, got {str(classes)[:100]}")
    return labels


def _check_number(value, name, allow_zero):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return float(value)


def _check_flag(value, name):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _check_seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be an int or null, got {seed!r}")
    return seed


def _check_pcg64(state):
    """A PCG64 state dict as numpy writes it, with ints in range."""
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
        raise ValueError("shuffle_generator must be a PCG64 state")
    inner = state.get("state")
    if not isinstance(inner, dict) or set(inner) != {"state", "inc"}:
        raise ValueError("shuffle_generator state must have 'state' and 'inc'")
    for name in ("state", "inc"):
        v = inner[name]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**128:
            raise ValueError(f"shuffle_generator {name} must be an int in [0, 2**128)")
    for name in ("has_uint32", "uinteger"):
        v = state.get(name)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**32:
            raise ValueError(f"shuffle_generator {name} must be an int in [0, 2**32)")
    return state
