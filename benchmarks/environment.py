"""The ``env`` block of the results: what machine and software produced them."""

from __future__ import annotations

import datetime
import platform
import subprocess
from typing import Optional

import torch


def triton_version() -> Optional[str]:
    """Installed Triton's version, or None."""
    try:
        import triton
    except Exception:
        return None
    return getattr(triton, "__version__", "unknown")


def driver_version() -> Optional[str]:
    """The NVIDIA driver version from ``nvidia-smi``, or None."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        )
    except Exception:
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def device_name(device: torch.device) -> str:
    """E.g. ``"NVIDIA H100 80GB HBM3"`` or ``"cpu x86_64 (2 threads)"``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"cpu {cpu} ({torch.get_num_threads()} threads)"


def environment(device: torch.device, copy_gbps: float, command: str) -> dict:
    """The ``env`` object of results.json."""
    cuda = device.type == "cuda"
    return {
        "device": device_name(device),
        "torch": torch.__version__,
        "triton": triton_version(),
        "cuda": torch.version.cuda if cuda else None,
        "driver": driver_version() if cuda else None,
        "copy_gbps": round(copy_gbps, 2),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }
