"""The MLP's model file: what ``MLP.save`` writes and ``MLP.load`` reads back, safely.

The file is what ``numpy.savez`` writes (stored, no pickle): a zip archive of
``.npy`` members, the weights, biases and the optimizer's state arrays, and
a JSON header, as bytes, with everything else: the architecture, the classes
and their dtype, the L2 and max-norm of the last training, the optimizer's
name, rate and step count, and the positions of the shuffling and mask
generators. A loaded network trains on exactly as the saved one would.

Reading one never unpickles, never runs code, and never allocates more than
the file holds:

* the archive must be a plain zip of ``.npy`` members, stored (no
  compression, so no zip bomb) and not encrypted, each inside the file;
* the header member is read first (at most ``MAX_HEADER_BYTES``) and parsed
  as strict JSON (no NaN/Infinity, no deep nesting);
* the header is turned into the exact list of arrays it declares, with
  shapes and dtypes; every other member, or a missing one, is refused;
* each array's ``.npy`` header must declare exactly that shape and dtype,
  object dtypes are refused, and the member must hold exactly that many
  bytes, all checked before its data is read.

Errors are ``ValueError`` naming the file and what is wrong with it, except
``FileNotFoundError`` and the ``TypeError`` of a ``file`` argument that is
neither a path nor a binary file object.
"""
import io
import json
import math
import os
import zipfile
from dataclasses import dataclass

import numpy as np
from numpy.lib import format as npy_format

from .._generator import Generator
from .._validation import check_positive_int
from .engines import ENGINES
from .network import LEARN, ConcreteSettings, Network
from .optimizers import OPTIMIZERS, make_optimizer

__all__ = ["MAX_HEADER_BYTES", "TrainingState", "check_file", "load", "read_model_file", "save"]

MAX_HEADER_BYTES = 1 << 20
_MAX_NPY_HEADER = 10000  # numpy's own default limit for .npy headers

_FORMAT = "cydrop-mlp"
_VERSION = 2
_READS = (1, 2)  # version 1: weights, classes and l2 only
_CLASS_KINDS = "biufU"  # labels that JSON carries exactly


@dataclass
class TrainingState:
    """What cydrop.MLP keeps besides its network and classes, and saves with them."""

    classes_given: bool = False   # classes fixed at construction
    trained: bool = False         # after the first update, the classes are fixed too
    l2: float = 0.0               # J's L2 coefficient of the last training
    max_norm: float = None        # the max-norm of the last training, or None
    prior: tuple = None           # (wr, dr) of the learned layers' prior in the last training, or None
    stream_rows: int = 0          # rows given to partial_fit since the last fit (the prior's N there)
    optimizer: object = None      # its optimizer (cydrop.mlp.optimizers), state included, or None


def check_file(file, name="file"):
    """``file`` as open() or numpy take it: a path (str, bytes, os.PathLike)
    or a binary file object; TypeError naming ``name`` otherwise (an int
    would be taken as a file descriptor)."""
    if isinstance(file, (str, bytes, os.PathLike)):
        return file
    if hasattr(file, "read") or hasattr(file, "write"):
        if isinstance(file, io.TextIOBase):
            raise TypeError(f"{name} must be opened in binary mode ('rb' or 'wb'), got a text file")
        return file
    raise TypeError(f"{name} must be a path (str, bytes or os.PathLike) or a binary file object, "
                    f"got {type(file).__name__}")


def save(file, network, training, classes, engine):
    """Write ``network`` (a Network), its ``training`` state, its ``classes``
    (ndarray or None) and the ``engine`` setting to ``file`` (checked by check_file)."""
    # what load refuses is refused here, before anything is written
    network.require_kernel_ready()   # replaced weights of another shape or dtype
    if not all(np.isfinite(a).all() for a in network.weights + network.biases + network.p_logits):
        raise ValueError("the network's weights, biases or learned p_logits contain NaN or inf (training "
                         "diverged?): a model file holds finite parameters only")
    if training.optimizer is not None and not all(np.isfinite(a).all() for s in training.optimizer.state for a in s):
        raise ValueError("the optimizer state contains NaN or inf (training diverged?): a model file holds "
                         "finite values only")
    classes_list = classes_dtype = None
    if classes is not None:
        if classes.dtype.kind not in _CLASS_KINDS:
            raise ValueError(f"classes_ of dtype {classes.dtype} cannot be saved; "
                             "use ints, floats, bools or strings as labels")
        classes_list, classes_dtype = classes.tolist(), classes.dtype.str
    opt = training.optimizer
    header = {"format": _FORMAT, "version": _VERSION, "layer_sizes": network.layer_sizes,
              "keep_prob": network.keep_prob, "activation": network.activation, "output": network.output,
              "dtype": network.dtype.name, "seed": network.seed, "init": network.init, "engine": engine,
              "classes": classes_list,
              "classes_dtype": classes_dtype, "classes_given": training.classes_given,
              "trained": training.trained, "l2": training.l2, "max_norm": training.max_norm,
              "concrete": network.concrete.__getstate__(),
              "prior": None if training.prior is None else list(training.prior),
              "stream_rows": training.stream_rows,
              "optimizer": None if opt is None else {"name": opt.name, "learning_rate": opt.learning_rate,
                                                     "momentum": opt.momentum, "t": opt.t,
                                                     "samples": opt.samples},
              "mask_generator": network.mask_gen.state, "shuffle_generator": network.shuffle_rng.bit_generator.state}
    arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    for i, (W, b) in enumerate(zip(network.weights, network.biases)):
        arrays[f"W{i}"], arrays[f"b{i}"] = W, b
    for i, a in zip(network.learned_layers, network.p_logits):
        arrays[f"p_logit{i}"] = a
    if opt is not None:
        for j, state in enumerate(opt.state):
            for k, arr in enumerate(state):
                arrays[f"opt{j}_{k}"] = arr
    if isinstance(file, (str, bytes, os.PathLike)):
        with open(file, "wb") as f:
            np.savez(f, **arrays)
    else:
        np.savez(file, **arrays)


