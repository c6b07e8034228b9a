"""The HTTP API (FastAPI): real-time recommendations, similar items, explorer page, hot model swap.

`create_app(run_dir, settings)` loads the run's model bundle, then serves it. Every request reads
the current bundle once (`state.bundle`) and answers from it alone, which is what makes
`POST /admin/reload` safe under load. Errors a client can fix get a 4xx JSON body with a readable
`detail` (422s add `errors`, one entry per problem: schemas.InvalidRequest); anything else is
logged and answered with a bare 500, never a stack trace.

/openapi.json is the contract, checked by schemathesis in tests/serve/test_openapi_contract.py:
every status code a route answers is documented with its body, and the inputs are typed so that
the schema accepts exactly what the server does (JSON bodies are validated strictly: no unknown
fields, no coercion). The served item types are an enum taken from the run the app starts with; a
reload to a run with other item types is refused (restart to change the API). With
serve.admin_token, /admin/* declare a bearer security scheme and answer 401; without, 403 for
clients that are not on loopback.
"""

import ipaddress
import logging
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
import numpy as np
from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from colisten import __version__
from colisten.config import ServeConfig, Settings
from colisten.errors import ColistenError
from colisten.rundir import RunDir
from colisten.serve import render, schemas
from colisten.serve.errors import ServeError
from colisten.serve.metrics import MetricsMiddleware, ServeMetrics
from colisten.serve.state import (
    ModelBundle,
    ModelState,
    Recommendation,
    ReloadInProgress,
    UserQuery,
    load_bundle,
)

log = logging.getLogger("colisten.serve")
STATIC_DIR = Path(__file__).parent / "static"


class ReloadRequest(BaseModel):
    run: str | None = Field(
        None, description="Run directory to serve from now on (default: the current one)."
    )


