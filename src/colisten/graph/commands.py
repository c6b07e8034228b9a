"""CLI: `colisten graph --run RUN` builds the co-listening graph; `colisten graph stats` describes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from colisten import artifacts

console = Console()

graph_app = typer.Typer(invoke_without_command=True, add_completion=False)


@graph_app.callback(invoke_without_command=True)
def graph(
    ctx: typer.Context,
    run: Path | None = typer.Option(None, "--run", help="Run directory (needs split/ and data/)."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="TOML config to use instead of the run's saved one."
    ),
    engine: str | None = typer.Option(
        None, "--engine", help="duckdb or spark; overrides [graph] engine.", show_default=False
    ),
) -> None:
    """Co-listening graph: build it (`colisten graph --run RUN`) or describe it (`stats`).

    Reads the history window only (RUN/split/history.parquet) and the items.
    Nodes: every item; never-played items stay as isolated nodes.
    Edges: two items are linked when a user interacted with both (PAPER.md §1).
    Writes RUN/graph/: nodes.parquet, edges.parquet, csr/, graph.json.
    Settings: the [graph] section of the config (`colisten config show`).
    """
    if ctx.invoked_subcommand is not None:
        return
    if run is None:
        raise typer.BadParameter("required to build the graph", ctx=ctx, param_hint="'--run'")
    if engine is not None and engine not in ("duckdb", "spark"):
        raise typer.BadParameter(f"{engine!r} is not one of 'duckdb', 'spark'", param_hint="'--engine'")
    from colisten.graph import stage
    from colisten.rundir import RunDir

    rd = RunDir(run)
    settings = rd.settings(config)
    chosen = engine or settings.graph.engine
    try:
        with console.status("co-listening graph: starting") as status:
            stats = stage.run(
                rd,
                settings,
                engine=engine,
                describe=False,
                progress=lambda step: status.update(f"co-listening graph: {step}"),
            )
    finally:
        if chosen == "spark":
            from colisten.graph.spark import stop_spark

            stop_spark()
    table = Table(title=f"Co-listening graph ({chosen}) → {rd / 'graph'}")
    table.add_column("relation")
    table.add_column("edges", justify="right")
    for rel, n in stats["edges_per_relation"].items():
        table.add_row(rel, f"{n:,}")
    console.print(table)
    nodes = ", ".join(
        f"{t}: {n:,} ({stats['isolated_nodes_per_type'][t]:,} isolated)"
        for t, n in stats["nodes_per_type"].items()
    )
    console.print(f"nodes: {nodes}; events used: {stats['events_used']:,} of {stats['events_in']:,}")
    for w in stats["warnings"]:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)


@graph_app.command("stats")
def stats(run: Path = typer.Option(..., "--run", help="Run directory with a built graph.")) -> None:
    """Describe the built graph: degrees, edge-type imbalance, components, isolated items.

    Nodes per type, edges per relation, degree quantiles per edge direction,
    the imbalance ratio (largest / smallest relation) behind the balanced sampler,
    connected components and isolated items.
    Writes RUN/graph/stats.json and RUN/graph/degrees.png (degree distributions).
    """
    from colisten.graph.stage import describe_graph

    with console.status("graph statistics"):
        result = describe_graph(run)
    _print_stats(result)
    console.print(f"wrote {artifacts.GRAPH_STATS.at(run)} and {artifacts.GRAPH_DEGREES.at(run)}")


def _print_stats(s: dict[str, Any]) -> None:
    nodes = Table(title="Nodes")
    for col in ("type", "nodes", "isolated", "in largest component"):
        nodes.add_column(col, justify="left" if col == "type" else "right")
    for t, n in s["nodes_per_type"].items():
        nodes.add_row(
            t,
            f"{n:,}",
            f"{s['isolated_nodes_per_type'][t]:,}",
            f"{s['largest_component_nodes_per_type'][t]:,}",
        )
    console.print(nodes)
    degrees = Table(title="Degrees per relation and direction (all source nodes)")
    degrees.add_column("edge type", overflow="fold")
    for col in ("edges", "mean", "p50", "p90", "p99", "max", "degree 0"):
        degrees.add_column(col, justify="right")
    for name, d in s["degrees"].items():
        src, dst = name.split("->")
        rel = "__".join(sorted((src, dst)))
        shown = f"{src}→{dst}"
        if d["nodes"] == 0:
            degrees.add_row(shown, "0", *["-"] * 6)
            continue
        degrees.add_row(
            shown,
            f"{s['edges_per_relation'][rel]:,}",
            f"{d['mean']:.1f}",
            f"{d['p50']:.4g}",
            f"{d['p90']:.4g}",
            f"{d['p99']:.4g}",
            f"{d['max']:,}",
            f"{d['zero_degree_share']:.1%}",
        )
    console.print(degrees)
    ratio = s["imbalance_ratio"]
    console.print(
        f"edge-type imbalance (largest / smallest relation): {'n/a' if ratio is None else f'{ratio:.1f}×'}"
        + (
            f"; relations without edges: {s['relations_without_edges']}"
            if s["relations_without_edges"]
            else ""
        )
    )
    console.print(
        f"connected components: {s['components']:,} ({s['components_with_edges']:,} with edges); largest "
        f"{s['largest_component_nodes']:,} nodes ({s['largest_component_share']:.1%})"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(graph_app, name="graph")
