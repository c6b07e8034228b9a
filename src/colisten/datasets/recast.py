"""The two-type recast: one documented protocol turning a ratings data set into the data contract.

Real public behaviour logs with two item types and a cold-start population do not exist, so a
ratings data set with one item type (films) is recast into the paper's setting by these rules,
shared by every converter (`colisten datasets movielens-100k`, `colisten datasets ml-latest-small`):

1. **Item types.** A salted hash puts a share `target_share` of the items in the sparse target
   type (`audiobook`), the rest in the established type (`podcast`): an item is of the target type
   when blake2b(f"{salt}:{item_id}") read as a fraction of 2**64 is below `target_share`. The
   split depends neither on Python's hash seed nor on the order of the rows.
2. **Time.** Each user's ratings keep their real order (real timestamp; ties by the source file's
   row order) and are spread evenly over `days` days from START (2024-01-01T00:00:00Z): the i-th
   of a user's n ratings (i = 0..n-1) gets START + floor((i + 0.5) / n * days * 86400) seconds.
   With the default split (`data.history_days` 90, `holdout_days` 14) and `days` 104 the hold-out
   holds each user's last ~14/104 of their ratings, whenever they really rated.
3. **Events.** A rating >= `stream_min_rating` becomes a `stream`, a lower one a `preview` (a weak
   signal). No rating is dropped here.
4. **Cold users.** round(`cold_share` x users) users, drawn by np.random.default_rng(seed) from
   the users sorted by id, lose their history-period target-type events (timestamp < newest
   timestamp - `holdout_days` x 86400, the split's cut): they are cold for the target type but
   keep their established-type history and their target-type hold-out events, the paper's
   cold-start setting. The dropped events are counted in the summary.
5. **Items.** Readable title ("Usual Suspects, The" -> "The Usual Suspects"), a description
   "Genres: A, B. Released: YYYY.", genre = the first genre, language "en", published_at
   "YYYY-01-01" (only the year is known) or null. An item without a title gets
   "Untitled (ITEM_ID)" (counted).

Every function here is pure (pandas in, pandas out) except `write_recast`, the writer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colisten.errors import ColistenError

if TYPE_CHECKING:  # pandas is imported where used, keeping `colisten --help` fast
    import numpy as np
    import pandas as pd

DAY_S = 86_400
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # the recast timeline's first second
START_S = int(START.timestamp())

_ARTICLES = "The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El"
_TRAILING_ARTICLE = re.compile(rf"^(?P<body>.+?), (?P<article>{_ARTICLES})(?P<rest> \(.*\))?$")


class DatasetError(ColistenError):
    """A real-data source that is missing or not in the expected format, or a bad recast option."""


@dataclass(frozen=True)
class RecastParams:
    """The protocol's parameters; each is a CLI option of the same name (`--target-share`, ...)."""

    target_type: str = "audiobook"
    other_type: str = "podcast"
    target_share: float = 0.15
    salt: str = "colisten"
    seed: int = 0
    days: int = 104
    stream_min_rating: float = 4.0
    cold_share: float = 0.6
    holdout_days: int = 14

    def check(self) -> None:
        """Raise DatasetError naming the option for any value the protocol cannot use."""
        import math

        if not self.target_type.strip() or not self.other_type.strip():
            raise DatasetError("--target-type and --other-type must not be empty")
        if self.target_type == self.other_type:
            raise DatasetError(f"--target-type and --other-type are both {self.target_type!r}")
        if not (0.0 < self.target_share < 1.0):
            raise DatasetError(f"--target-share must be in (0, 1) (exclusive), got {self.target_share}")
        if not (0.0 <= self.cold_share <= 1.0):
            raise DatasetError(f"--cold-share must be in [0, 1], got {self.cold_share}")
        if self.seed < 0:
            raise DatasetError(f"--seed must be >= 0, got {self.seed}")
        if self.holdout_days < 1:
            raise DatasetError(f"--holdout-days must be >= 1, got {self.holdout_days}")
        if self.days < self.holdout_days + 1:
            raise DatasetError(
                f"--days must be at least --holdout-days + 1 = {self.holdout_days + 1} "
                f"(some history before the hold-out), got {self.days}"
            )
        if not math.isfinite(self.stream_min_rating):
            raise DatasetError(f"--stream-min-rating must be a finite number, got {self.stream_min_rating}")

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "start": START.isoformat().replace("+00:00", "Z")}


