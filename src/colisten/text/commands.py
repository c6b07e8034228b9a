"""CLI: `colisten embed` (text embeddings stage)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)


def embed(
    run: Path = typer.Option(..., "--run", help="Run directory (needs data/items.parquet from `validate`)."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="TOML settings; they become the run's config."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Override content.model: a local sentence-transformers folder or the packaged name.",
    ),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", help="Override content.cache_dir (share it between runs to reuse vectors)."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Override content.batch_size."),
    device: str | None = typer.Option(None, "--device", help="Override content.device (auto, cpu, cuda)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Embed every item's title + description with sentence-transformers, offline and cached.

    Writes RUN/content/text_embeddings.npy (float32, L2-normalised, in the row order of
    RUN/data/items.parquet), item_ids.parquet and embeddings.json. Vectors are cached by a hash of
    model + text, so a re-run embeds only new or changed items.
    """
    from rich.console import Console

    from colisten.rundir import RunDir
    from colisten.text import stage

    run_dir = RunDir(run)
    settings = run_dir.settings(config)
    overrides = {"model": model, "cache_dir": str(cache_dir) if cache_dir else None}
    overrides |= {"batch_size": batch_size, "device": device}
    for name, value in overrides.items():
        if value is not None:
            setattr(settings.content, name, value)
    if config is not None or any(v is not None for v in overrides.values()):
        run_dir.init(settings)  # the run records the settings it was produced with
    stats = stage.run(run_dir, settings, progress=progress)
    speed = f", {stats['items_per_s']} items/s" if stats["items_per_s"] else ""
    Console().print(
        f"embedded {stats['n_items']} items ({stats['n_unique_texts']} distinct texts, {stats['dim']}-d, "
        f"{stats['model_id']}): {stats['n_embedded_now']} texts encoded now{speed}, "
        f"{stats['n_from_cache']} items from cache → {run_dir / 'content'}",
        highlight=False,
        soft_wrap=True,
    )
