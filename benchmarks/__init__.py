"""The localconn kernel benchmark suite.

Run ``python -m benchmarks --help`` (CLI: :mod:`benchmarks.__main__`) or
``pytest benchmarks --benchmark-only`` (pytest-benchmark:
:mod:`benchmarks.test_benchmarks`). One registry of cases
(:mod:`benchmarks.cases`) and one of providers (:mod:`benchmarks.providers`)
drive both; see ``benchmarks/README.md``.
"""