def create_app(
    run_dir: str | Path,
    settings: Settings | None = None,
    *,
    bundle: ModelBundle | None = None,
    serve_settings: ServeConfig | None = None,
) -> FastAPI:
    """A FastAPI app serving the run's model.

    `settings` (default: the run's saved config) apply to every model this app loads, reloads
    included; without them each run is loaded with its own saved config, as `colisten recommend`
    would. `serve_settings` (default: `settings.serve`, else the run's) fix max_k, the admin
    token and the request limits for the app's lifetime. `bundle` skips the initial load.
    """
    serve_settings = serve_settings or (settings or RunDir(run_dir).settings()).serve
    max_k = serve_settings.max_k
    first = bundle if bundle is not None else load_bundle(Path(run_dir), settings)
    # The item types are part of the API (an enum in /openapi.json) for the app's lifetime.
    served_types = list(first.item_types)

    def loader(run: Path) -> ModelBundle:
        new = load_bundle(run, settings)
        if set(new.item_types) != set(served_types):
            raise ServeError(
                f"{run} serves item types {', '.join(new.item_types)}, but this server's API "
                f"(/openapi.json) serves {', '.join(served_types)}: restart `colisten serve` to change them"
            )
        return new

    metrics = ServeMetrics()
    state = ModelState(
        first,
        loader,
        on_swap=lambda b: metrics.set_model(b.version, str(b.run), b.load_seconds),
        on_reload=lambda outcome: metrics.reloads.labels(outcome).inc(),
    )

    app = FastAPI(
        title="colisten",
        version=__version__,
        description="2T-HGNN recommendations served in real time: the user tower runs on every request "
        "that sends a history, so new and cold-start users work (known users' vectors are computed "
        "when the model loads, from their stored history). Explorer page at `/`. "
        'Errors answer `{"detail": ...}`; 422s add `errors`, one entry per problem.',
        responses={500: {"model": schemas.Error, "description": "Internal error (logged on the server)."}},
    )
    app.state.model = state
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _install_error_handlers(app)

    # A Literal, not an Enum: the JSON bodies are validated strictly (schemas._Body), and a strict
    # Enum refuses the plain strings that JSON carries.
    ItemTypeName = Literal.__getitem__(tuple(served_types))
    ItemType = Annotated[
        ItemTypeName | None,
        Query(description=f"Item type (default: the run's target type, {first.target_type})."),
    ]
    K = Annotated[int, Query(ge=1, le=max_k, description=f"How many items (1..{max_k}).")]
    AdHocUser = create_model(
        "AdHocUser",
        __base__=schemas.AdHocUser,
        __doc__=schemas.AdHocUser.__doc__,
        type=(
            ItemTypeName | None,
            Field(
                None,
                description=f"Item type to recommend (default: the run's target type, {first.target_type}).",
            ),
        ),
        k=(
            Annotated[int, Field(ge=1), schemas.Integral],
            Field(10, description=f"How many items (1..{max_k}).", json_schema_extra={"maximum": max_k}),
        ),
        history=(
            list[schemas.HistoryEvent],
            Field(
                default_factory=list,
                description="Recent interactions (any order).",
                json_schema_extra={"maxItems": serve_settings.max_history_events},
            ),
        ),
    )

    # --- pages and operations ----------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def explorer() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/healthz", tags=["operations"], response_model=schemas.Health)
    async def healthz() -> dict[str, Any]:
        """Liveness and the model being served."""
        b = state.bundle
        return {
            "status": "ok",
            "model_version": b.version,
            "run": str(b.run),
            "reload": state.status.as_dict(),
        }

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Metrics."}
        },
    )
    def prometheus_metrics() -> Response:
        """Prometheus text format: request counts and latency by route, model version, reloads."""
        return Response(metrics.render(), media_type=metrics.content_type)

    # /admin/*: with serve.admin_token a bearer token (declared as the routes' security scheme),
    # else loopback clients only; each documents the one refusal it can answer.
    admin_token = serve_settings.admin_token
    if admin_token:
        bearer = HTTPBearer(auto_error=False, scheme_name="adminToken", description="serve.admin_token")
        admin_errors = {401: _ADMIN_ERRORS[401]}
        Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

        def require_admin(credentials: Credentials) -> None:
            given = credentials.credentials if credentials is not None else ""
            if not secrets.compare_digest(given.encode(), admin_token.encode()):
                raise HTTPException(
                    401,
                    "admin endpoints need 'Authorization: Bearer <serve.admin_token>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )

    else:
        admin_errors = {403: _ADMIN_ERRORS[403]}

        def require_admin(request: Request) -> None:
            if not _is_loopback(request.client.host if request.client else None):
                raise HTTPException(
                    403, "admin endpoints answer only loopback clients unless serve.admin_token is set"
                )

    @app.post(
        "/admin/reload",
        tags=["operations"],
        dependencies=[Depends(require_admin)],
        status_code=202,
        response_model=schemas.ReloadStatus,
        responses={
            200: {"model": schemas.ReloadStatus, "description": "With `wait=true`: the new model serves."},
            202: {"description": "The reload started; GET /admin/reload says how it went."},
            **_UNPARSABLE_BODY,
            **admin_errors,
            409: {"model": schemas.Error, "description": "A reload is already in progress."},
            422: {
                "model": schemas.InvalidRequest,
                "description": "No such run directory, or (`wait=true`) the run cannot be served; "
                "the old model keeps serving.",
            },
        },
    )
    async def reload(
        body: Annotated[ReloadRequest | None, Body()] = None,
        wait: Annotated[bool, Query(description="Answer only when the new model serves.")] = False,
    ) -> JSONResponse:
        """Load a newer model (same run re-read, or another run directory) in the background and swap
        it in atomically; requests in flight finish on the old model. 409 if a reload is running."""
        run = body.run if body and body.run else None
        if run is not None and not Path(run).is_dir():
            raise _invalid(["body", "run"], f"run directory not found: {run}")
        try:
            if not wait:
                state.reload_in_background(run)
                return JSONResponse(state.status.as_dict(), status_code=202)
            await anyio.to_thread.run_sync(state.reload, run)
        except ReloadInProgress as e:
            raise HTTPException(409, str(e)) from e
        except ColistenError as e:
            raise ServeError(f"reload failed, still serving {state.bundle.version}: {e}") from e
        except Exception as e:
            log.exception("reload failed")
            raise HTTPException(500, f"reload failed, still serving {state.bundle.version}") from e
        return JSONResponse(state.status.as_dict(), status_code=200)

    @app.get(
        "/admin/reload",
        tags=["operations"],
        dependencies=[Depends(require_admin)],
        response_model=schemas.ReloadStatus,
        responses=admin_errors,
    )
    def reload_status() -> dict[str, Any]:
        """State of the last reload (idle, loading, swapped, failed)."""
        return state.status.as_dict()

    # --- recommendations -----------------------------------------------------------------------
    @app.get(
        "/v1/users/{user_id:path}/recommendations",
        tags=["recommendations"],
        response_model=schemas.Recommendations,
        responses={**_UNKNOWN_USER, **_INVALID},
    )
    async def user_recommendations(
        user_id: str,
        type: ItemType = None,
        k: K = 10,
        explain: bool = True,
        exclude_consumed: bool = True,
    ) -> Response:
        """Top-k items for a known user: the user tower runs now on their stored history (the run's
        history window) and demographics; already-consumed items are left out."""
        b = state.bundle
        return _user_recommendations(
            b, user_id, _item_type(b, type), _known_user(b, user_id), k, explain, exclude_consumed
        )

    _add_fast_path(app, "/v1/users/{user_id:path}/recommendations", state, served_types, max_k)

    @app.post(
        "/v1/recommendations",
        tags=["recommendations"],
        response_model=schemas.Recommendations,
        responses={**_UNPARSABLE_BODY, **_INVALID},
    )
    async def adhoc_recommendations(user: AdHocUser) -> Response:
        """Top-k items for a user given by their history (new or cold-start users): unknown item ids
        are ignored and listed in the response."""
        b = state.bundle
        item_type = _item_type(b, user.type)
        if user.k > max_k:
            raise _invalid(["body", "k"], f"k must be at most {max_k}")
        if len(user.history) > serve_settings.max_history_events:
            raise _invalid(["body", "history"], f"at most {serve_settings.max_history_events} events")
        query, unknown, ignored_events = _adhoc_query(b, user)
        rec = b.recommend(
            query, item_type, user.k, exclude_consumed=user.exclude_consumed, with_reasons=user.explain
        )
        return _json(
            _recommendations(b, user.user_id, item_type, user.k, query, rec, unknown, ignored_events)
        )

    @app.get(
        "/v1/items/{item_id:path}/similar",
        tags=["items"],
        response_model=schemas.SimilarItems,
        responses={
            404: {"model": schemas.Error, "description": "Unknown item (not in the served catalogue)."},
            **_INVALID,
        },
    )
    def similar_items(item_id: str, type: ItemType = None, k: K = 10) -> schemas.SimilarItems:
        """Nearest items by HGNN embedding (cosine); `type` defaults to the item's own type."""
        b = state.bundle
        g = b.catalogue.index.get(item_id)
        if g is None:
            raise HTTPException(404, f"unknown item {item_id!r}: not in the served run's data/items.parquet")
        item_type = _item_type(b, type) if type is not None else b.catalogue.type_of(g)
        items, scores = b.similar_items(g, item_type, k)
        return schemas.SimilarItems(
            item=schemas.Item(**_item(b, g)),
            item_type=item_type,
            k=k,
            model_version=b.version,
            items=[
                schemas.SimilarItem(rank=r, score=float(s), **_item(b, int(i)))
                for r, (i, s) in enumerate(zip(items, scores, strict=True), start=1)
            ],
        )

    # --- explorer support -----------------------------------------------------------------------
    @app.get("/v1/meta", tags=["explorer"], response_model=schemas.Meta)
    async def meta() -> schemas.Meta:
        """The served model: version, item types and catalogue sizes."""
        b = state.bundle
        return schemas.Meta(
            model_version=b.version,
            run=str(b.run),
            trained_at=b.trained_at,
            item_types=b.item_types,
            target_type=b.target_type,
            n_items={t: b.type_size(t) for t in b.item_types},
            n_users=len(b.users),
            max_k=max_k,
        )

    @app.get("/v1/users", tags=["explorer"], response_model=schemas.UserSearch, responses=_INVALID)
    async def search_users(
        q: Annotated[str, Query(max_length=200, description="User id prefix.")] = "",
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    ) -> schemas.UserSearch:
        """Known user ids starting with `q` (sorted)."""
        users, total = state.bundle.users.search(q, limit)
        return schemas.UserSearch(users=users, total=total)

    @app.get(
        "/v1/random-user",
        tags=["explorer"],
        response_model=schemas.RandomUser,
        responses={404: {"model": schemas.Error, "description": "No user of the served run has a history."}},
    )
    async def random_user() -> dict[str, str]:
        """A known user with a stored history, drawn at random."""
        users = state.bundle.users
        with_history = np.flatnonzero(np.diff(users.indptr) > 0)
        if with_history.size == 0:
            raise HTTPException(404, "no user of the served run has a stored history")
        return {"user_id": str(users.user_ids[np.random.default_rng().choice(with_history)])}

    @app.get(
        "/v1/users/{user_id:path}",
        tags=["explorer"],
        response_model=schemas.User,
        responses={**_UNKNOWN_USER, **_INVALID},
    )
    def user_profile(
        user_id: str, limit: Annotated[int, Query(ge=1, le=1000, description="Events shown per type.")] = 50
    ) -> schemas.User:
        """A known user's demographics and stored history, grouped by item type, most recent first."""
        b = state.bundle
        user = _known_user(b, user_id)
        q = b.known_user_query(user)
        groups: dict[str, schemas.HistoryGroup] = {}
        for item_type, (lo, hi) in b.catalogue.type_ranges.items():
            at = np.flatnonzero((q.items >= lo) & (q.items < hi))[::-1]
            if at.size:
                groups[item_type] = schemas.HistoryGroup(
                    total=int(at.size),
                    events=[
                        schemas.HistoryEntry(
                            event=str(q.events[i]),
                            timestamp=int(q.timestamps[i]),
                            **_item(b, int(q.items[i])),
                        )
                        for i in at[:limit]
                    ],
                )
        return schemas.User(user_id=user_id, age=q.age, country=q.country, history=groups)

    return app


# --- documented error answers (every route also documents the app-wide 500) ------------------------
_INVALID: dict[int | str, dict[str, Any]] = {
    422: {
        "model": schemas.InvalidRequest,
        "description": "Invalid request: `detail` says what and where, `errors` lists each problem.",
    }
}
_UNPARSABLE_BODY: dict[int | str, dict[str, Any]] = {
    400: {"model": schemas.Error, "description": "The body cannot be read as JSON text (e.g. not UTF-8)."}
}
_UNKNOWN_USER: dict[int | str, dict[str, Any]] = {
    404: {
        "model": schemas.Error,
        "description": "Unknown user (not in the served run); POST /v1/recommendations serves new users.",
    }
}
_ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": schemas.Error, "description": "No bearer token, or not serve.admin_token."},
    403: {"model": schemas.Error, "description": "No serve.admin_token: loopback clients only."},
}


