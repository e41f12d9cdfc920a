"""The FastAPI app: the funnel loaded at start-up and kept current, every mistake as JSON.

`create_app(cfg)` returns an app whose start-up opens the published index build and the
student (`mars_core.app.serve.follow`); its shutdown closes them. Between requests the service
follows a re-index and a newly promoted champion (`serve.reload_check_s`,
`serve.follow_champion`): each request is answered from one generation (build + student)
and every response says which, in its `X-Mars-*` headers (and `/health` and `POST /search`
in their JSON). Twenty concurrent requests share one set of models: the retrieval stages run
one request at a time under a lock, and the agent merges the candidates of requests that
reach it together into shared batches (`serve.agent_batch_window_ms`, `student.batch_size`;
see `mars_core.agent.batching`). A search has `serve.request_timeout_s` to finish, else it is
answered 504 and stops at its next checkpoint (`deadline`). Product images are served by
catalogue key from the answering build's products, room photos by room id from
rooms.parquet: a client never names a path. Uploads are decoded in memory (`BodyLimit`
bounds every body, so none is spooled to disk); the service writes nothing but its reader
lease in the index folder. `/metrics` serves Prometheus' text format (`metrics`); on SIGTERM
the service drains (`shutdown`). Every answer's shape is declared in `api`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import anyio
from fastapi import FastAPI, File, Form, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from mars_core.app.results_page import asked_note
from mars_core.app.serve.api import (
    BAD_REQUEST,
    GATEWAY_TIMEOUT,
    INTERNAL_ERROR,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    SERVICE_UNAVAILABLE,
    UNPROCESSABLE,
    UNSUPPORTED_MEDIA_TYPE,
    Health,
    Room,
    SearchAnswer,
    error_response,
    responses_for,
    without_fastapi_errors,
)
from mars_core.app.serve.deadline import DeadlineExceeded, check_deadline, deadline
from mars_core.app.serve.follow import Follower, Generation
from mars_core.app.serve.metrics import ServiceMetrics
from mars_core.app.serve.shutdown import Drain, Gate
from mars_core.app.serve.validation import (
    BodyLimit,
    UnknownItemError,
    check_k,
    check_query,
    room_image,
    status_of,
)
from mars_core.config import MarsConfig
from mars_core.infra.errors import UserInputError
from mars_core.search.funnel import SearchResult
from mars_core.search.types import Candidate, SearchRequest

PAGE = Path(__file__).with_name("page.html")
FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries and the small fields besides the photo
PRODUCT_FIELDS = ("name", "category", "brand", "color", "material", "style")


def product_json(rank: int, candidate: Candidate) -> dict[str, Any]:
    """A ranked product: its catalogue fields, every stage's score, the reason, its image."""
    fields = {name: candidate.product.get(name) for name in PRODUCT_FIELDS}
    return {
        "rank": rank,
        "key": candidate.key,
        **fields,
        "scores": dict(candidate.scores),
        "rationale": candidate.rationale,
        "image_url": f"/products/{quote(candidate.key, safe='@')}/image",
    }


def result_json(result: SearchResult, k: int, notice: str | None) -> dict[str, Any]:
    """What `POST /search` answers: the products, what each stage did, and how long it took."""
    lock = result.lock
    return {
        "query": result.request.query,
        "room_id": result.request.room_id,
        "stages_run": result.stages_run,
        "timings_ms": {name: seconds * 1000.0 for name, seconds in result.timings.items()},
        "category": lock.category if lock else None,
        "category_reason": lock.reason if lock else "",
        "ranked_by": result.ranked_by,
        "nothing_fits": result.nothing_fits,
        "message": result.message,
        "notice": notice,
        "skipped": [vars(skipped) for skipped in result.skipped],
        "room_only": result.room_only,
        "products": [
            product_json(rank, candidate)
            for rank, candidate in enumerate(
                result.results if result.room_only else result.results[:k], start=1
            )
        ],
        "alternatives": [
            {"category": a.category, "query": a.query, **product_json(rank, a.candidate)}
            for rank, a in enumerate(result.alternatives, start=1)
        ],
        "asked": asked_note(result),
    }


def validation_message(error: RequestValidationError) -> str:
    """FastAPI's field errors as one line: `query: Field required; k: ...`."""
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request does not match the API (see /docs)"


def create_app(cfg: MarsConfig) -> FastAPI:
    """The service for `cfg`: the index and the student open when the server starts."""
    follower = Follower(cfg)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        follower.open()
        try:
            yield
        finally:
            follower.close()

    app = FastAPI(
        title="MARS room search",
        summary="Products that fit a room photo: BM25, SigLIP and a VLM agent.",
        lifespan=lifespan,
    )
    app.state.follower = follower
    app.state.metrics = metrics = ServiceMetrics(follower)
    app.state.drain = drain = Drain()
    _add_error_handlers(app)
    app.add_middleware(BodyLimit, limit=cfg.serve.max_upload_bytes + FORM_OVERHEAD_BYTES)
    _add_generations(app, follower)
    app.add_middleware(
        Gate, drain=drain, metrics=metrics, routes=app.routes, retry_after_s=cfg.serve.retry_after_s
    )
    _add_routes(app, cfg)
    _add_search(app, cfg)
    app.openapi_schema = without_fastapi_errors(app.openapi())
    return app


def identity_headers(generation: Generation) -> dict[str, str]:
    """What answered, on every response: the index build, its products, the student."""
    identity = generation.identity()
    student = identity["student"]
    version = student["version"]
    return {
        "X-Mars-Index-Build": identity["index_build"],
        "X-Mars-Products": str(identity["products"]),
        "X-Mars-Student": student["name"] if version is None else f"{student['name']} v{version}",
    }


