"""Config of the pipeline steps: data, index, training, funnel and evaluation."""

from dataclasses import dataclass

from mars_core.knob import knob

TRAIN_METHODS = ("full", "lora", "qlora")


@dataclass
class DataConfig:
    """Where the catalogue and room photos come from; the ingest issue grows this group."""

    name: str = knob("synthetic", "label for logs and MLflow")
    source: str = knob("synthetic", "synthetic (generated world) or abo (ABO layout on disk)")
    raw_dir: str = knob("", "input folder: the ABO layout, or where the generated world is written")
    out_dir: str = knob("", "where the catalogue, rooms and quarantine tables are written")
    seed: int = knob(0, "generator and split seed")

    def __post_init__(self) -> None:
        if self.source not in ("synthetic", "abo"):
            raise ValueError(f"data.source {self.source!r} unknown; use synthetic or abo")


@dataclass
class IndexConfig:
    """Stage 1 (Lucene) and stage 2 (LanceDB) index locations and build knobs."""

    name: str = knob("tiny", "label for logs and MLflow")
    dir: str = knob("", "folder holding the Lucene index and the LanceDB database")
    table: str = knob("products", "LanceDB table of product image embeddings")
    ann_min_rows: int = knob(5000, "build an ANN index only from this many rows on")
    bm25_k1: float = knob(0.9, "BM25 k1")
    bm25_b: float = knob(0.4, "BM25 b")


@dataclass
class TrainConfig:
    """Student fine-tuning: full (tiny, random base) or LoRA / QLoRA (pretrained base)."""

    name: str = knob("tiny", "label for logs and MLflow")
    method: str = knob("full", "full, lora or qlora")
    learning_rate: float = knob(1e-3, "peak learning rate (cosine schedule with warm-up)")
    warmup_ratio: float = knob(0.05, "share of steps spent warming up")
    max_steps: int = knob(200, "optimiser steps")
    batch_size: int = knob(16, "samples per device step")
    grad_accum: int = knob(1, "gradient accumulation steps")
    lora_r: int = knob(16, "LoRA rank")
    lora_alpha: int = knob(32, "LoRA alpha")
    lora_dropout: float = knob(0.05, "LoRA dropout")
    lora_targets: list[str] = knob(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "language-model modules that get LoRA adapters",
    )
    seed: int = knob(0, "training seed")

    def __post_init__(self) -> None:
        if self.method not in TRAIN_METHODS:
            raise ValueError(f"train.method {self.method!r} unknown; use one of {TRAIN_METHODS}")
        if self.learning_rate <= 0 or self.max_steps < 1 or self.batch_size < 1:
            raise ValueError("train: learning_rate, max_steps and batch_size must be positive")


@dataclass
class FunnelConfig:
    """Sizes and switches of the 3-stage search funnel."""

    name: str = knob("tiny", "label for logs and MLflow")
    k1: int = knob(200, "stage 1 (BM25) keeps this many")
    k2: int = knob(20, "stage 2 (SigLIP) keeps this many")
    k3: int = knob(5, "results returned after stage 3 (agent)")
    use_siglip: bool = knob(True, "run stage 2; off = BM25 order goes straight on")
    use_agent: bool = knob(True, "run stage 3; off = stage 2 order is final")
    text_weight: float = knob(0.0, "blend of query-text similarity into the stage-2 score")
    rationale_top_n: int = knob(3, "generate a rationale for this many top results")
    min_fit_score: float = knob(0.5, "below this best agent score, say nothing fits")
    max_input_pixels: int = knob(
        50_000_000, "room and product images above this many pixels are refused (bomb guard)"
    )

    def __post_init__(self) -> None:
        if not self.k1 >= self.k2 >= self.k3 >= 1:
            raise ValueError(
                f"funnel sizes must satisfy k1 >= k2 >= k3 >= 1, got {self.k1}, "
                f"{self.k2}, {self.k3}"
            )
        if not 0.0 <= self.text_weight <= 1.0:
            raise ValueError("funnel.text_weight must lie in [0, 1]")
        if self.rationale_top_n < 0 or self.max_input_pixels < 1:
            raise ValueError("funnel.rationale_top_n must be >= 0 and max_input_pixels >= 1")


@dataclass
class EvalConfig:
    """Ranking evaluation on held-out rooms, with stage ablations."""

    name: str = knob("tiny", "label for logs and MLflow")
    ks: list[int] = knob([5, 10], "cut-offs for nDCG@k and recall@k")
    ablations: list[str] = knob(
        ["bm25", "bm25+siglip", "bm25+siglip+agent"], "funnel variants to compare"
    )
    max_queries: int = knob(0, "evaluate at most this many (room, query) pairs; 0 = all")
