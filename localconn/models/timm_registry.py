"""Registering the models with timm (optional): ``timm.create_model("localconn_dwnet_tiny")``.

Every name of :func:`localconn.models.names` is registered as
``"localconn_" + name`` (timm's own ``swin_tiny_patch4_window7_224`` etc. do
not clash). ``import localconn.models`` registers them when timm is
installed and importable; without timm nothing happens (timm stays an
optional dependency), and a timm that fails to import gives one warning.

The entry points take timm's arguments (``pretrained``, ``pretrained_cfg``,
``pretrained_cfg_overlay``, ``cache_dir``; ``device``, ``dtype``;
``features_only``, ``out_indices``, ``output_fmt``: a :class:`FeatureNet`) and pass
the rest to :func:`localconn.models.create`. There are no pretrained
weights: ``pretrained=True`` raises ``ValueError``. The model carries a
``pretrained_cfg`` (input size, ImageNet mean/std) for timm's data pipeline.

Example::

    >>> import localconn.models, timm                              # doctest: +SKIP
    >>> timm.create_model("localconn_dwnet_tiny", num_classes=10)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import warnings
from typing import Any, Callable, Optional

import torch
from torch import nn

from .registry import create, names

PREFIX = "localconn_"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def timm_name(name: str) -> str:
    """The timm name of model ``name``: ``"localconn_" + name``.

    Example::

        >>> timm_name("dwnet_tiny")
        'localconn_dwnet_tiny'
    """
    return PREFIX + name


def entrypoint(name: str) -> Callable[..., nn.Module]:
    """A timm model entry point (a function named :func:`timm_name`) that builds ``name``.

    Example::

        >>> fn = entrypoint("dwnet_tiny")
        >>> fn.__name__
        'localconn_dwnet_tiny'
        >>> fn(img_size=64, embed_dim=16, depths=(1, 1, 1, 1)).pretrained_cfg["input_size"]
        (3, 64, 64)
    """

    def fn(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        if pretrained:
            raise ValueError(f"{timm_name(name)}: localconn ships no pretrained weights")
        for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
            kwargs.pop(key, None)
        features_only = kwargs.pop("features_only", False)
        out_indices = kwargs.pop("out_indices", None)
        output_fmt = kwargs.pop("output_fmt", "NCHW")
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        with torch.device(device) if device is not None else contextlib.nullcontext():
            model = create(name, **kwargs)
        if dtype is not None:
            model = model.to(dtype=dtype)
        model.pretrained_cfg = model.default_cfg = {
            "architecture": timm_name(name),
            "input_size": (model.in_chans, model.img_size, model.img_size),
            "num_classes": model.num_classes,
            "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD,
            "crop_pct": 0.9,
            "interpolation": "bicubic",
            "classifier": "head",
        }
        if features_only:
            return FeatureNet(model, out_indices, output_fmt)
        return model

    fn.__name__ = fn.__qualname__ = timm_name(name)
    fn.__module__ = __name__
    fn.__doc__ = f"localconn's {name} (see localconn.models.create)."
    setattr(sys.modules[__name__], fn.__name__, fn)  # importable by its name, as timm expects
    return fn


class FeatureInfo(list):
    """The stages a :class:`FeatureNet` returns: dicts of ``num_chs``, ``reduction``,
    ``module``, with timm's ``FeatureInfo`` accessors."""

    def channels(self) -> list[int]:
        return [f["num_chs"] for f in self]

    def reduction(self) -> list[int]:
        return [f["reduction"] for f in self]

    def module_name(self) -> list[str]:
        return [f["module"] for f in self]


class FeatureNet(nn.Module):
    """timm's ``features_only=True``: the model's stage maps (before each merging) as a list,
    the stages past the last one asked for and the head dropped.

    Args:
        model: a :class:`~localconn.models.skeleton.LocalNet`.
        out_indices: stages (default all; ``n``: the last ``n``; negative from the end).
        output_fmt: ``"NCHW"`` or ``"NHWC"``.

    Example::

        >>> net = entrypoint("dwnet_tiny")(features_only=True, out_indices=(1, 3), img_size=64,
        ...                                embed_dim=16, depths=(1, 1, 1, 1))
        >>> [tuple(f.shape) for f in net(torch.randn(1, 3, 64, 64))], net.feature_info.channels()
        ([(1, 32, 8, 8), (1, 128, 2, 2)], [32, 128])
    """

    def __init__(self, model: nn.Module, out_indices: Any = None,
                 output_fmt: str = "NCHW") -> None:
        super().__init__()
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        info = model.feature_info
        self.out_indices = model.prune_intermediate_layers(out_indices, prune_norm=True,
                                                           prune_head=True)
        self.model = model
        self.output_fmt = output_fmt
        self.feature_info = FeatureInfo(info[i] for i in self.out_indices)
        self.pretrained_cfg = self.default_cfg = model.pretrained_cfg

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, indices=self.out_indices,
                                                output_fmt=self.output_fmt,
                                                intermediates_only=True, stop_early=True)


def register_with_timm(register_model: Optional[Callable[[Callable], Any]] = None) -> list[str]:
    """Register every model with ``register_model`` (default: ``timm.models.register_model``).

    Returns the registered timm names. Registering again overwrites (timm warns).

    Example::

        >>> registered = {}
        >>> register_with_timm(lambda fn: registered.setdefault(fn.__name__, fn))[0]
        'localconn_dwnet_tiny'
    """
    if register_model is None:
        from timm.models import register_model
    return [register_model(entrypoint(n)).__name__ for n in names()]


def register_if_installed() -> bool:
    """Register with timm if it is installed; ``True`` if registered.

    A timm that is installed but fails to import (e.g. a torchvision built for
    another PyTorch) is reported by a ``RuntimeWarning``, not raised.

    Example::

        >>> register_if_installed() in (True, False)
        True
    """
    if importlib.util.find_spec("timm") is None:
        return False
    try:
        register_with_timm()
    except Exception as e:  # timm is optional: never break `import localconn.models`
        warnings.warn(
            f"timm is installed but localconn's models could not be registered with it "
            f"({type(e).__name__}: {e})",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    return True
