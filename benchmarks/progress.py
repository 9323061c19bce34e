"""A progress bar on stderr: tqdm if installed, else a plain counter."""

from __future__ import annotations

import sys
from typing import Optional


class Progress:
    """``update(label)`` after each unit of work; ``close()`` at the end."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.done, self.enabled = total, 0, enabled
        self._bar: Optional[object] = None
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self._bar = tqdm(total=total, file=sys.stderr, dynamic_ncols=True, leave=False)

    def describe(self, label: str) -> None:
        """Say what runs now."""
        if self._bar is not None:
            self._bar.set_description_str(label[:60])  # type: ignore[attr-defined]

    def update(self, label: str = "") -> None:
        """One more unit done."""
        self.done += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(1)  # type: ignore[attr-defined]
        else:
            print(f"\r[{self.done}/{self.total}] {label[:70]:70}", end="", file=sys.stderr)

    def close(self) -> None:
        """Remove the bar (or end the counter's line)."""
        if self._bar is not None:
            self._bar.close()  # type: ignore[attr-defined]
        elif self.enabled:
            print(file=sys.stderr)
