"""What the mining command prints: its report's summary."""

from __future__ import annotations

from mars_core.infra.skipped import Skipped
from mars_core.mining.mine import MiningReport


def test_the_summary_names_the_files_the_mix_and_what_came_up_short():
    report = MiningReport(
        pairs_file="pairs.parquet",
        heldout_file=None,
        pairs=10,
        heldout_pairs=0,
        rooms={"train": 3},
        strata={"lookalike": 6, "far": 4},
        categories={"BED": 10, "LAMP": 0},
        heldout_strata={},
        short=2,
        skipped=[Skipped("pool_09", "BadImageError", "no file at pool_09.jpg")],
    )
    assert report.summary().splitlines() == [
        "",
        "10 training pairs -> pairs.parquet",
        "  strata: lookalike 6, far 4",
        "  rooms: train 3",
        "  no training products (no pairs): LAMP",
        "  2 room x category requests got fewer pairs than configured",
        f"  skipped room {report.skipped[0]}",
    ]
