"""A service that runs for months: a search past its deadline, and SIGTERM.

The agent is a served student (an OpenAI-compatible server running the tiny student in this
process) that the tests slow down, as a loaded model server would be: a search then waits on
it for as long as the test says.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from live_service import (
    assert_declared,
    in_flight,
    live,
    running_service,
    scrape,
    serve_process,
    served_student,
)

from mars_core.app.compose import load_config

# The agent scores two candidates; no rationales.
SMALL_FUNNEL = [
    "funnel.stages=[bm25,agent]",
    *["funnel.k1=2", "funnel.k2=2", "funnel.k3=2", "funnel.rationale_top_n=0"],
]
# The slowed agent's delay per request (a search makes two rounds of them): longer than each
# test's steps, shorter than serve.drain_s (30 s) for two rounds.
SLOW_S = 3.0
STUCK_S = 10.0  # a delay no test waits out
IN_FLIGHT = 5
WAIT_S = 120.0


def search(url: str, photo: bytes, query: str = "bed") -> httpx.Response:
    files = {"room": ("room.png", photo, "image/png")}
    return httpx.post(f"{url}/search", data={"query": query}, files=files, timeout=WAIT_S)


def wait_until(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def refused(url: str) -> httpx.Response:
    """The first answer of /health that is not 200 (the drain has begun)."""
    answer = httpx.get(f"{url}/health")
    while answer.status_code == 200:
        time.sleep(0.05)
        answer = httpx.get(f"{url}/health")
    return answer


@pytest.fixture
def slowed(student_server):
    student_server.delay_s = SLOW_S
    yield student_server
    student_server.delay_s = 0.0


@pytest.mark.slow
def test_a_search_past_its_deadline_is_504_and_the_next_request_succeeds(
    indexed, slowed, room_photo
):
    """The next request is /health: under a 0.1 s deadline no search can be awaited on the
    2-core box, where even a one-candidate search takes 50-300 ms of its HTTP round trip."""
    overrides = [*indexed.overrides, *served_student(slowed.url), *SMALL_FUNNEL]
    with running_service(load_config([*overrides, "serve.request_timeout_s=0.1"])) as url:
        openapi = httpx.get(f"{url}/openapi.json").json()
        late = search(url, room_photo)
        assert in_flight(url) == 0  # its place is free, while the slowed agent still has it
        assert late.status_code == 504, late.text
        assert late.json()["status"] == 504
        assert "serve.request_timeout_s" in late.json()["error"]
        assert "\n" not in late.json()["error"]
        assert_declared(openapi, "post", "/search", late)

        health = httpx.get(f"{url}/health")
        assert health.status_code == 200 and health.json()["problems"] == {}
        assert_declared(openapi, "get", "/health", health)
        assert scrape(url)[("mars_requests_total", (("route", "/search"), ("status", "504")))] == 1


@pytest.mark.slow
def test_a_served_student_that_does_not_answer_is_503(indexed, student_server, room_photo):
    overrides = [*indexed.overrides, *served_student(student_server.url), *SMALL_FUNNEL]
    with running_service(load_config(overrides)) as url:
        openapi = httpx.get(f"{url}/openapi.json").json()
        student_server.mode = "drop"
        try:
            down = search(url, room_photo)
        finally:
            student_server.mode = "ok"
        assert down.status_code == 503, down.text
        assert_declared(openapi, "post", "/search", down)
        assert search(url, room_photo).status_code == 200


@pytest.mark.slow
def test_sigterm_finishes_the_searches_in_flight_refuses_new_ones_and_exits_0(
    indexed, slowed, room_photo, tmp_path
):
    overrides = [*indexed.overrides, *served_student(slowed.url), *SMALL_FUNNEL]
    with serve_process(overrides, tmp_path / "serve.log") as (process, url):
        openapi = httpx.get(f"{url}/openapi.json").json()
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            searches = [pool.submit(search, url, room_photo) for _ in range(IN_FLIGHT)]
            wait_until(lambda: in_flight(url) == IN_FLIGHT)
            process.send_signal(signal.SIGTERM)
            new = refused(url)
            answers = [pending.result() for pending in searches]
        assert [answer.status_code for answer in answers] == [200] * IN_FLIGHT
        assert new.status_code == 503 and new.headers["Retry-After"] == "5"
        assert new.json()["status"] == 503 and "shutting down" in new.json()["error"]
        assert_declared(openapi, "get", "/health", new)
        assert process.wait(timeout=WAIT_S) == 0


@pytest.mark.slow
def test_a_second_sigterm_exits_at_once(indexed, slowed, room_photo):
    """The server's SIGTERM handler, called as the signal calls it (in-process: a thread
    cannot take signals), twice: the second stops it with the search still in flight."""
    overrides = [*indexed.overrides, *served_student(slowed.url), *SMALL_FUNNEL]
    slowed.delay_s = STUCK_S
    with live(load_config([*overrides, "serve.drain_s=600"])) as service:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(search, service.url, room_photo)
            wait_until(lambda: in_flight(service.url) == 1)
            service.server.handle_exit(signal.SIGTERM, None)
            assert refused(service.url).status_code == 503
            service.server.handle_exit(signal.SIGTERM, None)
            service.thread.join(timeout=WAIT_S)
            assert not service.thread.is_alive() and service.server.cut
            with contextlib.suppress(httpx.HTTPError):  # cut: no answer, or a 500
                assert pending.result().status_code != 200
        service.app.state.follower.close()  # a cut stop skips the lifespan's shutdown
