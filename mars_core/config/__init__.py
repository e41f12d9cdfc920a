"""Typed schema of the Hydra config, and the single source of every knob's default.

Plain dataclasses (no Hydra here), one module per Hydra group (`data`, `embedder`, `student`,
`teacher`, `train`, `index`, `eval`, `funnel`, `mining`) plus `pipeline`, `serve`, the shared
`vlm` and `server` parts and `schema` (the root, `MarsConfig`); this package re-exports them.
`mars_core.app.compose` registers `MarsConfig` as the schema every composition starts from; the
option files under `conf/` hold only what differs from these defaults, which are the offline
`tiny` profile. A typo'd key or a wrong type fails at start-up with the key's full name; a
knob's declared range or choices are checked by `mars_core.infra.knob.check_knobs`, and
`__post_init__` rejects contradictions between knobs with what to change.
"""

from mars_core.config.data import DataConfig, WorldConfig
from mars_core.config.embedder import EmbedderConfig
from mars_core.config.eval import EvalConfig
from mars_core.config.funnel import FunnelConfig
from mars_core.config.index import IndexConfig, VocabularyConfig
from mars_core.config.mining import MiningConfig
from mars_core.config.pipeline import PipelineConfig
from mars_core.config.schema import (
    GROUPS,
    DemoConfig,
    DemoRequest,
    MarsConfig,
    MlflowConfig,
    PathsConfig,
)
from mars_core.config.serve import ServeConfig
from mars_core.config.server import ServerConfig
from mars_core.config.student import StudentConfig
from mars_core.config.sweep import SweepConfig
from mars_core.config.teacher import TeacherConfig
from mars_core.config.train import TrainConfig
from mars_core.config.vlm import VLMConfig

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
    "ServerConfig",
    "StudentConfig",
    "SweepConfig",
    "TeacherConfig",
    "TrainConfig",
    "VLMConfig",
    "VocabularyConfig",
    "WorldConfig",
]
