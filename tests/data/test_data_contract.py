"""The data contract: normalised outputs, every quarantine reason, every file-level error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from colisten.config import Settings
from colisten.data.contract import validate_dataset
from colisten.data.sources import DataContractError

ITEMS_CSV = '''item_id,item_type,title,description,genre
a2,audiobook,日本語のタイトル,,
a1,audiobook,"Le Petit Prince, édition ""spéciale""",A story,FIC
p1,podcast,Pod One,"multi
line",
'''
INTERACTIONS_HEADER = "user_id,item_id,event,timestamp,duration_s\n"


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    p = directory / name
    p.write_text(text, encoding="utf-8")
    return p


def quarantine(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "quarantine.parquet")


def test_valid_csv_is_normalised_and_sorted(tmp_path):
    data = tmp_path / "in"
    write(data, "items.csv", ITEMS_CSV)
    write(
        data,
        "interactions.csv",
        INTERACTIONS_HEADER
        + "u2,p1, Follow ,2024-01-01T10:00:00+02:00,\n"  # offset, padded mixed-case event
        + "u1,a1,stream,1704103200,12.5\n"  # epoch seconds
        + "u1,a2,preview,2024-01-01 09:00:00,\n"  # naive = UTC
        + "u3,a1,stream,1704103200.9,\n",  # fractional epoch -> floor
    )
    out = tmp_path / "run" / "data"
    report = validate_dataset(data, Settings(), out_dir=out)

    items = pd.read_parquet(out / "items.parquet")
    assert list(items.item_id) == ["a1", "a2", "p1"]  # sorted by (item_type, item_id)
    assert items.title[0] == 'Le Petit Prince, édition "spéciale"'  # quoting + unicode
    assert items.title[1] == "日本語のタイトル"
    assert items.description[2] == "multi\nline"
    assert items.description[1] == ""  # empty optional text column -> ""
    assert pd.isna(items.genre[1])
    assert items.language.isna().all() and items.published_at.isna().all()  # absent optional columns

    inter = pd.read_parquet(out / "interactions.parquet")
    assert list(inter.timestamp) == [1704096000, 1704099600, 1704103200, 1704103200]
    assert list(inter.event) == ["follow", "preview", "stream", "stream"]
    assert str(inter.timestamp.dtype) == "int64" and str(inter.duration_s.dtype) == "float64"
    assert inter.duration_s.tolist()[2] == 12.5

    users = pd.read_parquet(out / "users.parquet")
    assert list(users.user_id) == ["u1", "u2", "u3"]
    assert pq.read_schema(out / "users.parquet").field("age").type == pa.int32()

    assert report.tables["interactions"].quarantined == 0
    assert report.items_per_type == {"audiobook": 2, "podcast": 1}
    assert report.events["stream"] == 2 and report.events["intent_to_pay"] == 0
    assert report.time_min == 1704096000 and report.time_max == 1704103200
    saved = json.loads((out / "validation.json").read_text())
    assert saved["tables"]["interactions"]["rows_in"] == 4
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp leftovers


@pytest.mark.parametrize(
    "row, reason",
    [
        (",a1,stream,2024-01-02,", "empty_id"),
        ("u9,  ,stream,2024-01-02,", "empty_id"),
        ("u9,a1,stream,yesterday,", "bad_timestamp"),
        ("u9,a1,stream,,", "bad_timestamp"),
        ("u9,a1,stream,1704103200000,", "bad_timestamp"),  # epoch milliseconds
        ("u9,a1,listen,2024-01-02,", "unknown_event"),
        ("u9,zz,stream,2024-01-02,", "unknown_item"),
        ("u1,a1,stream,2024-01-01,", "duplicate"),
    ],
)
def test_bad_interaction_rows_are_quarantined_with_reason(tmp_path, row, reason):
    data = tmp_path / "in"
    write(data, "items.csv", ITEMS_CSV)
    write(data, "interactions.csv", INTERACTIONS_HEADER + "u1,a1,stream,2024-01-01,\n" + row + "\n")
    out = tmp_path / "out"
    report = validate_dataset(data, Settings(), out_dir=out)
    q = quarantine(out)
    assert list(q.reason) == [reason]
    assert (
        list(q.row) == [2]
        and list(q.source_file) == ["interactions.csv"]
        and list(q.table) == ["interactions"]
    )
    raw = json.loads(q.raw[0])
    assert set(raw) == {"user_id", "item_id", "event", "timestamp", "duration_s"}
    assert raw["event"] == row.split(",")[2]
    assert report.tables["interactions"].reasons[reason] == 1
    assert len(pd.read_parquet(out / "interactions.parquet")) == 1


def test_duplicate_is_on_the_normalised_event_and_keeps_the_first(tmp_path):
    data = tmp_path / "in"
    write(data, "items.csv", ITEMS_CSV)
    write(
        data,
        "interactions.csv",
        INTERACTIONS_HEADER
        + "u1,a1,stream,2024-01-01T00:00:00Z,5\n"
        + "u1,a1,Stream,1704067200,5\n"  # same event, other spelling
        + "u1,a1,stream,1704067200,6\n",  # other duration: not a duplicate
    )
    out = tmp_path / "out"
    validate_dataset(data, Settings(), out_dir=out)
    q = quarantine(out)
    assert list(q.row) == [2] and list(q.reason) == ["duplicate"]


def test_item_and_user_row_problems(tmp_path):
    data = tmp_path / "in"
    write(data, "items.csv", ITEMS_CSV + "a1,podcast,Second a1,,\n,podcast,No id,,\np9,,No type,,\n")
    write(
        data, "interactions.csv", INTERACTIONS_HEADER + "u1,a1,stream,2024-01-01,\nu7,p1,stream,2024-01-01,\n"
    )
    write(data, "users.csv", "user_id,age,country\nu1,30,FR\nu1,40,DE\n,22,SE\nu2,,\n")
    out = tmp_path / "out"
    report = validate_dataset(data, Settings(), out_dir=out)
    q = quarantine(out).set_index(["table", "row"]).reason.to_dict()
    assert q == {
        ("items", 4): "duplicate_item_id",
        ("items", 5): "empty_id",
        ("items", 6): "empty_item_type",
        ("users", 2): "duplicate_user_id",
        ("users", 3): "empty_id",
    }
    items = pd.read_parquet(out / "items.parquet")
    assert items.set_index("item_id").item_type["a1"] == "audiobook"  # first occurrence kept
    users = pd.read_parquet(out / "users.parquet")
    # users table + a user only seen in interactions; first row of u1 kept
    assert list(users.user_id) == ["u1", "u2", "u7"]
    assert users.age.tolist()[0] == 30 and users.country.tolist()[0] == "FR"
    assert pd.isna(users.age.tolist()[2]) and pd.isna(users.country.tolist()[1])
    assert report.tables["users"].rows_in == 4 and report.tables["users"].accepted == 2


def test_parquet_parts_with_native_types(tmp_path):
    data = tmp_path / "in"
    (data / "interactions").mkdir(parents=True)
    pq.write_table(
        pa.table({"item_id": [1, 2], "item_type": ["audiobook", "podcast"], "title": ["A", "P"]}),
        data / "items.parquet",
    )
    ts = pd.to_datetime(["2024-01-01 00:00:00", "2024-01-02 00:00:00"])
    pd.DataFrame(
        {"user_id": [10, 11], "item_id": [1, 3], "event": ["stream"] * 2, "timestamp": ts}
    ).to_parquet(data / "interactions" / "part-0.parquet")
    pd.DataFrame(
        {
            "user_id": ["12"],
            "item_id": ["2"],
            "event": ["follow"],
            "timestamp": [1704067200],
            "duration_s": [3],
        }
    ).to_parquet(data / "interactions" / "part-1.parquet")
    (data / "interactions" / "_SUCCESS").write_text("")
    (data / "interactions" / ".part-2.parquet.crc").write_text("junk")
    users = pa.table(
        {"user_id": ["10", "12"], "country": ["SE", None], "taste_vector": [[0.5, 1.0], [0.0, -1.0]]}
    )
    pq.write_table(users, data / "users.parquet")
    out = tmp_path / "out"
    report = validate_dataset(data, Settings(), out_dir=out)
    inter = pd.read_parquet(out / "interactions.parquet")
    assert inter.user_id.tolist() == ["10", "12"] and inter.timestamp.tolist() == [1704067200, 1704067200]
    q = quarantine(out)
    assert q.source_file.tolist() == ["interactions/part-0.parquet"] and q.row.tolist() == [2]
    assert q.reason.tolist() == ["unknown_item"]
    assert report.tables["interactions"].files == [
        "interactions/part-0.parquet",
        "interactions/part-1.parquet",
    ]
    u = pq.read_table(out / "users.parquet")
    assert u.schema.field("taste_vector").type == pa.list_(pa.float32())
    assert u.column("taste_vector").to_pylist()[0] == [0.5, 1.0] and report.taste_vector_dim == 2


def test_csv_taste_vectors_and_typed_columns(tmp_path):
    data = tmp_path / "in"
    write(data, "items.csv", ITEMS_CSV)
    write(data, "interactions.csv", INTERACTIONS_HEADER + "u1,a1,stream,2024-01-01,\n")
    write(data, "users.csv", 'user_id,age,country,taste_vector\nu1,31.0,FR,"[0.25, 0.5]"\nu2,,,\n')
    out = tmp_path / "out"
    validate_dataset(data, Settings(), out_dir=out)
    u = pq.read_table(out / "users.parquet").to_pylist()
    assert u[0] == {"user_id": "u1", "age": 31, "country": "FR", "taste_vector": [0.25, 0.5]}
    assert u[1] == {"user_id": "u2", "age": None, "country": None, "taste_vector": None}


def _parquet(path: Path, **columns) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


GOOD_INTERACTIONS = INTERACTIONS_HEADER + "u1,a1,stream,2024-01-01,\n"


@pytest.mark.parametrize(
    "files, fragments",
    [
        ({"interactions.csv": "user_id,item_id,event\nu1,a1,stream\n"}, ["interactions.csv", "'timestamp'"]),
        (
            {
                "interactions.csv": INTERACTIONS_HEADER
                + "u1,a1,stream,2024-01-01,1\nu2,a1,stream,2024-01-01,abc\n"
            },
            ["interactions.csv", "'duration_s'", "row 2", "'abc'"],
        ),
        (
            {"interactions.csv": INTERACTIONS_HEADER + "u1,a1,stream,2024-01-01,1\nu2,a1,stream,2024,1,9\n"},
            ["interactions.csv", "Line: 3"],
        ),
        ({"interactions.csv": ""}, ["interactions.csv", "empty file"]),
        ({"interactions.csv": b"user_id,item_id,event,timestamp\nu1,\xff\xfe,stream,1\n"}, ["not utf-8"]),
        (
            {"interactions.csv": None, "interactions.parquet": b"not a parquet file at all"},
            ["interactions.parquet", "unreadable Parquet"],
        ),
        (
            {"users.csv": "user_id,age,country\nu1,30,FR\nu2,31.5,FR\n"},
            ["users.csv", "'age'", "row 2", "'31.5'"],
        ),
        ({"users.csv": "age,country\n30,FR\n"}, ["users.csv", "'user_id'"]),
        (
            {"users.csv": 'user_id,country,taste_vector\nu1,FR,"[1, 2]"\nu2,FR,"[1, 2, 3]"\n'},
            ["users.csv", "'taste_vector'", "row 2", "3 values"],
        ),
        ({"users.csv": 'user_id,country,taste_vector\nu1,FR,"[1, x]"\n'}, ["'taste_vector'", "row 1"]),
        ({"items.csv": "item_id,title\na1,T\n"}, ["items.csv", "'item_type'"]),
        ({"items.csv": None}, ["table 'items' not found"]),
        (
            {"interactions.parquet": GOOD_INTERACTIONS},
            ["ambiguous", "interactions.parquet, interactions.csv"],
        ),
        ({"interactions/": None}, ["ambiguous"]),
        ({"items.csv": None, "items/": None}, ["items", "no .parquet or .csv parts"]),
    ],
)
def test_file_level_errors_name_file_column_and_row(tmp_path, files, fragments):
    data = tmp_path / "in"
    base = {"items.csv": ITEMS_CSV, "interactions.csv": GOOD_INTERACTIONS}
    base.update(files)
    data.mkdir()
    for name, content in base.items():
        if name.endswith("/"):
            (data / name).mkdir()
        elif isinstance(content, bytes):
            (data / name).write_bytes(content)
        elif content is not None:
            (data / name).write_text(content, encoding="utf-8")
    with pytest.raises(DataContractError) as e:
        validate_dataset(data, Settings(), out_dir=tmp_path / "out")
    for fragment in fragments:
        assert fragment in str(e.value)
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


@pytest.mark.parametrize(
    "column, values, fragments",
    [
        ("duration_s", ["1.5", "x"], ["'duration_s'", "row 2", "'x'"]),
        ("duration_s", [None, True], ["'duration_s'", "BOOLEAN", "row 2"]),
        ("item_id", [1.5, 2.5], ["'item_id'", "DOUBLE", "row 1", "'1.5'"]),
        ("event", [["a"], ["b"]], ["'event'", "row 1"]),
    ],
)
def test_parquet_wrong_types_name_file_column_and_row(tmp_path, column, values, fragments):
    data = tmp_path / "in"
    write(data, "items.csv", ITEMS_CSV)
    cols = {
        "user_id": ["u1", "u2"],
        "item_id": ["a1", "a1"],
        "event": ["stream", "stream"],
        "timestamp": [1, 2],
    }
    cols[column] = values
    _parquet(data / "interactions.parquet", **cols)
    with pytest.raises(DataContractError) as e:
        validate_dataset(data, Settings())
    assert "interactions.parquet" in str(e.value)
    for fragment in fragments:
        assert fragment in str(e.value)


def test_all_null_optional_parquet_column_is_accepted(tmp_path):
    data = tmp_path / "in"
    write(data, "items.csv", ITEMS_CSV)
    _parquet(
        data / "interactions.parquet",
        user_id=["u1"],
        item_id=["a1"],
        event=["stream"],
        timestamp=[1704067200],
        duration_s=pa.array([None], pa.null()),
    )
    report = validate_dataset(data, Settings())
    assert report.tables["interactions"].accepted == 1


def test_failed_validation_keeps_previous_artifacts(tmp_path):
    data = tmp_path / "in"
    write(data, "items.csv", ITEMS_CSV)
    write(data, "interactions.csv", GOOD_INTERACTIONS)
    out = tmp_path / "out"
    validate_dataset(data, Settings(), out_dir=out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    write(data, "interactions.csv", "user_id,item_id\nu1,a1\n")
    with pytest.raises(DataContractError):
        validate_dataset(data, Settings(), out_dir=out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_without_out_dir_only_the_requested_quarantine_is_written(tmp_path):
    data = tmp_path / "in"
    write(data, "items.csv", ITEMS_CSV)
    write(data, "interactions.csv", GOOD_INTERACTIONS + "u2,zz,stream,2024-01-01,\n")
    before = set(os.listdir(data))
    target = tmp_path / "q" / "rejected.parquet"
    report = validate_dataset(data, Settings(), quarantine_path=target)
    assert set(os.listdir(data)) == before
    assert report.quarantine_path == str(target)
    assert pd.read_parquet(target).reason.tolist() == ["unknown_item"]


def test_fingerprint_follows_the_content(tmp_path):
    data = tmp_path / "in"
    write(data, "items.csv", ITEMS_CSV)
    write(data, "interactions.csv", GOOD_INTERACTIONS)
    a = validate_dataset(data, Settings()).fingerprint
    assert validate_dataset(data, Settings()).fingerprint == a
    write(data, "interactions.csv", GOOD_INTERACTIONS.replace("u1", "u2"))
    assert validate_dataset(data, Settings()).fingerprint != a


def test_configured_events_and_target_type_warning(tmp_path):
    data = tmp_path / "in"
    write(data, "items.csv", ITEMS_CSV)
    write(data, "interactions.csv", GOOD_INTERACTIONS + "u1,a2,LIKE,2024-01-02,\n")
    s = Settings.model_validate({"data": {"weak_events": ["like"], "target_type": "ebook"}})
    out = tmp_path / "out"
    report = validate_dataset(data, s, out_dir=out)
    assert pd.read_parquet(out / "interactions.parquet").event.tolist() == ["stream", "like"]
    assert any("'ebook'" in w for w in report.warnings)


def test_crlf_bom_and_extra_columns_are_read(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    (data / "items.csv").write_bytes(b"item_id,item_type,title\r\na1,audiobook,T\r\n")
    (data / "interactions.csv").write_bytes(
        b"\xef\xbb\xbfuser_id,item_id,event,timestamp,_row,extra\r\n"
        b"u1,a1,stream,2024-01-01,7,x\r\nu1,zz,stream,2024-01-01,8,y\r\n"
    )
    out = tmp_path / "out"
    report = validate_dataset(data, Settings(), out_dir=out)
    assert report.tables["interactions"].accepted == 1
    q = quarantine(out)
    assert q.row.tolist() == [2] and json.loads(q.raw[0])["item_id"] == "zz"


def test_users_without_demographic_columns_are_accepted(tmp_path):
    """Missing demographics are allowed: a users table with only user_id validates."""
    data = tmp_path / "in"
    write(data, "items.csv", ITEMS_CSV)
    write(data, "interactions.csv", INTERACTIONS_HEADER + "u1,a1,stream,1704103200,\n")
    write(data, "users.csv", "user_id\nu1\nu9\n")
    out = tmp_path / "run" / "data"
    report = validate_dataset(data, Settings(), out_dir=out)
    users = pd.read_parquet(out / "users.parquet")
    assert list(users.user_id) == ["u1", "u9"]
    assert users.country.isna().all() and users.age.isna().all()
    assert report.tables["users"].accepted == 2
