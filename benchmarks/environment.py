"""The ``env`` block of the results: what machine and software produced them."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess
import time
from pathlib import Path
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


def _cpu_times() -> Optional[list[int]]:
    """The aggregate ``cpu`` line of /proc/stat (user nice system idle iowait irq softirq
    steal ...), in ticks; None where there is no /proc/stat."""
    try:
        line = Path("/proc/stat").read_text().splitlines()[0]
    except OSError:
        return None
    return [int(v) for v in line.split()[1:]]


def machine_load(window_s: float = 0.5) -> dict:
    """What else is using this machine: the load averages, and over ``window_s`` seconds
    the share of CPU time that was busy and that the hypervisor gave to other guests
    (``steal``, which a VM's load average does not show).

    Example::

        >>> machine_load(0.1)  # doctest: +SKIP
        {'loadavg': [0.31, 0.4, 0.52], 'busy_pct': 3.0, 'steal_pct': 0.0, 'cpus': 2}
    """
    load: dict = {"cpus": os.cpu_count()}
    with contextlib.suppress(OSError):  # (no load averages on Windows)
        load["loadavg"] = [round(v, 2) for v in os.getloadavg()]
    before = _cpu_times()
    if before is not None:
        time.sleep(window_s)
        after = _cpu_times()
        d = [a - b for a, b in zip(after or before, before)]
        total = sum(d[:8]) or 1
        idle = d[3] + (d[4] if len(d) > 4 else 0)
        load["busy_pct"] = round(100 * (total - idle) / total, 1)
        load["steal_pct"] = round(100 * (d[7] if len(d) > 7 else 0) / total, 1)
    return load


def load_warning(load: dict) -> Optional[str]:
    """A warning when the machine was busy before a CPU run (other work shares its cores,
    so times are slower and noisier than the machine's), else None: the 1-minute load
    average over half the CPUs, or more than 10 % of the CPU time busy or stolen."""
    cpus = load.get("cpus") or 1
    reasons = []
    if load.get("loadavg") and load["loadavg"][0] > cpus / 2:
        reasons.append(f"1-minute load average {load['loadavg'][0]} on {cpus} CPUs")
    if load.get("busy_pct", 0) > 10:
        reasons.append(f"{load['busy_pct']} % of the CPU time busy before the run")
    if load.get("steal_pct", 0) > 10:
        reasons.append(f"{load['steal_pct']} % stolen by the hypervisor (other guests)")
    if not reasons:
        return None
    return ("warning: the machine is busy (" + "; ".join(reasons) + "): CPU times will be "
            "slower and noisier than this machine's; compare ratios within one run")
