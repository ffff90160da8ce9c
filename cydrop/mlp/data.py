"""Data checks and label encoding of cydrop.MLP: arrays in, arrays the engines take out.

Each check names the argument it refuses. Nothing here changes a network:
the face (``cydrop.mlp.model``) checks everything first and commits after.
"""
import sys
import warnings

import numpy as np

__all__ = ["check_X", "check_classes", "check_sample_weight", "dense", "dense_rows", "encode_y", "is_sparse"]


def check_X(X, network, name="X"):
    """X as a C-contiguous array of the network's dtype, (n_samples, n_features),
    finite; a SciPy sparse X as a CSR matrix of that dtype (the caller's
    matrix is never changed), which the passes densify a batch at a time."""
    if is_sparse(X):
        return _check_sparse_X(X, network, name)
    X = _as_numeric(X)
    if X.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a numeric array, got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 samples)")
    if X.shape[1] != network.layer_sizes[0]:
        raise ValueError(f"{name} has {X.shape[1]} features, the network expects {network.layer_sizes[0]}")
    _check_finite(X, name)
    dtype = network.dtype
    with np.errstate(over="ignore"):
        cast = np.require(X, dtype=dtype, requirements=["C", "A"])  # as the kernels read it
    if not np.isfinite(cast).all():
        raise ValueError(f"{name} has values too large for {dtype} (largest magnitude "
                         f"{float(np.max(np.abs(X))):.3g}, {dtype} holds {float(np.finfo(dtype).max):.3g})")
    return cast


def _check_sparse_X(X, network, name):
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    if X.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a numeric array, got dtype {X.dtype}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 samples)")
    if X.shape[1] != network.layer_sizes[0]:
        raise ValueError(f"{name} has {X.shape[1]} features, the network expects {network.layer_sizes[0]}")
    X = X.tocsr()  # rows of a batch are slices of CSR's arrays
    _check_finite(X.data, name)
    dtype = network.dtype
    with np.errstate(over="ignore"):
        cast = X.astype(dtype, copy=False)
    if not np.isfinite(cast.data).all():
        raise ValueError(f"{name} has values too large for {dtype} (largest magnitude "
                         f"{float(np.max(np.abs(X.data))):.3g}, {dtype} holds {float(np.finfo(dtype).max):.3g})")
    return cast


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


def dense(X):
    """X as a C-contiguous ndarray (a SciPy sparse X densified whole)."""
    return np.ascontiguousarray(X.toarray()) if is_sparse(X) else X


def encode_y(y, n, network, classes, name="y", learn_classes=False):
    """(Y, learnt classes or None): targets as the network's output array
    (one-hot, a 0/1 column, or values), encoded against ``classes`` (the
    network's class labels). With ``learn_classes`` (a first training
    without given classes) the labels of y become the classes; they are
    returned, not set, so that a call refused later changes nothing."""
    output, dtype, n_outputs = network.output, network.dtype, network.layer_sizes[-1]
    regression = output in ("linear", "gaussian")
    y = _as_numeric(y) if regression else _as_labels(y, name)
    if y.ndim == 0:
        raise ValueError(f"{name} must hold one target per sample ({n}), got a scalar {y!r}")
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} samples but X has {n}")
    if regression:
        if y.dtype.kind not in "fiub":
            raise TypeError(f"{name} must be numeric for output={output!r}, got dtype {y.dtype}")
        _check_finite(y, name)
        with np.errstate(over="ignore"):   # a value too large for dtype is refused below, by name
            Y = y.reshape(n, -1).astype(dtype)
        if Y.shape[1] != network.n_targets:
            raise ValueError(f"{name} has {Y.shape[1]} targets per sample, the network has "
                             f"{network.n_targets} {'targets' if output == 'gaussian' else 'outputs'}")
        if not np.isfinite(Y).all():
            raise ValueError(f"{name} has values too large for {dtype}")
        if output == "gaussian":   # as wide as the outputs: the second half is not read
            Y = np.concatenate([Y, np.zeros_like(Y)], axis=1)
        return np.ascontiguousarray(Y), None
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(f"a column-vector {name} was passed when a 1-D array was expected; it was ravelled "
                      "(as scikit-learn does)", _data_conversion_warning(), stacklevel=5)
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels, got shape {y.shape}")
    if y.dtype.kind == "f":
        _check_finite(y, name)
    if learn_classes:
        classes = check_classes(_unique(y, name), network, name)
    idx = np.clip(_searchsorted(classes, y, name), 0, len(classes) - 1)
    unseen = classes[idx] != y
    if unseen.any():
        raise ValueError(f"{name} has labels that are not among the classes {classes.tolist()[:10]}: "
                         f"{_unique(y[unseen], name)[:5].tolist()}")
    if output == "sigmoid":
        Y = idx.astype(dtype).reshape(n, 1)
    else:
        Y = np.zeros((n, n_outputs), dtype=dtype)
        Y[np.arange(n), idx] = 1
    return Y, (classes if learn_classes else None)


