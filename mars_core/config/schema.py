"""The root of the composed config: one field per Hydra group plus the shared settings."""

from dataclasses import dataclass

from mars_core.config.data import DataConfig
from mars_core.config.embedder import EmbedderConfig
from mars_core.config.eval import EvalConfig
from mars_core.config.funnel import FunnelConfig
from mars_core.config.index import IndexConfig
from mars_core.config.mining import MiningConfig
from mars_core.config.pipeline import PipelineConfig
from mars_core.config.serve import ServeConfig
from mars_core.config.student import StudentConfig
from mars_core.config.sweep import SweepConfig
from mars_core.config.teacher import MISFIT_SCORES, TeacherConfig
from mars_core.config.train import TrainConfig
from mars_core.infra.errors import UserInputError
from mars_core.infra.knob import knob


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
    sweep: SweepConfig = knob(SweepConfig(), "sweeps of the train flow (-m)")
    seed: int = knob(0, "global seed")

    def __post_init__(self) -> None:
        self._check_misfits_abstain()

    def check_trainable(self) -> None:
        """What training needs beyond a valid config (serving a 4-bit base is fine with any
        `train.method`; training over one is not)."""
        if self.student.load_in_4bit and self.train.method != "qlora":
            raise UserInputError(
                f"student.load_in_4bit=true but train.method={self.train.method}: only qlora "
                "trains over a 4-bit base; set train.method=qlora or student.load_in_4bit=false"
            )

    def _check_misfits_abstain(self) -> None:
        """A teacher misfit label must read as "nothing fits" to the funnel too, or a student
        trained on it would present the very products its teacher called misfits."""
        bars = {"funnel.min_fit_score": self.funnel.min_fit_score}
        bars["min(eval.min_fit_scores)"] = min(self.eval.min_fit_scores)
        for name in MISFIT_SCORES:
            score = getattr(self.teacher, name)
            for knob_name, bar in bars.items():
                if score >= bar:
                    raise ValueError(
                        f"teacher.{name} ({score}) must be < {knob_name} ({bar}): it labels "
                        "a product that does not belong"
                    )


GROUPS = ("data", "embedder", "teacher", "student", "train", "index", "eval", "funnel", "mining")
