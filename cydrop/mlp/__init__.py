"""cydrop.MLP: a multi-layer perceptron whose every dense layer is fused, with dropout per layer.

The package, one concept per module:

- ``model.py``: :class:`MLP`, the face a user holds (checks, then delegates);
- ``data.py``: data checks and label encoding;
- ``network.py``: the network's state (architecture, parameters, random streams);
- ``engines/``: the two engines behind one interface (``interface.py``):
  ``reference.py`` layer by layer on the fused dense layer, ``compiled.py``
  a whole epoch in one call into ``src/_fused_net.pyx``;
- ``losses.py``: output activations, losses, gradients and scores;
- ``optimizers.py``: SGD, momentum and Adam with their state;
- ``training.py``: the one training loop and its stopping rule;
- ``debugging.py``: the debugging recipe (``MLP.check``, ``MLP.gradient_check``);
- ``model_file.py``: ``MLP.save`` and ``MLP.load``.
"""
from .model import MLP

__all__ = ["MLP"]
