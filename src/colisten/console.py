"""The command line's rich consoles: `console` for output, `err_console` (stderr) for errors.

Its own module so that `cli`, `pipeline` and the stage commands share them without importing
each other.
"""

from __future__ import annotations

from rich.console import Console

console = Console()
err_console = Console(stderr=True)
