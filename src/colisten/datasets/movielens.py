"""MovieLens-100K (real ratings by 943 people) converted into colisten's data contract.

The files come from the `recbole==1.2.1` wheel (`recbole/dataset_example/ml-100k/`, RecBole's
tab-separated atomic format); they are read where pip put them and never copied into this
repository, whose licence could not cover them (MovieLens forbids redistribution).

MovieLens has one item type, so a documented rule splits the films into two types: films with
any genre in `target_genres` become the sparse target type (default `audiobook`, about 16% of the
films), the rest the established type (default `podcast`). Ratings map to events by a rule too
(default 4-5 → stream, 3 → preview, 1-2 → no event); no row is lost silently: every rating is
counted either under the event it became or under "no event".
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colisten.errors import ColistenError

if TYPE_CHECKING:  # pandas is imported where used, keeping `colisten --help` fast
    import pandas as pd

RECBOLE_PIN = "recbole==1.2.1"
RECBOLE_FOLDER = ("dataset_example", "ml-100k")
FILES = {"interactions": "ml-100k.inter", "items": "ml-100k.item", "users": "ml-100k.user"}
COLUMNS = {
    "interactions": ["user_id:token", "item_id:token", "rating:float", "timestamp:float"],
    "items": ["item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq"],
    "users": ["user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token"],
}

# Genres watched by a minority of people and often by the same ones (family films, niche
# classics): together 272 of 1682 films (16%) and 15% of the ratings, touched by 921 of 943 users.
DEFAULT_TARGET_GENRES = (
    "Animation",
    "Children's",
    "Documentary",
    "Fantasy",
    "Film-Noir",
    "Musical",
    "Western",
)
DEFAULT_RATING_EVENTS = "4-5=stream,3=preview"
_ARTICLES = "The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El"
_TRAILING_ARTICLE = re.compile(rf"^(?P<body>.+?), (?P<article>{_ARTICLES})(?P<rest> \(.*\))?$")
_YEAR_IN_TITLE = re.compile(r"\((\d{4})\)\s*$")


class DatasetError(ColistenError):
    """A real-data source that is missing or not in the expected format."""


@dataclass(frozen=True)
class ItemTypeRule:
    """Films with any genre in `target_genres` → `target_type`; all others → `other_type`."""

    target_genres: tuple[str, ...] = DEFAULT_TARGET_GENRES
    target_type: str = "audiobook"
    other_type: str = "podcast"


@dataclass
class MovieLens:
    """The three raw tables as read (all columns str), plus where they came from."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    folder: Path


@dataclass
class Converted:
    """Tables in the data contract, plus the counts a user needs to trust the conversion."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def find_movielens_100k(source: str | Path | None = None) -> Path:
    """The ml-100k folder: `source` if given, else inside the installed recbole (not imported)."""
    if source is not None:
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise DatasetError(f"MovieLens folder {folder} does not exist")
        return folder
    spec = importlib.util.find_spec("recbole")  # locating only: importing recbole pulls heavy deps
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            f"MovieLens-100K is read from the RecBole wheel, which is not installed: "
            f"pip install --no-deps {RECBOLE_PIN}"
        )
    folder = Path(next(iter(spec.submodule_search_locations))).joinpath(*RECBOLE_FOLDER)
    if not folder.is_dir():
        raise DatasetError(
            f"{folder} not found: this recbole has no bundled ml-100k; pip install --no-deps {RECBOLE_PIN}"
        )
    return folder


def read_movielens_100k(folder: str | Path) -> MovieLens:
    """Read ml-100k.{inter,item,user}, checking each file's header."""
    import pandas as pd

    folder = Path(folder)
    tables: dict[str, pd.DataFrame] = {}
    for name, filename in FILES.items():
        path = folder / filename
        if not path.is_file():
            raise DatasetError(f"{path} is missing (expected RecBole's ml-100k atomic files)")
        df = pd.read_csv(
            path, sep="\t", dtype=str, keep_default_na=False, quoting=3, encoding="utf-8", engine="c"
        )
        if list(df.columns) != COLUMNS[name]:
            raise DatasetError(f"{path}: header {list(df.columns)} != expected {COLUMNS[name]}")
        df.columns = [c.split(":")[0] for c in df.columns]
        tables[name] = df
    return MovieLens(tables["interactions"], tables["items"], tables["users"], folder)


