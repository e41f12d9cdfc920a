"""Typed schema of the Hydra config, and the single source of every knob's default.

Plain dataclasses (no Hydra here). `mars_core.compose` registers `MarsConfig` as the schema
every composition starts from; the option files under `conf/` hold only what differs from
these defaults, which are the offline `tiny` profile. A typo'd key or a wrong type fails at
start-up with the key's full name, and `__post_init__` rejects contradictions with what to
change.
"""

from dataclasses import dataclass

from mars_core.config.mining import MiningConfig
from mars_core.config.models import EmbedderConfig, StudentConfig, TeacherConfig, VLMConfig
from mars_core.config.pipeline import (
    DataConfig,
    EvalConfig,
    FunnelConfig,
    IndexConfig,
    TrainConfig,
    VocabularyConfig,
    WorldConfig,
)
from mars_core.knob import knob


@dataclass
class PathsConfig:
    """Where things live; relative paths are resolved against the project home."""

    home: str = knob(".", "project home (MARS_HOME, or the checkout)")
    artifacts: str = knob("artifacts", "generated data, indexes, reports")
    models: str = knob(".mars_cache/models", "tiny model build cache")
    reports: str = knob("artifacts/reports", "search results tables and HTML pages")


@dataclass
class DemoRequest:
    room_type: str = knob("pool", "a room of this type from the catalogue's rooms table")
    query: str = knob("bed", "what the person asks for")


@dataclass
class DemoConfig:
    """The sample searches the README's main job ends with."""

    requests: list[DemoRequest] = knob(
        [
            DemoRequest("pool", "bed"),  # the seed's trap: a bed for a pool photo
            DemoRequest("bedroom", "bed"),
            DemoRequest("living_room", "a sofa for the living room"),
            DemoRequest("patio", "lounge chair"),
        ],
        "room type + query pairs",
    )


@dataclass
class MlflowConfig:
    experiment: str = knob("mars", "MLflow experiment every flow logs into")


RUNNERS = ("default", "dask")


@dataclass
class PipelineConfig:
    """The whole DAG as one flow (`python -m flows.pipeline`)."""

    refresh: bool = knob(False, "re-run every step even when its inputs are unchanged")
    runner: str = knob(
        "default",
        "task runner of the mapped steps (re-index embedding, mining and labelling shards): "
        "default (threads in the flow's process) or dask (prefect-dask: an existing cluster or "
        "a local one)",
    )
    dask_address: str | None = knob(
        None, "runner=dask: address of an existing Dask scheduler (tcp://host:8786); null: local"
    )
    dask_workers: int = knob(2, "runner=dask without an address: workers of the local cluster")
    train_work_pool: str | None = knob(
        None,
        "run the train step as the train flow's deployment on this Prefect work pool (the GPU "
        "pool, `mars-gpu` in prefect.yaml) and wait for it; null: in the pipeline's process",
    )

    def __post_init__(self) -> None:
        if self.runner not in RUNNERS:
            raise ValueError(f"pipeline.runner={self.runner!r}: choose one of {', '.join(RUNNERS)}")
        if self.dask_address and self.runner != "dask":
            raise ValueError("pipeline.dask_address is set: set pipeline.runner=dask too")
        if self.dask_workers < 1:
            raise ValueError(f"pipeline.dask_workers={self.dask_workers}: must be at least 1")


@dataclass
class ServeConfig:
    """The search service and web page (`mars-serve`): where it listens and what it accepts."""

    host: str = knob("127.0.0.1", "address to bind; this machine only unless set (0.0.0.0 = all)")
    port: int = knob(8000, "TCP port to listen on")
    max_upload_bytes: int = knob(10_000_000, "largest room photo upload, in bytes (413 above)")
    sample_rooms: int = knob(24, "rooms from rooms.parquet the page offers as samples")
    agent_batch_window_ms: float = knob(
        30.0,
        "how long the agent waits for concurrent requests' candidates to fill a batch of "
        "student.batch_size before it runs (0 = run each request's candidates at once)",
    )
    reload_check_s: float = knob(
        10.0,
        "at most this often, between requests, look for a newly published index build (a stat "
        "of CURRENT.json) and a new champion; a change loads beside the running one and swaps "
        "in (0 = on every request)",
    )
    follow_champion: bool = knob(
        True,
        "with student.adapter=auto, serve each newly promoted champion (false = pin the "
        "version loaded at start-up)",
    )

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"serve.port {self.port} must lie in [0, 65535]")
        if self.max_upload_bytes < 1:
            raise ValueError("serve.max_upload_bytes must be >= 1")
        if self.sample_rooms < 0:
            raise ValueError("serve.sample_rooms must be >= 0 (0 = no samples on the page)")
        if self.agent_batch_window_ms < 0:
            raise ValueError("serve.agent_batch_window_ms must be >= 0 (0 = no waiting)")
        if self.reload_check_s < 0:
            raise ValueError("serve.reload_check_s must be >= 0 (0 = check on every request)")


@dataclass
class MarsConfig:
    """The whole composed config: one field per Hydra group plus shared settings."""

    data: DataConfig = knob(DataConfig(), "conf/data")
    embedder: EmbedderConfig = knob(EmbedderConfig(), "conf/embedder")
    teacher: TeacherConfig = knob(TeacherConfig(), "conf/teacher")
    student: StudentConfig = knob(StudentConfig(), "conf/student")
    train: TrainConfig = knob(TrainConfig(), "conf/train")
    index: IndexConfig = knob(IndexConfig(), "conf/index")
    eval: EvalConfig = knob(EvalConfig(), "conf/eval")
    funnel: FunnelConfig = knob(FunnelConfig(), "conf/funnel")
    mining: MiningConfig = knob(MiningConfig(), "conf/mining")
    paths: PathsConfig = knob(PathsConfig(), "shared paths")
    mlflow: MlflowConfig = knob(MlflowConfig(), "tracking")
    demo: DemoConfig = knob(DemoConfig(), "the main job's sample searches")
    pipeline: PipelineConfig = knob(PipelineConfig(), "the pipeline flow")
    serve: ServeConfig = knob(ServeConfig(), "the search service (mars-serve)")
    seed: int = knob(0, "global seed")


GROUPS = ("data", "embedder", "teacher", "student", "train", "index", "eval", "funnel", "mining")

__all__ = [
    "GROUPS",
    "DataConfig",
    "DemoConfig",
    "DemoRequest",
    "EmbedderConfig",
    "EvalConfig",
    "FunnelConfig",
    "IndexConfig",
    "MarsConfig",
    "MiningConfig",
    "MlflowConfig",
    "PathsConfig",
    "PipelineConfig",
    "ServeConfig",
    "StudentConfig",
    "TeacherConfig",
    "TrainConfig",
    "VLMConfig",
    "VocabularyConfig",
    "WorldConfig",
]
