"""The artifact catalogue (issue 17): every run artifact is named once, in colisten/artifacts.py.

A static check: no module of the package (the synthetic world's own folder aside: it is not a
run) spells an artifact's run path ("split/split.json") or file name ("split.json") as a string;
they go through `colisten.artifacts`. Strings with spaces (messages) are not paths and are not
checked."""

from __future__ import annotations

import ast
from pathlib import Path, PurePosixPath

import pytest

from colisten import artifacts
from colisten.rundir import RunDir, RunError

SRC = Path(__file__).resolve().parents[1] / "src" / "colisten"
NOT_A_RUN = ("world",)  # folders whose files describe something other than a run directory


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            ids.add(id(first.value))
    return ids


def artifact_strings() -> list[str]:
    folders = {a.folder for a in artifacts.CATALOGUE}
    names = {a.name for a in artifacts.CATALOGUE if "." in a.name and "{" not in a.name}
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.name == "artifacts.py" or rel.parts[0] in NOT_A_RUN:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in skip:
                continue
            text = node.value
            if not text or any(c.isspace() for c in text):
                continue
            parts = PurePosixPath(text).parts
            if text in names or (len(parts) > 1 and parts[0] in folders):
                found.append(f"{rel}:{node.lineno}: {text!r}")
    return found


def test_no_artifact_path_outside_the_catalogue():
    found = artifact_strings()
    assert not found, "artifact paths spelled outside colisten/artifacts.py:\n" + "\n".join(found)


def test_the_catalogue_names_each_artifact_once():
    paths = [a.path for a in artifacts.CATALOGUE]
    assert len(paths) == len(set(paths))
    assert {"data/items.parquet", "split/holdout.parquet", "twotower/best.pt"} <= set(paths)


def test_a_missing_artifact_names_the_command_that_writes_it(tmp_path):
    rd = RunDir(tmp_path)
    with pytest.raises(RunError, match=r"split/split.json is missing: run `colisten split --run"):
        rd.require(artifacts.SPLIT)
    with pytest.raises(RunError, match=r"run `colisten validate --data DIR --run"):
        artifacts.load_items(rd)
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "audiobook.voy").write_bytes(b"")
    assert rd.require(artifacts.INDEX, item_type="audiobook") == tmp_path / "index" / "audiobook.voy"
    assert artifacts.INDEX.glob(rd) == [tmp_path / "index" / "audiobook.voy"]
    assert artifacts.TWOTOWER_MODEL.within(tmp_path / "m") == tmp_path / "m" / "best.pt"
    assert artifacts.TWOTOWER_MEMBER.within(tmp_path, member=2) == tmp_path / "members" / "2"


def test_a_branch_shares_stage_folders_by_relative_links(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rd = RunDir("run")  # a relative run path, as `colisten demo --out run` gives
    (rd.root / "data").mkdir(parents=True)
    (rd.root / "data" / "items.parquet").write_bytes(b"x")
    sub = rd.branch(artifacts.BASELINE_2T.at(rd), share=["data"])
    assert sub.root == Path("run/baselines/2T")
    assert (sub.root / "data").is_symlink() and not Path((sub.root / "data").readlink()).is_absolute()
    assert artifacts.ITEMS.at(sub).read_bytes() == b"x"
    assert rd.branch(artifacts.BASELINE_2T.at(rd), share=["data"]).root == sub.root  # kept as it is
