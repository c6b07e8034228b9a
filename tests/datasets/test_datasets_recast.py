"""The two-type recast's rules on small hand-made inputs (colisten.datasets.recast)."""

from __future__ import annotations

import pandas as pd
import pytest

from colisten.datasets.recast import (
    DAY_S,
    START_S,
    DatasetError,
    RecastParams,
    choose_cold_users,
    hash_unit,
    item_types,
    recast,
    spread_timestamps,
    write_recast,
)


def films(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": [f"f{k}" for k in range(n)],
            "title": [f"Film {k}, The" for k in range(n)],
            "genres": [["Drama", "War"] if k % 2 else [] for k in range(n)],
            "year": [1990 + k if k % 3 else None for k in range(n)],
        }
    )


def ratings(n_users: int, n_items: int) -> pd.DataFrame:
    """Every user rates every item once; real timestamps scrambled per user, ratings 1..5."""
    rows = []
    for u in range(n_users):
        for k in range(n_items):
            rows.append((f"u{u}", f"f{k}", 1 + (u + k) % 5, 1_000_000 + ((k * 7 + u * 3) % n_items) * 60))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def run(params: RecastParams, n_users: int = 12, n_items: int = 30):
    return recast(ratings(n_users, n_items), films(n_items), None, params, "toy", "toy-source")


def test_hash_is_pinned_and_the_share_is_met():
    # the documented formula: blake2b(f"{salt}:{item_id}", 8 bytes) / 2**64, pinned to a value
    assert hash_unit("1", "colisten") == pytest.approx(0.4287762725504679, abs=1e-15)
    ids = [f"item{k}" for k in range(4000)]
    for share in (0.15, 0.4):
        types = item_types(ids, RecastParams(target_share=share))
        observed = types.count("audiobook") / len(ids)
        assert abs(observed - share) < 0.025, (share, observed)  # sd ~0.006-0.008
        assert set(types) == {"audiobook", "podcast"}
    # the type of an item does not depend on the other items or their order
    types = item_types(ids, RecastParams())
    assert item_types(ids[::-1], RecastParams()) == types[::-1]
    assert item_types(ids[:7], RecastParams()) == types[:7]


