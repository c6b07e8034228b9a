"""Response bodies of the recommendation routes, encoded straight to JSON text.

A Recommendations body (schemas.Recommendations documents it) is built per request from a few
numbers per item; the items' own fields are the same every time, so the catalogue encodes them
once (`ItemCatalogue.json_members`) and a body is their concatenation with the ranks, scores and
reasons. The text is what starlette's JSONResponse would send for the same data, byte for byte
(tests/serve/test_serve_render.py checks it against json.dumps of the plain structure, and the
bodies against /openapi.json), without building that structure or validating it through pydantic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from colisten.serve.catalogue import _ENCODER, ItemCatalogue
from colisten.serve.explain import Reason, explanation_source

_dumps = _ENCODER.encode


def number(x: float) -> str:
    """A float as JSON text: its repr, as json.dumps writes it; not finite -> ValueError (as json)."""
    return repr(x) if math.isfinite(x) else _dumps(x)


def explanation_json(
    catalogue: ItemCatalogue, reasons: list[Reason], fmt: Callable[[float], str] = number
) -> str:
    """One item's `explanation` (schemas.Explanation) as JSON text; `fmt` writes the strengths
    (`repr` when the caller checked they are finite)."""
    members = catalogue.json_members
    because = ",".join(
        [f'{{{members(g)[1]},"via":"{via}","strength":{fmt(strength)}}}' for g, via, strength in reasons]
    )
    return f'{{"source":"{explanation_source(reasons)}","because":[{because}]}}'


def recommendations_json(
    catalogue: ItemCatalogue,
    *,
    user_id: str | None,
    item_type: str,
    k: int,
    model_version: str,
    retrieval: str,
    history_events: int,
    items: Sequence[int],
    scores: Sequence[float],
    reasons: list[list[Reason]] | None,
    ignored_item_ids: Sequence[str] = (),
    ignored_events: Sequence[str] = (),
) -> bytes:
    """The Recommendations body (UTF-8 JSON) of items (global indices) ranked 1.. with their scores
    and, when `reasons` is given, one explanation each (else `"explanation":null`)."""
    # a sum is finite only if every term is: then each number is its repr (json.dumps' text), and
    # the per-number check (which raises as json.dumps does) is left to the rare other case
    total = sum(scores) + (0.0 if reasons is None else sum([r.strength for rs in reasons for r in rs]))
    fmt = repr if math.isfinite(total) else number
    members = catalogue.json_members
    out = []
    for rank, (g, score) in enumerate(zip(items, scores, strict=True), start=1):
        explanation = "null" if reasons is None else explanation_json(catalogue, reasons[rank - 1], fmt)
        out.append(f'{{{members(g)[0]},"rank":{rank},"score":{fmt(score)},"explanation":{explanation}}}')
    return (
        f'{{"user_id":{_dumps(user_id)},"item_type":{_dumps(item_type)},"k":{int(k)},'
        f'"model_version":{_dumps(model_version)},"retrieval":{_dumps(retrieval)},'
        f'"history_events":{int(history_events)},"items":[{",".join(out)}],'
        f'"ignored_item_ids":{_dumps(list(ignored_item_ids))},"ignored_events":{_dumps(list(ignored_events))}}}'
    ).encode()
