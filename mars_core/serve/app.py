"""The FastAPI app: the funnel loaded once, searches one at a time, every mistake as JSON.

`create_app(cfg)` returns an app whose start-up builds the configured funnel
(`mars_core.stages.build_funnel`) and reads the catalogue and rooms tables; its shutdown
closes the funnel. Twenty concurrent requests share one set of models: the retrieval stages
run one request at a time under a lock, and the agent merges the candidates of requests
that reach it together into shared batches (`serve.agent_batch_window_ms`,
`student.batch_size`; see `mars_core.agent.batching`). Product and room images are served
by catalogue key or room id, looked up in those tables: a client never names a path. Uploads
are decoded in memory (`BodyLimit` bounds every body, so none is spooled to disk); the
service writes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import pyarrow.parquet as pq
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from mars_core.agent.stage import AgentStage
from mars_core.catalogue.schema import CATALOGUE_FILE, ROOMS_FILE
from mars_core.config import MarsConfig
from mars_core.errors import UserInputError
from mars_core.search.funnel import SearchFunnel, SearchResult
from mars_core.search.types import Candidate, SearchRequest, StageOutput, WrappedStage
from mars_core.serve.validation import (
    UNPROCESSABLE,
    BodyLimit,
    UnknownItemError,
    check_k,
    check_query,
    room_image,
    status_of,
)
from mars_core.stages import agent_notice, build_funnel

PAGE = Path(__file__).with_name("page.html")
FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries and the small fields besides the photo
PRODUCT_FIELDS = ("name", "category", "brand", "color", "material", "style")


@dataclass
class Service:
    """What the app holds between requests: the funnel, its lock and the lookup tables."""

    cfg: MarsConfig
    funnel: SearchFunnel | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    product_images: dict[str, Path] = field(default_factory=dict)
    rooms: dict[str, dict[str, Any]] = field(default_factory=dict)
    notice: str | None = None

    def open(self) -> None:
        """Build the funnel and read the tables (once, at start-up)."""
        out_dir = Path(self.cfg.data.out_dir)
        catalogue = pq.read_table(out_dir / CATALOGUE_FILE, columns=["key", "image_path"])
        self.product_images = {row["key"]: Path(row["image_path"]) for row in catalogue.to_pylist()}
        rooms_file = out_dir / ROOMS_FILE
        if rooms_file.is_file():
            rows = pq.read_table(rooms_file, columns=["room_id", "room_type", "path"]).to_pylist()
            self.rooms = {row["room_id"]: row for row in rows[: self.cfg.serve.sample_rooms]}
        self.notice = agent_notice(self.cfg)
        self.funnel = self._share_stages(build_funnel(self.cfg))

    def close(self) -> None:
        if self.funnel is not None:
            self.funnel.close()
            self.funnel = None

    def search(self, request: SearchRequest) -> SearchResult:
        """A search; its stages share the models with the other requests in flight."""
        if self.funnel is None:
            raise RuntimeError("the funnel is not loaded: the app has not started")
        return self.funnel.search(request)

    def _share_stages(self, funnel: SearchFunnel) -> SearchFunnel:
        """The agent batches across requests; every other stage (loaded once, not
        thread-safe) runs one request at a time under the service's lock."""
        for step in funnel.steps:
            if isinstance(step.stage, AgentStage):
                step.stage.batch_across_requests(self.cfg.serve.agent_batch_window_ms / 1000)
            elif step.stage is not None:
                step.stage = LockedStage(step.stage, self.lock)
        return funnel


@dataclass
class LockedStage(WrappedStage):
    """A stage whose `rank` runs under a lock shared by the service's requests."""

    lock: threading.Lock

    def rank(
        self, request: SearchRequest, candidates: list[Candidate] | None, k: int
    ) -> StageOutput:
        with self.lock:
            return self.stage.rank(request, candidates, k)


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


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
        "products": [
            product_json(rank, candidate)
            for rank, candidate in enumerate(result.results[:k], start=1)
        ],
    }


def validation_message(error: RequestValidationError) -> str:
    """FastAPI's field errors as one line: `query: Field required; k: ...`."""
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request does not match the API (see /docs)"


def create_app(cfg: MarsConfig) -> FastAPI:
    """The service for `cfg`: the funnel is built when the server starts, not here."""
    service = Service(cfg)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.open()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="MARS room search",
        summary="Products that fit a room photo: BM25, SigLIP and a VLM agent.",
        lifespan=lifespan,
    )
    app.state.service = service
    _add_error_handlers(app)
    app.add_middleware(BodyLimit, limit=cfg.serve.max_upload_bytes + FORM_OVERHEAD_BYTES)
    _add_routes(app, service)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UserInputError)
    async def user_error(_: Request, error: UserInputError) -> JSONResponse:
        return error_response(status_of(error), " ".join(str(error).split()))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(UNPROCESSABLE, validation_message(error))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail))


def _add_routes(app: FastAPI, service: Service) -> None:
    cfg = service.cfg

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Up, with the stages that run and the catalogue's size."""
        return {
            "status": "ok" if service.funnel is not None else "starting",
            "stages": list(cfg.funnel.stages),
            "products": len(service.product_images),
            "k": cfg.funnel.k3,
            "notice": service.notice,
        }

    @app.get("/rooms")
    def rooms() -> list[dict[str, str]]:
        """Sample rooms the page offers (id, type and the image URL)."""
        return [
            {
                "room_id": room_id,
                "room_type": row["room_type"],
                "image_url": f"/rooms/{quote(room_id)}/image",
            }
            for room_id, row in service.rooms.items()
        ]

    @app.get("/rooms/{room_id:path}/image")
    def room_photo(room_id: str) -> FileResponse:
        """A sample room's photo, by its id in rooms.parquet."""
        row = service.rooms.get(room_id)
        if row is None:
            raise UnknownItemError(f"no sample room {room_id!r}; GET /rooms lists them")
        return FileResponse(row["path"])

    @app.get("/products/{key}/image")
    def product_image(key: str) -> FileResponse:
        """A product's image, by its catalogue key (never a path the client sends)."""
        path = service.product_images.get(key)
        if path is None:
            raise UnknownItemError(f"no product {key!r} in the catalogue")
        return FileResponse(path)

    @app.post("/search")
    def search(
        room: Annotated[UploadFile, File(description="room photo: JPEG, PNG, WebP, ...")],
        query: Annotated[str, Form(description='what to look for, e.g. "bed"')] = "",
        k: Annotated[int | None, Form(description="products to return (1 to funnel.k3)")] = None,
    ) -> dict[str, Any]:
        """Rank catalogue products for a room photo and a query."""
        check_query(query, cfg.funnel)
        wanted = check_k(k, cfg.funnel.k3)
        data = room.file.read(cfg.serve.max_upload_bytes + 1)
        name = room.filename or "upload"
        image = room_image(data, name, cfg.serve, cfg.data.max_image_pixels)
        result = service.search(SearchRequest(room=image, query=query, room_id=name))
        return result_json(result, wanted, service.notice)
