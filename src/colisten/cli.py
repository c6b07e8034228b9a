"""The `colisten` command line: one sub-command per stage, plus `demo`, `run` and `config show`.

Each sub-package registers its own commands (`<package>.commands.register(app)`), so a stage's
options live next to its code. Heavy imports (torch, duckdb) happen inside command bodies to
keep `--help` instant.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import typer

from colisten.console import err_console
from colisten.errors import ColistenError

app = typer.Typer(
    name="colisten",
    help="2T-HGNN recommendations for a new content type, from logs to served, evaluated results.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain help text: paragraphs reflow to the terminal width (docstrings' own line breaks would
    # give ragged lines at 80 columns) and "[tune] trials" is not swallowed as rich markup
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(config_app, name="config")

# Order = order in `colisten --help`.
COMMAND_MODULES = (
    "colisten.pipeline",
    "colisten.world.commands",
    "colisten.datasets.commands",
    "colisten.data.commands",
    "colisten.graph.commands",
    "colisten.text.commands",
    "colisten.tune.commands",
    "colisten.hgnn.commands",
    "colisten.twotower.commands",
    "colisten.retrieval.commands",
    "colisten.evaluate.commands",
    "colisten.serve.commands",
    "colisten.abtest.commands",
)


@config_app.command("show")
def config_show(
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML file to load over the defaults."),
    run: Path | None = typer.Option(None, "--run", help="Show the config saved in this run instead."),
) -> None:
    """Print the effective config as TOML, every setting with its documentation."""
    from colisten.config import load_settings, settings_as_toml
    from colisten.rundir import RunDir

    settings = RunDir(run).settings(config) if run is not None else load_settings(config)
    typer.echo(settings_as_toml(settings))


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


def main() -> None:
    try:
        app()
    except ColistenError as e:
        err_console.print("error:", style="bold red", end=" ")
        err_console.print(str(e), markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
