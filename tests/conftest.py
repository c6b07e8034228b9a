"""Fixtures shared by the test folders."""

import pytest


@pytest.fixture
def cli(monkeypatch, capsys):
    """`cli(*ARGS)` runs `colisten ARGS` as a user would; returns (exit code, stdout, stderr)."""
    import sys

    from colisten.cli import main

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["colisten", *map(str, args)])
        with pytest.raises(SystemExit) as e:
            main()
        out = capsys.readouterr()
        return e.value.code, out.out, out.err

    return run
