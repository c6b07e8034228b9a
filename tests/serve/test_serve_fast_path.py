"""The recommendation routes' fast paths answer exactly what the plain ones would.

- bodies are encoded directly (serve.render): byte for byte what starlette's JSONResponse sends
  for the same data, and valid against /openapi.json;
- plainly valid GET queries skip FastAPI's parameter validation: same status and body as through
  FastAPI for every query, odd and invalid ones included;
- the module-free user tower (serve.tower) gives the modules' vectors bit for bit, and one that
  drifts is caught at load.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient

from colisten.serve import app as app_module
from colisten.serve.app import create_app
from colisten.serve.catalogue import ItemCatalogue
from colisten.serve.explain import Reason, explanation_source
from colisten.serve.render import recommendations_json


def _reference_body(catalogue, **fields) -> dict:
    """The Recommendations body as plain data, built field by field as schemas.Recommendations reads."""

    def item(g):
        return {
            "item_id": catalogue.item_ids[g],
            "title": catalogue.titles[g],
            "item_type": catalogue.item_types[g],
            "genre": catalogue.genres[g],
        }

    reasons = fields["reasons"]
    rows = []
    for rank, (g, score) in enumerate(zip(fields["items"], fields["scores"], strict=True), start=1):
        row = {**item(g), "rank": rank, "score": score, "explanation": None}
        if reasons is not None:
            because = []
            for r in reasons[rank - 1]:
                entry = item(r.item)
                del entry["genre"]
                because.append({**entry, "via": r.via, "strength": r.strength})
            row["explanation"] = {"source": explanation_source(reasons[rank - 1]), "because": because}
        rows.append(row)
    return {
        "user_id": fields["user_id"],
        "item_type": fields["item_type"],
        "k": fields["k"],
        "model_version": fields["model_version"],
        "retrieval": fields["retrieval"],
        "history_events": fields["history_events"],
        "items": rows,
        "ignored_item_ids": list(fields.get("ignored_item_ids", ())),
        "ignored_events": list(fields.get("ignored_events", ())),
    }


def _as_jsonresponse_sends(data) -> bytes:
    return json.dumps(data, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


def test_rendered_bodies_equal_what_jsonresponse_sends():
    catalogue = ItemCatalogue.from_columns(
        ["a0", "a1", 'a2"', "p0"],
        ["audiobook"] * 3 + ["podcast"],
        ["Plain", 'Quote " and \\ backslash', "Ünïcödé — ✓ \n tab\t", None],
        ["FIC000000", None, "BIO000000", "HIS000000"],
    )
    reasons = [
        [Reason(3, "co_listening", 5.0), Reason(1, "embedding_similarity", 0.123456789)],
        [],
        [Reason(0, "embedding_similarity", -0.5)],
    ]
    common = {
        "item_type": "audiobook",
        "k": 3,
        "model_version": "run-0123abcd",
        "retrieval": "exact",
        "history_events": 7,
        "items": [2, 0, 1],
        "scores": [0.7903568148612976, 1e-08, -3.0],
    }
    for fields in (
        {**common, "user_id": "u1", "reasons": reasons},
        {**common, "user_id": None, "reasons": None},
        {
            **common,
            "user_id": 'nëw "user"',
            "reasons": reasons,
            "ignored_item_ids": ["x", 'y"'],
            "ignored_events": ["wink"],
        },
        {**common, "user_id": "u", "items": [], "scores": [], "reasons": []},
    ):
        assert recommendations_json(catalogue, **fields) == _as_jsonresponse_sends(
            _reference_body(catalogue, **fields)
        )
    with pytest.raises(ValueError):  # a non-finite score is an error, as with json.dumps(allow_nan=False)
        recommendations_json(
            catalogue, **{**common, "user_id": "u", "scores": [float("nan"), 0.0, 0.0], "reasons": None}
        )


def test_served_bodies_equal_jsonresponse_of_the_same_answer(client_and_bundle):
    client, bundle = client_and_bundle
    for user_id in bundle.users.user_ids[::17]:
        for params in ({"type": "audiobook", "k": 7}, {"type": "podcast", "explain": "false"}):
            r = client.get(f"/v1/users/{user_id}/recommendations", params=params)
            assert r.status_code == 200 and r.headers["content-type"] == "application/json"
            q = bundle.known_user_query(bundle.users.index[user_id])
            k = params.get("k", 10)
            rec = bundle.recommend(q, params["type"], k, with_reasons="explain" not in params)
            expected = _reference_body(
                bundle.catalogue,
                user_id=user_id,
                item_type=params["type"],
                k=k,
                model_version=bundle.version,
                retrieval=rec.retrieval,
                history_events=int(q.items.size),
                items=rec.items.tolist(),
                scores=rec.scores.tolist(),
                reasons=rec.reasons,
            )
            assert r.content == _as_jsonresponse_sends(expected)


@pytest.fixture(scope="module")
def client_and_bundle(toy_run, toy_bundle):
    return TestClient(create_app(toy_run, bundle=toy_bundle), raise_server_exceptions=False), toy_bundle


def test_recommendation_bodies_are_valid_against_the_openapi_document(toy_run, toy_bundle):
    app = create_app(toy_run, bundle=toy_bundle)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    get = schema["/v1/users/{user_id}/recommendations"]["GET"]
    post = schema["/v1/recommendations"]["POST"]
    client = TestClient(app)
    for user_id in toy_bundle.users.user_ids[::23]:
        for params in ({}, {"type": "podcast", "k": 3}, {"explain": "false", "exclude_consumed": "false"}):
            r = client.get(f"/v1/users/{user_id}/recommendations", params=params)
            assert r.status_code == 200
            get.validate_response(r)
    items = toy_bundle.catalogue.item_ids
    for body in (
        {},
        {
            "history": [
                {"item_id": str(items[0])},
                {"item_id": "nope"},
                {"item_id": str(items[1]), "event": "wink"},
            ]
        },
        {"history": [{"item_id": str(items[2])}], "explain": False, "type": "podcast", "k": 4},
    ):
        r = client.post("/v1/recommendations", json=body)
        assert r.status_code == 200
        post.validate_response(r)


def test_the_fast_path_answers_every_query_as_fastapi_does(toy_run, toy_bundle, monkeypatch):
    fast = TestClient(create_app(toy_run, bundle=toy_bundle), raise_server_exceptions=False)
    monkeypatch.setattr(app_module, "_add_fast_path", lambda *a, **kw: None)
    plain = TestClient(create_app(toy_run, bundle=toy_bundle), raise_server_exceptions=False)
    known = [str(u) for u in toy_bundle.users.user_ids[:60:20]]
    queries = [
        "",
        "type=audiobook&k=10",
        "k=3&type=podcast&explain=false&exclude_consumed=false",
        "explain=true&exclude_consumed=true",
        "k=1000",  # above the catalogue: the whole type
        "k=1001",
        "k=0",
        "k=07",
        "k=%37",
        "k=+7",
        "k=ten",
        "k=",
        "k",
        "k=3&k=4",
        "type=movie",
        "type=",
        "type=audiobook&type=podcast",
        "explain=0",
        "explain=yes",
        "explain=FALSE",
        "exclude_consumed=off",
        "colour=red",
        "k=3&",
        "&k=3",
    ]
    for user_id in [*known, "nobody", "a/b"]:
        for query in queries:
            url = f"/v1/users/{user_id}/recommendations?{query}"
            a, b = fast.get(url), plain.get(url)
            assert (a.status_code, a.headers.get("content-type"), a.content) == (
                b.status_code,
                b.headers.get("content-type"),
                b.content,
            ), url
    assert fast.post(f"/v1/users/{known[0]}/recommendations").status_code == 405


def test_plain_queries_are_recognised_and_others_left_to_fastapi():
    served = {b"audiobook": "audiobook", b"podcast": "podcast"}
    plain = app_module._plain_query
    assert plain(b"", served, 1000) == {}
    assert plain(b"type=podcast&k=25&explain=false", served, 1000) == {
        "type": "podcast",
        "k": 25,
        "explain": False,
    }
    for odd in (b"k=1001", b"k=0", b"k=01", b"k=%31", b"type=movie", b"explain=1", b"k=2&k=2", b"x=1", b"k"):
        assert plain(odd, served, 1000) is None, odd


def test_the_module_free_tower_equals_the_modules_bit_for_bit(toy_bundle):
    assert toy_bundle.tower is not None  # the toy model is a plain two-tower model
    rt = toy_bundle.realtime
    for u in range(0, len(toy_bundle.users), 7):
        q = toy_bundle.known_user_query(u)
        f = rt.compute(q.items, q.kinds, toy_bundle.user_categorical[u], toy_bundle.user_taste[u])
        fast, modules = toy_bundle.tower(f), toy_bundle.module_user_vector(f)
        assert fast.dtype == modules.dtype and np.array_equal(fast, modules)


def test_a_recency_model_serves_through_the_fast_paths_as_the_batch_path_scores(recency_toy_run):
    """twotower.recency_half_life: the real-time features carry the recency weights, the module-free
    tower pools them bit for bit, and a known user's vector equals `colisten recommend`'s."""
    from colisten.serve.state import load_bundle

    bundle = load_bundle(recency_toy_run)
    assert bundle.realtime is not None and bundle.tower is not None  # both passed their checks
    model = bundle.recommender.model
    assert all(m.history_recency for m in getattr(model, "members", [model]))
    for u in range(0, len(bundle.users), 11):
        q = bundle.known_user_query(u)
        f = bundle.realtime.compute(
            q.items, q.kinds, bundle.user_categorical[u], bundle.user_taste[u], q.timestamps
        )
        assert len(f.history) == 3
        fast, modules = bundle.tower(f), bundle.module_user_vector(f)
        assert np.array_equal(fast, modules)
        batch = bundle.recommender.user_vectors([bundle.users.user_ids[u]])[0]
        np.testing.assert_allclose(bundle.user_vector(q), batch, rtol=0, atol=1e-6)  # one row vs a block


def test_a_tower_that_drifts_is_caught_at_load_and_the_modules_serve(toy_run, toy_bundle, monkeypatch):
    from colisten.serve import tower
    from colisten.serve.state import load_bundle

    expected = [toy_bundle.recommend(toy_bundle.known_user_query(u), "audiobook", 10) for u in (3, 17)]
    original = tower.OneUserTower.unit  # a single model's tower and each ensemble member's

    def drifted(self, features):
        v = original(self, features).clone()
        v[0, 0] = float(np.nextafter(np.float32(v[0, 0]), np.float32(np.inf)))
        return v

    monkeypatch.setattr(tower.OneUserTower, "unit", drifted)
    bundle = load_bundle(toy_run)
    assert bundle.tower is None and bundle.realtime is not None
    for u, b in zip((3, 17), expected, strict=True):
        a = bundle.recommend(bundle.known_user_query(u), "audiobook", 10)
        assert a.items.tolist() == b.items.tolist() and a.scores.tolist() == b.scores.tolist()
        assert a.reasons == b.reasons


def test_known_users_vectors_come_from_the_batch_path_at_load_unless_over_the_limit(toy_run, toy_bundle):
    """[serve] known_user_vectors: at load every known user's vector is `colisten recommend`'s batch
    path's, looked up per request; past the limit (or 0) each request runs the tower instead."""
    from colisten.rundir import RunDir
    from colisten.serve.state import load_bundle

    users = toy_bundle.users
    batch = toy_bundle.recommender.user_vectors(users.user_ids)
    assert toy_bundle.known_vectors is not None and toy_bundle.known_vectors.shape == batch.shape
    for u in range(0, len(users), 9):
        assert np.array_equal(toy_bundle.user_vector(toy_bundle.known_user_query(u)), batch[u])
    settings = RunDir(toy_run).settings()
    settings.serve.known_user_vectors = len(users) - 1
    per_request = load_bundle(toy_run, settings)
    assert per_request.known_vectors is None and per_request.tower is not None
    for u in range(0, len(users), 9):
        q = per_request.known_user_query(u)
        f = per_request.realtime.compute(
            q.items, q.kinds, per_request.user_categorical[u], per_request.user_taste[u], q.timestamps
        )
        assert np.array_equal(per_request.user_vector(q), per_request.tower(f))
        np.testing.assert_allclose(per_request.user_vector(q), batch[u], rtol=0, atol=1e-6)