def check_classes(classes, network, name):
    """Class labels as a sorted 1-D array of unique labels, no more than the network has outputs for."""
    labels = _as_labels(classes, name)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of labels, got shape {labels.shape}")
    if labels.dtype.kind == "f":
        _check_finite(labels, name)
    unique = _unique(labels, name)
    room = 2 if network.output == "sigmoid" else network.layer_sizes[-1]
    if len(unique) > room:
        raise ValueError(f"{name} has {len(unique)} classes, the network has room for {room}")
    return unique


def check_sample_weight(sample_weight, n, name="sample_weight"):
    """float64 (n,) of finite weights >= 0 with a positive sum, or None."""
    if sample_weight is None:
        return None
    w = _as_numeric(sample_weight)
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


def _as_numeric(data):
    """An ndarray of data, pandas nullable columns included (missing values as NaN)."""
    if isinstance(data, np.ndarray):
        return data
    if hasattr(data, "to_numpy") and hasattr(data, "dtypes"):  # a pandas Series or DataFrame
        dtypes = [data.dtypes] if not hasattr(data.dtypes, "__iter__") else list(data.dtypes)
        if all(getattr(d, "kind", "O") in "fiub" or hasattr(d, "numpy_dtype") for d in dtypes):
            return data.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(data)


def _as_labels(data, name):
    """Labels as an ndarray: pandas nullable columns with missing values are
    refused as NaN, and labels that are all strings (an object array, pandas'
    ``str`` or ``category`` columns) become a NumPy string array, which a
    model file can hold."""
    dtype = getattr(data, "dtype", None)
    if hasattr(data, "to_numpy") and hasattr(dtype, "numpy_dtype"):  # pandas Int64, boolean, Float64 ...
        if data.isna().to_numpy().any():
            raise ValueError(f"{name} contains NaN (missing values)")
        return data.to_numpy(dtype=dtype.numpy_dtype)
    raw = data.to_numpy() if hasattr(data, "to_numpy") else data
    labels = np.asarray(raw)
    if labels.dtype.kind == "U" and not isinstance(raw, np.ndarray):
        # NumPy makes strings of ["a", 1]: refuse mixed labels rather than change them
        _unique(np.asarray(raw, dtype=object), name)
    if labels.dtype == object and labels.size and all(isinstance(v, str) for v in labels.flat):
        labels = labels.astype(str)
    return labels


def _unique(labels, name):
    """np.unique, with a TypeError naming ``name`` for labels that cannot be sorted together."""
    kinds = None
    if labels.dtype == object:
        kinds = sorted({type(v).__name__ for v in labels.flat})
        # str and numbers would sort as NumPy strings if NumPy made them one array
        if "str" in kinds and len(kinds) > 1:
            raise TypeError(f"{name} mixes labels of types {kinds}; use labels of one type")
    try:
        return np.unique(labels)
    except TypeError:
        kinds = kinds or sorted({type(v).__name__ for v in np.asarray(labels, dtype=object).flat})
        raise TypeError(f"{name} mixes labels of types {kinds} that cannot be sorted together; "
                        "use labels of one type") from None


def _searchsorted(classes, y, name):
    """np.searchsorted of labels y in sorted classes (a TypeError naming ``name`` for incomparable labels)."""
    try:
        return np.searchsorted(classes, y)
    except TypeError:
        raise TypeError(f"{name} has labels of another type than the classes "
                        f"{classes.tolist()[:10]} ({classes.dtype})") from None


def _check_finite(arr, name):
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains {'NaN' if np.isnan(arr).any() else 'infinity'}")


def _data_conversion_warning():
    """scikit-learn's DataConversionWarning when scikit-learn is installed
    (imported only when warning: cydrop does not need it), else UserWarning."""
    try:
        from sklearn.exceptions import DataConversionWarning
    except ImportError:
        return UserWarning
    return DataConversionWarning
