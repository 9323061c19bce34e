"""Parameters and MACs of the registered models, computed, beside the published figures.

Counting runs on the meta device (no memory, no compute), through
:func:`localconn.flops.count`: parameters are ``sum(p.numel())``, MACs are
``torch.utils.flop_counter``'s count of one forward pass at batch 1 (convolutions,
linear layers and localconn's primitives; normalisations, activations,
softmax and pooling are not counted) divided by two.

Example::

    >>> c = complexity("swin_tiny")
    >>> round(c.params / 1e6), round(c.macs / 1e9, 1)
    (28, 4.5)
"""

from __future__ import annotations

from typing import Any

import torch

from ..flops import Counts, count
from .registry import create, info, names


def complexity(name: str, img_size: int = 224, **kwargs: Any) -> Counts:
    """``Counts(params, macs)`` of ``create(name, img_size=img_size, **kwargs)`` at batch 1.

    Example::

        >>> complexity("dwnet_tiny").params > 20e6
        True
    """
    with torch.device("meta"):
        model = create(name, img_size=img_size, **kwargs)
    return count(model, (1, model.in_chans, img_size, img_size))


def report(img_size: int = 224) -> str:
    """A Markdown table: every model's computed params / MACs and the published figures.

    A model that cannot be built at ``img_size`` gets a row saying why.

    Example::

        >>> print(report())  # doctest: +SKIP
        | model | params | MACs | published params | published MACs |
        ...
    """
    rows = [
        "| model | params | MACs | published params | published MACs |",
        "|---|---|---|---|---|",
    ]
    for name in names():
        try:
            c = complexity(name, img_size)
        except ValueError as e:  # e.g. Swin windows that do not tile this resolution
            rows.append(f"| {name} | - | - | - | - ({e}) |")
            continue
        pub = info(name).published if img_size == 224 else None
        p_pub, m_pub = ("-", "-") if pub is None else (f"{pub[0] / 1e6:.0f}M", f"{pub[1] / 1e9:.1f}G")
        rows.append(
            f"| {name} | {c.params / 1e6:.2f}M | {c.macs / 1e9:.3f}G | {p_pub} | {m_pub} |"
        )
    return "\n".join(rows)
