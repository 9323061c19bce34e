"""The models of Han et al. (ICLR 2022) on localconn: the DWNet family and local attention.

* :func:`create` builds a model by name, :func:`names` lists them
  (``dwnet_tiny``, ``dwnet_base``, ``dynamic_dwnet_tiny``,
  ``dynamic_dwnet_base``, ``idynamic_dwnet_tiny``, ``idynamic_dwnet_base``,
  ``swin_tiny``, ``swin_base``, ``nat_tiny``); see :mod:`.registry`.
* :func:`complexity` counts a model's parameters and MACs (meta device),
  :func:`report` tabulates them beside the published figures
  (``python -m localconn.models``).
* With timm installed, ``import localconn.models`` registers every model with
  timm as ``localconn_<name>`` (:mod:`.timm_registry`).

Files: ``skeleton.py`` (Swin macro design), ``layers.py`` (LayerNorm2d,
Mlp, DropPath), ``blocks.py`` (DWNet spatial block, attention block),
``baselines.py`` (the original code's layers, ``layers="torch"``),
``registry.py``, ``complexity.py``, ``timm_registry.py``.

Example::

    >>> import localconn.models
    >>> net = localconn.models.create("dwnet_tiny", img_size=64, embed_dim=16,
    ...                               depths=(1, 1, 1, 1), num_classes=10)
    >>> net(torch.randn(2, 3, 64, 64)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from .complexity import complexity, report
from .registry import ModelInfo, create, info, names
from .skeleton import BlockSpec, LocalNet
from .timm_registry import register_if_installed, register_with_timm

register_if_installed()

__all__ = [
    "BlockSpec",
    "LocalNet",
    "ModelInfo",
    "complexity",
    "create",
    "info",
    "names",
    "register_with_timm",
    "report",
]