def parse_rating_events(spec: str) -> dict[int, str]:
    """'4-5=stream,3=preview' → {4: 'stream', 5: 'stream', 3: 'preview'}; ratings left out get no event."""
    mapping: dict[int, str] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        ratings, sep, event = (s.strip() for s in part.partition("="))
        match = re.fullmatch(r"([1-5])(?:-([1-5]))?", ratings)
        if not sep or not event or match is None:
            raise DatasetError(f"--rating-events: cannot read {part!r}; write e.g. '4-5=stream,3=preview'")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if low > high:
            raise DatasetError(f"--rating-events: range {ratings!r} is reversed")
        for r in range(low, high + 1):
            if r in mapping:
                raise DatasetError(f"--rating-events: rating {r} is mapped twice")
            mapping[r] = event
    if not mapping:
        raise DatasetError("--rating-events maps no rating to an event")
    return mapping


def assign_item_types(genres: Iterable[list[str]], rule: ItemTypeRule) -> list[str]:
    """Item type of each film under `rule` (a film with any target genre is of the target type)."""
    target = set(rule.target_genres)
    return [rule.target_type if target.intersection(g) else rule.other_type for g in genres]


def readable_title(title: str) -> str:
    """'Usual Suspects, The' → 'The Usual Suspects' (MovieLens files titles by their first word)."""
    m = _TRAILING_ARTICLE.match(title)
    if m is None:
        return title
    article = m.group("article")
    sep = "" if article.endswith("'") else " "
    return f"{article}{sep}{m.group('body')}{m.group('rest') or ''}"


def region_of_zip(zip_code: str) -> str | None:
    """A coarse region standing in for the contract's `country` (MovieLens has zip codes only).

    US ZIP codes → 'US-<first digit>' (the ten US national ZIP areas, e.g. US-0 = New England);
    codes starting with a letter are Canadian postal codes → 'CA'; '00000' and anything else → None.
    """
    z = zip_code.strip()
    if re.fullmatch(r"\d{5}", z) and z != "00000":
        return f"US-{z[0]}"
    if re.fullmatch(r"[A-Za-z]\d[A-Za-z]\d[A-Za-z]", z):
        return "CA"
    return None


def convert_movielens_100k(
    raw: MovieLens,
    rule: ItemTypeRule | None = None,
    rating_events: dict[int, str] | None = None,
    holdout_days: int = 14,
) -> Converted:
    """Map the raw tables to the contract's interactions, items and users (pure; no I/O)."""
    import pandas as pd

    rule = rule or ItemTypeRule()
    rating_events = rating_events if rating_events is not None else parse_rating_events(DEFAULT_RATING_EVENTS)
    if rule.target_type == rule.other_type:
        raise DatasetError(f"--target-type and --other-type are both {rule.target_type!r}")

    # items -----------------------------------------------------------------------------------
    it = raw.items
    genres = [g.split() for g in it["class"]]
    known = {g for gs in genres for g in gs}
    unknown_targets = sorted(set(rule.target_genres) - known)
    if unknown_targets:
        raise DatasetError(f"--target-genres: {unknown_targets} not among MovieLens genres {sorted(known)}")
    years = [_release_year(y, t) for y, t in zip(it["release_year"], it["movie_title"], strict=True)]
    # 'unkonwn' is a typo in RecBole's copy of item 267, titled 'unknown' in the GroupLens original
    titles = [readable_title(t.strip()).replace("unkonwn", "unknown") for t in it["movie_title"]]
    descriptions = [
        f"Genres: {', '.join(g)}." + (f" Released: {y}." if y else "")
        for g, y in zip(genres, years, strict=True)
    ]
    items = pd.DataFrame(
        {
            "item_id": it["item_id"].astype(str),
            "item_type": assign_item_types(genres, rule),
            "title": titles,
            "description": descriptions,
            "genre": [g[0] if g else None for g in genres],
            "language": "en",
            "published_at": [f"{y}-01-01" if y else None for y in years],  # only the year is known
        }
    )
    if items["item_id"].duplicated().any():
        raise DatasetError(f"{raw.folder / FILES['items']}: duplicate item_id")

    # users -----------------------------------------------------------------------------------
    us = raw.users
    ages = pd.to_numeric(us["age"], errors="coerce").astype("Int32")
    users = pd.DataFrame(
        {
            "user_id": us["user_id"].astype(str),
            "age": ages,
            "country": [region_of_zip(z) for z in us["zip_code"]],
        }
    )

    # interactions ----------------------------------------------------------------------------
    ra = raw.interactions
    ratings = pd.to_numeric(ra["rating"], errors="coerce")
    timestamps = pd.to_numeric(ra["timestamp"], errors="coerce")
    bad = ratings.isna() | timestamps.isna() | (ratings % 1 != 0)
    if bad.any():
        row = int(bad.to_numpy().argmax()) + 1
        raise DatasetError(
            f"{raw.folder / FILES['interactions']}: data row {row} has a bad rating or timestamp"
        )
    ratings = ratings.astype("int64")
    events = ratings.map(rating_events)  # NaN where the rating maps to no event
    has_event = events.notna()
    interactions = pd.DataFrame(
        {
            "user_id": ra["user_id"].astype(str)[has_event],
            "item_id": ra["item_id"].astype(str)[has_event],
            "event": events[has_event].astype(str),
            "timestamp": timestamps[has_event].astype("int64"),
        }
    )
    interactions = interactions.sort_values(["timestamp", "user_id", "item_id"], kind="stable")
    interactions = interactions.reset_index(drop=True)

    summary = _summary(raw, items, users, interactions, ratings, has_event, rule, rating_events, holdout_days)
    return Converted(interactions=interactions, items=items, users=users, summary=summary)