@dataclass
class Recast:
    """Tables in the data contract (users None when the source has no user table) + summary."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None
    summary: dict[str, Any] = field(default_factory=dict)


# --- the rules, one function each ------------------------------------------------------------


def hash_unit(item_id: str, salt: str) -> float:
    """blake2b(f"{salt}:{item_id}") as a fraction in [0, 1): stable across processes and machines."""
    digest = hashlib.blake2b(f"{salt}:{item_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def item_types(item_ids: Iterable[str], params: RecastParams) -> list[str]:
    """Rule 1: the target type for items whose salted hash is below `target_share`."""
    return [
        params.target_type if hash_unit(str(i), params.salt) < params.target_share else params.other_type
        for i in item_ids
    ]


def spread_timestamps(user_ids: pd.Series, timestamps: pd.Series, days: int) -> np.ndarray:
    """Rule 2: int64 epoch seconds; row k keeps its rank in its user's real order (real timestamp,
    ties by row position) and gets START + floor((i + 0.5) / n * days * 86400)."""
    import numpy as np
    import pandas as pd

    n_rows = len(user_ids)
    codes, _ = pd.factorize(user_ids.to_numpy(), sort=False)
    order = np.lexsort((np.arange(n_rows), timestamps.to_numpy(dtype="float64"), codes))
    sorted_codes = codes[order]
    counts = np.bincount(codes)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(n_rows) - first[sorted_codes]  # i within the user
    n = counts[sorted_codes]
    span = days * DAY_S
    if n_rows and counts.max() > span:
        raise DatasetError(
            f"a user has {counts.max()} ratings, more than the {span} seconds of --days {days}"
        )
    out = np.empty(n_rows, dtype="int64")
    # floor((i + 0.5) / n * span) in exact integer arithmetic
    out[order] = START_S + ((2 * rank + 1) * span) // (2 * n)
    return out


def rating_events(ratings: pd.Series, stream_min_rating: float) -> pd.Series:
    """Rule 3: 'stream' for rating >= stream_min_rating, else 'preview'."""
    import numpy as np
    import pandas as pd

    values = np.where(ratings.to_numpy(dtype="float64") >= stream_min_rating, "stream", "preview")
    return pd.Series(values, index=ratings.index, dtype=object)


def choose_cold_users(user_ids: Iterable[str], cold_share: float, seed: int) -> set[str]:
    """Rule 4's draw: round(cold_share x users) users, by default_rng(seed) over the sorted ids."""
    import numpy as np

    users = sorted(set(user_ids))
    k = round(cold_share * len(users))
    picked = np.random.default_rng(seed).permutation(len(users))[:k]
    return {users[i] for i in picked}


def readable_title(title: str) -> str:
    """'Usual Suspects, The' → 'The Usual Suspects' (MovieLens files titles by their first word)."""
    m = _TRAILING_ARTICLE.match(title)
    if m is None:
        return title
    article = m.group("article")
    sep = "" if article.endswith("'") else " "
    return f"{article}{sep}{m.group('body')}{m.group('rest') or ''}"


def film_items(films: pd.DataFrame, params: RecastParams) -> pd.DataFrame:
    """Rules 1 and 5: the contract's items from `films` (item_id str, title str|None, genres
    list[str], year int|None), in the order given."""
    import pandas as pd

    titles, descriptions, genres_out, published = [], [], [], []
    for item_id, title, genres, year in zip(
        films["item_id"], films["title"], films["genres"], films["year"], strict=True
    ):
        title = title.strip() if isinstance(title, str) else ""
        titles.append(readable_title(title) if title else f"Untitled ({item_id})")
        year = None if year is None or pd.isna(year) else int(year)
        parts = []
        if genres:
            parts.append(f"Genres: {', '.join(genres)}.")
        if year is not None:
            parts.append(f"Released: {year}.")
        descriptions.append(" ".join(parts))
        genres_out.append(genres[0] if genres else None)
        published.append(f"{year:04d}-01-01" if year is not None else None)
    ids = films["item_id"].astype(str).tolist()
    return pd.DataFrame(
        {
            "item_id": ids,
            "item_type": item_types(ids, params),
            "title": titles,
            "description": descriptions,
            "genre": genres_out,
            "language": "en",
            "published_at": published,
        }
    )


# --- the whole protocol ----------------------------------------------------------------------


