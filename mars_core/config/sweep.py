"""Config of a sweep (`python -m flows.train -m ...`): what picks the best student and where
the jobs run. Which values are swept is Hydra's (`a=1,2`, `hydra/sweeper=optuna`)."""

from dataclasses import dataclass

from mars_core.infra.knob import check_knobs, knob

DIRECTIONS = ("maximize", "minimize")


@dataclass
class SweepConfig:
    """A sweep trains one student per job, then points `candidate` at the best on validation."""

    objective: str = knob(
        "val.nDCG_at_10",
        "the metric of each job's run that picks the candidate (and that Optuna optimises): "
        "val.<metric> of eval.adapter_metrics",
    )
    direction: str = knob(
        "maximize", "whether a higher or a lower objective is better", choices=DIRECTIONS
    )
    work_pool: str | None = knob(
        None,
        "run each job as a run of the train flow's deployment on this Prefect work pool (the GPU "
        "pool, `mars-gpu` in prefect.yaml), all of a batch at once; null: one after another in "
        "this process",
    )

    def __post_init__(self) -> None:
        check_knobs(self, "sweep")
        prefix, _, name = self.objective.partition(".")
        if prefix != "val" or not name:
            raise ValueError(
                f"sweep.objective {self.objective!r} must be a validation metric, val.<metric>: "
                "the held-out rooms (test.<metric>) only decide champion"
            )
