"""localconn's static kernel cost model (``make perf-model``; see perfmodel/README.md)."""