def test_each_users_real_order_is_kept_and_spread_over_the_days():
    days = 10
    span = days * DAY_S
    users = pd.Series(["a", "b", "a", "a", "b", "a"])
    real = pd.Series([30.0, 5.0, 10.0, 20.0, 5.0, 10.0])  # a: rows 2 and 5 tie at 10 → row order
    out = spread_timestamps(users, real, days)
    # user a's real order: row 2, row 5 (tie, later row), row 3, row 0; n = 4
    a_order = [2, 5, 3, 0]
    assert [out[r] for r in a_order] == [START_S + (2 * i + 1) * span // 8 for i in range(4)]
    # user b: rows 1 and 4 tie → row order; n = 2 → 1/4 and 3/4 of the span
    assert [out[1], out[4]] == [START_S + span // 4, START_S + 3 * span // 4]

    rec = run(RecastParams(days=days, holdout_days=3, cold_share=0.0))
    src = ratings(12, 30)
    src["new"] = spread_timestamps(src["user_id"], src["timestamp"], days)
    for _, g in src.groupby("user_id"):
        new = g.sort_values("timestamp", kind="stable")["new"].to_numpy()
        assert (new[1:] > new[:-1]).all()  # strictly increasing along the real order
        assert new.min() >= START_S and new.max() < START_S + span
    merged = rec.interactions.merge(src, on=["user_id", "item_id"])
    assert (merged["timestamp_x"] == merged["new"]).all() and len(merged) == len(src)


def test_stream_preview_threshold():
    r = pd.DataFrame(
        {
            "user_id": ["u"] * 5,
            "item_id": ["f0", "f1", "f2", "f3", "f4"],
            "rating": [3.5, 4.0, 4.5, 3.99, 5.0],
            "timestamp": [1, 2, 3, 4, 5],
        }
    )
    for threshold, expected in (
        (4.0, ["preview", "stream", "stream", "preview", "stream"]),
        (3.5, ["stream", "stream", "stream", "stream", "stream"]),
        (4.5, ["preview", "preview", "stream", "preview", "stream"]),
    ):
        rec = recast(r, films(5), None, RecastParams(stream_min_rating=threshold, cold_share=0), "t", "s")
        got = rec.interactions.sort_values("timestamp")["event"].tolist()
        assert got == expected, threshold
        assert rec.summary["events_dropped"] == 0  # no rating is dropped by the event rule


def test_cold_users_lose_only_their_history_target_events():
    base = RecastParams(target_share=0.5, cold_share=0.0, days=20, holdout_days=5)
    full = run(base).interactions
    rec = run(RecastParams(target_share=0.5, cold_share=0.5, days=20, holdout_days=5))
    inter, s = rec.interactions, rec.summary
    types = dict(zip(rec.items["item_id"], rec.items["item_type"], strict=True))
    assert set(types.values()) == {"audiobook", "podcast"}
    cut = int(full["timestamp"].max()) - 5 * DAY_S
    assert s["holdout_cut"] == cut
    cold = choose_cold_users(full["user_id"], 0.5, 0)
    assert len(cold) == 6 and s["users_chosen_cold"] == 6

    def key(df):
        return df.sort_values(["user_id", "item_id"]).reset_index(drop=True)

    is_target = full["item_id"].map(types) == "audiobook"
    lost = full["user_id"].isin(cold) & is_target & (full["timestamp"] < cut)
    assert lost.sum() > 0
    pd.testing.assert_frame_equal(key(inter), key(full[~lost]))  # exactly those, nothing else
    assert s["events_dropped"] == lost.sum() and s["events_written"] + s["events_dropped"] == len(full)
    assert s["users_made_cold"] == len(cold)
    for user in cold:
        mine = inter[inter["user_id"] == user]
        t = mine["item_id"].map(types)
        assert not ((t == "audiobook") & (mine["timestamp"] < cut)).any()  # cold for audiobooks
        assert ((t == "podcast") & (mine["timestamp"] < cut)).any()  # podcast history kept
    holdout_target = inter[(inter["item_id"].map(types) == "audiobook") & (inter["timestamp"] >= cut)]
    assert set(holdout_target["user_id"]) & cold  # their audiobook hold-out events are kept
    warm = set(full["user_id"]) - cold
    assert key(inter[inter["user_id"].isin(warm)]).equals(
        key(full[full["user_id"].isin(warm)])
    )  # the other users keep everything


def test_same_salt_and_seed_give_identical_files_others_differ(tmp_path):
    params = RecastParams(target_share=0.4, cold_share=0.5, days=20, holdout_days=5)
    a, b = tmp_path / "a", tmp_path / "b"
    write_recast(run(params), a, "toy")
    write_recast(run(params), b, "toy")
    names = sorted(p.name for p in a.iterdir())
    assert names == [".gitignore", "interactions.parquet", "items.parquet", "toy.json"]
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name

    def warm_for_audiobooks(rec):
        inter = rec.interactions
        types = inter["item_id"].map(dict(zip(rec.items["item_id"], rec.items["item_type"], strict=True)))
        history = inter[(types == "audiobook") & (inter["timestamp"] < rec.summary["holdout_cut"])]
        return set(history["user_id"])

    zero, one = run(params), run(RecastParams(**{**vars(params), "seed": 1}))
    assert warm_for_audiobooks(zero) != warm_for_audiobooks(one)  # another seed, other cold users
    assert len(warm_for_audiobooks(zero)) == len(warm_for_audiobooks(one)) == 6
    assert one.items.equals(zero.items)  # the seed picks cold users, not item types

    salted = run(RecastParams(**{**vars(params), "salt": "other"}))
    assert not salted.items["item_type"].equals(run(params).items["item_type"])


def test_items_keep_readable_text():
    items = run(RecastParams(cold_share=0), n_items=4).items
    assert items["title"].tolist() == ["The Film 0", "The Film 1", "The Film 2", "The Film 3"]
    assert items["description"].tolist() == [
        "",
        "Genres: Drama, War. Released: 1991.",
        "Released: 1992.",
        "Genres: Drama, War.",
    ]

    def nulls(col):
        return [v if isinstance(v, str) else None for v in items[col]]

    assert nulls("genre") == [None, "Drama", None, "Drama"]
    assert nulls("published_at") == [None, "1991-01-01", "1992-01-01", None]
    assert set(items["language"]) == {"en"}
    untitled = films(2).assign(title=[None, "  "])
    got = recast(ratings(1, 2), untitled, None, RecastParams(cold_share=0), "t", "s")
    assert got.items["title"].tolist() == ["Untitled (f0)", "Untitled (f1)"]
    assert got.summary["items_without_title"] == 2


@pytest.mark.parametrize(
    "change, option",
    [
        ({"target_share": 0.0}, "--target-share"),
        ({"target_share": 1.0}, "--target-share"),
        ({"cold_share": 1.5}, "--cold-share"),
        ({"days": 14}, "--days"),
        ({"holdout_days": 0}, "--holdout-days"),
        ({"seed": -1}, "--seed"),
        ({"other_type": "audiobook"}, "--other-type"),
        ({"stream_min_rating": float("nan")}, "--stream-min-rating"),
    ],
)
def test_bad_options_name_the_option(change, option):
    with pytest.raises(DatasetError, match=option):
        RecastParams(**change).check()
    with pytest.raises(DatasetError, match=option):
        run(RecastParams(**change))


def test_bad_input_rows_are_named():
    r = ratings(2, 3)
    r.loc[4, "rating"] = None
    with pytest.raises(DatasetError, match="row 5"):
        recast(r, films(3), None, RecastParams(), "t", "s")
    with pytest.raises(DatasetError, match="unknown item"):
        recast(ratings(2, 3), films(2), None, RecastParams(), "t", "s")


def test_writing_without_users_removes_a_stale_users_file(tmp_path):
    (tmp_path / "users.parquet").write_bytes(b"from an earlier conversion")
    write_recast(run(RecastParams()), tmp_path, "toy")
    assert not (tmp_path / "users.parquet").exists()
