"""MovieLens-100K → data contract: every row accounted for, documented type and event rules."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from colisten.cli import app
from colisten.config import DataConfig
from colisten.datasets import movielens
from colisten.datasets.movielens import (
    DatasetError,
    ItemTypeRule,
    convert_movielens_100k,
    find_movielens_100k,
    parse_rating_events,
    read_movielens_100k,
    readable_title,
    region_of_zip,
)


@pytest.fixture(scope="module")
def raw():
    return read_movielens_100k(find_movielens_100k())


def test_cli_converts_all_of_movielens_into_the_contract(tmp_path):
    out = tmp_path / "ml"
    res = CliRunner().invoke(app, ["datasets", "movielens-100k", "--out", str(out)])
    assert res.exit_code == 0, res.output
    items = pd.read_parquet(out / "items.parquet")
    users = pd.read_parquet(out / "users.parquet")
    inter = pd.read_parquet(out / "interactions.parquet")
    summary = json.loads((out / "movielens-100k.json").read_text())

    assert len(users) == 943 and users["user_id"].is_unique
    assert len(items) == 1682 and items["item_id"].is_unique
    # every rating is either an event or counted as "no event"
    assert len(inter) + summary["no_event"] == 100_000
    assert sum(summary["events"].values()) == len(inter)
    assert summary["no_event_by_rating"] == {"1": 6110, "2": 11370}
    # default rule: 4-5 → stream, 3 → preview, both in the default config's vocabulary
    assert set(inter["event"]) == {"stream", "preview"} <= set(DataConfig().events)
    assert (inter["event"] == "preview").sum() == 27145
    # default item types match the default config, and the target type is sparse (10-20% of films)
    assert set(items["item_type"]) == {"audiobook", "podcast"}
    share = (items["item_type"] == "audiobook").mean()
    assert 0.10 <= share <= 0.20
    assert summary["users_with_target_events"] > 900
    # contract types; every interaction points at a known user and item; real MovieLens times
    assert inter["timestamp"].dtype == "int64" and inter["timestamp"].is_monotonic_increasing
    assert inter["timestamp"].between(874_000_000, 894_000_000).all()
    assert set(inter["item_id"]) <= set(items["item_id"]) and set(inter["user_id"]) <= set(users["user_id"])
    assert items.loc[items["item_id"] == "1", ["title", "genre", "published_at"]].iloc[0].tolist() == [
        "Toy Story",
        "Animation",
        "1995-01-01",
    ]
    assert "Genres: Animation, Children's, Comedy" in items.loc[0, "description"]
    assert users["age"].between(7, 73).all()
    assert (out / ".gitignore").read_text().strip().endswith("*")  # never committed by accident
    assert "943" in res.output and "no event" in res.output


def test_rules_are_configurable(tmp_path):
    out = tmp_path / "horror"
    args = ["datasets", "movielens-100k", "--out", str(out), "--target-genres", "Horror"]
    args += ["--target-type", "book", "--other-type", "film", "--rating-events", "1-5=stream"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    items = pd.read_parquet(out / "items.parquet")
    inter = pd.read_parquet(out / "interactions.parquet")
    assert (items["item_type"] == "book").sum() == 92 and (items["item_type"] == "film").sum() == 1590
    assert len(inter) == 100_000 and set(inter["event"]) == {"stream"}


def test_unknown_genre_is_rejected_naming_the_genres(raw):
    with pytest.raises(DatasetError, match="Cartoon"):
        convert_movielens_100k(raw, ItemTypeRule(target_genres=("Cartoon",)))


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("4-5=stream,5=preview", "mapped twice"),
        ("5-4=stream", "reversed"),
        ("6=stream", "cannot read"),
        ("", "no rating"),
    ],
)
def test_bad_rating_rule_is_a_clear_error(spec, fragment):
    with pytest.raises(DatasetError, match=fragment):
        parse_rating_events(spec)


def test_rating_rule_parses_ranges():
    assert parse_rating_events("4-5=stream, 3=preview") == {4: "stream", 5: "stream", 3: "preview"}


def test_missing_recbole_tells_how_to_install(monkeypatch):
    monkeypatch.setattr(movielens.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetError, match=r"pip install --no-deps recbole==1\.2\.1"):
        find_movielens_100k()


def test_cli_error_on_bad_source_folder(tmp_path):
    res = CliRunner().invoke(
        app, ["datasets", "movielens-100k", "--out", str(tmp_path / "o"), "--source", str(tmp_path / "nope")]
    )
    assert isinstance(res.exception, DatasetError) and "does not exist" in str(res.exception)


def test_titles_and_regions():
    assert readable_title("Usual Suspects, The") == "The Usual Suspects"
    assert readable_title("Misérables, Les (Les Misérables)") == "Les Misérables (Les Misérables)"
    assert readable_title("Toy Story") == "Toy Story"
    assert region_of_zip("02138") == "US-0" and region_of_zip("94043") == "US-9"
    assert region_of_zip("T8H1N") == "CA" and region_of_zip("00000") is None