# --- helpers ---------------------------------------------------------------------------------------
def _invalid(loc: list[str], msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": "value_error"}])


def _item_type(b: ModelBundle, requested: str | None) -> str:
    if requested is None:
        return b.target_type
    if requested not in b.catalogue.type_ranges:
        raise _invalid(
            ["query", "type"],
            f"unknown item type {requested!r}; this model serves: {', '.join(b.item_types)}",
        )
    return requested


def _known_user(b: ModelBundle, user_id: str) -> int:
    user = b.users.index.get(user_id)
    if user is None:
        raise HTTPException(
            404,
            f"unknown user {user_id!r}: not in the served run's data/users.parquet. For a new user, "
            "POST /v1/recommendations with their history (an empty history gives cold-start "
            "recommendations).",
        )
    return user


def _item(b: ModelBundle, g: int) -> dict[str, Any]:
    """An item as schemas.Item data."""
    c = b.catalogue
    return {
        "item_id": c.item_ids[g],
        "title": c.titles[g],
        "item_type": c.item_types[g],
        "genre": c.genres[g],
    }


def _adhoc_query(b: ModelBundle, user: schemas.AdHocUser) -> tuple[UserQuery, list[str], list[str]]:
    """The posted history as a UserQuery; unknown item ids and unused event names, listed once each."""
    known_events = set(b.recommender.space.strong_events) | set(b.recommender.space.weak_events)
    items, events, stamps, unknown, ignored_events = [], [], [], {}, {}
    for position, h in enumerate(user.history):
        g = b.catalogue.index.get(h.item_id)
        if g is None:
            unknown[h.item_id] = None
            continue
        if h.event not in known_events:
            ignored_events[h.event] = None
        items.append(g)
        events.append(h.event)
        stamps.append(position if h.timestamp is None else int(h.timestamp))  # epoch seconds
    query = b.adhoc_query(
        np.asarray(items, dtype=np.int64),
        events,
        np.asarray(stamps, dtype=np.int64),
        user.age,
        user.country,
        user.taste_vector,
    )
    return query, list(unknown), list(ignored_events)


def _user_recommendations(
    b: ModelBundle, user_id: str, item_type: str, user: int, k: int, explain: bool, exclude_consumed: bool
) -> Response:
    query = b.known_user_query(user)
    rec = b.recommend(query, item_type, k, exclude_consumed=exclude_consumed, with_reasons=explain)
    return _json(_recommendations(b, user_id, item_type, k, query, rec))


_BOOLEANS = {b"true": True, b"false": False}


def _plain_query(query_string: bytes, served_types: dict[bytes, str], max_k: int) -> dict[str, Any] | None:
    """The user-recommendation query parameters when they are plainly valid (`type` a served item
    type, `k` a decimal in 1..max_k, `explain`/`exclude_consumed` true or false, each at most once,
    nothing else, nothing percent-encoded); None for anything else, which FastAPI then validates."""
    params: dict[str, Any] = {}
    if not query_string:
        return params
    for part in query_string.split(b"&"):
        key, eq, value = part.partition(b"=")
        name = key.decode("ascii", "replace")
        if not eq or name in params:
            return None
        if key == b"type":
            params[name] = served_types.get(value)
        elif key == b"k":
            if not (value.isdigit() and value[:1] != b"0" and len(value) <= 6 and int(value) <= max_k):
                return None
            params[name] = int(value)
        elif key in (b"explain", b"exclude_consumed"):
            params[name] = _BOOLEANS.get(value)
        else:
            return None
        if params[name] is None:
            return None
    return params


def _add_fast_path(app: FastAPI, path: str, state: ModelState, served_types: list[str], max_k: int) -> None:
    """Answer plainly valid GET user-recommendation requests without FastAPI's per-request parameter
    validation (a tenth of the request's time): the same answer as the route's handler. Anything
    the fast path does not recognise as plainly valid (see `_plain_query`), an unknown user or item
    type included, goes through the route as declared, so every refusal and its body, and the
    route's /openapi.json entry, are FastAPI's own."""
    route = next(r for r in app.router.routes if getattr(r, "path", None) == path)
    full = route.app
    served = {t.encode(): t for t in served_types}

    async def fast(scope: Any, receive: Any, send: Any) -> None:
        b = state.bundle
        params = _plain_query(scope.get("query_string", b""), served, max_k)
        user_id = scope.get("path_params", {}).get("user_id")
        user = b.users.index.get(user_id) if params is not None and isinstance(user_id, str) else None
        if user is None:
            await full(scope, receive, send)
            return
        response = _user_recommendations(
            b,
            user_id,
            params.get("type", b.target_type),
            user,
            params.get("k", 10),
            params.get("explain", True),
            params.get("exclude_consumed", True),
        )
        await response(scope, receive, send)

    route.app = fast


def _recommendations(
    b: ModelBundle,
    user_id: str | None,
    item_type: str,
    k: int,
    query: UserQuery,
    rec: Recommendation,
    ignored_item_ids: list[str] | None = None,
    ignored_events: list[str] | None = None,
) -> bytes:
    """The Recommendations body as JSON text (schemas.Recommendations documents it): encoded
    directly (serve.render), it costs a fraction of building and validating the same structure
    through pydantic, or even of json.dumps of it, per request."""
    return render.recommendations_json(
        b.catalogue,
        user_id=user_id,
        item_type=item_type,
        k=k,
        model_version=b.version,
        retrieval=rec.retrieval,
        history_events=int(query.items.size),
        items=rec.items.tolist(),
        scores=rec.scores.tolist(),
        reasons=rec.reasons,
        ignored_item_ids=ignored_item_ids or (),
        ignored_events=ignored_events or (),
    )


def _json(body: bytes) -> Response:
    """A 200 answer of JSON text already encoded (as JSONResponse would send it)."""
    return Response(body, media_type="application/json")


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _error(status: int, detail: str, errors: list[dict[str, Any]] | None = None, **kw: Any) -> JSONResponse:
    """An error answer: schemas.Error, or schemas.InvalidRequest for a 422."""
    body: dict[str, Any] = {"detail": detail}
    if status == 422:
        body["errors"] = errors or []
    return JSONResponse(body, status_code=status, **kw)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (the `Allow` of a 405)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route_methods
    return sorted(methods)


def _error_message(request: Request, error: Any) -> str:
    """pydantic's message of one validation error, with the served item types named for `type`."""
    loc = error.get("loc", ())
    if loc and loc[-1] == "type" and error.get("type") == "literal_error":
        served = request.app.state.model.bundle.item_types
        return f"unknown item type {error.get('input')!r}; this model serves: {', '.join(served)}"
    return str(error.get("msg", ""))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return _error(exc.status_code, str(exc.detail), headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": _error_message(request, e),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        detail = "; ".join(f"{' -> '.join(e['loc'][1:] or e['loc'])}: {e['msg']}" for e in errors)
        return _error(422, detail or "invalid request", errors)

    @app.exception_handler(ColistenError)
    async def user_error(request: Request, exc: ColistenError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("error answering %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal server error (logged on the server)")
