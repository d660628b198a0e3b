"""Terminal output shared by `podgate apply` and `podgate test`: tables, the apply summary, progress."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from webhook.cli.policytest.runner import describe_changes
from webhook.engine.decision import Decision


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, like `kubectl get`; the last column is never padded."""
    widths = [max(len(str(row[i])) for row in (headers, *rows)) for i in range(len(headers))]
    lines = []
    for row in (headers, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("  ".join([*cells, str(row[-1])]).rstrip())
    return "\n".join(lines)


__all__ = ["Progress", "Tally", "describe_changes", "table"]


@dataclass
class Tally:
    """What `podgate apply` counts over every object it read: the admitted ones are those it prints,
    and mutated and warned count among them; a denied object is not stored, so not printed either."""

    read: int = 0
    admitted: int = 0
    mutated: int = 0
    warned: int = 0
    denied: int = 0

    def add(self, decision: Decision) -> None:
        self.read += 1
        if not decision.allowed:
            self.denied += 1
            return
        self.admitted += 1
        self.mutated += decision.mutated
        self.warned += decision.outcome == "warned"

    def render(self, *, terminal: bool, printed: bool = True) -> str:
        """`printed` false: bad input stopped the output, and the summary must not claim otherwise."""
        admitted = "admitted, printed" if printed else "admitted, not printed (bad input)"
        counts = (
            ("read", self.read),
            (admitted, self.admitted),
            ("mutated", self.mutated),
            ("warned", self.warned),
            ("denied", self.denied),
        )
        if terminal:
            return table(["OBJECTS", "COUNT"], [(name, str(count)) for name, count in counts])
        noun = "object" if self.read == 1 else "objects"
        return (
            f"summary: {self.read} {noun} read: {self.admitted} {admitted} ({self.mutated} mutated, "
            f"{self.warned} warned), {self.denied} denied"
        )


class Progress:
    """A one-line counter on stderr, redrawn in place, only when stderr is a terminal.

    Anything else printed to stderr goes through `print` so the counter is wiped first and does
    not leave half-lines in the middle of a report.
    """

    def __init__(self, total_files: int, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.total = total_files
        self.files = 0
        self.objects = 0
        self._shown = False

    def advance(self, *, files: int = 0, objects: int = 0) -> None:
        self.files += files
        self.objects += objects
        if self.enabled:
            self.stream.write(f"\r\033[Kreading: {self.files}/{self.total} files, {self.objects} objects")
            self.stream.flush()
            self._shown = True

    def print(self, text: str) -> None:
        self.clear()
        print(text, file=self.stream)

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False
