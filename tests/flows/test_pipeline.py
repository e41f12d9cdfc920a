"""The whole DAG as one Prefect flow on a small generated world: every artifact and MLflow run,
a second run that does no work, and a train knob that re-runs only what depends on it.

The pipeline gets a world, artifacts and a registered model name of its own, so its champion
never serves other tests' searches.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from mars_core.catalogue.schema import CATALOGUE_FILE, ROOMS_FILE, SPLITS_FILE
from mars_core.index.store import MANIFEST_FILE
from mars_core.infra.registry import CANDIDATE, CHAMPION, alias_version
from mars_core.mining.schema import HELDOUT_PAIRS_FILE, PAIRS_FILE
from mars_core.teacher.schema import HELDOUT_LABELS_FILE, LABELS_FILE

REGISTRY = "pipeline-test-student"
EXPERIMENT = "pipeline-test"
STEP_RUNS = ("ingest", "index", "mining", "label", "train", "evaluate", "inference")


@pytest.fixture(scope="module")
def overrides(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A small world and a short training, under their own artifacts, registry and experiment."""
    artifacts = tmp_path_factory.mktemp("pipeline")
    return [
        f"paths.models={model_cache}",
        f"paths.artifacts={artifacts}",
        f"mlflow.experiment={EXPERIMENT}",
        f"student.registry={REGISTRY}",
        "data.world.products=80",
        "data.world.rooms_per_type=2",
        "mining.lookalike=2",
        "mining.far=1",
        "mining.random=1",
        "train.max_steps=6",
        "train.eval_steps=3",
        "train.batch_size=8",
        "eval.max_pairs=8",
        "eval.max_queries=24",  # of 91: each agent row asks the agent about every candidate
        "funnel.rationale_top_n=1",
    ]


def step_runs() -> list[str]:
    """Names of the step runs logged so far in the pipeline's experiment."""
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT])
    names = list(runs["tags.mlflow.runName"]) if len(runs) else []
    return [name for name in names if name in STEP_RUNS]


@pytest.fixture(scope="module")
def first(overrides, prefect_harness):
    from flows.pipeline import pipeline

    return pipeline(overrides=overrides)


@pytest.mark.slow
def test_the_pipeline_writes_every_artifact_and_logs_every_step(first, overrides):
    from mars_core.app.compose import load_config

    cfg = load_config(overrides)
    out = Path(cfg.data.out_dir)
    for name in (CATALOGUE_FILE, ROOMS_FILE, SPLITS_FILE, PAIRS_FILE, HELDOUT_PAIRS_FILE):
        assert (out / name).is_file(), name
    for name in (LABELS_FILE, HELDOUT_LABELS_FILE):
        assert (out / name).is_file(), name
    assert (Path(cfg.index.dir) / MANIFEST_FILE).is_file()
    assert alias_version(REGISTRY, CANDIDATE) == first.candidate_version == 1
    assert first.champion_version == alias_version(REGISTRY, CHAMPION)
    assert Path(first.eval_files["table"]).is_file()
    assert "bm25+siglip+agent@candidate" in first.table
    assert first.judged_by.endswith("judged by the ground truth")
    assert "teacher:tiny on bm25+siglip" in first.table and "fit known" in first.table
    assert first.judged_by in first.summary() and first.eval_files["page"] in first.summary()
    page = Path(first.searches.page).read_text()
    assert page.count('alt="room photo"') == len(cfg.demo.requests)
    assert sorted(set(step_runs())) == sorted(STEP_RUNS)
    assert step_runs().count("label") == 2  # training pairs, then held-out pairs
    assert first.searches.page in first.summary()


