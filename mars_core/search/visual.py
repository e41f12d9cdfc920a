"""Stage 2, the vibe check: re-rank by how close each product image is to the room photo.

The score is the cosine similarity between the room photo's embedding and the product image's,
optionally blended with the query text's: `(1 - w) * cos(room, p) + w * cos(text, p)`. Since
every vector has unit length this is one dot product with `(1 - w) * room + w * text`, so the
re-rank of stage 1's candidates and a standalone nearest-neighbour search share one score.

The re-rank gathers the candidates' vectors by document number from the vectors published
with the Lucene build stage 1 searched (`mars_core.index.vectors`): a gather and one product.
The nearest-neighbour search, with no candidates, uses LanceDB's ANN index.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from PIL import Image

from mars_core.config import IndexConfig
from mars_core.index.lance import PRODUCT_COLUMNS, VectorIndex, sql_in, vector_matrix
from mars_core.index.store import IndexSnapshot
from mars_core.index.vectors import AlignedVectors
from mars_core.infra.errors import IndexNotBuiltError
from mars_core.search.types import Candidate, SearchRequest, StageOutput
from mars_core.vision.embedder import Embedder


def blend(room: np.ndarray, text: np.ndarray | None, text_weight: float) -> np.ndarray:
    """The query vector whose dot product with a unit vector is the blended cosine."""
    if text is None or text_weight == 0.0:
        return room
    return (1.0 - text_weight) * room + text_weight * text


def products(rows: pa.Table) -> list[dict]:
    """Catalogue fields of each row (vectors and distances left out)."""
    return rows.select(PRODUCT_COLUMNS).to_pylist()


class VisualStage:
    """SigLIP room-to-product similarity over the LanceDB table; `name` (its scores' key)
    comes from the stage registry (`mars_core.funnel.stages`)."""

    def __init__(
        self,
        index: VectorIndex,
        vectors: AlignedVectors,
        embedder: Embedder,
        *,
        name: str,
        text_weight: float,
    ) -> None:
        for held in (index.dim, vectors.dim):
            if held != embedder.dim:
                raise ValueError(
                    f"the vector index holds {held}-d vectors but embedder {embedder.name} "
                    f"gives {embedder.dim}-d: search with the embedder the index was built with"
                )
        self.index = index
        self.vectors = vectors
        self.embedder = embedder
        self.name = name
        self.text_weight = text_weight

    @classmethod
    def open(
        cls,
        snapshot: IndexSnapshot,
        cfg: IndexConfig,
        embedder: Embedder,
        *,
        name: str,
        text_weight: float,
    ) -> VisualStage:
        """Stage 2 over the snapshot's table version; refuses an embedder of another model."""
        manifest = snapshot.manifest
        if manifest.embedder != embedder.model_id:
            raise ValueError(
                f"index {snapshot.root} was built with embedder {manifest.embedder}, not "
                f"{embedder.model_id}: search with the embedder the index was built with"
            )
        if not snapshot.has_vectors:
            raise IndexNotBuiltError(
                f"index {snapshot.root} was built before stage 2 read vectors from the build: "
                "re-run `python -m flows.index` (it adds them without embedding again)"
            )
        index = VectorIndex(
            snapshot.lance_uri,
            manifest.table,
            manifest.lance_version,
            nprobes=cfg.ann_nprobes,
            refine=cfg.ann_refine_factor,
        )
        vectors = AlignedVectors(snapshot.lucene_path, manifest.vectors)
        return cls(index, vectors, embedder, name=name, text_weight=text_weight)

    def room_vector(self, room: Image.Image) -> np.ndarray:
        """The room photo's embedding alone (a search beyond the query's words)."""
        return self.embedder.embed_images([room], progress=False)[0]

    def query_vector(self, request: SearchRequest) -> np.ndarray:
        """The room photo's embedding, blended with the query text's when weighted."""
        room = self.room_vector(request.room)
        text = None
        if self.text_weight > 0.0 and request.query.strip():
            text = self.embedder.embed_texts([request.query])[0]
        return blend(room, text, self.text_weight)

    def rank(
        self, request: SearchRequest, candidates: list[Candidate] | None, k: int
    ) -> StageOutput:
        """Re-rank `candidates` (None: search the whole table) by visual fit; keep `k`."""
        start = time.perf_counter()
        vector = self.query_vector(request)
        embed_ms = (time.perf_counter() - start) * 1000
        if candidates is None:
            ranked, mode = self.nearest(vector, k), "nearest"
        else:
            ranked, mode = self.rerank(vector, candidates, k), "rerank"
        details = {"mode": mode, "text_weight": self.text_weight, "embed_ms": round(embed_ms, 2)}
        return StageOutput(ranked, details=details)

    def rerank(self, vector: np.ndarray, candidates: list[Candidate], k: int) -> list[Candidate]:
        """Exact scores for every candidate (a few hundred at most), best `k` first."""
        if not candidates:
            return []
        keys = [c.key for c in candidates]
        rows = self.vectors.rows(keys, [c.row for c in candidates])
        missing = [key for key, row in zip(keys, rows, strict=True) if row is None]
        if missing:
            raise ValueError(
                f"{len(missing)} candidates are not in the vector index (e.g. {missing[:3]}): "
                "stage 1 and stage 2 must come from the same index snapshot"
            )
        scores = self.vectors.gather(rows) @ vector
        order = np.argsort(-scores, kind="stable")[:k]
        return [self._scored(candidates[i], float(scores[i])) for i in order]

    def nearest(
        self,
        vector: np.ndarray,
        k: int,
        *,
        category: str | None = None,
        exclude: Sequence[str] = (),
    ) -> list[Candidate]:
        """The `k` products closest to `vector` (ANN once indexed), in `category` if given,
        of no category in `exclude`."""
        where = None if category is None else sql_in("category", [category])
        if exclude:
            where = " AND ".join(filter(None, [where, f"NOT {sql_in('category', exclude)}"]))
        rows = self.index.nearest(vector, k, where=where)
        # A blended vector is not unit length: score by the dot product, not by 1 - distance
        # (the order is the same, cosine distance ignores the query's length).
        scores = vector_matrix(rows) @ vector
        found = [
            Candidate(row["key"], row, scores={self.name: float(s)})
            for row, s in zip(products(rows), scores, strict=True)
        ]
        return sorted(found, key=lambda c: -c.scores[self.name])

    def _scored(self, candidate: Candidate, score: float) -> Candidate:
        return Candidate(
            candidate.key,
            candidate.product,
            scores={**candidate.scores, self.name: score},
            rationale=candidate.rationale,
            row=candidate.row,
        )
