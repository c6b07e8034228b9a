"""/openapi.json is the API's contract: schemathesis checks the app against it, in process (ASGI).

Every operation of the schema gets schemathesis's three phases (examples, coverage: boundary and
schema-violating values; fuzzing: generated requests, valid and invalid) with all its checks:
no 5xx, every status code and body documented, schema-violating requests refused, schema-valid
ones accepted, 405 with `Allow` for unsupported methods, declared auth enforced. Any finding fails.

Two apps over the small served run: the default one (no admin token; the test client is not a
loopback peer, so /admin/* answers its documented 403), and one with `serve.admin_token`, whose
/admin/* operations run with the token: real reloads (200, 202, 409, 422), and schemathesis
checks that requests without it or with another one get the documented 401.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from colisten.config import Settings
from colisten.serve.app import create_app

ADMIN_TOKEN = "contract-test-token"
# Derandomized: the suite gives the same cases every run (the coverage phase is deterministic).
CONTRACT_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _config(data: dict) -> schemathesis.config.SchemathesisConfig:
    return schemathesis.config.SchemathesisConfig.from_dict(data)


@pytest.fixture(scope="module")
def api_schema(toy_run, toy_bundle):
    # Half the user and item ids are real ones, so that the 200 bodies of the routes that look them
    # up are checked too, not only their 404s.
    user_ids, item_ids = toy_bundle.users.user_ids, toy_bundle.catalogue.item_ids
    users = [str(u) for u in user_ids[:: max(1, len(user_ids) // 20)]]
    items = [str(i) for i in item_ids[:: max(1, len(item_ids) // 20)]]
    config = _config(
        {
            "dictionaries": {"users": {"values": users}, "items": {"values": items}},
            "parameters": {
                "path.user_id": {"dictionary": "users", "probability": 0.5},
                "path.item_id": {"dictionary": "items", "probability": 0.5},
                "body.history[*].item_id": {"dictionary": "items", "probability": 0.5},
            },
        }
    )
    app = create_app(toy_run, bundle=toy_bundle)
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


@pytest.fixture(scope="module")
def admin_api_schema(toy_run, toy_bundle):
    serve = Settings().serve
    serve.admin_token = ADMIN_TOKEN
    app = create_app(toy_run, bundle=toy_bundle, serve_settings=serve)
    # `run`: the served run (a real reload), a folder that is no run (refused: 422, the old model
    # keeps serving) or generated strings (no such folder: 422). That a schema-valid string can name
    # no servable run is the one thing the schema cannot say, hence 422 among the accepted answers
    # of a schema-valid reload request.
    config = _config(
        {
            "auth": {"openapi": {"adminToken": {"bearer": ADMIN_TOKEN}}},  # the declared security scheme
            "dictionaries": {"runs": {"values": [str(toy_run), str(toy_run.parent)]}},
            "parameters": {"body.run": {"dictionary": "runs", "probability": 0.5}},
            "operations": [
                {
                    "include-path": "/admin/reload",
                    "include-method": "POST",
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ["2xx", "401", "404", "409", "422", "429", "5xx"]
                        }
                    },
                }
            ],
        }
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request):
    # schemathesis 4.32.5's from_fixture reads and rewrites `Function._nodeid`, which pytest 9.2
    # no longer has (it keeps the id elsewhere); give it one.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


api = schemathesis.pytest.from_fixture("api_schema")
admin_api = schemathesis.pytest.from_fixture("admin_api_schema").include(path_regex="^/admin/")


@api.parametrize()
@CONTRACT_SETTINGS
def test_api_matches_its_openapi_contract(case):
    case.call_and_validate()


@admin_api.parametrize()
@CONTRACT_SETTINGS
def test_admin_api_with_a_token_matches_its_openapi_contract(case):
    case.call_and_validate()


def test_the_contract_names_every_error_and_the_served_item_types(api_schema, toy_bundle):
    """What a generated client relies on, beyond what schemathesis can observe."""
    spec = api_schema.raw_schema
    paths = spec["paths"]
    for path in ("/v1/users/{user_id}", "/v1/users/{user_id}/recommendations", "/v1/items/{item_id}/similar"):
        responses = paths[path]["get"]["responses"]
        assert responses["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
        assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/InvalidRequest")
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's default 422 body
    body = spec["components"]["schemas"]["AdHocUser"]
    assert body["additionalProperties"] is False
    item_type = next(s for s in body["properties"]["type"]["anyOf"] if s.get("type") == "string")
    assert item_type["enum"] == list(toy_bundle.item_types)
    assert body["properties"]["k"]["maximum"] == Settings().serve.max_k
