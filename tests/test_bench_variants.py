"""bench/variants.py: a cached trial stands only for the code that trained it (its folder name
carries a hash of the sources), so a change to the model is never judged against old code."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _variants():
    sys.path.insert(0, str(BENCH))  # variants.py imports its neighbour quality.py
    try:
        spec = importlib.util.spec_from_file_location("bench_variants", BENCH / "variants.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_the_code_key_follows_every_trained_module_but_not_serving(tmp_path: Path) -> None:
    code_key = _variants().code_key
    (tmp_path / "twotower").mkdir()
    (tmp_path / "serve").mkdir()
    (tmp_path / "twotower" / "model.py").write_text("x = 1\n")
    (tmp_path / "serve" / "app.py").write_text("y = 1\n")
    first = code_key(tmp_path)
    assert code_key(tmp_path) == first
    (tmp_path / "serve" / "app.py").write_text("y = 2\n")
    assert code_key(tmp_path) == first  # no trial runs the server
    (tmp_path / "twotower" / "model.py").write_text("x = 2\n")
    assert code_key(tmp_path) != first
    (tmp_path / "twotower" / "model.py").write_text("x = 1\n")
    (tmp_path / "twotower" / "train.py").write_text("")
    assert code_key(tmp_path) != first  # a new module counts too
    assert len(first) == 12 and code_key() != first  # the installed package by default
