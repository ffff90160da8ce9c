"""cydrop's dropout inside PyTorch CPU training and inference loops.

``import cydrop.torch`` needs torch (``pip install "cydrop[torch]"``);
``import cydrop`` alone never imports it.

Dropout, Dropout1d, Dropout2d, Dropout3d
    Subclasses of their torch.nn namesakes on cydrop's kernels.
DropoutLinear
    ``nn.Linear`` with dropout on its inputs.
ConcreteDropout, ConcreteDropout1d, ConcreteDropout2d, ConcreteDropout3d, ConcreteDropoutLinear
    Dropout that learns its rate (Concrete dropout): ``p`` is a parameter.
concrete_dropout, concrete_regularizer
    The functional form; the prior term the training loss adds.
replace_dropout, mc_dropout
    Swap a model's dropout modules; Monte Carlo dropout at inference.
functional
    dropout, dropout1d, dropout2d, dropout3d with an optional ``seed``.

``p`` is the drop probability, as in PyTorch (cydrop's NumPy API takes
``keep_prob = 1 - p``). Calls cydrop cannot compute (CUDA, MPS, float16,
bfloat16, other dtypes, nested tensors) run torch's own op.

Each call draws its mask's key from torch's default generator, as torch's
dropout draws its mask (``_keys``): ``torch.manual_seed``, ``fork_rng``,
``get_rng_state``/``set_rng_state`` and activation checkpointing replay
cydrop's masks as they replay torch's. Outputs are laid out like their
input. Every module and function composes with torch.func's transforms
(``grad``, ``vjp``, ``jacrev``, ``jvp``, ``vmap`` by its ``randomness=``) and
forward-mode AD: the dropout Functions have rules for them, and the concrete
modules compute their formula in torch's operations there, from the noise
the kernels draw at the same position. torch.compile runs the same kernels
as custom ops.
"""
from . import functional
from .concrete import (ConcreteDropout, ConcreteDropout1d, ConcreteDropout2d, ConcreteDropout3d,
                       ConcreteDropoutLinear, concrete_dropout, concrete_regularizer)
from ._swap import mc_dropout, replace_dropout
from .modules import Dropout, Dropout1d, Dropout2d, Dropout3d, DropoutLinear

__all__ = ["ConcreteDropout", "ConcreteDropout1d", "ConcreteDropout2d", "ConcreteDropout3d",
           "ConcreteDropoutLinear", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "DropoutLinear",
           "concrete_dropout", "concrete_regularizer", "functional", "mc_dropout", "replace_dropout"]
