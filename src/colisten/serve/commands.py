"""CLI: `colisten serve` (HTTP API + explorer page for a run's model)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    import uvicorn


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    run: Path = typer.Option(..., "--run", help="Run directory with a trained two-tower model."),
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML settings (default: the run's)."),
    host: str | None = typer.Option(
        None, "--host", help="Interface to bind (default serve.host: 127.0.0.1)."
    ),
    port: int | None = typer.Option(None, "--port", help="TCP port (default serve.port: 8000)."),
    admin_token: str | None = typer.Option(
        None,
        "--admin-token",
        envvar="COLISTEN_ADMIN_TOKEN",
        help="Bearer token for /admin/* (default serve.admin_token; unset = loopback clients only).",
    ),
    access_log: bool = typer.Option(False, "--access-log/--no-access-log", help="Log every request."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve recommendations over HTTP: real-time user vectors, explanations, similar items.

    Explorer page at http://HOST:PORT/, API docs at /docs, Prometheus metrics at /metrics.
    `POST /admin/reload` (optionally {"run": "OTHER_RUN"}) swaps in a retrained model without
    dropping a request.
    """
    import torch
    import uvicorn

    from colisten.rundir import RunDir
    from colisten.serve.app import create_app
    from colisten.serve.errors import ServeError

    if not run.is_dir():
        raise ServeError(f"run directory not found: {run}")
    effective = RunDir(run).settings(config)
    updates = {"host": host, "port": port, "admin_token": admin_token}
    serve_settings = effective.serve.model_copy(update={k: v for k, v in updates.items() if v is not None})
    # One request = one small forward pass: intra-op threads would only fight over the cores.
    torch.set_num_threads(1)
    typer.echo(f"loading {run} ...")
    app = create_app(run, effective if config is not None else None, serve_settings=serve_settings)
    b = app.state.model.bundle
    typer.echo(
        f"serving model {b.version} ({len(b.users)} users, "
        + ", ".join(f"{b.type_size(t)} {t}s" for t in b.item_types)
        + f") at http://{serve_settings.host}:{serve_settings.port}/"
    )
    uvicorn.Server(server_config(app, serve_settings.host, serve_settings.port, log_level, access_log)).run()


def server_config(app: object, host: str, port: int, log_level: str, access_log: bool) -> uvicorn.Config:
    """uvicorn's settings for `colisten serve`. HTTP parsing and the event loop are httptools' and
    uvloop's (both pinned dependencies; uvicorn's "auto" falls back to its pure-Python h11 and
    asyncio where they cannot be installed, e.g. uvloop on Windows): on the demo run user
    recommendations take 0.47 ms of server CPU instead of 0.56 and /healthz 0.14 instead of 0.22
    (bench/serve_stack.py, bench/RESULTS.md, 8 Dec)."""
    import uvicorn

    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=access_log, http="auto", loop="auto"
    )
