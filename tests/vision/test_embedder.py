"""The open_clip embedder: unit vectors, batch-independent, SigLIP text padding, named errors."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from support.catalogue_factory import product_image, read_rows

from mars_core.infra.errors import BadImageError, ImageMissingError, ImageTooLargeError
from mars_core.models.loading import clip_tokenizer, cpu_has_bf16
from mars_core.vision.embedder import Embedder


def images(n: int):
    return [product_image(seed, (120, 120, 120)) for seed in range(n)]


def test_vectors_are_unit_length_float32(embedder):
    vectors = embedder.embed_images(images(5), progress=False)
    texts = embedder.embed_texts(["a blue bed", "a red velvet armchair"])
    assert vectors.shape == (5, embedder.dim) and texts.shape == (2, embedder.dim)
    assert vectors.dtype == texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)


def test_batching_does_not_change_an_embedding(embedder):
    """Batches of the configured size give the same vectors as one image at a time."""
    small = Embedder(
        embedder.loaded, name="b2", model_id=embedder.model_id, batch_size=2, max_image_pixels=10**6
    )
    together = embedder.embed_images(images(5), progress=False)
    apart = small.embed_images(images(5), progress=False)
    np.testing.assert_allclose(together, apart, atol=1e-5)


def test_texts_are_padded_to_the_models_context_length(embedder):
    """SigLIP convention: fixed-length padding, so batch-mates do not change an embedding."""
    tokens = embedder.tokenize(["bed", "a long description of a blue velvet sofa " * 3])
    assert tokens.shape == (2, embedder.context_length)
    alone = embedder.embed_texts(["bed"])
    beside_a_long_text = embedder.embed_texts(["bed", "a very long text " * 10])[:1]
    np.testing.assert_allclose(alone, beside_a_long_text, atol=1e-6)


def test_paths_and_images_embed_alike(embedder, catalogue_world):
    row = read_rows(catalogue_world.catalogue)[0]
    from_path = embedder.embed_images([row["image_path"]], progress=False)
    from_image = embedder.embed_images([Image.open(row["image_path"])], progress=False)
    np.testing.assert_allclose(from_path, from_image, atol=1e-6)


def test_an_undecodable_image_is_named(embedder, tmp_path):
    broken = tmp_path / "truncated.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(BadImageError, match=r"truncated\.jpg.*JPEG, PNG"):
        embedder.embed_images([*images(2), broken], progress=False)
    with pytest.raises(BadImageError, match=r"missing\.png"):
        embedder.embed_images([tmp_path / "missing.png"], progress=False)


def test_an_image_over_the_pixel_limit_is_refused(embedder, tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (200, 200)).save(big)
    strict = Embedder(
        embedder.loaded,
        name="strict",
        model_id=embedder.model_id,
        batch_size=2,
        max_image_pixels=10_000,
    )
    with pytest.raises(ImageTooLargeError, match=r"big\.png.*40,000 pixels"):
        strict.embed_images([big], progress=False)


def test_the_embedder_sees_the_image_upright(embedder, tmp_path):
    """EXIF orientation is applied, as for the agent: a rotated file embeds as its upright twin."""
    upright = product_image(3, (120, 120, 120)).resize((64, 32))
    rotated = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: "rotate 90° clockwise to view"
    upright.transpose(Image.Transpose.ROTATE_90).save(rotated, exif=exif, quality=100)
    from_file = embedder.embed_images([rotated], progress=False)
    from_image = embedder.embed_images([upright], progress=False)
    assert float(np.sum(from_file * from_image)) > 0.99


def test_with_on_bad_a_broken_image_is_reported_and_left_out(embedder, tmp_path):
    broken = tmp_path / "truncated.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = images(3)
    reported = []
    batches = list(
        embedder.iter_images(
            [good[0], broken, good[1], tmp_path / "gone.png", good[2]],
            progress=False,
            on_bad=lambda position, error: reported.append((position, type(error))),
        )
    )
    assert reported == [(1, BadImageError), (3, ImageMissingError)]
    np.testing.assert_allclose(
        np.concatenate(batches), embedder.embed_images(good, progress=False), atol=1e-5
    )


def test_no_images_give_an_empty_matrix(embedder):
    assert embedder.embed_images([], progress=False).shape == (0, embedder.dim)


def test_bfloat16_on_cpu_where_supported(cfg, model_cache, embedder, caplog):
    bf16 = dataclasses.replace(cfg.embedder, dtype="bfloat16", device="cpu")
    with caplog.at_level(logging.WARNING):
        half = Embedder.from_config(bf16, model_cache, max_image_pixels=cfg.data.max_image_pixels)
    if cpu_has_bf16():
        assert half.dtype == torch.bfloat16
    else:
        assert half.dtype == torch.float32 and "bfloat16" in caplog.text
    vectors = half.embed_images(images(3), progress=False)
    assert vectors.dtype == np.float32
    full = embedder.embed_images(images(3), progress=False)
    assert np.all(np.sum(vectors * full, axis=1) > 0.98)  # same model, lower precision


def test_a_siglip_tokenizer_loads_from_a_local_folder(tmp_path):
    """Built-in SigLIP names fetch their tokenizer from the hub; a folder replaces it offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "a": 3, "blue": 4, "bed": 5}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    wrapped.save_pretrained(tmp_path)
    tokenizer = clip_tokenizer("ViT-SO400M-14-SigLIP-384", str(tmp_path))
    tokens = tokenizer(["a blue bed", "A BLUE BED!"])
    assert tokens.shape == (2, 64)  # the model's context length, padded
    assert tokens[0].tolist() == tokens[1].tolist()  # SigLIP's canonicalize: case, punctuation
    assert tokens[0, :3].tolist() == [3, 4, 5]


def test_a_missing_siglip_tokenizer_says_what_to_set():
    with pytest.raises(FileNotFoundError, match=r"embedder\.tokenizer"):
        clip_tokenizer("ViT-SO400M-14-SigLIP-384", None)


def test_real_model_options_are_config_only(session_overrides):
    from mars_core.app.compose import load_config

    so400m = load_config([*session_overrides, "embedder=siglip_so400m"]).embedder
    marqo = load_config([*session_overrides, "embedder=marqo_ecommerce_b"]).embedder
    assert so400m.model == "ViT-SO400M-14-SigLIP-384" and so400m.dtype == "bfloat16"
    assert so400m.tokenizer and so400m.pretrained
    assert marqo.model.startswith("local-dir:") and marqo.tiny is None
