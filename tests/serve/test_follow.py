"""The running service follows a re-index and a newly promoted champion, over real HTTP.

A re-index that adds and removes products runs while searches are in flight: none fails,
the answers of the new build hold the new products and never the removed ones, and the old
build's folder stays until the service lets it go. Promoting a student version shows in
`/health` and in `ranked_by`; a bad version keeps the old one serving and says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import httpx
import pytest
from live_service import running_service, scrape
from support.catalogue_factory import (
    CATEGORIES,
    image_content_hash,
    image_dir,
    product_row,
    read_rows,
    write_table,
)
from support.registry import register_plain_folder, register_student

from mars_core.app.compose import load_config
from mars_core.index.reindex import reindex
from mars_core.index.store import (
    LUCENE_DIR,
    MANIFEST_FILE,
    IndexSnapshot,
    leased_builds,
    prune_lucene,
    write_json_atomic,
)
from mars_core.infra.registry import CHAMPION
from mars_core.models.loading import load_vlm

FOLLOW_NOW = ["serve.reload_check_s=0", "serve.agent_batch_window_ms=0"]
# Stage 1 keeps 4: a query naming the new word then only reaches new products.
SMALL_FUNNEL = ["funnel.k1=4", "funnel.k2=3", "funnel.k3=2", "funnel.rationale_top_n=0"]
NEW_WORD = "zephyrwood"
NEW_BEDS = 6
QUERIES = [f"{NEW_WORD} bed", "bed", "a lamp"]
REGISTRY = "serve-follow-test"
FOLLOW_WAIT_S = 300.0
SEARCH_TIMEOUT_S = 300.0


def search(url: str, photo: bytes, query: str) -> httpx.Response:
    files = {"room": ("room.png", photo, "image/png")}
    return httpx.post(f"{url}/search", data={"query": query}, files=files, timeout=SEARCH_TIMEOUT_S)


def keys_of(answer: httpx.Response) -> set[str]:
    return {product["key"] for product in answer.json()["products"]}


def wait_for_health(url: str, done: Callable[[dict], bool]) -> dict:
    """/health once `done` holds for it (the service checks in the background)."""
    deadline = time.monotonic() + FOLLOW_WAIT_S
    while True:
        health = httpx.get(f"{url}/health").json()
        if done(health):
            return health
        assert time.monotonic() < deadline, f"the service did not follow: {health}"
        time.sleep(0.2)


def add_new_beds(catalogue: Path) -> set[str]:
    """Beds whose text names NEW_WORD, appended to the catalogue; their keys."""
    step = len(CATEGORIES)  # product_row's category cycles; every step-th one is a bed
    images = image_dir(catalogue)
    rows = [product_row(i * step, 77, images, write_image=True) for i in range(NEW_BEDS)]
    for row in rows:
        row["name"] = f"{NEW_WORD.title()} {row['name']}"
        row["search_text"] = f"{NEW_WORD} {row['search_text']}"
        row["content_hash"] = image_content_hash(row, Path(row["image_path"]).read_bytes())
    write_table(read_rows(catalogue) + rows, catalogue)
    return {row["key"] for row in rows}


def remove_keys(catalogue: Path, keys: set[str]) -> None:
    write_table([row for row in read_rows(catalogue) if row["key"] not in keys], catalogue)


class Traffic:
    """Searches kept in flight by `workers` threads until `stop`; every answer is kept."""

    def __init__(self, url: str, photo: bytes, workers: int = 3) -> None:
        self.answers: list[tuple[str, httpx.Response]] = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(workers)
        self._runs = [self._pool.submit(self._run, url, photo, n) for n in range(workers)]

    def _run(self, url: str, photo: bytes, offset: int) -> None:
        turn = offset
        while not self._stop.is_set():
            query = QUERIES[turn % len(QUERIES)]
            self.answers.append((query, search(url, photo, query)))
            turn += 1

    def stop(self) -> list[tuple[str, httpx.Response]]:
        self._stop.set()
        for run in self._runs:
            run.result()
        self._pool.shutdown()
        return self.answers


@pytest.fixture
def own_index(own_world, index_cfg, embedder, tmp_path):
    """The copied catalogue indexed in a folder of its own; one Lucene build kept."""
    cfg = index_cfg(tmp_path / "index", keep_lucene_versions=1)
    reindex(own_world.catalogue, cfg, embedder)
    return cfg


@pytest.mark.slow
def test_a_reindex_under_live_traffic(indexed, own_world, own_index, embedder, room_photo):
    root = Path(own_index.dir)
    overrides = [*indexed.overrides, f"index.dir={root}", *FOLLOW_NOW, *SMALL_FUNNEL]
    with running_service(load_config(overrides)) as url:
        old = httpx.get(f"{url}/health").json()
        removed = set().union(*(keys_of(search(url, room_photo, q)) for q in QUERIES[1:]))
        added = add_new_beds(own_world.catalogue)
        remove_keys(own_world.catalogue, removed)

        traffic = Traffic(url, room_photo)
        report = reindex(own_world.catalogue, own_index, embedder)
        assert report.published and report.added == NEW_BEDS
        # The service still answers from the old build: pruning spared its folder.
        assert (root / LUCENE_DIR / old["index_build"]).is_dir()
        health = wait_for_health(url, lambda h: h["index_build"] == report.lucene)
        assert health["products"] == old["products"] + NEW_BEDS - len(removed)
        metrics = scrape(url)
        assert metrics[("mars_reindexes_total", ())] == 1
        assert metrics[("mars_promotions_total", ())] == 0
        (serving,) = [dict(labels) for name, labels in metrics if name == "mars_serving_info"]
        assert serving["index_build"] == report.lucene
        after = {query: search(url, room_photo, query) for query in QUERIES}
        answers = traffic.stop()

        assert all(answer.status_code == 200 for _, answer in answers), "a request failed"
        for _, answer in answers:
            build = answer.json()["served_by"]["index_build"]
            assert answer.headers["X-Mars-Index-Build"] == build
            assert not keys_of(answer) & (removed if build == report.lucene else added)
        assert keys_of(after[QUERIES[0]]) and keys_of(after[QUERIES[0]]) <= added
        assert not set().union(*map(keys_of, after.values())) & removed
        some_removed, some_added = sorted(removed)[0], sorted(added)[0]
        assert httpx.get(f"{url}/products/{some_removed}/image").status_code == 404
        assert httpx.get(f"{url}/products/{some_added}/image").status_code == 200

        # Every request is done: the old build is no longer held and the next prune takes it.
        assert leased_builds(root) == {report.lucene}
        assert prune_lucene(root, report.lucene, keep=1) == [old["index_build"]]

        # A published build that cannot be opened leaves the running one serving.
        good = IndexSnapshot.current(root).manifest
        write_json_atomic(root / MANIFEST_FILE, asdict(replace(good, lucene="no-such-build")))
        health = wait_for_health(url, lambda h: "index" in h["problems"])
        assert health["index_build"] == report.lucene
        assert "no-such-build" in health["problems"]["index"]
        assert search(url, room_photo, QUERIES[0]).status_code == 200
        write_json_atomic(root / MANIFEST_FILE, asdict(good))
        wait_for_health(url, lambda h: not h["problems"])


# ---- the champion ----------------------------------------------------------------------------


def save_lora(cfg, model_cache: Path, folder: Path) -> Path:
    """A zero-initialised LoRA on the tiny student (an identity update: a valid version)."""
    from peft import LoraConfig, get_peft_model

    base = load_vlm(cfg.student, model_cache).model
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(folder)
    return folder


def promote(folder: Path, cfg) -> int:
    """`folder` as a new version and the champion: an MLflow model of the student when it is
    one, else (a folder that is no student) a plain folder, as versions once were."""
    if (folder / "adapter_config.json").is_file():
        return register_student(folder, cfg, REGISTRY, alias=CHAMPION)
    return register_plain_folder(folder, REGISTRY, alias=CHAMPION)


@pytest.fixture(scope="module")
def champion_services(indexed) -> Iterator[tuple[str, str]]:
    """(following, pinned): two services of the registry's champion, the second pinned."""
    follow = [*indexed.overrides, f"student.registry={REGISTRY}", *FOLLOW_NOW, *SMALL_FUNNEL]
    pin = [*follow, "serve.follow_champion=false"]
    with (
        running_service(load_config(follow)) as following,
        running_service(load_config(pin)) as pinned,
    ):
        yield following, pinned


