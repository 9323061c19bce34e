"""Build script for localconn.

The package is pure Python on a machine without CUDA; compiled backends
(csrc/, triton_kernels/) plug into ``localconn.backends`` when present.
Install for development with ``pip install -e . --no-build-isolation``.
"""

from setuptools import find_packages, setup

setup(
    name="localconn",
    version="0.1.0",
    description="Fast channel-wise locally-connected layers: depth-wise conv, "
    "dynamic depth-wise conv, involution and local attention in one operator",
    packages=find_packages(include=["localconn", "localconn.*"]) + ["localconn.triton_kernels"],
    package_dir={"localconn.triton_kernels": "triton_kernels"},
    python_requires=">=3.9",
    install_requires=["torch>=2.4", "numpy"],
    extras_require={
        "test": ["pytest", "hypothesis", "pytest-benchmark"],
        "bench": ["tqdm", "matplotlib"],
        "dev": ["pytest", "hypothesis", "pytest-benchmark", "ruff", "tqdm", "matplotlib"],
    },
)