def _add_generations(app: FastAPI, follower: Follower) -> None:
    """Each request is answered by the generation current when it arrives (kept open until
    its response is ready) and starts the between-requests check for a new one."""

    @app.middleware("http")
    async def answered_by(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        follower.poke()
        with follower.hold() as generation:
            request.state.generation = generation
            response = await call_next(request)
        response.headers.update(identity_headers(generation))
        return response


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UserInputError)
    async def user_error(_: Request, error: UserInputError) -> JSONResponse:
        return error_response(status_of(error), " ".join(str(error).split()))

    @app.exception_handler(DeadlineExceeded)
    async def too_slow(_: Request, error: DeadlineExceeded) -> JSONResponse:
        return error_response(GATEWAY_TIMEOUT, str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(UNPROCESSABLE, validation_message(error))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail))

    @app.exception_handler(Exception)
    async def fault(_: Request, error: Exception) -> JSONResponse:
        """A fault of the service (uvicorn logs its traceback): JSON like any error."""
        message = f"the service failed ({type(error).__name__}); its log has the details"
        return error_response(INTERNAL_ERROR, message)


def _add_routes(app: FastAPI, cfg: MarsConfig) -> None:
    follower: Follower = app.state.follower
    metrics: ServiceMetrics = app.state.metrics

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.get("/health", responses=responses_for())
    def health(request: Request) -> Health:
        """Up, with the stages that run and what answers: the index build, the catalogue's
        size, the student and its version, and any reload that failed (still serving the
        old one)."""
        generation: Generation = request.state.generation
        return Health(
            status="ok",
            stages=list(cfg.funnel.stages),
            **generation.identity(),
            k=cfg.funnel.k3,
            notice=generation.student.notice,
            problems=dict(follower.problems),
        )

    @app.get("/metrics", response_class=Response, responses=responses_for(media="text/plain"))
    def scrape() -> Response:
        """Requests by route and status, latency per route and per stage, searches in
        flight, what answers (as labels), re-indexes and promotions, in Prometheus' text
        format."""
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.get("/rooms", responses=responses_for())
    def rooms(request: Request) -> list[Room]:
        """Sample rooms the page offers (id, type and the image URL)."""
        return [
            Room(room_id=room_id, room_type=row["room_type"], image_url=room_url(room_id))
            for room_id, row in request.state.generation.rooms.items()
        ]

    @app.get(
        "/rooms/{room_id:path}/image",
        response_class=FileResponse,
        responses=responses_for(NOT_FOUND, media="image/*"),
    )
    def room_photo(request: Request, room_id: str) -> FileResponse:
        """A sample room's photo, by its id in rooms.parquet."""
        row = request.state.generation.rooms.get(room_id)
        if row is None:
            raise UnknownItemError(f"no sample room {room_id!r}; GET /rooms lists them")
        return FileResponse(row["path"])

    @app.get(
        "/products/{key}/image",
        response_class=FileResponse,
        responses=responses_for(NOT_FOUND, media="image/*"),
    )
    def product_image(request: Request, key: str) -> FileResponse:
        """A product's image, by its key in the answering build (never a client's path)."""
        path = request.state.generation.index.images.get(key)
        if path is None:
            raise UnknownItemError(f"no product {key!r} in the catalogue")
        return FileResponse(path)


def room_url(room_id: str) -> str:
    return f"/rooms/{quote(room_id)}/image"


SEARCH_ERRORS = (
    BAD_REQUEST,
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    UNPROCESSABLE,
    SERVICE_UNAVAILABLE,
    GATEWAY_TIMEOUT,
)


def _add_search(app: FastAPI, cfg: MarsConfig) -> None:
    follower: Follower = app.state.follower
    metrics: ServiceMetrics = app.state.metrics
    timeout = cfg.serve.request_timeout_s

    @app.post("/search", responses=responses_for(*SEARCH_ERRORS))
    async def search(
        request: Request,
        room: Annotated[UploadFile, File(description="room photo: JPEG, PNG, WebP, ...")],
        query: Annotated[
            str, Form(description='what to look for, e.g. "bed"; empty: what fits the room')
        ] = "",
        k: Annotated[int | None, Form(description="products to return (1 to funnel.k3)")] = None,
    ) -> SearchAnswer:
        """Rank catalogue products for a room photo and a query; with no query, the products
        that fit the room, grouped by category (`room_only`). When nothing fits a query,
        `alternatives` holds the categories that do. A search not answered within
        `serve.request_timeout_s` gets 504."""
        generation: Generation = request.state.generation
        data = await room.read(cfg.serve.max_upload_bytes + 1)
        name = room.filename or "upload"

        def answer() -> SearchResult:
            """In a worker thread, holding the generation until it ends (even past a 504)."""
            with follower.keep(generation):
                check_deadline()
                check_query(query, cfg.funnel)
                image = room_image(data, name, cfg.serve, cfg.data.max_image_pixels)
                request = SearchRequest(room=image, query=query, room_id=name)
                return generation.funnel.search(request)

        wanted = check_k(k, cfg.funnel.k3)
        with metrics.searches_in_flight.track_inprogress(), deadline(timeout):
            try:
                with anyio.fail_after(timeout or None):
                    result = await anyio.to_thread.run_sync(answer, abandon_on_cancel=True)
            except (TimeoutError, DeadlineExceeded):  # at the deadline, or at a checkpoint
                raise DeadlineExceeded(timeout) from None
        metrics.stages(result.timings)
        body = result_json(result, wanted, generation.student.notice)
        return SearchAnswer.model_validate(body | {"served_by": generation.identity()})
