"""``python -m localconn.models [IMG_SIZE]``: print every model's params and MACs (meta device)."""

from __future__ import annotations

import sys

from .complexity import report

if __name__ == "__main__":
    print(report(int(sys.argv[1]) if len(sys.argv) > 1 else 224))
