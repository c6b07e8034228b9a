"""CLI smoke: `colisten validate` and `colisten split` write the run and report clearly."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from colisten.cli import app

ITEMS = "item_id,item_type,title\na1,audiobook,Audio\np1,podcast,Pod\n"
INTERACTIONS = (
    "user_id,item_id,event,timestamp\n"
    "u1,p1,stream,2024-01-01T00:00:00Z\n"
    "u1,a1,follow,2024-03-01T00:00:00Z\n"
    "u2,a1,stream,2024-03-30T00:00:00Z\n"
    "u2,zz,stream,2024-03-30T00:00:00Z\n"
)


def make_input(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    (data / "items.csv").write_text(ITEMS)
    (data / "interactions.csv").write_text(INTERACTIONS)
    return data


def test_validate_then_split(tmp_path):
    data, run = make_input(tmp_path), tmp_path / "run"
    r = CliRunner().invoke(app, ["validate", "--data", str(data), "--run", str(run)])
    assert r.exit_code == 0, r.output
    assert "unknown_item" in r.output and "audiobook" in r.output and "2024-03-30" in r.output
    for name in ("items", "users", "interactions", "quarantine"):
        assert (run / "data" / f"{name}.parquet").exists()

    r = CliRunner().invoke(app, ["split", "--run", str(run)])
    assert r.exit_code == 0, r.output
    assert "Hold-out" in r.output and "warm" in r.output
    manifest = json.loads((run / "manifest.json").read_text())
    assert set(manifest["stages"]) >= {"validate", "split"}
    assert manifest["data"]["fingerprint"].startswith("sha256:")
    assert manifest["stages"]["validate"]["interactions"] == {"rows_in": 4, "accepted": 3, "quarantined": 1}
    assert (run / "split" / "segments.parquet").exists()


def test_validate_without_run_writes_only_the_quarantine(tmp_path):
    data = make_input(tmp_path)
    target = tmp_path / "rejected.parquet"
    r = CliRunner().invoke(app, ["validate", "--data", str(data), "--quarantine", str(target)])
    assert r.exit_code == 0, r.output
    assert target.exists() and "Quarantine:" in r.output
    assert sorted(p.name for p in data.iterdir()) == ["interactions.csv", "items.csv"]


def test_bad_input_exits_2_with_a_message(tmp_path):
    data = make_input(tmp_path)
    (data / "interactions.csv").write_text("user_id,item_id,event\nu1,a1,stream\n")
    proc = subprocess.run(
        [sys.executable, "-m", "colisten", "validate", "--data", str(data), "--run", str(tmp_path / "run")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "interactions.csv" in proc.stderr and "'timestamp'" in proc.stderr
    assert "Traceback" not in proc.stderr