def _release_year(year: str, title: str) -> int | None:
    """The release year, or the '(YYYY)' some titles still end with; None if neither is a year."""
    for candidate in (year.strip(), *(_YEAR_IN_TITLE.findall(title))):
        if re.fullmatch(r"(18|19|20)\d\d", candidate):
            return int(candidate)
    return None


def _summary(
    raw: MovieLens,
    items: pd.DataFrame,
    users: pd.DataFrame,
    interactions: pd.DataFrame,
    ratings: pd.Series,
    has_event: pd.Series,
    rule: ItemTypeRule,
    rating_events: dict[int, str],
    holdout_days: int,
) -> dict[str, Any]:
    item_type = dict(zip(items["item_id"], items["item_type"], strict=True))
    by_type = interactions["item_id"].map(item_type)
    target = interactions[by_type == rule.target_type]
    end = int(interactions["timestamp"].max()) if len(interactions) else 0
    holdout_streams = target[
        (target["timestamp"] >= end - holdout_days * 86_400) & (target["event"] == "stream")
    ]
    return {
        "source": str(raw.folder),
        "rows_in": {name: len(getattr(raw, name)) for name in ("interactions", "items", "users")},
        "ratings": {str(k): int(v) for k, v in ratings.value_counts().sort_index().items()},
        "rating_events": {str(k): v for k, v in sorted(rating_events.items())},
        "events": {str(k): int(v) for k, v in interactions["event"].value_counts().sort_index().items()},
        "no_event": int((~has_event).sum()),
        "no_event_by_rating": {
            str(k): int(v) for k, v in ratings[~has_event].value_counts().sort_index().items()
        },
        "item_type_rule": {
            "target_genres": list(rule.target_genres),
            "target_type": rule.target_type,
            "other_type": rule.other_type,
        },
        "items_per_type": {str(k): int(v) for k, v in items["item_type"].value_counts().sort_index().items()},
        "interactions_per_type": {str(k): int(v) for k, v in by_type.value_counts().sort_index().items()},
        "users": len(users),
        "users_with_target_events": int(target["user_id"].nunique()),
        "first_timestamp": int(interactions["timestamp"].min()) if len(interactions) else None,
        "last_timestamp": end if len(interactions) else None,
        f"users_with_target_stream_in_last_{holdout_days}_days": int(holdout_streams["user_id"].nunique()),
        "country": "US ZIP area 'US-<first digit>', 'CA' for Canadian postal codes, null for '00000'",
        "published_at": "release year as YYYY-01-01 (MovieLens gives only the year)",
    }


def write_contract(converted: Converted, out: str | Path) -> dict[str, Path]:
    """Write interactions/items/users.parquet and movielens-100k.json into `out` (atomically).

    A `.gitignore` ignoring everything is put in `out` too, so converted MovieLens data placed
    inside a git checkout is never committed by accident.
    """
    import pyarrow as pa

    from colisten.io import write_json_atomic, write_parquet_atomic, write_text_atomic

    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise DatasetError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        name: write_parquet_atomic(
            out / f"{name}.parquet",
            pa.Table.from_pandas(getattr(converted, name), schema=schema, preserve_index=False),
        )
        for name, schema in _schemas().items()
    }
    paths["summary"] = write_json_atomic(out / "movielens-100k.json", converted.summary)
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
