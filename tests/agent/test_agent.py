"""The agent on the tiny student: fast score, room-prefix reuse, the funnel stage, adapters."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mlflow
import pytest
import torch
from support.agent_views import ROOM, product_views
from support.registry import register_plain_folder, register_student

from mars_core.agent.adapter import resolve_adapter
from mars_core.agent.ordering import BY_AGENT, Ordering
from mars_core.agent.scorer import AgentScorer
from mars_core.agent.stage import AgentStage
from mars_core.funnel.stages import AGENT, SIGLIP, open_agent
from mars_core.infra.errors import AdapterNotFoundError
from mars_core.models.loading import load_vlm
from mars_core.search.types import Candidate, SearchRequest


@pytest.fixture(scope="module")
def scorer(cfg, model_cache) -> AgentScorer:
    return AgentScorer.from_config(dataclasses.replace(cfg.student, batch_size=3), model_cache)


def test_room_prefix_reuse_matches_a_full_forward(scorer):
    """Prefix KV cache + sliced M-RoPE positions give the full forward's scores.

    A wrong position slice moves the tiny model's scores by ~1e-3, far above the tolerance.
    """
    products = product_views(7)
    reused = scorer.score(ROOM, "a bed", products, reuse_room_prefix=True)
    full = [scorer.score(ROOM, "a bed", [p], reuse_room_prefix=False)[0] for p in products]
    assert reused == pytest.approx(full, abs=1e-5)


def test_scores_do_not_depend_on_batching(scorer):
    products = product_views(5)
    batched = scorer.score(ROOM, "a bed", products)
    single = [scorer.score(ROOM, "a bed", [p])[0] for p in products]
    assert batched == pytest.approx(single, abs=1e-5)
    assert all(0.0 <= s <= 1.0 for s in batched)
    assert scorer.score(ROOM, "a bed", []) == []


def test_generate_returns_one_answer_per_product_and_parses_or_flags(scorer):
    answers = scorer.generate(ROOM, "a bed", product_views(4), max_new_tokens=6)
    assert len(answers) == 4
    for generated in answers:
        assert isinstance(generated.text, str)
        # A random model writes no JSON: flagged as None, never an exception.
        assert generated.answer is None


def _catalogue(tmp_path: Path) -> list[Candidate]:
    candidates = []
    for i, view in enumerate(product_views(5)):
        path = tmp_path / f"p{i}.png"
        view.image.save(path)
        product = {"name": f"Bed {i}", "category": "BED", "image_path": str(path)}
        candidates.append(Candidate(key=f"b{i}@x", product=product, scores={"siglip": 1 - i / 10}))
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    product = {"name": "Ghost bed", "category": "BED", "image_path": str(broken)}
    candidates.append(Candidate(key="ghost@x", product=product, scores={"siglip": 0.1}))
    return candidates


def _stage(scorer, *, fit_bar: float, rationales: int = 2) -> AgentStage:
    """The agent stage as the registry names it, presenting what it scores at `fit_bar` up."""
    return AgentStage(
        name=AGENT,
        similarity=SIGLIP,
        scorer=scorer,
        rationale_top_n=rationales,
        max_image_pixels=10**6,
        ordering=Ordering(BY_AGENT, 0.0, fit_bar),
    )


def test_agent_stage_ranks_keeps_k_and_names_skipped_products(scorer, tmp_path):
    stage = _stage(scorer, fit_bar=0.0)  # every candidate fits: the stage keeps k
    out = stage.rank(SearchRequest(room=ROOM, query="bed"), _catalogue(tmp_path), k=3)
    assert stage.name == "agent"
    scores = [c.scores["agent"] for c in out.candidates]
    assert len(out.candidates) == 3 and scores == sorted(scores, reverse=True)
    assert all("siglip" in c.scores for c in out.candidates)  # earlier stages' scores kept
    assert [s.key for s in out.skipped] == ["ghost@x"]
    assert out.skipped[0].reason == "BadImageError" and "broken.jpg" in out.skipped[0].detail
    assert out.details["scored"] == 5 and out.details["rationales"] == 2
    # The random student writes no JSON: both rationales counted as malformed, none invented.
    assert out.details["malformed_rationales"] == 2
    assert all(c.rationale is None for c in out.candidates)
    with pytest.raises(ValueError, match="earlier stage"):
        stage.rank(SearchRequest(room=ROOM, query="bed"), None, k=3)


def test_the_agent_presents_its_fits_or_says_nothing_fits(scorer, tmp_path):
    """The stage, not the funnel, decides: only what it scores at or over its fit bar is
    presented, and when nothing is, all of its top k are, as the closest options."""
    request = SearchRequest(room=ROOM, query="bed")
    every = _stage(scorer, fit_bar=0.0, rationales=0).rank(request, _catalogue(tmp_path), k=3)
    scores = {c.key: c.scores[AGENT] for c in every.candidates}
    bar = max(scores.values())
    fits = _stage(scorer, fit_bar=bar, rationales=0).rank(request, _catalogue(tmp_path), k=3)
    assert [c.key for c in fits.candidates] == [k for k, score in scores.items() if score >= bar]
    assert not fits.nothing_fits and not every.nothing_fits
    above = _stage(scorer, fit_bar=bar + 0.01, rationales=0)
    none = above.rank(request, _catalogue(tmp_path), k=3)
    assert none.nothing_fits and [c.key for c in none.candidates] == list(scores)


# ---- adapters ---------------------------------------------------------------------------------


def _save_lora(cfg, model_cache, folder: Path, *, random_b: bool) -> Path:
    """A PEFT LoRA adapter on the tiny student; `random_b` makes its update non-zero."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    base = load_vlm(cfg.student, model_cache).model
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=not random_b
    )
    get_peft_model(base, lora).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def base_scores(scorer) -> list[float]:
    return scorer.score(ROOM, "a bed", product_views(7))


