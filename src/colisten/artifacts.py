"""The artifact catalogue: every file a stage writes into a run directory, named once.

Each `Artifact` says where it lives (relative to the run; `{name}` fields filled by the caller),
which command writes it (so a missing one is an error that names the command to run) and what it
holds. Stages and readers reach artifacts only through this table: `RunDir.require(ARTIFACT)`,
`ARTIFACT.at(run)`, or the readers below. Files a training loop keeps inside its own folder
(checkpoint.pt, best.pt, curve.json: also in each ensemble member's folder) are placed with
`ARTIFACT.within(folder)`. docs/architecture.md shows the same tree with the column types.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any


@dataclass(frozen=True)
class Artifact:
    path: str  # relative to the run directory, "/"-separated; may hold {fields}
    stage: str  # the `colisten` command that writes it
    what: str

    @property
    def name(self) -> str:
        """The file name alone (for a stage that writes into a folder it was given)."""
        return PurePosixPath(self.path).name

    @property
    def folder(self) -> str:
        """The stage folder it lives in (its first path part)."""
        return PurePosixPath(self.path).parts[0]

    def at(self, run: Any, **fields: Any) -> Path:
        """Its path in `run` (a RunDir or a folder), whether it exists or not."""
        return _root(run) / self.path.format(**fields)

    def within(self, folder: str | Path, **fields: Any) -> Path:
        """Its path inside a given stage folder (a training loop's out_dir, an ensemble member's
        folder, a work folder) instead of the run's."""
        return Path(folder) / PurePosixPath(self.path.format(**fields)).relative_to(self.folder)

    def glob(self, run: Any) -> list[Path]:
        """Every instance of a templated artifact in `run` (each {field} matching anything), sorted."""
        return sorted(_root(run).glob(self.path.format_map(_Anything())))


def _root(run: Any) -> Path:
    """The folder of a RunDir (not imported here: run.py sits beside this module) or of a path
    (whose own `.root` attribute is the filesystem root, so it is not asked for)."""
    return Path(run.root if hasattr(run, "manifest_path") else run)


class _Anything(dict):
    def __missing__(self, key: str) -> str:
        return "*"


# --- validate ------------------------------------------------------------------------------------
ITEMS = Artifact("data/items.parquet", "validate", "every item; row = global index, sorted by type, id")
USERS = Artifact("data/users.parquet", "validate", "every known user: age, country [, taste_vector]")
INTERACTIONS = Artifact("data/interactions.parquet", "validate", "accepted interactions, by timestamp")
QUARANTINE = Artifact("data/quarantine.parquet", "validate", "rejected rows with file, row, reason")
VALIDATION = Artifact("data/validation.json", "validate", "the counts `colisten validate` printed")
# --- split ---------------------------------------------------------------------------------------
HISTORY = Artifact("split/history.parquet", "split", "interactions in [history_start, cut)")
HOLDOUT = Artifact("split/holdout.parquet", "split", "interactions in [cut, end]: evaluation only")
SEGMENTS = Artifact("split/segments.parquet", "split", "user_id, item_type, segment (warm | cold)")
SPLIT = Artifact("split/split.json", "split", "history_start, cut, end (epoch s), windows, counts")
# --- embed ---------------------------------------------------------------------------------------
TEXT_EMBEDDINGS = Artifact("content/text_embeddings.npy", "embed", "float32 [items, d], global order")
TEXT_ITEM_IDS = Artifact("content/item_ids.parquet", "embed", "the item id of each embedding row")
TEXT_SUMMARY = Artifact("content/embeddings.json", "embed", "model, dim, cache hits, speed")
# --- tune ----------------------------------------------------------------------------------------
TUNING = Artifact("tune/tuning.json", "tune", "every model's trials and chosen settings")
TUNE_VALIDATION = Artifact("tune/validation", "tune", "the validation run carved from history")
TUNE_HGNN = Artifact("tune/hgnn/{key}", "tune", "an HGNN shared by trials with the same settings")
TUNE_TRIAL = Artifact("tune/trials/{model}/{key}", "tune", "one trial's run")
# --- graph ---------------------------------------------------------------------------------------
GRAPH_NODES = Artifact("graph/nodes.parquet", "graph", "item_id, item_type, global and type index")
GRAPH_EDGES = Artifact("graph/edges.parquet", "graph", "src, dst, relation, weight; each pair once")
GRAPH_CSR = Artifact("graph/csr", "graph", "CoListeningGraph.save: SRC__DST.npz, num_nodes.json")
GRAPH_NUM_NODES = Artifact("graph/csr/num_nodes.json", "graph", "nodes per type")
GRAPH_SUMMARY = Artifact("graph/graph.json", "graph", "settings, nodes, edges per relation (last)")
GRAPH_STATS = Artifact("graph/stats.json", "graph stats", "degrees, imbalance, components")
GRAPH_DEGREES = Artifact("graph/degrees.png", "graph stats", "degree distributions")
# --- train-hgnn ----------------------------------------------------------------------------------
HGNN_EMBEDDINGS = Artifact("hgnn/item_embeddings.npy", "train-hgnn", "float32 [items, d], global order")
HGNN_ITEM_IDS = Artifact("hgnn/item_ids.parquet", "train-hgnn", "the item id of each embedding row")
HGNN_SUMMARY = Artifact("hgnn/embeddings.json", "train-hgnn", "best epoch, metric, seconds")
HGNN_CHECKPOINT = Artifact("hgnn/checkpoint.pt", "train-hgnn", "the last epoch, for --resume")
HGNN_BEST = Artifact("hgnn/best.pt", "train-hgnn", "the best validation model")
HGNN_CURVE = Artifact("hgnn/curve.json", "train-hgnn", "per-epoch loss, metric, seconds")
# --- train-2t ------------------------------------------------------------------------------------
TWOTOWER_MODEL = Artifact("twotower/best.pt", "train-2t", "the best validation model (or ensemble)")
TWOTOWER_CHECKPOINT = Artifact("twotower/checkpoint.pt", "train-2t", "the last epoch, for --resume")
TWOTOWER_CURVE = Artifact("twotower/curve.json", "train-2t", "per-epoch losses, validation HR@10")
TWOTOWER_FEATURES = Artifact("twotower/features.json", "train-2t", "feature space, settings, cut")
TWOTOWER_ITEM_VECTORS = Artifact("twotower/item_vectors.npy", "train-2t", "float32 item vectors")
TWOTOWER_MEMBER = Artifact("twotower/members/{member}", "train-2t", "ensemble member J's own folder")
# --- index ---------------------------------------------------------------------------------------
INDEX = Artifact("index/{item_type}.voy", "index", "Voyager HNSW index of one item type")
INDEX_REPORT = Artifact("index/index.json", "index", "recall@10 against exact search, latency")
# --- evaluate ------------------------------------------------------------------------------------
METRICS = Artifact("eval/metrics.json", "evaluate", "HR@k, nDCG@k, ... per type, segment, model")
EVAL_META = Artifact("eval/meta.json", "evaluate", "models, users evaluated, tuning, settings")
PER_USER = Artifact("eval/per_user.parquet", "evaluate", "each user's metrics, for paired intervals")
REPORT = Artifact("eval/report.html", "evaluate", "the self-contained report")
ABLATIONS = Artifact("eval/ablations.json", "evaluate --ablations", "2T-HGNN per ablation")
HGNN_W_USERS = Artifact("eval/hgnn_w_users", "evaluate", "the HGNN-w-users baseline's training")
HGNN_W_USERS_CURVE = Artifact("eval/hgnn_w_users/curve.json", "evaluate", "its per-epoch curve")
BASELINE_2T = Artifact("baselines/2T", "evaluate", "the 2T baseline's run (data, split, content shared)")
ABLATION_RUN = Artifact("ablations/{name}", "evaluate --ablations", "one ablation's run")
# --- abtest --------------------------------------------------------------------------------------
ABTEST_RESULTS = Artifact("abtest/{name}/results.json", "abtest", "one simulated A/B test")

