"""The "Simulated A/B test" section of RUN/eval/report.html (issue 14): per results.json the lift
table beside the paper's, starts by source and the cumulative starts chart; a bad file gets a
note; the abtest stage re-renders an evaluated run's report."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from colisten.abtest import stage as abtest_stage
from colisten.abtest.arms import parse_arms
from colisten.abtest.stage import PAPER_LIFTS, format_results, load_context
from colisten.config import Settings
from colisten.data import stage as data_stage
from colisten.evaluate.report import refresh_report
from colisten.io import write_json_atomic
from colisten.rundir import RunDir
from colisten.world.simulate import generate_world

METRICS = ["start_rate", "stream_rate", "shelf_starts", "organic_starts", "longtail_share"]


def run_abtest(run, arms, **options):
    """The abtest stage on the run directory `run` with its own settings."""
    rd = RunDir(run)
    return abtest_stage.run(rd, rd.settings(), arms=arms, **options)


def _results(treatments: dict[str, str], lift: float = 0.1234) -> dict:
    """A results.json as the abtest stage writes it (control "ctl" = Popularity), numbers made up."""
    models = {"ctl": "Popularity", **treatments}
    arms = {a: {"users": 1000 + i, **{m: 0.25 + 0.01 * i for m in METRICS}} for i, a in enumerate(models)}
    lifts = {
        a: {m: {"lift": lift * i, "ci95": [0.0456, 0.2011], "p": 0.0123, "diff": 0.01} for m in METRICS}
        for i, a in enumerate(models)
        if i
    }
    return {
        "name": None,
        "world": "/worlds/demo",
        "models": models,
        "control": "ctl",
        "days": 5,
        "shelf": 10,
        "users": 3000,
        "seed": 0,
        "metrics": {m: m for m in METRICS},
        "arms": arms,
        "lifts": lifts,
        "paper": PAPER_LIFTS,
        "starts_by_source": {
            a: {"organic": 1234 + i, "shelf": 567, "weak_signal": 89} for i, a in enumerate(models)
        },
        "cumulative_starts": {a: [1 + i, 3 + i, 6, 9, 12 + i] for i, a in enumerate(models)},
    }


def _evaluated(root: Path) -> Path:
    """A run with the least the report reads: a manifest and an (empty) eval/metrics.json."""
    RunDir(root).init(Settings())
    write_json_atomic(root / "eval" / "metrics.json", {})
    return root


def _section(page: str) -> str:
    assert "<h2>Simulated A/B test</h2>" in page
    return page.split("<h2>Simulated A/B test</h2>", 1)[1].split("<h2>", 1)[0]


def test_section_has_every_arm_the_lifts_the_papers_numbers_and_a_plot(tmp_path):
    run = _evaluated(tmp_path / "run")
    write_json_atomic(run / "abtest" / "b-second" / "results.json", _results({"tt": "2T", "hg": "2T-HGNN"}))
    write_json_atomic(run / "abtest" / "a-first" / "results.json", _results({"orc": "Oracle"}, lift=0.5))
    section = _section(refresh_report(run).read_text(encoding="utf-8"))

    assert section.index("<h3>a-first</h3>") < section.index("<h3>b-second</h3>")
    for arm, model in (("ctl", "Popularity"), ("tt", "2T"), ("hg", "2T-HGNN"), ("orc", "Oracle")):
        assert f"<td>{arm}</td><td>{model}</td>" in section
    b = section.split("<h3>b-second</h3>", 1)[1]
    # hg (2T-HGNN) start rate: control -> arm, lift, interval, p, the paper's lift in the same row
    assert "<td>hg (2T-HGNN)</td><td>start rate</td><td>25.0% → 27.0%</td><td>+24.7%</td>" in b
    assert '<td>[+4.6%, +20.1%]</td><td>0.012</td><td class="paper">+46.83%</td>' in b
    assert "<td>tt (2T)</td><td>start rate</td><td>25.0% → 26.0%</td><td>+12.3%</td>" in b
    assert "<td>stream rate</td>" in b and "<td>long" in b and "organic starts" in b
    for paper in ("+46.83%", "+25.82%", "+23.87%", "n.s."):
        assert paper in b
    assert "+50.0%" in section.split("<h3>b-second</h3>", 1)[0]  # a-first's oracle lift
    assert "<td>1,236</td><td>567</td><td>89</td><td>1,892</td>" in b  # hg's starts by source
    assert "synthetic world (ours, not the paper's data)" in section.lower()
    plots = re.findall(r'<img alt="([^"]*cumulative[^"]*)" src="data:image/png;base64,([^"]+)"', section)
    assert [alt for alt, _ in plots] == [
        f"{n}: cumulative new audiobook starts" for n in ("a-first", "b-second")
    ]
    assert all(base64.b64decode(png).startswith(b"\x89PNG") for _, png in plots)


def test_terminal_table_is_unchanged():
    lines = format_results(_results({"tt": "2T", "hg": "2T-HGNN"}))
    assert lines[3] == "ctl         Popularity        1,000       25.0%      0.250    0.250  25.0%"
    assert lines[9] == "tt          start rate       +12.3%  [+4.6%, +20.1%]      0.012   +23.87%"
    assert lines[15] == "hg          stream rate      +24.7%  [+4.6%, +20.1%]      0.012   +25.82%"
    assert len(lines) == 19 and max(len(x) for x in lines) <= 80


def test_no_section_without_abtest_results(tmp_path):
    run = _evaluated(tmp_path / "run")
    assert "Simulated A/B test" not in refresh_report(run).read_text(encoding="utf-8")
    (run / "abtest").mkdir()
    assert "Simulated A/B test" not in refresh_report(run).read_text(encoding="utf-8")


def test_unreadable_results_get_a_note_not_a_crash(tmp_path):
    run = _evaluated(tmp_path / "run")
    write_json_atomic(run / "abtest" / "good" / "results.json", _results({"tt": "2T"}))
    (run / "abtest" / "broken").mkdir()
    (run / "abtest" / "broken" / "results.json").write_text('{"models": {', encoding="utf-8")
    write_json_atomic(run / "abtest" / "partial" / "results.json", {"models": {"a": "2T"}})
    section = _section(refresh_report(run).read_text(encoding="utf-8"))
    assert "Skipped abtest/broken/results.json: cannot be read" in section
    assert "Skipped abtest/partial/results.json: cannot be read" in section
    assert "<h3>good</h3>" in section and "<td>tt (2T)</td>" in section


def test_run_abtest_rerenders_the_report_of_an_evaluated_run_only(tmp_path):
    generate_world(tmp_path / "world", users=400, podcasts=120, audiobooks=60, days=104, seed=2)
    rd, settings = RunDir(tmp_path / "run"), Settings()
    data_stage.validate(rd, settings, data=tmp_path / "world")
    data_stage.split(rd, settings)
    ctx = load_context(rd.root, tmp_path / "world")
    arms = parse_arms("control=Popularity,oracle=Oracle")
    report = rd.root / "eval" / "report.html"

    before = run_abtest(rd.root, arms, days=2, name="before", context=ctx)
    assert "report" not in before and not report.exists()  # not evaluated: nothing to refresh

    write_json_atomic(rd.root / "eval" / "metrics.json", {})
    after = run_abtest(rd.root, arms, days=2, name="after", context=ctx)
    assert after["report"] == str(report)
    section = _section(report.read_text(encoding="utf-8"))
    assert "<h3>after</h3>" in section and "<h3>before</h3>" in section
    assert "<td>oracle (Oracle)</td><td>start rate</td>" in section
    assert 'alt="after: cumulative new audiobook starts"' in section
