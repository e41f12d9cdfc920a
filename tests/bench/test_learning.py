"""bench.learning's table: one row per world draw and room count, then the targets."""

from __future__ import annotations

from bench.learning import Run, run_overrides, summary_table

HEADLINE = ["answerable.nDCG_at_10", "context_violation_at_5", "abstain_nofit"]


def run(draw: int, rooms: int, answerable: float, violation: float = 0.01) -> Run:
    funnel = {
        "answerable.nDCG_at_10": answerable,
        "context_violation_at_5": violation,
        "abstain_nofit": 0.9,
        "abstain_answerable": 0.05,
    }
    return Run(
        draw,
        rooms,
        funnel,
        stage2={"answerable.nDCG_at_10": 0.7},
        fit_known={"answerable.nDCG_at_10": 0.88},
        fit_and_colour={"answerable.nDCG_at_10": 0.95},
        steps=1500,
        minutes=12.5,
    )


def test_each_run_has_its_own_world_folder_and_registry():
    overrides = run_overrides(["train.max_steps=10"], 2, 6, "/h/learning")
    assert overrides == [
        "train.max_steps=10",
        "seed=2",
        "data.world.rooms_per_type=6",
        "paths.artifacts=/h/learning/w2-r6",
        "student.registry=learning-w2-r6",
    ]


def test_the_table_groups_by_room_count_and_counts_the_targets():
    runs = [run(0, 24, 0.90), run(1, 24, 0.92), run(0, 6, 0.80, violation=0.08)]
    table = summary_table(runs, HEADLINE)
    lines = table.splitlines()
    assert lines[0].startswith("| world | rooms/type | answerable.nDCG_at_10 |")
    assert "fit known answerable | fit and colour known answerable | minutes |" in lines[0]
    assert "| 0 | 6 | 0.800 | 0.080 | 0.900 | 0.880 | 0.950 | 12.5 |" in lines
    assert "| mean | 24 | 0.910 | 0.010 | 0.900 | 0.880 | 0.950 | |" in lines
    assert "* context violation@5 <= 0.05: holds on 2 of 3 runs" in lines
    assert "* answerable nDCG@10 >= fit known's - 0.02 (at 24 rooms): holds on 2 of 2 runs" in lines
    assert lines[-1] == (
        "* colour learnt (mean answerable nDCG@10 >= fit known's + 0.02 at 24 rooms): "
        "0.910 against 0.880, holds"
    )


def test_the_rows_it_reads_are_named_as_the_evaluation_names_them():
    from bench import learning
    from mars_core.evaluation.ablation import Configuration
    from mars_core.evaluation.reference import FIT_AND_COLOUR_KNOWN, FIT_KNOWN, STAGE2
    from mars_core.funnel.stages import AGENT

    assert Configuration(list(STAGE2)).name == learning.STAGE2
    assert Configuration([*STAGE2, AGENT], "models:/m@candidate").name == learning.FUNNEL
    assert Configuration(list(STAGE2), reference=FIT_KNOWN).name == learning.FIT_KNOWN
    assert Configuration(list(STAGE2), reference=FIT_AND_COLOUR_KNOWN).name == (
        learning.FIT_AND_COLOUR
    )
