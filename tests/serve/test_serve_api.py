"""The HTTP API: recommendations for known and posted users, validation, similar items, metrics."""

from __future__ import annotations

import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

from colisten.config import Settings
from colisten.rundir import RunDir
from colisten.serve.app import create_app


@pytest.fixture(scope="module")
def client(toy_run, toy_bundle):
    return TestClient(create_app(toy_run, bundle=toy_bundle), raise_server_exceptions=False)


def _history(bundle, user_id):
    q = bundle.known_user_query(bundle.users.index[user_id])
    return q, {str(bundle.catalogue.item_ids[i]) for i in q.items}


def test_known_user_gets_k_items_of_the_type_without_consumed_ones(client, toy_bundle):
    users_with_streams = [
        u
        for u in toy_bundle.users.user_ids[:40]
        if toy_bundle.known_user_query(toy_bundle.users.index[u]).consumed.any()
    ]
    assert users_with_streams
    for user_id in users_with_streams[:10]:
        for item_type in ("audiobook", "podcast"):
            r = client.get(f"/v1/users/{user_id}/recommendations", params={"type": item_type, "k": 7})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["model_version"] == toy_bundle.version and body["item_type"] == item_type
            assert len(body["items"]) == 7
            assert [it["rank"] for it in body["items"]] == list(range(1, 8))
            assert all(it["item_type"] == item_type for it in body["items"])
            scores = [it["score"] for it in body["items"]]
            assert scores == sorted(scores, reverse=True)
            q, _ = _history(toy_bundle, user_id)
            streamed = {str(toy_bundle.catalogue.item_ids[i]) for i in q.items[q.consumed]}
            assert not streamed & {it["item_id"] for it in body["items"]}


def test_results_equal_colisten_recommend_batch_path(toy_run, toy_bundle, client):
    """Issue item 5: the API answers exactly what `colisten recommend` prints, for both types."""
    from typer.testing import CliRunner

    from colisten.cli import app as cli

    rec = toy_bundle.recommender
    users = list(toy_bundle.users.user_ids[::12])
    for item_type in ("audiobook", "podcast"):
        ids, scores = rec.recommend(users, item_type, 10)
        for row, user_id in enumerate(users):
            body = client.get(f"/v1/users/{user_id}/recommendations", params={"type": item_type}).json()
            assert [it["item_id"] for it in body["items"]] == list(ids[row])
            np.testing.assert_allclose([it["score"] for it in body["items"]], scores[row], rtol=0, atol=1e-6)
    # and the CLI itself, as a user would run it
    user_id = users[1]
    out = CliRunner().invoke(
        cli, ["recommend", "--run", str(toy_run), "--user", user_id, "--k", "5"], env={"COLUMNS": "200"}
    )
    assert out.exit_code == 0, out.output
    printed = re.findall(r"\b(a\d{5})\b", out.output)
    body = client.get(f"/v1/users/{user_id}/recommendations", params={"k": 5}).json()
    assert printed == [it["item_id"] for it in body["items"]]


def test_ann_index_path_matches_batch_path(toy_run):
    """With the catalogue above retrieval.exact_below, both paths use the run's Voyager index."""
    from colisten.serve.state import load_bundle
    from colisten.twotower.recommender import TwoTowerRecommender

    settings = RunDir(toy_run).settings()
    settings.retrieval.exact_below = 1
    bundle = load_bundle(toy_run, settings)
    client = TestClient(create_app(toy_run, settings, bundle=bundle))
    rec = TwoTowerRecommender.load(toy_run, settings)
    users = list(bundle.users.user_ids[:30:3])
    ids, _ = rec.recommend(users, "podcast", 10)
    for row, user_id in enumerate(users):
        body = client.get(f"/v1/users/{user_id}/recommendations", params={"type": "podcast"}).json()
        assert body["retrieval"] == "ann"
        assert [it["item_id"] for it in body["items"]] == list(ids[row])


def test_posted_history_equals_stored_history(client, toy_bundle):
    """The real-time path (POST) and the stored-history path (GET) give one user the same answer."""
    for user_id in toy_bundle.users.user_ids[5:45:8]:
        u = toy_bundle.users.index[user_id]
        q = toy_bundle.known_user_query(u)
        taste = toy_bundle.user_taste[u]
        body = {
            "history": [
                {"item_id": str(toy_bundle.catalogue.item_ids[i]), "event": str(e), "timestamp": int(t)}
                for i, e, t in zip(q.items, q.events, q.timestamps, strict=True)
            ],
            "age": q.age,
            "country": q.country,
            "taste_vector": taste[:-1].tolist() if taste[-1] else None,
            "k": 10,
        }
        posted = client.post("/v1/recommendations", json=body).json()
        stored = client.get(f"/v1/users/{user_id}/recommendations").json()
        assert [it["item_id"] for it in posted["items"]] == [it["item_id"] for it in stored["items"]]
        # GET looks up the vector `colisten recommend`'s batch path computed at load; POST runs
        # the one-row tower: the same numbers up to float rounding (a block vs one row)
        scores = [[it["score"] for it in body["items"]] for body in (posted, stored)]
        np.testing.assert_allclose(*scores, rtol=0, atol=1e-6)
        assert posted["ignored_item_ids"] == []


