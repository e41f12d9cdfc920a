"""Sweeps (`-m`), run by Hydra's own sweeper machinery: the basic sweeper for `a=1,2`,
`choice(...)`, `range(...)`, `glob(...)` (every combination), or a sweeper plugin chosen with
`hydra/sweeper=optuna` (`interval(...)`, budgeted trials, `hydra.sweeper.n_trials`), and its
launcher: one job at a time in this process, or `hydra/launcher=mars_pool` (runs of a
deployment on a work pool).

Each job calls the caller's function with the job's overrides and hands back the objective
(`sweep.objective`) that an optimising sweeper asks for. A job that fails is recorded and
raised for the sweeper to see; it never stops the others: the basic sweeper re-raises a
batch's failure only after the whole batch ran (one batch unless
`hydra.sweeper.max_batch_size` is set), and Optuna is told to tolerate every failure and to
optimise in `sweep.direction` unless the command line says otherwise (`OPTUNA_DEFAULTS`). What
each job did comes back from the caller (`SweepJob`), never from Hydra's return values.

The command line imports this module to check a sweep: MLflow is imported only where a job's
run is read or named.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from mars_core.app.compose import CONFIG_NAME, hydra_initialized, load_config
from mars_core.config.messages import config_error_message
from mars_core.infra.errors import ConfigError, UserInputError

MULTIRUN_FLAGS = ("-m", "--multirun")
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
# The tag of a student's run that names the Prefect flow run that trained it.
FLOW_RUN_TAG = "prefect.flow_run_id"
OPTUNA = "hydra/sweeper=optuna"
# What a sweep asks of Optuna chosen on the command line, where it says nothing else (as
# conf/hparams_search/optuna.yaml does): Optuna's own defaults stop the study at the first
# failed trial and minimise, while the objective is a validation metric.
OPTUNA_DEFAULTS = {
    "hydra.sweeper.max_failure_rate": "1.0",
    "hydra.sweeper.direction": "${sweep.direction}",
}


class JobFailed(Exception):
    """A sweep job that failed; its `SweepJob` already says why."""


@dataclass
class SweepJob:
    """What one job of a sweep did: its swept values, its student version and run, its
    metrics (`val.*`, `test.*`), or why it failed."""

    number: int
    overrides: list[str]
    version: int | None = None
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error)

    def measured(self, objective: str) -> SweepJob:
        """This job, failed if it did not measure the objective."""
        if self.failed or objective in self.metrics:
            return self
        return dataclasses.replace(self, error=f"its run measured no {objective}")


def job_trained_elsewhere(
    number: int, overrides: list[str], experiment: str, registry: str, flow_run: str, ended: str
) -> SweepJob:
    """A job a pool's worker trained, read back from the MLflow run its train flow run
    (`flow_run`, which ended in state `ended`) tagged with its id."""
    from mars_core.infra.registry import version_of_run
    from mars_core.infra.tracking import run_tagged

    run = run_tagged(experiment, FLOW_RUN_TAG, flow_run)
    if run is None or ended != "Completed":
        return SweepJob(number, overrides, error=f"flow run {flow_run} ended {ended}")
    version = version_of_run(registry, run.info.run_id)
    return SweepJob(number, overrides, version, run.info.run_id, dict(run.data.metrics))


def split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(the overrides every job shares, the swept ones and Hydra's own settings)."""
    with hydra_initialized():
        parsed = _parse(overrides)
    shared = [
        o.input_line for o in parsed if not o.is_sweep_override() and not o.is_hydra_override()
    ]
    swept = [o.input_line for o in parsed if o.is_sweep_override() or o.is_hydra_override()]
    return shared, swept


def swept_keys(overrides: list[str]) -> list[str]:
    """The config keys (or groups) a sweep varies, Hydra's own settings left out."""
    with hydra_initialized():
        return [
            o.key_or_group
            for o in _parse(overrides)
            if o.is_sweep_override() and not o.is_hydra_override()
        ]


def jobs_of(overrides: list[str]) -> list[list[str]] | None:
    """Every job's overrides when the basic sweeper enumerates them, else None (a sweeper
    plugin samples its trials as it goes)."""
    with hydra_initialized():
        parsed = _parse(overrides)
        fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
        if _sweeper(fixed) != BASIC_SWEEPER:
            return None
        if any(o.is_sweep_override() and not o.is_discrete_sweep() for o in parsed):
            raise UserInputError(
                "a range sweep such as interval(...) needs a sweeper that samples it: add "
                "hydra/sweeper=optuna (or hparams_search=optuna)"
            )
        [batch] = BasicSweeper.split_arguments(
            [o for o in parsed if not o.is_hydra_override()], None
        )
    hydra = [o for o in overrides if o.startswith(("hydra.", "hydra/"))]
    return [[*job, *hydra] for job in batch]


def check_sweep(overrides: list[str]) -> None:
    """Every job's config composes and validates (the basic sweeper's, one by one), or, for a
    sampling sweeper, the shared part does: a mistake is one line before any job starts."""
    jobs = jobs_of(overrides)
    if jobs is None:
        load_config(split_overrides(overrides)[0])
        return
    for job in jobs:
        load_config([o for o in job if not o.startswith(("hydra.", "hydra/"))])


