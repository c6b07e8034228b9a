"""The command line's rich consoles: `console` for output, `err_console` (stderr) for errors,
the stages' `log` callable type (and `quiet`, which drops the lines), and the timing text of the
training stages' plain per-epoch lines.

Its own module so that `cli`, `pipeline` and the stage commands share them without importing
each other.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console

console = Console()
err_console = Console(stderr=True)

Log = Callable[[str], None]  # a stage's own progress lines (train-hgnn / train-2t: one per epoch)


def quiet(_message: str) -> None:
    """The default `log` of a stage run on its own: its lines are dropped."""


def epoch_timing(seconds: list[float], done: int, total: int) -> str:
    """ "(3.1 s, ETA at most 12 s)": the last epoch's seconds, and the time left if every remaining
    epoch runs as long as the mean so far (an upper bound: early stopping may end sooner)."""
    left = max(total - done, 0) * (sum(seconds) / len(seconds))
    return f"({seconds[-1]:.1f} s, ETA at most {left:.0f} s)"
