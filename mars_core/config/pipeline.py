"""Config of the pipeline steps: data, index, training, funnel and evaluation."""

import re
from dataclasses import dataclass
from urllib.parse import urlparse

from mars_core.knob import knob

TRAIN_METHODS = ("full", "lora", "qlora")
QUANT_TYPES = ("nf4", "fp4")
COMPUTE_DTYPES = ("bfloat16", "float16", "float32")
ACQUIRE_MODES = ("local", "download")
CATEGORY_PATTERN = re.compile(r"[A-Z][A-Z0-9_]*")
# House Rooms' five class folders (its spelling) and outdoor settings. Outdoor folders map to
# the two outdoor room types the teacher and the generated world know (pool, patio).
DEFAULT_ROOM_CLASSES = {
    "Bathroom": "bathroom",
    "Bedroom": "bedroom",
    "Dinning": "dining_room",
    "Kitchen": "kitchen",
    "Livingroom": "living_room",
    "Pool": "pool",
    "Poolside": "pool",
    "Patio": "patio",
    "Garden": "patio",
    "Balcony": "patio",
    "Terrace": "patio",
    "Deck": "patio",
}
ROOM_CLASS_KNOB = "data.extra_room_classes"

# ABO product_type -> funnel category: the generated world uses a subset of these types.
ABO_CATEGORIES = {
    "BED": "BED",
    "SOFA": "SOFA",
    "CHAIR": "CHAIR",
    "TABLE": "TABLE",
    "DESK": "DESK",
    "STOOL_SEATING": "STOOL",
    "OTTOMAN": "OTTOMAN",
    "BENCH": "BENCH",
    "LAMP": "LAMP",
    "LIGHT_FIXTURE": "LAMP",
    "RUG": "RUG",
    "CABINET": "CABINET",
    "DRESSER": "DRESSER",
    "SHELF": "SHELF",
    "MIRROR": "MIRROR",
    "HOME_MIRROR": "MIRROR",
    "PLANTER": "PLANTER",
    "VASE": "VASE",
    "PILLOW": "PILLOW",
    "CLOCK": "CLOCK",
    "WALL_ART": "WALL_ART",
    "OUTDOOR_LIVING": "OUTDOOR_FURNITURE",
    "OUTDOOR_LOUNGE_CHAIR": "OUTDOOR_LOUNGE_CHAIR",
    "PATIO_TABLE": "PATIO_TABLE",
    "PATIO_UMBRELLA": "PATIO_UMBRELLA",
}


