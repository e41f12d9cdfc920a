"""Sweeps as Hydra runs them, without training: which jobs a command line makes, what is
checked before any job starts, what a pipeline may sweep, and how the best job is picked and
reported."""

from __future__ import annotations

import pytest

from mars_core.app.apps import APPS
from mars_core.app.cli import run_app
from mars_core.app.steps import check_pipeline_sweep
from mars_core.app.sweep import (
    SweepJob,
    SweepReport,
    best_job,
    check_sweep,
    jobs_of,
    split_overrides,
    swept_keys,
)
from mars_core.infra.errors import ConfigError, UserInputError


def test_the_basic_sweeper_makes_every_combination():
    jobs = jobs_of(["train.learning_rate=0.1,0.2", "train.seed=range(0,2)", "funnel.k3=4"])
    assert jobs == [
        ["train.learning_rate=0.1", "train.seed=0", "funnel.k3=4"],
        ["train.learning_rate=0.1", "train.seed=1", "funnel.k3=4"],
        ["train.learning_rate=0.2", "train.seed=0", "funnel.k3=4"],
        ["train.learning_rate=0.2", "train.seed=1", "funnel.k3=4"],
    ]
    assert jobs_of(["experiment=glob(*)"]) == [["experiment=full"], ["experiment=tiny"]]


def test_a_sampling_sweeper_is_left_to_sample():
    assert jobs_of(["hydra/sweeper=optuna", "train.learning_rate=interval(1e-4,1e-3)"]) is None
    assert jobs_of(["hparams_search=optuna"]) is None  # the option picks Optuna
    with pytest.raises(UserInputError, match="hydra/sweeper=optuna"):
        jobs_of(["train.learning_rate=interval(1e-4,1e-3)"])


def test_shared_and_swept_overrides_are_told_apart():
    overrides = [
        "funnel.k3=4",
        "train.seed=0,1",
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=3",
    ]
    shared, swept = split_overrides(overrides)
    assert shared == ["funnel.k3=4"]
    assert swept == ["train.seed=0,1", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=3"]
    assert swept_keys(overrides) == ["train.seed"]


def test_every_job_is_checked_before_any_starts():
    check_sweep(["train.learning_rate=1e-4,5e-4"])
    with pytest.raises(ConfigError, match=r"train.learning_rate=fast.*takes float"):
        check_sweep(["train.learning_rate=1e-4,fast"])
    with pytest.raises(ConfigError, match=r"did you mean train.learning_rate"):
        check_sweep(["train.learning_rat=1e-4,5e-4"])


def test_a_pipeline_sweeps_only_what_its_train_step_reads():
    check_pipeline_sweep(["train.learning_rate", "student.lora_r"])
    with pytest.raises(UserInputError, match=r"cannot sweep mining.lookalike.*mining reads it"):
        check_pipeline_sweep(["mining.lookalike"])
    with pytest.raises(UserInputError, match=r"cannot sweep seed.*every step reads it"):
        check_pipeline_sweep(["seed"])


def test_multirun_is_a_flag_of_the_flows_that_sweep(capsys):
    with pytest.raises(SystemExit) as exited:
        run_app(APPS["train"], ["-m", "train.learning_rate=1e-4,abc"], _never)
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "train.learning_rate=abc" in err and "\n" not in err
    with pytest.raises(SystemExit) as exited:
        run_app(APPS["ingest"], ["-m", "data.seed=0,1"], _never)
    assert exited.value.code == 2 and "unrecognized arguments: -m" in capsys.readouterr().err


def _never(_call: object) -> None:
    raise AssertionError("the command ran; it should have failed first")


def _job(number: int, value: float | None, error: str = "") -> SweepJob:
    metrics = {} if value is None else {"val.nDCG_at_10": value, "test.nDCG_at_10": value / 2}
    return SweepJob(
        number, [f"train.seed={number}", "funnel.k3=4"], number + 1, "r", metrics, error
    )


def test_the_best_job_on_validation_is_picked_and_the_report_lists_every_job():
    jobs = [_job(0, 0.5), _job(1, 0.9), _job(2, None, "boom"), _job(3, 0.7)]
    best = best_job(jobs, "val.nDCG_at_10", "maximize")
    assert best is jobs[1]
    assert best_job(jobs, "val.nDCG_at_10", "minimize") is jobs[0]
    report = SweepReport(
        jobs,
        "val.nDCG_at_10",
        "maximize",
        "m",
        "/sweep",
        "parent",
        "flow",
        ["test.nDCG_at_10"],
        best,
    )
    rows = report.table().splitlines()[2:]
    assert len(rows) == 4
    assert rows[1].startswith("| 1 | train.seed=1 | v2 | 0.900 | 0.450 | **candidate**")
    assert "failed: boom" in rows[2] and "funnel.k3" not in rows[2]
    assert "4 jobs, 1 failed. m v2 is @candidate" in report.summary()
