"""cydrop: fast inverted dropout for NumPy training loops.

Public API
----------
dropout, dropout_backward
    Element-wise inverted dropout on packed one-bit masks.
Generator
    Counter-based random source: a seed gives the same masks on any thread count.
Mask
    A dropout mask packed one bit per element.
dense_forward, dense_backward
    Fused dense layer: input dropout, GEMM, bias and activation in one call.
MLP, dropout_l2_equivalent
    Multi-layer perceptron on the fused layers; dropout as adaptive L2.
concrete_dropout, concrete_dropout_backward, concrete_regularizer
    Concrete dropout: the drop rate learned by gradient descent.
set_num_threads, get_num_threads
    Threads used by the OpenMP kernels.
"""
from ._generator import Generator
from ._mask import Mask
from ._threads import get_deterministic, get_num_threads, set_deterministic, set_num_threads
from .concrete import (ConcreteState, concrete_dropout, concrete_dropout_backward, concrete_keep_prob,
                       concrete_p_logit, concrete_regularizer, concrete_regularizer_weights)
from .dense import DenseCache, dense_backward, dense_forward
from .mlp import MLP
from .ops import dropout, dropout_backward
from .regularization import dropout_l2_equivalent

__version__ = "0.1.0"

__all__ = [
    "ConcreteState",
    "DenseCache",
    "Generator",
    "MLP",
    "Mask",
    "concrete_dropout",
    "concrete_dropout_backward",
    "concrete_keep_prob",
    "concrete_p_logit",
    "concrete_regularizer",
    "concrete_regularizer_weights",
    "dropout",
    "dense_backward",
    "dense_forward",
    "dropout_backward",
    "dropout_l2_equivalent",
    "get_deterministic",
    "get_num_threads",
    "set_deterministic",
    "set_num_threads",
]
