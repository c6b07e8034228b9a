"""User-facing errors. The CLI prints their message (no traceback) and exits with code 2."""


class ColistenError(Exception):
    """Base class: a problem the user can fix (bad input, missing artifact, bad setting)."""