@pytest.mark.slow
def test_the_candidate_is_ordered_as_validation_chose_and_its_version_says_why(first, overrides):
    """The evaluation chose how agent and SigLIP combine on training's validation rooms (judged
    by the teacher), stored it with the version, and the version serves with it."""
    from mars_core.app.compose import load_config
    from mars_core.funnel.stages import build_funnel

    client = mlflow.MlflowClient()
    version = client.get_model_version(REGISTRY, str(first.candidate_version))
    assert version.tags["funnel.order"] in ("agent", "fits_by_siglip")
    bar = float(version.tags["funnel.min_fit_score"])
    assert len(version.tags) <= 12 and version.description
    assert "stopped by steps" in version.description
    # One run per student: its validation and held-out metrics beside its curves, the grid
    # it was chosen on an artifact.
    run = mlflow.get_run(version.run_id)
    assert {"val.nDCG_at_10", "test.nDCG_at_10", "val_loss"} <= set(run.data.metrics)
    assert run.data.tags["test.judged_by"] == "ground_truth"
    grid = mlflow.artifacts.load_text(f"runs:/{version.run_id}/validation_grid.md")
    assert "fits_by_siglip" in grid and "agent blend 0.25" in grid
    served = [*overrides, f"student.adapter=models:/{REGISTRY}/{first.candidate_version}"]
    with build_funnel(load_config(served)) as funnel:
        agent = funnel.steps[-1].stage
        assert agent.ordering.order == version.tags["funnel.order"]
        assert agent.ordering.chosen_by == f"validation (v{first.candidate_version})"
        assert agent.ordering.min_fit_score == bar  # the agent presents its fits at it
        assert funnel.beyond.funnel.min_fit_score == bar
    with build_funnel(load_config([*served, "funnel.order=agent"])) as funnel:
        overridden = funnel.steps[-1].stage.ordering
        assert (overridden.order, overridden.chosen_by) == ("agent", "funnel.order")
    page = Path(first.searches.page).read_text()
    assert "chosen by" in page


@pytest.mark.slow
def test_a_second_run_does_no_work(first, overrides):
    from flows.pipeline import pipeline

    before = sorted(step_runs())
    again = pipeline(overrides=overrides)
    assert sorted(step_runs()) == before
    assert again.candidate_version == first.candidate_version


@pytest.mark.slow
def test_a_sweep_of_a_train_knob_re_runs_train_per_job_evaluate_and_searches_only(first, overrides):
    """`python -m flows.pipeline -m train.learning_rate=...`: the steps before train are
    shared, each job trains a student, the best on validation is the evaluated candidate."""
    from flows.pipeline import pipeline

    before = step_runs()
    changed = pipeline(overrides=overrides, sweep=["train.learning_rate=5e-4,2e-3"])
    new = sorted(step_runs())
    for name in before:
        new.remove(name)
    assert new == ["evaluate", "inference"]  # and a train run per job, named by its value:
    jobs = mlflow.search_runs(
        experiment_names=[EXPERIMENT],
        filter_string=f"tags.mlflow.parentRunId = '{changed.sweep.run_id}'",
    )
    assert sorted(jobs["tags.mlflow.runName"]) == [
        "job 0: train.learning_rate=0.0005",
        "job 1: train.learning_rate=0.002",
    ]
    versions = sorted(job.version for job in changed.sweep.jobs)
    assert versions == [first.candidate_version + 1, first.candidate_version + 2]
    assert changed.candidate_version == changed.sweep.best.version
    assert changed.sweep.table() in changed.summary()


@pytest.mark.slow
def test_any_abo_catalogue_runs_unchanged_and_is_judged_by_its_teacher(
    first, overrides, tmp_path_factory
):
    """A user's own ABO-format folder and class-folder room photos (here the small world's raw
    files, its truth left unread): the same pipeline, judged by the teacher's held-out labels."""
    from flows.pipeline import pipeline
    from mars_core.app.compose import load_config

    raw = Path(load_config(overrides).data.raw_dir)
    own = [
        *(o for o in overrides if not o.startswith(("paths.artifacts=", "student.registry="))),
        f"paths.artifacts={tmp_path_factory.mktemp('own-catalogue')}",
        "student.registry=own-catalogue-student",
        "data=abo",
        f"data.raw_dir={raw}",
        f"data.rooms_dir={raw / 'rooms'}",
        "++data.room_class_map.Pool=pool",
        "++data.room_class_map.Patio=patio",
    ]
    report = pipeline(overrides=own)
    cfg = load_config(own)
    assert (
        cfg.data.truth_file == "" and not (Path(cfg.data.out_dir) / "ground_truth.parquet").exists()
    )
    assert (Path(cfg.data.out_dir) / HELDOUT_LABELS_FILE).is_file()
    assert "agent@candidate" in report.table and "teacher:" not in report.table
    assert "measure agreement with the teacher, not with the truth" in report.judged_by
    assert report.judged_by in report.summary()
    assert report.judged_by in Path(report.eval_files["page"]).read_text()
    assert report.searches.searched == len(cfg.demo.requests) and report.searches.failed == 0
