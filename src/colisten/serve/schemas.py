"""Request and response bodies of the HTTP API (they also document it in /docs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HistoryEvent(_Body):
    """One interaction of a posted history."""

    item_id: str = Field(
        ..., min_length=1, description="An item id of the catalogue (unknown ids are ignored)."
    )
    event: str = Field(
        "stream", description="stream (default) or a weak signal: follow, preview, intent_to_pay."
    )
    timestamp: int | float | str | None = Field(
        None,
        description="Epoch seconds or ISO-8601. Only orders explanations (most recent first); "
        "without it the list order is taken as time order.",
    )


class AdHocUser(_Body):
    """A user given by their history: new users and cold-start users (empty history) work."""

    user_id: str | None = Field(None, description="Echoed back; not looked up.")
    history: list[HistoryEvent] = Field(default_factory=list, description="Recent interactions (any order).")
    age: int | None = Field(None, ge=0, le=130)
    country: str | None = Field(None, description="Country code as in the training data, e.g. 'SE'.")
    taste_vector: list[float] | None = Field(
        None, description="The users table's taste vector, if the model uses one."
    )
    type: str | None = Field(None, description="Item type to recommend (default: the run's target type).")
    k: int = Field(10, ge=1, description="How many items (at most serve.max_k).")
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
