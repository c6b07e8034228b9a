"""The paper's ablations (PAPER.md Table 1, `colisten evaluate --ablations`): each variant's HGNN
and two-tower model retrained in RUN/ablations/NAME, and its 2T-HGNN evaluated there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from colisten import artifacts
from colisten.config import Settings, deep_merge
from colisten.errors import ColistenError
from colisten.rundir import RunDir


def ablation_overrides(settings: Settings) -> dict[str, dict[str, Any]]:
    """The paper's ablations as config overrides, named as in its Table 1."""
    from colisten.graph.store import relation_name

    target = settings.data.target_type
    other = next((t for t in settings.data.established_types if t != target), "podcast")
    aa, ap, pp = relation_name(target, target), relation_name(target, other), relation_name(other, other)
    return {
        "w/o balanced sampler": {"hgnn": {"sampler": "uniform"}},
        "w/o weak signals": {"twotower": {"use_weak_signals": False}},
        "w/o p-p edges": {"hgnn": {"relations": [aa, ap]}},
        "w/o a-a edges": {"hgnn": {"relations": [ap, pp]}},
        "a-a edges only": {"hgnn": {"relations": [aa]}},
        "p-p edges only": {"hgnn": {"relations": [pp]}},
    }


# the stage folders an ablation's run reuses from the run: it retrains the HGNN and the two-tower
SHARED = ["data", "split", "content", "graph"]


def run_ablations(
    run: Path, settings: Settings, names: list[str] | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Retrain HGNN + 2T for each ablation in RUN/ablations/NAME (sharing the run's data, split,
    content and graph) and evaluate 2T-HGNN there; writes RUN/eval/ablations.json."""
    from colisten.evaluate import stage as evaluate_stage
    from colisten.hgnn import stage as hgnn_stage
    from colisten.io import read_json, write_json_atomic
    from colisten.twotower import stage as twotower_stage

    rd = RunDir(run)
    for needed in (artifacts.ITEMS, artifacts.HISTORY, artifacts.TEXT_EMBEDDINGS, artifacts.GRAPH_SUMMARY):
        rd.require(needed)
    variants = ablation_overrides(settings)
    unknown = sorted(set(names or []) - set(variants))
    if unknown:
        raise ColistenError(f"unknown ablation(s) {unknown}; choose from {sorted(variants)}")
    out_path = artifacts.ABLATIONS.at(rd)
    results: dict[str, Any] = read_json(out_path) if out_path.exists() else {}
    base = settings.model_dump(mode="json")
    for name in names or list(variants):
        log(f"ablation: {name}")
        sub = rd.branch(artifacts.ABLATION_RUN.at(rd, name=_slug(name)), share=SHARED)
        variant = Settings.model_validate(deep_merge(base, variants[name]))
        sub.init(variant)
        hgnn_stage.run(sub, variant)
        twotower_stage.run(sub, variant)
        metrics = evaluate_stage.run(sub, variant, models=["2T-HGNN"])
        warm = metrics[settings.data.target_type]["warm"]["2T-HGNN"]
        results[name] = warm
        write_json_atomic(out_path, results)
    return results


def print_ablations(results: dict[str, Any], console: Any) -> None:
    """Ablations beside the paper's Table 1 figures (warm users, audiobooks, HR@10)."""
    from rich.table import Table

    from colisten.evaluate.report import PAPER_ABLATIONS

    table = Table(title="Ablations — warm users, audiobooks")
    for col in ("variant", "HR@10", "95% CI", "MRR@100", "Coverage@100", "paper HR@10"):
        table.add_column(col)
    for name, m in results.items():
        if "hr@10" not in m:
            table.add_row(name, m.get("status", "n/a"), "", "", "", "")
            continue
        lo, hi = m.get("ci95", {}).get("hr@10", [float("nan")] * 2)
        paper_hr = PAPER_ABLATIONS.get(name, (None, None))[0]
        table.add_row(
            name,
            f"{m['hr@10']:.3f}",
            f"[{lo:.3f}, {hi:.3f}]",
            f"{m['mrr@100']:.3f}",
            f"{m['coverage@100']:.1%}",
            "" if paper_hr is None else f"{paper_hr:.3f}",
        )
    console.print(table)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").replace("--", "-")