def recast(
    ratings: pd.DataFrame,
    films: pd.DataFrame,
    users: pd.DataFrame | None,
    params: RecastParams,
    dataset: str,
    source: str,
) -> Recast:
    """Apply the protocol to `ratings` (user_id, item_id, rating, timestamp; in the source file's
    row order), `films` (see `film_items`) and the contract-shaped `users` (or None)."""
    import pandas as pd

    params.check()
    for column in ("user_id", "item_id", "rating", "timestamp"):
        if column not in ratings.columns:
            raise DatasetError(f"{source}: ratings have no column {column!r}")
    ratings = ratings.reset_index(drop=True)
    user_ids = ratings["user_id"].astype(str)
    item_ids = ratings["item_id"].astype(str)
    rating = pd.to_numeric(ratings["rating"], errors="coerce")
    real_ts = pd.to_numeric(ratings["timestamp"], errors="coerce")
    bad = rating.isna() | real_ts.isna() | (user_ids.str.strip() == "") | (item_ids.str.strip() == "")
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise DatasetError(f"{source}: rating row {row + 1} has an empty id or a bad rating or timestamp")

    items = film_items(films, params)
    if items["item_id"].duplicated().any():
        dup = items.loc[items["item_id"].duplicated(), "item_id"].iloc[0]
        raise DatasetError(f"{source}: duplicate item_id {dup!r}")
    unknown = ~item_ids.isin(set(items["item_id"]))
    if unknown.any():
        raise DatasetError(
            f"{source}: rating row {int(unknown.to_numpy().argmax()) + 1} names an unknown item"
        )

    type_of = dict(zip(items["item_id"], items["item_type"], strict=True))
    inter = pd.DataFrame(
        {
            "user_id": user_ids,
            "item_id": item_ids,
            "event": rating_events(rating, params.stream_min_rating),
            "timestamp": spread_timestamps(user_ids, real_ts, params.days),
        }
    )
    item_type = inter["item_id"].map(type_of)
    events_from_ratings = _counts(inter["event"])

    end = int(inter["timestamp"].max()) if len(inter) else START_S
    cut = end - params.holdout_days * DAY_S
    cold = choose_cold_users(user_ids, params.cold_share, params.seed)
    drop = (item_type == params.target_type) & (inter["timestamp"] < cut) & inter["user_id"].isin(cold)
    dropped = inter[drop]
    kept = inter[~drop]
    kept_type = item_type[~drop]
    kept = kept.sort_values(["timestamp", "user_id", "item_id"], kind="stable").reset_index(drop=True)

    target_kept = kept[kept["item_id"].map(type_of) == params.target_type]
    target_history = target_kept[target_kept["timestamp"] < cut]
    holdout_streams = target_kept[(target_kept["timestamp"] >= cut) & (target_kept["event"] == "stream")]
    summary = {
        "dataset": dataset,
        "source": source,
        "protocol": params.as_json(),
        "rows_in": {
            "ratings": len(ratings),
            "items": len(films),
            "users": None if users is None else len(users),
        },
        "ratings": {_rating_key(k): int(v) for k, v in rating.value_counts().sort_index().items()},
        "events_from_ratings": events_from_ratings,
        "events_dropped": len(dropped),
        "events_dropped_per_event": _counts(dropped["event"]),
        "events_written": len(kept),
        "events": _counts(kept["event"]),
        "events_per_type": _counts(kept_type),
        "items_per_type": _counts(items["item_type"]),
        "items_without_title": int(
            films["title"].map(lambda t: not (isinstance(t, str) and t.strip())).sum()
        ),
        "users": int(user_ids.nunique()),
        "users_chosen_cold": len(cold),
        "users_made_cold": int(dropped["user_id"].nunique()),
        "users_with_target_history": int(target_history["user_id"].nunique()),
        "users_with_target_stream_in_holdout": int(holdout_streams["user_id"].nunique()),
        "users_without_events": int(len(set(user_ids) - set(kept["user_id"]))),
        "first_timestamp": int(kept["timestamp"].min()) if len(kept) else None,
        "last_timestamp": end,
        "holdout_cut": cut,
        "users_file": users is not None,
    }
    assert summary["events_written"] + summary["events_dropped"] == len(ratings)
    return Recast(interactions=kept, items=items, users=users, summary=summary)


def _counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in values.value_counts().sort_index().items()}


def _rating_key(r: float) -> str:
    return str(int(r)) if float(r).is_integer() else str(float(r))


# --- the writer ------------------------------------------------------------------------------


def write_recast(converted: Recast, out: str | Path, dataset: str) -> dict[str, Path]:
    """Write interactions/items(/users).parquet and `<dataset>.json` into `out`, atomically.

    Without a users table a `users.parquet` left in `out` by an earlier conversion is removed
    (it would describe other people). A `.gitignore` ignoring everything is put in `out` too, so
    converted MovieLens data inside a git checkout is never committed by accident.
    """
    import pyarrow as pa

    from colisten.io import write_json_atomic, write_parquet_atomic, write_text_atomic

    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise DatasetError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, schema in _schemas().items():
        frame = getattr(converted, name)
        if frame is None:
            (out / f"{name}.parquet").unlink(missing_ok=True)
            continue
        table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        paths[name] = write_parquet_atomic(out / f"{name}.parquet", table)
    paths["summary"] = write_json_atomic(out / f"{dataset}.json", converted.summary)
    gitignore = out / ".gitignore"
    if not gitignore.exists():
        write_text_atomic(gitignore, "# MovieLens data may not be redistributed\n*\n")
    return paths


def _schemas() -> dict[str, Any]:
    """Plain Arrow types of the contract (pandas would write large_string)."""
    import pyarrow as pa

    text = pa.string()
    return {
        "interactions": pa.schema(
            [("user_id", text), ("item_id", text), ("event", text), ("timestamp", pa.int64())]
        ),
        "items": pa.schema(
            [
                (c, text)
                for c in ("item_id", "item_type", "title", "description", "genre", "language", "published_at")
            ]
        ),
        "users": pa.schema([("user_id", text), ("age", pa.int32()), ("country", text)]),
    }