def load(file):
    """``(network, training, classes, engine)`` read from ``file`` (checked by check_file)."""
    header, arrays = read_model_file(file, _declared_arrays)
    training = TrainingState()
    try:
        concrete = header.get("concrete")   # files written before learned keep_prob: the defaults
        concrete = ConcreteSettings(**concrete) if concrete is not None else None
        network = Network(header["layer_sizes"], header["keep_prob"], header["activation"], header["output"],
                          header["dtype"], _check_seed(header.get("seed")), header.get("init", "auto"), concrete)
        prior = header.get("prior")
        if prior is not None:
            if not isinstance(prior, list) or len(prior) != 2:
                raise ValueError(f"prior must be a list of two numbers, got {prior!r}")
            training.prior = tuple(_check_number(v, "prior", allow_zero=True) for v in prior)
        stream_rows = header.get("stream_rows", 0)
        if isinstance(stream_rows, bool) or not isinstance(stream_rows, int) or stream_rows < 0:
            raise ValueError(f"stream_rows must be an int >= 0, got {stream_rows!r}")
        training.stream_rows = stream_rows
        engine = header.get("engine", "auto")   # files written before it was kept: the default
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
        classes = _check_classes(header.get("classes"), header.get("classes_dtype"), network)
        training.l2 = _check_number(header.get("l2", 0.0), "l2", allow_zero=True)
        if header["version"] >= 2:
            max_norm = header.get("max_norm")
            training.max_norm = None if max_norm is None else _check_number(max_norm, "max_norm", allow_zero=False)
            training.classes_given = _check_flag(header.get("classes_given"), "classes_given")
            training.trained = _check_flag(header.get("trained"), "trained")
            network.mask_gen = Generator.from_state(header["mask_generator"])
            network.shuffle_rng.bit_generator.state = _check_pcg64(header["shuffle_generator"])
        else:
            training.trained = classes is not None
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{file!r} has an invalid header ({exc})") from None
    for i in range(network.n_layers):
        for name in (f"W{i}", f"b{i}"):
            if not np.isfinite(arrays[name]).all():
                raise ValueError(f"{file!r}: {name} contains NaN or inf")
        network.weights[i], network.biases[i] = arrays[f"W{i}"], arrays[f"b{i}"]
    for k, i in enumerate(network.learned_layers):
        if not np.isfinite(arrays[f"p_logit{i}"]).all():
            raise ValueError(f"{file!r}: p_logit{i} contains NaN or inf")
        network.p_logits[k] = arrays[f"p_logit{i}"]
    opt = header.get("optimizer") if header["version"] >= 2 else None
    if opt is not None:
        try:
            optimizer = make_optimizer(opt["name"], network.params, opt["learning_rate"], opt["momentum"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{file!r} has an invalid optimizer in its header ({exc})") from None
        optimizer.t = opt["t"]
        optimizer.samples = opt.get("samples", 0)  # written since the "invscaling" schedule
        optimizer.state = [[arrays[f"opt{j}_{k}"] for k in range(len(network.params))]
                           for j in range(optimizer.n_state)]
        if not all(np.isfinite(a).all() for state in optimizer.state for a in state):
            raise ValueError(f"{file!r}: the optimizer state contains NaN or inf")
        training.optimizer = optimizer
    return network, training, classes, engine


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
    keep_prob = header.get("keep_prob")
    if not isinstance(keep_prob, list) or len(keep_prob) != len(sizes) - 1:
        raise ValueError(f"keep_prob must be a list of one entry per layer, got {keep_prob!r}")
    learned = [i for i, kp in enumerate(keep_prob) if kp == LEARN]
    arrays, shapes = {}, []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        arrays[f"W{i}"], arrays[f"b{i}"] = ((n_in, n_out), dtype), ((n_out,), dtype)
        shapes.append((n_in, n_out))
    for i in learned:
        arrays[f"p_logit{i}"] = ((1,), dtype)
    # the optimizer's state is laid out like the parameters: weights, biases, p_logits
    shapes += [(n_out,) for n_out in sizes[1:]] + [(1,)] * len(learned)
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


def _check_classes(classes, dtype, network):
    """The class labels of a model header: None, or sorted unique labels of
    one type (as np.unique gives them), no more than the outputs, in their dtype."""
    if classes is None:
        if network.output not in ("linear", "gaussian"):
            raise ValueError(f"a network with output={network.output!r} needs classes")
        return None
    if network.output in ("linear", "gaussian"):
        raise ValueError(f"classes given for output={network.output!r}")
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
    room = 2 if network.output == "sigmoid" else network.layer_sizes[-1]
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


def read_model_file(path, expected_arrays):
    """Read the header and arrays of a model file, checking each against the header.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
    expected_arrays : callable
        ``expected_arrays(header) -> {name: (shape, dtype)}``: the arrays
        the header declares (the header itself excluded). Raises ValueError
        (or TypeError/KeyError, reported as an invalid header) when the
        header is not acceptable.

    Returns
    -------
    header : dict
    arrays : dict of name -> ndarray (native byte order, C-contiguous, writable)
    """
    if isinstance(path, (bytes, os.PathLike)):
        path = os.fsdecode(path)   # zipfile takes bytes for a file object
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path!r} is not a model file: not a zip archive ({exc})") from None
    with archive:
        members = _members(path, archive)
        if "header" not in members:
            raise ValueError(f"{path!r} is not a model file (no header)")
        header_bytes = _read_npy(path, archive, members["header"], "header", None, np.dtype(np.uint8),
                                 MAX_HEADER_BYTES)
        header = _parse_header(path, header_bytes.tobytes())
        try:
            expected = expected_arrays(header)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path!r} has an invalid header ({exc})") from None
        if set(members) != set(expected) | {"header"}:
            raise ValueError(f"{path!r} has arrays {sorted(members)}, the header declares "
                             f"{sorted(set(expected) | {'header'})}")
        arrays = {name: _read_npy(path, archive, members[name], name, shape, dtype)
                  for name, (shape, dtype) in expected.items()}
    return header, arrays


