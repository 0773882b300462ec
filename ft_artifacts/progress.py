"""Progress reporting without printing: library code reports (done, total) per named stage.

A `Progress` maps a stage name to that stage's callback; the CLI turns each stage into a bar.
"""

from __future__ import annotations

from typing import Callable

Callback = Callable[[int, int], None]  # (done, total)
Progress = Callable[[str], Callback]  # stage name -> that stage's callback


def stage(progress: Progress | None, name: str) -> Callback | None:
    """The callback for one stage, or None when nobody listens."""
    return progress(name) if progress else None
