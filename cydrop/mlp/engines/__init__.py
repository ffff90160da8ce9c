"""The MLP's two engines behind one interface, and the choice between them.

- ``interface.py``: :class:`Engine`, the operations training and inference
  need (``predict``, ``mc_passes``, ``train_epoch``, ``gradients``), with
  the semantics both engines share.
- ``reference.py``: :class:`ReferenceEngine`, the network layer by layer on
  the fused dense layer (``cydrop.dense``): the readable reference.
- ``compiled.py``: :class:`CompiledEngine`, a whole epoch (or all MC passes)
  in one call into ``src/_fused_net.pyx``: the fast path.

:func:`select` decides which one runs a network.
"""
from .compiled import CompiledEngine, MAX_DENSE_LAYERS, prefers, takes
from .interface import Engine
from .reference import ReferenceEngine

__all__ = ["ENGINES", "CompiledEngine", "Engine", "ReferenceEngine", "check_engine", "select"]

ENGINES = ("auto", "reference", "compiled")

_CLASSES = {"reference": ReferenceEngine, "compiled": CompiledEngine}


def check_engine(engine, network):
    """``engine`` as given to cydrop.MLP, checked against the network (ValueError naming ``engine``)."""
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ValueError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    if engine == "compiled" and not takes(network):
        raise ValueError(f"engine='compiled' takes at most {MAX_DENSE_LAYERS} dense layers, "
                         f"the network has {network.n_layers}")
    return engine


def select(network, engine="auto", current=None):
    """The engine that runs ``network`` now: ``engine`` when it names one,
    else ("auto") the compiled engine where it is the faster choice
    (:func:`~cydrop.mlp.engines.compiled.prefers`: networks of at most
    ``MAX_DENSE_LAYERS`` layers), the reference engine otherwise.
    ``current``, the engine used last, is returned when it is still the
    right one, so that its caches survive."""
    if engine == "auto":
        engine = "compiled" if prefers(network) else "reference"
    if current is not None and current.name == engine:
        return current
    return _CLASSES[engine]()