def _scores_with_adapter(cfg, model_cache, adapter: str) -> list[float]:
    student = dataclasses.replace(cfg.student, adapter=adapter)
    return AgentScorer.from_config(student, model_cache).score(ROOM, "a bed", product_views(7))


def test_lora_adapter_folder_round_trip(cfg, model_cache, base_scores, tmp_path):
    moved = _save_lora(cfg, model_cache, tmp_path / "random", random_b=True)
    zero = _save_lora(cfg, model_cache, tmp_path / "zero", random_b=False)
    with_random = _scores_with_adapter(cfg, model_cache, str(moved))
    with_zero = _scores_with_adapter(cfg, model_cache, str(zero))
    assert max(abs(a - b) for a, b in zip(with_random, base_scores, strict=True)) > 1e-4
    # A zero-initialised LoRA (B = 0) is the identity: loading and merging are exact.
    assert with_zero == pytest.approx(base_scores, abs=1e-6)


@pytest.mark.parametrize("as_mlflow_model", [True, False], ids=["mlflow-model", "plain-folder"])
def test_lora_adapter_from_the_mlflow_registry(
    cfg, model_cache, base_scores, tmp_path, as_mlflow_model
):
    """A version registered as an MLflow model (the train flow's way) and one registered as a
    plain folder (before it) both resolve to the adapter and score as the folder does."""
    folder = _save_lora(cfg, model_cache, tmp_path / "adapter", random_b=True)
    name = f"mars-student-test-{'model' if as_mlflow_model else 'folder'}"
    if as_mlflow_model:
        version = register_student(folder, cfg, name, alias="champion")
    else:
        version = register_plain_folder(folder, name, alias="champion")
    resolved = resolve_adapter(f"models:/{name}@champion")
    assert (resolved / "adapter_config.json").is_file()
    assert resolved.resolve() != folder.resolve()  # the registry's copy, not the source
    assert resolve_adapter(f"models:/{name}/{version}") == resolved
    from_registry = _scores_with_adapter(cfg, model_cache, f"models:/{name}@champion")
    from_folder = _scores_with_adapter(cfg, model_cache, str(folder))
    assert from_registry == pytest.approx(from_folder, abs=1e-6)
    assert from_registry != pytest.approx(base_scores, abs=1e-4)
    assert mlflow.active_run() is None


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("/no/such/adapter", "no folder at"),
        ("models:/mars-student-test", "not a model URI we read"),
        ("models:/no-such-model@champion", "not found in the MLflow registry"),
        ("models:/mars-student-test@no-such-alias", "not found in the MLflow registry"),
    ],
)
def test_unknown_adapter_is_named_with_what_is_accepted(cfg, model_cache, spec, says):
    student = dataclasses.replace(cfg.student, adapter=spec)
    with pytest.raises(AdapterNotFoundError, match=says) as info:
        AgentScorer.from_config(student, model_cache)
    message = str(info.value)
    assert "\n" not in message and spec in message
    assert "adapter_config.json" in message and "models:/<name>@<alias>" in message


def test_a_folder_without_adapter_or_model_config_is_refused(tmp_path):
    with pytest.raises(
        AdapterNotFoundError, match=r"holds neither adapter_config\.json nor config\.json"
    ):
        resolve_adapter(str(tmp_path))


def test_agent_stage_from_config_takes_the_funnel_sizes(cfg):
    stage = open_agent(cfg)
    assert stage.rationale_top_n == cfg.funnel.rationale_top_n
    assert stage.max_image_pixels == cfg.data.max_image_pixels
    assert stage.scorer.batch_size == cfg.student.batch_size
    assert stage.scorer.reuse_room_prefix is cfg.student.reuse_room_prefix
