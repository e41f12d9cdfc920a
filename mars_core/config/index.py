"""Config of the `index` group: stage 1 (Lucene) and stage 2 (LanceDB) index locations, build
knobs and the query vocabulary (`index.vocabulary`)."""

from dataclasses import dataclass
from urllib.parse import urlparse

from mars_core.infra.knob import check_knobs, knob


@dataclass
class VocabularyConfig:
    """Words that name a category in a user query; plurals of single words are derived.

    Categories are upper-case catalogue categories (ABO product types). A word may name one
    category only, so a query never locks to a category by accident of the order of a dict.
    """

    categories: dict[str, list[str]] = knob({}, "CATEGORY -> words and phrases that name it")
    head_breaks: list[str] = knob(
        [], "words after which a query describes context, not the product ('lamp FOR the bed')"
    )

    def __post_init__(self) -> None:
        owner: dict[str, str] = {}
        for category, terms in self.categories.items():
            if category != category.upper() or not category.strip():
                raise ValueError(f"vocabulary category {category!r} must be upper-case")
            if not terms:
                raise ValueError(f"vocabulary category {category} lists no words")
            for term in terms:
                word = " ".join(term.lower().split())
                if word in owner and owner[word] != category:
                    raise ValueError(
                        f"vocabulary word {term!r} names both {owner[word]} and {category}; "
                        "keep it under one category"
                    )
                owner[word] = category


@dataclass
class IndexConfig:
    """Stage 1 (Lucene) and stage 2 (LanceDB) index locations and build knobs."""

    name: str = knob("tiny", "label for logs and MLflow")
    dir: str = knob("", "folder holding the Lucene index and the LanceDB database")
    table: str = knob("products", "LanceDB table of product image embeddings")
    lance_uri: str = knob(
        "",
        "where the LanceDB database lives: empty = <dir>/lance; an object store "
        "(s3://bucket/prefix, gs://, az://; credentials from the environment as LanceDB reads "
        "them, e.g. AWS_*) keeps the vectors there while Lucene builds and manifest stay in dir",
    )
    ann_min_rows: int = knob(5000, "build an ANN index only from this many rows on", ge=1)
    ann_partitions: int = knob(0, "IVF partitions of the ANN index; 0 = LanceDB's default")
    ann_sub_vectors: int = knob(0, "PQ sub-vectors of the ANN index; 0 = LanceDB's default")
    ann_nprobes: int = knob(20, "IVF partitions searched per ANN query", ge=1)
    ann_refine_factor: int = knob(5, "ANN fetches k * this many and re-scores them exactly")
    upsert_rows: int = knob(
        256,
        "products per embedding shard: one task run (mapped on pipeline.runner) and one "
        "LanceDB commit each; a crash loses at most the shards in flight",
        ge=1,
    )
    keep_versions_days: float = knob(7.0, "LanceDB versions older than this are cleaned up")
    keep_lucene_versions: int = knob(2, "Lucene index folders kept (current + earlier ones)", ge=1)
    bm25_k1: float = knob(0.9, "BM25 k1")
    bm25_b: float = knob(0.4, "BM25 b")
    listing_overfetch: int = knob(
        2,
        "stage 1 keeps one listing per item (marketplaces); when that leaves fewer than k, "
        "it fetches k x this many more hits, until k items or no more hits",
        ge=1,
    )
    vocabulary: VocabularyConfig = knob(VocabularyConfig(), "conf/index/vocabulary")
    verify_sample: int = knob(
        32,
        "rows whose image is embedded again and compared with the stored vector (verify)",
        ge=0,
    )
    verify_tolerance: float = knob(
        0.001,
        "largest cosine distance between a stored vector and its image's fresh one",
        ge=0,
        le=2,
    )
    max_removal_share: float = knob(
        0.05,
        "a re-index removing more of the published products than this share stops",
        ge=0,
        le=1,
    )
    allow_removals: bool = knob(False, "publish even past max_removal_share (--allow-removals)")
    verify_on_open: bool = knob(
        True,
        "searches read the build's files and the LanceDB rows once at open and check them "
        "against the manifest's checksums (a full read: turn off for a catalogue of millions)",
    )

    def __post_init__(self) -> None:
        check_knobs(self, "index")
        check_lance_uri(self.lance_uri)


LANCE_SCHEMES = ("s3", "gs", "az", "file")


def check_lance_uri(uri: str) -> None:
    """A local path, or an object-store URI LanceDB opens: scheme://bucket[/prefix]. Checked
    by its form alone: no request is sent."""
    parsed = urlparse(uri)
    if not parsed.scheme:
        return
    if parsed.scheme not in LANCE_SCHEMES:
        raise ValueError(
            f"index.lance_uri={uri!r}: the scheme {parsed.scheme!r} is not one LanceDB opens "
            f"here; use a path or {', '.join(f'{s}://' for s in LANCE_SCHEMES)}"
        )
    if parsed.scheme != "file" and not parsed.netloc:
        raise ValueError(
            f"index.lance_uri={uri!r} names no bucket: write {parsed.scheme}://<bucket>/<prefix>"
        )
