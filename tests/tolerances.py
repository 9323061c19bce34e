"""Tolerances per dtype, written down once, and a readable comparison.

Every test that compares a localconn result with an oracle or a PyTorch
equivalent goes through :func:`assert_close`. Inputs are rounded to the
tested dtype *before* the oracle runs, so the tolerance only has to cover
accumulation order and the final rounding of the output:

* float64 - summation order only.
* float32 - a few ulps of sums of up to K*K terms of unit size.
* float16 / bfloat16 - one rounding of the float32-accumulated result
  (11 and 8 significant bits) on outputs of size ~sqrt(K*K).
"""

from __future__ import annotations

import torch

TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    # dtype: (rtol, atol)
    torch.float64: (1e-9, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
}


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol) for results computed in ``dtype``."""
    return TOLERANCES[dtype]


def assert_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    dtype: torch.dtype | None = None,
    what: str = "result",
    scale: float = 1.0,
) -> None:
    """``torch.testing.assert_close`` with the tolerance of ``dtype`` (default:
    ``actual.dtype``), NaN where the expected value has NaN (and only there), both sides
    compared in float64.

    ``scale`` widens the tolerance for results that sum many more terms
    than one output element (e.g. a weight gradient reduced over a batch).
    On failure the message names ``what`` and the dtype, then PyTorch's report: how many
    elements differ, the greatest differences and where.
    """
    dtype = dtype or actual.dtype
    rtol, atol = TOLERANCES[dtype]
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}")
    torch.testing.assert_close(
        actual.detach().to("cpu", torch.float64), expected.detach().to("cpu", torch.float64),
        rtol=rtol * scale, atol=atol * scale, equal_nan=True,
        msg=lambda report: f"{what} ({dtype}): {report}",
    )
