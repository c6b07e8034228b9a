"""Request and response bodies of the HTTP API (they also document it in /docs)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

# For a JSON Schema integer, after its constraints: 3 and 3.0 are one number in JSON, while true, "3"
# and 3.5 are no integers. The bodies are strict (no coercion), so an integral float is made an int
# first. (Placed after the Field constraints, which then still show as minimum/maximum.)
Integral = BeforeValidator(lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)

# Epoch seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range an RFC 3339 date-time
# spans, and what int64 epoch seconds hold without overflow.
EPOCH_MIN, EPOCH_MAX = -62_135_596_800, 253_402_300_799
EpochSeconds = Annotated[int, Field(ge=EPOCH_MIN, le=EPOCH_MAX)]
EpochSecondsFloat = Annotated[float, Field(ge=EPOCH_MIN, le=EPOCH_MAX, allow_inf_nan=False)]
# Parsed (and refused when it is not RFC 3339) by HistoryEvent, whatever the item.
DateTimeString = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
# A float32 (what the user tower computes in): finite and within its range, so that a JSON number
# like 1e300 is refused (422) instead of becoming inf inside the model.
_F32_MAX = 3.4028234663852886e38
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, ge=-_F32_MAX, le=_F32_MAX)]

# RFC 3339 date-time (the schema's `format: date-time`): date, T, time, optional fraction, Z or offset.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def parse_rfc3339(value: str) -> int | None:
    """Epoch seconds of an RFC 3339 date-time, or None when `value` is not one."""
    m = _RFC3339.fullmatch(value)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    sign, off_h, off_m = m.group(8), m.group(9), m.group(10)
    if sign is not None and (int(off_h) > 23 or int(off_m) > 59):
        return None
    offset = 0 if sign is None else (1 if sign == "+" else -1) * (int(off_h) * 3600 + int(off_m) * 60)
    leap = second == 60  # RFC 3339 allows a leap second; it counts as the second before
    try:
        local = dt.datetime(year, month, day, hour, minute, 59 if leap else second, tzinfo=dt.UTC)
    except ValueError:
        return None
    return int((local - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds()) - offset


class _Body(BaseModel):
    """A JSON request body, validated as its schema reads: no unknown fields, and no coercion (0 is
    not a boolean, "10" not an integer), so that the server accepts exactly what /openapi.json does."""

    model_config = ConfigDict(extra="forbid", strict=True)


# --- errors ----------------------------------------------------------------------------------------
class Error(BaseModel):
    """The body of every error answer (4xx, 500)."""

    detail: str = Field(..., description="What went wrong, readable; a 500 never names internals.")


class FieldError(BaseModel):
    loc: list[str] = Field(..., description="Where: 'body', 'query' or 'path', then the field path.")
    msg: str
    type: str = Field(..., description="pydantic's error type, e.g. missing, less_than_equal, value_error.")


class InvalidRequest(Error):
    """422: the request is not one this server accepts; `errors` lists each problem (may be empty
    when the request is well-formed but refused, e.g. a reload of a run that cannot be served)."""

    errors: list[FieldError] = Field(default_factory=list)


class HistoryEvent(_Body):
    """One interaction of a posted history."""

    item_id: str = Field(
        ..., min_length=1, description="An item id of the catalogue (unknown ids are ignored)."
    )
    event: str = Field(
        "stream", description="stream (default) or a weak signal: follow, preview, intent_to_pay."
    )
    timestamp: EpochSeconds | EpochSecondsFloat | DateTimeString | None = Field(
        None,
        description="Epoch seconds (a number, years 1-9999) or an RFC 3339 date-time with its offset "
        "or Z (e.g. 2024-05-01T12:00:00Z). Only orders explanations (most recent first); without it "
        "the list order is taken as time order.",
    )

    @field_validator("timestamp")
    @classmethod
    def _epoch_seconds(cls, value: int | float | str | None) -> int | float | None:
        """A date-time string becomes its epoch seconds; one that is not RFC 3339 is refused (422),
        also for an item the catalogue does not have."""
        if not isinstance(value, str):
            return value
        seconds = parse_rfc3339(value)
        if seconds is None:
            raise ValueError(f"not epoch seconds or ISO-8601 (RFC 3339 with Z or an offset): {value!r}")
        return seconds


class AdHocUser(_Body):
    """A user given by their history: new users and cold-start users (empty history) work."""

    user_id: str | None = Field(None, description="Echoed back; not looked up.")
    history: list[HistoryEvent] = Field(default_factory=list, description="Recent interactions (any order).")
    age: Annotated[int, Field(ge=0, le=130), Integral] | None = None
    country: str | None = Field(None, description="Country code as in the training data, e.g. 'SE'.")
    taste_vector: list[FiniteFloat] | None = Field(
        None, description="The users table's taste vector, if the model uses one."
    )
    type: str | None = Field(None, description="Item type to recommend (default: the run's target type).")
    k: Annotated[int, Field(ge=1), Integral] = Field(10, description="How many items (at most serve.max_k).")
    explain: bool = Field(True, description="Add 'because you listened to' reasons.")
    exclude_consumed: bool = Field(True, description="Leave out items the history already consumed.")


class Because(BaseModel):
    item_id: str
    title: str | None
    item_type: str
    via: Literal["co_listening", "embedding_similarity"] = Field(
        ...,
        description="co_listening: a direct co-listening graph neighbour; else HGNN embedding similarity.",
    )
    strength: float = Field(..., description="Co-count of the graph edge, or the embeddings' cosine.")


class Explanation(BaseModel):
    source: Literal["co_listening_graph", "embedding_similarity", "none"] = Field(
        ..., description="co_listening_graph if any reason is a graph neighbour; none for an empty history."
    )
    because: list[Because]


class RecommendedItem(BaseModel):
    rank: int
    item_id: str
    title: str | None
    item_type: str
    genre: str | None
    score: float = Field(..., description="Dot product of the user and item tower vectors.")
    explanation: Explanation | None = None


class Recommendations(BaseModel):
    user_id: str | None
    item_type: str
    k: int
    model_version: str
    retrieval: Literal["exact", "ann"]
    history_events: int = Field(..., description="Events of the history the user vector was computed from.")
    items: list[RecommendedItem]
    ignored_item_ids: list[str] = Field(
        default_factory=list, description="Posted item ids not in the catalogue."
    )
    ignored_events: list[str] = Field(
        default_factory=list,
        description="Posted event names the model does not use (their items still explain).",
    )


class Item(BaseModel):
    item_id: str
    title: str | None
    item_type: str
    genre: str | None


class SimilarItem(Item):
    rank: int
    score: float = Field(..., description="Cosine of the HGNN embeddings.")


class SimilarItems(BaseModel):
    item: Item
    item_type: str
    k: int
    model_version: str
    items: list[SimilarItem]


class HistoryEntry(Item):
    event: str
    timestamp: int


class HistoryGroup(BaseModel):
    total: int = Field(..., description="Events of this type in the stored history.")
    events: list[HistoryEntry] = Field(..., description="Most recent first, at most `limit`.")


class User(BaseModel):
    user_id: str
    age: int | None
    country: str | None
    history: dict[str, HistoryGroup] = Field(..., description="Stored history grouped by item type.")


class UserSearch(BaseModel):
    users: list[str]
    total: int


class Meta(BaseModel):
    model_version: str
    run: str
    trained_at: str | None
    item_types: list[str]
    target_type: str
    n_items: dict[str, int]
    n_users: int
    max_k: int


class RandomUser(BaseModel):
    user_id: str


class ReloadStatus(BaseModel):
    """What the last reload did."""

    state: Literal["idle", "loading", "swapped", "failed"]
    run: str | None
    started_at: float | None = Field(..., description="Epoch seconds.")
    finished_at: float | None
    previous_version: str | None
    version: str | None = Field(..., description="The model version serving after the reload.")
    error: str | None


class Health(BaseModel):
    status: Literal["ok"]
    model_version: str
    run: str
    reload: ReloadStatus
