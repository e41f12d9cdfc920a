"""The service's API as types: what each route answers, and every error it can send.

The response models are what FastAPI checks each answer against and what `/openapi.json`
(and `/docs`) publish; `responses_for` declares each route's error statuses with the one
body every error has (`ErrorBody`), so the schema says what the service really sends.
docs/search-and-api.md lists the same, generated from the schema (`api_doc`).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import Send

BAD_REQUEST = 400
NOT_FOUND = 404
PAYLOAD_TOO_LARGE = 413
UNSUPPORTED_MEDIA_TYPE = 415
UNPROCESSABLE = 422
INTERNAL_ERROR = 500
SERVICE_UNAVAILABLE = 503
GATEWAY_TIMEOUT = 504

# What each error status means, as the schema and the docs say it.
ERRORS = {
    BAD_REQUEST: "any other mistake a user can fix",
    NOT_FOUND: "no product with that key in the answering build, or no sample room with that id",
    PAYLOAD_TOO_LARGE: "an upload over serve.max_upload_bytes (a body over it is refused before "
    "it is read), or an image over data.max_image_pixels (decompression bombs included)",
    UNSUPPORTED_MEDIA_TYPE: "the room photo is empty or not an image",
    UNPROCESSABLE: "a bad field: no room photo, a query with no searchable words or over "
    "funnel.max_query_chars characters or funnel.max_query_words words, an empty query where "
    "the funnel runs without stages siglip and agent (they search a room with no query), a k "
    "outside 1 to funnel.k3",
    INTERNAL_ERROR: "a fault of the service (its log has the traceback)",
    SERVICE_UNAVAILABLE: "the service is shutting down (Retry-After says when to try again), or "
    "a served student's (student=vllm) server does not answer",
    GATEWAY_TIMEOUT: "the search ran past serve.request_timeout_s",
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
# Every route can answer these: the service is shutting down, or it failed.
ANY_ROUTE = (INTERNAL_ERROR, SERVICE_UNAVAILABLE)


class ErrorBody(BaseModel):
    """Every error: one line saying what was wrong and what is accepted, and the status."""

    error: str = Field(description="what was wrong, in one line")
    status: int = Field(description="the HTTP status, repeated")


def responses_for(*statuses: int, media: str | None = None) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can answer `statuses` (and those of `ANY_ROUTE`);
    `media`: the content type of a success that is not JSON (an image, the metrics' text)."""
    declared: dict[int | str, dict[str, Any]] = {}
    if media is not None:
        declared[200] = {"description": f"{media} content", "content": {media: {}}}
    for status in sorted({*statuses, *ANY_ROUTE}):
        declared[status] = {"model": ErrorBody, "description": ERRORS[status]}
        if status == SERVICE_UNAVAILABLE:
            declared[status]["headers"] = RETRY_AFTER
    return declared


def without_fastapi_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI schema less FastAPI's own 422 (`{"detail": [...]}`), which it declares on
    every route with parameters: the service answers a bad request with `ErrorBody`, declared
    where a parameter can be bad."""
    fastapi_422 = "#/components/schemas/HTTPValidationError"
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.get("responses", {})
            refs = json.dumps(answers.get(str(UNPROCESSABLE), {}))
            if fastapi_422 in refs:
                del answers[str(UNPROCESSABLE)]
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)
    return schema


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(ErrorBody(error=message, status=status).model_dump(), status, headers)


async def send_error(
    send: Send, status: int, message: str, headers: dict[str, str] | None = None
) -> None:
    """The service's JSON error, sent from ASGI middleware before the app sees the request."""
    body = json.dumps(ErrorBody(error=message, status=status).model_dump()).encode()
    fields = {"content-type": "application/json", "content-length": str(len(body))}
    fields |= headers or {}
    encoded = [(name.lower().encode(), value.encode()) for name, value in fields.items()]
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body})


class StudentIdentity(BaseModel):
    """The student that ranks: its name, the registry version served, how results name it."""

    name: str = Field(description="the configured student (student.name)")
    version: int | None = Field(description="the registry version served (null: none)")
    ranked_by: str = Field(description="the student and adapter, as results name them")


class Identity(BaseModel):
    """What answered a request: the index build, the catalogue's size, the student."""

    index_build: str = Field(description="the Lucene build folder answering")
    products: int = Field(description="products in that build")
    student: StudentIdentity = Field(description="the student that ranks")


class Health(Identity):
    """Up, with the stages that run, what answers, and any reload that failed."""

    status: Literal["ok"]
    stages: list[str] = Field(description="funnel.stages")
    k: int = Field(description="products a search returns at most (funnel.k3)")
    notice: str | None = Field(description="what results must say up front (untrained agent)")
    problems: dict[str, str] = Field(
        description="a newer build, champion or sample-room file that failed to load, by part "
        "(the old one keeps serving)"
    )


class Room(BaseModel):
    """A sample room the page offers."""

    room_id: str = Field(description="its id in rooms.parquet")
    room_type: str = Field(description="the room class (its folder)")
    image_url: str = Field(description="where its photo is served")


class Product(BaseModel):
    """A ranked product: its catalogue fields, every stage's score, the reason, its image."""

    rank: int = Field(description="1 for the best")
    key: str = Field(description="catalogue key, item_id@domain")
    name: str | None = Field(description="catalogue fields, as listed")
    category: str | None
    brand: str | None
    color: str | None
    material: str | None
    style: str | None
    scores: dict[str, float] = Field(description="stage name -> score")
    rationale: str | None = Field(description="the agent's reason (the top funnel.rationale_top_n)")
    image_url: str = Field(description="where its image is served")


class Alternative(Product):
    """A category that fits when the asked one does not: its best product."""

    query: str = Field(description="the words to search that category by")


class SkippedProduct(BaseModel):
    """A product left out of the ranking (its image would not load), and why."""

    key: str
    reason: str = Field(description="the error's type")
    detail: str = Field(description="the error's message")


class SearchAnswer(BaseModel):
    """The ranked products, what each stage did and how long it took, and what answered."""

    query: str = Field(description="as asked (empty: a room-only search)")
    room_id: str = Field(description="the uploaded file's name")
    stages_run: list[str]
    timings_ms: dict[str, float] = Field(description="stage name -> milliseconds")
    category: str | None = Field(description="the category stage 1 locked to (null: all)")
    category_reason: str = Field(description="why no category was locked, when none was")
    ranked_by: str | None = Field(description="the student and ordering behind the ranking")
    nothing_fits: bool = Field(description="no product reaches the agent's fit bar")
    message: str | None = Field(description="what to say before the list, when not matches")
    notice: str | None = Field(description="what results must say up front (untrained agent)")
    skipped: list[SkippedProduct] = Field(description="products left out, and why")
    room_only: bool = Field(description="no query: the room's fits, grouped by category")
    products: list[Product] = Field(description="best first (room-only: grouped by category)")
    alternatives: list[Alternative] = Field(description="when nothing fits: what does")
    asked: str | None = Field(
        description="beyond the query (room-only, or what fits instead): how many candidates "
        "of how many categories the agent was asked about, within the request's budget"
    )
    served_by: Identity = Field(description="what answered, as `/health` says it")