def _members(path, archive):
    """{name without .npy: ZipInfo}, each a stored, unencrypted member within the file."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise ValueError(f"{path!r} has duplicate members")
    archive.fp.seek(0, 2)
    file_size = archive.fp.tell()
    members = {}
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise ValueError(f"{path!r} has a member {info.filename!r} that is not a .npy array")
        if info.flag_bits & 0x1:
            raise ValueError(f"{path!r}: member {info.filename!r} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise ValueError(f"{path!r}: member {info.filename!r} is compressed; model files are stored "
                             "uncompressed (as numpy.savez writes them)")
        if info.header_offset + info.compress_size > file_size:
            raise ValueError(f"{path!r}: member {info.filename!r} claims {info.file_size} bytes, more than "
                             f"the file holds ({file_size}): truncated or corrupt")
        members[info.filename[:-4]] = info
    return members


def _read_npy(path, archive, info, name, shape, dtype, max_bytes=None):
    """Read a .npy member after checking its header against shape and dtype
    (shape None: any 1-D shape of at most max_bytes)."""
    where = f"{path!r}: {name}"
    try:
        with archive.open(info) as f:
            version = npy_format.read_magic(f)
            if version == (1, 0):
                got_shape, fortran, got_dtype = npy_format.read_array_header_1_0(f, max_header_size=_MAX_NPY_HEADER)
            elif version == (2, 0):
                got_shape, fortran, got_dtype = npy_format.read_array_header_2_0(f, max_header_size=_MAX_NPY_HEADER)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            if got_dtype.hasobject:
                raise ValueError("holds Python objects (object arrays are never loaded)")
            native = got_dtype.newbyteorder("=") if got_dtype.byteorder != "|" else got_dtype
            if native != dtype:
                raise ValueError(f"has dtype {got_dtype}, expected {dtype}")
            if shape is None:
                if len(got_shape) != 1 or got_shape[0] * dtype.itemsize > max_bytes:
                    raise ValueError(f"has shape {got_shape}, expected 1-D of at most {max_bytes} bytes")
            elif tuple(got_shape) != tuple(shape):
                raise ValueError(f"has shape {got_shape}, the header says {tuple(shape)}")
            n_bytes = math.prod(got_shape) * got_dtype.itemsize
            if info.file_size - f.tell() != n_bytes:
                raise ValueError(f"holds {info.file_size - f.tell()} bytes of data, its shape needs {n_bytes}")
            data = f.read(n_bytes)
            if len(data) != n_bytes or f.read(1):  # the last read also checks the CRC
                raise ValueError("is truncated")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{where} {exc}") from None
    arr = np.frombuffer(data, dtype=got_dtype).reshape(got_shape, order="F" if fortran else "C")
    return np.array(arr, dtype=dtype, order="C")  # native, C-ordered, writable, aligned


def _parse_header(path, raw):
    def refuse_constant(name):
        raise ValueError(f"{name} is not allowed")

    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path!r} has a corrupt header ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path!r} is not a model file (its header is not a JSON object)")
    return header