def test_cold_start_and_new_users_get_recommendations(client):
    cold = client.post("/v1/recommendations", json={"k": 5, "age": 31, "country": "SE"})
    assert cold.status_code == 200
    assert len(cold.json()["items"]) == 5
    assert all(it["explanation"]["source"] == "none" for it in cold.json()["items"])
    new = client.post(
        "/v1/recommendations",
        json={
            "user_id": "brand-new",
            "history": [{"item_id": "p00001"}, {"item_id": "p00002", "event": "follow"}],
        },
    )
    assert new.status_code == 200 and new.json()["user_id"] == "brand-new"
    assert new.json()["history_events"] == 2


def test_unknown_items_in_a_posted_history_are_ignored_and_listed(client):
    base = {"history": [{"item_id": "p00001"}, {"item_id": "a00003", "event": "preview"}], "type": "podcast"}
    noisy = {
        **base,
        "history": [*base["history"], {"item_id": "no-such-item"}, {"item_id": "p00007", "event": "wink"}],
    }
    a = client.post("/v1/recommendations", json=base).json()
    b = client.post("/v1/recommendations", json=noisy).json()
    assert b["ignored_item_ids"] == ["no-such-item"]
    assert b["ignored_events"] == ["wink"]
    # neither the unknown item nor the unknown event changes the user vector
    assert [it["score"] for it in a["items"]] == [it["score"] for it in b["items"]]


def test_explanations_come_from_the_users_history(client, toy_bundle):
    user_id = str(toy_bundle.users.user_ids[7])
    _, history_ids = _history(toy_bundle, user_id)
    body = client.get(f"/v1/users/{user_id}/recommendations", params={"type": "podcast"}).json()
    assert any(it["explanation"]["because"] for it in body["items"])
    for it in body["items"]:
        ex = it["explanation"]
        assert 0 < len(ex["because"]) <= 3
        assert {b["item_id"] for b in ex["because"]} <= history_ids
        assert it["item_id"] not in {b["item_id"] for b in ex["because"]}
        vias = [b["via"] for b in ex["because"]]
        # direct graph neighbours come first, the embedding fallback only fills the rest
        assert vias == sorted(vias, key=lambda v: v != "co_listening")
        assert ex["source"] == ("co_listening_graph" if "co_listening" in vias else "embedding_similarity")
    no_explain = client.get(f"/v1/users/{user_id}/recommendations", params={"explain": "false"}).json()
    assert all(it["explanation"] is None for it in no_explain["items"])


@pytest.mark.parametrize(
    "method, url, body, status, fragment",
    [
        ("get", "/v1/users/nobody/recommendations", None, 404, "unknown user 'nobody'"),
        ("get", "/v1/users/u000001/recommendations?type=movie", None, 422, "unknown item type 'movie'"),
        ("get", "/v1/users/u000001/recommendations?k=0", None, 422, "k"),
        ("get", "/v1/users/u000001/recommendations?k=1001", None, 422, "less than or equal to 1000"),
        ("get", "/v1/users/u000001/recommendations?k=ten", None, 422, "k"),
        ("post", "/v1/recommendations", {"type": "movie"}, 422, "unknown item type 'movie'"),
        ("post", "/v1/recommendations", {"k": 5000}, 422, "at most 1000"),
        ("post", "/v1/recommendations", {"history": [{"event": "stream"}]}, 422, "item_id"),
        (
            "post",
            "/v1/recommendations",
            {"history": [{"item_id": "p00001", "timestamp": "yesterday"}]},
            422,
            "ISO",
        ),
        ("post", "/v1/recommendations", {"k": 3, "colour": "red"}, 422, "colour"),
        ("post", "/v1/recommendations", {"taste_vector": [1e300]}, 422, "taste_vector"),
        ("get", "/v1/items/nothing/similar", None, 404, "unknown item 'nothing'"),
        ("get", "/v1/items/a00001/similar?type=movie", None, 422, "unknown item type"),
    ],
)
def test_bad_requests_get_clear_4xx_answers(client, method, url, body, status, fragment):
    r = client.request(method.upper(), url, json=body)
    assert r.status_code == status, r.text
    assert fragment in r.json()["detail"]


