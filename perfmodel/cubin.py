"""A cubin's kernels: SASS (:mod:`perfmodel.sass`) and ptxas's resource usage, by name.

``nvdisasm -c -gi`` gives the code with its line table and inline chains; ``cuobjdump
-res-usage`` the registers, stack frame, static shared memory and local
memory of each function. Names are kept mangled and demangled (``c++filt``)
so that CUDA template instances can be found by their body type.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from . import sass
from .tools import nvidia_tool

_RES = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")
_FUNC = re.compile(r"Function (\S+):")


@dataclass(frozen=True)
class Resources:
    """ptxas's verdict for one kernel."""

    registers: int
    stack: int  # bytes of stack frame per thread (local memory: spills, indexed arrays)
    shared: int  # static shared memory per block
    local: int


@dataclass
class Kernel:
    """One function of a cubin."""

    name: str  # mangled
    demangled: str
    code: sass.Function
    resources: Resources


@cache
def kernels(path: Path) -> dict[str, Kernel]:
    """Every function of the cubin at ``path``, by mangled name."""
    text = subprocess.run([nvidia_tool("nvdisasm"), "-c", "-gi", str(path)], capture_output=True,
                          text=True, check=True).stdout
    funcs = sass.parse(text)
    res = resources(path)
    names = list(funcs)
    pretty = demangle(names)
    return {n: Kernel(n, d, funcs[n], res.get(n, Resources(0, 0, 0, 0)))
            for n, d in zip(names, pretty)}


@cache
def resources(path: Path) -> dict[str, Resources]:
    """ptxas's resource usage of every function of the cubin at ``path``, by mangled name
    (``cuobjdump -res-usage`` only: no disassembly, for checks that need no SASS)."""
    text = subprocess.run([nvidia_tool("cuobjdump"), "-res-usage", str(path)],
                          capture_output=True, text=True, check=True).stdout
    res: dict[str, Resources] = {}
    name = None
    for line in text.splitlines():
        if m := _FUNC.search(line):
            name = m[1]
        elif name and (m := _RES.search(line)):
            res[name] = Resources(*(int(v) for v in m.groups()))
    return res


def demangle(names: list[str]) -> list[str]:
    """``c++filt`` of each name (the names themselves without c++filt)."""
    if not names or not shutil.which("c++filt"):
        return list(names)
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    lines = out.stdout.splitlines()
    return lines if len(lines) == len(names) else list(names)
