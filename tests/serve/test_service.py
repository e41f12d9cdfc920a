"""The search service over real HTTP on 127.0.0.1: uvicorn in a thread, the session's world."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from live_service import assert_declared, running_service
from PIL import Image

from mars_core.app.compose import load_config
from mars_core.app.serve.app import FORM_OVERHEAD_BYTES

MAX_UPLOAD = 200_000
MAX_QUERY = 60
CONCURRENT = 20
SEARCH_TIMEOUT_S = 300.0


@pytest.fixture(scope="module")
def server(indexed) -> Iterator[str]:
    """The service for the session's indexed world, listening on a free local port."""
    limits = [f"serve.max_upload_bytes={MAX_UPLOAD}", f"funnel.max_query_chars={MAX_QUERY}"]
    with running_service(load_config([*indexed.overrides, *limits])) as url:
        yield url


@pytest.fixture(scope="module")
def openapi(server) -> dict:
    return httpx.get(f"{server}/openapi.json").json()


@pytest.fixture(scope="module")
def pool_photo(indexed) -> bytes:
    rows = pq.read_table(indexed.out_dir / "rooms.parquet").to_pylist()
    return Path(next(r["path"] for r in rows if r["room_type"] == "pool")).read_bytes()


def post(url: str, photo: bytes, query: str | None, **fields: str) -> httpx.Response:
    data = fields | ({"query": query} if query is not None else {})
    files = {"room": ("room.png", photo, "image/png")}
    return httpx.post(f"{url}/search", data=data, files=files, timeout=SEARCH_TIMEOUT_S)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_a_search_returns_ranked_products_with_every_stage(server, openapi, pool_photo, cfg):
    answer = post(server, pool_photo, "bed")
    assert answer.status_code == 200, answer.text
    assert_declared(openapi, "post", "/search", answer)
    body = answer.json()
    assert body["stages_run"] == ["bm25", "siglip", "agent"]
    assert set(body["timings_ms"]) == {"bm25", "siglip", "agent"}
    assert body["category"] == "BED"
    assert isinstance(body["nothing_fits"], bool)
    assert "ranked_by" in body and body["notice"]  # the untrained tiny agent says so
    assert len(body["products"]) == cfg.funnel.k3
    for rank, product in enumerate(body["products"], start=1):
        assert product["rank"] == rank and product["category"] == "BED"
        assert set(product["scores"]) == {"bm25", "siglip", "agent"}
        assert "rationale" in product
    image = httpx.get(server + body["products"][0]["image_url"])
    assert image.status_code == 200
    assert_declared(openapi, "get", "/products/{key}/image", image)
    Image.open(io.BytesIO(image.content)).verify()
    assert len(post(server, pool_photo, "bed", k="2").json()["products"]) == 2


@pytest.mark.slow
def test_health_docs_page_and_sample_rooms(server, openapi):
    health = httpx.get(f"{server}/health")
    assert health.json()["status"] == "ok" and health.json()["products"] > 0
    assert_declared(openapi, "get", "/health", health)
    assert httpx.get(f"{server}/docs").status_code == 200
    assert "/search" in openapi["paths"]
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and 'id="search"' in page.text
    rooms = httpx.get(f"{server}/rooms")
    assert rooms.json()
    assert_declared(openapi, "get", "/rooms", rooms)
    photo = httpx.get(server + rooms.json()[0]["image_url"])
    assert photo.status_code == 200 and photo.content
    assert_declared(openapi, "get", "/rooms/{room_id}/image", photo)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("photo", "query", "fields", "status", "says"),
    [
        (b"not an image at all", "bed", {}, 415, "is not an image"),
        (b"", "bed", {}, 415, "is empty"),
        (b"x" * (MAX_UPLOAD + 1), "bed", {}, 413, "upload limit"),
        (b"x" * (MAX_UPLOAD + FORM_OVERHEAD_BYTES + 1), "bed", {}, 413, "over the limit"),
        ("bomb", "bed", {}, 413, "pixels"),
        ("pool", "the", {}, 422, "no searchable words"),
        ("pool", "bed " * MAX_QUERY, {}, 422, "over the limit"),
        ("pool", "bed", {"k": "0"}, 422, "k=0"),
        ("pool", "bed", {"k": "many"}, 422, "k"),
    ],
)
def test_each_bad_input_gets_its_status_and_message(
    server, openapi, pool_photo, photo, query, fields, status, says
):
    if photo == "bomb":  # a small file whose header announces 64 megapixels
        photo = png_bytes(Image.new("1", (8000, 8000)))
    elif photo == "pool":
        photo = pool_photo
    answer = post(server, photo, query, **fields)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["status"] == status and says in body["error"]
    assert_declared(openapi, "post", "/search", answer)


@pytest.mark.slow
def test_images_are_served_by_key_only(server, openapi):
    unknown = httpx.get(f"{server}/products/no-such-key/image")
    assert unknown.status_code == 404
    assert_declared(openapi, "get", "/products/{key}/image", unknown)
    escape = httpx.get(f"{server}/rooms/..%2F..%2F..%2Fetc%2Fpasswd/image")
    assert escape.status_code == 404 and "no sample room" in escape.json()["error"]
    assert_declared(openapi, "get", "/rooms/{room_id}/image", escape)


@pytest.mark.slow
def test_an_empty_query_is_a_room_search_or_422_where_no_stage_can_do_one(
    server, openapi, indexed, pool_photo
):
    room_only = post(server, pool_photo, "")
    assert room_only.status_code == 200 and room_only.json()["room_only"]
    assert_declared(openapi, "post", "/search", room_only)
    with running_service(load_config([*indexed.overrides, "funnel.stages=[bm25]"])) as lexical:
        refused = post(lexical, pool_photo, "")
    assert refused.status_code == 422 and "stages siglip and agent" in refused.json()["error"]
    assert_declared(openapi, "post", "/search", refused)


@pytest.mark.slow
def test_concurrent_requests_are_all_answered(server, pool_photo):
    queries = [f"bed {i}" if i % 2 else "a lamp" for i in range(CONCURRENT)]
    with ThreadPoolExecutor(CONCURRENT) as pool:
        answers = list(pool.map(lambda q: post(server, pool_photo, q), queries))
    assert [a.status_code for a in answers] == [200] * CONCURRENT
    assert [a.json()["query"] for a in answers] == queries
    assert all(a.json()["products"] for a in answers)


def test_mars_serve_refuses_a_bad_port_in_one_line(capsys):
    from mars_core.app.commands.serve import main

    with pytest.raises(SystemExit) as exit_:
        main(["serve.port=99999"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: bad configuration: serve.port 99999 must lie in [0, 65535]"
    )
