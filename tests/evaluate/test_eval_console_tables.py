"""The paper-style tables stay readable where the output is not a wide terminal (a log, CI, an
80-column terminal): every metric value shows in full, never cut to "0.2…"."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from colisten.config import Settings
from colisten.evaluate.harness import evaluate_run
from colisten.evaluate.report import paper_tables, print_paper_tables

MODELS = ["Popularity", "LLM-KNN", "HGNN", "ALS", "EASE", "ItemKNN"]
# The demo world's longest model names (its oracles), which make the tables wider than 80 columns.
LONG_NAMES = ("Oracle: taste from history", "Oracle: true taste")


def _settings() -> Settings:
    s = Settings()
    return s.model_copy(update={"evaluate": s.evaluate.model_copy(update={"bootstrap": 0})})


def _sections(text: str, titles: list[str]) -> dict[str, str]:
    """The printed text of each table, by title (tables print one after another)."""
    at = [text.index(t) for t in titles]
    return {t: text[a:b] for t, a, b in zip(titles, at, [*at[1:], len(text)], strict=True)}


def test_an_80_column_non_tty_console_shows_every_metric_value(tiny_run):
    metrics = evaluate_run(tiny_run.root, _settings(), MODELS)
    for per_type in metrics.values():
        for seg in per_type.values():
            for name in LONG_NAMES:
                seg[name] = dict(seg["HGNN"])
    out = StringIO()
    console = Console(file=out, width=80)  # a file: not a terminal, as under `make demo > log`
    assert not console.is_terminal
    print_paper_tables(metrics, console)
    text = out.getvalue()

    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    tables = paper_tables(metrics, "audiobook", "podcast")
    sections = _sections(text, [t.title for t in tables])
    shown = 0
    for t in tables:
        lines = sections[t.title].splitlines()
        for name, ours, _ in t.rows:
            if ours is None or ours.get("status") == "n/a":
                continue
            row = next(line for line in lines if line.startswith(f"│ {name} "))
            for value in (
                f"{ours['hr@10']:.3f}",
                f"{ours['mrr@100']:.3f}",
                f"{100 * ours['coverage@100']:.1f}%",
                str(ours["users"]),
            ):
                assert f" {value} " in row, (t.title, name, value, row)
                shown += 1
    assert shown >= 3 * 4 * len(MODELS)  # three tables, four numbers per served model
    assert "the paper's figures beside ours: RUN/eval/report.html" in text


def test_a_wide_console_keeps_the_papers_columns(tiny_run):
    metrics = evaluate_run(tiny_run.root, _settings(), ["Popularity", "HGNN"])
    out = StringIO()
    print_paper_tables(metrics, Console(file=out, width=120))
    text = out.getvalue()
    assert "paper" in text.splitlines()[2] and "0.258" in text  # the paper's warm HGNN HR@10
    assert "the paper's figures beside ours" not in text
