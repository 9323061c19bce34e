"""Progress on stderr: tqdm on a terminal, plain lines in a log.

The total counts only the work that runs: :meth:`Progress.skip` takes an item that will
not run (a provider that declines the case) out of it, so the rate and ETA are those of
real work. On a stream that is not a terminal (a CI log, ``| tee``) there is no ``\\r``
redrawing: one line every tenth of the work and one at the end.

Example::

    >>> import io
    >>> out = io.StringIO()
    >>> p = Progress(4, stream=out)
    >>> p.skip(); p.update("a"); p.update("b"); p.update("c"); p.close()
    >>> out.getvalue().splitlines()[-1]
    '[3/3] c'
"""

from __future__ import annotations

import sys
from typing import Optional, TextIO


class Progress:
    """``update(label)`` after each unit of work, ``skip()`` for one that will not run,
    ``close()`` at the end."""

    def __init__(self, total: int, enabled: bool = True,
                 stream: Optional[TextIO] = None) -> None:
        self.total, self.done, self.enabled = total, 0, enabled
        self.stream = stream if stream is not None else sys.stderr
        self._bar: Optional[object] = None
        self._last_line = -1
        self._printed: tuple[int, int] = (-1, -1)
        self._label = ""
        if not enabled or not _is_terminal(self.stream):
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self._bar = tqdm(total=total, file=self.stream, dynamic_ncols=True, leave=False)

    def describe(self, label: str) -> None:
        """Say what runs now."""
        if self._bar is not None:
            self._bar.set_description_str(label[:60])  # type: ignore[attr-defined]

    def skip(self) -> None:
        """One unit less to do (it will not run)."""
        self.total = max(self.done, self.total - 1)
        if self._bar is not None:
            self._bar.total = self.total  # type: ignore[attr-defined]
            self._bar.refresh()  # type: ignore[attr-defined]

    def update(self, label: str = "") -> None:
        """One more unit done."""
        self.done += 1
        self._label = label
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(1)  # type: ignore[attr-defined]
        elif _is_terminal(self.stream):
            print(f"\r[{self.done}/{self.total}] {label[:70]:70}", end="", file=self.stream)
        else:
            tenth = 10 * self.done // max(self.total, 1)
            if tenth != self._last_line or self.done == self.total:
                self._last_line = tenth
                self._line()

    def close(self) -> None:
        """Remove the bar (or end the counter's line)."""
        if self._bar is not None:
            self._bar.close()  # type: ignore[attr-defined]
        elif self.enabled and _is_terminal(self.stream):
            print(file=self.stream)
        elif self.enabled and self.done and self._printed != (self.done, self.total):
            self._line()  # (the final count, after the last skips)

    def _line(self) -> None:
        self._printed = (self.done, self.total)
        print(f"[{self.done}/{self.total}] {self._label[:70]}", file=self.stream, flush=True)


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