def test_internal_errors_never_leak_a_stack_trace(toy_run, toy_bundle, monkeypatch):
    app = create_app(toy_run, bundle=toy_bundle)

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals at /srv/colisten")

    monkeypatch.setattr(type(toy_bundle), "recommend", boom)
    r = TestClient(app, raise_server_exceptions=False).get("/v1/users/u000001/recommendations")
    assert r.status_code == 500
    assert "Traceback" not in r.text and "secret" not in r.text
    assert r.json()["detail"].startswith("internal server error")


def test_k_above_the_catalogue_returns_the_whole_type(client, toy_bundle):
    n_audiobooks = toy_bundle.type_size("audiobook")
    body = client.post("/v1/recommendations", json={"k": 1000, "explain": False}).json()
    assert len(body["items"]) == n_audiobooks


def test_similar_items_by_hgnn_embedding(client, toy_bundle):
    body = client.get("/v1/items/a00002/similar", params={"k": 5}).json()
    assert body["item"]["item_id"] == "a00002" and body["item_type"] == "audiobook"
    ids = [it["item_id"] for it in body["items"]]
    assert len(ids) == 5 and "a00002" not in ids
    emb = toy_bundle.item_embeddings
    g = toy_bundle.catalogue.index["a00002"]
    lo, hi = toy_bundle.catalogue.type_ranges["audiobook"]
    cos = emb[lo:hi] @ emb[g]
    cos[g - lo] = -np.inf
    assert ids == [str(toy_bundle.catalogue.item_ids[lo + i]) for i in np.argsort(-cos, kind="stable")[:5]]
    cross = client.get("/v1/items/a00002/similar", params={"type": "podcast", "k": 3}).json()
    assert all(it["item_type"] == "podcast" for it in cross["items"])


def test_metrics_count_requests_by_route_and_show_the_model_version(toy_run, toy_bundle):
    c = TestClient(create_app(toy_run, bundle=toy_bundle))
    for _ in range(3):
        c.get("/v1/users/u000002/recommendations")
    c.get("/v1/users/nobody/recommendations")
    text = c.get("/metrics").text
    route = 'route="/v1/users/{user_id:path}/recommendations"'
    assert f'colisten_http_requests_total{{method="GET",{route},status="200"}} 3.0' in text
    assert f'colisten_http_requests_total{{method="GET",{route},status="404"}} 1.0' in text
    assert "colisten_http_request_duration_seconds_bucket" in text
    assert f'colisten_model_info{{run="{toy_bundle.run}",version="{toy_bundle.version}"}} 1.0' in text


def test_health_docs_and_explorer_support(client, toy_bundle):
    assert client.get("/healthz").json()["model_version"] == toy_bundle.version
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v1/recommendations",
        "/v1/users/{user_id}/recommendations",
        "/v1/items/{item_id}/similar",
    } <= set(paths)
    assert client.get("/docs").status_code == 200
    assert "colisten explorer" in client.get("/").text
    meta = client.get("/v1/meta").json()
    assert meta["item_types"] == ["audiobook", "podcast"] and meta["target_type"] == "audiobook"
    found = client.get("/v1/users", params={"q": "u00001", "limit": 3}).json()
    assert found["users"] == ["u000010", "u000011", "u000012"] and found["total"] >= 3
    profile = client.get("/v1/users/u000003", params={"limit": 2}).json()
    assert all(len(g["events"]) <= 2 for g in profile["history"].values())
    stamps = [e["timestamp"] for g in profile["history"].values() for e in g["events"]]
    assert stamps


def test_admin_reload_needs_loopback_or_the_token(toy_run, toy_bundle):
    open_app = create_app(toy_run, bundle=toy_bundle)
    # TestClient's peer is not a loopback address: refused without a token
    assert TestClient(open_app).post("/admin/reload").status_code == 403
    settings = Settings()
    settings.serve.admin_token = "s3cret"
    locked = TestClient(create_app(toy_run, bundle=toy_bundle, serve_settings=settings.serve))
    assert locked.post("/admin/reload", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = locked.post("/admin/reload?wait=true", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json()["state"] == "swapped"


def test_serve_runs_on_httptools_and_uvloop():
    # `colisten serve`'s uvicorn settings pick the C parser and loop (pinned dependencies): a
    # missing one would fall back silently to h11 + asyncio at 0.6-0.8x the throughput
    from fastapi import FastAPI

    from colisten.serve.commands import server_config

    config = server_config(FastAPI(), "127.0.0.1", 0, "warning", False)
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
    loop = config.get_loop_factory()()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()