def student_version(url: str) -> int | None:
    return httpx.get(f"{url}/health").json()["student"]["version"]


@pytest.mark.slow
def test_the_service_follows_the_champion(
    champion_services, cfg, model_cache, room_photo, tmp_path
):
    following, pinned = champion_services
    assert student_version(following) is None and student_version(pinned) is None
    adapter = save_lora(cfg, model_cache, tmp_path / "lora")

    for _ in range(2):
        good = promote(adapter, cfg)
        health = wait_for_health(following, lambda h, v=good: h["student"]["version"] == v)
        answer = search(following, room_photo, "bed")
        assert f"{REGISTRY} v{good}" in answer.json()["ranked_by"]
        assert answer.json()["served_by"]["student"]["version"] == good
        assert answer.headers["X-Mars-Student"].endswith(f" v{good}")
        assert health["notice"] is None  # a trained student: no untrained warning
        search(pinned, room_photo, "bed")  # each request starts the pinned service's check

    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("neither an adapter nor a model")
    bad = promote(junk, cfg)
    health = wait_for_health(following, lambda h: "student" in h["problems"])
    assert health["student"]["version"] == good
    assert f"v{bad} could not be loaded" in health["problems"]["student"]
    assert f"v{good}" in search(following, room_photo, "bed").json()["ranked_by"]

    pinned_health = httpx.get(f"{pinned}/health").json()
    assert pinned_health["student"]["version"] is None and not pinned_health["problems"]
    metrics = scrape(following)
    assert metrics[("mars_promotions_total", ())] == 2
    assert metrics[("mars_reload_failures_total", (("part", "student"),))] == 1
    (serving,) = [dict(labels) for name, labels in metrics if name == "mars_serving_info"]
    assert serving["student_version"] == str(good)
