"""The evaluation flow on the session's world and index: runs, artifacts, promotion."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from support.registry import register_student

from flows.evaluate import evaluate, main
from mars_core.models.loading import load_vlm

MODEL = "mars-student-eval"
RANKING_KEYS = {"nDCG_at_10", "R_at_5", "R_at_20", "RR"}
OUR_KEYS = {
    "context_violation_at_5", "context_violation_at_10", "category_precision_at_5",
    "abstain_nofit", "abstain_answerable",
}  # fmt: skip
AGENT_KEYS = {"student_spearman", "student_mae", "student_fit_agreement"}
AGENT_KEYS |= {"fast_vs_generated_spearman", "siglip_blend", "min_fit_score"}
BEYOND_KEYS = {
    "alternatives_precision", "alternatives_offered", "room_only.precision_at_10",
    "room_only.fitting_categories_at_10", "room_only.all_categories_fit",
}  # fmt: skip


@pytest.fixture(scope="module")
def candidate(cfg, model_cache, tmp_path_factory) -> int:
    """A LoRA adapter on the tiny student with a random update, registered as `candidate`."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("adapter")
    base = load_vlm(cfg.student, model_cache).model
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    get_peft_model(base, lora).save_pretrained(folder)
    return register_student(folder, cfg, MODEL, alias="candidate")


@pytest.fixture(scope="module")
def evaluated(built, session_overrides, candidate, prefect_harness):
    overrides = [
        *session_overrides,
        f"index.dir={built.cfg.dir}",
        "eval.max_queries=8",
        "eval.max_pairs=6",
        f"student.registry={MODEL}",
        "eval.promotion_margin=0.5",  # more than any untrained adapter can win by
    ]
    return evaluate(overrides)


def _runs(parent_id: str):
    return mlflow.search_runs(
        experiment_names=["mars"], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )


@pytest.mark.slow
def test_an_ablation_makes_one_nested_run_per_configuration_with_every_metric(
    evaluated, candidate, cfg
):
    """Every configuration is a nested run, except the registered student's: its held-out
    metrics join the run that trained it."""
    parent = mlflow.search_runs(experiment_names=["mars"], filter_string="run_name = 'evaluate'")
    children = _runs(parent.iloc[0]["run_id"])
    names = set(children["tags.mlflow.runName"])
    assert names == {
        "bm25", "bm25+siglip", "bm25+siglip+agent@base",
        "teacher:tiny on bm25+siglip", "fit known on bm25+siglip",
        "fit and colour known on bm25+siglip",
    }  # fmt: skip
    assert set(children["tags.judged_by"]) == {"ground_truth"}
    assert parent.iloc[0]["tags.judged_by"] == "ground_truth"
    for _, run in children.iterrows():
        keys = {c.removeprefix("metrics.") for c in run.index if run[c] == run[c]}
        assert keys >= RANKING_KEYS | OUR_KEYS
        if "agent" in run["tags.mlflow.runName"]:
            assert keys >= AGENT_KEYS
            trained = not run["tags.mlflow.runName"].endswith("@base")
            assert (keys >= BEYOND_KEYS) == trained and keys.isdisjoint(BEYOND_KEYS) != trained
    student = mlflow.get_run(MlflowClient().get_model_version(MODEL, str(candidate)).run_id)
    held_out = {k for k in student.data.metrics if k.startswith("test.")}
    assert held_out == {f"test.{m}" for m in cfg.eval.adapter_metrics}
    assert student.data.tags["test.judged_by"] == "ground_truth"
    assert evaluated.source == "ground_truth" and evaluated.requests == 8
    artifacts = {a.path for a in MlflowClient().list_artifacts(parent.iloc[0]["run_id"])}
    assert {"ablation.md", "metrics.png", "reliability.png", "promotion.json"} <= artifacts
    assert {"evaluation.html"} <= artifacts


