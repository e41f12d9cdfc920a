"""Stage-3 speed paths on the tiny student: bounded product images, batched answers on the
shared room prefix, cached product visual tokens. Each is checked against the plain path."""

from __future__ import annotations

import dataclasses

import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from support.agent_views import ROOM, product_views
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

from mars_core.agent.scorer import AgentScorer
from mars_core.agent.vision import VISION_GRID, bound_image, image_digest
from mars_core.agent.visual_cache import VISUAL_TOKENS_SCHEMA, VisualCache
from mars_core.agent.visual_cache_build import build_visual_cache
from mars_core.app.compose import load_config
from mars_core.config import StudentConfig
from mars_core.config.student import GRID_SLACK
from mars_core.infra.skipped import Skipped
from mars_core.prompt import answer_opening

PRODUCT_PIXELS = 56 * 56 * 2
# Images 28 px wider each: from the third on, products are over the bound (PRODUCT_PIXELS).
WIDE = 28


@pytest.fixture(scope="module")
def scorer(cfg, model_cache) -> AgentScorer:
    student = dataclasses.replace(
        cfg.student,
        batch_size=4,
        min_pixels=PRODUCT_PIXELS // GRID_SLACK,
        product_max_pixels=PRODUCT_PIXELS,
    )
    return AgentScorer.from_config(student, model_cache)


def _like(scorer: AgentScorer, **changes) -> AgentScorer:
    """Another scorer on the same model with some knobs changed."""
    knobs = {
        "batch_size": scorer.batch_size,
        "max_new_tokens": scorer.max_new_tokens,
        "reuse_room_prefix": True,
        "product_max_pixels": scorer.product_max_pixels,
        "visual_cache": scorer.visual_cache,
    }
    return AgentScorer(scorer.model, scorer.processor, **(knobs | changes))


def test_product_images_get_their_own_pixel_bound(scorer):
    big = Image.new("RGB", (300, 200), (10, 20, 30))
    bounded = scorer.bound_product_image(big)
    assert bounded.width * bounded.height <= PRODUCT_PIXELS
    assert bounded.width % 28 == 0 and bounded.height % 28 == 0
    assert scorer.bound_product_image(bounded) is bounded  # already on the grid: untouched
    assert _like(scorer, product_max_pixels=None).bound_product_image(big) is big


def test_product_bound_must_lie_between_the_image_bounds():
    with pytest.raises(ValueError, match=r"student\.product_max_pixels"):
        StudentConfig(product_max_pixels=10)
    with pytest.raises(ValueError, match=r"student\.product_max_pixels"):
        StudentConfig(product_max_pixels=10**9)
    # A minimum as large as the bound: non-square photos would be enlarged past it again.
    with pytest.raises(ValueError, match=r"student\.min_pixels"):
        StudentConfig(min_pixels=112 * 112, product_max_pixels=112 * 112, max_pixels=448 * 448)


@pytest.mark.parametrize("option", ["tiny", "qwen2vl_2b", "vllm"])
def test_every_student_feeds_bounded_products_as_they_are(option):
    """Catalogue photos of any shape, bounded as the agent and SFT bound them, are what the
    model's processor takes unchanged (on its grid, within its area bounds): never enlarged
    again, so never more visual tokens than `product_max_pixels` allows."""
    student = load_config([f"student={option}"]).student
    tokens = student.product_max_pixels // VISION_GRID**2
    for width, height in [(300, 300), (320, 310), (480, 300), (680, 310), (2000, 1500)] + [
        (w, 200) for w in (60, 450, 900, 1800, 4000)
    ]:
        photo = Image.new("RGB", (width, height))
        bounded = bound_image(photo, VISION_GRID, student.min_pixels, student.product_max_pixels)
        fed = smart_resize(
            bounded.height, bounded.width, VISION_GRID, student.min_pixels, student.max_pixels
        )
        assert fed == (bounded.height, bounded.width), (option, photo.size, bounded.size)
        assert bounded.width * bounded.height // VISION_GRID**2 <= tokens


