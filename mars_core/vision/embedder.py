"""Image and text embeddings from any open_clip model (tiny, SigLIP-so400m, Marqo e-commerce).

Vectors come out float32 and L2-normalised, so a dot product is the cosine similarity that
stage 2 ranks by and LanceDB's cosine index measures. Texts are padded to the model's own
context length: SigLIP was trained on texts padded to a fixed length, and an embedding must
not depend on which other texts share its batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from mars_core.config import EmbedderConfig
from mars_core.infra.batching import batched
from mars_core.infra.errors import UserInputError
from mars_core.infra.runtime import bar_disable
from mars_core.models.loading import LOCAL_DIR, LoadedClip, load_clip
from mars_core.vision.images import load_image

ImageInput = str | Path | Image.Image
# Told (position in the input, error) for each image that cannot be loaded.
OnBadImage = Callable[[int, UserInputError], None]


class ImageEmbedder(Protocol):
    """What the index build needs from an embedder: its identity, vector size and vectors."""

    name: str
    model_id: str  # which weights: vectors of two model ids are not comparable
    dim: int

    def iter_images(
        self,
        images: Sequence[ImageInput],
        *,
        progress: bool = True,
        on_bad: OnBadImage | None = None,
    ) -> Iterator[np.ndarray]: ...


def open_image(image: ImageInput, max_pixels: int) -> Image.Image:
    """An upright RGB image, through the shared loader, so the embedder sees what the agent
    sees; a bad file raises `BadImageError` / `ImageTooLargeError` naming itself."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return load_image(image, max_pixels)


def model_id(source: str, cfg: EmbedderConfig) -> str:
    """A name for the weights that does not depend on where they sit on disk.

    A local-dir: folder is named by its last part (tiny models: `tiny-clip-<recipe hash>`), a
    built-in model by its name and weights file.
    """
    if source.startswith(LOCAL_DIR):
        return Path(source.removeprefix(LOCAL_DIR)).name
    return f"{source}@{Path(cfg.pretrained).name}" if cfg.pretrained else source


def l2_normalise(vectors: torch.Tensor) -> np.ndarray:
    """float32 rows of unit length (computed in float32 whatever the model's dtype)."""
    vectors = vectors.float()
    return torch.nn.functional.normalize(vectors, dim=-1).cpu().numpy()


class Embedder:
    """An open_clip model that embeds images and texts in batches."""

    def __init__(
        self,
        loaded: LoadedClip,
        *,
        name: str,
        model_id: str,
        batch_size: int,
        max_image_pixels: int,
    ) -> None:
        self.loaded = loaded
        self.name = name
        self.model_id = model_id
        self.batch_size = batch_size
        self.max_image_pixels = max_image_pixels
        self.context_length = int(loaded.model.context_length)
        self.dim = int(self._encode_texts([""]).shape[1])

    @classmethod
    def from_config(
        cls, cfg: EmbedderConfig, cache_dir: Path | str, *, max_image_pixels: int
    ) -> Embedder:
        """Load the configured model (the tiny one is built into `cache_dir` first); images
        over `max_image_pixels` (data.max_image_pixels) are refused before decoding."""
        loaded = load_clip(cfg, Path(cache_dir))
        return cls(
            loaded,
            name=cfg.name,
            model_id=model_id(loaded.name, cfg),
            batch_size=cfg.batch_size,
            max_image_pixels=max_image_pixels,
        )

    @property
    def dtype(self) -> torch.dtype:
        return self.loaded.dtype

    def iter_images(
        self,
        images: Sequence[ImageInput],
        *,
        progress: bool = True,
        on_bad: OnBadImage | None = None,
    ) -> Iterator[np.ndarray]:
        """One (batch, dim) array per batch, in input order; a broken image raises, named.

        With `on_bad`, a broken image is reported to it instead and has no row: a batch's
        array then holds only its loadable images (and a batch without any yields nothing).
        """
        model = self.loaded.model
        bar = tqdm(
            total=len(images), desc=f"embed images ({self.name})", disable=bar_disable(not progress)
        )
        with bar, torch.inference_mode():
            for number, batch in enumerate(batched(images, self.batch_size)):
                pixels = self._preprocess(batch, number * self.batch_size, on_bad)
                bar.update(len(batch))
                if pixels:
                    stacked = torch.stack(pixels).to(self.loaded.device, self.loaded.dtype)
                    yield l2_normalise(model.encode_image(stacked))

    def _preprocess(
        self, batch: Sequence[ImageInput], start: int, on_bad: OnBadImage | None
    ) -> list[torch.Tensor]:
        """Model inputs of the batch's loadable images (all of them, or raise, without on_bad)."""
        pixels = []
        for position, image in enumerate(batch, start=start):
            try:
                pixels.append(self.loaded.preprocess(open_image(image, self.max_image_pixels)))
            except UserInputError as error:
                if on_bad is None:
                    raise
                on_bad(position, error)
        return pixels

    def embed_images(self, images: Sequence[ImageInput], *, progress: bool = True) -> np.ndarray:
        """(n, dim) unit vectors of images given as paths or PIL images."""
        return self._stack(list(self.iter_images(images, progress=progress)))

    def embed_texts(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """(n, dim) unit vectors of texts, each padded to the model's context length."""
        chunks = []
        bar = tqdm(
            total=len(texts), desc=f"embed texts ({self.name})", disable=bar_disable(not progress)
        )
        with bar:
            for part in batched(texts, self.batch_size):
                batch = list(part)
                chunks.append(self._encode_texts(batch))
                bar.update(len(batch))
        return self._stack(chunks)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Token ids padded (or truncated) to exactly the model's context length."""
        return self.loaded.tokenizer(texts, context_length=self.context_length)

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenize(texts).to(self.loaded.device)
        with torch.inference_mode():
            return l2_normalise(self.loaded.model.encode_text(tokens))

    def _stack(self, chunks: list[np.ndarray]) -> np.ndarray:
        if not chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(chunks)