def run_sweep(overrides: list[str], job: Callable[[int, list[str]], float]) -> Path:
    """Run the sweep; `job(number, overrides)` trains one and returns its objective (or
    raises `JobFailed`). Returns the sweep's folder (`hydra.sweep.dir`: Hydra's
    `multirun.yaml`, a folder per job, Optuna's results)."""
    arguments = _with_optuna_defaults(overrides)
    folder: list[Path] = []

    def task(_cfg: DictConfig) -> float:
        hydra = HydraConfig.get()
        folder[:] = [Path(hydra.sweep.dir)]
        return job(int(hydra.job.num), [str(o) for o in hydra.overrides.task])

    with hydra_initialized():
        try:
            GlobalHydra.instance().hydra.multirun(
                CONFIG_NAME, task, arguments, with_log_configuration=False
            )
        except JobFailed:
            pass  # recorded by `job`; the sweeper raised it once the others had run
        except (HydraException, OmegaConfBaseException) as e:
            raise ConfigError(config_error_message(e)) from e
    return folder[0] if folder else Path()


def _with_optuna_defaults(overrides: list[str]) -> list[str]:
    """`OPTUNA_DEFAULTS` added to a sweep that uses Optuna, where the command line is silent."""
    if OPTUNA not in overrides:
        return list(overrides)
    told = {o.partition("=")[0].lstrip("+") for o in overrides}
    return [*overrides, *(f"{k}={v}" for k, v in OPTUNA_DEFAULTS.items() if k not in told)]


def best_job(jobs: list[SweepJob], objective: str, direction: str) -> SweepJob | None:
    """The job with the best objective among those that completed and measured it."""
    measured = [j for j in jobs if not j.failed and objective in j.metrics]
    if not measured:
        return None
    sign = 1.0 if direction == "maximize" else -1.0
    return max(measured, key=lambda j: sign * j.metrics[objective])


def _sweeper(fixed: list[str]) -> str:
    """The sweeper class the overrides that sweep nothing choose (`hydra/sweeper=optuna`, or
    an `hparams_search` option that picks one)."""
    try:
        composed = compose(CONFIG_NAME, fixed, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(config_error_message(e)) from e
    return str(composed.hydra.sweeper._target_)


def _parse(overrides: list[str]) -> list[Override]:
    loader = GlobalHydra.instance().config_loader()
    try:
        return OverridesParser.create(config_loader=loader).parse_overrides(overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(config_error_message(e)) from e


@dataclass
class SweepReport:
    """Every job of a sweep and the one that became the candidate, as a table a person reads
    (the parent run's `sweep.md`) and the lines the command ends with."""

    jobs: list[SweepJob]
    objective: str
    direction: str
    registry: str
    folder: str  # hydra.sweep.dir
    run_id: str  # the parent MLflow run; each job's run is its child
    flow_run_id: str  # the parent Prefect flow run; each job's flow run is its child
    columns: list[str]  # the metrics of the table, `val.*` and `test.*`
    best: SweepJob | None = None

    def table(self) -> str:
        """One row per job: what it varied, its version and metrics; the best marked."""
        varied = _varied(self.jobs)
        shown = [self.objective, *(c for c in self.columns if c != self.objective)]
        head = ["job", "swept values", "version", *shown, "status"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for job in self.jobs:
            values = [f"{job.metrics[c]:.3f}" if c in job.metrics else "" for c in shown]
            status = f"failed: {job.error}" if job.failed else "ok"
            if job is self.best:
                status = f"**candidate** (best {self.objective})"
            version = f"v{job.version}" if job.version is not None else ""
            swept = " ".join(varied[job.number]) or "(none)"
            lines.append("| " + " | ".join([str(job.number), swept, version, *values, status]))
        return "\n".join(line if line.endswith("|") else line + " |" for line in lines) + "\n"

    def summary(self) -> str:
        """What `python -m flows.train -m` ends with."""
        failed = sum(job.failed for job in self.jobs)
        best = (
            f"{self.registry} v{self.best.version} is @candidate ({self.objective} "
            f"{self.best.metrics[self.objective]:.3f}, {self.direction}d)"
            if self.best
            else "no job measured the objective: @candidate did not move"
        )
        return "\n".join(
            [
                "",
                f"sweep done: {len(self.jobs)} jobs, {failed} failed. {best}",
                "",
                self.table(),
                f"sweep folder (Hydra's multirun.yaml, a folder per job): {self.folder}",
                f"MLflow: parent run {self.run_id}, one child run per job; compare them there",
                "the champion moves only on held-out rooms: run `python -m flows.evaluate`",
            ]
        )


def name_job_runs(jobs: list[SweepJob]) -> None:
    """Each job's MLflow run named by what it varied (`job 2: train.learning_rate=0.002`), so
    the UI's run lists and compare view tell the students apart."""
    from mars_core.infra.tracking import rename_run

    varied = _varied(jobs)
    for job in jobs:
        if job.run_id is not None:
            rename_run(job.run_id, f"job {job.number}: {' '.join(varied[job.number])}".strip())


def _varied(jobs: list[SweepJob]) -> dict[int, list[str]]:
    """Each job's overrides that not every job shares (what the sweep varied)."""
    shared = set.intersection(*(set(job.overrides) for job in jobs)) if jobs else set()
    return {job.number: [o for o in job.overrides if o not in shared] for job in jobs}
