"""The evaluation report: the paper's tables with our numbers beside its own, charts with 95%
confidence intervals, training curves, the graph's degree distributions and long-tail tiers, and
the run's simulated A/B tests (RUN/abtest/*/results.json).

`RUN/eval/report.html` is one self-contained file (PNG charts inlined as base64) so it can be
mailed or attached to a ticket. `print_paper_tables` shows the same tables in a terminal.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from colisten import artifacts
from colisten.config import MODELS
from colisten.evaluate.data import SEGMENTS
from colisten.io import read_json, write_text_atomic
from colisten.rundir import RunDir

# The paper's reported numbers (PAPER.md, De Nadai, Fabbri et al., WWW'24 Companion):
# model -> (HR@10, MRR over top 100, Coverage@100 as a share). Reference only, never computed here.
PAPER_REFERENCE: list[tuple[str, str, str, dict[str, tuple[float, float, float]]]] = [
    (
        "Warm users, audiobooks",
        "target",
        "warm",
        {
            "Popularity": (0.150, 0.100, 0.000),
            "LLM-KNN": (0.164, 0.202, 0.547),
            "HGNN": (0.258, 0.224, 0.528),
            "HGNN-w-users": (0.238, 0.163, 0.253),
            "2T": (0.231, 0.173, 0.212),
            "2T-HGNN": (0.353, 0.218, 0.223),
        },
    ),
    (
        "Cold users, audiobooks",
        "target",
        "cold",
        {
            "Popularity": (0.161, 0.100, 0.000),
            "HGNN-w-users": (0.174, 0.153, 0.064),
            "2T": (0.135, 0.146, 0.193),
            "2T-HGNN": (0.200, 0.156, 0.120),
        },
    ),
    (
        "Podcasts (all users)",
        "established",
        "all",
        {
            "Popularity": (0.059, 0.100, 0.000),
            "2T": (0.114, 0.135, 0.114),  # the paper's "2T (production)"
            "2T-HGNN": (0.123, 0.138, 0.206),
        },
    ),
]

# Paper ablations (warm audiobook users): name in RUN/eval/ablations.json -> (HR@10, Coverage or
# None). Names are colisten.evaluate.ablations.ablation_overrides'; the full model's row is the
# run's 2T-HGNN.
PAPER_FULL = (0.353, 0.223)
PAPER_ABLATIONS: dict[str, tuple[float, float | None]] = {
    "w/o balanced sampler": (0.332, None),
    "w/o weak signals": (0.267, None),
    "w/o p-p edges": (0.333, None),
    "w/o a-a edges": (0.312, 0.094),
    "a-a edges only": (0.329, None),
    "p-p edges only": (0.294, None),
}
PAPER_LONG_TAIL = {"hr": 1.18, "mrr": 1.02}  # 2T-HGNN vs production on popularity tiers 3-5

MODEL_ORDER = list(MODELS)
MODEL_COLORS = dict(
    zip(
        MODEL_ORDER,
        [
            "#9aa5b1",
            "#f39c12",
            "#2e86c1",
            "#8e44ad",
            "#c0392b",
            "#1db954",
            "#5d6d7e",
            "#16a085",
            "#d35400",
            "#7f8c8d",
        ],
        strict=True,
    )
)


@dataclass
class PaperTable:
    title: str
    item_type: str
    segment: str
    rows: list[tuple[str, dict[str, Any] | None, tuple[float, float, float] | None]]


def paper_tables(metrics: dict[str, Any], target_type: str, established_type: str | None) -> list[PaperTable]:
    """The paper's three tables filled with our metrics (rows: the paper's models, then ours)."""
    tables = []
    for title, which, segment, paper in PAPER_REFERENCE:
        item_type = target_type if which == "target" else established_type
        if item_type is None or item_type not in metrics:
            continue
        ours = metrics[item_type].get(segment, {})
        names = [m for m in MODEL_ORDER if m in paper or m in ours] + [
            m for m in ours if m not in MODEL_ORDER
        ]
        if which == "target":
            title = title.replace("audiobooks", _plural(item_type))
        else:
            title = title.replace("Podcasts", _plural(item_type).capitalize())
        tables.append(PaperTable(title, item_type, segment, [(m, ours.get(m), paper.get(m)) for m in names]))
    return tables


def _plural(t: str) -> str:
    return t if t.endswith("s") else f"{t}s"


def _served(row: dict[str, Any] | None) -> bool:
    return row is not None and row.get("status") != "n/a"


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "—"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def print_paper_tables(
    metrics: dict[str, Any],
    console: Any,
    target_type: str = "audiobook",
    established_type: str | None = "podcast",
    k_hit: int = 10,
    k_list: int = 100,
) -> None:
    """Print the paper-style tables (ours beside the paper's numbers) with rich.

    Every number is shown whatever the console's width (80 columns when stdout is not a terminal):
    a table wider than the console drops the paper's columns (report.html has them beside ours),
    and a cell that still does not fit folds onto a second line instead of being cut to "0.2…".
    """
    from rich.markup import escape

    narrowed = False
    for t in paper_tables(metrics, target_type, established_type):
        table = _rich_paper_table(t, k_hit, k_list, with_paper=True)
        if _natural_width(console, table) > console.width:
            table, narrowed = _rich_paper_table(t, k_hit, k_list, with_paper=False), True
        console.print(table)
        reasons = {n: o["reason"] for n, o, _ in t.rows if o is not None and not _served(o)}
        for n, r in reasons.items():
            console.print(f"  [dim]n/a {escape(n)}: {escape(r)}[/]", highlight=False)
    if narrowed:
        console.print(
            f"[dim]the paper's figures beside ours: RUN/eval/report.html "
            f"(or a terminal wider than {console.width} columns)[/]"
        )
    console.print("[dim]95% confidence intervals and the other metrics: RUN/eval/report.html[/]")


def _rich_paper_table(t: PaperTable, k_hit: int, k_list: int, *, with_paper: bool) -> Any:
    from rich.table import Table

    keys = (f"hr@{k_hit}", f"mrr@{k_list}", f"coverage@{k_list}")
    table = Table(title=t.title, title_justify="left")
    table.add_column("model", overflow="fold")
    for label in (f"HR@{k_hit}", f"MRR@{k_list}", f"Cov@{k_list}"):
        table.add_column(label, justify="right", overflow="fold")
        if with_paper:
            table.add_column("paper", justify="right", style="dim", overflow="fold")
    table.add_column("users", justify="right", overflow="fold")
    for name, ours, paper in t.rows:
        cells = [name]
        for j, key in enumerate(keys):
            pct = j == 2
            if _served(ours):
                cells.append(_fmt(ours[key], pct))
            else:
                cells.append("[dim]n/a[/]" if ours is not None else "—")
            if with_paper:
                cells.append(_fmt(paper[j], pct) if paper else "—")
        cells.append(str(ours.get("users", "")) if _served(ours) else "")
        table.add_row(*cells)
    return table


def _natural_width(console: Any, renderable: Any) -> int:
    """The width `renderable` takes when nothing in it is wrapped or cut."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update(width=10_000), renderable).maximum


# --- charts ------------------------------------------------------------------------------------
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def bar_chart(
    seg: dict[str, Any], paper: dict[str, tuple[float, float, float]], k_hit: int, k_list: int, title: str
) -> str | None:
    """HR, MRR and coverage per model with 95% CI error bars; the paper's value as a marker."""
    from matplotlib.figure import Figure

    names = [m for m in _ordered(seg) if _served(seg[m])]
    if not names:
        return None
    keys = [
        (f"hr@{k_hit}", f"HR@{k_hit}"),
        (f"mrr@{k_list}", f"MRR@{k_list}"),
        (f"coverage@{k_list}", "Coverage"),
    ]
    fig = Figure(figsize=(11, 3.4))
    axes = fig.subplots(1, 3)
    x = np.arange(len(names))
    for j, (ax, (key, label)) in enumerate(zip(axes, keys, strict=True)):
        vals = np.array([seg[m][key] for m in names])
        lo, hi = [], []
        for m, v in zip(names, vals, strict=True):
            ci = (seg[m].get("ci95") or {}).get(key)
            lo.append(max(v - ci[0], 0.0) if ci else 0.0)
            hi.append(max(ci[1] - v, 0.0) if ci else 0.0)
        colors = ["#1db954" if m == "2T-HGNN" else "#6c7a89" for m in names]
        err = [lo, hi] if any(lo) or any(hi) else None
        ax.bar(x, vals, color=colors, yerr=err, capsize=3, ecolor="#333")
        pv = [(i, paper[m][j]) for i, m in enumerate(names) if m in paper]
        if pv:
            ax.scatter(
                [p[0] for p in pv],
                [p[1] for p in pv],
                marker="D",
                facecolors="none",
                edgecolors="#d62728",
                zorder=3,
                label="paper's value" if j == 0 else None,
            )
        ax.set_xticks(x, names, rotation=35, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    if any(m in paper for m in names):
        fig.legend(loc="upper right", fontsize=8, frameon=False)
    return _png(fig)


def tier_chart(seg: dict[str, Any], k_hit: int, tiers: int, title: str) -> str | None:
    """HR@k per popularity tier (1 = most popular) per model, with 95% CIs."""
    from matplotlib.figure import Figure

    names = [m for m in _ordered(seg) if _served(seg[m])]
    if not names:
        return None
    fig = Figure(figsize=(10, 3.6))
    ax = fig.subplots()
    width = 0.8 / len(names)
    x = np.arange(1, tiers + 1)
    for i, m in enumerate(names):
        vals, lo, hi = [], [], []
        for t in x:
            v = seg[m].get(f"hr@{k_hit}_tier{t}")
            ci = (seg[m].get("ci95") or {}).get(f"hr@{k_hit}_tier{t}")
            vals.append(np.nan if v is None else v)
            lo.append(max(v - ci[0], 0.0) if (ci and v is not None) else 0.0)
            hi.append(max(ci[1] - v, 0.0) if (ci and v is not None) else 0.0)
        offset = (i - (len(names) - 1) / 2) * width
        color = MODEL_COLORS.get(m)
        ax.bar(x + offset, vals, width, yerr=[lo, hi], capsize=2, label=m, color=color)
    ax.axvspan(tiers // 2 + 0.5, tiers + 0.5, color="#f4d03f", alpha=0.12, label="long tail")
    ax.set_xticks(x, [f"tier {t}" for t in x])
    ax.set_ylabel(f"HR@{k_hit}")
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8, ncol=len(names) + 1, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


Series = dict[str, dict[str, tuple[list[float], list[float]]]]  # panel -> line -> (epochs, values)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def curve_series(curve: Any) -> Series:
    """Per-epoch numeric series of a curve.json, one panel per field.

    Accepts a list of per-epoch records, {"epochs": [records], ...} or {field: [values]}. A field
    holding {name: number} per epoch (e.g. validation HR@10 per item type) becomes one panel with
    a line per name; deeper nesting is skipped."""
    records: list[dict[str, Any]] | None = None
    if isinstance(curve, list):
        records = [r for r in curve if isinstance(r, dict)]
    elif isinstance(curve, dict):
        for key in ("epochs", "curve", "history"):
            if isinstance(curve.get(key), list):
                records = [r for r in curve[key] if isinstance(r, dict)]
                break
        if records is None:
            ep = curve.get("epoch") if isinstance(curve.get("epoch"), list) else None
            n = max((len(v) for v in curve.values() if isinstance(v, list)), default=0)
            records = [
                {k: v[i] for k, v in curve.items() if isinstance(v, list) and i < len(v)}
                | ({"epoch": ep[i]} if ep and i < len(ep) else {})
                for i in range(n)
            ]
    out: Series = {}

    def add(panel: str, line: str, x: float, y: float) -> None:
        xs, ys = out.setdefault(panel, {}).setdefault(line, ([], []))
        xs.append(x)
        ys.append(float(y))

    for i, r in enumerate(records or []):
        e = r.get("epoch", i + 1)
        x = float(e) if _number(e) else float(i + 1)
        for k, v in r.items():
            if k == "epoch":
                continue
            if _number(v):
                add(k, k, x, v)
            elif isinstance(v, dict):
                for name, y in v.items():
                    if _number(y):
                        add(k, str(name), x, y)
    return out


def curve_chart(curve: Any, title: str) -> str | None:
    """One panel per field of a training curve (loss, validation metrics, seconds...)."""
    from matplotlib.figure import Figure

    series = curve_series(curve)
    if not series:
        return None
    n = len(series)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(3.7 * cols, 2.6 * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, (panel, lines) in zip(axes, series.items(), strict=False):
        for name, (xs, ys) in lines.items():
            ax.plot(xs, ys, marker="o", markersize=3, label=name)
        if len(lines) > 1:
            ax.legend(fontsize=7, frameon=False)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    return _png(fig)


def degree_chart(csr_dir: Path) -> str | None:
    """Degree distribution per relation direction, log-log, from RUN/graph/csr."""
    from matplotlib.figure import Figure

    from colisten.graph.store import CoListeningGraph

    if not (csr_dir / artifacts.GRAPH_NUM_NODES.name).exists():
        return None
    g = CoListeningGraph.load(csr_dir)
    if not g.csr:
        return None
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for (s, d), c in sorted(g.csr.items()):
        deg = c.degrees()
        deg = deg[deg > 0]
        if deg.size == 0:
            continue
        vals, counts = np.unique(deg, return_counts=True)
        ax.loglog(vals, counts, marker=".", linestyle="none", label=f"{s} → {d}")
    ax.set_xlabel("degree")
    ax.set_ylabel("nodes")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    ax.set_title("Co-listening graph degree distributions", fontsize=11)
    return _png(fig)


def _ordered(seg: dict[str, Any]) -> list[str]:
    return [m for m in MODEL_ORDER if m in seg] + [m for m in seg if m not in MODEL_ORDER]


# --- HTML --------------------------------------------------------------------------------------
def _cell(row: dict[str, Any] | None, key: str, pct: bool = False, best: bool = False) -> str:
    if row is None:
        return "<td>—</td>"
    if not _served(row):
        return '<td class="na">n/a</td>'
    v = row.get(key)
    ci = (row.get("ci95") or {}).get(key)
    ci_s = f' <span class="ci">[{_fmt(ci[0], pct)}, {_fmt(ci[1], pct)}]</span>' if ci else ""
    cls = ' class="best"' if best else ""
    return f"<td{cls}>{_fmt(v, pct)}{ci_s}</td>"


def _best(rows: list[tuple[str, dict[str, Any] | None]], key: str) -> str | None:
    served = [(n, r[key]) for n, r in rows if _served(r) and r.get(key) is not None]
    return max(served, key=lambda t: t[1])[0] if served else None


def paper_table_html(t: PaperTable, k_hit: int, k_list: int) -> str:
    keys = [
        (f"hr@{k_hit}", f"HR@{k_hit}", False),
        (f"mrr@{k_list}", f"MRR@{k_list}", False),
        (f"coverage@{k_list}", f"Coverage@{k_list}", True),
    ]
    head = "".join(f"<th>{lab} (ours{'' if pct else ', 95% CI'})</th><th>paper</th>" for _, lab, pct in keys)
    best = {k: _best([(n, o) for n, o, _ in t.rows], k) for k, _, _ in keys}
    body = []
    notes = []
    for name, ours, paper in t.rows:
        cells = [f"<td>{html.escape(name)}</td>"]
        for j, (key, _, pct) in enumerate(keys):
            cells.append(_cell(ours, key, pct, best[key] == name))
            cells.append(f'<td class="paper">{_fmt(paper[j], pct) if paper else "—"}</td>')
        cells.append(f"<td>{ours.get('users', '') if _served(ours) else ''}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
        if ours is not None and not _served(ours):
            notes.append(f"{html.escape(name)}: {html.escape(ours.get('reason', ''))}")
    note = f'<p class="note">{"<br>".join(notes)}</p>' if notes else ""
    return (
        f"<h3>{html.escape(t.title)}</h3><table><tr><th>model</th>{head}<th>users</th></tr>"
        + "".join(body)
        + f"</table>{note}"
    )


def full_table_html(metrics: dict[str, Any], k_hit: int, k_list: int, tiers: int) -> str:
    keys = [
        f"hr@{k_hit}",
        f"mrr@{k_list}",
        f"coverage@{k_list}",
        f"recall@{k_hit}",
        f"ndcg@{k_hit}",
        f"hr@{k_hit}_longtail",
        f"mrr@{k_list}_longtail",
    ]
    out = []
    for item_type, segs in metrics.items():
        for segment, seg in segs.items():
            rows = []
            for name in _ordered(seg):
                r = seg[name]
                if not _served(r):
                    rows.append(
                        f'<tr><td>{html.escape(name)}</td><td class="na" colspan="{len(keys) + 2}">'
                        f"{html.escape(r.get('reason', 'n/a'))}</td></tr>"
                    )
                    continue
                cells = "".join(_cell(r, k, k.startswith("coverage")) for k in keys)
                rows.append(
                    f"<tr><td>{html.escape(name)}</td>{cells}<td>{r['users']}</td>"
                    f"<td>{r.get('users_unserved', 0)}</td></tr>"
                )
            head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
            out.append(
                f"<h3>{html.escape(item_type)} · {segment} users</h3><table><tr><th>model</th>{head}"
                f"<th>users</th><th>unserved</th></tr>{''.join(rows)}</table>"
            )
    return "".join(out)


def long_tail_html(seg: dict[str, Any], k_hit: int, k_list: int) -> str:
    a, b = seg.get("2T-HGNN"), seg.get("2T")
    if not (_served(a) and _served(b)):
        return '<p class="note">Long-tail lift of 2T-HGNN over 2T needs both models evaluated.</p>'
    cells = []
    for key, paper in (
        (f"hr@{k_hit}_longtail", PAPER_LONG_TAIL["hr"]),
        (f"mrr@{k_list}_longtail", PAPER_LONG_TAIL["mrr"]),
    ):
        x, y = a.get(key), b.get(key)
        lift = f"{100 * (x / y - 1):+.0f}%" if (x is not None and y) else "—"
        cells.append(
            f"<tr><td>{key}</td><td>{_fmt(x)}</td><td>{_fmt(y)}</td><td>{lift}</td>"
            f'<td class="paper">{100 * paper:+.0f}%</td></tr>'
        )
    return (
        "<table><tr><th>metric (tiers 3-5)</th><th>2T-HGNN</th><th>2T</th><th>lift</th>"
        "<th>paper (vs production)</th></tr>" + "".join(cells) + "</table>"
    )


def ablation_html(ablations: dict[str, Any], full: dict[str, Any] | None, k_hit: int, k_list: int) -> str:
    """Ablation variants of 2T-HGNN (warm users) beside the paper's, the full model first."""
    rows = []
    entries = [("2T-HGNN (all parts)", full, PAPER_FULL)] if full is not None else []
    entries += [(name, r, PAPER_ABLATIONS.get(name, (None, None))) for name, r in ablations.items()]
    for label, r, (p_hr, p_cov) in entries:
        if not _served(r):
            reason = (r or {}).get("reason", "n/a")
            rows.append(
                f'<tr><td>{html.escape(label)}</td><td class="na" colspan="5">{html.escape(reason)}</td></tr>'
            )
            continue
        rows.append(
            f"<tr><td>{html.escape(label)}</td>{_cell(r, f'hr@{k_hit}')}"
            f'<td class="paper">{_fmt(p_hr)}</td>{_cell(r, f"mrr@{k_list}")}'
            f"{_cell(r, f'coverage@{k_list}', True)}"
            f'<td class="paper">{_fmt(p_cov, True) if p_cov is not None else "—"}</td></tr>'
        )
    return (
        f"<table><tr><th>variant (warm users)</th><th>HR@{k_hit}</th><th>paper</th><th>MRR@{k_list}</th>"
        f"<th>Coverage@{k_list}</th><th>paper</th></tr>{''.join(rows)}</table>"
    )


def tuning_html(tuning: dict[str, Any] | None) -> str:
    """The settings each model got from the validation split, with its validation scores."""
    if not tuning:
        return (
            '<h2>Settings chosen on validation</h2><p class="note">This run was not tuned '
            "(<code>[tune] enabled = false</code>): every model used its configured settings.</p>"
        )
    metric, v = tuning["metric"], tuning["validation"]
    reused = tuning.get("reused_from")
    rows = []
    for model, m in tuning["models"].items():
        scores = "".join(f"<td>{_fmt(m['validation'].get(s, {}).get(metric))}</td>" for s in SEGMENTS)
        chosen = ", ".join(f"{k.split('.', 1)[1]} = {val}" for k, val in m["chosen"].items())
        rows.append(
            f"<tr><td>{html.escape(model)}</td>{scores}<td>{m['trials']}</td>"
            f'<td style="text-align:left"><code>{html.escape(chosen)}</code></td></tr>'
        )
    source = f" Chosen on another run's validation split: {html.escape(reused)}." if reused else ""
    return (
        '<h2>Settings chosen on validation</h2><p class="note">Every model below got the same '
        f"number of trials ({tuning['trials_per_model']}) from its documented grid "
        "(<code>colisten/tune/spaces.py</code>), fitted on the history before "
        f"{html.escape(v['cut'])} and scored on the history from then to {html.escape(v['end'])} "
        f"(the hold-out was never used); the best {html.escape(metric)} on "
        f"{html.escape(tuning['segment'])} {html.escape(tuning['item_type'])} users won. HGNN and "
        f"HGNN-w-users share 2T-HGNN's HGNN settings.{source}</p>"
        f"<table><tr><th>model</th>{''.join(f'<th>{metric} {s}</th>' for s in SEGMENTS)}"
        f"<th>trials</th><th>chosen settings</th></tr>{''.join(rows)}</table>"
    )


# --- simulated A/B tests: RUN/abtest/NAME/results.json of `colisten abtest` ---------------------
# (shared with the terminal table, colisten.abtest.stage.format_results; evaluate sits below abtest
# in the import layers, so the reader of results.json lives here)
AB_METRICS = ("start_rate", "stream_rate", "shelf_starts", "organic_starts", "longtail_share")


def ab_arms(results: dict[str, Any]) -> list[str]:
    """Control first, then the other arms (results.json is written with sorted keys)."""
    control = results["control"]
    return [control] + [a for a in results["models"] if a != control]


def ab_metrics(results: dict[str, Any]) -> list[str]:
    """The paper's two metrics first, then ours, then any metric a newer results.json adds."""
    carried = results.get("metrics") or next(iter(results["lifts"].values()), {})
    return [m for m in AB_METRICS if m in carried] + sorted(m for m in carried if m not in AB_METRICS)


def ab_lift_rows(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], str]]:
    """(arm, metric, {lift, ci95, p}, the paper's lift for the arm's model or "") per treatment
    arm and metric: the rows of the paper's Table 5 layout."""
    paper = results.get("paper") or {}
    return [
        (arm, m, results["lifts"][arm][m], paper.get(results["models"][arm], {}).get(m, ""))
        for arm in ab_arms(results)[1:]
        for m in ab_metrics(results)
    ]


def ab_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def ab_num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def ab_signed(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}%"


def ab_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def ab_ci(ci: list[float] | None) -> str:
    return "n/a" if ci is None else f"[{ab_signed(ci[0])}, {ab_signed(ci[1])}]"


def _ab_value(metric: str, v: float | None) -> str:
    return ab_pct(v) if metric == "start_rate" or metric.endswith("_share") else ab_num(v)


def _ab_heads(keys: Any) -> str:
    return "".join(f"<th>{html.escape(k.replace('_', ' '))}</th>" for k in keys)


def cumulative_chart(results: dict[str, Any], title: str) -> str:
    """Cumulative new-audiobook starts per arm over the simulated days."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(8, 3.8))
    ax = fig.subplots()
    for arm in ab_arms(results):
        y = results["cumulative_starts"][arm]
        ax.plot(range(1, len(y) + 1), y, marker="o", markersize=3, label=f"{arm} ({results['models'][arm]})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("simulated day")
    ax.set_ylabel("cumulative new audiobook starts")
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return _png(fig)


def abtest_html(results: dict[str, Any], name: str) -> str:
    """One test: per-arm values and starts by source, the lifts against control beside the
    paper's Table 5, and the cumulative starts chart."""
    e = html.escape
    arms, metrics, models = ab_arms(results), ab_metrics(results), results["models"]
    head = _ab_heads(metrics)
    values = "".join(
        f"<tr><td>{e(a)}</td><td>{e(models[a])}</td><td>{results['arms'][a]['users']:,}</td>"
        + "".join(f"<td>{_ab_value(m, results['arms'][a].get(m))}</td>" for m in metrics)
        + "</tr>"
        for a in arms
    )
    sources = results.get("starts_by_source") or {}
    kinds = list(next(iter(sources.values()), {}))
    by_source = "".join(
        f"<tr><td>{e(a)}</td>"
        + "".join(f"<td>{sources[a][k]:,}</td>" for k in kinds)
        + f"<td>{sum(sources[a].values()):,}</td></tr>"
        for a in arms
        if a in sources
    )
    lifts = []
    control = results["arms"][arms[0]]
    for arm, m, x, paper in ab_lift_rows(results):
        shift = f"{_ab_value(m, control.get(m))} → {_ab_value(m, results['arms'][arm].get(m))}"
        lifts.append(
            f"<tr><td>{e(arm)} ({e(models[arm])})</td><td>{e(m.replace('_', ' '))}</td><td>{shift}</td>"
            f"<td>{ab_signed(x['lift'])}</td><td>{ab_ci(x['ci95'])}</td><td>{ab_p(x['p'])}</td>"
            f'<td class="paper">{e(str(paper)) if paper else "—"}</td></tr>'
        )
    paper_rows = "".join(
        f"<tr><td>{e(model)}</td>"
        + "".join(f'<td class="paper">{e(str(v))}</td>' for v in lifts_.values())
        + "</tr>"
        for model, lifts_ in (results.get("paper") or {}).items()
    )
    paper_head = _ab_heads(next(iter((results.get("paper") or {}).values()), {}))
    title = f"{name}: cumulative new audiobook starts"
    return (
        f'<h3>{e(name)}</h3><p class="note">Synthetic world (ours, not the paper\'s data): '
        f"<code>{e(str(results.get('world', '')))}</code>. {len(arms)} arms, {results['days']} days, "
        f"shelf of {results['shelf']}, {results['users']:,} users (seed {results.get('seed', '')}); "
        f"lifts against {e(arms[0])}, 95% interval by the delta method, two-sided p-value.</p>"
        f"<table><tr><th>arm</th><th>model</th><th>users</th>{head}</tr>{values}</table>"
        f"<table><tr><th>arm (model)</th><th>metric</th><th>control → arm</th><th>lift</th>"
        f"<th>95% CI</th><th>p</th><th>paper</th></tr>{''.join(lifts)}</table>"
        + (
            f"<table><tr><th>paper's Table 5 (vs production)</th>{paper_head}</tr>{paper_rows}</table>"
            if paper_rows
            else ""
        )
        + (
            f"<table><tr><th>new audiobook starts by source</th>{_ab_heads(kinds)}<th>total</th></tr>"
            f"{by_source}</table>"
            if by_source
            else ""
        )
        + _img(cumulative_chart(results, title), title)
    )


def abtest_section(run: Path) -> str:
    """The "Simulated A/B test" section, one part per RUN/abtest/*/results.json by name ("" if
    none); a file that cannot be read gets a note naming it, not a crash of the whole report."""
    paths = artifacts.ABTEST_RESULTS.glob(run)
    if not paths:
        return ""
    parts = [
        '<h2>Simulated A/B test</h2><p class="note"><code>colisten abtest</code> on the run\'s '
        "synthetic world: each arm's model fills the home shelf each day and the world's own choice "
        "model decides what users start and stream. The paper's lifts come from its online test "
        "against its production model, so compare directions, not levels.</p>"
    ]
    for p in paths:
        try:
            parts.append(abtest_html(read_json(p), p.parent.name))
        except (OSError, ValueError, LookupError, TypeError, AttributeError) as err:
            rel, why = html.escape(str(p.relative_to(run))), html.escape(repr(err))
            parts.append(f'<p class="note">Skipped {rel}: cannot be read ({why}).</p>')
    return "".join(parts)


def render_report(
    run: Path, metrics: dict[str, Any], meta: dict[str, Any], target_type: str, established_type: str | None
) -> str:
    """The whole report as one HTML string (charts inlined)."""
    k_hit, k_list, tiers = meta.get("k_hit", 10), meta.get("k_list", 100), meta.get("tiers", 5)
    parts: list[str] = []
    # Overview
    rows = []
    for t, info in meta.get("item_types", {}).items():
        eu = info.get("evaluated_users", {})
        rows.append(
            f"<tr><td>{html.escape(t)}</td><td>{info.get('items', '')}</td>"
            f"<td>{eu.get('warm', '')}</td><td>{eu.get('cold', '')}</td><td>{eu.get('all', '')}</td>"
            f"<td>{info.get('positives', '')}</td></tr>"
        )
    consumed = html.escape(str(meta.get("consumed", "strong")))
    tie_break = html.escape(meta.get("tie_break", "item index"))
    parts.append(
        "<h2>Setup</h2><p>Full-catalogue ranking (no sampled negatives) of every item of a type for "
        f"each evaluated user; already-consumed items (<code>{consumed}</code> events in history) "
        "filtered out as in production. A user is evaluated for a type when the hold-out has at least "
        f"one new stream of it. HR@{k_hit}: share of users with a held-out item in the top {k_hit}; "
        f"MRR@{k_list}: mean reciprocal rank of the first held-out item within the top {k_list} (0 if "
        f"none); Coverage@{k_list}: share of the type's catalogue in at least one user's top {k_list}. "
        f"Ties are ranked by {tie_break}. Intervals: 95% bootstrap over users "
        f"({meta.get('bootstrap', 0)} resamples, paired across models). Paper numbers come from a "
        "10M-user production data set, so compare orderings, not levels.</p>"
        "<table><tr><th>item type</th><th>items</th><th>warm users</th><th>cold users</th>"
        f"<th>all users</th><th>held-out positives</th></tr>{''.join(rows)}</table>"
    )
    parts.append(tuning_html(meta.get("tuning")))
    # Paper tables + bar charts
    parts.append("<h2>The paper's tables</h2>")
    paper_map = {(w, s): p for _, w, s, p in PAPER_REFERENCE}
    for t in paper_tables(metrics, target_type, established_type):
        parts.append(paper_table_html(t, k_hit, k_list))
        which = "target" if t.item_type == target_type else "established"
        b64 = bar_chart(
            metrics[t.item_type][t.segment], paper_map.get((which, t.segment), {}), k_hit, k_list, t.title
        )
        if b64:
            parts.append(_img(b64, f"bar chart: {t.title}"))
    # Long tail
    if target_type in metrics:
        seg = metrics[target_type].get("warm", {})
        parts.append(f"<h2>Long tail ({_plural(target_type)}, warm users)</h2>")
        parts.append(
            f'<p class="note">{tiers} equal-count tiers of the catalogue by history popularity (tier 1 '
            f"= most popular); HR@{k_hit} in tier t counts users with a held-out item in tier t whose top "
            f"{k_hit} holds one. Tiers {tiers // 2 + 1}-{tiers} are the long tail.</p>"
        )
        b64 = tier_chart(seg, k_hit, tiers, f"HR@{k_hit} per popularity tier")
        if b64:
            parts.append(_img(b64, "long-tail tiers chart"))
        parts.append(long_tail_html(seg, k_hit, k_list))
    # Ablations
    abl_path = artifacts.ABLATIONS.at(run)
    if abl_path.exists():
        parts.append(f"<h2>Ablations ({_plural(target_type)}, warm users)</h2>")
        full = metrics.get(target_type, {}).get("warm", {}).get("2T-HGNN")
        parts.append(ablation_html(read_json(abl_path), full, k_hit, k_list))
    parts.append(abtest_section(run))
    # Training curves
    curves = []
    for artifact, title in (
        (artifacts.HGNN_CURVE, "HGNN training"),
        (artifacts.TWOTOWER_CURVE, "Two-tower training"),
        (artifacts.HGNN_W_USERS_CURVE, "HGNN-w-users training"),
    ):
        p = artifact.at(run)
        if p.exists():
            b64 = curve_chart(read_json(p), title)
            if b64:
                curves.append(_img(b64, title))
    for model, fit in (meta.get("fit") or {}).items():  # models trained inside evaluate (LightGCN)
        if isinstance(fit, dict) and fit.get("curve"):
            b64 = curve_chart(fit["curve"], f"{model} training")
            if b64:
                curves.append(_img(b64, f"{model} training"))
    parts.append(
        "<h2>Training curves</h2>" + ("".join(curves) or '<p class="note">No curve.json in this run.</p>')
    )
    # Graph
    parts.append("<h2>Co-listening graph</h2>")
    png = artifacts.GRAPH_DEGREES.at(run)
    if png.exists():
        parts.append(_img(base64.b64encode(png.read_bytes()).decode("ascii"), "degree distributions"))
    else:
        b64 = degree_chart(artifacts.GRAPH_CSR.at(run))
        parts.append(
            _img(b64, "degree distributions") if b64 else '<p class="note">No graph in this run.</p>'
        )
    stats = artifacts.GRAPH_SUMMARY.at(run)
    if stats.exists():
        g = read_json(stats)
        edges = g.get("edges_per_relation") or g.get("edges") or {}
        if isinstance(edges, dict) and edges:
            parts.append(
                "<table><tr><th>relation</th><th>edges</th></tr>"
                + "".join(f"<tr><td>{html.escape(str(k))}</td><td>{v}</td></tr>" for k, v in edges.items())
                + "</table>"
            )
    # Everything
    parts.append("<h2>All results</h2>" + full_table_html(metrics, k_hit, k_list, tiers))
    timing = meta.get("models", {})
    if timing:
        rows = "".join(
            f"<tr><td>{html.escape(m)}</td>"
            + "".join(
                f"<td>{html.escape(str(v.get('seconds', v.get('status', ''))))}</td>"
                for v in by_type.values()
            )
            + "</tr>"
            for m, by_type in timing.items()
        )
        types_h = "".join(f"<th>{html.escape(t)} (s)</th>" for t in next(iter(timing.values())))
        parts.append(
            f"<h3>Evaluation time per model</h3><table><tr><th>model</th>{types_h}</tr>{rows}</table>"
        )
    template = string.Template(
        resources.files("colisten.evaluate").joinpath("templates/report.html").read_text("utf-8")
    )
    return template.substitute(
        title="colisten evaluation report",
        subtitle=html.escape(
            f"run {run} · generated {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}"
        ),
        body="\n".join(parts),
    )


def write_report(run: str | Path, target_type: str, established_type: str | None) -> Path:
    """Render RUN/eval/report.html from RUN/eval/metrics.json and meta.json."""
    run = Path(run)
    metrics = json.loads(artifacts.METRICS.at(run).read_text(encoding="utf-8"))
    meta_p = artifacts.EVAL_META.at(run)
    meta = read_json(meta_p) if meta_p.exists() else {}
    out = artifacts.REPORT.at(run)
    write_text_atomic(out, render_report(run, metrics, meta, target_type, established_type))
    return out


def refresh_report(run: str | Path, settings: Any = None) -> Path | None:
    """Re-render report.html of an evaluated run, so that a later `colisten abtest` shows in it;
    None (and nothing written) when the run has no eval/metrics.json yet."""
    run = Path(run)
    if not artifacts.METRICS.at(run).exists():
        return None
    settings = settings or RunDir(run).settings()
    return write_report(run, settings.data.target_type, next(iter(settings.data.established_types), None))