@dataclass
class WorldConfig:
    """Size and make-up of the generated world (`data.source=synthetic`); see `mars_core.world`."""

    products: int = knob(300, "product listings, twins included, broken ones not")
    rooms_per_type: int = knob(
        24,
        "room photos per room type (5 indoor types, pool, patio); the student learns room "
        "types from them, and 6 per type left it guessing on held-out rooms",
    )
    product_px: int = knob(96, "side of each product image in pixels")
    room_px: int = knob(128, "side of each room photo in pixels")
    shards: int = knob(4, "listings_<i>.json.gz files the listings are spread over")
    twin_share: float = knob(0.05, "share of products listed again on a second domain, same images")
    blue_bed_share: float = knob(0.3, "share of beds drawn blue: the pool-photo trap")
    foreign_name_share: float = knob(
        0.05, "share of listings named only in a non-preferred language"
    )
    broken_records: bool = knob(True, "add one bad record per quarantine reason to show that path")
    shared_outdoor_types: bool = knob(
        True,
        "list chairs, tables, sofas, lamps and rugs in indoor and outdoor versions under one "
        "category, told apart by listing words and look (as real ABO does); false: the old "
        "shape, where only outdoor-only categories are outdoors",
    )
    outdoor_version_share: float = knob(
        0.35, "share of each shared type's products listed as its outdoor version"
    )

    def __post_init__(self) -> None:
        if self.products < 13 or self.rooms_per_type < 1 or self.shards < 1:
            raise ValueError(
                "data.world needs products >= 13 (one per category), rooms_per_type >= 1 "
                "and shards >= 1"
            )
        if min(self.product_px, self.room_px) < 32:
            raise ValueError("data.world.product_px and room_px must be at least 32")
        for name in ("blue_bed_share", "foreign_name_share", "outdoor_version_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"data.world.{name} must lie in [0, 1]")
        if not 0.0 <= self.twin_share <= 0.5:
            raise ValueError("data.world.twin_share must lie in [0, 0.5] (a twin needs a product)")


@dataclass
class DataConfig:
    """Where the catalogue and room photos come from and how listings become catalogue rows."""

    name: str = knob("synthetic", "label for logs and MLflow")
    source: str = knob("synthetic", "synthetic (generated world) or abo (ABO layout on disk)")
    raw_dir: str = knob("", "input folder: the ABO layout, or where the generated world is written")
    rooms_dir: str = knob(
        "", "room photos, one folder per class (House Rooms layout); empty = none"
    )
    truth_file: str = knob("", "ground truth of the generated world (parquet); empty for real data")
    out_dir: str = knob("", "where the catalogue, rooms and quarantine tables are written")
    seed: int = knob(0, "generator and split seed")
    acquire: str = knob("local", "abo only: local (raw_dir already holds ABO) or download")
    base_url: str = knob("", "download: URL folder holding the archives")
    archives: list[str] = knob([], "download: archive file names under base_url")
    archive_sizes: dict[str, int] = knob(
        {}, "download: expected bytes per archive; unset = server's"
    )
    download_dir: str = knob("", "download: where archives (and .part files) are kept")
    languages: list[str] = knob(
        ["en_US", "en_GB", "en_IN", "en_CA", "en_AU", "en_SG", "en_AE"],
        "language tags to prefer, in order; any other language is the fallback",
    )
    category_map: dict[str, str] = knob(
        ABO_CATEGORIES,
        "ABO product_type -> funnel category; listings of other types are quarantined as "
        "unmapped_category with the type in `detail` (count them there to extend this map)",
    )
    room_class_map: dict[str, str] = knob(
        dict(DEFAULT_ROOM_CLASSES), "room photo folder name -> room type (House Rooms + outdoor)"
    )
    extra_room_classes: list[str] = knob(
        [], "more class folders as Folder:room_type, e.g. data.extra_room_classes=[Garage:garage]"
    )
    max_name_chars: int = knob(200, "product names are cut to this many characters")
    max_text_chars: int = knob(1000, "description and each bullet point are cut to this length")
    max_keywords: int = knob(30, "keep at most this many keywords per product")
    max_keyword_chars: int = knob(60, "each keyword is cut to this many characters")
    max_bullets: int = knob(10, "bullet points per product that go into search_text")
    max_search_chars: int = knob(4000, "search_text (what BM25 indexes) is cut to this length")
    test_fraction: float = knob(0.25, "share of rooms and of product images held out for test")
    max_image_pixels: int = knob(
        50_000_000,
        "the one pixel limit of product images and room photos: ingest quarantines larger ones "
        "(or decompression bombs); embedder, teacher, student, agent and report refuse them",
    )
    world: WorldConfig = knob(WorldConfig(), "the generated world (source=synthetic)")

    def __post_init__(self) -> None:
        if self.source not in ("synthetic", "abo"):
            raise ValueError(f"data.source {self.source!r} unknown; use synthetic or abo")
        if self.acquire not in ACQUIRE_MODES:
            raise ValueError(f"data.acquire {self.acquire!r} unknown; use one of {ACQUIRE_MODES}")
        if self.acquire == "download" and not (self.base_url and self.archives):
            raise ValueError("data.acquire=download needs data.base_url and data.archives")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError("data.test_fraction must lie strictly between 0 and 1")
        limits = ("name", "text", "keyword", "search")
        counts = ["max_keywords", "max_bullets", "max_image_pixels"]
        for name in [f"max_{limit}_chars" for limit in limits] + counts:
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1")
        self.room_classes()
        for product_type, category in self.category_map.items():
            if not CATEGORY_PATTERN.fullmatch(category):
                raise ValueError(
                    f"data.category_map.{product_type} = {category!r}: categories are upper-case "
                    "identifiers such as BED or PATIO_TABLE"
                )

    def room_classes(self) -> dict[str, str]:
        """Class folder -> room type: `room_class_map` plus `extra_room_classes` entries."""
        classes = dict(self.room_class_map)
        for entry in self.extra_room_classes:
            folder, colon, room_type = (part.strip() for part in str(entry).partition(":"))
            if not (folder and colon and room_type):
                raise ValueError(
                    f"{ROOM_CLASS_KNOB} entry {entry!r}: write Folder:room_type, "
                    f"e.g. {ROOM_CLASS_KNOB}=[Garage:garage]"
                )
            classes[folder] = room_type
        return classes


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
    ann_min_rows: int = knob(5000, "build an ANN index only from this many rows on")
    ann_partitions: int = knob(0, "IVF partitions of the ANN index; 0 = LanceDB's default")
    ann_sub_vectors: int = knob(0, "PQ sub-vectors of the ANN index; 0 = LanceDB's default")
    ann_nprobes: int = knob(20, "IVF partitions searched per ANN query")
    ann_refine_factor: int = knob(5, "ANN fetches k * this many and re-scores them exactly")
    upsert_rows: int = knob(
        256,
        "products per embedding shard: one task run (mapped on pipeline.runner) and one "
        "LanceDB commit each; a crash loses at most the shards in flight",
    )
    keep_versions_days: float = knob(7.0, "LanceDB versions older than this are cleaned up")
    keep_lucene_versions: int = knob(2, "Lucene index folders kept (current + earlier ones)")
    bm25_k1: float = knob(0.9, "BM25 k1")
    bm25_b: float = knob(0.4, "BM25 b")
    listing_overfetch: int = knob(
        2,
        "stage 1 keeps one listing per item (marketplaces); when that leaves fewer than k, "
        "it fetches k x this many more hits, until k items or no more hits",
    )
    vocabulary: VocabularyConfig = knob(VocabularyConfig(), "conf/index/vocabulary")
    verify_sample: int = knob(
        32, "rows whose image is embedded again and compared with the stored vector (verify)"
    )
    verify_tolerance: float = knob(
        0.001, "largest cosine distance between a stored vector and its image's fresh one"
    )
    max_removal_share: float = knob(
        0.05, "a re-index removing more of the published products than this share stops"
    )
    allow_removals: bool = knob(False, "publish even past max_removal_share (--allow-removals)")
    verify_on_open: bool = knob(
        True,
        "searches read the build's files and the LanceDB rows once at open and check them "
        "against the manifest's checksums (a full read: turn off for a catalogue of millions)",
    )

    def __post_init__(self) -> None:
        check_lance_uri(self.lance_uri)
        if self.verify_sample < 0 or not 0.0 <= self.verify_tolerance <= 2.0:
            raise ValueError(
                "index.verify_sample must be >= 0 and index.verify_tolerance within [0, 2]"
            )
        if not 0.0 <= self.max_removal_share <= 1.0:
            raise ValueError("index.max_removal_share must be within [0, 1] (a share)")
        if self.upsert_rows < 1 or self.ann_min_rows < 1 or self.ann_nprobes < 1:
            raise ValueError("index: upsert_rows, ann_min_rows and ann_nprobes must be >= 1")
        if self.keep_lucene_versions < 1:
            raise ValueError("index.keep_lucene_versions must be >= 1 (the current index)")
        if self.listing_overfetch < 1:
            raise ValueError("index.listing_overfetch must be >= 1")


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


@dataclass
class TrainConfig:
    """Student fine-tuning: full (tiny, random base) or LoRA / QLoRA (pretrained base).

    Training stops at the first of: `max_steps`, `patience` validations without a better
    validation loss, or `time_budget_s` of wall time; the best checkpoint (lowest validation
    loss) is what gets saved and registered.
    """

    name: str = knob("tiny", "label for logs and MLflow")
    method: str = knob("full", "full, lora or qlora")
    learning_rate: float = knob(1e-3, "peak learning rate (cosine schedule with warm-up)")
    warmup_ratio: float = knob(0.05, "share of steps spent warming up")
    weight_decay: float = knob(0.1, "AdamW weight decay")
    max_steps: int = knob(1000, "most optimiser steps (the schedule's length)")
    batch_size: int = knob(16, "samples per device step")
    grad_accum: int = knob(1, "gradient accumulation steps (effective batch = batch_size x this)")
    gradient_checkpointing: bool = knob(False, "recompute activations in backward to save memory")
    val_fraction: float = knob(0.15, "share of training rooms held out for validation (by room)")
    max_val_examples: int = knob(
        256, "validation examples scored per check, a seeded sample of those rooms' (0 = all)"
    )
    eval_steps: int = knob(100, "validate and checkpoint every this many optimiser steps")
    patience: int = knob(5, "stop after this many validations without a lower validation loss")
    time_budget_s: float = knob(
        600.0, "stop (and keep the best checkpoint) after this wall time; 0 = none"
    )
    keep_checkpoints: int = knob(2, "checkpoints kept for resuming (the best one is never dropped)")
    logging_steps: int = knob(10, "log the training loss and learning rate every this many steps")
    cpu_threads: int = knob(
        1, "CPU training: torch threads (1 is fastest on a shared small box); 0 = torch's default"
    )
    lora_r: int = knob(16, "LoRA rank")
    lora_alpha: int = knob(32, "LoRA alpha")
    lora_dropout: float = knob(0.05, "LoRA dropout")
    lora_targets: list[str] = knob(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "language-model modules that get LoRA adapters",
    )
    quant_type: str = knob("nf4", "qlora: 4-bit weight type, nf4 or fp4")
    double_quant: bool = knob(True, "qlora: quantise the quantisation constants too")
    compute_dtype: str = knob("bfloat16", "qlora: dtype 4-bit layers compute in")
    seed: int = knob(0, "training seed")

    def __post_init__(self) -> None:
        if self.method not in TRAIN_METHODS:
            raise ValueError(f"train.method {self.method!r} unknown; use one of {TRAIN_METHODS}")
        if self.learning_rate <= 0 or self.max_steps < 1 or self.batch_size < 1:
            raise ValueError("train: learning_rate, max_steps and batch_size must be positive")
        if self.grad_accum < 1 or self.eval_steps < 1 or self.logging_steps < 1:
            raise ValueError("train: grad_accum, eval_steps and logging_steps must be >= 1")
        if self.eval_steps > self.max_steps:
            raise ValueError(
                f"train.eval_steps ({self.eval_steps}) exceeds train.max_steps ({self.max_steps}): "
                "no validation would run; lower train.eval_steps"
            )
        if self.patience < 1 or self.keep_checkpoints < 1:
            raise ValueError("train.patience and train.keep_checkpoints must be >= 1")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError("train.val_fraction must lie strictly between 0 and 1")
        if not 0.0 <= self.warmup_ratio < 1.0 or self.weight_decay < 0:
            raise ValueError("train.warmup_ratio must lie in [0, 1) and weight_decay be >= 0")
        if self.cpu_threads < 0:
            raise ValueError("train.cpu_threads must be >= 0 (0 = torch's default)")
        if self.time_budget_s < 0:
            raise ValueError("train.time_budget_s must be >= 0 (0 = no budget)")
        if self.quant_type not in QUANT_TYPES:
            raise ValueError(
                f"train.quant_type {self.quant_type!r} unknown; use one of {QUANT_TYPES}"
            )
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(
                f"train.compute_dtype {self.compute_dtype!r} unknown; use one of {COMPUTE_DTYPES}"
            )
        if self.method != "full":
            self._check_lora()

    def _check_lora(self) -> None:
        """LoRA knobs matter (and must make sense) only for method=lora or qlora."""
        if self.lora_r < 1 or self.lora_alpha < 1:
            raise ValueError(f"train.method={self.method} needs train.lora_r and lora_alpha >= 1")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError("train.lora_dropout must lie in [0, 1)")
        if not self.lora_targets:
            raise ValueError(
                f"train.method={self.method} needs train.lora_targets (e.g. [q_proj, v_proj]); "
                "for all weights use train.method=full"
            )


@dataclass
class FunnelConfig:
    """Sizes and stages of the search funnel."""

    name: str = knob("tiny", "label for logs and MLflow")
    k1: int = knob(50, "stage 1 (BM25) keeps this many")
    k2: int = knob(10, "stage 2 (SigLIP) keeps this many")
    k3: int = knob(5, "results returned after stage 3 (agent)")
    stages: list[str] = knob(
        ["bm25", "siglip", "agent"],
        "stages to run, by name (mars_core.stages); a left-out stage only cuts to its k",
    )
    text_weight: float = knob(0.0, "blend of query-text similarity into the stage-2 score")
    rationale_top_n: int = knob(3, "generate a rationale for this many top results")
    min_fit_score: float = knob(0.5, "below this best agent score, say nothing fits")
    siglip_blend: float = knob(
        0.0, "weight of the stage-2 similarity (min-max scaled) in the agent stage's final order"
    )
    max_query_chars: int = knob(
        200, "longest query, in characters: command line, batch rows and the service refuse more"
    )
    max_query_words: int = knob(
        32, "longest query, in words (stop words count too); refused before any stage runs"
    )
    request_roots: list[str] = knob(
        [],
        "folders a requests file's room paths may point into besides the file's own folder "
        "(paths elsewhere are refused)",
    )

    def __post_init__(self) -> None:
        if not self.k1 >= self.k2 >= self.k3 >= 1:
            raise ValueError(
                f"funnel sizes must satisfy k1 >= k2 >= k3 >= 1, got {self.k1}, "
                f"{self.k2}, {self.k3}"
            )
        for name in ("text_weight", "siglip_blend"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"funnel.{name} must lie in [0, 1]")
        if self.rationale_top_n < 0:
            raise ValueError("funnel.rationale_top_n must be >= 0")
        if not self.stages:
            raise ValueError("funnel.stages is empty; list stages by name, e.g. [bm25, siglip]")
        for name in ("max_query_chars", "max_query_words"):
            if getattr(self, name) < 1:
                raise ValueError(f"funnel.{name} must be >= 1")


@dataclass
class EvalConfig:
    """Evaluation on held-out rooms and products: stage ablations, adapters, promotion."""

    name: str = knob("tiny", "label for logs and MLflow")
    measures: list[str] = knob(
        ["nDCG@10", "R@5", "R@20", "RR"], "ranking measures, as ir-measures names them"
    )
    ks: list[int] = knob([5, 10], "cut-offs of context_violation@k and category_precision@k")
    ablations: list[list[str]] = knob(
        [["bm25"], ["bm25", "siglip"], ["bm25", "siglip", "agent"]],
        "funnel variants to compare, each a list of stage names (as funnel.stages)",
    )
    adapters: list[str] = knob(
        [], "adapters to run every agent variant with too: folders or models:/mars-student@alias"
    )
    max_queries: int = knob(0, "evaluate at most this many (room, query) requests; 0 = all")
    overfetch: int = knob(8, "stage 1 fetches k1 x this many, then keeps test-split products")
    fit_threshold: float = knob(0.5, "a teacher or student score from here on means 'fits'")
    max_pairs: int = knob(64, "held-out pairs scored for student vs teacher (0 = skip)")
    reliability_bins: int = knob(10, "bins of the reliability diagram (student vs teacher)")
    promote: bool = knob(True, "promote the candidate alias to champion when it wins")
    primary_metric: str = knob("nDCG@10", "the measure promotion compares (one of measures)")
    promotion_margin: float = knob(0.01, "the candidate must beat the baseline by this much")
    headline: list[str] = knob(
        [
            "nDCG_at_10",
            "answerable.nDCG_at_10",
            "context_violation_at_5",
            "abstain_nofit",
            "abstain_answerable",
            "student_spearman",
            "fit_agreement",
            "ceiling_gap",
        ],
        "metric columns the commands print (ablation.md holds them all)",
    )

    def __post_init__(self) -> None:
        if not self.ablations:
            raise ValueError("eval.ablations is empty; list stage lists such as [[bm25]]")
        if min(self.ks, default=0) < 1 or self.overfetch < 1 or self.reliability_bins < 2:
            raise ValueError("eval: ks must be >= 1, overfetch >= 1 and reliability_bins >= 2")
        if self.max_queries < 0 or self.max_pairs < 0:
            raise ValueError("eval.max_queries and eval.max_pairs must be >= 0")
        if not 0.0 < self.fit_threshold < 1.0:
            raise ValueError("eval.fit_threshold must lie strictly between 0 and 1")
        if self.primary_metric not in self.measures:
            raise ValueError(
                f"eval.primary_metric {self.primary_metric!r} must be one of eval.measures "
                f"{self.measures}"
            )
        if self.promotion_margin < 0:
            raise ValueError("eval.promotion_margin must be >= 0")
