"""Tiny offline models: built once per recipe, loaded through the real models' code path."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from PIL import Image

from mars_core.models.cache import COMPLETE_MARKER
from mars_core.models.loading import load_clip, load_vlm, tiny_model_dir
from mars_core.models.tiny_vlm import mrope_section


def _room_and_product() -> list[Image.Image]:
    return [Image.new("RGB", (120, 90), (30, 90, 200)), Image.new("RGB", (64, 64), (200, 40, 40))]


@pytest.mark.parametrize("role", ["student", "teacher"])
def test_tiny_vlm_loads_through_auto_classes_and_runs(role, cfg, session_overrides, model_cache):
    from mars_core.app.compose import load_config

    part = (
        cfg.student
        if role == "student"
        else load_config([*session_overrides, "teacher=tiny_vlm"]).teacher
    )
    loaded = load_vlm(part, model_cache)
    assert type(loaded.model).__name__ == (
        "Qwen2VLForConditionalGeneration"
        if role == "student"
        else "Qwen2_5_VLForConditionalGeneration"
    )
    messages = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "bed?"}],
        }
    ]
    text = loaded.processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = loaded.processor(text=[text], images=_room_and_product(), return_tensors="pt")
    with torch.no_grad():
        logits = loaded.model(**inputs).logits
    assert logits.shape[:2] == inputs["input_ids"].shape
    assert torch.isfinite(logits).all()
    # The configured max_pixels reached the processor: at most 16 merged tokens per image.
    image_tokens = (inputs["input_ids"] == loaded.model.config.image_token_id).sum().item()
    assert image_tokens <= 2 * part.max_pixels // (28 * 28)


def test_tiny_vlm_trains(cfg, model_cache):
    """A real backward pass moves the weights (the SFT path relies on it)."""
    loaded = load_vlm(cfg.student, model_cache)
    model = loaded.model.train()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}]
    text = loaded.processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = loaded.processor(text=[text], images=_room_and_product()[:1], return_tensors="pt")
    before = model.lm_head.weight.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss = model(**inputs, labels=inputs["input_ids"]).loss
    loss.backward()
    optimizer.step()
    assert not torch.equal(before, model.lm_head.weight)


def test_tiny_clip_loads_through_open_clip_and_embeds(cfg, model_cache):
    loaded = load_clip(cfg.embedder, model_cache)
    assert loaded.name.startswith("local-dir:")
    images = torch.stack([loaded.preprocess(im) for im in _room_and_product()])
    tokens = loaded.tokenizer(["a blue bed", "a red chair"])
    assert tokens.shape == (2, cfg.embedder.tiny.context_length)
    with torch.no_grad():
        image_emb = loaded.model.encode_image(images, normalize=True)
        text_emb = loaded.model.encode_text(tokens, normalize=True)
    assert image_emb.shape == text_emb.shape == (2, cfg.embedder.tiny.embed_dim)
    assert torch.allclose(image_emb.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_build_is_cached_and_rebuilt_when_the_recipe_changes(cfg, tmp_path):
    recipe = cfg.embedder.tiny
    first = tiny_model_dir(recipe, tmp_path)
    stamp = (first / COMPLETE_MARKER).stat().st_mtime_ns
    assert tiny_model_dir(recipe, tmp_path) == first
    assert (first / COMPLETE_MARKER).stat().st_mtime_ns == stamp
    changed = tiny_model_dir(dataclasses.replace(recipe, text_layers=1), tmp_path)
    assert changed != first and (changed / COMPLETE_MARKER).is_file()


def test_same_recipe_same_weights(cfg, tmp_path):
    """Fixed seed: two builds in different caches give identical weights."""
    a = tiny_model_dir(cfg.embedder.tiny, tmp_path / "a")
    b = tiny_model_dir(cfg.embedder.tiny, tmp_path / "b")
    assert (a / "open_clip_model.safetensors").read_bytes() == (
        b / "open_clip_model.safetensors"
    ).read_bytes()


def test_a_crashed_build_leaves_nothing_loadable(tmp_path):
    from mars_core.models.cache import cached_build

    def broken(out):
        (out / "half.bin").write_bytes(b"x")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cached_build(tmp_path / "m", broken)
    assert not (tmp_path / "m").exists()
    assert list(tmp_path.iterdir()) == []


def test_mrope_sections_cover_half_the_head():
    assert mrope_section(128) == [16, 24, 24]  # Qwen2-VL-2B's own split
    assert sum(mrope_section(32)) == 16


def _four_bit_forward(cfg, model_cache, device: str) -> None:
    part = dataclasses.replace(cfg.student, load_in_4bit=True, device=device)
    loaded = load_vlm(part, model_cache)
    model = loaded.model
    assert type(model.model.language_model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    assert type(model.model.visual.blocks[0].attn.qkv).__name__ == "Linear"  # kept full
    assert type(model.lm_head).__name__ == "Linear"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}]
    text = loaded.processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = loaded.processor(text=[text], images=_room_and_product()[:1], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs.to(model.device)).logits
    assert torch.isfinite(logits).all()


@pytest.mark.slow
def test_qlora_base_loads_in_nf4_with_vision_tower_and_head_full(cfg, model_cache):
    """bitsandbytes' CPU path: the same quantisation config the GPU run uses."""
    _four_bit_forward(cfg, model_cache, "cpu")


@pytest.mark.gpu
def test_qlora_base_loads_in_nf4_on_cuda(cfg, model_cache):
    _four_bit_forward(cfg, model_cache, "cuda")


def test_a_build_that_loses_the_race_keeps_the_winners_folder(tmp_path):
    from mars_core.models.cache import cached_build

    target = tmp_path / "m"

    def slow_build(out):
        # While this build runs, another process completes the same folder.
        target.mkdir()
        (target / "weights").write_text("winner")
        (target / COMPLETE_MARKER).write_text("ok\n")
        (out / "weights").write_text("loser")

    assert cached_build(target, slow_build) == target
    assert (target / "weights").read_text() == "winner"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
