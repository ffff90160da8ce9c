"""The checks of a NumPy array that a kernel entry point reads or writes
through its data pointer: written once here, inlined into each module that
takes such arrays (``_dropout``, ``_fused_net``); each calls
``cnp.import_array()`` itself."""
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
