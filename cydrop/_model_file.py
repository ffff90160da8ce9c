"""Reading a model file that may be hostile.

A model file is what ``numpy.savez`` writes (and ``MLP.save`` uses): a zip
archive of ``.npy`` members, stored uncompressed, one of them a JSON header
as bytes. Reading one never unpickles, never runs code, and never allocates
more than the file holds:

* the archive must be a plain zip of ``.npy`` members, stored (no
  compression, so no zip bomb) and not encrypted, each inside the file;
* the header member is read first (at most ``MAX_HEADER_BYTES``) and parsed
  as strict JSON (no NaN/Infinity, no deep nesting);
* the caller turns the header into the exact list of arrays it declares,
  with shapes and dtypes; every other member, or a missing one, is refused;
* each array's ``.npy`` header must declare exactly that shape and dtype,
  object dtypes are refused, and the member must hold exactly that many
  bytes, all checked before its data is read.

Errors are ``ValueError`` naming the file and what is wrong with it, except
``FileNotFoundError``.
"""
import json
import math
import zipfile

import numpy as np
from numpy.lib import format as npy_format

__all__ = ["MAX_HEADER_BYTES", "read_model_file"]

MAX_HEADER_BYTES = 1 << 20
_MAX_NPY_HEADER = 10000  # numpy's own default limit for .npy headers


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