def test_answers_on_the_shared_prefix_equal_per_candidate_generate(scorer):
    """One left-padded batch of 4 (+1) on the room's KV cache writes exactly what `generate`
    writes for each whole prompt alone (greedy)."""
    products = product_views(5, width_step=WIDE)
    batched = scorer.generate(ROOM, "a bed", products, max_new_tokens=10, reuse_room_prefix=True)
    alone = [
        scorer.generate(ROOM, "a bed", [p], max_new_tokens=10, reuse_room_prefix=False)[0]
        for p in products
    ]
    assert [a.text for a in batched] == [a.text for a in alone]
    forced = scorer.generate(ROOM, "a bed", products[:2], max_new_tokens=6, min_new_tokens=6)
    assert len(forced) == 2


def test_rationales_after_known_scores_on_the_prefix_equal_whole_prompts(scorer):
    """With the scores known, each answer opens with its score written out and the model
    writes only the rationale: the same on the room prefix (batched, and merged with answers
    that open with nothing) as for each whole prompt alone through HF `generate`."""
    products = product_views(5, width_step=WIDE)
    scores = [0.04, 0.5, 0.96, 1.0, 0.31]
    scorer.forget_room()  # nothing scored: the answers run their prompts on the prefix
    batched = scorer.generate(ROOM, "a bed", products, scores=scores, max_new_tokens=6)
    alone = [
        scorer.generate(ROOM, "a bed", [p], scores=[s], max_new_tokens=6, reuse_room_prefix=False)[
            0
        ]
        for p, s in zip(products, scores, strict=True)
    ]
    assert [a.text for a in batched] == [a.text for a in alone]
    for answer, score in zip(batched, scores, strict=True):
        assert answer.text.startswith(answer_opening(score))
        assert len(answer.text) > len(answer_opening(score))  # 6 new tokens follow it
    jobs = [(ROOM, "a bed", products[:2]), (ROOM, "a lamp", products[2:3])]
    mixed = scorer.generate_many(jobs, 6, scores=[scores[:2], None])
    assert [a.text for a in mixed[0]] == [a.text for a in batched[:2]]
    plain = scorer.generate(ROOM, "a lamp", products[2:3], max_new_tokens=6)
    assert [a.text for a in mixed[1]] == [a.text for a in plain]
    with pytest.raises(ValueError, match="2 scores for 3 products"):
        scorer.generate(ROOM, "a bed", products[:3], scores=scores[:2])


