"""MovieLens-100K (real ratings by 943 people) read for the two-type recast (`recast.py`).

The files come from the `recbole==1.2.1` wheel (`recbole/dataset_example/ml-100k/`, RecBole's
tab-separated atomic format); they are read where pip put them and never copied into this
repository, whose licence could not cover them (MovieLens forbids redistribution).

This module only reads the source; the item types, timeline, events and cold users come from
the protocol in `colisten.datasets.recast`. Users keep their age and a region standing in for the
country (from the zip code); gender and occupation are dropped.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from colisten.datasets.recast import DatasetError, Recast, RecastParams, readable_title, recast

if TYPE_CHECKING:  # pandas is imported where used, keeping `colisten --help` fast
    import pandas as pd

__all__ = [
    "DatasetError",
    "MovieLens",
    "convert_movielens_100k",
    "find_movielens_100k",
    "movielens_100k_tables",
    "read_movielens_100k",
    "readable_title",
    "region_of_zip",
]

DATASET = "movielens-100k"
RECBOLE_PIN = "recbole==1.2.1"
RECBOLE_FOLDER = ("dataset_example", "ml-100k")
FILES = {"interactions": "ml-100k.inter", "items": "ml-100k.item", "users": "ml-100k.user"}
COLUMNS = {
    "interactions": ["user_id:token", "item_id:token", "rating:float", "timestamp:float"],
    "items": ["item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq"],
    "users": ["user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token"],
}
_YEAR_IN_TITLE = re.compile(r"\((\d{4})\)\s*$")


@dataclass
class MovieLens:
    """The three raw tables as read (all columns str), plus where they came from."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    folder: Path


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


def movielens_100k_tables(raw: MovieLens) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(ratings, films, users) in the shapes `recast.recast` takes (pure; no I/O)."""
    import pandas as pd

    ra = raw.interactions
    ratings = pd.DataFrame(
        {
            "user_id": ra["user_id"].astype(str),
            "item_id": ra["item_id"].astype(str),
            "rating": pd.to_numeric(ra["rating"], errors="coerce"),
            "timestamp": pd.to_numeric(ra["timestamp"], errors="coerce"),
        }
    )
    bad = ratings["rating"].isna() | ratings["timestamp"].isna()
    if bad.any():
        row = int(bad.to_numpy().argmax()) + 1
        raise DatasetError(
            f"{raw.folder / FILES['interactions']}: data row {row} has a bad rating or timestamp"
        )

    it = raw.items
    films = pd.DataFrame(
        {
            "item_id": it["item_id"].astype(str),
            # 'unkonwn' is a typo in RecBole's copy of item 267, titled 'unknown' in the GroupLens original
            "title": [t.strip().replace("unkonwn", "unknown") for t in it["movie_title"]],
            "genres": [g.split() for g in it["class"]],
            "year": [_release_year(y, t) for y, t in zip(it["release_year"], it["movie_title"], strict=True)],
        }
    )

    us = raw.users
    users = pd.DataFrame(
        {
            "user_id": us["user_id"].astype(str),
            "age": pd.to_numeric(us["age"], errors="coerce").astype("Int32"),
            "country": [region_of_zip(z) for z in us["zip_code"]],
        }
    )
    if users["user_id"].duplicated().any():
        raise DatasetError(f"{raw.folder / FILES['users']}: duplicate user_id")
    return ratings, films, users


def convert_movielens_100k(raw: MovieLens, params: RecastParams | None = None) -> Recast:
    """MovieLens-100K recast into the data contract (pure; no I/O)."""
    ratings, films, users = movielens_100k_tables(raw)
    return recast(ratings, films, users, params or RecastParams(), DATASET, str(raw.folder))


def _release_year(year: str, title: str) -> int | None:
    """The release year, or the '(YYYY)' some titles still end with; None if neither is a year."""
    for candidate in (year.strip(), *(_YEAR_IN_TITLE.findall(title))):
        if re.fullmatch(r"(18|19|20)\d\d", candidate):
            return int(candidate)
    return None
