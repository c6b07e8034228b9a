"""Errors the server raises for problems a user can fix (bad run directory, bad reload request)."""

from colisten.errors import ColistenError


class ServeError(ColistenError):
    """A run that cannot be served, or a request the server refuses for a stated reason."""