def test_rationales_continue_the_scoring_pass_and_equal_whole_prompts(scorer):
    """After `score`, each answer continues its candidate's scoring pass: product image and
    text are already in the KV cache (a 1.0 cuts off the probe's `0.`), so the model runs only
    the rest of each opening, then decodes; the answers equal whole prompts through HF
    `generate`."""
    products = product_views(5, width_step=WIDE)
    scores = [0.04, 0.5, 0.96, 1.0, 0.31]
    scorer.forget_room()
    scorer.score(ROOM, "a bed", products)
    fed: list[int] = []
    hook = scorer.model.register_forward_pre_hook(
        lambda _, args, kwargs: fed.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    try:
        continued = scorer.generate(ROOM, "a bed", products, scores=scores, max_new_tokens=6)
    finally:
        hook.remove()
    alone = [
        scorer.generate(ROOM, "a bed", [p], scores=[s], max_new_tokens=6, reuse_room_prefix=False)[
            0
        ]
        for p, s in zip(products, scores, strict=True)
    ]
    assert [a.text for a in continued] == [a.text for a in alone]
    tokenizer = scorer.processor.tokenizer
    longest_opening = max(len(tokenizer.encode(answer_opening(s))) for s in scores)
    assert len(fed) >= 2 * 6  # two batches (4 + 1) of an opening forward + 5 decode steps
    assert max(fed) < longest_opening  # no product image or text ran again


def test_rationales_continue_the_pass_of_their_own_product_when_texts_are_alike(scorer):
    """Catalogue products often share name and attributes: each answer continues the scoring
    pass of its own photo, not of another product with the same text."""
    alike = [dataclasses.replace(p, text="Oak bed (category: BED)") for p in product_views(4)]
    scores = [0.9, 0.9, 0.2, 0.2]
    scorer.forget_room()
    scorer.score(ROOM, "a bed", alike)
    continued = scorer.generate(ROOM, "a bed", alike, scores=scores, max_new_tokens=8)
    alone = [
        scorer.generate(ROOM, "a bed", [p], scores=[s], max_new_tokens=8, reuse_room_prefix=False)[
            0
        ]
        for p, s in zip(alike, scores, strict=True)
    ]
    assert [a.text for a in continued] == [a.text for a in alone]


def test_scores_and_answers_with_cached_visual_tokens_match_the_tower(scorer, tmp_path):
    products = product_views(5, width_step=WIDE)
    tower_scores = scorer.score(ROOM, "a bed", products)
    tower_answers = scorer.generate(ROOM, "a bed", products, max_new_tokens=8)
    broken = OSError("cannot read p9.jpg")
    images = [(f"p{i}", p.image) for i, p in enumerate(products[:3])] + [("p9", broken)]
    report = build_visual_cache(scorer, images, tmp_path)
    assert (report.computed, report.entries, report.images) == (3, 3, 3)
    assert report.skipped == [Skipped("p9", "OSError", "cannot read p9.jpg")]
    assert report.bytes_per_product > 0
    assert pq.read_schema(report.path).equals(VISUAL_TOKENS_SCHEMA)
    # A second build computes nothing new.
    assert build_visual_cache(scorer, images[:3], tmp_path).computed == 0

    cache = VisualCache.load(tmp_path, scorer.vision_fingerprint)
    cached = _like(scorer, visual_cache=cache)  # products 3 and 4 miss: the tower runs for them
    assert cached.score(ROOM, "a bed", products) == pytest.approx(tower_scores, abs=1e-5)
    answers = cached.generate(ROOM, "a bed", products, max_new_tokens=8)
    assert [a.text for a in answers] == [a.text for a in tower_answers]
    digest = image_digest(scorer.bound_product_image(products[0].image))
    assert cache.get(digest) is not None


def test_a_different_vision_setting_reads_other_cached_tokens(scorer):
    """The fingerprint covers the product bound (and the tower's config and weights)."""
    other = _like(scorer, product_max_pixels=56 * 56)
    assert other.vision_fingerprint != scorer.vision_fingerprint
    assert _like(scorer).vision_fingerprint == scorer.vision_fingerprint


def test_queries_of_different_rooms_merge_into_one_batch(scorer):
    """Concurrent users: candidates of two rooms (prefixes of different lengths, padded) in
    shared batches score and answer as each query alone."""
    tall = Image.new("RGB", (100, 200), (90, 20, 20))
    products = product_views(3, width_step=WIDE)
    jobs = [(ROOM, "a bed", products), (tall, "a lamp for my bedroom", products[:2])]
    merged = scorer.score_many(jobs)
    alone = [scorer.score(room, query, items) for room, query, items in jobs]
    assert merged[0] == pytest.approx(alone[0], abs=1e-5)
    assert merged[1] == pytest.approx(alone[1], abs=1e-5)
    answers = scorer.generate_many(jobs, max_new_tokens=8)
    single = [scorer.generate(room, query, items, max_new_tokens=8) for room, query, items in jobs]
    assert [[a.text for a in job] for job in answers] == [[a.text for a in job] for job in single]
    assert scorer.score_many([]) == [] and scorer.score_many([(ROOM, "a bed", [])]) == [[]]


def test_many_queries_of_one_room_encode_their_prefixes_on_one_stem(scorer, monkeypatch):
    """The categories asked about beyond a query: more queries of one room than a batch
    holds. Their shared stem (system text, room image) is encoded once, the room photo
    through the vision tower once, and every query's words continue it; the prefixes hold
    the tokens of whole prompts, all stay kept for the answers that follow, and the scores
    equal whole prompts'."""
    from mars_core.agent.room_prefix import RoomPrefix, inner_model, prefix_text

    fresh = _like(scorer)
    queries = [f"query {i}" for i in range(fresh.batch_size + 2)] + ["a much longer query here"]
    jobs = [(ROOM, query, product_views(2, width_step=WIDE)) for query in queries]
    core = inner_model(fresh.model)
    towers = []
    features = core.get_image_features

    def counted(pixel_values, grid, **kwargs):
        towers.append(grid.shape[0])
        return features(pixel_values, grid, **kwargs)

    monkeypatch.setattr(core, "get_image_features", counted)
    merged = fresh.score_many(jobs)
    assert towers[0] == 1 and sum(towers[1:]) == 2 * len(jobs)  # the room once, then products
    assert len(fresh._prefixes._kept) == len(queries)
    for (room, query, products), got in zip(jobs, merged, strict=True):
        whole_scores = fresh.score(room, query, products, reuse_room_prefix=False)
        assert got == pytest.approx(whole_scores, abs=1e-5)
    towers.clear()
    fresh.generate_many(jobs, max_new_tokens=2, scores=merged)
    assert towers == []  # every prefix kept, every answer continues its scoring pass
    # the prefixes on the stem hold whole prompts' tokens and (within rounding) cache
    prompts = [fresh.prompt_text(query, "x") for query in queries[-2:]]
    whole = RoomPrefix.encode(fresh, [ROOM, ROOM], [prefix_text(p) for p in prompts])
    kept_ones = fresh._prefixes.get(fresh, [(ROOM, p) for p in prompts])
    for kept, alone in zip(kept_ones, whole, strict=True):
        assert kept.length == alone.length
        assert all(torch.equal(kept.inputs[key], alone.inputs[key]) for key in alone.inputs)
        assert torch.allclose(kept.kv[-1][0], alone.kv[-1][0], atol=1e-5)


def test_the_batcher_merges_concurrent_requests_and_answers_each(scorer):
    """Three threads' queries (2 candidates each) fill one batch of 6: one merged run, and
    each thread gets its own query's scores and answers."""
    from concurrent.futures import ThreadPoolExecutor

    from mars_core.agent.batching import AgentBatcher

    rooms = [ROOM, Image.new("RGB", (100, 200), (90, 20, 20)), Image.new("RGB", (80, 80))]
    jobs = [(room, f"query {i}", product_views(2, width_step=WIDE)) for i, room in enumerate(rooms)]
    batcher = AgentBatcher(_like(scorer, batch_size=6), window_s=60.0)
    try:
        with ThreadPoolExecutor(len(jobs)) as pool:
            scores = list(pool.map(lambda job: batcher.score(*job), jobs))
        assert batcher.largest_merge == len(jobs)
        for (room, query, products), got in zip(jobs, scores, strict=True):
            assert got == pytest.approx(scorer.score(room, query, products), abs=1e-5)
        batcher.window_s = 0.05  # a lone request below a full batch waits out the window
        answers = batcher.generate(
            ROOM, "a bed", product_views(2, width_step=WIDE), max_new_tokens=4
        )
        assert len(answers) == 2
        views = product_views(2, width_step=WIDE)
        explained = batcher.generate(ROOM, "a bed", views, scores=[0.2, 0.9], max_new_tokens=4)
        direct = scorer.generate(ROOM, "a bed", views, scores=[0.2, 0.9], max_new_tokens=4)
        assert [a.text for a in explained] == [a.text for a in direct]
    finally:
        batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.score(ROOM, "a bed", product_views(1, width_step=WIDE))
