"""The checks of a NumPy array that a kernel entry point reads or writes
through its data pointer, and the arrays such an entry point makes: written
once here, inlined into each module that takes such arrays (``_dropout``,
``_concrete``, ``_fused_net``); each calls ``cnp.import_array()`` itself."""
cimport numpy as cnp


cdef inline void *array_data(object a, str name, int typenum, bint writable) except? NULL:
    """The data of ``a`` after checking what the kernels rely on besides its
    length or shape: an ndarray of type ``typenum``, C-contiguous, aligned
    and in native byte order, writable when written."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    # equivalent type numbers: uint64 is both NPY_ULONG and NPY_ULONGLONG on LP64
    if not cnp.PyArray_EquivTypenums(cnp.PyArray_TYPE(arr), typenum) or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise TypeError(f"{name} must have dtype {cnp.PyArray_DescrFromType(typenum)}, got {arr.dtype}")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)):
        raise ValueError(f"{name} must be C-contiguous and aligned")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} must be writable")
    return cnp.PyArray_DATA(arr)


cdef inline int float_type(object x, str name) except -1:
    """The type number of x, a float32 or float64 ndarray (TypeError otherwise)."""
    cdef int t
    if cnp.PyArray_Check(x):
        t = cnp.PyArray_TYPE(<cnp.ndarray>x)
        if t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64:
            return t
    raise TypeError(f"{name} must be a float32 or float64 numpy.ndarray, got "
                    f"{getattr(x, 'dtype', type(x).__name__)}")


cdef inline Py_ssize_t size(object a):
    """The elements of ndarray a (checked to be one by array_data or float_type)."""
    return cnp.PyArray_SIZE(<cnp.ndarray>a)


cdef inline object empty_like(object x):
    """A new C-ordered array of x's shape and dtype."""
    cdef cnp.ndarray arr = <cnp.ndarray>x
    return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(arr), cnp.PyArray_DIMS(arr), cnp.PyArray_TYPE(arr), 0)


cdef inline void *out_data(object a, str name, int typenum, Py_ssize_t n) except? NULL:
    """The data of an output array ``a``: array_data's checks, writable, and
    n elements, as many as the input x."""
    cdef void *data = array_data(a, name, typenum, True)
    if size(a) != n:
        raise ValueError(f"{name} has {size(a)} elements, x has {n}")
    return data