CATALOGUE: tuple[Artifact, ...] = tuple(v for v in dict(globals()).values() if isinstance(v, Artifact))


# --- readers of the data/ and split/ artifacts -----------------------------------------------------
def read_table(run: Any, artifact: Artifact, columns: list[str] | None = None) -> Any:
    """A Parquet artifact as a DataFrame (RunError naming the command when it is missing)."""
    import pyarrow.parquet as pq

    return pq.read_table(_run(run).require(artifact), columns=columns).to_pandas()


def read_record(run: Any, artifact: Artifact, **fields: str) -> Any:
    """A JSON artifact (RunError naming the command when it is missing)."""
    from colisten.io import read_json

    return read_json(_run(run).require(artifact, **fields))


def load_items(run: Any, columns: list[str] | None = None) -> Any:
    """data/items.parquet as a DataFrame; row i is the item with global index i."""
    return read_table(run, ITEMS, columns)


def load_users(run: Any, columns: list[str] | None = None) -> Any:
    """data/users.parquet: every known user (age int32|null, country str|null, [taste_vector])."""
    return read_table(run, USERS, columns)


def load_interactions(run: Any, columns: list[str] | None = None) -> Any:
    """All accepted interactions (data/interactions.parquet), sorted by timestamp. Not for
    training or features: use load_history, which cannot contain hold-out events."""
    return read_table(run, INTERACTIONS, columns)


def load_history(run: Any, columns: list[str] | None = None) -> Any:
    """split/history.parquet: interactions with history_start <= timestamp < cut."""
    return read_table(run, HISTORY, columns)


def load_holdout(run: Any, columns: list[str] | None = None) -> Any:
    """split/holdout.parquet: interactions with cut <= timestamp <= end (evaluation only)."""
    return read_table(run, HOLDOUT, columns)


def load_segments(run: Any) -> Any:
    """split/segments.parquet: user_id, item_type, segment ('warm'|'cold')."""
    return read_table(run, SEGMENTS)


def load_split_info(run: Any) -> dict[str, Any]:
    """split/split.json: history_start, cut, end (epoch s), windows in days, counts."""
    return read_record(run, SPLIT)


def load_validation(run: Any) -> dict[str, Any]:
    """data/validation.json: the counts `colisten validate` printed."""
    return read_record(run, VALIDATION)


def _run(run: Any) -> Any:
    from colisten.rundir import RunDir

    return run if isinstance(run, RunDir) else RunDir(run)
