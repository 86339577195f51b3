"""Progress of a long command on stderr: a bar that redraws on a terminal, plain lines otherwise
(a log file or CI keeps every step, and nothing scrolls away)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 30


class Progress:
    """``advance()`` once per step out of ``total`` (None when the total is not known)."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.terminal = self.stream.isatty()

    def advance(self, note: str = "", steps: int = 1) -> None:
        self.done += steps
        elapsed = time.monotonic() - self.started
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        if self.terminal and self.total:
            filled = int(_WIDTH * min(self.done / self.total, 1))
            bar = "#" * filled + "." * (_WIDTH - filled)
            line = f"\r{self.label} [{bar}] {count} {elapsed:.0f}s {note}"
            self.stream.write(line[:120].ljust(120))
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"{self.label}: {count} {note} ({elapsed:.1f}s)".rstrip() + "\n")
        self.stream.flush()