@pytest.mark.slow
def test_the_teacher_and_the_fit_known_ceiling_are_rows_of_their_own(evaluated):
    """Judged by the ground truth, the table shows the teacher as a ranker, the ceiling of a
    student that learns fit only and that of one that learns fit and colour, and says who
    ranks each row; every agent row says how far it is below the fit-only ceiling."""
    rows = {r.configuration.name: r.metrics for r in evaluated.results}
    teacher, ceiling = rows["teacher:tiny on bm25+siglip"], rows["fit known on bm25+siglip"]
    colour = rows["fit and colour known on bm25+siglip"]
    assert colour["nDCG_at_10"] >= ceiling["nDCG_at_10"]
    assert colour["abstain_nofit"] == 1.0 and colour["context_violation_at_5"] == 0.0
    ranked_by = {r.configuration.name: r.configuration.ranked_by for r in evaluated.results}
    assert {name: who for name, who in ranked_by.items() if "agent" not in name} == {
        "bm25": "stage order", "bm25+siglip": "stage order",
        "teacher:tiny on bm25+siglip": "teacher's labels",
        "fit known on bm25+siglip": "truth: fit",
        "fit and colour known on bm25+siglip": "truth: fit, colour",
    }  # fmt: skip
    assert {who for name, who in ranked_by.items() if "agent" in name} == {"student"}
    assert teacher["fit_agreement"] >= 0.98 and ceiling["fit_agreement"] == 1.0
    assert ceiling["context_violation_at_5"] == 0.0
    assert ceiling["abstain_answerable"] == 0.0 and ceiling["abstain_nofit"] == 1.0
    for name, metrics in rows.items():
        if "agent" in name:
            gap = ceiling["nDCG_at_10"] - metrics["nDCG_at_10"]
            assert metrics["ceiling_gap"] == pytest.approx(gap)
    table = Path(evaluated.files["table"]).read_text()
    assert table.startswith(f"# {evaluated.judged_by}") and "judged by the ground truth" in table
    assert "| configuration | ranked by |" in table
    assert "| fit and colour known on bm25+siglip | truth: fit, colour |" in table
    page = Path(evaluated.files["page"]).read_text()
    assert evaluated.judged_by in page and "teacher:tiny on bm25+siglip" in page


@pytest.mark.slow
def test_promotion_refuses_an_adapter_that_does_not_win_by_the_margin(evaluated):
    decision = evaluated.decision
    assert decision is not None and decision.candidate == "bm25+siglip+agent@candidate"
    assert decision.baseline in {"bm25", "bm25+siglip"}
    assert not decision.promoted
    assert decision.candidate_value < decision.baseline_value + decision.margin
    assert MlflowClient().get_registered_model(MODEL).aliases == {"candidate": decision.version}


def test_a_missing_index_is_one_line_naming_the_command(world, session_overrides, tmp_path, capsys):
    """With the catalogue in place (`world`), the missing index is what the line names."""
    with pytest.raises(SystemExit) as exited:
        main([*session_overrides, f"index.dir={tmp_path}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "python -m flows.index" in err


@pytest.mark.slow
def test_the_metrics_beyond_the_query_have_a_table_of_their_own(evaluated):
    """One row per metric beyond the query, one column per configuration with a trained
    agent; the ablation table itself keeps them out of its columns."""
    table = Path(evaluated.files["table"]).read_text()
    main, beyond = table.split("## Beyond the query\n\n")
    assert not any(key in main for key in BEYOND_KEYS)
    header, _, *rows = beyond.strip().splitlines()
    agents = [r.configuration.name for r in evaluated.results if r.configuration.adapter]
    assert agents == ["bm25+siglip+agent@candidate"]
    assert header == "| metric | " + " | ".join(agents) + " |"
    names = {row.split(" | ")[0].removeprefix("| ") for row in rows}
    assert names >= BEYOND_KEYS
    assert all(name.startswith(("alternatives_", "room_only.")) for name in names)
    assert "<h2>Beyond the query</h2>" in Path(evaluated.files["page"]).read_text()
